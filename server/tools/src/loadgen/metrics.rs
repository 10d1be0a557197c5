//! The instances' own Prometheus metrics, scraped over plain HTTP: how many Redis round trips
//! (`redis_command_seconds_count`, by operation) they made for the moves they accepted
//! (`moves_total{result="accepted"}`).

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// A metrics page is a few tens of KiB; anything far larger is not one.
const MAX_PAGE: usize = 16 * 1024 * 1024;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one line of the text exposition format; comments, blank lines and lines that
/// do not parse give `None`. Label values may hold escaped quotes and backslashes, commas,
/// spaces and braces.
pub fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(body) => parse_labels(body)?,
        None => (Vec::new(), &line[name_end..]),
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `a="1",b="2"}` (what follows the `{`) and returns the labels and the rest of
/// the line.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains(['"', ',', '}']) {
            return None;
        }
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// The counters a run reads from one instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceCounters {
    /// `moves_total{result="accepted"}`.
    pub accepted_moves: f64,
    /// `redis_command_seconds_count` by its `op` label: one per Redis call, each a round trip.
    pub round_trips: BTreeMap<String, f64>,
}

impl InstanceCounters {
    pub fn from_page(page: &str) -> InstanceCounters {
        let mut c = InstanceCounters::default();
        for s in page.lines().filter_map(parse_line) {
            match s.name.as_str() {
                "moves_total" if s.label("result") == Some("accepted") => {
                    c.accepted_moves += s.value;
                }
                "redis_command_seconds_count" => {
                    let op = s.label("op").unwrap_or("").to_string();
                    *c.round_trips.entry(op).or_default() += s.value;
                }
                _ => {}
            }
        }
        c
    }

    /// What happened between two scrapes.
    pub fn delta(&self, before: &InstanceCounters) -> InstanceCounters {
        InstanceCounters {
            accepted_moves: (self.accepted_moves - before.accepted_moves).max(0.0),
            round_trips: self
                .round_trips
                .iter()
                .map(|(op, n)| {
                    let b = before.round_trips.get(op).copied().unwrap_or(0.0);
                    (op.clone(), (n - b).max(0.0))
                })
                .filter(|(_, n)| *n > 0.0)
                .collect(),
        }
    }

    pub fn total_round_trips(&self) -> f64 {
        self.round_trips.values().sum()
    }
}

/// The metrics page of the instance behind a WebSocket URL: same host and port, `/metrics`.
pub fn metrics_url_for(ws_url: &str) -> Option<String> {
    let rest = ws_url.trim().strip_prefix("ws://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("http://{authority}/metrics"))
}

/// GETs an `http://host:port/path` URL and returns the body of a 200 reply.
pub async fn fetch(url: &str) -> Result<String, String> {
    tokio::time::timeout(SCRAPE_TIMEOUT, get(url))
        .await
        .map_err(|_| format!("{url}: timed out"))?
}

async fn get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// metrics URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_PAGE as u64)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    parse_response(&raw).map_err(|e| format!("{url}: {e}"))
}

/// The body of an HTTP/1.1 response read to the end of the connection: 200 only,
/// `Content-Length` or chunked.
fn parse_response(raw: &[u8]) -> Result<String, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status:?}"));
    }
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length"
            && let Ok(n) = v.parse::<usize>()
        {
            body = body
                .get(..n)
                .ok_or("body shorter than its Content-Length")?;
        }
    }
    let bytes = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| "body is not UTF-8".into())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk")?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("truncated chunk")?);
        body = body.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# TYPE moves_total counter
moves_total{result="accepted"} 1200
moves_total{result="rejected"} 7
# TYPE redis_command_seconds histogram
redis_command_seconds_bucket{op="transition",le="0.0001"} 3
redis_command_seconds_bucket{op="transition",le="+Inf"} 1596
redis_command_seconds_sum{op="transition"} 0.5
redis_command_seconds_count{op="transition"} 1596
redis_command_seconds_count{op="lobby"} 314
"#;

    #[test]
    fn prometheus_lines_parse_with_labels_escapes_and_timestamps() {
        let s = parse_line(r#"moves_total{result="accepted"} 1200"#).unwrap();
        assert_eq!(s.name, "moves_total");
        assert_eq!(s.label("result"), Some("accepted"));
        assert_eq!(s.value, 1200.0);

        let s = parse_line("process_cpu_seconds_total 12.5 1700000000000").unwrap();
        assert_eq!(
            (s.name.as_str(), s.value),
            ("process_cpu_seconds_total", 12.5)
        );
        assert!(s.labels.is_empty());

        let s = parse_line(r#"x{a="1, }{ 2",b = "say \"hi\" \\ now",} +Inf"#).unwrap();
        assert_eq!(s.label("a"), Some("1, }{ 2"));
        assert_eq!(s.label("b"), Some(r#"say "hi" \ now"#));
        assert_eq!(s.value, f64::INFINITY);

        let s = parse_line(r#"y{le="0.5"} 3e2"#).unwrap();
        assert_eq!((s.label("le"), s.value), (Some("0.5"), 300.0));

        for bad in [
            "",
            "# HELP x y",
            "x",
            r#"x{a=1} 2"#,
            r#"x{a="1} 2"#,
            "x two",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_instance_page_gives_accepted_moves_and_round_trips_by_operation() {
        let before = InstanceCounters::from_page(PAGE);
        assert_eq!(before.accepted_moves, 1200.0);
        assert_eq!(before.round_trips["transition"], 1596.0);
        assert_eq!(before.total_round_trips(), 1910.0);

        let later = PAGE.replace("} 1200", "} 2200").replace(
            r#"count{op="transition"} 1596"#,
            r#"count{op="transition"} 2926"#,
        );
        let d = InstanceCounters::from_page(&later).delta(&before);
        assert_eq!(d.accepted_moves, 1000.0);
        assert_eq!(d.round_trips.len(), 1, "lobby did not move: {d:?}");
        assert_eq!(d.total_round_trips(), 1330.0);
    }

    #[test]
    fn metrics_urls_follow_the_websocket_url() {
        assert_eq!(
            metrics_url_for("ws://127.0.0.1:18080/ws").as_deref(),
            Some("http://127.0.0.1:18080/metrics")
        );
        assert_eq!(
            metrics_url_for("ws://game.example:80/ws?x=1").as_deref(),
            Some("http://game.example:80/metrics")
        );
        assert_eq!(metrics_url_for("wss://secure/ws"), None);
        assert_eq!(metrics_url_for("ws:///ws"), None);
    }

    #[test]
    fn responses_with_length_or_chunks_give_their_body() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain).as_deref(), Ok("hello"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).as_deref(), Ok("hello"));
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_response(missing).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
