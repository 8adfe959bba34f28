//! Real servers from Debian (and Envoy) started on loopback ports for the probe, TLS and
//! metrics tests: nginx answering `GET /version` (plain or TLS), redis-server, an
//! unprivileged sshd with a `VersionAddendum`, HAProxy in TCP mode, Prometheus scraping
//! one target, and Envoy with a `tls_inspector` listener whose SNI filter chains hold
//! `tcp_proxy` `weighted_clusters` (the way Istio programs a PASSTHROUGH gateway). Each
//! runs in the foreground, in a directory the caller owns, and is killed when its
//! [`Server`] drops, also when a test panics.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{ChildGuard, free_port};

/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server: its address and its process (killed on drop).
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    child: ChildGuard,
}

/// The whole process group goes: sshd's per-connection children too.
impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
    }
}

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A certificate and key file pair (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Starts `command` (its output to `log`) and waits until `addr` accepts connections.
///
/// # Panics
/// When the program cannot start, exits, or does not listen within 30 s: the message
/// holds its log.
fn start(mut command: Command, addr: SocketAddr, log: &Path) -> Server {
    let out = std::fs::File::create(log).expect("create the server's log");
    let err = out.try_clone().expect("clone the log handle");
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    // Its own process group, killed whole when the server drops (sshd forks a child per
    // connection).
    command.process_group(0);
    let program = format!("{:?}", command.get_program());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut child = ChildGuard(child);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Server {
                addr,
                log: log.to_owned(),
                child,
            };
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{program} did not listen on {addr} ({exited:?}); its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback address on a free port.
fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// nginx answering `GET /version` with `{"version":"<version>"}` and an `X-Version`
/// header, plain or with TLS; other paths 404. Its files go in `dir/<name>/`. One
/// process (`master_process off`): no worker outlives a killed master.
///
/// # Panics
/// When it cannot start (see [`start`]).
pub fn nginx(dir: &Path, name: &str, version: &str, tls: Option<&TlsFiles>) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("nginx dir");
    let addr = loopback();
    let (ssl, certs) = match tls {
        Some(t) => (
            " ssl",
            format!(
                "ssl_certificate {};\n    ssl_certificate_key {};\n",
                t.cert.display(),
                t.key.display()
            ),
        ),
        None => ("", String::new()),
    };
    let h = home.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nuser root;\n\
         pid {h}/nginx.pid;\nerror_log {h}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {h}/body;\n  proxy_temp_path {h}/proxy;\n\
         \x20 fastcgi_temp_path {h}/fastcgi;\n  uwsgi_temp_path {h}/uwsgi;\n  scgi_temp_path {h}/scgi;\n\
         \x20 server {{\n    listen {addr}{ssl};\n    {certs}\
         \x20   location = /version {{\n      default_type application/json;\n\
         \x20     add_header X-Version {version} always;\n\
         \x20     return 200 '{{\"version\":\"{version}\"}}\\n';\n    }}\n\
         \x20   location / {{ return 404; }}\n  }}\n}}\n"
    );
    let path = home.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let mut command = Command::new(std::env::var("NGINX").unwrap_or_else(|_| "nginx".into()));
    command.arg("-p").arg(&home).arg("-c").arg(&path);
    start(command, addr, &home.join("stdout.log"))
}

/// redis-server without persistence or protected mode, on loopback.
///
/// # Panics
/// When it cannot start (see [`start`]).
pub fn redis(dir: &Path, name: &str) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("redis dir");
    let addr = loopback();
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .arg("--dir")
        .arg(&home);
    start(command, addr, &home.join("redis.log"))
}

/// Debian's Prometheus scraping `target` (`HOST:PORT`) every second as job `job` at
/// `metrics_path`, its API on a free loopback port, its data in `dir/<name>/`; ready
/// (`/-/ready` answers 200) when this returns. Whether it has scraped yet is the
/// caller's to ask, or see [`prometheus_over_envoy`].
///
/// # Panics
/// When it cannot start or is not ready within 30 s (see [`start`]); install it with
/// `apt-get install prometheus`.
pub fn prometheus(dir: &Path, name: &str, job: &str, metrics_path: &str, target: &str) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("prometheus dir");
    let config = home.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    metrics_path: {metrics_path}\n    \
             scrape_interval: 1s\n    scrape_timeout: 900ms\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let addr = loopback();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            home.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"));
    let server = start(command, addr, &home.join("prometheus.log"));
    wait_for_answer(&server, "/-/ready", |body| !body.is_empty());
    server
}

