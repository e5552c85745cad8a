#![warn(missing_docs)]
//! # faceauth-gateway
//!
//! A backend-for-frontend that issues single-use ARGOS Identity **FaceAuth** step-up links.
//! A caller proves the user with a JWT ([`auth`]); the gateway resolves the user's approved
//! submission id (`sid`) server-side, mints a link whose id is the FaceAuth `token`
//! ([`links`]), records it in a store with the FaceAuth project's expiry rule ([`store`]), and
//! on open redirects to the FaceAuth URL with an encrypted query ([`argos`]).
//!
//! Layout: [`config`] (layered settings), [`startup`] (build and run), [`http`] (routes and the
//! single error mapping), [`demo`] (self-contained demo mode), [`cli`] (the binary's commands).

pub mod argos;
pub mod assertions;
pub mod auth;
pub mod callbacks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod erasure;
pub mod http;
pub mod idempotency;
pub mod lifecycle;
pub mod limits;
pub mod links;
pub mod metrics;
pub mod outbound;
pub mod queue;
pub mod results;
pub mod sid;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod verdict;

pub use config::Settings;
pub use startup::{Application, StartupError};
