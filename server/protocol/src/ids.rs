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
        for b in uuid::Uuid::new_v4().as_bytes() {
            // 31 does not divide 256: skip the top of the range so each character is uniform.
            if *b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(*b % 31)]));
            }
        }
    }
    out
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
    fn game_ids_cannot_break_out_of_a_redis_hash_tag() {
        for bad in ["", "a}b", "{x}", "a:b", "a b", &"x".repeat(33)] {
            assert!(GameId::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }
}
