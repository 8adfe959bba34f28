//! A [`Tally`] as plain JSON data, carried by the JSON report so that reports from many
//! checker processes merge exactly: every latency histogram in HdrHistogram's own V2
//! deflate encoding, base64 in a string.
//!
//! Read back, a snapshot is input: [`histogram`] decodes each histogram within bounds,
//! [`check`] refuses counts that disagree with the histograms and windows beside them
//! (or add past 2^64-1) and folds versions beyond [`crate::tally::MAX_TRACKED_VERSIONS`],
//! each refusal naming the field.

pub mod check;
pub mod histogram;
mod model;

pub use check::ReadBack;
pub use histogram::HistogramError;
pub use model::{
    HISTOGRAM_ENCODING, SnapshotError, TallySnapshot, VersionSnapshot, WindowingSnapshot, decode,
    encode,
};

use crate::tally::Tally;

impl TallySnapshot {
    /// The tally this snapshot describes, checked (see [`check`]); versions beyond
    /// [`crate::tally::MAX_TRACKED_VERSIONS`] are folded, the largest kept by name.
    pub fn to_tally(&self) -> Result<Tally, SnapshotError> {
        self.read_back(&[]).map(|r| r.tally)
    }

    /// The tally this snapshot describes, checked; versions beyond
    /// [`crate::tally::MAX_TRACKED_VERSIONS`] are folded, the names in `prefer` (the
    /// expected versions) kept first, then the largest.
    pub fn read_back(&self, prefer: &[&str]) -> Result<ReadBack, SnapshotError> {
        check::rebuild(self, prefer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{ErrorClass, Sample};
    use crate::tally::Windowing;
    use std::time::{Duration, SystemTime};

    fn sample(id: u64) -> Sample {
        let result = match id % 7 {
            0 => Err(ErrorClass::Reset),
            1 => Err(ErrorClass::MalformedReply),
            2 | 3 => Ok("two".to_owned()),
            _ => Ok("one".to_owned()),
        };
        Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::now(),
            offset: Duration::from_millis(id),
            reply_head: (result == Err(ErrorClass::MalformedReply)).then(|| "two oops\\n".into()),
            connect_us: Some(10 + id * 13 % 5000),
            reply_us: result.is_ok().then_some(100 + id * 7919 % 90_000),
            lag_us: Some(id % 3),
            handshake_us: None,
            reason: None,
            result,
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_json_exactly() {
        let mut tally = Tally::new(Windowing::ById { total: 5000 });
        for id in 0..5000 {
            tally.record(&sample(id));
        }
        let snapshot = TallySnapshot::of(&tally);
        let json = serde_json::to_string(&snapshot).unwrap();
        let back: TallySnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snapshot);
        let again = back.to_tally().unwrap();
        assert_eq!(again.counts(), tally.counts());
        assert_eq!(again.errors_by_class(), tally.errors_by_class());
        assert_eq!(again.windows(), tally.windows());
        assert_eq!(again.version_errors(), tally.version_errors());
        assert_eq!(again.version_errors()["two"], 715);
        assert_eq!(again.malformed(), tally.malformed());
        assert_eq!(again.lag_us(), tally.lag_us());
        for (name, v) in tally.versions() {
            assert_eq!(again.versions()[name].reply_us, v.reply_us);
            assert_eq!(again.versions()[name].connect_us, v.connect_us);
        }
        // Without TLS or reasons the snapshot has no key for them (older readers agree).
        assert!(!json.contains("handshake_us") && !json.contains("failure_reasons"));
        // Nor for windows whose every sample is counted; a window missing some says so.
        assert!(!json.contains("left_out"));
        tally.left_out(4990, Duration::ZERO);
        tally.left_out(4991, Duration::ZERO);
        let json = serde_json::to_string(&TallySnapshot::of(&tally)).unwrap();
        assert_eq!(json.matches("\"left_out\":2").count(), 1, "{json}");
        let back: TallySnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_tally().unwrap().windows(), tally.windows());
    }

    #[test]
    fn handshake_times_and_failure_reasons_round_trip() {
        let mut tally = Tally::new(Windowing::ById { total: 100 });
        for id in 0..100 {
            let mut s = sample(id);
            if s.result.is_ok() {
                s.handshake_us = Some(200 + id);
            } else {
                s.result = Err(ErrorClass::TlsCertificate);
                s.reply_head = None;
                s.reason = Some(format!("invalid peer certificate: case {}", id % 2));
            }
            tally.record(&s);
        }
        let json = serde_json::to_string(&TallySnapshot::of(&tally)).unwrap();
        let back: TallySnapshot = serde_json::from_str(&json).unwrap();
        let again = back.to_tally().unwrap();
        assert_eq!(again.reasons(), tally.reasons());
        assert_eq!(again.reasons().len(), 2);
        for (name, v) in tally.versions() {
            assert!(!v.handshake_us.is_empty());
            assert_eq!(again.versions()[name].handshake_us, v.handshake_us);
        }
    }

    #[test]
    fn broken_snapshots_are_refused_with_a_reason() {
        let tally = {
            let mut t = Tally::new(Windowing::ByTime {
                duration: Duration::from_secs(1),
            });
            t.record(&sample(1));
            t.record(&sample(2));
            t
        };
        let good = TallySnapshot::of(&tally);
        let mut s = good.clone();
        s.histogram_encoding = "csv".into();
        assert!(s.to_tally().unwrap_err().to_string().contains("csv"));
        let mut s = good.clone();
        s.versions.get_mut("two").unwrap().reply_us = "not base64!".into();
        let e = s.to_tally().unwrap_err().to_string();
        assert!(
            e.starts_with("tally.versions.two.reply_us is not base64"),
            "{e}"
        );
        let mut s = good.clone();
        s.errors_by_class.insert("lost".into(), 1);
        let e = s.to_tally().unwrap_err().to_string();
        assert_eq!(
            e,
            "tally.errors_by_class names an unknown error class \"lost\""
        );
        let mut s = good.clone();
        s.windowing = WindowingSnapshot::Time { duration_s: -1.0 };
        let e = s.to_tally().unwrap_err().to_string();
        assert!(e.starts_with("tally.windowing.duration_s is -1"), "{e}");
        let mut s = good.clone();
        let two = s.versions.remove("two").unwrap();
        s.versions.insert("tw\u{1b}o".into(), two);
        let e = s.to_tally().unwrap_err().to_string();
        assert!(e.starts_with("tally.versions holds \"tw\\x1bo\""), "{e}");
        let mut s = good;
        s.malformed_replies[0].reply = "\u{1b}[2J".into();
        let e = s.to_tally().unwrap_err().to_string();
        assert!(
            e.starts_with("tally.malformed_replies[0].reply holds raw"),
            "{e}"
        );
    }
}
