//! Profiles, their histories, recovery codes and the leaderboard: `profile.lua` for one
//! profile, `record_round.lua` for a finished round, `leaderboard.lua` for the board. All in
//! the `{profiles}` slot.

use super::decode::{corrupt, items, num, text, ttl_ms};
use super::scripts::script_cmd;
use super::{RedisStore, SCRIPTS};
use crate::store::profiles::{
    BoardRead, BoardRecord, ProfileCreation, ProfileRead, ProfileRecord, ProfileStore, Recorded,
    RoundRecord,
};
use crate::store::{StoreError, StoreResult};
use ::redis::{Cmd, Value};
use async_trait::async_trait;
use tictactoe_protocol::ids::PlayerId;
use tictactoe_protocol::profiles::RoundResult;
use tictactoe_rules::glicko2::Rating;

/// Fields of a profile hash in the order `profile.lua` returns them (its `FIELDS`).
const FIELDS: usize = 11;

impl RedisStore {
    /// A call of `profile.lua` in `mode` on `player`'s profile.
    fn profile_call(&self, mode: &str, player: &PlayerId) -> Cmd {
        let k = &self.keys;
        let mut call = script_cmd(
            &SCRIPTS.profile,
            &[
                &k.profile(player),
                &k.profile_history(player),
                &k.profile_codes(),
                &k.leaderboard(),
                &k.board_version(),
            ],
        );
        call.arg(mode).arg(player.as_str());
        call
    }

    async fn profile_script(&self, call: Cmd) -> StoreResult<Value> {
        self.run_script("profile", call, &SCRIPTS.profile).await
    }

    /// Runs a write that must survive a failover once acknowledged (a recovery code shown to
    /// a player, a recorded round): with REDIS_WAIT_REPLICAS, in one pipeline with its WAIT,
    /// and `Unavailable` unless the replicas confirmed it. An unconfirmed round is recorded
    /// again by whoever tries next (its deadline, a rematch): the marker decides, once.
    async fn durable_script(
        &self,
        op: &'static str,
        call: Cmd,
        script: &::redis::Script,
    ) -> StoreResult<Value> {
        match &self.durable {
            Some(durable) => self.durably_one(op, durable, call, &[script]).await,
            None => self.run_script(op, call, script).await,
        }
    }
}

fn flag(v: Value, what: &str) -> StoreResult<bool> {
    match v {
        Value::Int(1) => Ok(true),
        Value::Int(0) => Ok(false),
        other => Err(corrupt(what, other)),
    }
}

/// A profile hash's fields, as `profile.lua` lists them.
fn record(fields: &[Value]) -> StoreResult<ProfileRecord> {
    let f = |i: usize| -> StoreResult<String> {
        fields
            .get(i)
            .and_then(text)
            .ok_or_else(|| corrupt("profile field", fields))
    };
    Ok(ProfileRecord {
        name: f(0)?,
        rating: Rating {
            rating: num(&f(1)?, "rating")?,
            deviation: num(&f(2)?, "deviation")?,
            volatility: num(&f(3)?, "volatility")?,
        },
        wins: num(&f(4)?, "wins")?,
        draws: num(&f(5)?, "draws")?,
        losses: num(&f(6)?, "losses")?,
        rated_games: num(&f(7)?, "rated games")?,
        address: f(8)?,
        version: num(&f(9)?, "profile version")?,
        created_ms: num(&f(10)?, "created")?,
    })
}

fn maybe_record(v: Value) -> StoreResult<Option<ProfileRecord>> {
    let fields = items(v).ok_or_else(|| corrupt("profile", "not an array"))?;
    if fields.is_empty() {
        return Ok(None);
    }
    record(&fields).map(Some)
}

fn result_field(r: RoundResult) -> &'static str {
    match r {
        RoundResult::Win => "w",
        RoundResult::Draw => "dr",
        RoundResult::Loss => "l",
    }
}

