//! `--output junit`: results as JUnit XML, the test-report format CI systems show
//! (GitLab's merge request widget, GitHub Actions' test reporters, Jenkins).
//!
//! A result becomes a [`Suite`] of [`Case`]s (a version's share, a rehearsal step, a
//! lint finding), each passed, failed (with the one sentence as its message and a
//! `type` saying how), or INCONCLUSIVE: a failure of type `inconclusive`, or skipped
//! when [`Inconclusive::Skipped`] is asked for. The document follows the strictest
//! common schema, Apache Ant's as published by Windy Road (`report/schema/junit/
//! JUnit.xsd`): `<testsuites>` without attributes, each suite with `id`, `package`,
//! `hostname`, a `timestamp` without zone, `properties`, `system-out` and
//! `system-err`; every case with `classname` and `time`. It is written with quick-xml
//! (which escapes markup); text from outside (names, manifests) first goes through
//! [`protocol::escape`], so no control character reaches the XML.

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use checker_core::verdict::Outcome;
use checker_core::verify::Verification;

use crate::lint::LintReport;
use crate::table::pct;

/// What an INCONCLUSIVE check becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inconclusive {
    /// A failure of type `inconclusive` (the default: nothing proven is not a pass).
    #[default]
    Failure,
    /// A skipped case, with the sentence as its message.
    Skipped,
}

/// The `type` of a failure.
pub mod kind {
    /// The check's evidence says it fails.
    pub const FAIL: &str = "fail";
    /// More connections failed than the error budget allows (or none could be made).
    pub const ERRORS: &str = "errors";
    /// The evidence cannot decide yet.
    pub const INCONCLUSIVE: &str = "inconclusive";
    /// The run was interrupted before it could decide.
    pub const INTERRUPTED: &str = "interrupted";
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed.
    Pass,
    /// Failed: the failure's `type` ([`kind`]) and its one sentence.
    Fail(&'static str, String),
    /// Undecided: its sentence (a failure or a skip, as [`Inconclusive`] says).
    Inconclusive(String),
}

impl Verdict {
    /// The verdict of a check with `outcome` and its sentence (`kind` for a FAIL).
    pub fn of(outcome: Outcome, kind: &'static str, sentence: String) -> Self {
        match outcome {
            Outcome::Pass => Verdict::Pass,
            Outcome::Fail => Verdict::Fail(kind, sentence),
            Outcome::Inconclusive => Verdict::Inconclusive(sentence),
        }
    }
}

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its name, stable from run to run (CI systems track cases by name).
    pub name: String,
    /// The group it belongs to, e.g. `checker.verify.split`.
    pub classname: String,
    /// Seconds it took (0 when it took no time of its own).
    pub time_s: f64,
    /// How it ended.
    pub verdict: Verdict,
}

/// One test suite: a run of one subcommand.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Its name, e.g. `checker verify 10.0.0.1:31400`.
    pub name: String,
    /// The package, e.g. `checker.verify`.
    pub package: String,
    /// When it ran: RFC 3339 (the zone and fraction are dropped, as the schema wants).
    pub timestamp: String,
    /// Seconds it took.
    pub time_s: f64,
    /// Name and value pairs (the inputs).
    pub properties: Vec<(String, String)>,
    /// Its cases, in order.
    pub cases: Vec<Case>,
    /// The human report, as the text output shows it.
    pub system_out: String,
}

/// Where the document was written and how INCONCLUSIVE is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What an INCONCLUSIVE case becomes.
    pub inconclusive: Inconclusive,
    /// The host that ran the checks (`localhost` when unknown).
    pub hostname: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inconclusive: Inconclusive::Failure,
            hostname: "localhost".to_owned(),
        }
    }
}

/// `text` for XML: [`protocol::escape`] (control and invisible characters), and the two
/// noncharacters XML 1.0 forbids too.
fn xml_text(text: &str) -> String {
    protocol::escape(text)
        .replace('\u{fffe}', "\\u{fffe}")
        .replace('\u{ffff}', "\\u{ffff}")
}

