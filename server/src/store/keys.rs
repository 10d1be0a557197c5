//! Redis key and channel names, in one place. `docs/redis.md` documents each of them.
//!
//! Everything about one game shares the hash tag `{<game id>}`, so a game's scripts touch one
//! slot and run unchanged on Redis Cluster. Global indexes have hash tags of their own.

use crate::session::TokenHash;
use tictactoe_protocol::channels::Channels;
use tictactoe_protocol::ids::{GameId, PlayerId};

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    channels: Channels,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Keys {
        let prefix = prefix.into();
        Keys {
            channels: Channels::new(prefix.clone()),
            prefix,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Hash: `v` version, `s` state JSON, `x`/`o` player ids of the seats; per player who
    /// moved, `m:<player>` recent move ids and `r:<player>` move budget; `e`/`t` when and for
    /// how long the game's lifetimes were last set (see transition.lua).
    pub fn game(&self, g: &GameId) -> String {
        format!("{}game:{{{g}}}", self.prefix)
    }

    /// Stream of the game's events; entry id `0-<version>`, field `e` the event JSON.
    pub fn game_log(&self, g: &GameId) -> String {
        format!("{}game:{{{g}}}:log", self.prefix)
    }

    /// Stream of chat lines.
    pub fn game_chat(&self, g: &GameId) -> String {
        format!("{}game:{{{g}}}:chat", self.prefix)
    }

    /// String: the stream id of the chat line `player` sent with the client line id whose
    /// hex is `lid_hex`, in a game or (`None`) the lobby. Beside the chat stream in its slot,
    /// so that chat.lua records it in the step that adds the line.
    pub fn chat_line_id(&self, g: Option<&GameId>, player: &PlayerId, lid_hex: &str) -> String {
        match g {
            Some(g) => format!("{}game:{{{g}}}:lid:{player}:{lid_hex}", self.prefix),
            None => format!("{}{{lobby}}:lid:{player}:{lid_hex}", self.prefix),
        }
    }

    /// Hash of who is connected: field `<lease>|<player>|<role>`, value a connection count.
    pub fn game_presence(&self, g: &GameId) -> String {
        format!("{}game:{{{g}}}:presence", self.prefix)
    }

    /// The game's pub/sub channel: every event, chat line and presence change, as JSON.
    pub fn game_channel(&self, g: &GameId) -> String {
        self.channels.game(g)
    }

    /// Hash: `player`, `name`.
    pub fn session(&self, t: &TokenHash) -> String {
        format!("{}session:{{{}}}", self.prefix, t.as_str())
    }

    /// Sorted set of the session's games, scored by when it last joined them.
    pub fn session_games(&self, t: &TokenHash) -> String {
        format!("{}session:{{{}}}:games", self.prefix, t.as_str())
    }

    /// A rate-limit bucket that is not per game: `scope` names the rule and its subject.
    pub fn rate(&self, scope: &str, subject: &str) -> String {
        format!("{}rl:{scope}:{{{subject}}}", self.prefix)
    }

    pub fn lobby_open(&self) -> String {
        format!("{}{{lobby}}:open", self.prefix)
    }

    pub fn lobby_live(&self) -> String {
        format!("{}{{lobby}}:live", self.prefix)
    }

    /// Hash: game id -> lobby entry JSON.
    pub fn lobby_info(&self) -> String {
        format!("{}{{lobby}}:info", self.prefix)
    }

    /// Hash: open game id -> the player who opened it (the lobby shows a few per player).
    pub fn lobby_owners(&self) -> String {
        format!("{}{{lobby}}:owner", self.prefix)
    }

    /// Sorted set of a player's games waiting for an opponent, scored by when each was held.
    pub fn player_waiting(&self, p: &PlayerId) -> String {
        format!("{}player:{{{p}}}:waiting", self.prefix)
    }

    pub fn lobby_chat(&self) -> String {
        format!("{}{{lobby}}:chat", self.prefix)
    }

    pub fn lobby_channel(&self) -> String {
        self.channels.lobby()
    }

    /// Sorted set of waiting quick-match tickets, scored by their last refresh (ms).
    pub fn match_queue(&self) -> String {
        format!("{}{{match}}:queue", self.prefix)
    }

    /// Hash: ticket -> ticket JSON.
    pub fn match_tickets(&self) -> String {
        format!("{}{{match}}:tickets", self.prefix)
    }

    /// Hash: ticket -> the waiting player's name now, when it was renamed after queueing.
    pub fn match_names(&self) -> String {
        format!("{}{{match}}:names", self.prefix)
    }

    /// Sorted set of players whose ticket was just paired, scored by when (ms).
    pub fn match_paired(&self) -> String {
        format!("{}{{match}}:paired", self.prefix)
    }

    /// Sorted set of live instance leases, scored by lease expiry (ms).
    pub fn instances(&self) -> String {
        format!("{}{{instances}}", self.prefix)
    }

    /// Sorted set of lapsed leases being swept, scored by when the sweeper's claim lapses (ms).
    /// Beside [`Keys::instances`] in one slot: a claim moves a lease from one to the other.
    pub fn lease_sweeps(&self) -> String {
        format!("{}{{instances}}:sweeps", self.prefix)
    }

    /// Set of games in which an instance lease holds presence entries.
    pub fn instance_games(&self, lease: &str) -> String {
        format!("{}instance:{{{lease}}}:games", self.prefix)
    }

    /// Channel for messages addressed to one instance (quick-match results, readiness probes).
    pub fn instance_channel(&self, lease: &str) -> String {
        format!("{}instance:{{{lease}}}", self.prefix)
    }

    /// Sorted set of game ids scored by the time a deadline (forfeit, match start) falls due.
    pub fn deadlines(&self) -> String {
        format!("{}{{deadlines}}", self.prefix)
    }

    /// Hash of a player's profile (see `store::profiles`). Every profile key shares the tag
    /// `{profiles}`: recording a round touches two profiles, two histories and the board
    /// in one script.
    pub fn profile(&self, p: &PlayerId) -> String {
        format!("{}{{profiles}}:p:{p}", self.prefix)
    }

    /// What a profile key starts with, for the leaderboard script, which reads the profiles
    /// of the players it lists (same slot).
    pub fn profile_prefix(&self) -> String {
        format!("{}{{profiles}}:p:", self.prefix)
    }

    /// List of a profile's last finished rounds (JSON), newest first.
    pub fn profile_history(&self, p: &PlayerId) -> String {
        format!("{}{{profiles}}:h:{p}", self.prefix)
    }

    /// Hash: SHA-256 hex of a recovery code -> player.
    pub fn profile_codes(&self) -> String {
        format!("{}{{profiles}}:codes", self.prefix)
    }

    /// String: the deployment's secret for hashing client addresses on profiles (see
    /// `ProfileStore::address_salt`).
    pub fn address_salt(&self) -> String {
        format!("{}{{profiles}}:salt", self.prefix)
    }

    /// Sorted set: player -> rating, for profiles with at least one rated round.
    pub fn leaderboard(&self) -> String {
        format!("{}{{profiles}}:board", self.prefix)
    }

    /// String: the board's version, bumped whenever a row the leaderboard shows changes (a
    /// rating, a count, a name, a profile gone), so that instances can keep its top rows.
    pub fn board_version(&self) -> String {
        format!("{}{{profiles}}:board:v", self.prefix)
    }

    /// String with a lifetime: this round of this game is recorded in the profiles.
    pub fn round_recorded(&self, g: &GameId, round: u32) -> String {
        format!("{}{{profiles}}:done:{g}:{round}", self.prefix)
    }

    /// The game id in a game channel name, if it is one.
    pub fn game_of_channel(&self, channel: &str) -> Option<GameId> {
        self.channels.game_of(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster hashes only the part between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn all_of_a_games_keys_and_its_channel_share_one_hash_tag() {
        let k = Keys::new("ttt:");
        let g = GameId::try_from("k3n8vq2xhd".to_string()).unwrap();
        for key in [
            k.game(&g),
            k.game_log(&g),
            k.game_chat(&g),
            k.game_presence(&g),
            k.game_channel(&g),
            k.chat_line_id(Some(&g), &PlayerId::generate(), "6869"),
        ] {
            assert_eq!(hash_tag(&key), "k3n8vq2xhd", "{key}");
        }
        assert_eq!(k.game_of_channel(&k.game_channel(&g)), Some(g));
        assert_eq!(k.game_of_channel("ttt:{lobby}:events"), None);
    }

    #[test]
    fn global_indexes_have_their_own_tags() {
        let k = Keys::new("t1:");
        assert_eq!(hash_tag(&k.lobby_open()), "lobby");
        assert_eq!(hash_tag(&k.lobby_live()), "lobby");
        assert_eq!(hash_tag(&k.match_queue()), "match");
        assert_eq!(hash_tag(&k.match_paired()), "match");
        assert_eq!(hash_tag(&k.match_tickets()), "match");
        assert_eq!(hash_tag(&k.match_names()), "match");
        assert_eq!(
            hash_tag(&k.chat_line_id(None, &PlayerId::generate(), "6869")),
            "lobby"
        );
        assert_eq!(hash_tag(&k.rate("ip-conn", "10.0.0.1")), "10.0.0.1");
    }

    #[test]
    fn every_profile_key_shares_one_slot() {
        let k = Keys::new("t1:");
        let p = PlayerId::generate();
        let g = GameId::try_from("k3n8vq2xhd".to_string()).unwrap();
        for key in [
            k.profile(&p),
            k.profile_history(&p),
            k.profile_codes(),
            k.leaderboard(),
            k.round_recorded(&g, 3),
        ] {
            assert_eq!(hash_tag(&key), "profiles", "{key}");
        }
        assert!(k.profile(&p).starts_with(&k.profile_prefix()));
        // docs/redis.md names the slot: CRC16/XMODEM of the tag, modulo 16384.
        assert_eq!(crc16_xmodem(b"profiles") % 16384, PROFILES_SLOT);
    }

    /// The slot docs/redis.md gives for `{profiles}`.
    const PROFILES_SLOT: u16 = 9288;

    /// Redis Cluster's key hash (CRC16, XMODEM variant: polynomial 0x1021, initial 0).
    fn crc16_xmodem(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn the_key_hash_is_redis_clusters() {
        // Redis Cluster specification's check value: CRC16("123456789") = 0x31C3.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    }
}