fn board_row(rank: u32, v: &Value) -> StoreResult<BoardRecord> {
    let fields = items(v.clone()).ok_or_else(|| corrupt("board row", v))?;
    let f = |i: usize| fields.get(i).and_then(text).unwrap_or_default();
    Ok(BoardRecord {
        rank,
        name: f(0),
        rating: num(&f(1), "board rating")?,
        deviation: num(&f(2), "board deviation")?,
        wins: num(&f(3), "board wins")?,
        draws: num(&f(4), "board draws")?,
        losses: num(&f(5), "board losses")?,
    })
}

fn int(v: Option<&Value>, what: &str) -> StoreResult<i64> {
    match v {
        Some(Value::Int(i)) => Ok(*i),
        other => Err(corrupt(what, other)),
    }
}

#[async_trait]
impl ProfileStore for RedisStore {
    async fn profile_create(
        &self,
        player: &PlayerId,
        name: &str,
        address: &str,
        code_hash: &str,
    ) -> StoreResult<ProfileCreation> {
        let new = Rating::new_player();
        let mut call = self.profile_call("create", player);
        call.arg(name)
            .arg(address)
            .arg(code_hash)
            .arg(new.rating)
            .arg(new.deviation)
            .arg(new.volatility);
        let created = self
            .durable_script("profile", call, &SCRIPTS.profile)
            .await?;
        Ok(match flag(created, "profile create")? {
            true => ProfileCreation::Created,
            false => ProfileCreation::Existed,
        })
    }

    async fn profile_new_code(&self, player: &PlayerId, code_hash: &str) -> StoreResult<bool> {
        let mut call = self.profile_call("code", player);
        call.arg(code_hash);
        let replaced = self
            .durable_script("profile", call, &SCRIPTS.profile)
            .await?;
        flag(replaced, "profile code")
    }

    async fn profile_read(
        &self,
        player: &PlayerId,
        history: usize,
    ) -> StoreResult<Option<ProfileRead>> {
        let mut call = self.profile_call("read", player);
        call.arg(history);
        let reply = items(self.profile_script(call).await?)
            .ok_or_else(|| corrupt("profile read", "not an array"))?;
        if reply.is_empty() {
            return Ok(None);
        }
        let record = record(&reply)?;
        let rank = int(reply.get(FIELDS), "profile rank")?;
        let history = reply[FIELDS + 1..].iter().filter_map(text).collect();
        Ok(Some(ProfileRead {
            record,
            history,
            rank: u32::try_from(rank).ok().map(|r| r + 1),
        }))
    }

    async fn profile_records(
        &self,
        players: &[&PlayerId],
    ) -> StoreResult<Vec<Option<ProfileRecord>>> {
        let mut pipe = ::redis::pipe();
        for p in players {
            pipe.cmd("HMGET")
                .arg(self.keys.profile(p))
                .arg(&["name", "r", "d", "s", "w", "dr", "l", "g", "a", "v", "t"]);
        }
        let replies: Vec<Vec<Value>> = self.query_pipeline("profiles", &pipe).await?;
        replies
            .iter()
            .map(|fields| match fields.first() {
                Some(Value::Nil) | None => Ok(None),
                Some(_) => record(fields).map(Some),
            })
            .collect()
    }

    async fn profile_of_code(&self, code_hash: &str) -> StoreResult<Option<PlayerId>> {
        let player: Option<String> = self
            .query(
                "profile_code",
                ::redis::cmd("HGET")
                    .arg(self.keys.profile_codes())
                    .arg(code_hash),
            )
            .await?;
        player
            .map(|p| PlayerId::try_from(p).map_err(StoreError::Corrupt))
            .transpose()
    }

    async fn profile_delete(&self, player: &PlayerId) -> StoreResult<bool> {
        let call = self.profile_call("delete", player);
        let deleted = self
            .durable_script("profile", call, &SCRIPTS.profile)
            .await?;
        flag(deleted, "profile delete")
    }

    async fn profile_rename(&self, player: &PlayerId, name: &str) -> StoreResult<()> {
        let mut call = self.profile_call("rename", player);
        call.arg(name);
        flag(self.profile_script(call).await?, "profile rename")?;
        Ok(())
    }

