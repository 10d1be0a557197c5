//! The public Redis channels: where every game's events and the lobby's are published, so
//! that instances, the monitor and `redis-cli SUBSCRIBE` agree on their names.
//!
//! A game's channel carries its hash tag `{<game id>}`, like every key of the game, so that on
//! Redis Cluster it is a sharded channel of the game's own slot.

use crate::ids::GameId;

/// Channel names under one deployment's key prefix.
#[derive(Clone, Debug)]
pub struct Channels {
    prefix: String,
}

impl Channels {
    pub fn new(prefix: impl Into<String>) -> Channels {
        Channels {
            prefix: prefix.into(),
        }
    }

    /// Every event, chat line and presence change of one game, as JSON.
    pub fn game(&self, g: &GameId) -> String {
        format!("{}game:{{{g}}}:events", self.prefix)
    }

    /// Games opening and filling, and the lobby's chat.
    pub fn lobby(&self) -> String {
        format!("{}{{lobby}}:events", self.prefix)
    }

    /// What `PSUBSCRIBE` takes to follow every game (not on a cluster: sharded channels
    /// have no patterns).
    pub fn every_game(&self) -> String {
        format!("{}game:*:events", self.prefix)
    }

    /// The game id in a game channel name, if it is one.
    pub fn game_of(&self, channel: &str) -> Option<GameId> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix("game:{")?;
        let id = rest.strip_suffix("}:events")?;
        GameId::try_from(id.to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_channel_names_its_game_and_nothing_else_does() {
        let c = Channels::new("ttt:");
        let g = GameId::try_from("k3n8vq2xhd".to_string()).unwrap();
        assert_eq!(c.game(&g), "ttt:game:{k3n8vq2xhd}:events");
        assert_eq!(c.game_of(&c.game(&g)), Some(g));
        assert_eq!(c.game_of(&c.lobby()), None);
        assert_eq!(c.game_of("other:game:{k3n8vq2xhd}:events"), None);
    }
}
