//! Games: creation, the compare-and-set transition (one script: seat, budget, move id, state,
//! log and publish together), and reading the log back.

use super::decode::{
    applied_in, corrupt, items, mid_hex, num, seat_field, stored_game, str_of, text, ttl_ms,
};
use super::durable::wait_cmd;
use super::scripts::{reply, script_cmd};
use super::{RedisStore, SCRIPTS};
use crate::ratelimit::Decision;
use crate::store::missed_since;
use crate::store::{
    Applied, Creation, Missed, SeatCheck, StoreError, StoreResult, StoredGame, Transition,
};
use ::redis::{Script, Value};
use bytes::Bytes;
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_rules::{GameState, Seats};

pub(super) async fn create(
    s: &RedisStore,
    game: &GameId,
    seats: &Seats<Option<PlayerId>>,
    state: &GameState,
    event: Bytes,
    ttl: Duration,
    cid: Option<&str>,
) -> StoreResult<Creation> {
    let x = seats
        .x
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt("a game needs X".into()))?;
    let state = serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut call = script_cmd(
        &SCRIPTS.create_game,
        &[&s.keys.game(game), &s.keys.game_log(game)],
    );
    call.arg(x.as_str())
        .arg(seats.o.as_ref().map(PlayerId::as_str).unwrap_or(""))
        .arg(state)
        .arg(event.as_ref())
        .arg(s.keys.game_channel(game))
        .arg(ttl_ms(ttl))
        .arg(s.limits.log_len)
        .arg(s.publish_cmd())
        .arg(cid.map(mid_hex).unwrap_or_default());
    let created = match &s.durable {
        None => {
            s.run_script("create_game", call, &SCRIPTS.create_game)
                .await?
        }
        Some(durable) => {
            let mut pipe = ::redis::pipe();
            pipe.add_command(call).add_command(wait_cmd(durable));
            let replies = s
                .durably("create_game", durable, pipe, &[&SCRIPTS.create_game])
                .await?;
            let created = reply(replies.first().cloned())?;
            // A retry's answer rests on the first attempt: the replicas must have it too.
            if matches!(created, Value::Int(1 | 2)) {
                s.confirmed("create_game", durable, &replies, 1)?;
            }
            created
        }
    };
    match created {
        Value::Int(1) => Ok(Creation::Created),
        Value::Int(2) => Ok(Creation::Duplicate),
        Value::Int(0) => Ok(Creation::Taken),
        other => Err(corrupt("create_game", other)),
    }
}

pub(super) async fn load(s: &RedisStore, game: &GameId) -> StoreResult<Option<StoredGame>> {
    let key = s.keys.game(game);
    let mut read = ::redis::cmd("HMGET");
    read.arg(&key).arg("v").arg("s").arg("x").arg("o");
    // A join finds its seat already taken by its own earlier attempt, say.
    let v: Vec<Option<String>> = decisive_read(s, "load_game", &key, read, None, |_| true).await?;
    let mut it = v.into_iter();
    let (Some(Some(v)), Some(Some(state)), Some(x), Some(o)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Ok(None);
    };
    stored_game(&v, &state, x, o).map(Some)
}

