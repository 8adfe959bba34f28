//! The probes against the servers users run, started by the test on loopback ports:
//! redis-server (the redis preset), two unprivileged sshd with their own
//! `VersionAddendum` (the banner preset, directly and behind HAProxy), two nginx
//! answering `GET /version` behind HAProxy (plain HTTP routed as TCP), and two nginx
//! with TLS behind Envoy with an SNI filter chain holding `weighted_clusters`, as Istio
//! programs a PASSTHROUGH gateway: the right split passes, a wrong one fails, an unknown
//! SNI is a handshake error naming it. Certificates come from a CA the test makes.
//!
//! Needs nginx (nginx-full), redis-server and redis-tools, openssh-server, haproxy and
//! Envoy (`ENVOY`, default `envoy` on PATH); `.ci/run` installs them. Every process is
//! killed when its guard drops, also on failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;

use checker_core::probe::{
    BannerSpec, DEFAULT_MAX_REPLY, HttpSpec, Probe, ProbeKind, ProbeSpec, RedisSpec,
};
use checker_core::sampler::ErrorClass;
use checker_core::tls::{CertField, TlsSpec, Verify};
use checker_core::verdict::Outcome;
use checker_core::verify::{VerifyConfig, verify};
use test_support::servers::{self, Passthrough};
use tokio_util::sync::CancellationToken;

mod support;

use support::sample;

/// Samples per verification: at 80/20 the default 99% / 5-point rule's interval is
/// then about +-2.3 points, far inside the tolerance, and 50/50 is far outside it.
const SAMPLES: u64 = 2000;

/// `checker verify` as a library call: `target`, `expect`, `probe`, a fixed count.
async fn check(target: SocketAddr, expect: &str, probe: ProbeSpec) -> checker_core::Verification {
    let mut config = VerifyConfig::new(target.to_string(), expect.parse().unwrap());
    config.samples = Some(SAMPLES);
    config.concurrency = 8;
    config.reset_on_close = true;
    config.probe = probe;
    verify(&config, CancellationToken::new()).await.unwrap()
}

fn spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        kind,
        ..ProbeSpec::default()
    }
}

#[tokio::test]
#[ignore = "needs redis-server and redis-cli: .ci/run installs them"]
async fn the_redis_preset_reads_the_running_servers_version() {
    let dir = tempfile::tempdir().unwrap();
    let redis = servers::redis(dir.path(), "redis");
    // The version as redis-cli reads it from the running server, not written here.
    let version = servers::redis_version(redis.addr);
    let redis_spec = |map: &str| ProbeSpec {
        kind: ProbeKind::Redis(RedisSpec {
            version_from: None,
            max_reply: DEFAULT_MAX_REPLY,
        }),
        version_map: map.parse().unwrap_or_default(),
        tls: None,
    };
    let report = check(redis.addr, &format!("{version}=100"), redis_spec("")).await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);
    assert_eq!(report.attributed, SAMPLES);
    // Named by the map, the same server is `stable`.
    let report = check(
        redis.addr,
        "stable=100",
        redis_spec(&format!("{version}=stable")),
    )
    .await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);
    // And a split that expects another version fails.
    let report = check(
        redis.addr,
        &format!("{version}=50,9.9.9=50"),
        redis_spec(""),
    )
    .await;
    assert_eq!(report.outcome(), Outcome::Fail);
}

#[tokio::test]
#[ignore = "needs openssh-server (sshd) and haproxy: .ci/run installs them"]
async fn the_banner_preset_splits_two_sshd_by_their_version_addendum() {
    let dir = tempfile::tempdir().unwrap();
    let stable = servers::sshd(dir.path(), "stable", "stable");
    let canary = servers::sshd(dir.path(), "canary", "canary");
    let banner = spec(ProbeKind::Banner(BannerSpec {
        version_from: Some(r"^SSH-2\.0-\S+(?: \S+)? (\S+)$".into()),
        max_reply: DEFAULT_MAX_REPLY,
    }));
    let probe = Probe::new(&banner, "127.0.0.1:22").unwrap();
    let (counts, tally, _) = sample(vec![stable.addr, canary.addr], &probe, 40).await;
    assert_eq!(
        counts,
        BTreeMap::from([("canary".into(), 20), ("stable".into(), 20)]),
        "errors: {:?}",
        tally.errors_by_class()
    );
    // Behind HAProxy at 3:1, the banner verifies the split.
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(stable.addr, 3), (canary.addr, 1)]);
    let report = check(proxy.addr, "stable=75,canary=25", banner.clone()).await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);
    let report = check(proxy.addr, "stable=50,canary=50", banner).await;
    assert_eq!(report.outcome(), Outcome::Fail);
}