/// [`prometheus`] scraping Envoy's `/stats/prometheus` at the admin `admin_url`
/// (`http://HOST:PORT`) as job `envoy`; returns once it has scraped it (`up` is 1).
///
/// # Panics
/// As [`prometheus`]; also when Envoy is not scraped within 30 s.
pub fn prometheus_over_envoy(dir: &Path, admin_url: &str) -> Server {
    let admin = admin_url.trim_start_matches("http://");
    let server = prometheus(dir, "prometheus", "envoy", "/stats/prometheus", admin);
    wait_for_answer(
        &server,
        "/api/v1/query?query=up%7Bjob%3D%22envoy%22%7D%3D%3D1",
        |body| body.contains("\"value\""),
    );
    server
}

/// Waits (30 s at most) until `GET path` of `server` answers 200 with a body `ok` takes.
///
/// # Panics
/// When it does not, with the server's log.
fn wait_for_answer(server: &Server, path: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if http_get(server.addr, path).is_some_and(|(code, body)| code == 200 && ok(&body)) {
            return;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            panic!(
                "GET {path} of {} never answered as wanted; its log:\n{log}",
                server.addr
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` over HTTP/1.0: the status code and the body (`None` when unreachable).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// The uid of this process (from /proc, no libc).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The uid and gid of `nobody`, which sshd runs as when the test runs as root.
const NOBODY: u32 = 65534;

/// OpenSSH's sshd, unprivileged (as `nobody` when the test is root: a root sshd needs
/// /run/sshd), on a loopback port, greeting with `SSH-2.0-OpenSSH_... <addendum>`.
///
/// # Panics
/// When ssh-keygen or sshd cannot run (see [`start`]).
pub fn sshd(dir: &Path, name: &str, addendum: &str) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("sshd dir");
    let key = home.join("host_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(made.success(), "ssh-keygen failed");
    let addr = loopback();
    let h = home.display();
    let conf = format!(
        "ListenAddress {addr}\nHostKey {}\nPidFile {h}/sshd.pid\nVersionAddendum {addendum}\n\
         UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PubkeyAuthentication no\nStrictModes no\nLoginGraceTime 10\nMaxStartups 100:30:200\n",
        key.display()
    );
    let path = home.join("sshd_config");
    std::fs::write(&path, conf).expect("write sshd_config");
    // sshd re-executes itself, so it must be started by its absolute path.
    let binary = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("/usr/sbin/sshd");
    let mut command = Command::new(binary);
    command.arg("-D").arg("-e").arg("-f").arg(&path);
    if effective_uid() == Some(0) {
        for file in [&home, &key, &key.with_extension("pub"), &path] {
            std::os::unix::fs::chown(file, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
        }
        let mut parent = home.parent();
        while let Some(p) = parent {
            // Let nobody reach its directory (the test's temporary directory is 0700).
            if p.starts_with(dir) {
                std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .expect("open the directory to nobody");
            }
            parent = p.parent();
        }
        command.uid(NOBODY).gid(NOBODY);
    }
    let log = home.join("sshd.log");
    std::fs::File::create(&log).expect("create the sshd log");
    start(command, addr, &log)
}

/// HAProxy in TCP mode, `balance roundrobin` over weighted `backends` (smooth weighted
/// round robin: an exact split, no sampling noise).
///
/// # Panics
/// When it cannot start (see [`start`]).
pub fn haproxy_tcp(dir: &Path, name: &str, backends: &[(SocketAddr, u32)]) -> Server {
    haproxy(dir, name, backends, "")
}

/// Like [`haproxy_tcp`], holding what each client sends for `delay` before it goes on
/// (`tcp-request inspect-delay` until `WAIT_END`): every reply comes `delay` later, a
/// slower version made of the same server.
///
/// # Panics
/// When it cannot start (see [`start`]).
pub fn haproxy_tcp_delayed(
    dir: &Path,
    name: &str,
    backends: &[(SocketAddr, u32)],
    delay: Duration,
) -> Server {
    let hold = format!(
        "  tcp-request inspect-delay {}ms\n  tcp-request content accept if WAIT_END\n",
        delay.as_millis()
    );
    haproxy(dir, name, backends, &hold)
}

fn haproxy(dir: &Path, name: &str, backends: &[(SocketAddr, u32)], frontend: &str) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("haproxy dir");
    let addr = loopback();
    let mut conf = format!(
        "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n\
         \x20 timeout server 30s\nfrontend fe\n  bind {addr}\n{frontend}  default_backend be\nbackend be\n\
         \x20 balance roundrobin\n  option nolinger\n"
    );
    for (i, (backend, weight)) in backends.iter().enumerate() {
        let _ = writeln!(conf, "  server s{i} {backend} weight {weight}");
    }
    let path = home.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("write haproxy.cfg");
    let mut command = Command::new("haproxy");
    command.arg("-db").arg("-f").arg(&path);
    start(command, addr, &home.join("haproxy.log"))
}

/// One SNI route of [`envoy_sni`]: the names it matches and its weighted backends.
#[derive(Debug, Clone)]
pub struct SniRoute {
    /// The server names (`sniHosts`).
    pub names: Vec<String>,
    /// `(backend, weight)` pairs.
    pub backends: Vec<(SocketAddr, u32)>,
}

/// Envoy as an Istio PASSTHROUGH gateway: one listener with a `tls_inspector`, one
/// filter chain per route matching its server names, each a `tcp_proxy` with
/// `weighted_clusters`; a connection whose SNI matches no route finds no filter chain
/// and is closed. `ENVOY` names the binary (default `envoy` on PATH).
///
/// # Panics
/// When it cannot start (see [`start`]).
pub fn envoy_sni(dir: &Path, name: &str, routes: &[SniRoute]) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("envoy dir");
    let addr = loopback();
    let admin = loopback();
    let mut chains = Vec::new();
    let mut clusters = Vec::new();
    for (r, route) in routes.iter().enumerate() {
        let mut weighted = Vec::new();
        for (b, (backend, weight)) in route.backends.iter().enumerate() {
            // Istio's cluster names: outbound|PORT|SUBSET|HOST.
            let cluster = format!("outbound|443|v{b}|route{r}.test");
            weighted.push(json!({"name": cluster, "weight": weight}));
            clusters.push(json!({
                "name": cluster, "type": "STATIC", "connect_timeout": "5s",
                "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {
                        "address": backend.ip().to_string(), "port_value": backend.port()}}}}]}]}
            }));
        }
        chains.push(json!({
            "filter_chain_match": {"server_names": route.names},
            "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": format!("route{r}"),
                "weighted_clusters": {"clusters": weighted}}}]
        }));
    }
    let bootstrap = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin.port()}}},
        "static_resources": {
            "listeners": [{
                "name": "passthrough",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": addr.port()}},
                "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
                "filter_chains": chains
            }],
            "clusters": clusters
        }
    });
    let path = home.join("envoy.json");
    std::fs::write(&path, bootstrap.to_string()).expect("write the Envoy bootstrap");
    let mut command = Command::new(std::env::var("ENVOY").unwrap_or_else(|_| "envoy".into()));
    command
        .arg("-c")
        .arg(&path)
        .args(["--disable-hot-restart", "-l", "warning", "--base-id"])
        .arg(addr.port().to_string());
    start(command, addr, &home.join("envoy.log"))
}

/// The version of the redis-server at `addr`, as `redis-cli INFO server` reads it from
/// the running server (`redis_version`).
///
/// # Panics
/// When redis-cli cannot run or its answer has no `redis_version`.
pub fn redis_version(addr: SocketAddr) -> String {
    let info = Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["INFO", "server"])
        .output()
        .expect("run redis-cli");
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or_else(|| panic!("no redis_version in redis-cli's answer: {info}"))
        .trim()
        .to_owned()
}

/// An Istio-like TLS passthrough: two nginx with TLS for `canary.test` (certificates
/// `CN=stable` answering `v1` and `CN=canary` answering `v2`, signed by a new CA), behind
/// Envoy's SNI route for `canary.test` at `stable`/`canary` weights.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub struct Passthrough {
    /// Envoy, the gateway.
    pub envoy: Server,
    /// The CA file that verifies both servers.
    pub ca_file: PathBuf,
    /// The two nginx, stable then canary.
    pub backends: Vec<Server>,
}

#[cfg(feature = "tls")]
impl Passthrough {
    /// Starts it all in `dir`.
    ///
    /// # Panics
    /// When a server cannot start (see [`start`]).
    pub fn start(dir: &Path, stable: u32, canary: u32) -> Self {
        let ca = crate::tls::TestCa::new();
        let ca_file = ca.write(dir);
        let files = |cn: &str, serial| {
            let written = ca.issue(&["canary.test"], cn, serial).write(dir, cn);
            TlsFiles {
                cert: written.cert,
                key: written.key,
            }
        };
        let one = nginx(dir, "stable", "v1", Some(&files("stable", 1)));
        let two = nginx(dir, "canary", "v2", Some(&files("canary", 2)));
        let envoy = envoy_sni(
            dir,
            "envoy",
            &[SniRoute {
                names: vec!["canary.test".into()],
                backends: vec![(one.addr, stable), (two.addr, canary)],
            }],
        );
        Self {
            envoy,
            ca_file,
            backends: vec![one, two],
        }
    }
}
