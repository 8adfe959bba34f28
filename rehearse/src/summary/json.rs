//! The rehearsal as JSON: the document of `checker rehearse --output json`, the walk's
//! report with the layout version it follows, and that layout's schema.

use serde::Serialize;

use super::WalkReport;

/// The version of the document's layout; bumped on any change of its fields.
pub const SCHEMA_VERSION: u32 = 1;

/// The schema the document follows, as kept in this crate.
pub const SCHEMA: &str = include_str!("../../schema/rehearsal.schema.json");

/// The `checker rehearse` JSON document: the walk's report and its layout version.
#[derive(Debug, Clone, Serialize)]
pub struct Document<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The walk, its fields at the document's top level.
    #[serde(flatten)]
    pub walk: &'a WalkReport,
}

impl<'a> Document<'a> {
    /// The document of `walk`.
    pub fn of(walk: &'a WalkReport) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            walk,
        }
    }
}

/// The document of `walk`, pretty-printed, with a final newline.
pub fn render(walk: &WalkReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&Document::of(walk)).map(|text| text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::StepOutcome;
    use crate::summary::tests::walk;

    #[test]
    fn the_shared_schema_parts_are_the_verify_schemas() {
        let rehearsal: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let report: serde_json::Value = serde_json::from_str(report::json::SCHEMA).unwrap();
        let defs = &rehearsal["$defs"];
        for name in ["fraction", "outcome", "interval", "latency"] {
            assert_eq!(defs[name], report["$defs"][name], "{name}");
        }
        let props = &report["properties"];
        for name in [
            "inputs",
            "plan",
            "stop_reason",
            "errors",
            "schedule",
            "drift",
            "mode",
            "sequential",
        ] {
            assert_eq!(defs[name], props[name], "{name}");
        }
        assert_eq!(
            defs["chi_square"],
            props["split"]["properties"]["chi_square"]
        );
        let mut version = props["versions"]["items"].clone();
        version["properties"]
            .as_object_mut()
            .unwrap()
            .remove("latency_us");
        version["required"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k != "latency_us");
        assert_eq!(defs["version"], version);
        // The verification's health, without the rules the JSON document adds.
        let mut health = props["health"].clone();
        health["properties"]
            .as_object_mut()
            .unwrap()
            .remove("rules");
        health["required"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k != "rules");
        health.as_object_mut().unwrap().remove("description");
        let mut ours = defs["health"].clone();
        ours.as_object_mut().unwrap().remove("description");
        assert_eq!(ours, health);
    }

    #[test]
    fn the_document_leads_with_its_layout_version() {
        let text = render(&walk(&[StepOutcome::Pass], false)).unwrap();
        assert!(
            text.starts_with("{\n  \"schema_version\": 1,\n  \"gateway\": \"builtin\","),
            "{text}"
        );
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            SCHEMA_VERSION
        );
    }

    /// Every byte the protocol allows in a version survives the document: written
    /// escaped by JSON, read back as written (the names of the gateway weights, the
    /// expectation and the embedded verification's versions).
    #[test]
    fn versions_with_every_allowed_byte_read_back_as_written() {
        use checker_core::sampler::{Sample, StopReason};
        use checker_core::tally::{Tally, Windowing};
        use checker_core::verdict::local::LocalReadings;
        use checker_core::verify::{Times, Verification, VerifyConfig};
        let every: String = (0x21u8..=0x7e).map(char::from).collect();
        let mut names: Vec<String> = every
            .as_bytes()
            .chunks(protocol::MAX_VERSION_LEN)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        names.extend(["\"", "\\", "a\"b\\c"].map(str::to_owned));
        let expect =
            checker_core::expect::Expectation::new(names.iter().map(|n| (n.clone(), 1.0))).unwrap();
        let mut config = VerifyConfig::new("127.0.0.1:9", expect.clone());
        config.samples = Some(50);
        let mut tally = Tally::new(Windowing::ById { total: 50 });
        for id in 0..50u64 {
            tally.record(&Sample {
                id,
                addr: "127.0.0.1:9".parse().unwrap(),
                started_at: std::time::SystemTime::UNIX_EPOCH,
                offset: std::time::Duration::ZERO,
                result: Ok(names[id as usize % names.len()].clone()),
                connect_us: Some(50),
                reply_us: Some(90),
                lag_us: None,
                handshake_us: None,
                reason: None,
                reply_head: None,
            });
        }
        let verification = Verification::build(
            &config,
            &["127.0.0.1:9".parse().unwrap()],
            None,
            tally,
            StopReason::Samples,
            LocalReadings::default(),
            Times {
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: "2026-01-01T00:00:01Z".into(),
                elapsed_s: 1.0,
            },
        );
        let mut w = walk(&[StepOutcome::Pass], false);
        w.steps[0].gateway_weights = names.iter().map(|n| (n.clone(), 1)).collect();
        w.steps[0].expect = expect.to_string();
        w.steps[0].verify = Some(verification);
        let doc: serde_json::Value = serde_json::from_str(&render(&w).unwrap()).unwrap();
        let step = &doc["steps"][0];
        assert_eq!(step["expect"], expect.to_string());
        let weights: Vec<&str> = step["gateway_weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap())
            .collect();
        assert_eq!(weights, names);
        let mut judged: Vec<&str> = step["verify"]["split"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        judged.sort_unstable();
        let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        assert_eq!(judged, sorted);
    }
}
