//! Single-use FaceAuth links: the link service and the issuing pipeline over the store.
//!
//! The model (ids, records, policy, the token state machine) is [`crate::lifecycle`], re-exported
//! here; the store works on it without naming this module.

mod issuer;
mod service;

pub use crate::lifecycle::*;
pub use issuer::{IssueError, IssueOptions, Issued, Issuer, Requester};
pub use service::{
    utc_from_ms, LinkError, LinkOptions, LinkService, LinkStatus, MintedLink, Opened,
};
