//! The store's records as the protocol shows them: the operations speak the protocol to
//! connections, the store keeps its own forms.

use crate::store::{Absence, ChatRecord, LobbyRecord, PresenceRecord};
use tictactoe_protocol::{Away, ChatLine, LobbyGame, Presence};
use tictactoe_rules::Seats;

impl From<LobbyRecord> for LobbyGame {
    fn from(r: LobbyRecord) -> LobbyGame {
        LobbyGame {
            game: r.game,
            status: r.status,
            players: r.players,
            round: r.round,
            rated: r.rated,
            ratings: r.ratings,
        }
    }
}

impl From<ChatRecord> for ChatLine {
    fn from(r: ChatRecord) -> ChatLine {
        ChatLine {
            id: r.id,
            from: r.from,
            role: r.role,
            text: r.text,
            ts: r.ts,
        }
    }
}

fn away(a: Option<Absence>) -> Option<Away> {
    a.map(|a| Away {
        reason: a.reason,
        for_ms: a.for_ms,
    })
}

impl From<PresenceRecord> for Presence {
    fn from(r: PresenceRecord) -> Presence {
        Presence {
            players: r.players,
            spectators: r.spectators,
            away: Seats {
                x: away(r.away.x),
                o: away(r.away.o),
            },
        }
    }
}

/// Chat lines as the protocol shows them.
pub fn chat_lines(records: Vec<ChatRecord>) -> Vec<ChatLine> {
    records.into_iter().map(ChatLine::from).collect()
}

/// Lobby entries as the protocol shows them.
pub fn lobby_games(records: Vec<LobbyRecord>) -> Vec<LobbyGame> {
    records.into_iter().map(LobbyGame::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tictactoe_protocol::AwayReason;

    #[test]
    fn a_presence_record_renders_as_its_protocol_message() {
        let record = PresenceRecord {
            players: Seats { x: true, o: false },
            spectators: 3,
            away: Seats {
                x: None,
                o: Some(Absence {
                    reason: AwayReason::Disconnected,
                    for_ms: 1500,
                }),
            },
        };
        let game = tictactoe_protocol::ids::GameId::try_from("g1".to_string()).unwrap();
        let template = tictactoe_protocol::templates::PresenceTemplate::new(&game);
        let msg = tictactoe_protocol::ServerMsg::Presence {
            game,
            presence: Presence::from(record.clone()),
        };
        assert_eq!(record.render(&template), msg.to_json());
    }
}
