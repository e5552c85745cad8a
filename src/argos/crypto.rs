//! Query-string and webhook ciphers used by ARGOS.
//!
//! Source: `docs/argos-faceauth-reference.md` §1 (ARGOS "Encrypt and decrypt data" page, S2/S3/S4).
//!
//! * Key: SHA-256 over the UTF-8 bytes of the key string (the FaceAuth **Add-on API key**),
//!   the raw 32-byte digest is the AES-256 key (§1.2, [H]).
//! * `aes-256-ecb`: PKCS#7, standard base64 with `=` padding (§1.3, [H]).
//! * `aes-256-gcm`: 12-byte random nonce, 16-byte tag, no AAD; output is lowercase hex of
//!   `nonce ‖ ciphertext ‖ tag` (§1.4, [M]).
//! * `aes-256-cbc`: IV of 16 zero bytes, PKCS#7, standard base64 (§1.6, the webhook
//!   "Secure Data Transfer" scheme and the best guess for legacy query strings, [M]/[L]).
//!
//! All modes and paddings come from RustCrypto (`aes`, `ecb`, `cbc`, `aes-gcm`); nothing here
//! implements a block mode by hand.

use aes::cipher::crypto_common::InnerInit;
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes_gcm::aead::{Aead, AeadCore, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

type Aes256EcbEnc = ecb::Encryptor<aes::Aes256>;
type Aes256EcbDec = ecb::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Length of the GCM nonce in bytes (§1.4).
pub const GCM_NONCE_LEN: usize = 12;
/// Length of the GCM authentication tag in bytes (§1.4).
pub const GCM_TAG_LEN: usize = 16;
const CBC_ZERO_IV: [u8; 16] = [0u8; 16];

/// The cipher a FaceAuth project (or webhook channel) uses. Config values:
/// `aes-256-ecb` (default: the mode ARGOS documents as current since 1 Aug 2024, §1.1),
/// `aes-256-gcm`, `aes-256-cbc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Encryption {
    /// AES-256-ECB, PKCS#7, standard base64.
    #[default]
    #[serde(rename = "aes-256-ecb")]
    Aes256Ecb,
    /// AES-256-GCM, random 12-byte nonce, lowercase hex of `nonce ‖ ciphertext ‖ tag`.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// AES-256-CBC with a zero IV, PKCS#7, standard base64.
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
}

impl Encryption {
    /// The config spelling of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Aes256Ecb => "aes-256-ecb",
            Encryption::Aes256Gcm => "aes-256-gcm",
            Encryption::Aes256Cbc => "aes-256-cbc",
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Encryption {
    type Err = String;

    /// Accepts the config spelling and the short forms `ecb`, `gcm`, `cbc`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "aes-256-ecb" | "ecb" => Ok(Encryption::Aes256Ecb),
            "aes-256-gcm" | "gcm" => Ok(Encryption::Aes256Gcm),
            "aes-256-cbc" | "cbc" => Ok(Encryption::Aes256Cbc),
            other => Err(format!(
                "unknown encryption mode `{other}`; expected aes-256-ecb, aes-256-gcm or aes-256-cbc"
            )),
        }
    }
}

/// Why a value could not be decrypted. Carries no key material and no ciphertext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The value is not valid standard base64 (ECB, CBC).
    #[error("the value is not valid base64")]
    Base64,
    /// The value is not valid hex (GCM).
    #[error("the value is not valid hex")]
    Hex,
    /// Wrong length, bad padding or a failed GCM tag check (wrong key or tampered value).
    #[error("the value does not decrypt with this key")]
    Decrypt,
    /// The key string is empty.
    #[error("the key string is empty")]
    EmptyKey,
}

/// Derives the 32-byte AES-256 key: SHA-256 over the UTF-8 bytes of `key_string` (§1.2).
pub fn derive_key(key_string: &str) -> [u8; 32] {
    Sha256::digest(key_string.as_bytes()).into()
}

/// A cipher keyed once at start-up from the Add-on API key; the key schedule is computed once.
///
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct QueryCipher {
    mode: Encryption,
    aes: aes::Aes256,
    gcm: Aes256Gcm,
}

