//! HTTP layer: the edge between actix and the domain. Dependencies point one way:
//!
//! * [`routes`] holds the route table (with CORS and error-handler wiring) and imports the
//!   handler modules: [`api`] (`/v1` for apps and frontends), [`open`] (`/l/{id}`),
//!   [`service_api`], [`erasure_api`], [`webhooks`], [`well_known`] and [`health`].
//!   [`openapi`] lists the same handlers for the OpenAPI document.
//! * Handler modules never import each other; they share [`state`] (`AppState`), [`body`]
//!   (body reading, `Idempotency-Key`, the `201` of a mint), [`extract`] (credentials and the
//!   path user id), [`error`] (the one error type and its [`ProblemCode`]s), [`responses`] and
//!   [`params`] (OpenAPI building blocks), [`html`], [`client_ip`] and [`middleware`].
//! * Domain modules ([`crate::auth`], [`crate::links`], [`crate::limits`], …) never import
//!   `http`; their errors become [`ApiError`]s here (`From` impls in [`error`]).

pub mod api;
pub mod body;
pub mod client_ip;
pub mod erasure_api;
pub mod error;
pub mod extract;
pub mod health;
pub mod html;
pub mod middleware;
pub mod open;
pub mod openapi;
pub mod params;
pub mod responses;
pub mod routes;
pub mod service_api;
pub mod state;
pub mod webhooks;
pub mod well_known;

pub use error::{ApiError, Problem, ProblemCode, PROBLEM_JSON};

#[cfg(test)]
mod tests {
    /// Modules that only `routes` and `openapi` may import.
    const HANDLERS: [&str; 7] = [
        "api",
        "open",
        "service_api",
        "erasure_api",
        "webhooks",
        "well_known",
        "health",
    ];

    fn source(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    /// Every `super::…` / `crate::http::…` module a source file names.
    fn http_imports(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for prefix in ["super::", "crate::http::"] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(list) => list.split('}').next().unwrap_or("").split(',').collect(),
                    None => vec![rest],
                };
                for name in names {
                    let name: String = name
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    found.push(name);
                }
            }
        }
        found
    }

    #[test]
    fn handler_modules_do_not_import_each_other() {
        let all =
            HANDLERS
                .iter()
                .chain(&["state", "body", "extract", "error", "responses", "params"]);
        for module in all {
            let text = source(&format!("src/http/{module}.rs"));
            for name in http_imports(&text) {
                assert!(
                    !HANDLERS.contains(&name.as_str()) || &name == module,
                    "src/http/{module}.rs imports the handler module `{name}`"
                );
            }
        }
    }

    #[test]
    fn auth_does_not_import_http() {
        for file in ["mod.rs", "service.rs", "cookie.rs", "jwks.rs"] {
            let text = source(&format!("src/auth/{file}"));
            assert!(
                !text.contains("crate::http"),
                "src/auth/{file} imports http"
            );
        }
    }
}
