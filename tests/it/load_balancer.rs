//! nginx as configured by `deploy/nginx.conf.template`: WebSockets are spread over the
//! instances without stickiness, and a dead instance is skipped for new connections.

use crate::support::client::Ws;
use crate::support::topology::Topology;
use std::collections::HashSet;
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
