//! The Cortex-M4 device firmware (`examples/device`) under QEMU's `mps2-an386`, driven by the
//! real `unstick` binary over QEMU's UART-to-TCP bridge (`-serial tcp:...`, reached as
//! `uart+tcp://`) and over a pty (`serial:`), in link frames: files of 0 B, 1 B
//! and 200 KiB through put, get, ls, stat and delete; a resume after a cut; uploads larger than
//! the free space or the whole store refused with the store unchanged; the shell's built-ins
//! with their exit statuses and stderr; the device's answer to `info`, and the client keeping
//! to the limits it gives.
//!
//! `.ci/run` builds the firmware and installs `qemu-system-arm` before the workspace's tests, so
//! CI always runs this. Elsewhere it is skipped, with the reason printed, when either is missing:
//! build the firmware with the command in `.ci/run` (step "device firmware").

mod device_common;
mod serial_bridge;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use device_common::{
    CALL_LIMIT, Device, crc32, failed, leading_number, listing, ok, pattern, qemu_running,
    runnable, unstick_in,
};

/// The device's store, as `examples/device/src/store.rs` sizes it.
const STORE_CAPACITY: usize = 256 * 1024;

/// The board: QEMU's `mps2-an386`, a Cortex-M4.
const MACHINE: &[&str] = &["-machine", "mps2-an386", "-cpu", "cortex-m4"];

fn firmware() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/device/target/thumbv7em-none-eabihf/release/unstick-device")
}

/// `qemu-system-arm` running the firmware on the mps2-an386 board, its UART0 on `serial`.
fn qemu_with_serial(serial: &str) -> Command {
    qemu_running(MACHINE, &firmware(), serial, "none")
}

