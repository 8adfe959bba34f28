//! The `checker lint --output json` document and its text ([`render`]): the findings of
//! [`manifests::lint`] with the split [`manifests::derive`] reads from the same set.

use std::collections::BTreeMap;

use serde::Serialize;

use manifests::lint::{Finding, LintOptions, lint};
use manifests::{Derivation, DeriveError, ManifestSet};

/// The version of the lint document's layout (report/schema/lint.schema.json).
pub const SCHEMA_VERSION: u32 = 2;

/// The schema the lint document follows, as kept in the repository.
pub const SCHEMA: &str = include_str!("../schema/lint.schema.json");

/// The `checker lint --output json` document.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program that wrote it.
    pub tool: crate::json::Tool,
    /// The sources read, as given.
    pub sources: Vec<String>,
    /// `clean` or `findings`.
    pub outcome: &'static str,
    /// Resources of known kinds read.
    pub resources: usize,
    /// Kinds that take no part in routing (`apiVersion kind`) and how many were skipped.
    pub skipped_kinds: BTreeMap<String, usize>,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// The split these manifests route, derived as `verify --expect-from` derives it
    /// (`None` when it cannot be, see `split_error`): scripts read it without sampling.
    pub split: Option<Derivation>,
    /// Why no split can be derived: the resource, the field and one sentence.
    pub split_error: Option<DeriveError>,
}

impl LintReport {
    /// Lints `set`, read from `sources`.
    pub fn of(sources: &[String], set: &ManifestSet, options: &LintOptions) -> Self {
        let linted = lint(set, options);
        let findings = linted.findings;
        let (split, split_error) = match linted.split {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            tool: crate::json::Tool {
                name: "checker",
                version: env!("CARGO_PKG_VERSION"),
            },
            sources: sources.to_vec(),
            outcome: if findings.is_empty() {
                "clean"
            } else {
                "findings"
            },
            resources: set.resources.len(),
            skipped_kinds: set.skipped.clone(),
            findings,
            split,
            split_error,
        }
    }
}

/// The findings for the terminal, one line each, then a summary line. What came from
/// the manifests (names, fields, files, messages quoting them) is escaped.
pub fn render(report: &LintReport) -> String {
    use protocol::escape;
    let mut out = String::new();
    for f in &report.findings {
        let istio = f
            .istio_code
            .map(|c| format!(", istioctl {c}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {}: {} ({}{istio}): {} [{}]\n",
            escape(&f.resource),
            escape(&f.field),
            f.code,
            f.name,
            escape(&f.message),
            escape(&f.origin)
        ));
    }
    match (&report.split, &report.split_error) {
        (Some(d), _) => {
            // A TLS passthrough route says how it was chosen (the server name).
            let tls = d.tls.as_ref().map(|t| format!(", {t}")).unwrap_or_default();
            out.push_str(&format!(
                "split: {} ({}{})\n",
                escape(d.expect_text()),
                escape(&d.route),
                escape(tls)
            ));
        }
        (None, Some(e)) => out.push_str(&format!("split: none: {}\n", escape(e.to_string()))),
        (None, None) => {}
    }
    let skipped: usize = report.skipped_kinds.values().sum();
    let skipped = if skipped == 0 {
        String::new()
    } else {
        format!(", {skipped} of other kinds skipped")
    };
    if report.findings.is_empty() {
        out.push_str(&format!(
            "clean: {} resources, no findings{skipped}\n",
            report.resources
        ));
    } else {
        let n = report.findings.len();
        let noun = if n == 1 { "finding" } else { "findings" };
        out.push_str(&format!(
            "{n} {noun} in {} resources{skipped}\n",
            report.resources
        ));
    }
    out
}
