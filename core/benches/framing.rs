//! Criterion benchmarks of the frame decoder, each next to a baseline measured in the same run.
//!
//! `cargo bench -p unstick-core --bench framing`; `cargo bench -p unstick-core --bench summary`
//! prints the same comparisons as ratios.

mod workloads;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use unstick_core::Algorithm;

use workloads::*;

fn plain_frames(c: &mut Criterion) {
    let wire = plain_wire();
    let mut group = c.benchmark_group("plain_frames_1M_x_64B");
    group.sample_size(20);
    group.throughput(Throughput::Elements(PLAIN_FRAMES as u64));
    group.bench_function("unstick FrameDecoder<0>", |b| {
        b.iter(|| assert_eq!(plain_unstick(black_box(&wire), usize::MAX), PLAIN_FRAMES))
    });
    group.bench_function("tokio-util LengthDelimitedCodec", |b| {
        b.iter_batched(
            || plain_bytes_mut(&wire),
            |buf| assert_eq!(plain_tokio(buf), PLAIN_FRAMES),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn header_frames(c: &mut Criterion) {
    let (wire, header) = header_wire(None);
    let (wire_xxh3, _) = header_wire(Some(Algorithm::Xxh3));
    let mut group = c.benchmark_group("header_frames_10k_x_64B");
    group.throughput(Throughput::Elements(HEADER_FRAMES as u64));
    group.bench_function("unstick decode + typed header", |b| {
        b.iter(|| assert_eq!(header_unstick(black_box(&wire), usize::MAX), HEADER_FRAMES))
    });
    group.bench_function("unstick decode + typed header + xxh3", |b| {
        b.iter(|| {
            assert_eq!(
                header_unstick(black_box(&wire_xxh3), usize::MAX),
                HEADER_FRAMES
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group(format!("header_json_{}B", header.len()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("serde_json parse alone", |b| {
        b.iter(|| black_box(header_serde_json(black_box(&header))).total_size)
    });
    group.finish();
}

fn bulk(c: &mut Criterion) {
    let mut sink = vec![0u8; BULK_BODY];
    let mut group = c.benchmark_group("bulk_64x1MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((BULK_BODIES * BULK_BODY) as u64));
    let (plain, body_starts) = bulk_wire(None);
    group.bench_function("memcpy of the wire", |b| {
        b.iter(|| bulk_memcpy(black_box(&plain), &mut sink))
    });
    group.bench_function("memcpy of the bodies", |b| {
        b.iter(|| bulk_memcpy_bodies(black_box(&plain), &body_starts, &mut sink))
    });
    group.bench_function("unstick, no checksum", |b| {
        b.iter(|| bulk_unstick(black_box(&plain), &mut sink))
    });
    drop(plain);
    for (name, algorithm) in [("xxh3", Algorithm::Xxh3), ("md5", Algorithm::Md5)] {
        let (wire, _) = bulk_wire(Some(algorithm));
        group.bench_function(format!("unstick, {name} verified"), |b| {
            b.iter(|| bulk_unstick(black_box(&wire), &mut sink))
        });
    }
    group.finish();
}

fn one_byte_at_a_time(c: &mut Criterion) {
    let (wire, _) = header_wire(None);
    let plain: Vec<u8> = plain_wire()[..HEADER_FRAMES * (4 + PLAIN_PAYLOAD)].to_vec();
    let mut group = c.benchmark_group("one_byte_per_feed");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("header frames", |b| {
        b.iter(|| assert_eq!(header_unstick(black_box(&wire), 1), HEADER_FRAMES))
    });
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("plain frames", |b| {
        b.iter(|| assert_eq!(plain_unstick(black_box(&plain), 1), HEADER_FRAMES))
    });
    group.finish();
}

criterion_group!(
    benches,
    plain_frames,
    header_frames,
    bulk,
    one_byte_at_a_time
);
criterion_main!(benches);
