//! Who is connected to each game (connection counts per instance lease, one hash per game),
//! the seats' away clocks, and the instance leases that let a dead instance's entries be
//! swept. The presence event depends on the counts after a change, so the script completes
//! the instance's presence template and publishes it in the same call.

use super::decode::{corrupt, num, parse_state, presence_of, role_name, texts, ttl_ms, why_name};
use super::scripts::script_cmd;
use super::{RedisStore, SCRIPTS};
use crate::store::PresenceRecord;
use crate::store::{
    Attendance, LeaseRenewal, PresenceChange, PresenceEntry, PresenceEvent, SeatsView, StoreResult,
};
use ::redis::Value;
use std::time::Duration;
use tictactoe_protocol::AwayReason;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::templates::PresenceTemplate;
use tictactoe_rules::Seats;

use tictactoe_protocol::templates::AWAY_PIECES;

/// Runs presence.lua in `change` or `sweep` mode; returns the presence after it, the seats it
/// emptied and how many entries `lease` still has in the game.
async fn script(
    s: &RedisStore,
    game: &GameId,
    args: &[&str],
    event: &PresenceTemplate,
    ttl: Duration,
    why: AwayReason,
) -> StoreResult<(PresenceRecord, Seats<bool>, u64)> {
    let k = &s.keys;
    let mut inv = SCRIPTS.presence.prepare_invoke();
    inv.key(k.game_presence(game)).key(k.game(game));
    for a in args {
        inv.arg(*a);
    }
    inv.arg(ttl_ms(ttl)).arg(k.game_channel(game));
    for piece in AWAY_PIECES {
        inv.arg(piece);
    }
    inv.arg(s.publish_cmd()).arg(why_name(why));
    for part in event.args() {
        inv.arg(part);
    }
    let v: Vec<i64> = s.invoke("presence", &inv).await?;
    match v.as_slice() {
        [x, o, n, xl, ol, mine, away @ ..] => Ok((
            presence_of(*x, *o, *n, away)?,
            Seats {
                x: *xl == 1,
                o: *ol == 1,
            },
            u64::try_from(*mine).unwrap_or(0),
        )),
        other => Err(corrupt("presence", other)),
    }
}

pub(super) async fn change(
    s: &RedisStore,
    game: &GameId,
    entry: &PresenceEntry<'_>,
    change: Attendance,
    event: &PresenceTemplate,
    ttl: Duration,
) -> StoreResult<PresenceChange> {
    let games = s.keys.instance_games(entry.lease);
    let (delta, why) = match change {
        Attendance::Arrive => ("1".to_string(), AwayReason::Disconnected),
        Attendance::Leave(why) => ("-1".to_string(), why),
        Attendance::Announce(n) => (format!("={n}"), AwayReason::Disconnected),
    };
    if !matches!(change, Attendance::Leave(_)) {
        // Indexed before the entry exists, so a sweep after this instance dies finds it.
        let _: i64 = s
            .query(
                "presence_index",
                ::redis::cmd("SADD").arg(&games).arg(game.as_str()),
            )
            .await?;
    }
    let field = format!(
        "c|{}|{}|{}",
        entry.lease,
        entry.player,
        role_name(entry.role)
    );
    let (presence, left, mine) =
        script(s, game, &["change", &field, &delta], event, ttl, why).await?;
    if mine == 0 {
        let _: i64 = s
            .query(
                "presence_index",
                ::redis::cmd("SREM").arg(&games).arg(game.as_str()),
            )
            .await?;
    }
    Ok(PresenceChange {
        presence,
        left,
        lease_entries: mine,
    })
}

pub(super) async fn read(s: &RedisStore, game: &GameId) -> StoreResult<PresenceRecord> {
    let mut inv = SCRIPTS.presence.prepare_invoke();
    inv.key(s.keys.game_presence(game))
        .key(s.keys.game(game))
        .arg("read");
    let v: Vec<i64> = s.invoke("presence", &inv).await?;
    match v.as_slice() {
        [x, o, n, away @ ..] => presence_of(*x, *o, *n, away),
        other => Err(corrupt("presence", other)),
    }
}

