//! API keys and tokens: held so that they cannot be printed by accident (DESIGN.md invariant 6).
//!
//! A [`Secret`] has no `Display` and no `Serialize`; its `Debug` shows only a fingerprint, the
//! first 12 hex digits of its SHA-256, which is also what logs, cache keys and the sandbox's request
//! log use to tell keys apart.

use std::fmt;

use sha2::{Digest, Sha256};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into().trim().to_owned())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fingerprint of a secret value: 12 hex digits of its SHA-256.
pub fn fingerprint(value: &str) -> String {
    let mut digest = digest_hex(value);
    digest.truncate(12);
    digest
}

/// The SHA-256 of a value, in hex: what is stored of server tokens and session cookies.
pub fn digest_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(fingerprint {})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let secret = Secret::new("  sk-live-abcdef123456\n");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("abcdef123456"), "{shown}");
        assert_eq!(
            shown,
            format!(
                "Secret(fingerprint {})",
                fingerprint("sk-live-abcdef123456")
            )
        );
        assert_eq!(secret.expose(), "sk-live-abcdef123456");
    }
}