#[test]
fn the_cli_drives_the_emulated_device_over_its_uart() {
    if !runnable(&firmware()) {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let device = Device::boot(qemu_with_serial);

    // Files of 0 B, 1 B and 200 KiB, up and back byte-identical.
    assert_eq!(listing(&device, cwd), []);
    let files = [
        ("empty.bin", pattern(0, 1)),
        ("one.bin", pattern(1, 2)),
        ("big.bin", pattern(200 * 1024, 3)),
    ];
    for (name, data) in &files {
        fs::write(cwd.join(name), data).unwrap();
        let stored = device.ftp(&["put", name], cwd);
        ok(&stored, &format!("put {name}"));
        device.get_exact(name, data, cwd, "after its upload");
        let stat = ok(&device.ftp(&["stat", name], cwd), &format!("stat {name}"));
        assert!(
            stat.contains(&format!(
                "file {} byte{}",
                data.len(),
                if data.len() == 1 { "" } else { "s" }
            )),
            "stat {name}: {stat}"
        );
    }
    let mut expected: Vec<(String, u64)> = files
        .iter()
        .map(|(name, data)| (name.to_string(), data.len() as u64))
        .collect();
    expected.sort();
    let mut listed = listing(&device, cwd);
    listed.sort();
    assert_eq!(listed, expected);

    // The shell sees the same store.
    let big = &files[2].1;
    let crc = device.shell("crc big.bin");
    assert_eq!(crc.status.code(), Some(0), "{crc:?}");
    assert_eq!(
        String::from_utf8_lossy(&crc.stdout),
        format!("{:08x} {} big.bin\n", crc32(big), big.len())
    );
    let free = ok(&device.shell("free"), "free");
    assert!(
        free.starts_with(&format!("{} bytes used", 200 * 1024 + 1)),
        "{free}"
    );

    // The device says what it is: both protocols, its board, its real limits.
    let info = device.info(cwd);
    assert_eq!(
        info["protocols"],
        serde_json::json!(["shell", "file"]),
        "{info}"
    );
    assert_eq!(info["board"], "mps2-an386", "{info}");
    let free = STORE_CAPACITY - (200 * 1024 + 1);
    let limits = [
        ("max_path", 64),
        ("max_command", 256),
        ("max_header", 1024),
        ("max_file_size", STORE_CAPACITY),
        ("free_space", free),
    ];
    for (member, value) in limits {
        assert_eq!(info[member], value, "{member}: {info}");
    }
    // A name longer than the device takes is refused by the client from the device's info,
    // before a byte of the upload is sent.
    let long_name = "n".repeat(65);
    fs::write(cwd.join(&long_name), b"x").unwrap();
    let refused = failed(&device.ftp(&["put", &long_name], cwd), "put a long name");
    assert!(
        refused.contains("at most 64 bytes") && refused.contains("nothing was sent"),
        "{refused}"
    );

    // Larger than the free space: refused from the header, nothing written.
    let over = pattern(STORE_CAPACITY - 200 * 1024, 4);
    fs::write(cwd.join("over.bin"), &over).unwrap();
    let refused = failed(&device.ftp(&["put", "over.bin"], cwd), "put over.bin");
    assert!(
        refused.contains("no_space") && refused.contains("free"),
        "{refused}"
    );
    device.wait_ready();
    assert_eq!(listed, {
        let mut now = listing(&device, cwd);
        now.sort();
        now
    });

    // Larger than the whole store, under the name of a stored file: refused, and the stored
    // file is intact.
    let huge = pattern(STORE_CAPACITY + 1, 5);
    fs::write(cwd.join("huge.bin"), &huge).unwrap();
    let refused = failed(
        &device.ftp(&["put", "huge.bin", "big.bin"], cwd),
        "put huge.bin",
    );
    // The client knows the store's size from the device's info: nothing is sent.
    assert!(
        refused.contains(&format!("at most {STORE_CAPACITY} bytes")),
        "{refused}"
    );
    device.wait_ready();
    device.get_exact("big.bin", big, cwd, "after the refusals");

    // Delete, then stat and delete what is gone.
    for name in ["empty.bin", "one.bin"] {
        ok(
            &device.ftp(&["delete", name], cwd),
            &format!("delete {name}"),
        );
        let gone = failed(&device.ftp(&["stat", name], cwd), "stat after delete");
        assert!(gone.contains("no such file"), "{gone}");
    }
    let again = failed(&device.ftp(&["delete", "one.bin"], cwd), "delete twice");
    assert!(again.contains("not_found"), "{again}");
    // The store is flat: mkdir and mv are refused with a sentence, and the line goes on.
    for args in [&["mkdir", "d"][..], &["mv", "big.bin", "moved.bin"]] {
        let refused = failed(&device.ftp(args, cwd), &args.join(" "));
        assert!(refused.contains("store is flat"), "{refused}");
    }
    assert_eq!(
        listing(&device, cwd),
        [("big.bin".to_owned(), big.len() as u64)]
    );

    // An upload cut off mid-body is kept; `put --resume` finishes it.
    let cut = pattern(20_000, 6);
    fs::write(cwd.join("cut.bin"), &cut).unwrap();
    device.cut_upload("cut.bin", &cut, 8_000, cwd);
    device.resume_upload("cut.bin", &cut, 8_000, cwd);

    // Shell built-ins: output, stderr, exit statuses.
    let echo = device.shell("echo hi");
    assert_eq!(echo.status.code(), Some(0), "{echo:?}");
    assert_eq!(echo.stdout, b"hi\n");
    assert!(echo.stderr.is_empty(), "{echo:?}");
    let missing = device.shell("crc nothing.bin");
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(missing.stdout.is_empty());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nothing.bin: no such file"));
    let unknown = device.shell("reboot now");
    assert_eq!(unknown.status.code(), Some(127), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("reboot: command not found"));
    let uptime = ok(&device.shell("uptime"), "uptime");
    let ms = leading_number(&uptime, "uptime");
    assert!(
        ms > 0 && ms < started.elapsed().as_millis() as u64 + 1_000,
        "uptime {ms} ms, the test has run {:?}",
        started.elapsed()
    );
    let ls = ok(&device.shell("ls"), "ls");
    assert!(ls.contains("big.bin") && ls.contains("cut.bin"), "{ls}");

    println!("device test took {:?}", started.elapsed());
}

#[test]
fn the_cli_drives_the_emulated_device_over_a_serial_line() {
    if !runnable(&firmware()) {
        return;
    }
    let device = Device::boot_on_a_pty(qemu_with_serial);
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    for (name, len) in [("none.bin", 0), ("one.bin", 1), ("some.bin", 20 * 1024)] {
        let data = pattern(len, len as u64 + 11);
        std::fs::write(cwd.join(name), &data).unwrap();
        ok(
            &device.ftp(&["put", name, name], cwd),
            "put over the serial line",
        );
        device.get_exact(name, &data, cwd, "over the serial line");
    }
    let names: Vec<String> = listing(&device, cwd).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"some.bin".to_string()), "{names:?}");
    ok(
        &device.ftp(&["delete", "one.bin"], cwd),
        "delete over the serial line",
    );
    let out = device.shell("crc some.bin");
    let expected = format!("{:08x}", crc32(&pattern(20 * 1024, 20 * 1024 + 11)));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&expected),
        "crc: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = device.shell("no-such-command");
    assert_eq!(out.status.code(), Some(127));
    assert!(!out.stderr.is_empty());
    // The painted stack's high-water mark, read back over the link, after every kind of
    // request has been served: a figure for the README, and a bound that catches a blow-up.
    let stack = ok(&device.shell("stack"), "stack");
    let used = leading_number(&stack, "stack");
    println!("device stack high-water mark: {used} bytes");
    assert!((1024..256 * 1024).contains(&used), "{stack}");

    // 300 bytes of garbage on the line, zeros among them, then at once a request: it is
    // answered, with no quiet gap, and the device counted what it dropped.
    let garbage: Vec<u8> = pattern(300, 300).iter().map(|b| b % 9).collect();
    let mut pty = fs::OpenOptions::new()
        .write(true)
        .open(&device.line)
        .expect("open the pty");
    pty.write_all(&garbage).unwrap();
    drop(pty);
    let started = Instant::now();
    let echo = device.shell("echo hi");
    let took = started.elapsed();
    assert_eq!(ok(&echo, "echo after garbage"), "hi\n");
    println!("echo right after 300 bytes of garbage took {took:?}");
    let link = ok(&device.shell("link"), "link");
    let dropped: u32 = link
        .split("taken, ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("link: {link}"));
    assert!(dropped > 0, "the garbage went uncounted: {link}");
}

