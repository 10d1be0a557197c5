//! nginx as configured by `deploy/nginx.conf.template`: WebSockets are spread over the
//! instances without stickiness, and a dead instance is skipped for new connections.

use crate::support::client::{Ws, try_connect};
use crate::support::eventually;
use crate::support::http::http_get;
use crate::support::topology::Topology;
use std::collections::HashSet;
use std::time::Duration;
use tictactoe_protocol::ServerMsg;

async fn instance_of(ws: &mut Ws) -> String {
    match ws.hello("lb").await {
        ServerMsg::Welcome { instance, .. } => instance,
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn load_balancer_spreads_websockets_and_skips_a_killed_instance() {
    let mut topo = Topology::start(3).await;
    let url = format!("ws://{}/ws", topo.nginx.addr());

    // least_conn: three open connections land on three different instances.
    let mut held = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let mut ws = Ws::connect(&url).await;
        seen.insert(instance_of(&mut ws).await);
        held.push(ws);
    }
    assert_eq!(seen.len(), 3, "connections were not spread: {seen:?}");

    let victim = topo.servers[0].instance.clone();
    topo.servers[0].kill9();
    // Every new handshake succeeds, on the survivors only: nginx moves on to the next
    // upstream when one refuses the connection.
    for _ in 0..6 {
        let mut ws = Ws::connect(&url).await;
        let instance = instance_of(&mut ws).await;
        assert_ne!(instance, victim, "a connection reached the killed instance");
        held.push(ws);
    }
}

/// Finding 1 of docs/reliability.md: once every instance had refused handshakes at the same
/// moment (Redis gone for longer than `REDIS_LOST_MS`: each answers 503), nginx with
/// `max_fails=1` kept all of them out after they were back, admitting one handshake per
/// instance every `fail_timeout` until a proxied WebSocket closed, minutes at human pace.
#[tokio::test]
async fn instances_back_from_refusing_all_at_once_take_every_handshake() {
    let topo = Topology::start_with(2, |c| {
        c.redis_lost = Duration::from_millis(1000);
    })
    .await;
    let url = format!("ws://{}/ws", topo.nginx.addr());
    let ready = |want: u16| {
        let addrs: Vec<_> = topo.servers.iter().map(|s| s.addr).collect();
        async move {
            for addr in addrs {
                match http_get(addr, "/readyz").await {
                    Ok((status, _)) if status == want => {}
                    _ => return None,
                }
            }
            Some(())
        }
    };
    topo.redis.pause();
    eventually("every instance refusing", || ready(503)).await;
    // Handshakes meanwhile: every instance answers 503, as nginx sees.
    for _ in 0..4 {
        assert!(try_connect(&url, &[]).await.is_err());
    }
    topo.redis.resume();
    eventually("every instance ready again", || ready(200)).await;
    // Each handshake succeeds at once, and stays open.
    let mut held = Vec::new();
    for i in 0..6 {
        match try_connect(&url, &[]).await {
            Ok(mut ws) => {
                instance_of(&mut ws).await;
                held.push(ws);
            }
            Err(status) => panic!(
                "handshake {i} answered {status} with the instances back:\n{}",
                topo.logs()
            ),
        }
    }
}
