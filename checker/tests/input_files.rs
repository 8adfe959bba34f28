//! The checker's last input files opened the careful way (issue 19): `--ca-file` and
//! `--config-dump` refuse a FIFO, a device and a loop of symbolic links in one sentence
//! naming the file, exit 2, without waiting for a writer or reading the device; and the
//! split `verify --expect-from` prints on success is escaped for the terminal.

mod support;

use std::path::{Path, PathBuf};

use support::{EchoServer, assert_refused_unread, run_checker_measured};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Each path given to each flag: exit 2, one line on stderr naming the path and what it
/// is. Every run is bounded by the support's wait (the checker is killed and the test
/// fails past it, as a FIFO opened blocking would) and its memory by a ceiling.
#[test]
fn ca_files_and_config_dumps_that_are_no_files_are_refused_not_waited_on_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["verify", "--target", "127.0.0.1:9", "--expect", "one=100"];
    for (path, says) in support::no_files(dir.path(), "pem") {
        let path = path.as_str();
        let flags: [&[&str]; 2] = [&["--tls", "--ca-file", path], &["--config-dump", path]];
        for flag in flags {
            let args: Vec<&str> = base.iter().chain(flag).copied().collect();
            // Nothing of /dev/zero was read: far below the 4 MiB of a CA file and the
            // 64 MiB of a config dump.
            assert_refused_unread(&args, path, says);
        }
    }
}

/// A regular config dump of a bad shape and a regular CA file without certificates are
/// still read and judged (the careful open refuses only what is not a regular file).
#[test]
fn regular_ca_files_and_config_dumps_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.pem");
    std::fs::write(&text, "not a certificate\n").unwrap();
    let text = text.to_str().unwrap();
    let base = ["verify", "--target", "127.0.0.1:9", "--expect", "one=100"];
    let cases: [(&[&str], &str); 2] = [
        (&["--tls", "--ca-file", text], "holds no PEM certificate"),
        (&["--config-dump", text], "--config-dump"),
    ];
    for (flag, says) in cases {
        let args: Vec<&str> = base.iter().chain(flag).copied().collect();
        let (run, _) = run_checker_measured(&args, 256 * 1024);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(text) && run.stderr.contains(says),
            "{args:?}: {run:?}"
        );
        assert!(!run.stderr.contains("not a regular file"), "{run:?}");
    }
}

/// A VirtualService's name and a subset carrying terminal control sequences: the split
/// `verify --expect-from` derives and prints before sampling, on a run that passes, shows
/// them escaped, never raw.
#[test]
fn the_derived_split_printed_on_success_is_escaped() {
    let render = repo().join("manifests/tests/fixtures/manifests/kustomize-4-promote.yaml");
    let text = std::fs::read_to_string(render).expect("fixture");
    let hostile = text
        .replace("    name: canary\n", "    name: \"can\\e[31mary\"\n")
        .replace("subset: canary\n", "subset: \"can\\e[31mary\"\n")
        .replace(
            "  name: tcp-echo\nspec:\n  gateways:",
            "  name: \"tcp-\\e[2Jecho\\u009b\"\nspec:\n  gateways:",
        );
    assert_ne!(hostile, text);
    assert_eq!(hostile.matches("\\e[").count(), 3, "the fixture changed");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("hostile.yaml");
    std::fs::write(&manifests, hostile).unwrap();
    // After promotion both subsets answer `two`: the run passes.
    let server = EchoServer::start("two", 1);
    let target = server.addr().to_string();
    let args = [
        "verify",
        "--target",
        &target,
        "--expect-from",
        manifests.to_str().unwrap(),
        "--no-progress",
    ];
    let (run, _) = run_checker_measured(&args, 256 * 1024);
    assert_eq!(run.code, 0, "{run:?}");
    for (name, out) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{name}: {out:?}"
        );
    }
    assert!(
        run.stdout.contains(
            "expected split from VirtualService/tcp-\\x1b[2Jecho\\u{009b} spec.tcp[0]: two=100"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("can\\x1b[31mary"), "{}", run.stdout);
}
