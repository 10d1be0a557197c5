//! Parsing a client's text frame into a [`ClientMsg`]: malformed JSON, unknown types and bad
//! fields told apart, a repeated key refused rather than guessed, the request id kept
//! whenever the frame had one.

use crate::client::{CLIENT_TYPES, ClientMsg};
use crate::server::ErrorCode;
use crate::wire::Req;

/// Why a frame could not become a [`ClientMsg`], with whatever `req` could be salvaged.
#[derive(Debug, PartialEq)]
pub struct ParseError {
    pub req: Option<Req>,
    pub code: ErrorCode,
    pub message: String,
}

/// Parses a text frame, telling malformed JSON, unknown types and bad fields apart and
/// keeping the request id whenever the frame had one.
pub fn parse_client(text: &str) -> Result<ClientMsg, ParseError> {
    // Well-formed frames, the common case, parse in one pass; only a refused frame pays for
    // the slower diagnosis below.
    if let Ok(msg) = serde_json::from_str(text) {
        return Ok(msg);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError {
        req: None,
        code: ErrorCode::BadJson,
        message: format!("not valid JSON: {e}"),
    })?;
    // A JSON object that repeats a key means whatever the parser that reads it decides: the
    // `Value` above keeps the last `type`, the typed parse refuses the repetition. Refuse it
    // here, before anything reads the value. (A key the protocol does not know is ignored,
    // and so are its repetitions, which the fast path lets through.)
    if let Some(key) = repeated_key(text) {
        let shown: String = key.chars().take(32).collect();
        let req = (key != "req")
            .then(|| value.get("req").and_then(serde_json::Value::as_u64))
            .flatten();
        return Err(ParseError {
            req,
            code: ErrorCode::BadJson,
            message: format!("key {shown:?} appears twice in one object"),
        });
    }
    let Some(obj) = value.as_object() else {
        return Err(ParseError {
            req: None,
            code: ErrorCode::BadJson,
            message: "a message is a JSON object".into(),
        });
    };
    let req = obj.get("req").and_then(serde_json::Value::as_u64);
    let ty = match obj.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => {
            return Err(ParseError {
                req,
                code: ErrorCode::BadRequest,
                message: "missing string field \"type\"".into(),
            });
        }
    };
    if !CLIENT_TYPES.contains(&ty.as_str()) {
        let shown: String = ty.chars().take(32).collect();
        return Err(ParseError {
            req,
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {shown:?}"),
        });
    }
    serde_json::from_value(value).map_err(|e| ParseError {
        req,
        code: ErrorCode::BadRequest,
        message: format!("invalid {ty} message: {e}"),
    })
}