impl fmt::Debug for QueryCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryCipher")
            .field("mode", &self.mode)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl QueryCipher {
    /// Keys a cipher from the API key (or secretKey) string.
    ///
    /// Errors: [`CryptoError::EmptyKey`] when the key string is empty or only white space.
    pub fn new(mode: Encryption, api_key: &SecretString) -> Result<Self, CryptoError> {
        let key_string = api_key.expose_secret();
        if key_string.trim().is_empty() {
            return Err(CryptoError::EmptyKey);
        }
        let key = derive_key(key_string);
        Ok(QueryCipher {
            mode,
            aes: aes::Aes256::new(&key.into()),
            gcm: Aes256Gcm::new(&key.into()),
        })
    }

    /// The mode this cipher was built for.
    pub fn mode(&self) -> Encryption {
        self.mode
    }

    /// Encrypts `plaintext` and encodes it as the mode prescribes (base64 for ECB/CBC, hex for
    /// GCM with a fresh random nonce). The result is the ARGOS `encrypted` value, a secret.
    pub fn encrypt(&self, plaintext: &[u8]) -> SecretString {
        match self.mode {
            Encryption::Aes256Ecb => {
                let ct = Aes256EcbEnc::inner_init(self.aes.clone())
                    .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
                SecretString::from(BASE64.encode(ct))
            }
            Encryption::Aes256Cbc => {
                let ct = Aes256CbcEnc::inner_iv_init(self.aes.clone(), &CBC_ZERO_IV.into())
                    .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
                SecretString::from(BASE64.encode(ct))
            }
            Encryption::Aes256Gcm => {
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                self.encrypt_gcm_with_nonce(plaintext, nonce.into())
            }
        }
    }

    /// GCM with a caller-chosen nonce: only for known-answer tests. Reusing a nonce under one
    /// key breaks GCM; the server always goes through [`QueryCipher::encrypt`].
    #[doc(hidden)]
    pub fn encrypt_gcm_with_nonce(
        &self,
        plaintext: &[u8],
        nonce: [u8; GCM_NONCE_LEN],
    ) -> SecretString {
        let nonce = Nonce::from(nonce);
        // Encryption only fails when the plaintext exceeds GCM's 64 GiB limit; the gateway's
        // plaintexts are bounded far below that, so the empty fallback is unreachable.
        let ct = self.gcm.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut out = Vec::with_capacity(GCM_NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        SecretString::from(hex::encode(out))
    }

    /// Decrypts an `encrypted` value produced by this mode (white space around it is ignored).
    ///
    /// Errors: [`CryptoError::Base64`] / [`CryptoError::Hex`] for a bad encoding,
    /// [`CryptoError::Decrypt`] for bad length, bad padding or a failed tag check.
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        let encrypted = encrypted.trim();
        match self.mode {
            Encryption::Aes256Ecb => {
                let ct = BASE64.decode(encrypted).map_err(|_| CryptoError::Base64)?;
                Aes256EcbDec::inner_init(self.aes.clone())
                    .decrypt_padded_vec_mut::<Pkcs7>(&ct)
                    .map_err(|_| CryptoError::Decrypt)
            }
            Encryption::Aes256Cbc => {
                let ct = BASE64.decode(encrypted).map_err(|_| CryptoError::Base64)?;
                Aes256CbcDec::inner_iv_init(self.aes.clone(), &CBC_ZERO_IV.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(&ct)
                    .map_err(|_| CryptoError::Decrypt)
            }
            Encryption::Aes256Gcm => {
                let raw = hex::decode(encrypted).map_err(|_| CryptoError::Hex)?;
                if raw.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
                    return Err(CryptoError::Decrypt);
                }
                let (nonce, ct) = raw.split_at(GCM_NONCE_LEN);
                let nonce = Nonce::from_slice(nonce);
                self.gcm
                    .decrypt(nonce, ct)
                    .map_err(|_| CryptoError::Decrypt)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(mode: Encryption) -> QueryCipher {
        QueryCipher::new(mode, &SecretString::from("TEST_API_KEY_0123456789")).unwrap()
    }

    #[test]
    fn key_is_sha256_of_the_key_string() {
        assert_eq!(
            hex::encode(derive_key("TEST_API_KEY_0123456789")),
            "544f5bfb1033c8c983e54cb848f279f2ad22438befb88940516d1ad1f55379d1"
        );
    }

    #[test]
    fn empty_key_is_refused() {
        assert_eq!(
            QueryCipher::new(Encryption::Aes256Ecb, &SecretString::from("  ")).unwrap_err(),
            CryptoError::EmptyKey
        );
    }

    #[test]
    fn gcm_output_differs_per_call_and_round_trips() {
        let c = cipher(Encryption::Aes256Gcm);
        let a = c.encrypt(b"hello");
        let b = c.encrypt(b"hello");
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(c.decrypt(a.expose_secret()).unwrap(), b"hello");
    }

    #[test]
    fn tampered_gcm_fails() {
        let c = cipher(Encryption::Aes256Gcm);
        let a = c.encrypt(b"hello").expose_secret().to_string();
        let mut bytes = hex::decode(&a).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(c.decrypt(&hex::encode(bytes)), Err(CryptoError::Decrypt));
    }

    #[test]
    fn debug_hides_key() {
        let s = format!("{:?}", cipher(Encryption::Aes256Ecb));
        assert!(s.contains("REDACTED"));
        assert!(!s.contains("544f5b"));
    }

    #[test]
    fn bad_encodings_are_errors_not_panics() {
        let c = cipher(Encryption::Aes256Ecb);
        assert_eq!(c.decrypt("%%%"), Err(CryptoError::Base64));
        assert_eq!(c.decrypt("AAAA"), Err(CryptoError::Decrypt));
        let g = cipher(Encryption::Aes256Gcm);
        assert_eq!(g.decrypt("zz"), Err(CryptoError::Hex));
        assert_eq!(g.decrypt("00"), Err(CryptoError::Decrypt));
    }
}
