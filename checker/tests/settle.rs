//! `--settle` through the rehearsal's in-process gateway, whose weights change while the
//! checker is already settling: the counted verdict must PASS on the new split, and the
//! report must show the old split in its settling windows.

#![cfg(feature = "rehearse")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use checker_core::verdict::Outcome;
use checker_core::verify::{self, SequentialConfig, SettleEnd, VerifyConfig};
use rehearse::fleet::Fleet;
use rehearse::ingress::builtin::Gateway;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_waits_for_the_new_weights_then_the_verdict_passes_on_them() {
    let mut fleet = Fleet::new(Duration::from_secs(1));
    let one = fleet.start("one", "stable").await.unwrap();
    let two = fleet.start("two", "canary").await.unwrap();
    let gateway = Gateway::bind("127.0.0.1:0".parse().unwrap(), 7)
        .await
        .unwrap();
    gateway.add_replica("stable", one.addr);
    gateway.add_replica("canary", two.addr);
    // The old route: everything to `one`, while the check already expects 50/50.
    gateway
        .set_weights(&[("stable", 100), ("canary", 0)])
        .unwrap();

    let mut config = VerifyConfig::new(
        gateway.local_addr().to_string(),
        "one=50,two=50".parse().unwrap(),
    );
    config.settle = Some(Duration::from_secs(60));
    config.sequential = Some(SequentialConfig::default());
    config.reset_on_close = true;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { verify::verify(&config, stop).await }
    });

    // "Apply" the new weights once the checker has sampled the old route for a while
    // (two settling windows' worth), bounded: at most 30 s of polling.
    let mut polls = 0;
    while gateway.stats().accepted < 400 && polls < 3000 && !run.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        polls += 1;
    }
    gateway
        .set_weights(&[("stable", 50), ("canary", 50)])
        .unwrap();

    let report = run.await.unwrap().unwrap();
    let settled = report.settle.as_ref().expect("a settling phase");
    assert_eq!(settled.end, SettleEnd::Consistent, "{settled:#?}");
    // The first window saw the old split only; the last one matched the new split.
    let first = &settled.windows[0];
    assert!(!first.consistent, "{settled:#?}");
    assert_eq!(first.counts.get("two"), None, "{settled:#?}");
    assert!(settled.windows.len() >= 2, "{settled:#?}");
    assert!(settled.windows.last().unwrap().consistent);
    assert_eq!(
        report.outcome(),
        Outcome::Pass,
        "{}",
        report::reason::reason(&report)
    );
    assert_eq!(report.judgement.split.outcome, Outcome::Pass);

    // The JSON document carries the settling phase and follows the schema.
    let doc: serde_json::Value = serde_json::from_str(&report::json::to_string(&report)).unwrap();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["settle"]["end"], "consistent");
    assert_eq!(doc["mode"], "sequential");
    assert!(doc["settle"]["windows"][0]["counts"]["one"].as_u64() > Some(0));
    let text = report::text::render(&report);
    assert!(
        text.contains("settle: consistent with the expectation"),
        "{text}"
    );

    gateway.shutdown(Duration::from_secs(1)).await;
    fleet.stop_all().await;
}