pub(super) async fn transition(s: &RedisStore, t: &Transition<'_>) -> StoreResult<Applied> {
    let k = &s.keys;
    let g = t.game;
    let (mode, field) = match t.seat {
        SeatCheck::None => ("-", "x"),
        SeatCheck::Holds(m) => ("holds", seat_field(m)),
        SeatCheck::Claims(m) => ("claims", seat_field(m)),
    };
    let (interval, tolerance) = t
        .limit
        .map(|r| (r.interval_us.to_string(), r.tolerance_us().to_string()))
        .unwrap_or_default();
    let state = serde_json::to_string(t.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let log = k.game_log(g);
    let channel = k.game_channel(g);
    let lobby = t
        .lobby
        .filter(|_| crate::store::Store::lobby_with_transitions(s))
        .map(|l| super::lobby::record_args(k, l))
        .transpose()?;
    let (game_key, chat, presence) = (k.game(g), k.game_chat(g), k.game_presence(g));
    let mut keys: Vec<&str> = vec![&game_key, &log, &chat, &presence];
    if let Some((lobby_keys, _)) = &lobby {
        keys.extend(lobby_keys.iter().map(String::as_str));
    }
    let mut call = script_cmd(&SCRIPTS.transition, &keys);
    call.arg(t.expected)
        .arg(t.actor.as_str())
        .arg(mode)
        .arg(field)
        .arg(state)
        .arg(t.event.as_ref())
        .arg(&channel)
        .arg(ttl_ms(t.ttl))
        .arg(s.limits.log_len)
        .arg(t.mid.map(mid_hex).unwrap_or_default())
        .arg(interval)
        .arg(tolerance)
        .arg(s.limits.mids_kept);
    let outcome = match &s.durable {
        None => {
            call.arg(s.publish_cmd());
            if let Some((_, args)) = &lobby {
                call.arg(args);
            }
            s.run_script("transition", call, &SCRIPTS.transition)
                .await?
        }
        Some(durable) => {
            // Published only once the replicas have confirmed the change (the script leaves
            // it to `publish_logged.lua`, sent after a WAIT that confirmed): nobody sees a
            // move a failover could still take back. A WAIT's count cannot gate a command in
            // the same pipeline, hence the second round trip, on this path only.
            call.arg("");
            let mut pipe = ::redis::pipe();
            pipe.add_command(call).add_command(wait_cmd(durable));
            let replies = s
                .durably("transition", durable, pipe, &[&SCRIPTS.transition])
                .await?;
            let outcome = reply(replies.first().cloned())?;
            // Only a change (or a retry of one) needs the replicas; a refusal does not.
            let tagged = match &outcome {
                Value::Array(parts) => parts
                    .first()
                    .and_then(text)
                    .zip(parts.get(1).and_then(text)),
                _ => None,
            };
            if let Some((tag, version)) = tagged.filter(|(t, _)| t == "ok" || t == "duplicate") {
                let unconfirmed = StoreError::Unconfirmed {
                    version: num(&version, "version")?,
                };
                if s.confirmed("transition", durable, &replies, 1).is_err() {
                    return Err(unconfirmed);
                }
                // A failed publish answers `unavailable`: the retry, found applied, publishes
                // again, so the event is not left unannounced.
                let event = if tag == "ok" {
                    t.event.as_ref()
                } else {
                    &[][..]
                };
                let mut publish = script_cmd(&SCRIPTS.publish_logged, &[&log]);
                publish
                    .arg(version)
                    .arg(&channel)
                    .arg(event)
                    .arg(s.publish_cmd());
                // Not published: left to the caller's follow-up, as for an unconfirmed one.
                if s.run_script("publish", publish, &SCRIPTS.publish_logged)
                    .await
                    .is_err()
                {
                    return Err(unconfirmed);
                }
            }
            outcome
        }
    };
    let parts = items(outcome).ok_or_else(|| corrupt("transition", "not an array"))?;
    let part = |i: usize| parts.get(i).and_then(str_of).unwrap_or_default();
    Ok(match part(0) {
        "ok" => Applied::Ok {
            version: num(part(1), "version")?,
        },
        "duplicate" => Applied::Duplicate {
            version: num(part(1), "version")?,
        },
        "stale" => Applied::Stale(stored_game(
            part(1),
            part(2),
            Some(part(3).to_string()),
            Some(part(4).to_string()),
        )?),
        "not_seated" => Applied::NotSeated,
        "seat_taken" => Applied::SeatTaken,
        "unknown" => Applied::UnknownGame,
        "limited" => Applied::RateLimited {
            retry_after_ms: Decision::retry_after_ms(num(part(1), "retry")?),
        },
        other => return Err(corrupt("transition", other)),
    })
}

pub(super) async fn events_since(s: &RedisStore, game: &GameId, since: u64) -> StoreResult<Missed> {
    // With WAIT, what a catch-up sends must be on the replicas: an event read from the log
    // before its `WAIT` confirmed could be taken back by a failover, after the client had it
    // (the chaos runs' "received twice"); unconfirmed, the catch-up waits and tries again.
    let (key, log) = (s.keys.game(game), s.keys.game_log(game));
    let mut read = script_cmd(&SCRIPTS.events_since, &[&key, &log]);
    read.arg(since).arg(s.limits.log_len);
    let reply: Value = decisive_read(
        s,
        "events_since",
        &key,
        read,
        Some(&SCRIPTS.events_since),
        |_| true,
    )
    .await?;
    if reply == Value::Nil {
        return Ok(Missed::UnknownGame);
    }
    let mut parts = items(reply)
        .ok_or_else(|| corrupt("events_since", "not an array"))?
        .into_iter();
    let version = parts
        .next()
        .as_ref()
        .and_then(text)
        .ok_or_else(|| corrupt("events_since", "empty"))?;
    let version: u64 = num(&version, "version")?;
    let mut entries = Vec::with_capacity(parts.len() / 2);
    while let Some(id) = parts.next() {
        let event = parts
            .next()
            .and_then(super::decode::event)
            .ok_or_else(|| corrupt("events_since", "a log id without its event"))?;
        // Events are logged under the id `0-<version>`; any other id breaks the sequence,
        // which `missed_since` answers with a snapshot.
        let v = text(&id)
            .and_then(|id| id.strip_prefix("0-")?.parse().ok())
            .unwrap_or(0);
        entries.push((v, event));
    }
    Ok(missed_since(since, version, entries))
}

pub(super) async fn applied_move(
    s: &RedisStore,
    game: &GameId,
    player: &PlayerId,
    mid: &str,
) -> StoreResult<Option<u64>> {
    let key = s.keys.game(game);
    let mut read = ::redis::cmd("HGET");
    read.arg(&key).arg(format!("m:{player}"));
    // The move may have been made through another connection; nothing to confirm if the id
    // is not there.
    let mids: Option<String> =
        decisive_read(s, "applied_move", &key, read, None, |v| *v != Value::Nil).await?;
    let Some(mids) = mids else { return Ok(None) };
    applied_in(&mids, &mid_hex(mid))
        .map(|v| num(v, "move version"))
        .transpose()
}

pub(super) async fn publish_confirmed(
    s: &RedisStore,
    game: &GameId,
    version: u64,
    event: Bytes,
) -> StoreResult<bool> {
    let Some(durable) = &s.durable else {
        return Ok(true);
    };
    let key = s.keys.game(game);
    // A write of this connection first: the WAIT then covers every earlier write to the
    // node, the transition included (replication is one ordered stream).
    let mut pipe = ::redis::pipe();
    pipe.add_command(script_cmd(&SCRIPTS.touch, &[&key]))
        .add_command(wait_cmd(durable));
    let replies = s
        .durably("publish_confirmed", durable, pipe, &[&SCRIPTS.touch])
        .await?;
    if s.confirmed("publish_confirmed", durable, &replies, 1)
        .is_err()
    {
        return Ok(false);
    }
    let mut publish = script_cmd(&SCRIPTS.publish_logged, &[&s.keys.game_log(game)]);
    publish
        .arg(version)
        .arg(s.keys.game_channel(game))
        .arg(event.as_ref())
        .arg(s.publish_cmd());
    s.run_script("publish", publish, &SCRIPTS.publish_logged)
        .await?;
    Ok(true)
}

/// A read of a game whose answer decides what a client is told. With WAIT on, what it reads
/// must be on the replicas too, or a failover could contradict the answer: a write of this
/// connection first (`touch.lua`), then the read, then WAIT, in one round trip; the WAIT is
/// required to succeed when `confirm` says the value matters. `script`: the script `read`
/// calls, if any (loaded again on a node that lacks it).
async fn decisive_read<T: ::redis::FromRedisValue>(
    s: &RedisStore,
    op: &'static str,
    key: &str,
    read: ::redis::Cmd,
    script: Option<&Script>,
    confirm: impl Fn(&Value) -> bool,
) -> StoreResult<T> {
    let Some(durable) = &s.durable else {
        if let Some(script) = script {
            let value = s.run_script(op, read, script).await?;
            return ::redis::from_redis_value(value).map_err(|e| corrupt(op, e));
        }
        return s.query(op, &read).await;
    };
    let mut pipe = ::redis::pipe();
    pipe.add_command(script_cmd(&SCRIPTS.touch, &[key]))
        .add_command(read)
        .add_command(wait_cmd(durable));
    let mut scripts = vec![&SCRIPTS.touch];
    scripts.extend(script);
    let replies = s.durably(op, durable, pipe, &scripts).await?;
    let value = reply(replies.get(1).cloned())?;
    if confirm(&value) {
        s.confirmed(op, durable, &replies, 2)?;
    }
    ::redis::from_redis_value(value).map_err(|e| corrupt(op, e))
}
