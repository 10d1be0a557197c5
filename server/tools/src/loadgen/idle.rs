//! Idle mode: a connection says hello and then only keeps reading, which is what makes the
//! WebSocket library answer the server's pings. What it costs a server is then the floor of
//! a connection: the upgraded socket, its session task and its buffers.

use super::conn::{self, Failure, Incoming};
use super::plan::Slot;
use super::{Ctx, Settle};
use futures_util::StreamExt;
use std::sync::Arc;
use tictactoe_protocol::{ClientMsg, ServerMsg};

pub(super) async fn connection(ctx: Arc<Ctx>, index: usize, slot: Slot) {
    let ctx = &*ctx;
    let mut settle = Settle::new(&ctx.stats);
    let mut ws = match ctx.open(slot).await {
        Ok(ws) => ws,
        Err(f) => {
            ctx.fail(&f);
            return;
        }
    };
    let hello = ClientMsg::Hello {
        req: Some(1),
        token: None,
        name: Some(format!("idle{index}")),
        resume: Vec::new(),
    };
    match ctx.stoppable(conn::request(&mut ws, &hello, 1)).await {
        Ok(ServerMsg::Welcome { instance, .. }) => ctx.instance_seen(slot.url, &instance),
        Ok(_) => {
            ctx.fail(&Failure::transport("unexpected_reply"));
            return;
        }
        Err(f) => {
            ctx.fail(&f);
            return;
        }
    }
    settle.done();
    loop {
        tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => break,
            item = ws.next() => match conn::incoming(item) {
                Ok(Incoming::Msg(m)) => {
                    if let ServerMsg::Error { code, .. } = *m {
                        ctx.fail(&Failure::Server(code));
                    }
                }
                Ok(Incoming::Nothing) => {}
                Err(f) => {
                    ctx.fail(&f);
                    return;
                }
            },
        }
    }
    conn::close(ws).await;
}
