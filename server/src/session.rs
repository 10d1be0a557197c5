//! A session: the login kept in Redis. Its secret token proves it; Redis only ever sees the
//! token's hash, under which the session (player id, name, seats) is stored.

use sha2::{Digest, Sha256};
use std::fmt;

/// The secret that proves a session: 244 random bits (two v4 UUIDs). Its `Debug` is redacted
/// so it cannot reach a log by accident; Redis only ever sees its SHA-256 ([`TokenHash`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> SessionToken {
        let a = uuid::Uuid::new_v4().simple().to_string();
        let b = uuid::Uuid::new_v4().simple().to_string();
        SessionToken(format!("{a}{b}"))
    }

    /// Accepts only the shape [`generate`](Self::generate) produces.
    pub fn parse(s: &str) -> Option<SessionToken> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| SessionToken(s.to_ascii_lowercase()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        TokenHash(hex)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// SHA-256 of a session token, hex: the name under which the session is stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_hash_stably_and_never_print() {
        let t = SessionToken::generate();
        let parsed = SessionToken::parse(t.expose()).unwrap();
        assert_eq!(parsed.hash(), t.hash());
        assert_ne!(t.hash().as_str(), t.expose());
        assert_eq!(t.hash().as_str().len(), 64);
        assert!(!format!("{t:?}").contains(t.expose()));
        assert!(SessionToken::parse("short").is_none());
        assert!(SessionToken::parse(&"g".repeat(64)).is_none());
        assert_ne!(SessionToken::generate(), t);
    }
}