/// Several lines for XML, each through [`xml_text`], newlines kept.
fn xml_lines(text: &str) -> String {
    text.lines().map(xml_text).collect::<Vec<_>>().join("\n")
}

/// Seconds as the schemas' time: a decimal with three places, never negative.
fn seconds(s: f64) -> String {
    format!("{:.3}", if s.is_finite() { s.max(0.0) } else { 0.0 })
}

/// `YYYY-MM-DDTHH:MM:SS` from an RFC 3339 time (the schema allows no zone).
fn timestamp(rfc3339: &str) -> String {
    let head: String = rfc3339.chars().take(19).collect();
    let well_formed = head.len() == 19
        && head.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        });
    if well_formed {
        head
    } else {
        "1970-01-01T00:00:00".to_owned()
    }
}

/// The JUnit XML document of `suites`.
pub fn render(suites: &[Suite], options: &Options) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = write(&mut writer, suites, options);
    let mut out = String::from_utf8(writer.into_inner()).unwrap_or_default();
    out.push('\n');
    out
}

fn write(w: &mut Writer<Vec<u8>>, suites: &[Suite], options: &Options) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites").write_inner_content(|w| {
        for (id, suite) in suites.iter().enumerate() {
            write_suite(w, id, suite, options)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_suite(
    w: &mut Writer<Vec<u8>>,
    id: usize,
    suite: &Suite,
    options: &Options,
) -> io::Result<()> {
    let skip = options.inconclusive == Inconclusive::Skipped;
    let count = |f: fn(&Verdict, bool) -> bool| {
        suite
            .cases
            .iter()
            .filter(|c| f(&c.verdict, skip))
            .count()
            .to_string()
    };
    let failures = count(|v, skip| {
        matches!(v, Verdict::Fail(..)) || (matches!(v, Verdict::Inconclusive(_)) && !skip)
    });
    let skipped = count(|v, skip| matches!(v, Verdict::Inconclusive(_)) && skip);
    let (id, tests) = (id.to_string(), suite.cases.len().to_string());
    let (name, package) = (xml_text(&suite.name), xml_text(&suite.package));
    let (time, stamp) = (seconds(suite.time_s), timestamp(&suite.timestamp));
    let host = xml_text(&options.hostname);
    let host = if host.trim().is_empty() {
        "localhost".to_owned()
    } else {
        host
    };
    w.create_element("testsuite")
        .with_attributes([
            ("package", package.as_str()),
            ("id", id.as_str()),
            ("name", name.as_str()),
            ("timestamp", stamp.as_str()),
            ("hostname", host.as_str()),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("properties").write_inner_content(|w| {
                for (n, v) in &suite.properties {
                    let (n, v) = (xml_text(n), xml_text(v));
                    w.create_element("property")
                        .with_attributes([("name", n.as_str()), ("value", v.as_str())])
                        .write_empty()?;
                }
                Ok(())
            })?;
            for case in &suite.cases {
                write_case(w, case, skip)?;
            }
            w.create_element("system-out")
                .write_text_content(BytesText::new(&xml_lines(&suite.system_out)))?;
            w.create_element("system-err").write_empty()?;
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, case: &Case, skip: bool) -> io::Result<()> {
    let (name, classname) = (xml_text(&case.name), xml_text(&case.classname));
    let time = seconds(case.time_s);
    let element = w.create_element("testcase").with_attributes([
        ("name", name.as_str()),
        ("classname", classname.as_str()),
        ("time", time.as_str()),
    ]);
    let failure = |w: &mut Writer<Vec<u8>>, kind: &str, message: &str| {
        let message = xml_text(message);
        w.create_element("failure")
            .with_attributes([("message", message.as_str()), ("type", kind)])
            .write_text_content(BytesText::new(&message))
            .map(|_| ())
    };
    match &case.verdict {
        Verdict::Pass => {
            element.write_empty()?;
        }
        Verdict::Fail(kind, message) => {
            element.write_inner_content(|w| failure(w, kind, message))?;
        }
        Verdict::Inconclusive(message) if skip => {
            let message = xml_text(message);
            element.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", message.as_str()))
                    .write_empty()
                    .map(|_| ())
            })?;
        }
        Verdict::Inconclusive(message) => {
            element.write_inner_content(|w| failure(w, kind::INCONCLUSIVE, message))?;
        }
    }
    Ok(())
}

/// The suite of a verification (`verify`, `merge`): a case per version's share, one for
/// the error budget, one per health check that ran; the verdict sentence and the text
/// report as its output.
pub fn verification(v: &Verification) -> Suite {
    let split = &v.judgement.split;
    let mut cases: Vec<Case> = split
        .versions
        .iter()
        .map(|vv| Case {
            name: format!("share of {}", vv.name),
            classname: "checker.verify.split".to_owned(),
            time_s: 0.0,
            verdict: Verdict::of(
                vv.outcome,
                kind::FAIL,
                format!(
                    "{} answered {} of {} ({}, interval {}..{}, band {}..{}, expected {}): {}",
                    vv.name,
                    vv.count,
                    split.total,
                    pct(vv.share),
                    pct(vv.interval.low),
                    pct(vv.interval.high),
                    pct(vv.band.low),
                    pct(vv.band.high),
                    pct(vv.expected),
                    vv.reason
                ),
            ),
        })
        .collect();
    let errors = &v.judgement.errors;
    cases.push(Case {
        name: "error budget".to_owned(),
        classname: "checker.verify.errors".to_owned(),
        time_s: 0.0,
        verdict: Verdict::of(
            errors.outcome,
            kind::ERRORS,
            format!(
                "{} of {} connections failed ({}, budget {})",
                errors.total,
                v.attempted,
                pct(errors.rate),
                pct(errors.max_rate)
            ),
        ),
    });
    let health = &v.judgement.health;
    let checked =
        health.comparison.is_some() || !health.thresholds.is_empty() || health.baseline.is_some();
    if checked {
        let failures = health.failures();
        cases.push(Case {
            name: "health".to_owned(),
            classname: "checker.verify.health".to_owned(),
            time_s: 0.0,
            verdict: Verdict::of(
                health.outcome,
                kind::FAIL,
                if failures.is_empty() {
                    crate::reason::reason(v)
                } else {
                    failures.join("; ")
                },
            ),
        });
    }
    // The overall verdict decides the exit code: a case of its own, so that a report
    // whose parts all pass can never hide a run that did not.
    cases.push(Case {
        name: "verdict".to_owned(),
        classname: "checker.verify".to_owned(),
        time_s: v.times.elapsed_s,
        verdict: Verdict::of(v.outcome(), kind::FAIL, crate::reason::reason(v)),
    });
    let inputs = &v.inputs;
    let expect: Vec<String> = inputs
        .expect
        .iter()
        .map(|e| format!("{}={}", e.name, e.weight))
        .collect();
    Suite {
        name: format!("checker verify {}", inputs.target),
        package: "checker.verify".to_owned(),
        timestamp: v.times.started_at.clone(),
        time_s: v.times.elapsed_s,
        properties: vec![
            ("target".to_owned(), inputs.target.clone()),
            ("expect".to_owned(), expect.join(",")),
            ("confidence".to_owned(), inputs.confidence.to_string()),
            ("tolerance".to_owned(), inputs.tolerance.to_string()),
            (
                "max_error_rate".to_owned(),
                inputs.max_error_rate.to_string(),
            ),
            ("exit_code".to_owned(), v.exit_code().to_string()),
        ],
        cases,
        system_out: crate::text::render(v),
    }
}

/// The suite of `checker lint`: a failing case per finding (its code as the type),
/// named after the resource and field, or one passing case when there is none.
pub fn lint(report: &LintReport, at: &str) -> Suite {
    let mut cases: Vec<Case> = report
        .findings
        .iter()
        .map(|f| Case {
            name: format!("{} {} {}", f.resource, f.field, f.code),
            classname: format!("checker.lint.{}", f.code),
            time_s: 0.0,
            verdict: Verdict::Fail(
                f.code,
                format!("{} ({}): {} [{}]", f.code, f.name, f.message, f.origin),
            ),
        })
        .collect();
    if cases.is_empty() {
        cases.push(Case {
            name: format!("{} resources", report.resources),
            classname: "checker.lint".to_owned(),
            time_s: 0.0,
            verdict: Verdict::Pass,
        });
    }
    Suite {
        name: format!("checker lint {}", report.sources.join(" ")),
        package: "checker.lint".to_owned(),
        timestamp: at.to_owned(),
        time_s: 0.0,
        properties: vec![
            ("sources".to_owned(), report.sources.join(" ")),
            ("resources".to_owned(), report.resources.to_string()),
        ],
        cases,
        system_out: crate::lint::render(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(verdicts: Vec<Verdict>) -> Suite {
        Suite {
            name: "checker verify h:1".to_owned(),
            package: "checker.verify".to_owned(),
            timestamp: "2026-12-03T09:50:18.723737Z".to_owned(),
            time_s: 1.5,
            properties: vec![("expect".to_owned(), "one=80,two=20".to_owned())],
            cases: verdicts
                .into_iter()
                .enumerate()
                .map(|(i, verdict)| Case {
                    name: format!("case {i}"),
                    classname: "checker.verify.split".to_owned(),
                    time_s: 0.0,
                    verdict,
                })
                .collect(),
            system_out: "line one\nline <two> & \u{1b}[31mred\u{202e}".to_owned(),
        }
    }

    #[test]
    fn failures_inconclusive_and_skips_are_counted_and_escaped() {
        let s = suite(vec![
            Verdict::Pass,
            Verdict::Fail(kind::FAIL, "two answered <5%> & \"more\"\u{0}".to_owned()),
            Verdict::Inconclusive("cannot decide two yet".to_owned()),
        ]);
        let xml = render(std::slice::from_ref(&s), &Options::default());
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let suite = doc.root_element().first_element_child().expect("a suite");
        assert_eq!(suite.attribute("tests"), Some("3"));
        assert_eq!(suite.attribute("failures"), Some("2"));
        assert_eq!(suite.attribute("skipped"), Some("0"));
        assert_eq!(suite.attribute("timestamp"), Some("2026-12-03T09:50:18"));
        assert_eq!(suite.attribute("time"), Some("1.500"));
        let failures: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .collect();
        assert_eq!(
            failures[0].attribute("message"),
            Some("two answered <5%> & \"more\"\\x00")
        );
        assert_eq!(failures[1].attribute("type"), Some(kind::INCONCLUSIVE));
        let out = doc
            .descendants()
            .find(|n| n.has_tag_name("system-out"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(out, "line one\nline <two> & \\x1b[31mred\\u{202e}");

        let xml = render(
            &[s],
            &Options {
                inconclusive: Inconclusive::Skipped,
                hostname: String::new(),
            },
        );
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let suite = doc.root_element().first_element_child().unwrap();
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
        assert_eq!(suite.attribute("hostname"), Some("localhost"));
        let skipped = doc
            .descendants()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(skipped.attribute("message"), Some("cannot decide two yet"));
    }

    #[test]
    fn timestamps_lose_zone_and_fraction_and_bad_ones_are_replaced() {
        assert_eq!(timestamp("2026-12-03T09:50:18.7Z"), "2026-12-03T09:50:18");
        assert_eq!(timestamp("yesterday"), "1970-01-01T00:00:00");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(-1.0), "0.000");
    }
}
