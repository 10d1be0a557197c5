//! HTTP routes on the game port: the static page, `/ws`, `/healthz`, `/readyz`, and
//! `/metrics` unless it has a listener of its own (`METRICS_ADDR`).

use crate::app::App;
use crate::connection;
use crate::ratelimit::Rule;
use crate::trusted_proxies::TrustedProxies;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The WebSocket read buffer. tungstenite's default (128 KiB per connection, allocated at
/// upgrade) would dominate an idle connection's memory. Client frames are small (a move is
/// under 100 bytes); the rare larger one (a `hello` resuming many games, up to the message
/// size limit) takes a few reads.
const READ_BUFFER: usize = 256;
/// Outgoing bytes gathered before they are written even without a flush. Frames otherwise
/// leave when the connection flushes (once its queue is drained): an ack and the event
/// behind it, or a burst of events, in one system call. (tungstenite writes every frame at
/// once with 0.) Small, because the buffer keeps the capacity it once reached for as long as
/// the connection lives: a burst (a resume of many games) costs a few writes instead.
const WRITE_BUFFER: usize = 2 * 1024;
/// Outgoing bytes a connection may have buffered before writes fail: bounds a client that
/// stopped reading, on top of its message queue.
const MAX_WRITE_BUFFER: usize = 64 * 1024;

/// What the page may do, for browsers: its own scripts, styles and WebSocket only (the
/// favicon is a `data:` URL), and it is never framed by another site.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub fn router(app: Arc<App>) -> Router {
    let page = ServeDir::new(&app.config.web_dir).append_index_html_on_directories(true);
    let mut router = Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if app.config.metrics_addr.is_none() {
        router = router.route("/metrics", get(metrics_page));
    }
    let header =
        |name, value| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    router
        .fallback_service(page)
        // No build step and no fingerprinted file names: make browsers revalidate.
        .layer(header(header::CACHE_CONTROL, "no-cache"))
        .layer(header(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // For browsers that predate `frame-ancestors`.
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        // Game links carry game ids: they need not travel to other sites.
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .with_state(app)
}

/// The router of the separate metrics listener.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics_page))
}

async fn ws_upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if app.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if app.is_redis_lost() {
        metrics::counter!("rejected_upgrades_total", "reason" => "redis_lost").increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "this instance cannot reach Redis: try another",
        )
            .into_response();
    }
    if !origin_allowed(&headers, &app.config.allowed_origins) {
        metrics::counter!("rejected_upgrades_total", "reason" => "origin").increment(1);
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let ip = client_ip(peer.ip(), &headers, &app.trusted_proxies);
    let rule = app.config.ip_conn_rule();
    if let Err(ms) = app.limit_ip("ip-conn", ip, rule).await {
        metrics::counter!("rate_limited_total", "rule" => "connections").increment(1);
        return too_many_connections(rule, ms);
    }
    let Ok(slot) = app.admission.websocket(ip) else {
        metrics::counter!("connections_refused_total", "reason" => "websockets").increment(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "5")],
            "too many open connections from this address",
        )
            .into_response();
    };
    let max = app.config.max_message_bytes;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let connections = app.connections.clone();
            // Boxed: the WebSocket is some 500 bytes, and every future that holds it (this
            // one, the connection's, each of its phases) would otherwise hold its own copy
            // for as long as the connection is open.
            let socket = Box::new(socket);
            connections.track_future(async move {
                connection::serve(app, socket, ip).await;
                drop(slot);
            })
        })
}

/// The 429 for a connection flood: `Retry-After`, and the IETF `RateLimit-Policy` and
/// `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers), which describe the budget as
/// `q` connections per window of `w` seconds (the burst, and the time it takes to refill) and
/// say `r` remain, for `t` seconds.
fn too_many_connections(rule: Rule, retry_after_ms: u64) -> Response {
    let secs = retry_after_ms.div_ceil(1000).max(1);
    let window = (rule.interval_us.saturating_mul(u64::from(rule.burst)))
        .div_ceil(1_000_000)
        .max(1);
    let policy = format!("\"conn\";q={};w={window}", rule.burst);
    let state = format!("\"conn\";r=0;t={secs}");
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::RETRY_AFTER, secs.to_string()),
            (HeaderName::from_static("ratelimit-policy"), policy),
            (HeaderName::from_static("ratelimit"), state),
        ],
        "too many connections from this address",
    )
        .into_response()
}

