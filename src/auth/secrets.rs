//! Secrets Ferry hands out (API tokens, device session keys): random, shown once, stored
//! only as their SHA-256. A secret has ≥ 256 bits of entropy, so an unsalted fast hash is
//! the right tool (nothing to brute-force) and lets the catalog look it up by index.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A secret just issued: shown once to whoever asked for it, stored only as its hash.
pub struct Issued {
    pub secret: String,
    pub hash: String,
}

/// A new API token (`fry_t_…`).
pub fn new_api_token() -> Issued {
    issue("fry_t_")
}

/// A new device session key (`fry_d_…`).
pub fn new_device_key() -> Issued {
    issue("fry_d_")
}

pub(super) fn issue(prefix: &str) -> Issued {
    let secret = generate(prefix);
    let hash = hash(&secret);
    Issued { secret, hash }
}

/// Compares secrets without leaking where they differ through timing.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new secret with a readable kind prefix (none for the URL signing key).
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The at-rest form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn issued_secrets_carry_their_kind_and_their_hash() {
        let token = super::new_api_token();
        assert!(token.secret.starts_with("fry_t_"));
        assert_eq!(token.hash, super::hash(&token.secret));
        assert!(super::new_device_key().secret.starts_with("fry_d_"));
    }

    #[test]
    fn secrets_are_unique_and_hashed() {
        let (a, b) = (super::generate("fry_t_"), super::generate("fry_t_"));
        assert_ne!(a, b);
        assert!(a.starts_with("fry_t_") && a.len() == 6 + 64);
        assert_eq!(super::hash(&a).len(), 64);
        assert_ne!(super::hash(&a), a);
    }
}
