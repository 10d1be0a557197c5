//! The Lua scripts (`store/scripts/*.lua`, hashed once) and how a call to one runs: as
//! EVALSHA inside a pipeline, with the scripts loaded again on a node that lacks them (a
//! restarted or newly promoted node starts without any).

use super::RedisStore;
use super::decode::corrupt;
use super::link::{Link, LinkHandle, classify};
use crate::store::StoreResult;
use ::redis::{Cmd, Pipeline, Script, ServerErrorKind, Value};
use std::sync::LazyLock;

pub(super) struct Scripts {
    pub(super) transition: Script,
    pub(super) create_game: Script,
    pub(super) events_since: Script,
    pub(super) rate: Script,
    pub(super) open_session: Script,
    pub(super) remember_game: Script,
    pub(super) chat: Script,
    pub(super) presence: Script,
    pub(super) lease: Script,
    pub(super) lobby: Script,
    pub(super) matching: Script,
    pub(super) deadline: Script,
    pub(super) publish_logged: Script,
    pub(super) touch: Script,
    pub(super) waiting: Script,
    pub(super) profile: Script,
    pub(super) record_round: Script,
    pub(super) leaderboard: Script,
}

/// Hashed once; `Script` sends EVALSHA and loads the source only after a NOSCRIPT (for
/// example after Redis restarted).
pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    transition: Script::new(concat!(
        include_str!("../scripts/lobby_record.lua"),
        include_str!("../scripts/transition.lua")
    )),
    create_game: Script::new(include_str!("../scripts/create_game.lua")),
    events_since: Script::new(include_str!("../scripts/events_since.lua")),
    rate: Script::new(include_str!("../scripts/rate.lua")),
    open_session: Script::new(include_str!("../scripts/open_session.lua")),
    remember_game: Script::new(include_str!("../scripts/remember_game.lua")),
    chat: Script::new(include_str!("../scripts/chat.lua")),
    presence: Script::new(include_str!("../scripts/presence.lua")),
    lease: Script::new(include_str!("../scripts/lease.lua")),
    lobby: Script::new(concat!(
        include_str!("../scripts/lobby_record.lua"),
        include_str!("../scripts/lobby.lua")
    )),
    matching: Script::new(include_str!("../scripts/match.lua")),
    deadline: Script::new(include_str!("../scripts/deadline.lua")),
    publish_logged: Script::new(include_str!("../scripts/publish_logged.lua")),
    touch: Script::new(include_str!("../scripts/touch.lua")),
    waiting: Script::new(include_str!("../scripts/waiting.lua")),
    profile: Script::new(include_str!("../scripts/profile.lua")),
    record_round: Script::new(include_str!("../scripts/record_round.lua")),
    leaderboard: Script::new(include_str!("../scripts/leaderboard.lua")),
});

impl RedisStore {
    /// Runs a script call built by [`script_cmd`] on the shared connection.
    pub(super) async fn run_script(
        &self,
        op: &'static str,
        call: Cmd,
        script: &Script,
    ) -> StoreResult<Value> {
        let mut handle = self.handle().await?;
        let mut pipe = ::redis::pipe();
        pipe.add_command(call);
        let mut replies = self
            .pipeline(op, &self.link, &mut handle, pipe, &[script])
            .await?;
        reply(replies.pop())
    }

    /// Runs `pipe`, loading `scripts` if the node lacks one of them (a restarted or newly
    /// promoted node starts without scripts, and another instance may have loaded only some).
    /// Every reply comes back, errors included.
    pub(super) async fn pipeline(
        &self,
        op: &'static str,
        link: &Link,
        handle: &mut LinkHandle,
        mut pipe: Pipeline,
        scripts: &[&Script],
    ) -> StoreResult<Vec<Value>> {
        let generation = handle.generation;
        pipe.ignore_errors();
        let mut replies: Vec<Value> = self
            .call_on(link, op, generation, pipe.query_async(handle))
            .await?;
        let missing: Vec<usize> = (0..replies.len())
            .filter(|i| is_noscript(&replies[*i]))
            .collect();
        if missing.is_empty() {
            return Ok(replies);
        }
        for script in scripts {
            self.call_on(link, op, generation, script.load_async(handle))
                .await?;
        }
        if missing.first() == Some(&0) {
            // The first command did not run, so nothing after it that depends on it did.
            return self
                .call_on(link, op, generation, pipe.query_async(handle))
                .await;
        }
        // A later script did not run: only it runs again, after what did.
        for i in missing {
            if let Some(cmd) = pipe.cmd_iter().nth(i) {
                replies[i] = self
                    .call_on(link, op, generation, cmd.query_async::<Value>(handle))
                    .await?;
            }
        }
        Ok(replies)
    }
}

/// EVALSHA of `script` with `keys` as a plain command, to which the caller adds the
/// arguments: unlike a `ScriptInvocation`, it can be part of a pipeline.
pub(super) fn script_cmd(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

fn is_noscript(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

/// One reply of a pipeline run with errors kept: an error reply becomes the store's error.
pub(super) fn reply(v: Option<Value>) -> StoreResult<Value> {
    v.ok_or_else(|| corrupt("pipeline", "missing reply"))?
        .extract_error()
        .map_err(classify)
}