pub(super) async fn inspect_seats(s: &RedisStore, game: &GameId) -> StoreResult<Option<SeatsView>> {
    let mut inv = SCRIPTS.presence.prepare_invoke();
    inv.key(s.keys.game_presence(game))
        .key(s.keys.game(game))
        .arg("inspect");
    let reply: Value = s.invoke("inspect", &inv).await?;
    if reply == Value::Nil {
        return Ok(None);
    }
    let p = texts(reply).ok_or_else(|| corrupt("inspect", "not strings"))?;
    let [now, v, state, px, po, sx, so, ax, ao] = p.as_slice() else {
        return Err(corrupt("inspect", p));
    };
    let away = |a: &str| -> StoreResult<Option<u64>> {
        if a.is_empty() {
            Ok(None)
        } else {
            num(a, "away").map(Some)
        }
    };
    Ok(Some(SeatsView {
        now_ms: num(now, "now")?,
        version: num(v, "version")?,
        state: parse_state(state)?,
        present: Seats {
            x: px == "1",
            o: po == "1",
        },
        seen: Seats {
            x: sx == "1",
            o: so == "1",
        },
        away_since: Seats {
            x: away(ax)?,
            o: away(ao)?,
        },
    }))
}

pub(super) async fn renew_lease(
    s: &RedisStore,
    lease: &str,
    ttl: Duration,
) -> StoreResult<LeaseRenewal> {
    let keys = [s.keys.instances(), s.keys.lease_sweeps()];
    let found = if let Some(durable) = &s.durable {
        // A renewal a failover loses makes this living instance look dead to the others; one
        // the replicas did not confirm counts as failed, and the instances then hold off
        // sweeping for a lease period (see housekeeping).
        let mut call = script_cmd(&SCRIPTS.lease, &[&keys[0], &keys[1]]);
        call.arg("renew").arg(lease).arg(ttl_ms(ttl));
        match s
            .durably_one("lease", durable, call, &[&SCRIPTS.lease])
            .await?
        {
            Value::Int(n) => n,
            other => return Err(corrupt("lease", other)),
        }
    } else {
        let mut inv = SCRIPTS.lease.prepare_invoke();
        inv.key(&keys[0])
            .key(&keys[1])
            .arg("renew")
            .arg(lease)
            .arg(ttl_ms(ttl));
        s.invoke("lease", &inv).await?
    };
    Ok(match found {
        1 => LeaseRenewal::Renewed,
        2 => LeaseRenewal::Sweeping,
        _ => LeaseRenewal::Registered,
    })
}

pub(super) async fn claim_lapsed_leases(
    s: &RedisStore,
    claim_ttl: Duration,
) -> StoreResult<Vec<String>> {
    let mut inv = SCRIPTS.lease.prepare_invoke();
    inv.key(s.keys.instances())
        .key(s.keys.lease_sweeps())
        .arg("claim")
        .arg(ttl_ms(claim_ttl));
    s.invoke("lease", &inv).await
}

pub(super) async fn sweep_lease(
    s: &RedisStore,
    lease: &str,
    ttl: Duration,
    event: PresenceEvent,
) -> StoreResult<Vec<(GameId, Seats<bool>)>> {
    let index = s.keys.instance_games(lease);
    let games: Vec<String> = s
        .query("sweep", ::redis::cmd("SMEMBERS").arg(&index))
        .await?;
    let mut emptied = Vec::new();
    for g in games.into_iter().filter_map(|g| GameId::try_from(g).ok()) {
        let (_, left, _) = script(
            s,
            &g,
            &["sweep", lease, "0"],
            &event(&g),
            ttl,
            AwayReason::Disconnected,
        )
        .await?;
        if left.x || left.o {
            emptied.push((g, left));
        }
    }
    // Two slots (the index and the leases): two independent commands.
    let _: i64 = s.query("sweep", ::redis::cmd("DEL").arg(&index)).await?;
    let mut inv = SCRIPTS.lease.prepare_invoke();
    inv.key(s.keys.instances())
        .key(s.keys.lease_sweeps())
        .arg("done")
        .arg(lease);
    let _: i64 = s.invoke("sweep", &inv).await?;
    Ok(emptied)
}
