//! The command line: Istio's positional form, env fallbacks, bad arguments, a taken
//! port, `--help`, and the admin endpoints.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::{Client, ServerProc, binary, reply, start};
use test_support::free_port;

#[test]
fn istio_sample_check_passes_with_the_positional_form() {
    // Exactly the sample's arguments, `echo-server P1,P2 hello`, on free loopback ports.
    // Both probes held at once: released one by one, the kernel may hand out the same
    // port twice, and `P,P` is refused as a duplicate.
    let (probe1, probe2) = (
        TcpListener::bind("127.0.0.1:0").expect("bind a probe port"),
        TcpListener::bind("127.0.0.1:0").expect("bind a probe port"),
    );
    let p1 = probe1.local_addr().expect("probe address").port();
    let p2 = probe2.local_addr().expect("probe address").port();
    drop((probe1, probe2));
    let mut cmd = Command::new(binary());
    cmd.arg(format!("{p1},{p2}"))
        .arg("hello")
        .env("ECHO_SERVER_LISTEN", "127.0.0.1")
        .env("ECHO_SERVER_ADMIN_PORT", "0");
    let server = ServerProc::spawn(cmd);
    assert_eq!(
        server.echo.iter().map(|a| a.port()).collect::<Vec<_>>(),
        vec![p1, p2]
    );
    for &addr in &server.echo {
        let mut client = Client::connect(addr);
        assert_eq!(client.exchange("hello", b"world\n"), b"hello world\n");
    }
}

#[test]
fn named_flags_fall_back_to_environment_variables() {
    let mut cmd = Command::new(binary());
    cmd.env("ECHO_SERVER_PORTS", "0,0")
        .env("ECHO_SERVER_VERSION", "from-env")
        .env("ECHO_SERVER_LISTEN", "127.0.0.1")
        .env("ECHO_SERVER_ADMIN_PORT", "0");
    let server = ServerProc::spawn(cmd);
    assert_eq!(server.echo.len(), 2);
    for &addr in &server.echo {
        let mut client = Client::connect(addr);
        assert_eq!(
            client.exchange("from-env", b"x\n"),
            reply("from-env", b"x\n")
        );
    }
}

#[test]
fn bad_arguments_give_one_sentence_and_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["9000"],
        &["70000", "one"],
        &["9000,x", "one"],
        &["9000,9000", "one"],
        &["9000", "has space"],
        &["9000", "one", "--ports", "9001"],
        &["9000", "one", "--idle-timeout", "soon"],
        &["9000", "one", "--max-line", "0"],
        &["9000", "one", "--no-such-flag"],
        &[
            "9000",
            "one",
            "--drain-delay",
            "10s",
            "--shutdown-timeout",
            "5s",
        ],
        &["9000", "one", "--log-format", "xml"],
        &["9000,9901", "one"],
        &["9000", "one", "--threads", "100000"],
        &["9000", "one", "--max-connections", "-5"],
        &["9000", "one", "--admin-max-connections", "0"],
        &["9000", "one", "--admin-max-request", "1"],
    ];
    for args in cases {
        let out = Command::new(binary())
            .args(*args)
            .env_remove("ECHO_SERVER_PORTS")
            .env_remove("ECHO_SERVER_VERSION")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?} must give one sentence: {stderr:?}"
        );
        assert!(lines[0].starts_with("echo-server: "), "{stderr:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

/// Runs `echo-server --print-config ARGS` with `env` set (and no other ECHO_SERVER_*).
fn print_config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.arg("--print-config").args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("ECHO_SERVER_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run echo-server --print-config")
}

