//! A small HTTP/1.1 server for the metrics pages (GET and HEAD, keep-alive), enough for
//! Prometheus' scraper and curl.
//!
//! - `/metrics/<namespace>/<pod>`: the pod's page (200), 503 when its node is powered off
//!   or its container is not running (crash loop), 404 for a pod without metrics;
//! - `/`: the paths of all pages, one a line.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::{Page, Registry};
use crate::node::Nodes;

/// Longest request head (request line and headers) accepted.
const MAX_HEAD: u64 = 16 * 1024;
/// A connection idle this long between requests is closed.
const IDLE: Duration = Duration::from_secs(60);
const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of the Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the pages until the process ends.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, nodes: Arc<Nodes>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, registry.clone(), nodes.clone()));
            }
            Err(e) => {
                warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    path: String,
    /// Whether the connection stays open after the response.
    keep_alive: bool,
    content_length: u64,
}

/// Parses a request head (without the blank line that ends it).
fn parse_head(head: &str) -> Result<Request, &'static str> {
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("unsupported HTTP version");
    }
    let mut keep_alive = version != "HTTP/1.0";
    let mut content_length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("malformed header");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| "bad content-length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("request bodies are not supported");
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        keep_alive,
        content_length,
    })
}

/// Status, content type and body of the response to `req`.
fn respond(req: &Request, registry: &Registry, nodes: &Nodes) -> (u16, &'static str, String) {
    if req.method != "GET" && req.method != "HEAD" {
        return (405, TEXT, "only GET and HEAD\n".into());
    }
    if req.path == "/" {
        let mut body = registry.paths().join("\n");
        body.push('\n');
        return (200, TEXT, body);
    }
    let page = match req.path.strip_prefix("/metrics/").map(|r| r.split('/')) {
        Some(mut parts) => match (parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(pod), None) if !ns.is_empty() && !pod.is_empty() => {
                registry.page(ns, pod, |n| nodes.powered_on(n))
            }
            _ => Page::NotFound,
        },
        None => Page::NotFound,
    };
    match page {
        Page::Metrics(body) => (200, EXPOSITION, body),
        Page::Unavailable(why) => (503, TEXT, format!("{why}\n")),
        Page::NotFound => (404, TEXT, format!("no metrics at {}\n", req.path)),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn response(status: u16, content_type: &str, body: &str, head_only: bool, close: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads one request head; `None` at the end of the connection (or when idle too long).
async fn read_head(reader: &mut BufReader<TcpStream>) -> Option<Result<String, &'static str>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let budget = MAX_HEAD.saturating_sub(head.len() as u64);
        let mut limited = (&mut *reader).take(budget + 1);
        let n = match tokio::time::timeout(IDLE, limited.read_line(&mut line)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return None,
        };
        if n == 0 {
            return None;
        }
        if head.len() + line.len() > MAX_HEAD as usize {
            return Some(Err("request head too large"));
        }
        if !line.ends_with('\n') {
            return None; // the peer closed in the middle of a line
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content.is_empty() {
            if head.is_empty() {
                continue; // tolerated empty lines before a request
            }
            return Some(Ok(head));
        }
        head.push_str(content);
        head.push('\n');
    }
}

async fn connection(stream: TcpStream, registry: Arc<Registry>, nodes: Arc<Nodes>) {
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_head(&mut reader).await {
        let (req, (status, content_type, body)) = match head.and_then(|h| parse_head(&h)) {
            Ok(req) => {
                let r = respond(&req, &registry, &nodes);
                (Some(req), r)
            }
            Err(why) => (None, (400, TEXT, format!("{why}\n"))),
        };
        if let Some(r) = &req {
            // Discard a body (none is expected).
            let mut body = (&mut reader).take(r.content_length);
            if tokio::io::copy(&mut body, &mut tokio::io::sink())
                .await
                .is_err()
            {
                return;
            }
        }
        let keep_alive = req.as_ref().is_some_and(|r| r.keep_alive);
        let head_only = req.as_ref().is_some_and(|r| r.method == "HEAD");
        let bytes = response(status, content_type, &body, head_only, !keep_alive);
        if let Err(e) = reader.get_mut().write_all(&bytes).await {
            debug!(error = %e, "writing a metrics response failed");
            return;
        }
        if !keep_alive {
            let _ = reader.get_mut().shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let req =
            parse_head("GET /metrics/ns/web-0?x=1 HTTP/1.1\nHost: 127.0.0.1\nAccept: text/plain\n")
                .unwrap();
        assert_eq!(
            req,
            Request {
                method: "GET".into(),
                path: "/metrics/ns/web-0".into(),
                keep_alive: true,
                content_length: 0,
            }
        );
        let req = parse_head("GET / HTTP/1.1\nConnection: close\n").unwrap();
        assert!(!req.keep_alive);
        let req = parse_head("GET / HTTP/1.0\n").unwrap();
        assert!(!req.keep_alive);
        let req = parse_head("GET / HTTP/1.0\nConnection: Keep-Alive\n").unwrap();
        assert!(req.keep_alive);
        assert!(parse_head("GET /\n").is_err());
        assert!(parse_head("GET / SPDY/3\n").is_err());
        assert!(parse_head("GET / HTTP/1.1\nbroken header\n").is_err());
    }

    #[test]
    fn responses() {
        let bytes = response(200, EXPOSITION, "x 1\n", false, false);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\n\r\nx 1\n"
        );
        let bytes = response(404, TEXT, "no\n", true, true);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn serves_pages_over_tcp() {
        let registry = Arc::new(Registry::new("127.0.0.1:1".parse().unwrap()));
        let nodes = Arc::new(Nodes::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, registry, nodes));
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Two requests on one connection: keep-alive works.
        s.write_all(b"GET /metrics/ns/none HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 2, "{out}");
        assert!(out.contains("HTTP/1.1 200 OK\r\n"), "{out}");
    }
}
