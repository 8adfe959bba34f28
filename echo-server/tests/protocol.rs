//! The wire protocol, byte for byte, against the real binary over loopback.

mod common;

use common::{Client, reply, start};

#[test]
fn echoes_lines_with_the_version_prefix_until_the_client_closes() {
    let server = start(&["--version", "one", "--ports", "0"]);
    let mut client = Client::connect(server.addr());
    for line in [
        &b"world\n"[..],
        b"second line\n",
        b"\n",
        b"  spaces kept  \n",
    ] {
        assert_eq!(client.exchange("one", line), reply("one", line));
    }
    client.finish();
    assert_eq!(client.read_to_end().unwrap(), b"");
}

#[test]
fn binary_bytes_are_echoed_unchanged() {
    let server = start(&["--version", "v2", "--ports", "0"]);
    let mut client = Client::connect(server.addr());
    let mut line: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    line.extend_from_slice(b"\r\0\xff\xfe\r\n");
    assert_eq!(client.exchange("v2", &line), reply("v2", &line));
    // Invalid UTF-8 only.
    let line = b"\xc3\x28\xa0\xa1\xe2\x28\xa1\n";
    assert_eq!(client.exchange("v2", line), reply("v2", line));
}

#[test]
fn pipelined_lines_are_answered_in_order() {
    let server = start(&["--version", "one", "--ports", "0"]);
    let mut client = Client::connect(server.addr());
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..5_000 {
        let line = format!("line {i} {}\n", "x".repeat(i % 97));
        request.extend_from_slice(line.as_bytes());
        expected.extend_from_slice(&reply("one", line.as_bytes()));
    }
    // Write from another thread so that neither side can block the other.
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&request).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let got = client.read_to_end().unwrap();
    sender.join().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "replies differ from the expected sequence");
}

#[test]
fn lines_split_across_many_writes_are_reassembled() {
    let server = start(&["--version", "one", "--ports", "0"]);
    let mut client = Client::connect(server.addr());
    let line = b"split into single bytes\n";
    for byte in line {
        client.send(&[*byte]);
    }
    assert_eq!(client.recv(4 + line.len()), reply("one", line));
}

#[test]
fn a_final_line_without_newline_is_answered() {
    let server = start(&["--version", "one", "--ports", "0"]);
    let mut client = Client::connect(server.addr());
    client.send(b"first\nlast without newline");
    client.finish();
    assert_eq!(
        client.read_to_end().unwrap(),
        b"one first\none last without newline"
    );
}

#[test]
fn a_line_of_exactly_the_limit_is_answered_and_a_longer_one_ends_the_connection() {
    let server = start(&["--version", "one", "--ports", "0", "--max-line", "16"]);
    let mut client = Client::connect(server.addr());
    let exact = b"0123456789abcde\n"; // 16 bytes with its newline
    assert_eq!(client.exchange("one", exact), reply("one", exact));
    client.send(b"ok\n0123456789abcdef\nnever answered\n");
    assert_eq!(client.recv(7), b"one ok\n");
    assert!(
        client.closed_by_server(),
        "the over-long line must end the connection"
    );
    assert_eq!(server.wait_metric("lines_too_long", |v| v >= 1), 1);
    let mut server = server;
    server.wait_log("exceeded the limit");
    // The server keeps serving other connections.
    let mut other = Client::connect(server.addr());
    assert_eq!(
        other.exchange("one", b"still here\n"),
        reply("one", b"still here\n")
    );
}

#[test]
fn streaming_a_gibibyte_without_newline_keeps_server_memory_flat() {
    let server = start(&["--version", "one", "--ports", "0"]);
    // Warm up: one ordinary exchange so that lazily allocated pieces exist.
    let mut warm = Client::connect(server.addr());
    assert_eq!(warm.exchange("one", b"warm\n"), reply("one", b"warm\n"));
    let before = server.rss_kib();
    let mut client = Client::connect(server.addr());
    let chunk = vec![b'x'; 64 * 1024];
    let limit: u64 = 1 << 30;
    let mut sent: u64 = 0;
    let mut peak = before;
    let mut closed = false;
    while sent < limit {
        use std::io::Write;
        match client.stream.write(&chunk) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(n) => sent += n as u64,
        }
        if sent % (4 << 20) < chunk.len() as u64 {
            peak = peak.max(server.rss_kib());
        }
    }
    peak = peak.max(server.rss_kib());
    assert!(
        closed,
        "the server never closed a connection that sent {sent} bytes without a newline"
    );
    assert!(
        peak <= before + 4 * 1024,
        "server RSS grew from {before} KiB to {peak} KiB while a client streamed {sent} bytes"
    );
    assert_eq!(server.wait_metric("lines_too_long", |v| v >= 1), 1);
}