/// The decode-only firmware (`examples/decoder-m4`), measured for its size, also works: it
/// answers `+` for a frame whose body matches its MD5, `-` for one that does not and `!` for a
/// header that is not JSON, and reads escaped header strings. Then its peak stack is measured
/// without a byte of code in the firmware: QEMU loads a painted block (0xCC) below the top of
/// RAM, where the stack grows down from, before the core starts, and after the frames QEMU's
/// machine protocol (QMP) saves that RAM to a file; the stack reached down to the lowest word
/// that is no longer paint.
#[test]
fn the_decode_only_firmware_verifies_frames_on_the_chip() {
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/decoder-m4/target/thumbv7em-none-eabihf/release/unstick-decoder-m4");
    if !runnable(&firmware()) {
        return;
    }
    if !elf.is_file() {
        println!("skipped: {} is not built (see .ci/run)", elf.display());
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let qmp_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let paint = dir.path().join("paint.bin");
    fs::write(&paint, vec![PAINT; PAINTED]).unwrap();
    let qemu = qemu_running(
        MACHINE,
        &elf,
        &format!("tcp:{addr},server=on,wait=off"),
        "none",
    )
    .args([
        "-qmp",
        &format!("tcp:127.0.0.1:{qmp_port},server=on,wait=off"),
    ])
    .arg("-device")
    .arg(format!(
        "loader,file={},addr={:#x},force-raw=on",
        paint.display(),
        RAM_END - PAINTED
    ))
    .stdout(Stdio::null())
    .spawn()
    .expect("start qemu-system-arm");
    let _device = Device {
        qemu,
        addr: addr.clone(),
        line: addr.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        if let Ok(stream) = TcpStream::connect(&addr) {
            break stream;
        }
        assert!(Instant::now() < deadline, "QEMU's serial port never opened");
        thread::sleep(Duration::from_millis(50));
    };
    // MD5("hello world") = 5eb63bbbe01eeed093cb22bb8f5acdc3.
    let frame = |name: &str, md5: &str| {
        let header = format!(r#"{{"file_name":"{name}","total_size":11,"md5":"{md5}"}}"#);
        let mut bytes = (header.len() as i32).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(b"hello world");
        bytes
    };
    let mut wire = frame("a.txt", "5eb63bbbe01eeed093cb22bb8f5acdc3");
    wire.extend(frame("a.txt", "00000000000000000000000000000000"));
    // A header that is not JSON: refused (`!`), and the firmware starts over with the next frame.
    wire.extend(3i32.to_le_bytes());
    wire.extend(b"{x}");
    // Escapes in the typed member: a `\u` rewritten by the scanner, `\"` unescaped by
    // serde-json-core.
    wire.extend(frame(
        r#"caf\u00e9 \"q\""#,
        "5eb63bbbe01eeed093cb22bb8f5acdc3",
    ));
    stream.write_all(&wire).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut verdicts = [0u8; 4];
    stream.read_exact(&mut verdicts).unwrap();
    assert_eq!(&verdicts, b"+-!+");

    // The RAM below the stack's top, as it is now, through QMP (one JSON object per line).
    let qmp = TcpStream::connect(("127.0.0.1", qmp_port)).expect("QMP port");
    qmp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut replies = std::io::BufReader::new(qmp.try_clone().unwrap());
    let mut qmp_writer = qmp;
    let mut reply = |request: Option<String>| {
        if let Some(request) = request {
            qmp_writer.write_all(request.as_bytes()).unwrap();
        }
        let mut line = String::new();
        std::io::BufRead::read_line(&mut replies, &mut line).unwrap();
        line
    };
    let greeting = reply(None);
    assert!(greeting.contains("QMP"), "{greeting}");
    let ok = reply(Some("{\"execute\":\"qmp_capabilities\"}\n".into()));
    assert!(ok.contains("return"), "{ok}");
    let dump = dir.path().join("stack.bin");
    let ok = reply(Some(format!(
        "{{\"execute\":\"pmemsave\",\"arguments\":{{\"val\":{},\"size\":{},\"filename\":\"{}\"}}}}\n",
        RAM_END - PAINTED,
        PAINTED,
        dump.display()
    )));
    assert!(ok.contains("return"), "{ok}");
    let ram = fs::read(&dump).unwrap();
    assert_eq!(ram.len(), PAINTED);
    let untouched = ram
        .chunks_exact(4)
        .take_while(|word| word.iter().all(|&b| b == PAINT))
        .count()
        * 4;
    let used = PAINTED - untouched;
    println!("decode-only firmware: peak stack {used} bytes");
    // Some stack was used, and it stayed inside the painted block (so the figure is whole).
    assert!((64..PAINTED).contains(&used), "{used}");
}

/// The end of the mps2-an386's RAM (its `memory.x`), where cortex-m-rt starts the stack.
const RAM_END: usize = 0x2040_0000;
/// How much RAM below that the decode-only test paints, and with what.
const PAINTED: usize = 64 * 1024;
const PAINT: u8 = 0xCC;

/// Through a line that flips and drops bytes, the device never commits a wrong byte, every
/// failure says why, and once the line is clean the device serves again without a reset.
#[test]
fn a_noisy_line_to_the_device_never_commits_a_wrong_byte() {
    if !runnable(&firmware()) {
        return;
    }
    let device = Device::boot(qemu_with_serial);
    // The bridge passes bytes as they are to QEMU's UART: the device frames its own.
    let line = serial_bridge::SerialBridge::to(&device.line, false);
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let data = pattern(4096, 99);
    fs::write(cwd.join("data"), &data).unwrap();
    line.flip_every
        .store(1500, std::sync::atomic::Ordering::SeqCst);
    line.drop_every
        .store(2500, std::sync::atomic::Ordering::SeqCst);
    let mut failed = 0;
    for round in 0..6 {
        let name = format!("n{round}.bin");
        let out = unstick_in(
            cwd,
            &[
                "ftp",
                "put",
                "--addr",
                &line.addr,
                "--timeout",
                "3",
                "data",
                &name,
            ],
            CALL_LIMIT,
        );
        if !out.status.success() {
            failed += 1;
            assert!(!out.stderr.is_empty(), "round {round}: a failure says why");
        }
    }
    assert!(failed > 0, "the noise went unnoticed");
    line.flip_every
        .store(0, std::sync::atomic::Ordering::SeqCst);
    line.drop_every
        .store(0, std::sync::atomic::Ordering::SeqCst);
    // The device answers again, with no reset: probe until a request is answered.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = unstick_in(
            cwd,
            &[
                "ftp",
                "stat",
                "probe",
                "--addr",
                &line.addr,
                "--timeout",
                "2",
            ],
            Duration::from_secs(6),
        );
        if String::from_utf8_lossy(&out.stderr).contains("no such file") {
            break;
        }
        assert!(Instant::now() < deadline, "the device never answered again");
    }
    // Whatever the device stored is exactly what was sent.
    let mut stored = 0;
    for round in 0..6 {
        let name = format!("n{round}.bin");
        let back = format!("{name}.back");
        let out = unstick_in(
            cwd,
            &[
                "ftp",
                "get",
                "--addr",
                &line.addr,
                "--timeout",
                "10",
                &name,
                &back,
            ],
            CALL_LIMIT,
        );
        if out.status.success() {
            stored += 1;
            assert_eq!(fs::read(cwd.join(&back)).unwrap(), data, "{name}");
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("no such file"), "{name}: {err}");
        }
    }
    assert!(
        stored + failed >= 6,
        "an upload reported as done was not stored"
    );
    // And a clean upload goes through.
    ok(
        &unstick_in(
            cwd,
            &["ftp", "put", "--addr", &line.addr, "data", "clean.bin"],
            CALL_LIMIT,
        ),
        "put on a clean line",
    );
}
