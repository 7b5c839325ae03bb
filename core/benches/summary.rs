//! One line per comparison, as a ratio against a baseline measured in the same run.
//!
//! `cargo bench -p unstick-core --bench summary`. Each figure is the fastest of several runs (the
//! least disturbed by other processes); `framing` has criterion's full statistics.

mod workloads;

use std::hint::black_box;
use std::time::{Duration, Instant};

use unstick_core::Algorithm;

use workloads::*;

/// Runs `setup` then times `run` on its output, `runs` times; returns the fastest time.
fn fastest<S, T>(
    runs: usize,
    mut setup: impl FnMut() -> S,
    mut run: impl FnMut(S) -> T,
) -> Duration {
    (0..runs)
        .map(|_| {
            let input = setup();
            let start = Instant::now();
            black_box(run(input));
            start.elapsed()
        })
        .min()
        .expect("at least one run")
}

fn per_second(count: f64, time: Duration) -> f64 {
    count / time.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    println!("unstick-core benchmark summary (fastest of N runs each)\n");

    // 1. Plain frames vs tokio-util.
    let wire = plain_wire();
    let ours = fastest(40, || (), |()| plain_unstick(&wire, usize::MAX));
    let theirs = fastest(40, || plain_bytes_mut(&wire), plain_tokio);
    let frames = PLAIN_FRAMES as f64;
    println!("plain frames, 1,000,000 x 64 B from one buffer:");
    println!(
        "  unstick FrameDecoder<0>          {:7.1} M frames/s",
        per_second(frames, ours) / 1e6
    );
    println!(
        "  tokio-util LengthDelimitedCodec  {:7.1} M frames/s",
        per_second(frames, theirs) / 1e6
    );
    println!(
        "  ratio unstick/tokio-util         {:7.2}x  (target >= 1.0)\n",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    drop(wire);

    // 2. Header frames vs serde_json on the header alone.
    let (wire, header) = header_wire(None);
    let (wire_xxh3, _) = header_wire(Some(Algorithm::Xxh3));
    let n = HEADER_FRAMES as f64;
    let ours = fastest(50, || (), |()| header_unstick(&wire, usize::MAX));
    let ours_xxh3 = fastest(50, || (), |()| header_unstick(&wire_xxh3, usize::MAX));
    let parse = fastest(
        50,
        || (),
        |()| {
            for _ in 0..HEADER_FRAMES {
                black_box(header_serde_json(black_box(&header)));
            }
        },
    );
    let ns = |t: Duration| t.as_secs_f64() * 1e9 / n;
    println!(
        "header frames, {}-byte JSON header + {HEADER_BODY}-byte body:",
        header.len()
    );
    println!(
        "  unstick decode + typed header    {:7.0} ns/frame",
        ns(ours)
    );
    println!(
        "    same, xxh3 declared + verified {:7.0} ns/frame",
        ns(ours_xxh3)
    );
    println!(
        "  serde_json, header alone         {:7.0} ns/header",
        ns(parse)
    );
    println!(
        "  ratio unstick frame/serde_json   {:7.2}x  (time; lower is better)\n",
        ours.as_secs_f64() / parse.as_secs_f64()
    );

    // 2b. The same with a larger, nested header (objects, arrays, floats, booleans).
    let (wire, header) = report_wire();
    let n = REPORT_FRAMES as f64;
    let ours = fastest(50, || (), |()| report_unstick(&wire));
    let parse = fastest(
        50,
        || (),
        |()| {
            for _ in 0..REPORT_FRAMES {
                black_box(report_serde_json(black_box(&header)));
            }
        },
    );
    let ns = |t: Duration| t.as_secs_f64() * 1e9 / n;
    println!(
        "header frames, {}-byte nested JSON header + {HEADER_BODY}-byte body:",
        header.len()
    );
    println!(
        "  unstick decode + typed header    {:7.0} ns/frame",
        ns(ours)
    );
    println!(
        "  serde_json, header alone         {:7.0} ns/header",
        ns(parse)
    );
    println!(
        "  ratio unstick nested header/serde_json {:5.2}x  (time; lower is better)\n",
        ours.as_secs_f64() / parse.as_secs_f64()
    );
    drop(wire);

    // 3. Bulk bodies vs memcpy, then with each checksum verified.
    let mut sink = vec![0u8; BULK_BODY];
    let passes = 16; // 16 x 64 MiB = 1 GiB
    let gib = (passes * BULK_BODIES * BULK_BODY) as f64;
    let (plain, body_starts) = bulk_wire(None);
    let copy = fastest(
        10,
        || (),
        |()| (0..passes).for_each(|_| _ = bulk_memcpy(&plain, &mut sink)),
    );
    let copy_bodies = fastest(
        10,
        || (),
        |()| (0..passes).for_each(|_| _ = bulk_memcpy_bodies(&plain, &body_starts, &mut sink)),
    );
    let pass = |wire: &[u8], sink: &mut [u8]| {
        for _ in 0..passes {
            bulk_unstick(wire, sink);
        }
    };
    let ours = fastest(10, || (), |()| pass(&plain, &mut sink));
    let gbps = |t: Duration| gib / t.as_secs_f64() / 1e9;
    println!("1 GiB as 1 MiB bodies, read in 64 KiB pieces into a 1 MiB sink:");
    println!(
        "  memcpy of the wire, 64 KiB pieces {:6.2} GB/s",
        gbps(copy)
    );
    println!(
        "  memcpy of the bodies only        {:7.2} GB/s  (same copies as the decoder makes)",
        gbps(copy_bodies)
    );
    println!("  unstick, no checksum             {:7.2} GB/s", gbps(ours));
    println!(
        "  ratio unstick/memcpy of the wire {:7.2}x  (target >= 0.8)",
        copy.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  ratio unstick/memcpy of bodies   {:7.2}x",
        copy_bodies.as_secs_f64() / ours.as_secs_f64()
    );
    drop(plain);
    for (name, algorithm, runs) in [("xxh3", Algorithm::Xxh3, 5), ("md5", Algorithm::Md5, 2)] {
        let (wire, _) = bulk_wire(Some(algorithm));
        let t = fastest(runs, || (), |()| pass(&wire, &mut sink));
        println!(
            "  unstick, {name:4} verified           {:7.2} GB/s",
            gbps(t)
        );
    }
    println!();

    // 4. One byte per call.
    let (wire, _) = header_wire(None);
    let whole = fastest(20, || (), |()| header_unstick(&wire, usize::MAX));
    let bytewise = fastest(5, || (), |()| header_unstick(&wire, 1));
    let plain: Vec<u8> = plain_wire()[..HEADER_FRAMES * (4 + PLAIN_PAYLOAD)].to_vec();
    let plain_whole = fastest(20, || (), |()| plain_unstick(&plain, usize::MAX));
    let plain_bytewise = fastest(5, || (), |()| plain_unstick(&plain, 1));
    let mbps = |bytes: usize, t: Duration| bytes as f64 / t.as_secs_f64() / 1e6;
    let ns_byte = |bytes: usize, t: Duration| t.as_secs_f64() * 1e9 / bytes as f64;
    println!("one byte per feed call (worst case):");
    println!(
        "  header frames                    {:7.1} MB/s, {:.1} ns/byte ({:.0}x slower than whole buffer)",
        mbps(wire.len(), bytewise),
        ns_byte(wire.len(), bytewise),
        bytewise.as_secs_f64() / whole.as_secs_f64()
    );
    println!(
        "  plain frames                     {:7.1} MB/s, {:.1} ns/byte ({:.0}x slower than whole buffer)",
        mbps(plain.len(), plain_bytewise),
        ns_byte(plain.len(), plain_bytewise),
        plain_bytewise.as_secs_f64() / plain_whole.as_secs_f64()
    );
}
