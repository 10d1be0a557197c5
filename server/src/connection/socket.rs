//! The socket end of a connection: frames in (within the message budget and size limit,
//! parsed into requests), frames out (each write bounded in time), refusals that spend the
//! abuse budget, and the closing frame (then reading until the peer's, so the close is not
//! turned into a reset).

use super::{Closing, Step, Transport};
use crate::config::Config;
use crate::operations::OpError;
use crate::ratelimit::LocalLimiter;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tictactoe_protocol::{ClientMsg, ErrorCode, Req, ServerMsg, close, parse_client};

/// A write that takes longer than this means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing frame may take: the connection is over either way.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// After the closing frame, how long to read for the peer's own before dropping the socket
/// anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Frames buffered before a flush is forced, even while more are ready to go.
const FLUSH_EVERY: usize = 16;

/// One frame of an answer: a message to render, or an event already rendered (from a log).
/// Only catch-ups (resumes, snapshots) build these, so the box costs nothing on the move path.
pub(super) enum Frame {
    Msg(Box<ServerMsg>),
    Raw(Utf8Bytes),
}

pub(super) struct Socket<S> {
    inner: S,
    /// Every frame, before parsing.
    msg_limit: LocalLimiter,
    /// Rate-limited requests; when it runs dry the connection is closed.
    abuse: LocalLimiter,
    /// Frames written to the WebSocket's buffer but not yet flushed to the kernel.
    unflushed: usize,
}

impl<S: Transport> Socket<S> {
    pub(super) fn new(inner: S, config: &Config) -> Socket<S> {
        Socket {
            inner,
            msg_limit: LocalLimiter::new(config.msg_rule()),
            abuse: LocalLimiter::new(config.abuse_rule()),
            unflushed: 0,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<Message, axum::Error>> {
        self.inner.next().await
    }

    /// Turns a received frame into a request. Frames that carry none (pongs, refused or
    /// unparsable ones, already answered here) give `None`; a closed or broken socket ends
    /// the connection.
    pub(super) async fn request(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
    ) -> Result<Option<ClientMsg>, Closing> {
        let msg = match frame {
            None | Some(Ok(Message::Close(_))) => return Err(Closing::Gone),
            Some(Err(e)) => {
                return Err(if is_too_big(&e) {
                    metrics::counter!("oversize_frames_total").increment(1);
                    Closing::Close(close::TOO_BIG, "message too big")
                } else {
                    Closing::Gone
                });
            }
            Some(Ok(m)) => m,
        };
        if let Err(wait) = self.msg_limit.check() {
            self.limited(None, wait.as_millis() as u64 + 1, "messages")
                .await?;
            return Ok(None);
        }
        match msg {
            Message::Text(t) => match parse_client(t.as_str()) {
                Ok(m) => Ok(Some(m)),
                Err(e) => {
                    metrics::counter!("bad_requests_total", "code" => format!("{:?}", e.code))
                        .increment(1);
                    self.send(ServerMsg::Error {
                        req: e.req,
                        game: None,
                        code: e.code,
                        message: e.message,
                        retry_after_ms: None,
                    })
                    .await?;
                    Ok(None)
                }
            },
            Message::Binary(_) => {
                self.send(ServerMsg::error(
                    None,
                    ErrorCode::BadJson,
                    "binary frames are not supported: send JSON text",
                ))
                .await?;
                Ok(None)
            }
            // Pongs prove liveness; pings are answered by the WebSocket layer.
            _ => Ok(None),
        }
    }

    /// Answers with an operation's error; internals stay in the log.
    pub(super) async fn op_error(&mut self, req: Option<Req>, e: OpError) -> Step {
        match &e {
            OpError::Internal(cause) => tracing::error!(%cause, "request failed"),
            OpError::Unavailable => metrics::counter!("unavailable_total").increment(1),
            _ => {}
        }
        self.send(e.to_msg(req)).await
    }

    /// Refuses a request over budget. Repeated refusals use up the abuse budget, and then
    /// the connection is closed as a policy violation.
    pub(super) async fn limited(
        &mut self,
        req: Option<Req>,
        retry_after_ms: u64,
        rule: &'static str,
    ) -> Step {
        metrics::counter!("rate_limited_total", "rule" => rule).increment(1);
        if self.abuse.check().is_err() {
            tracing::info!(rule, "closing an abusive connection");
            return Err(Closing::Close(
                close::POLICY,
                "rate limits exceeded repeatedly",
            ));
        }
        self.send(ServerMsg::Error {
            req,
            game: None,
            code: ErrorCode::RateLimited,
            message: format!("too many {rule}: retry after {retry_after_ms} ms"),
            retry_after_ms: Some(retry_after_ms.max(1)),
        })
        .await
    }

    pub(super) async fn send_all(&mut self, frames: Vec<Frame>) -> Step {
        for f in frames {
            match f {
                Frame::Msg(m) => self.send(*m).await?,
                Frame::Raw(r) => self.write(Message::Text(r)).await?,
            }
        }
        Ok(())
    }

    pub(super) async fn send(&mut self, msg: ServerMsg) -> Step {
        self.write(Message::Text(msg.to_json().into())).await
    }

    /// Buffers a frame; [`flush`](Self::flush) sends what is buffered. Frames that are ready
    /// together (a reply and the event that follows it, a burst of queued events) then leave
    /// in one write instead of one system call each.
    pub(super) async fn write(&mut self, msg: Message) -> Step {
        bounded(self.inner.feed(msg)).await?;
        self.unflushed += 1;
        if self.unflushed >= FLUSH_EVERY {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends every buffered frame. The callers' loops call it once nothing else is ready.
    pub(super) async fn flush(&mut self) -> Step {
        if self.unflushed == 0 {
            return Ok(());
        }
        self.unflushed = 0;
        bounded(self.inner.flush()).await
    }

    pub(super) async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.inner.send(frame)).await;
        self.linger().await;
    }

    /// Reads (and discards) what the peer still sends after our closing frame, until its own
    /// close frame, the end of the stream, or [`CLOSE_LINGER`]. Dropping a socket with unread
    /// input makes the kernel reset the connection, and a reset destroys the close frame
    /// before the client reads it: a flooding client would see 1006 instead of the reason.
    async fn linger(&mut self) {
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            while let Some(Ok(frame)) = self.inner.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A write that the peer does not take within [`WRITE_TIMEOUT`] means it stopped reading.
async fn bounded(write: impl Future<Output = Result<(), axum::Error>>) -> Step {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closing::Gone),
        Err(_) => Err(Closing::Close(
            close::SLOW_CONSUMER,
            "too slow: write timed out",
        )),
    }
}

/// Whether a socket error is tungstenite refusing a frame or message over the size limit.
fn is_too_big(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}
