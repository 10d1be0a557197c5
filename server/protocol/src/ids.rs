//! Public identifiers: game ids and player ids, each parsed once at the boundary so the rest
//! of the code never handles an unchecked string.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Characters of generated ids: lower case and digits without the look-alikes 0/o, 1/l/i.
const ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// `len` characters from [`ALPHABET`], drawn from the OS random source through uuid v4.
fn random_id(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        push_uniform(&mut out, uuid::Uuid::new_v4().as_bytes(), len);
    }
    out
}

/// Appends characters of [`ALPHABET`] made from `bytes` to `out`, up to `len` characters.
fn push_uniform(out: &mut String, bytes: &[u8], len: usize) {
    for b in bytes {
        // 31 does not divide 256: skip the top of the range so each character is uniform.
        if *b < 248 && out.len() < len {
            out.push(char::from(ALPHABET[usize::from(*b % 31)]));
        }
    }
}

fn is_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A game id: short enough to share in a link, and safe inside Redis key names and hash tags
/// (no braces, no colons).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct GameId(String);

impl GameId {
    /// 10 characters of a 31-letter alphabet, about 49 random bits. Creation refuses an id
    /// that already exists, so a collision costs a retry, never a shared game.
    pub fn generate() -> GameId {
        GameId(random_id(10))
    }

    /// A game id made from a digest (a cryptographic hash of whatever names the game): the
    /// same digest always gives the same id, as uniform over the ids as
    /// [`GameId::generate`]. For ids a retried request must find again.
    pub fn from_digest(digest: &[u8; 32]) -> GameId {
        let mut out = String::with_capacity(10);
        push_uniform(&mut out, digest, 10);
        // Fewer than 10 of 32 bytes below 248 is about as likely as guessing the digest;
        // still, always 10 characters.
        for b in digest.iter().cycle().take(10 - out.len()) {
            out.push(char::from(ALPHABET[usize::from(*b % 31)]));
        }
        GameId(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GameId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_id(&s, 32) {
            Ok(GameId(s))
        } else {
            Err("a game id is 1 to 32 letters, digits, '-' or '_'".into())
        }
    }
}

impl fmt::Display for GameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A player's public id. Seats are bound to it; it may appear in logs and in Redis, unlike
/// the session token that proves it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct PlayerId(String);

impl PlayerId {
    pub fn generate() -> PlayerId {
        PlayerId(format!("p-{}", random_id(12)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlayerId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_id(&s, 40) {
            Ok(PlayerId(s))
        } else {
            Err("malformed player id".into())
        }
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| GameId::generate()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.as_str().len(), 10);
            assert!(GameId::try_from(id.as_str().to_string()).is_ok());
        }
        assert!(PlayerId::try_from(PlayerId::generate().to_string()).is_ok());
    }

    #[test]
    fn an_id_from_a_digest_is_well_formed_and_stable() {
        let digest: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(97));
        let id = GameId::from_digest(&digest);
        assert_eq!(id, GameId::from_digest(&digest));
        assert_eq!(id.as_str().len(), 10);
        assert!(GameId::try_from(id.to_string()).is_ok());
        // Even from bytes that are all out of the uniform range.
        let high = GameId::from_digest(&[255; 32]);
        assert_eq!(high.as_str().len(), 10);
        assert!(GameId::try_from(high.to_string()).is_ok());
    }

    #[test]
    fn game_ids_cannot_break_out_of_a_redis_hash_tag() {
        for bad in ["", "a}b", "{x}", "a:b", "a b", &"x".repeat(33)] {
            assert!(GameId::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }
}
