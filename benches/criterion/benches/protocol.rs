//! Throughput of the wire protocol: framing lines with `LineFramer` and encoding replies.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{DEFAULT_MAX_LINE, LineFramer, encode_reply};
use std::hint::black_box;

/// About 1 MiB of probe-shaped lines.
fn input() -> Vec<u8> {
    let mut data = Vec::new();
    let mut i = 0u64;
    while data.len() < 1 << 20 {
        data.extend_from_slice(
            format!("tcp-canary {i} 2026-11-27T13:37:49.123456789Z\n").as_bytes(),
        );
        i += 1;
    }
    data
}

fn framing(c: &mut Criterion) {
    let data = input();
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("frame 1 MiB in 16 KiB reads", |b| {
        b.iter(|| {
            let mut framer = LineFramer::new(DEFAULT_MAX_LINE);
            let mut buf = BytesMut::with_capacity(32 * 1024);
            let mut lines = 0usize;
            for chunk in data.chunks(16 * 1024) {
                buf.extend_from_slice(chunk);
                while let Ok(Some(line)) = framer.next_line(&mut buf) {
                    lines += line.len();
                }
            }
            black_box(lines)
        });
    });
    group.bench_function("frame and reply 1 MiB in 16 KiB reads", |b| {
        let mut out = BytesMut::with_capacity(2 << 20);
        b.iter(|| {
            out.clear();
            let mut framer = LineFramer::new(DEFAULT_MAX_LINE);
            let mut buf = BytesMut::with_capacity(32 * 1024);
            for chunk in data.chunks(16 * 1024) {
                buf.extend_from_slice(chunk);
                while let Ok(Some(line)) = framer.next_line(&mut buf) {
                    encode_reply(b"canary", &line, &mut out);
                }
            }
            black_box(out.len())
        });
    });
    group.bench_function("encode_reply 1 MiB of lines", |b| {
        let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
        let mut out = BytesMut::with_capacity(2 << 20);
        b.iter(|| {
            out.clear();
            for line in &lines {
                encode_reply(b"canary", line, &mut out);
            }
            black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
