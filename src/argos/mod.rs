//! Everything ARGOS-specific: the query-string ciphers ([`crypto`]) and FaceAuth URL building
//! ([`url`]). Facts and their confidence marks: `docs/argos-faceauth-reference.md`.

pub mod client;
pub mod crypto;
pub mod url;
pub mod webhook;