#[tokio::test]
#[ignore = "needs nginx (nginx-full) and haproxy: .ci/run installs them"]
async fn the_http_preset_verifies_nginx_behind_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let one = servers::nginx(dir.path(), "one", "v1", None);
    let two = servers::nginx(dir.path(), "two", "v2", None);
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(one.addr, 4), (two.addr, 1)]);
    let http = |from: Option<&str>| {
        spec(ProbeKind::Http(HttpSpec {
            path: "/version".into(),
            host: None,
            version_from: from.map(str::to_owned),
            max_reply: DEFAULT_MAX_REPLY,
        }))
    };
    let report = check(proxy.addr, "v1=80,v2=20", http(None)).await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);
    let body = http(Some(r#""version":"([^"]+)""#));
    let report = check(proxy.addr, "v1=80,v2=20", body).await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);
    let report = check(proxy.addr, "v1=50,v2=50", http(None)).await;
    assert_eq!(report.outcome(), Outcome::Fail);
}

#[tokio::test]
#[ignore = "needs nginx (nginx-full) and Envoy (ENVOY): .ci/run installs them"]
async fn tls_passthrough_through_envoy_follows_the_sni_routes_weights() {
    let dir = tempfile::tempdir().unwrap();
    let passthrough = Passthrough::start(dir.path(), 80, 20);
    let (envoy, ca_file) = (&passthrough.envoy, passthrough.ca_file.clone());
    let tls = |sni: &str, from: Option<CertField>| TlsSpec {
        verify: Verify::CaFile(ca_file.clone()),
        sni: Some(sni.into()),
        version_from: from,
    };
    let http = |sni: &str| ProbeSpec {
        kind: ProbeKind::Http(HttpSpec {
            path: "/version".into(),
            host: Some(sni.into()),
            version_from: None,
            max_reply: DEFAULT_MAX_REPLY,
        }),
        version_map: Default::default(),
        tls: Some(tls(sni, None)),
    };
    let report = check(envoy.addr, "v1=80,v2=20", http("canary.test")).await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);
    let handshakes: u64 = report
        .tally
        .versions()
        .values()
        .map(|v| v.handshake_us.len())
        .sum();
    assert_eq!(handshakes, SAMPLES);
    let report = check(envoy.addr, "v1=50,v2=50", http("canary.test")).await;
    assert_eq!(report.outcome(), Outcome::Fail);

    // By certificate alone: nothing exchanged, the subject names the version.
    let by_cert = ProbeSpec {
        kind: ProbeKind::Handshake,
        version_map: "CN=stable=stable,CN=canary=canary".parse().unwrap(),
        tls: Some(tls("canary.test", Some(CertField::Subject))),
    };
    let report = check(envoy.addr, "stable=80,canary=20", by_cert).await;
    assert_eq!(report.outcome(), Outcome::Pass, "{:?}", report.judgement);

    // An SNI no route matches: Envoy finds no filter chain and closes; every sample is
    // a handshake error whose reason names the SNI.
    let probe = Probe::new(&http("unknown.test"), &envoy.addr.to_string()).unwrap();
    let (counts, tally, _) = sample(vec![envoy.addr], &probe, 20).await;
    assert!(counts.is_empty(), "{counts:?}");
    assert_eq!(tally.errors_of(ErrorClass::TlsHandshake), 20);
    let reason = &tally.reasons()[0].reason;
    assert!(reason.contains("SNI \"unknown.test\""), "{reason}");
}