/// The first key that appears twice in one object, anywhere in `text` (valid JSON).
fn repeated_key(text: &str) -> Option<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// Walks a JSON value, remembering the first repeated key it meets.
    struct Walk<'a>(&'a mut Option<String>);

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Walk(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) && self.0.is_none() {
                    *self.0 = Some(key);
                }
                map.next_value_seed(Walk(&mut *self.0))?;
            }
            Ok(())
        }
    }

    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(text);
    Walk(&mut found).deserialize(&mut de).ok()?;
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_client_type_is_known_to_the_parser() {
        // A message of each type with its required fields, so CLIENT_TYPES cannot drift.
        let samples = [
            r#"{"type":"hello"}"#,
            r#"{"type":"create"}"#,
            r#"{"type":"join","game":"g1"}"#,
            r#"{"type":"rename","name":"Ann"}"#,
            r#"{"type":"leave","game":"g1"}"#,
            r#"{"type":"move","game":"g1","cell":4}"#,
            r#"{"type":"resign","game":"g1"}"#,
            r#"{"type":"rematch","game":"g1"}"#,
            r#"{"type":"cancel","game":"g1"}"#,
            r#"{"type":"chat","text":"hi"}"#,
            r#"{"type":"sync","game":"g1","since":3}"#,
            r#"{"type":"lobby","watch":true}"#,
            r#"{"type":"quick_match"}"#,
            r#"{"type":"cancel_match"}"#,
            r#"{"type":"peek","game":"g1"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"profile_create"}"#,
            r#"{"type":"profile"}"#,
            r#"{"type":"profile_code"}"#,
            r#"{"type":"recover","code":"7K3M-Q9TX-2HDA-W4RB-8NCE"}"#,
            r#"{"type":"profile_delete"}"#,
            r#"{"type":"leaderboard"}"#,
        ];
        assert_eq!(samples.len(), CLIENT_TYPES.len());
        for s in samples {
            assert!(parse_client(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn malformed_frames_get_distinct_codes_and_keep_req() {
        let cases = [
            ("{not json", ErrorCode::BadJson, None),
            ("[1,2]", ErrorCode::BadJson, None),
            (r#"{"req":4}"#, ErrorCode::BadRequest, Some(4)),
            (r#"{"type":"fly","req":5}"#, ErrorCode::UnknownType, Some(5)),
            (
                r#"{"type":"move","req":6,"game":"g"}"#,
                ErrorCode::BadRequest,
                Some(6),
            ),
            (
                r#"{"type":"move","req":7,"game":"g","cell":"4"}"#,
                ErrorCode::BadRequest,
                Some(7),
            ),
            (
                r#"{"type":"join","req":8,"game":"a}b"}"#,
                ErrorCode::BadRequest,
                Some(8),
            ),
        ];
        for (text, code, req) in cases {
            let e = parse_client(text).unwrap_err();
            assert_eq!((e.code, e.req), (code, req), "{text}: {}", e.message);
        }
    }

    #[test]
    fn a_repeated_key_is_refused_as_bad_json() {
        for text in [
            r#"{"type":"ping","type":"create"}"#,
            r#"{"type":"create","type":"create"}"#,
            r#"{"type":"move","req":1,"game":"g","cell":4,"cell":5}"#,
            r#"{"type":"hello","resume":[{"game":"g","version":1,"version":2}]}"#,
            r#"{"req":1,"type":"create","req":2}"#,
        ] {
            let e = parse_client(text).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadJson, "{text}: {}", e.message);
        }
        // The request id is kept when it is not the repeated key itself.
        let e = parse_client(r#"{"type":"ping","req":3,"type":"create"}"#).unwrap_err();
        assert_eq!((e.code, e.req), (ErrorCode::BadJson, Some(3)));
        assert_eq!(repeated_key(r#"{"a":{"b":1},"c":{"b":2}}"#), None);
        assert_eq!(repeated_key(r#"[{"a":1,"a":2}]"#).as_deref(), Some("a"));
    }

    #[test]
    fn out_of_range_cells_parse_so_the_rules_can_name_the_error() {
        let m = parse_client(r#"{"type":"move","game":"g","cell":42}"#).unwrap();
        assert!(matches!(m, ClientMsg::Move { cell: 42, .. }));
    }

    /// Valid frames of every type, the seeds of the mutation tests.
    const SEEDS: &[&str] = &[
        r#"{"type":"hello","req":1,"token":"abc","name":"Ann","resume":[{"game":"g1","version":3}]}"#,
        r#"{"type":"create","req":2}"#,
        r#"{"type":"join","req":3,"game":"g1","spectate":true}"#,
        r#"{"type":"leave","req":4,"game":"g1"}"#,
        r#"{"type":"move","req":5,"game":"g1","cell":4,"mid":"m-1","version":7}"#,
        r#"{"type":"resign","req":6,"game":"g1"}"#,
        r#"{"type":"rematch","req":7,"game":"g1"}"#,
        r#"{"type":"chat","req":8,"game":"g1","text":"hi"}"#,
        r#"{"type":"sync","req":9,"game":"g1","since":3}"#,
        r#"{"type":"lobby","req":10,"watch":true}"#,
        r#"{"type":"quick_match","req":11}"#,
        r#"{"type":"cancel_match","req":12}"#,
        r#"{"type":"ping","req":13}"#,
    ];

    /// One edit of a frame, as a fuzzer makes them.
    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(usize, u8),
        Truncate(usize),
        Insert(usize, char),
        Delete(usize, usize),
        /// Repeat the `n`th `"key":` with another value.
        RepeatKey(usize, &'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<char>()).prop_map(|(i, c)| Mutation::Insert(i, c)),
            (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
            (
                any::<usize>(),
                prop::sample::select(&[r#""create""#, "1", "null", "[]", "{}", r#""g2""#][..])
            )
                .prop_map(|(i, v)| Mutation::RepeatKey(i, v)),
        ]
    }

    fn apply(frame: &str, m: &Mutation) -> String {
        let mut bytes = frame.as_bytes().to_vec();
        match *m {
            Mutation::Flip(i, b) => {
                let i = i % bytes.len();
                bytes[i] ^= b;
            }
            Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            Mutation::Insert(i, c) => {
                let i = i % (bytes.len() + 1);
                let mut buf = [0u8; 4];
                bytes.splice(i..i, c.encode_utf8(&mut buf).bytes());
            }
            Mutation::Delete(i, n) => {
                let i = i % bytes.len();
                bytes.drain(i..(i + n).min(bytes.len()));
            }
            Mutation::RepeatKey(n, value) => {
                // A key of the top-level object, repeated at its end with `value`.
                let Ok(serde_json::Value::Object(obj)) = serde_json::from_str(frame) else {
                    return frame.to_string();
                };
                let Some(key) = obj.keys().nth(n % obj.len().max(1)) else {
                    return frame.to_string();
                };
                let body = frame.trim_end().strip_suffix('}').unwrap_or(frame);
                return format!("{body},{}:{value}}}", serde_json::json!(key));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        /// Whatever arrives, the parser answers: a message, or one of the three parse errors.
        #[test]
        fn any_text_gets_a_message_or_a_typed_error(text in any::<String>()) {
            check_parse(&text)?;
        }

        #[test]
        fn json_like_text_gets_a_message_or_a_typed_error(
            text in r#"\{("(type|req|game|cell|text|resume|version)":("[a-z_0-9]{0,6}"|-?[0-9]{1,20}|true|null|\[\]|\{\}),?){0,6}\}"#,
        ) {
            check_parse(&text)?;
        }

        #[test]
        fn mutated_frames_get_a_message_or_a_typed_error(
            seed in prop::sample::select(SEEDS),
            edits in proptest::collection::vec(mutation(), 1..4),
        ) {
            let mut frame = seed.to_string();
            for m in &edits {
                if frame.is_empty() {
                    break;
                }
                frame = apply(&frame, m);
            }
            check_parse(&frame)?;
        }

        #[test]
        fn a_frame_with_a_repeated_key_is_bad_json(
            seed in prop::sample::select(SEEDS),
            nth in any::<usize>(),
            value in prop::sample::select(&[r#""create""#, "1", "null", r#""g2""#][..]),
        ) {
            let frame = apply(seed, &Mutation::RepeatKey(nth, value));
            let e = parse_client(&frame).unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::BadJson, "{}: {}", frame, e.message);
        }
    }

    /// A parse never panics; a message it accepts means the same once written out again.
    fn check_parse(text: &str) -> Result<(), TestCaseError> {
        match parse_client(text) {
            Ok(msg) => {
                let again = parse_client(&serde_json::to_string(&msg).unwrap());
                prop_assert_eq!(again.as_ref().ok(), Some(&msg), "{}", text);
            }
            Err(e) => {
                prop_assert!(
                    matches!(
                        e.code,
                        ErrorCode::BadJson | ErrorCode::BadRequest | ErrorCode::UnknownType
                    ),
                    "{text}: {e:?}"
                );
                prop_assert!(e.message.chars().count() < 400, "{}", e.message);
            }
        }
        Ok(())
    }
}