/// Browsers always send Origin on a WebSocket handshake; refusing foreign ones stops other
/// sites from driving a player's session (cross-site WebSocket hijacking). Clients without
/// an Origin are not browsers and could claim any origin anyway.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let allowed: Vec<String> = allowed
        .iter()
        .map(|a| a.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    if allowed.iter().any(|a| a == "*" || *a == origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let same_origin =
        host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
    if same_origin {
        return true;
    }
    allowed.is_empty() && is_localhost(&origin)
}

fn is_localhost(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
/// nearest X-Forwarded-For entry that is not itself a trusted proxy.
/// Every address is compared in its canonical form (IPv4-mapped IPv6 as IPv4).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when Redis answers and this instance's pub/sub delivers end to end (a probe it
/// publishes to itself comes back), it has not given up on Redis (the watchdog's verdict,
/// which outlasts a single lucky probe), and it is not shutting down. The Redis half is
/// probed within a budget; beyond it, the latest verdict answers (see [`crate::readiness`]).
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let verdict = app
        .readiness
        .verdict(std::time::Instant::now(), probe_redis(&app))
        .await;
    let not_yet = "not probed yet".to_string();
    let (store, pubsub, age) = match verdict {
        Some(v) => (v.store, v.pubsub, v.at.elapsed()),
        None => (Err(not_yet.clone()), Err(not_yet), Duration::ZERO),
    };
    let shutting_down = app.shutdown.is_cancelled();
    let redis_lost = app.is_redis_lost();
    let ready = store.is_ok() && pubsub.is_ok() && !shutting_down && !redis_lost;
    let body = serde_json::json!({
        "ready": ready,
        "instance": app.instance,
        "store": store.as_ref().err().map_or("ok", |e| e.as_str()),
        "pubsub": match &pubsub {
            Ok(lag) => format!("ok ({} us round trip)", lag.as_micros()),
            Err(e) => e.clone(),
        },
        "probed_ms_ago": age.as_millis() as u64,
        "shutting_down": shutting_down,
        "redis_lost": redis_lost,
        "local_games": app.hub.local_games(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// A fresh look at Redis: a `PING`, and a probe published to this instance's own channel
/// that must come back.
async fn probe_redis(app: &App) -> crate::readiness::Verdict {
    let timeout = app.config.redis_timeout.min(Duration::from_secs(1));
    let store = app.store.ping().await.map_err(|e| e.to_string());
    let pubsub = app
        .hub
        .probe(app.store.as_ref(), timeout)
        .await
        .map_err(|e| e.to_string());
    crate::readiness::Verdict {
        store,
        pubsub,
        at: std::time::Instant::now(),
    }
}

async fn metrics_page() -> Response {
    match crate::telemetry::metrics_handle() {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_and_localhost_pass_by_default_others_do_not() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(&headers(&[]), &none));
        assert!(origin_allowed(
            &headers(&[("origin", "https://play.example"), ("host", "play.example")]),
            &none
        ));
        assert!(origin_allowed(
            &headers(&[("origin", "http://localhost:5173")]),
            &none
        ));
        assert!(origin_allowed(
            &headers(&[("origin", "http://127.0.0.1:9")]),
            &none
        ));
        assert!(origin_allowed(
            &headers(&[("origin", "http://[::1]:80")]),
            &none
        ));
        assert!(!origin_allowed(
            &headers(&[("origin", "https://evil.example"), ("host", "play.example")]),
            &none
        ));
        assert!(!origin_allowed(
            &headers(&[("origin", "http://localhost.evil.example")]),
            &none
        ));
    }

    #[test]
    fn a_configured_list_replaces_the_localhost_default() {
        let list = vec!["https://play.example".to_string()];
        assert!(origin_allowed(
            &headers(&[("origin", "https://play.example/")]),
            &list
        ));
        assert!(!origin_allowed(
            &headers(&[("origin", "http://localhost:1")]),
            &list
        ));
        assert!(origin_allowed(
            &headers(&[("origin", "https://x.example")]),
            &["*".to_string()]
        ));
    }

    fn only(proxy: IpAddr) -> TrustedProxies {
        TrustedProxies::parse(&[proxy.to_string()]).unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7")]);
        assert_eq!(
            client_ip(client, &h, &only(proxy)),
            client,
            "untrusted peer"
        );
        assert_eq!(
            client_ip(proxy, &h, &only(proxy)),
            client,
            "rightmost untrusted entry"
        );
        assert_eq!(client_ip(proxy, &headers(&[]), &only(proxy)), proxy);
        let chained = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        assert_eq!(client_ip(proxy, &chained, &only(proxy)), client);
    }

    #[test]
    fn ipv4_mapped_addresses_are_compared_as_ipv4() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped_proxy: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7")]);
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(client_ip(mapped_proxy, &h, &only(proxy)), client);
        assert_eq!(
            client_ip(mapped_proxy, &headers(&[]), &TrustedProxies::default()),
            proxy
        );
    }
}
