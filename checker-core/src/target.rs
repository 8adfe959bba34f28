//! The target: parse `HOST:PORT` (IPv4, `[IPv6]:PORT` or a name) and resolve every address.

use std::net::SocketAddr;

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target is not of the form `HOST:PORT`.
    #[error("the target {0:?} is not HOST:PORT (IPv6 as [ADDR]:PORT)")]
    Syntax(String),
    /// Port 0 cannot be connected to.
    #[error(
        "the target {0:?} has port 0, which nothing can be reached on; give the gateway's port"
    )]
    PortZero(String),
    /// The name could not be resolved.
    #[error("cannot resolve {target:?}: {source}")]
    Resolve {
        /// The target as given.
        target: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The name resolved to no address.
    #[error("{0:?} resolved to no address")]
    NoAddress(String),
}

/// Checks the shape of `target` without resolving it: `host:port` with a numeric port.
pub fn check_syntax(target: &str) -> Result<(), TargetError> {
    let syntax = || TargetError::Syntax(target.to_owned());
    let (host, port) = target.rsplit_once(':').ok_or_else(syntax)?;
    if port.parse::<u16>().map_err(|_| syntax())? == 0 {
        return Err(TargetError::PortZero(target.to_owned()));
    }
    let bare_v6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
    if host.is_empty() || host == "[]" || bare_v6 {
        return Err(syntax());
    }
    Ok(())
}

/// Resolves `target` to all its addresses, IPv4 and IPv6, in resolver order without duplicates.
pub async fn resolve(target: &str) -> Result<Vec<SocketAddr>, TargetError> {
    check_syntax(target)?;
    let found = tokio::net::lookup_host(target)
        .await
        .map_err(|source| TargetError::Resolve {
            target: target.to_owned(),
            source,
        })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(TargetError::NoAddress(target.to_owned()));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_accepts_v4_v6_and_names() {
        for ok in [
            "127.0.0.1:9000",
            "[::1]:31400",
            "localhost:1",
            "gw.example:80",
        ] {
            assert!(check_syntax(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "::1:80",
            ":80",
            "[]:80",
            "host:x",
            "host:70000",
            "127.0.0.1:0",
            "[::1]:0",
        ] {
            assert!(check_syntax(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resolves_literals_and_localhost() {
        assert_eq!(
            resolve("[::1]:7").await.unwrap(),
            vec!["[::1]:7".parse().unwrap()]
        );
        let local = resolve("localhost:7").await.unwrap();
        assert!(!local.is_empty());
        assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 7));
    }
}
