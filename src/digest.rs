//! Hashing helpers: SHA-256 in lowercase hex, whole or shortened.
//!
//! A bottom-layer module: it imports nothing from the crate. Its values end up in store keys
//! and event ids, so they never change.

use sha2::{Digest, Sha256};

/// SHA-256 of `data`, lowercase hex (64 characters).
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

/// The first 16 bytes of SHA-256 of `data`, lowercase hex (32 characters): a short,
/// fixed-length tag for keys and ids, whatever `data` holds.
pub fn short_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(&Sha256::digest(data.as_ref())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(short_hex("abc"), "ba7816bf8f01cfea414140de5dae2223");
        assert_eq!(short_hex(b"abc"), sha256_hex("abc")[..32]);
    }
}
