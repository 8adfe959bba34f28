//! A real Envoy as an Istio gateway would have it, for the gateway-view tests: a
//! `tcp_proxy` listener with `weighted_clusters` delivered by LDS from a file (so a test
//! can change the weights as istiod would, by a listener update), clusters named the
//! way Istio names them (`outbound|9000|SUBSET|tcp-echo.default.svc.cluster.local`)
//! over in-process echo servers, Istio's `cluster_name` stats tag, and an admin on
//! loopback whose requests are logged (so a test can see the checker asking).
//!
//! `ENVOY` names the binary (default `envoy` on PATH). Killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{BOUND, EchoServer, Guard, free_port};

/// The Istio cluster name of a subset of `tcp-echo`.
pub fn cluster(subset: &str) -> String {
    format!("outbound|9000|{subset}|tcp-echo.default.svc.cluster.local")
}

/// A running Envoy; see the module.
pub struct Envoy {
    _child: Guard,
    dir: tempfile::TempDir,
    _servers: Vec<EchoServer>,
    /// The listener's port.
    pub listener_port: u16,
    /// The loopback address the listener binds.
    listen: std::net::Ipv4Addr,
    /// The admin's base URL.
    pub admin: String,
    /// The LDS version last written.
    version: u32,
}

/// GETs `url` with the checker's own bounded client: the status code (200, or 0 when it
/// failed) and the body.
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use checker_core::gateway::fetch::{self, Limits};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let limits = Limits {
        timeout: Duration::from_secs(10),
        max_bytes: 64 << 20,
    };
    match runtime.block_on(fetch::get(url, limits)) {
        Ok(body) => Ok((200, String::from_utf8_lossy(&body).into_owned())),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

fn static_cluster(name: &str, upstream: SocketAddr) -> serde_json::Value {
    serde_json::json!({
        "name": name, "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream.port()}}}}]}]}
    })
}

impl Envoy {
    /// Envoy with the listener weighted `weights` (`(subset, version, weight)`), one
    /// echo server per subset answering its version.
    pub fn start(weights: &[(&str, &str, u32)]) -> Envoy {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST, free_port(), weights)
    }

    /// Like [`Envoy::start`], its listener on `listen:listener_port`: a second gateway
    /// pod on another loopback address (127.0.0.2) with the first one's port, as pods
    /// behind one Service share the listener's port.
    pub fn start_on(
        listen: std::net::Ipv4Addr,
        listener_port: u16,
        weights: &[(&str, &str, u32)],
    ) -> Envoy {
        let servers: Vec<EchoServer> = weights
            .iter()
            .map(|(_, version, _)| EchoServer::start(version, 1))
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let admin_port = free_port();
        let clusters: Vec<serde_json::Value> = weights
            .iter()
            .zip(&servers)
            .map(|((subset, _, _), server)| static_cluster(&cluster(subset), server.addr()))
            .collect();
        let lds = dir.path().join("lds");
        std::fs::create_dir(&lds).expect("lds dir");
        let bootstrap = serde_json::json!({
            "node": {"id": "gateway", "cluster": "gateway"},
            "admin": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}},
                "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": dir.path().join("admin.log")}}]
            },
            // Istio's bootstrap rule: keep whole cluster names (with their dots) in the tag.
            "stats_config": {"use_all_default_tags": false, "stats_tags": [
                {"tag_name": "cluster_name", "regex": "^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)"}]},
            "dynamic_resources": {"lds_config": {"resource_api_version": "V3", "path_config_source": {
                "path": lds.join("lds.json"), "watched_directory": {"path": lds}}}},
            "static_resources": {"clusters": clusters}
        });
        write_listener(
            &lds,
            listen,
            listener_port,
            1,
            &weights.iter().map(|(s, _, w)| (*s, *w)).collect::<Vec<_>>(),
        );
        let path = dir.path().join("envoy.json");
        std::fs::write(&path, bootstrap.to_string()).expect("write the bootstrap");
        let binary = std::env::var("ENVOY").unwrap_or_else(|_| "envoy".to_owned());
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&path)
            .args([
                "--disable-hot-restart",
                "--drain-time-s",
                "1",
                "-l",
                "warning",
                "--log-path",
            ])
            .arg(dir.path().join("envoy.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (set ENVOY): {e}"));
        let envoy = Envoy {
            _child: Guard(child),
            dir,
            _servers: servers,
            listener_port,
            listen,
            admin: format!("http://127.0.0.1:{admin_port}"),
            version: 1,
        };
        envoy.wait_programmed();
        envoy
    }

    /// Waits until the admin shows the listener version last written, serving.
    fn wait_programmed(&self) {
        let deadline = Instant::now() + BOUND;
        let want = format!("\"version_info\": \"{}\"", self.version);
        loop {
            if let Ok((200, body)) = http_get(&format!("{}/config_dump", self.admin))
                && body.contains(&want)
                && TcpStream::connect(self.addr()).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy did not serve listener version {} within {BOUND:?}; log: {}",
                self.version,
                std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Programs new weights (`(subset, weight)`), as istiod would: a listener update;
    /// returns once the admin shows them.
    pub fn set_weights(&mut self, weights: &[(&str, u32)]) {
        self.version += 1;
        write_listener(
            &self.dir.path().join("lds"),
            self.listen,
            self.listener_port,
            self.version,
            weights,
        );
        self.wait_programmed();
    }

    /// The admin's access log: one line per request it answered.
    pub fn admin_log(&self) -> PathBuf {
        self.dir.path().join("admin.log")
    }

    /// How many requests for `path` the admin has answered.
    pub fn admin_requests(&self, path: &str) -> usize {
        std::fs::read_to_string(self.admin_log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("GET {path}")))
            .count()
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.listen, self.listener_port))
    }
}

/// Writes the listener on `listen:port` weighted `weights` (`(subset, weight)`) as LDS version
/// `version` into the watched directory `dir`.
fn write_listener(
    dir: &std::path::Path,
    listen: std::net::Ipv4Addr,
    port: u16,
    version: u32,
    weights: &[(&str, u32)],
) {
    // Istio leaves zero-weight destinations out (Envoy refuses a weight of 0).
    let clusters: Vec<serde_json::Value> = weights
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(subset, w)| serde_json::json!({"name": cluster(subset), "weight": w}))
        .collect();
    let lds = serde_json::json!({"version_info": version.to_string(), "resources": [{
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": format!("0.0.0.0_{port}"),
        "address": {"socket_address": {"address": listen.to_string(), "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "tcp-echo",
            "weighted_clusters": {"clusters": clusters}}}]}]}]});
    let tmp = dir.join("lds.json.tmp");
    std::fs::write(&tmp, lds.to_string()).expect("write the listener");
    // Envoy applies a watched file only when it is moved into place.
    std::fs::rename(&tmp, dir.join("lds.json")).expect("move the listener into place");
}

/// `n` connections through `addr`, one line each, by a plain client (not the checker):
/// the versions that answered, counted.
pub fn connect_loop(addr: SocketAddr, n: usize) -> std::collections::BTreeMap<String, u64> {
    let mut tally = std::collections::BTreeMap::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).expect("connect through the gateway");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        s.write_all(b"hello\n").expect("send a line");
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).expect("a reply");
        let version = line.split(' ').next().unwrap_or_default().to_owned();
        *tally.entry(version).or_insert(0u64) += 1;
        // A reset leaves no TIME_WAIT behind (the kernel's conntrack table stays small).
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    tally
}
