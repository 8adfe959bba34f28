//! Envoy's admin interface: one bounded GET at a time, the stats by name, and the names
//! of the listener's stats.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::EnvoyError;

/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin interface of one Envoy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Admin {
    /// Where it listens.
    pub(super) addr: SocketAddr,
}

impl Admin {
    /// One GET on the admin interface; the body of a 200 answer.
    pub(super) async fn get(&self, path: &str) -> Result<String, EnvoyError> {
        let err = |why: String| EnvoyError::Admin {
            path: path.to_owned(),
            why,
        };
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(self.addr).await?;
            let req = format!("GET {path} HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let raw = tokio::time::timeout(ADMIN_TIMEOUT, exchange)
            .await
            .map_err(|_| err("timed out".to_owned()))?
            .map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| err("not an HTTP answer".to_owned()))?;
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            return Err(err(format!("HTTP {status}")));
        }
        // The admin interface answers with a chunked body: keep only the chunks' data.
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Ok(dechunk(body));
        }
        Ok(body.to_owned())
    }

    /// The admin stats whose names match `filter` (a regular expression), by name.
    pub(super) async fn stats_matching(
        &self,
        filter: &str,
    ) -> Result<BTreeMap<String, String>, EnvoyError> {
        let body = self
            .get(&format!("/stats?filter={}", percent_encode(filter)))
            .await?;
        Ok(body
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect())
    }

    /// The listener on `listener`'s counter or gauge `name` (0 when Envoy has none yet).
    pub(super) async fn listener_stat(
        &self,
        listener: SocketAddr,
        name: &str,
    ) -> Result<u64, EnvoyError> {
        let name = listener_stat(listener, name);
        let stats = self
            .stats_matching(&format!("^{}$", regex_escape(&name)))
            .await?;
        Ok(stats.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

/// The name of one of the listener's stats: `listener.127.0.0.1_PORT.NAME`.
fn listener_stat(addr: SocketAddr, name: &str) -> String {
    format!("listener.{}_{}.{name}", addr.ip(), addr.port())
}

/// `text` with the regular expression metacharacters Envoy's stat names hold escaped.
fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The data of a chunked HTTP body.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_helpers_encode_and_dechunk() {
        assert_eq!(percent_encode("^a\\.b$"), "%5Ea%5C.b%24");
        assert_eq!(dechunk("5\r\nhello\r\n3\r\n ok\r\n0\r\n\r\n"), "hello ok");
        assert_eq!(
            listener_stat(([127, 0, 0, 1], 80).into(), "downstream_cx_total"),
            "listener.127.0.0.1_80.downstream_cx_total"
        );
    }
}
