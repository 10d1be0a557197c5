//! Between store types and the text the scripts keep and return: replies decoded into games,
//! chat lines and presence, and the few values encoded the way the scripts store them.

use crate::store::{Absence, ChatRecord, PresenceRecord};
use crate::store::{StoreError, StoreResult, StoredGame};
use ::redis::Value;
use bytes::Bytes;
use std::time::Duration;

use tictactoe_protocol::ids::PlayerId;
use tictactoe_protocol::{AwayReason, Role};
use tictactoe_rules::{GameState, Mark, Seats};

pub(super) fn corrupt(what: &str, got: impl std::fmt::Debug) -> StoreError {
    StoreError::Corrupt(format!("{what}: unexpected reply {got:?}"))
}

/// A RESP3 reply in the shape RESP2 gives it, which is what every decoder here and every
/// script's caller expects: the single-Redis link speaks RESP3 only to carry pub/sub pushes
/// (see `link_bus`). Lua's `false` is a RESP3 boolean but a RESP2 nil, `true` the number 1;
/// maps and sets are flat arrays; doubles and verbatim strings are bulk strings.
pub(super) fn resp2(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(resp2).collect()),
        Value::Set(items) => Value::Array(items.into_iter().map(resp2).collect()),
        Value::Map(pairs) => Value::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [resp2(k), resp2(v)])
                .collect(),
        ),
        Value::Boolean(false) => Value::Nil,
        Value::Boolean(true) => Value::Int(1),
        Value::Double(d) => Value::BulkString(d.to_string().into_bytes()),
        Value::VerbatimString { text, .. } => Value::BulkString(text.into_bytes()),
        Value::Attribute { data, .. } => resp2(*data),
        other => other,
    }
}

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A reply's text, borrowed: for the replies read on every move, which need no copy.
pub(super) fn str_of(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// An event as logged: bytes passed through, never parsed.
pub(super) fn event(v: Value) -> Option<Bytes> {
    match v {
        Value::BulkString(b) => Some(b.into()),
        _ => None,
    }
}

pub(super) fn items(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

pub(super) fn texts(v: Value) -> Option<Vec<String>> {
    items(v)?.iter().map(text).collect()
}

pub(super) fn num<T: std::str::FromStr>(s: &str, what: &str) -> StoreResult<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what}: not a number: {s:?}")))
}

pub(super) fn parse_state(json: &str) -> StoreResult<GameState> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("game state: {e}")))
}

pub(super) fn player(s: Option<String>) -> StoreResult<Option<PlayerId>> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => PlayerId::try_from(s).map(Some).map_err(StoreError::Corrupt),
    }
}

pub(super) fn stored_game(
    v: &str,
    s: &str,
    x: Option<String>,
    o: Option<String>,
) -> StoreResult<StoredGame> {
    Ok(StoredGame {
        version: num(v, "game version")?,
        state: parse_state(s)?,
        seats: Seats {
            x: player(x)?,
            o: player(o)?,
        },
    })
}

/// The time of a chat line: the milliseconds part of its stream id, on Redis's clock.
pub(super) fn chat_ts(id: &str) -> StoreResult<u64> {
    num(id.split('-').next().unwrap_or_default(), "chat id")
}

/// A chat line from a stream entry `[id, [field, value, ...]]`.
pub(super) fn chat_line(entry: Value) -> StoreResult<ChatRecord> {
    let mut parts = items(entry).ok_or_else(|| corrupt("chat entry", "not an array"))?;
    let fields = parts
        .pop()
        .and_then(texts)
        .ok_or_else(|| corrupt("chat entry", "no fields"))?;
    let id = parts
        .first()
        .and_then(text)
        .ok_or_else(|| corrupt("chat entry", "no id"))?;
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|kv| kv[0] == name)
            .and_then(|kv| kv.get(1).cloned())
            .unwrap_or_default()
    };
    let role = match field("r").as_str() {
        "" => None,
        r => Some(
            serde_json::from_value(serde_json::Value::String(r.to_string()))
                .map_err(|e| StoreError::Corrupt(format!("chat role: {e}")))?,
        ),
    };
    let ts = chat_ts(&id)?;
    Ok(ChatRecord {
        id,
        from: field("f"),
        role,
        text: field("t"),
        ts,
    })
}

/// A presence from presence.lua's reply: the counts, then the absence as
/// {x ms, o ms, x why, o why}.
pub(super) fn presence_of(x: i64, o: i64, n: i64, away: &[i64]) -> StoreResult<PresenceRecord> {
    let [xa, oa, xw, ow] = away else {
        return Err(corrupt("presence absence", away));
    };
    let seat = |ms: i64, why: i64| {
        let reason = match why {
            1 => AwayReason::Left,
            2 => AwayReason::Disconnected,
            _ => return None,
        };
        Some(Absence {
            reason,
            for_ms: u64::try_from(ms).unwrap_or(0),
        })
    };
    Ok(PresenceRecord {
        players: Seats {
            x: x == 1,
            o: o == 1,
        },
        spectators: u32::try_from(n).unwrap_or(0),
        away: Seats {
            x: seat(*xa, *xw),
            o: seat(*oa, *ow),
        },
    })
}

pub(super) fn why_name(why: AwayReason) -> &'static str {
    match why {
        AwayReason::Left => "left",
        AwayReason::Disconnected => "disconnected",
    }
}

pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

pub(super) fn seat_field(m: Mark) -> &'static str {
    match m {
        Mark::X => "x",
        Mark::O => "o",
    }
}

/// How a role is kept in presence fields and chat entries.
pub(super) fn role_name(r: Role) -> &'static str {
    match r {
        Role::X => "X",
        Role::O => "O",
        Role::Spectator => "spectator",
    }
}

/// A client's move id as the transition script keeps it: hex, so that no id can forge the
/// separators of the list it is kept in.
pub(super) fn mid_hex(mid: &str) -> String {
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(mid.len() * 2);
    for b in mid.bytes() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The version a move id (hex) produced, in a player's list of recent move ids
/// (`,<hex>=<version>` entries).
pub(super) fn applied_in<'a>(mids: &'a str, hex: &str) -> Option<&'a str> {
    mids.split(',')
        .filter_map(|e| e.split_once('='))
        .find(|(id, _)| *id == hex)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_ids_are_found_whatever_they_contain() {
        let ids = ["m-1", "a,b=c", "=", ",=9", "é"];
        let mut list = String::new();
        for (v, id) in ids.iter().enumerate() {
            list.push_str(&format!(",{}={v}", mid_hex(id)));
        }
        for (v, id) in ids.iter().enumerate() {
            assert_eq!(
                applied_in(&list, &mid_hex(id)),
                Some(v.to_string().as_str())
            );
        }
        assert_eq!(applied_in(&list, &mid_hex("m-2")), None);
        assert_eq!(applied_in("", &mid_hex("m-1")), None);
        // As the transition script keeps it now: the count first, which is no entry (even
        // where a mid's hex is all digits).
        let counted = format!("5{list}");
        assert_eq!(applied_in(&counted, &mid_hex("m-1")), Some("0"));
        assert_eq!(applied_in(&counted, "5"), None);
        assert_eq!(mid_hex("a,"), "612c");
    }
}
