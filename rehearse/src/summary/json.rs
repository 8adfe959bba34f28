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
}
