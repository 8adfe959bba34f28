//! Bad input never panics and never grows memory without bound: malformed YAML and JSON,
//! a 50 MB file, a `kind: List` of 10,000 items, duplicates, aliases (billion laughs),
//! deep nesting. The corpus in tests/fixtures/corpus is replayed through the whole
//! pipeline (load, model, derive, lint), and a property test mutates real manifests.

use std::path::{Path, PathBuf};

use manifests::lint::{self, LintOptions};
use manifests::load::{self, LoadError, MAX_INPUT_BYTES};
use manifests::{self, DeriveOptions, ManifestSet, ReadError};
use proptest::prelude::*;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The whole pipeline on `text`: the loaded set, or the error's sentence.
fn pipeline(text: &str, name: &str) -> Result<ManifestSet, String> {
    let docs = load::parse_text(text, name).map_err(|e| e.to_string())?;
    let set = ManifestSet::from_documents(docs).map_err(|e| e.to_string())?;
    let _ = manifests::derive(&set, &DeriveOptions::default()).map(|d| d.to_string());
    for finding in lint::lint(&set, &LintOptions::default()).findings {
        let _ = format!("{} {} {}", finding.resource, finding.field, finding.message);
    }
    Ok(set)
}

#[test]
fn the_corpus_replays_with_the_outcome_its_name_says() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir("corpus"))
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for file in files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let result = manifests::read(&[file.display().to_string()]);
        match (name.starts_with("ok-"), &result) {
            (true, Ok(_)) => {}
            (false, Err(e)) => {
                let text = e.to_string();
                assert!(
                    text.starts_with(&file.display().to_string()) || text.contains(&name),
                    "{name}: the message names the file: {text}"
                );
                assert!(!text.contains('\n'), "{name}: one line: {text}");
            }
            _ => panic!("{name}: {result:?}"),
        }
        if let Ok(text) = std::fs::read_to_string(&file) {
            let _ = pipeline(&text, &name);
        }
    }
}

#[test]
fn messages_name_the_document_and_the_field() {
    let text = std::fs::read_to_string(dir("corpus/err-wrong-type.yaml")).expect("corpus");
    let err = pipeline(&text, "vs.yaml").expect_err("weight is text");
    assert!(err.starts_with("vs.yaml, document 1 (VirtualService/vs): field spec.tcp[0].route[0].weight: invalid type"), "{err}");
    let err = pipeline("kind: Service\n---\n{\"a\": [1,}\n", "two.yaml").expect_err("malformed");
    assert!(err.starts_with("two.yaml, document 2:"), "{err}");
    let err = pipeline(
        "{\"kind\": \"List\", \"items\": [{\"kind\": \"A\"}, 3]}",
        "l.json",
    )
    .expect_err("item 1");
    assert!(
        err.contains("l.json, items[1]") && err.contains("found a number"),
        "{err}"
    );
}

#[test]
fn a_50_mb_file_is_refused_before_it_is_read_whole() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    file.as_file().set_len(50_000_000).expect("sparse 50 MB");
    let path = file.path().display().to_string();
    match manifests::read(std::slice::from_ref(&path)) {
        Err(ReadError::Load(LoadError::TooLarge { path: p })) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    const { assert!(50_000_000 > MAX_INPUT_BYTES) };
}

#[test]
fn a_list_of_10000_items_loads_and_lints() {
    let mut items = Vec::new();
    for i in 0..10_000 {
        items.push(format!(
            r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"svc-{}"}},"spec":{{"selector":{{"app":"a"}},"ports":[{{"name":"tcp","port":9000}}]}}}}"#,
            i % 9_000
        ));
    }
    let text = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#,
        items.join(",")
    );
    let set = pipeline(&text, "big.json").expect("loads");
    assert_eq!(set.resources.len(), 10_000);
    let findings = lint::lint(&set, &LintOptions::default()).findings;
    // 1,000 names appear twice: each second one is a duplicate.
    assert_eq!(findings.iter().filter(|f| f.code == "TC116").count(), 1_000);
    assert_eq!(findings[0].origin, "big.json, items[9000]");
    let yaml: String = (0..10_000)
        .map(|i| format!("- {{apiVersion: v1, kind: Service, metadata: {{name: s{i}}}}}\n"))
        .collect();
    let set = pipeline(
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n{}",
            yaml.lines().map(|l| format!("  {l}\n")).collect::<String>()
        ),
        "big.yaml",
    )
    .expect("loads");
    assert_eq!(set.resources.len(), 10_000);
}

#[test]
fn aliases_are_bounded_by_the_input_size() {
    let text = std::fs::read_to_string(dir("corpus/err-billion-laughs.yaml")).expect("corpus");
    match load::parse_text(&text, "lol.yaml") {
        Err(LoadError::Expansion { origin, .. }) => assert_eq!(origin, "lol.yaml, document 1"),
        other => panic!("{other:?}"),
    }
    // A wide alias over a big anchor: refused once the values outgrow the text.
    let anchor: String = (0..2_000).map(|i| format!("k{i}: v\n  ")).collect();
    let text = format!("a: &a\n  {anchor}\nb: [{}]\n", vec!["*a"; 1_000].join(","));
    assert!(matches!(
        load::parse_text(&text, "wide.yaml"),
        Err(LoadError::Expansion { .. })
    ));
}

#[test]
fn deep_nesting_is_refused_quickly() {
    for depth in [200, 5_000, 1_000_000] {
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(load::parse_text(&json, "d.json").is_err(), "{depth}");
        let yaml = format!("a: {json}\n");
        assert!(load::parse_text(&yaml, "d.yaml").is_err(), "{depth}");
    }
    let indented: String = (0..2_000)
        .map(|i| format!("{}- \n", " ".repeat(i)))
        .collect();
    match load::parse_text(&indented, "i.yaml") {
        Err(LoadError::TooDeep { origin, .. }) => {
            assert!(origin.starts_with("i.yaml, line "), "{origin}")
        }
        Err(LoadError::Syntax { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// Text edits applied to a real manifest set.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let alphabet = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        ":",
        "- ",
        "\n",
        "  ",
        "&a ",
        "*a",
        "---\n",
        "\"",
        "'",
        "#",
        "kind: List\nitems:\n",
        "weight: -1",
        "0",
        "\t",
        "!!binary ",
        "? ",
    ]);
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), prop::collection::vec(alphabet, 1..6))
            .prop_map(|(at, s)| Edit::Insert(at, s.concat())),
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Edit::Duplicate(at, len)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Delete(at, len) => {
                let a = at % n;
                let b = (a + len).min(bytes.len());
                bytes.drain(a.min(bytes.len())..b);
            }
            Edit::Insert(at, s) => {
                let a = (at % n).min(bytes.len());
                bytes.splice(a..a, s.bytes());
            }
            Edit::Duplicate(at, len) => {
                let a = (at % n).min(bytes.len());
                let b = (a + len).min(bytes.len());
                let copy = bytes[a..b].to_vec();
                bytes.splice(b..b, copy);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_manifests_never_panic(edits in prop::collection::vec(edit(), 1..8), which in 0usize..3) {
        let name = ["lint-clean.yaml", "kustomize-2-canary-10.yaml", "flagger-generated.yaml"][which];
        let text = std::fs::read_to_string(dir("manifests").join(name)).expect("fixture");
        let mutated = apply(&text, &edits);
        if let Err(e) = pipeline(&mutated, name) {
            prop_assert!(!e.is_empty());
            prop_assert!(e.starts_with(name), "{}", e);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = pipeline(&text, "any.yaml");
    }
}
