//! The error answers of the OpenAPI description, as shared [`utoipa::IntoResponses`] sets: each
//! problem response is written once here (its status comes from its [`ProblemCode`]) and routes
//! list the sets they can answer with, e.g. `responses((status = 200, …), AuthErrors401)`.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::IntoResponses;

use super::error::{ProblemCode, PROBLEM_JSON};

type Responses = BTreeMap<String, RefOr<Response>>;

/// One `application/problem+json` response with the status of `code`.
fn problem(code: ProblemCode, description: &str) -> (String, RefOr<Response>) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content)
        .build();
    (code.status().as_u16().to_string(), RefOr::T(response))
}

/// Declares a set of problem responses: `Name { Code => "description", … }` (one response per
/// status), or `Name = [SetA, SetB]` (the union of other sets).
macro_rules! problem_responses {
    ($(#[$doc:meta])* $name:ident { $($code:ident => $description:expr),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> Responses {
                Responses::from([$(problem(ProblemCode::$code, $description)),+])
            }
        }
    };
    ($(#[$doc:meta])* $name:ident = [$($part:ty),+ $(,)?]) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> Responses {
                let mut all = Responses::new();
                $(all.extend(<$part as IntoResponses>::responses());)+
                all
            }
        }
    };
}

problem_responses!(
    /// `401` of every authenticated route.
    AuthErrors401 {
        MissingCredentials =>
            "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)",
    }
);

problem_responses!(
    /// `403` of a service route: the credential lacks the route's scope.
    InsufficientScope403 { InsufficientScope => "`insufficient_scope`" }
);

problem_responses!(
    /// `403` of a cookie credential sent from a foreign site.
    CrossSite403 {
        CrossSiteRequest => "`cross_site_request`: cookie credentials from another site",
    }
);

problem_responses!(
    /// `404` of a service route while no service credentials are configured.
    ServiceCredentialsOff404 {
        NotFound => "`not_found`: no service credentials are configured",
    }
);

problem_responses!(
    /// The refusals of every service route: `401`, `403 insufficient_scope`, `404 not_found`.
    ServiceAuthErrors = [AuthErrors401, InsufficientScope403, ServiceCredentialsOff404]
);

problem_responses!(
    /// `400` of a malformed body, header or query.
    BadRequest400 { BadRequest => "Malformed body or header (`bad_request`)" }
);

problem_responses!(
    /// `408` and `413` of a route that reads a body.
    BodyLimits {
        RequestTimeout => "The body did not arrive in time (`request_timeout`)",
        PayloadTooLarge => "Body over the limit (`payload_too_large`)",
    }
);

problem_responses!(
    /// `400`, `408` and `413` of a route that reads a body.
    BodyErrors = [BadRequest400, BodyLimits]
);

problem_responses!(
    /// `404` of an unknown link.
    LinkNotFound404 { LinkNotFound => "`link_not_found`" }
);

problem_responses!(
    /// `410` of a link that can no longer be opened.
    LinkGone410 { LinkUsed => "`link_used`, `link_expired` or `link_revoked`" }
);

problem_responses!(
    /// `429` of a route under a rate limit.
    RateLimited429 {
        RateLimited => "`rate_limited`, with `Retry-After`, `RateLimit-Policy`, `RateLimit`",
    }
);

problem_responses!(
    /// `429` of `OPTIONS /l/{id}` (counted against `limits.open_per_ip`).
    OpenRateLimited429 {
        RateLimited => "`rate_limited` (`limits.open_per_ip`), with `Retry-After`, \
                        `RateLimit-Policy`, `RateLimit`",
    }
);

problem_responses!(
    /// `503` of the link-opening routes.
    OpenStoreUnavailable503 { StoreUnavailable => "`store_unavailable`" }
);

problem_responses!(
    /// What opening a link can answer besides success: `404`, `410`, `429`, `503`.
    OpenRefusals = [LinkNotFound404, LinkGone410, RateLimited429, OpenStoreUnavailable503]
);

problem_responses!(
    /// `503` of the routes that ask the store, the identity provider or ARGOS.
    StoreUnavailable503 {
        StoreUnavailable => "Store, JWKS or ARGOS unavailable (`store_unavailable`, \
                             `jwks_unavailable`, `argos_unavailable`); nothing was issued",
    }
);

problem_responses!(
    /// `422` of a mint without an idempotency key.
    NoSubmission422 { NoSubmission => "`no_submission` or `field_too_long`" }
);

problem_responses!(
    /// `422` of `POST /v1/links`.
    MintRefused422 {
        NoSubmission => "`no_submission`, `field_too_long` or `idempotency_key_reused`",
    }
);

problem_responses!(
    /// `409` of a request whose `Idempotency-Key` is still being processed.
    IdempotencyKeyInUse409 { IdempotencyKeyInUse => "`idempotency_key_in_use`" }
);

problem_responses!(
    /// `503` of `/readyz`.
    NotReady503 { ShuttingDown => "`store_unavailable` or `shutting_down`" }
);

problem_responses!(
    /// `503` of `DELETE /v1/users/{user_id}/faceauth`.
    EraseUnavailable503 {
        StoreUnavailable => "Store or JWKS unavailable (`store_unavailable`, `jwks_unavailable`); \
                             nothing was erased",
    }
);

problem_responses!(
    /// `400`, `404` and `503` of `GET /v1/erasures/{id}`.
    ErasureStatusErrors {
        BadRequest => "Malformed erasure id (`bad_request`)",
        ErasureNotFound =>
            "`erasure_not_found`; `not_found` when no service credentials are configured",
        StoreUnavailable => "Store or JWKS unavailable (`store_unavailable`, `jwks_unavailable`)",
    }
);

problem_responses!(
    /// `404` of the webhook receiver (wrong path secret or source address).
    WebhookRefused404 { NotFound => "Wrong path secret or source address (`not_found`)" }
);

problem_responses!(
    /// `404` of `/.well-known/jwks.json` while step-up assertions are off.
    AssertionsOff404 {
        NotFound => "`not_found`: step-up assertions are off (no `assertions.signing_key_file`)",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_take_their_status_from_the_code() {
        let all = ServiceAuthErrors::responses();
        let statuses: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(statuses, ["401", "403", "404"]);
        assert_eq!(BodyErrors::responses().len(), 3);
        assert_eq!(OpenRefusals::responses().len(), 4);
    }
}
