//! HTTP layer: the route table ([`routes`]), the `/v1` API ([`api`]), the link-opening
//! routes ([`open`]), the single error mapping ([`error`]), pages ([`html`]), client IPs
//! ([`client_ip`]) and request middleware ([`middleware`]). Handlers stay a few lines; the
//! work happens in [`crate::links`], [`crate::auth`], [`crate::limits`] and
//! [`crate::idempotency`].

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
