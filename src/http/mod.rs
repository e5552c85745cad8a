//! HTTP layer: routes, the error mapping and pages. Handlers stay a few lines; the work happens
//! in [`crate::links`] and [`crate::auth`].

pub mod error;
pub mod html;
pub mod routes;

pub use error::{ApiError, Problem, PROBLEM_JSON};
