//! The Redis store, on one Redis, a replicated Redis behind Sentinel or a Redis Cluster. Each
//! operation is one Lua script (or one command), hence one round trip; every script touches
//! the keys of a single hash slot.
//!
//! `link` owns the command link (timeouts, reconnects, error classes), `sentinel` the links
//! that follow a primary through Sentinel failovers, `scripts` the Lua scripts and how a call
//! to one runs, `durable` the writes acknowledged only once replicas have them
//! (REDIS_WAIT_REPLICAS), `decode` turns script replies into store records, and one file per
//! area of the [`Store`] trait holds its operations: `games`, `sessions`, `chat`, `presence`
//! (with instance leases), `lobby`, `waiting` (games awaiting an opponent, per player),
//! `matching` (quick match), `deadlines` and `profiles` (with the leaderboard). Pub/sub rides
//! on the command link on one Redis and behind Sentinel ([`LinkBus`], RESP3 pushes), and has
//! a link of its own on a cluster ([`ClusterBus`], sharded).

mod chat;
mod deadlines;
mod decode;
mod durable;
mod games;
mod link;
mod link_bus;
mod lobby;
mod matching;
mod presence;
mod profiles;
mod scripts;
mod sentinel;
mod sessions;
mod sharded_bus;
mod waiting;

pub use link_bus::LinkBus;
pub use sentinel::PrimaryAuth;
pub use sharded_bus::ClusterBus;

use crate::ratelimit::{Decision, Rule};
use crate::session::TokenHash;
use crate::store::{Appended, Author, ChatRecord, Creation, LobbyRecord, PresenceRecord};
use crate::store::{
    Applied, Attendance, Bus, Hold, Keys, LeaseRenewal, LobbyOwner, LobbyShare, Missed,
    OpenSession, PresenceChange, PresenceEntry, PresenceEvent, SeatsView, SessionRecord, Store,
    StoreError, StoreLimits, StoreResult, StoredGame, Ticket, Transition,
};
use async_trait::async_trait;
use bytes::Bytes;
use durable::Durable;
use link::Link;
use scripts::SCRIPTS;
use std::sync::Arc;
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::{ChatTemplate, PresenceTemplate};
use tictactoe_rules::{GameState, Seats};

pub struct RedisStore {
    keys: Keys,
    limits: StoreLimits,
    link: Arc<Link>,
    bus: Arc<dyn Bus>,
    /// Bounds every call: an outage becomes [`StoreError::Unavailable`] within it, not a hang.
    op_timeout: Duration,
    /// Set with REDIS_WAIT_REPLICAS: game changes are acknowledged only once replicas have
    /// them.
    durable: Option<Durable>,
    /// When Redis last answered a command of this store.
    answered: link::Answered,
    timings: link::Timings,
}

#[async_trait]
impl Store for RedisStore {
    fn last_answer(&self) -> Option<std::time::Instant> {
        Some(self.answered.last())
    }

    fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn ping(&self) -> StoreResult<()> {
        let _: String = self.query("ping", &::redis::cmd("PING")).await?;
        Ok(())
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> StoreResult<()> {
        let _: i64 = self
            .query(
                "publish",
                ::redis::cmd(self.publish_cmd())
                    .arg(channel)
                    .arg(payload.as_ref()),
            )
            .await?;
        Ok(())
    }

    fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    async fn create_session(
        &self,
        token: &TokenHash,
        record: &SessionRecord,
        ttl: Duration,
    ) -> StoreResult<()> {
        sessions::create(self, token, record, ttl).await
    }

    async fn open_session(
        &self,
        token: &TokenHash,
        rename: Option<&str>,
        ttl: Duration,
    ) -> StoreResult<Option<OpenSession>> {
        sessions::open(self, token, rename, ttl).await
    }

    async fn remember_game(
        &self,
        token: &TokenHash,
        game: &GameId,
        ttl: Duration,
    ) -> StoreResult<()> {
        sessions::remember_game(self, token, game, ttl).await
    }

    async fn forget_game(&self, token: &TokenHash, game: &GameId) -> StoreResult<()> {
        sessions::forget_game(self, token, game).await
    }

    async fn create_game(
        &self,
        game: &GameId,
        seats: &Seats<Option<PlayerId>>,
        state: &GameState,
        event: Bytes,
        ttl: Duration,
        cid: Option<&str>,
    ) -> StoreResult<Creation> {
        games::create(self, game, seats, state, event, ttl, cid).await
    }

    async fn load_game(&self, game: &GameId) -> StoreResult<Option<StoredGame>> {
        games::load(self, game).await
    }

    async fn transition(&self, t: &Transition<'_>) -> StoreResult<Applied> {
        games::transition(self, t).await
    }

    fn lobby_with_transitions(&self) -> bool {
        // On a cluster the lobby has a slot of its own; with WAIT the transition's
        // announcements wait for the replicas, and the lobby's would not.
        self.durable.is_none() && !self.link.is_cluster()
    }

    async fn events_since(&self, game: &GameId, since: u64) -> StoreResult<Missed> {
        games::events_since(self, game, since).await
    }

    async fn applied_move(
        &self,
        game: &GameId,
        player: &PlayerId,
        mid: &str,
    ) -> StoreResult<Option<u64>> {
        games::applied_move(self, game, player, mid).await
    }

    async fn publish_confirmed(
        &self,
        game: &GameId,
        version: u64,
        event: Bytes,
    ) -> StoreResult<bool> {
        games::publish_confirmed(self, game, version, event).await
    }

    async fn append_chat(
        &self,
        game: Option<&GameId>,
        author: &Author<'_>,
        text: &str,
        lid: Option<&str>,
        event: &ChatTemplate,
        ttl: Duration,
    ) -> StoreResult<Appended> {
        chat::append(self, game, author, text, lid, event, ttl).await
    }

    async fn recent_chat(&self, game: Option<&GameId>, n: usize) -> StoreResult<Vec<ChatRecord>> {
        chat::recent(self, game, n).await
    }

    async fn chat_line_of(
        &self,
        game: Option<&GameId>,
        player: &PlayerId,
        lid: &str,
    ) -> StoreResult<Option<String>> {
        chat::line_of(self, game, player, lid).await
    }

    async fn rate(&self, key: &str, rule: Rule) -> StoreResult<Decision> {
        let mut inv = SCRIPTS.rate.prepare_invoke();
        inv.key(key).arg(rule.interval_us).arg(rule.tolerance_us());
        let v: Vec<u64> = self.invoke("rate", &inv).await?;
        match v.as_slice() {
            [1, _] => Ok(Decision::Allow { new_tat: 0 }),
            [0, retry] => Ok(Decision::Deny {
                retry_after_us: *retry,
            }),
            other => Err(decode::corrupt("rate", other)),
        }
    }

    async fn rate_refund(&self, key: &str, rule: Rule) -> StoreResult<()> {
        let mut inv = SCRIPTS.rate.prepare_invoke();
        inv.key(key)
            .arg(rule.interval_us)
            .arg(rule.tolerance_us())
            .arg("refund");
        let _: Vec<u64> = self.invoke("rate_refund", &inv).await?;
        Ok(())
    }

    async fn presence_change(
        &self,
        game: &GameId,
        entry: &PresenceEntry<'_>,
        change: Attendance,
        event: &PresenceTemplate,
        ttl: Duration,
    ) -> StoreResult<PresenceChange> {
        presence::change(self, game, entry, change, event, ttl).await
    }

    async fn presence(&self, game: &GameId) -> StoreResult<PresenceRecord> {
        presence::read(self, game).await
    }

    async fn inspect_seats(&self, game: &GameId) -> StoreResult<Option<SeatsView>> {
        presence::inspect_seats(self, game).await
    }

    async fn renew_lease(&self, lease: &str, ttl: Duration) -> StoreResult<LeaseRenewal> {
        presence::renew_lease(self, lease, ttl).await
    }

    async fn claim_lapsed_leases(&self, claim_ttl: Duration) -> StoreResult<Vec<String>> {
        presence::claim_lapsed_leases(self, claim_ttl).await
    }

    async fn sweep_lease(
        &self,
        lease: &str,
        ttl: Duration,
        event: PresenceEvent,
    ) -> StoreResult<Vec<(GameId, Seats<bool>)>> {
        presence::sweep_lease(self, lease, ttl, event).await
    }

    async fn hold_waiting(
        &self,
        player: &PlayerId,
        game: &GameId,
        cap: usize,
        ttl: Duration,
    ) -> StoreResult<Hold> {
        waiting::hold_waiting(self, player, game, cap, ttl).await
    }

    async fn release_waiting(&self, player: &PlayerId, game: &GameId) -> StoreResult<()> {
        waiting::release_waiting(self, player, game).await
    }

    async fn lobby_update(
        &self,
        entry: &LobbyRecord,
        owner: Option<LobbyOwner<'_>>,
        event: Bytes,
    ) -> StoreResult<()> {
        lobby::update(self, entry, owner, event).await
    }

    async fn lobby_list(
        &self,
        max: usize,
        share: LobbyShare,
        ttl: Duration,
    ) -> StoreResult<(Vec<LobbyRecord>, Vec<LobbyRecord>)> {
        lobby::list(self, max, share, ttl).await
    }

    async fn match_enqueue(&self, ticket: &Ticket, fresh: Duration) -> StoreResult<Option<Ticket>> {
        matching::match_enqueue(self, ticket, fresh).await
    }

    async fn match_cancel(&self, player: &PlayerId) -> StoreResult<bool> {
        matching::match_cancel(self, player).await
    }

    async fn match_queued(&self, player: &PlayerId, fresh: Duration) -> StoreResult<bool> {
        matching::match_queued(self, player, fresh).await
    }

    async fn match_rename(&self, player: &PlayerId, name: &str) -> StoreResult<bool> {
        matching::match_rename(self, player, name).await
    }

    async fn match_refresh(
        &self,
        players: &[PlayerId],
        fresh: Duration,
    ) -> StoreResult<Vec<PlayerId>> {
        matching::match_refresh(self, players, fresh).await
    }

    async fn set_deadline(&self, game: &GameId, at_ms: u64) -> StoreResult<()> {
        deadlines::set(self, game, at_ms).await
    }

    async fn set_match_clock(&self, game: &GameId, at_ms: u64) -> StoreResult<()> {
        deadlines::set_match(self, game, at_ms).await
    }

    async fn clear_match_clock(&self, game: &GameId) -> StoreResult<()> {
        deadlines::clear_match(self, game).await
    }

    async fn due_deadlines(&self, max: usize) -> StoreResult<(u64, Vec<(GameId, u64)>)> {
        deadlines::due(self, max).await
    }

    async fn settle_deadline(
        &self,
        game: &GameId,
        due: u64,
        next: Option<u64>,
    ) -> StoreResult<bool> {
        deadlines::settle(self, game, due, next).await
    }
}
