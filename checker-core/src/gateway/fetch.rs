//! A small bounded HTTP GET client for Envoy admin, scrape and Prometheus API URLs:
//! plain `http://` (an admin port is reached through `kubectl port-forward`), one
//! request per connection (hyper's HTTP/1 client connection over a tokio socket, no
//! pool), a timeout over the whole exchange, a cap on the body (checked against
//! `Content-Length` first, then frame by frame), and one-sentence errors.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::rt::TokioIo;

use super::input::bytes_text;

/// How long one request may take, connect to last byte, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of an error answer's body quoted in the error.
const ERROR_BODY_CHARS: usize = 200;

/// The bounds of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connect to last byte.
    pub timeout: Duration,
    /// The largest body accepted.
    pub max_bytes: u64,
}

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be used.
    #[error("the URL {url} cannot be used: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Nothing answered at the address.
    #[error("{url} does not answer: {source}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The answer did not come in time.
    #[error("{url} did not answer within {}", humantime::format_duration(*after))]
    Timeout {
        /// The URL.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// The answer was not a success.
    #[error("{url} answered HTTP {status}{}", body_text(body))]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the body, escaped.
        body: String,
    },
    /// The body is larger than allowed.
    #[error("{url} sent more than {}: refused without reading the rest", bytes_text(*limit))]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The exchange broke off or was not HTTP/1.
    #[error("{url} did not give a complete HTTP answer: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// Hyper's reason.
        reason: String,
    },
}

fn body_text(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// `base` (`http://127.0.0.1:15000`, with or without a trailing `/`) joined with
/// `path` (`/stats?...`).
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// The host, port and request target of an `http://` URL.
fn target(url: &str) -> Result<(String, u16, String, String), FetchError> {
    let invalid = |reason: &str| FetchError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(invalid(
                "https is not supported; reach the admin or Prometheus port over plain http (kubectl port-forward)",
            ));
        }
        _ => return Err(invalid("it must start with http://")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("it names no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    Ok((host, port, authority.as_str().to_owned(), path))
}

/// Checks that `url` can be asked (plain `http://`, a host, no credentials) without asking it.
pub fn check_url(url: &str) -> Result<(), FetchError> {
    target(url).map(|_| ())
}

/// GETs `url` within `limits`; the body of a 2xx answer.
pub async fn get(url: &str, limits: Limits) -> Result<Vec<u8>, FetchError> {
    let (host, port, authority, path) = target(url)?;
    match tokio::time::timeout(
        limits.timeout,
        exchange(url, &host, port, &authority, &path, limits.max_bytes),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout {
            url: url.to_owned(),
            after: limits.timeout,
        }),
    }
}

async fn exchange(
    url: &str,
    host: &str,
    port: u16,
    authority: &str,
    path: &str,
    max_bytes: u64,
) -> Result<Vec<u8>, FetchError> {
    let protocol = |e: hyper::Error| FetchError::Protocol {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|source| FetchError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(protocol)?;
    // The connection is driven beside the request; dropping it closes the socket.
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("tcp-canary/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let result = read_answer(
        url,
        sender.send_request(request).await.map_err(protocol)?,
        max_bytes,
    )
    .await;
    driver.abort();
    result
}

async fn read_answer(
    url: &str,
    response: hyper::Response<hyper::body::Incoming>,
    max_bytes: u64,
) -> Result<Vec<u8>, FetchError> {
    let status = response.status();
    let too_large = || FetchError::TooLarge {
        url: url.to_owned(),
        limit: max_bytes,
    };
    let declared = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let cap = if status.is_success() {
        if declared.is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        max_bytes
    } else {
        ERROR_BODY_CHARS as u64 * 4
    };
    let mut body = response.into_body();
    let mut out: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Protocol {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > cap {
                if status.is_success() {
                    return Err(too_large());
                }
                out.extend_from_slice(&data[..(cap as usize).saturating_sub(out.len())]);
                break;
            }
            out.extend_from_slice(&data);
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&out);
        let text: String = text.trim().chars().take(ERROR_BODY_CHARS).collect();
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            body: text.escape_debug().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(5),
        max_bytes: 1024,
    };

    /// A one-shot server that answers the first request with `answer`.
    async fn serve_once(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = s.read(&mut request).await;
            let _ = s.write_all(&answer).await;
            let _ = s.shutdown().await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_body_is_read_whole_and_statuses_are_errors() {
        let url = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec()).await;
        assert_eq!(get(&join(&url, "/stats"), LIMITS).await.unwrap(), b"hello");
        let url =
            serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot\nfound".to_vec())
                .await;
        let err = get(&url, LIMITS).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{url} answered HTTP 404: not\\nfound")
        );
    }

    #[tokio::test]
    async fn a_large_body_is_refused_by_length_or_by_counting() {
        let url =
            serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n".to_vec()).await;
        let err = get(&url, LIMITS).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{url} sent more than 1 KiB: refused without reading the rest")
        );
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'x'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let url = serve_once(chunked).await;
        assert!(matches!(
            get(&url, LIMITS).await,
            Err(FetchError::TooLarge { limit: 1024, .. })
        ));
    }

    #[tokio::test]
    async fn an_address_that_does_not_answer_is_one_sentence() {
        let addr = test_support::closed_port();
        let url = format!("http://{addr}/stats");
        let err = get(&url, LIMITS).await.unwrap_err();
        assert!(matches!(err, FetchError::Unreachable { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("{url} does not answer: ")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let limits = Limits {
            timeout: Duration::from_millis(200),
            ..LIMITS
        };
        let err = get(&url, limits).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{url} did not answer within 200ms")
        );
        drop(listener);
    }

    #[tokio::test]
    async fn a_half_answer_is_a_protocol_error() {
        let url = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort".to_vec()).await;
        assert!(matches!(
            get(&url, LIMITS).await,
            Err(FetchError::Protocol { .. })
        ));
    }

    #[test]
    fn urls_are_checked() {
        for (url, reason) in [
            ("https://x:1/", "https is not supported"),
            ("ftp://x/", "it must start with http://"),
            ("localhost:15000", "it must start with http://"),
            ("http://user:pw@x/", "credentials"),
        ] {
            let err = target(url).unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
        }
        let (host, port, authority, path) = target("http://[::1]:15000/stats?filter=a").unwrap();
        assert_eq!(
            (host.as_str(), port, authority.as_str(), path.as_str()),
            ("::1", 15000, "[::1]:15000", "/stats?filter=a")
        );
        assert_eq!(target("http://gw").unwrap().1, 80);
        assert_eq!(join("http://a:1/", "/stats"), "http://a:1/stats");
    }
}