#[test]
fn print_config_shows_the_resolved_configuration_and_exits_0() {
    // Istio's positional form, everything else at its default.
    let out = print_config(&["9000,9001", "one"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8 on stdout");
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON object on one line: {text:?}"
    );
    let config: serde_json::Value = serde_json::from_str(&text).expect("JSON on stdout");
    let expected = serde_json::json!({
        "ports": [9000, 9001],
        "version": "one",
        "listen": "0.0.0.0",
        "max_line": 65536,
        "max_connections": 10000,
        "socket_buffer": 16384,
        "idle_timeout_seconds": 300.0,
        "admin_port": 9901,
        "admin_max_connections": 64,
        "admin_header_timeout_seconds": 5.0,
        "admin_max_request": 16384,
        "admin_idle_timeout_seconds": 30.0,
        "drain_delay_seconds": 5.0,
        "shutdown_timeout_seconds": 25.0,
        "tls_cert": null,
        "tls_key": null,
        "log_format": "text",
        "threads": 1,
        "strict_limits": false,
    });
    assert_eq!(config, expected);
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Named flags, spaced and with '=', and environment fallbacks; 0 and --no-admin are null.
    let out = print_config(
        &[
            "--version",
            "two",
            "--idle-timeout=0",
            "--drain-delay",
            "1500ms",
        ],
        &[
            ("ECHO_SERVER_PORTS", "9002"),
            ("ECHO_SERVER_NO_ADMIN", "yes"),
            ("ECHO_SERVER_SOCKET_BUFFER", "0"),
            ("ECHO_SERVER_SHUTDOWN_TIMEOUT", "1m"),
            ("ECHO_SERVER_LOG_FORMAT", "json"),
            ("ECHO_SERVER_LISTEN", "::1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(config["ports"], serde_json::json!([9002]));
    assert_eq!(config["version"], "two");
    assert_eq!(config["listen"], "::1");
    assert_eq!(config["admin_port"], serde_json::Value::Null);
    assert_eq!(config["idle_timeout_seconds"], serde_json::Value::Null);
    assert_eq!(config["socket_buffer"], serde_json::Value::Null);
    assert_eq!(config["drain_delay_seconds"], 1.5);
    assert_eq!(config["shutdown_timeout_seconds"], 60.0);
    assert_eq!(config["log_format"], "json");
}

#[test]
fn print_config_with_a_bad_configuration_exits_2_and_prints_no_json() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (&[], &[]),
        (&["9000,9000", "one"], &[]),
        (
            &[
                "9000",
                "one",
                "--drain-delay",
                "10s",
                "--shutdown-timeout",
                "5s",
            ],
            &[],
        ),
        (&["9000", "one"], &[("ECHO_SERVER_PORTS", "9001")]),
        (&["--version", "one"], &[("ECHO_SERVER_PORTS", "x")]),
    ];
    for (args, env) in cases {
        let out = print_config(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} {env:?} printed to stdout");
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    }
}

#[test]
fn a_taken_port_is_named_and_nothing_is_left_listening() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let free = free_port();
    let out = Command::new(binary())
        .args([&format!("{free},{taken_port}"), "one"])
        .args(["--listen", "127.0.0.1", "--admin-port", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{taken_port}")),
        "the error must name the port: {stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    // The process is gone, and the port it did bind first was released.
    assert!(std::net::TcpStream::connect(("127.0.0.1", free)).is_err());
    TcpListener::bind(("127.0.0.1", free)).expect("the first port must be free again");
}

#[test]
fn durations_follow_the_rule_the_checker_uses() {
    // One rule for both binaries (cli-support): units or bare seconds, fractions allowed.
    for text in ["1.5", "1.5s", "1500ms", " 1.5 "] {
        let out = print_config(&["9000", "one", "--drain-delay", text], &[]);
        assert_eq!(out.status.code(), Some(0), "{text:?}: {out:?}");
        let config: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert_eq!(config["drain_delay_seconds"], 1.5, "{text:?}");
    }
    for text in ["-1", "soon", "NaN"] {
        let out = print_config(&["9000", "one", "--drain-delay", text], &[]);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {out:?}");
    }
    let out = Command::new(binary()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("a bare number of seconds"), "{help}");
}

#[test]
fn help_documents_the_one_protocol_difference() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("final line without \\n"), "{help}");
    assert!(help.contains("9000,9001 one"), "{help}");
    for flag in [
        "--max-line",
        "--max-connections",
        "--idle-timeout",
        "--admin-port",
        "--drain-delay",
        "--shutdown-timeout",
        "--log-format",
        "ECHO_SERVER_VERSION",
        "--admin-max-connections",
        "--admin-header-timeout",
        "--admin-max-request",
        "--admin-idle-timeout",
        "--strict-limits",
        "--socket-buffer",
        "ECHO_SERVER_STRICT_LIMITS",
        "--print-config",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn admin_endpoints_report_health_version_and_metrics() {
    let server = start(&["0", "canary"]);
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/readyz").0, 200);
    let (status, body) = server.get("/version");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["version"], "canary");
    assert_eq!(info["build_version"], env!("CARGO_PKG_VERSION"));
    assert!(info["git_revision"].as_str().is_some_and(|r| !r.is_empty()));
    let mut client = Client::connect(server.addr());
    client.send(b"a\nbb\n");
    assert_eq!(client.recv(19), b"canary a\ncanary bb\n");
    server.wait_metric("lines_echoed", |v| v == 2);
    assert_eq!(server.metric("connections_accepted"), 1);
    assert_eq!(server.metric("connections_active"), 1);
    assert_eq!(server.metric("bytes_received"), 5);
    assert_eq!(server.metric("bytes_sent"), 19);
    let (_, metrics) = server.get("/metrics");
    for name in [
        "echo_connections_rejected_total",
        "echo_connections_idle_closed_total",
        "echo_lines_too_long_total",
    ] {
        assert!(
            metrics.contains(&format!("{name}{{version=\"canary\"}} 0")),
            "{name} missing: {metrics}"
        );
    }
    assert_eq!(server.get("/nope").0, 404);
}

#[test]
fn json_logs_on_request() {
    let mut cmd = Command::new(binary());
    cmd.args([
        "0",
        "one",
        "--listen",
        "127.0.0.1",
        "--no-admin",
        "--log-format",
        "json",
    ]);
    let mut server = ServerProc::spawn(cmd);
    assert_eq!(server.admin, None);
    let line = server.wait_log("listening");
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(value["fields"]["version"], "one");
}

#[test]
fn negative_numbers_get_the_same_sentence_as_other_out_of_range_values() {
    let message = |args: &[&str]| {
        let out = Command::new(binary())
            .args(["9000", "one"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    };
    // Durations too: `--idle-timeout -1` said "unexpected argument '-1'".
    for flag in ["--idle-timeout", "--admin-idle-timeout", "--drain-delay"] {
        let separate = message(&[flag, "-1"]);
        let joined = message(&[&format!("{flag}=-1")]);
        assert_eq!(separate, joined, "{flag}");
        assert!(
            separate.contains(flag) && separate.contains("must be"),
            "{separate}"
        );
        assert!(!separate.contains("unexpected argument"), "{separate}");
    }
    for flag in ["--max-connections", "--max-line", "--threads"] {
        let zero_or_huge = if flag == "--threads" { "100000" } else { "0" };
        let out_of_range = message(&[flag, zero_or_huge]);
        assert!(
            out_of_range.contains(&format!("{flag} must be a whole number from")),
            "{out_of_range}"
        );
        let wording = |m: &str| m.split(": ").nth(1).unwrap_or_default().to_owned();
        for negative in [vec![flag, "-5"], vec![&*format!("{flag}=-5")]] {
            let got = message(&negative);
            assert_eq!(
                wording(&got).replace("\"-5\"", "X"),
                wording(&out_of_range).replace(&format!("\"{zero_or_huge}\""), "X"),
                "{negative:?}"
            );
        }
    }
}

#[test]
fn environment_errors_name_the_variable() {
    for (name, value) in [
        ("ECHO_SERVER_MAX_CONNECTIONS", "abc"),
        ("ECHO_SERVER_MAX_CONNECTIONS", "-5"),
        ("ECHO_SERVER_THREADS", "100000"),
        ("ECHO_SERVER_NO_ADMIN", "maybe"),
        ("ECHO_SERVER_IDLE_TIMEOUT", "soon"),
        ("ECHO_SERVER_ADMIN_PORT", "-1"),
        ("ECHO_SERVER_LISTEN", "nowhere"),
    ] {
        let out = Command::new(binary())
            .args(["9000", "one"])
            .env(name, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(name), "{name}={value}: {stderr:?}");
    }
}

#[test]
fn a_bad_port_list_or_version_from_the_environment_names_its_variable() {
    for (name, value) in [
        ("ECHO_SERVER_PORTS", "9000,abc"),
        ("ECHO_SERVER_VERSION", "has space"),
    ] {
        let mut cmd = Command::new(binary());
        cmd.env("ECHO_SERVER_PORTS", "9000")
            .env("ECHO_SERVER_VERSION", "one")
            .env(name, value)
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(name), "{name}={value}: {stderr:?}");
    }
}

#[test]
fn boolean_variables_accept_the_usual_spellings() {
    for (value, admin) in [
        ("1", false),
        ("true", false),
        ("yes", false),
        ("0", true),
        ("false", true),
        ("no", true),
    ] {
        let mut cmd = Command::new(binary());
        cmd.args(["0", "one", "--listen", "127.0.0.1", "--admin-port", "0"])
            .env("ECHO_SERVER_NO_ADMIN", value);
        let server = ServerProc::spawn(cmd);
        assert_eq!(
            server.admin.is_some(),
            admin,
            "ECHO_SERVER_NO_ADMIN={value}"
        );
    }
}