    async fn address_salt(&self) -> StoreResult<String> {
        let mine = crate::store::profiles::new_salt();
        let mut set = ::redis::cmd("SET");
        set.arg(self.keys.address_salt())
            .arg(&mine)
            .arg("NX")
            .arg("GET");
        // Instances keep it for their life: with REDIS_WAIT_REPLICAS only once the replicas
        // have it, or a failover could take back a salt that instances already hash with.
        let before = match &self.durable {
            Some(durable) => self.durably_one("address_salt", durable, set, &[]).await?,
            None => self.query::<Value>("address_salt", &set).await?,
        };
        match before {
            Value::Nil => Ok(mine),
            v => text(&v).ok_or_else(|| corrupt("address salt", v)),
        }
    }

    async fn profile_seen(
        &self,
        player: &PlayerId,
        address: &str,
    ) -> StoreResult<Option<ProfileRecord>> {
        let mut call = self.profile_call("seen", player);
        call.arg(address);
        maybe_record(self.profile_script(call).await?)
    }

    async fn record_round(&self, round: &RoundRecord<'_>) -> StoreResult<Recorded> {
        let k = &self.keys;
        let mut keys = vec![
            k.round_recorded(round.game, round.round),
            k.leaderboard(),
            k.board_version(),
        ];
        for seat in &round.seats {
            keys.push(k.profile(seat.player));
            keys.push(k.profile_history(seat.player));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut call = script_cmd(&SCRIPTS.record_round, &keys);
        call.arg(ttl_ms(round.marker_ttl)).arg(round.history_len);
        for seat in &round.seats {
            call.arg(seat.player.as_str())
                .arg(seat.entry.as_str())
                .arg(result_field(seat.result));
            match seat.rating {
                Some(w) => call
                    .arg(w.expected_version)
                    .arg(w.rating.rating)
                    .arg(w.rating.deviation)
                    .arg(w.rating.volatility),
                None => call.arg("").arg("").arg("").arg(""),
            };
        }
        let reply = self
            .durable_script("record_round", call, &SCRIPTS.record_round)
            .await?;
        match text(&reply).as_deref() {
            Some("done") => Ok(Recorded::Done),
            Some("already") => Ok(Recorded::Already),
            Some("stale") => Ok(Recorded::Stale),
            _ => Err(corrupt("record_round", reply)),
        }
    }

    async fn leaderboard_since(
        &self,
        me: Option<&PlayerId>,
        top: usize,
        around: usize,
        known: Option<u64>,
    ) -> StoreResult<BoardRead> {
        let k = &self.keys;
        let mut call = script_cmd(
            &SCRIPTS.leaderboard,
            &[&k.leaderboard(), &k.board_version()],
        );
        call.arg(k.profile_prefix())
            .arg(top)
            .arg(me.map(PlayerId::as_str).unwrap_or(""))
            .arg(around)
            .arg(known.map(|v| v.to_string()).unwrap_or_default());
        let reply = self
            .run_script("leaderboard", call, &SCRIPTS.leaderboard)
            .await?;
        let reply = items(reply).ok_or_else(|| corrupt("leaderboard", "not an array"))?;
        let version = text(reply.first().unwrap_or(&Value::Nil))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("leaderboard version", &reply))?;
        let count = int(reply.get(1), "leaderboard count")?;
        let mut board = BoardRead {
            version,
            top_unchanged: count < 0,
            ..BoardRead::default()
        };
        let n = usize::try_from(count).unwrap_or(0);
        let rows = reply
            .get(2..2 + n)
            .ok_or_else(|| corrupt("leaderboard", &reply))?;
        for (i, row) in rows.iter().enumerate() {
            board.top.push(board_row(i as u32 + 1, row)?);
        }
        let rest = &reply[2 + n..];
        let my_rank = int(rest.first(), "leaderboard rank")?;
        if my_rank < 0 {
            return Ok(board);
        }
        let first = int(rest.get(1), "leaderboard first")?;
        for (i, row) in rest[2..].iter().enumerate() {
            let rank = (first + i as i64 + 1) as u32;
            let row = board_row(rank, row)?;
            if i64::from(rank) == my_rank + 1 {
                board.me = Some(row.clone());
            }
            board.around.push(row);
        }
        Ok(board)
    }
}
