//! Channel events the store completes: rendered here except for the values that exist only
//! once the store has acted (a chat line's stream id and time, a game's presence after a
//! change).
//!
//! Why templates and not whole messages: the store publishes these events inside the atomic
//! step that produces those values, in one Redis round trip. Rendering them whole would need
//! the values first (a second round trip, and a window in which another change slips in), or
//! a store that knows the message layout. So the instance renders every byte it can and the
//! store only joins the pieces with its values, in Lua or in memory alike. The tests hold each
//! template to the [`ServerMsg`] rendering, so what is published stays exactly what
//! `docs/protocol.md` documents.
//!
//! [`ServerMsg`]: crate::ServerMsg

use crate::ids::GameId;
use crate::{Away, AwayReason, Presence, Role};

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Strings and unit enums always serialize.
    serde_json::to_string(value).expect("a string or a role always serializes")
}

/// A `chat` event waiting for its line's stream id and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTemplate {
    /// Before the id, between the id and the time, after the time.
    pieces: [String; 3],
}

impl ChatTemplate {
    pub fn new(game: Option<&GameId>, from: &str, role: Option<Role>, text: &str) -> Self {
        let mut head = String::from(r#"{"type":"chat""#);
        if let Some(game) = game {
            head.push_str(r#","game":"#);
            head.push_str(&json(game));
        }
        // Stream ids are digits and a dash: they need quotes, never escaping.
        head.push_str(r#","id":""#);
        let mut middle = String::from(r#"","from":"#);
        middle.push_str(&json(from));
        if let Some(role) = role {
            middle.push_str(r#","role":"#);
            middle.push_str(&json(&role));
        }
        middle.push_str(r#","text":"#);
        middle.push_str(&json(text));
        middle.push_str(r#","ts":"#);
        ChatTemplate {
            pieces: [head, middle, "}".into()],
        }
    }

    /// The pieces the line's id and time go between, in that order.
    pub fn pieces(&self) -> [&str; 3] {
        self.pieces.each_ref().map(String::as_str)
    }

    pub fn fill(&self, id: &str, ts: u64) -> String {
        let [head, middle, tail] = self.pieces();
        format!("{head}{id}{middle}{ts}{tail}")
    }
}

/// A value of a game's presence that only the store knows after a change, by name: where each
/// goes in the message is the template's business, not the store's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceSlot {
    /// Whether X's player is connected: `true` or `false`.
    XPresent,
    OPresent,
    /// Spectators, a decimal.
    Spectators,
    /// X's absence, written with [`AWAY_PIECES`].
    XAway,
    OAway,
}

impl PresenceSlot {
    /// The slot's name, as the store's script fills it.
    pub fn name(self) -> &'static str {
        match self {
            PresenceSlot::XPresent => "x",
            PresenceSlot::OPresent => "o",
            PresenceSlot::Spectators => "n",
            PresenceSlot::XAway => "xa",
            PresenceSlot::OAway => "oa",
        }
    }
}

/// One part of a template: text as it is, or a slot the store fills.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(PresenceSlot),
}

/// A `presence` event waiting for the game's presence after a change: text and named slots,
/// in the message's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceTemplate {
    parts: Vec<Part>,
}

/// How an absence is written: `null` for none; else the opening for its reason (`left`,
/// `disconnected`), the milliseconds, and the close.
pub const AWAY_PIECES: [&str; 4] = [
    "null",
    r#"{"reason":"left","for_ms":"#,
    r#"{"reason":"disconnected","for_ms":"#,
    "}",
];

/// One seat's absence as the presence event writes it.
pub fn away_json(away: Option<Away>) -> String {
    let [none, left, disconnected, close] = AWAY_PIECES;
    match away {
        None => none.to_string(),
        Some(a) => {
            let open = match a.reason {
                AwayReason::Left => left,
                AwayReason::Disconnected => disconnected,
            };
            format!("{open}{}{close}", a.for_ms)
        }
    }
}

impl PresenceTemplate {
    pub fn new(game: &GameId) -> Self {
        use PresenceSlot::*;
        let text = |t: &str| Part::Text(t.to_string());
        PresenceTemplate {
            parts: vec![
                Part::Text(format!(
                    r#"{{"type":"presence","game":{},"players":{{"X":"#,
                    json(game)
                )),
                Part::Slot(XPresent),
                text(r#","O":"#),
                Part::Slot(OPresent),
                text(r#"},"spectators":"#),
                Part::Slot(Spectators),
                text(r#","away":{"X":"#),
                Part::Slot(XAway),
                text(r#","O":"#),
                Part::Slot(OAway),
                text("}}"),
            ],
        }
    }

    /// The template as a script's arguments, in order: text as `=` and the text, a slot as
    /// `$` and its name.
    pub fn args(&self) -> impl Iterator<Item = String> + '_ {
        self.parts.iter().map(|p| match p {
            Part::Text(t) => format!("={t}"),
            Part::Slot(s) => format!("${}", s.name()),
        })
    }

    /// The message, with each slot's value from `value`.
    pub fn fill_with(&self, value: impl Fn(PresenceSlot) -> String) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Slot(s) => value(*s),
            })
            .collect()
    }

    /// The message for `presence`.
    pub fn fill(&self, presence: &Presence) -> String {
        self.fill_with(|slot| match slot {
            PresenceSlot::XPresent => presence.players.x.to_string(),
            PresenceSlot::OPresent => presence.players.o.to_string(),
            PresenceSlot::Spectators => presence.spectators.to_string(),
            PresenceSlot::XAway => away_json(presence.away.x),
            PresenceSlot::OAway => away_json(presence.away.o),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatLine, ServerMsg};
    use proptest::prelude::*;
    use tictactoe_rules::Seats;

    fn role() -> impl Strategy<Value = Option<Role>> {
        prop_oneof![
            Just(None),
            Just(Some(Role::X)),
            Just(Some(Role::O)),
            Just(Some(Role::Spectator)),
        ]
    }

    fn away() -> impl Strategy<Value = Option<Away>> {
        let reason = prop_oneof![Just(AwayReason::Left), Just(AwayReason::Disconnected)];
        proptest::option::of(
            (reason, any::<u64>()).prop_map(|(reason, for_ms)| Away { reason, for_ms }),
        )
    }

    proptest! {
        #[test]
        fn a_filled_chat_template_is_the_chat_message(
            game in proptest::option::of("[A-Za-z0-9_-]{1,32}"),
            from in any::<String>(),
            role in role(),
            text in any::<String>(),
            id in "[0-9]{1,13}-[0-9]{1,4}",
            ts in any::<u64>(),
        ) {
            let game = game.map(|g| GameId::try_from(g).unwrap());
            let template = ChatTemplate::new(game.as_ref(), &from, role, &text);
            let msg = ServerMsg::Chat {
                game,
                line: ChatLine { id: id.clone(), from, role, text, ts },
            };
            prop_assert_eq!(template.fill(&id, ts), msg.to_json());
        }

        #[test]
        fn a_filled_presence_template_is_the_presence_message(
            game in "[A-Za-z0-9_-]{1,32}",
            x in any::<bool>(),
            o in any::<bool>(),
            spectators in any::<u32>(),
            away_x in away(),
            away_o in away(),
        ) {
            let game = GameId::try_from(game).unwrap();
            let presence = Presence {
                players: Seats { x, o },
                spectators,
                away: Seats { x: away_x, o: away_o },
            };
            let msg = ServerMsg::Presence { game: game.clone(), presence: presence.clone() };
            prop_assert_eq!(PresenceTemplate::new(&game).fill(&presence), msg.to_json());
        }

        #[test]
        fn a_template_as_script_arguments_fills_to_the_same_message(
            game in "[A-Za-z0-9_-]{1,32}",
            x in any::<bool>(),
            spectators in any::<u32>(),
        ) {
            // What presence.lua does with the arguments, by slot name.
            let game = GameId::try_from(game).unwrap();
            let template = PresenceTemplate::new(&game);
            let presence = Presence { players: Seats { x, o: !x }, spectators, away: Seats::default() };
            let value = |name: &str| match name {
                "x" => x.to_string(),
                "o" => (!x).to_string(),
                "n" => spectators.to_string(),
                "xa" | "oa" => "null".to_string(),
                other => panic!("unknown slot {other}"),
            };
            let filled: String = template
                .args()
                .map(|a| match a.strip_prefix('$') {
                    Some(name) => value(name),
                    None => a.strip_prefix('=').unwrap().to_string(),
                })
                .collect();
            prop_assert_eq!(filled, template.fill(&presence));
        }
    }
}
