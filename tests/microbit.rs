//! The micro:bit firmware (`examples/microbit`: a Cortex-M0 with 16 KiB of RAM, its files in
//! flash) under QEMU's `microbit`, driven by the real `unstick` binary over QEMU's UART-to-TCP
//! bridge (`-serial tcp:...`, reached as `uart+tcp://`), in link frames: a 20 KiB file (more
//! than the whole RAM) up and back byte-exact, ls, stat and delete; a resume after a cut; a reset
//! of the board (from QEMU's monitor) between the upload and the download, the files and the
//! kept partial upload still there; an upload larger than the free flash refused from its header,
//! and the device serving on; the shell's built-ins with their exit statuses; the peak stack
//! after all that, within the RAM the statics leave.
//!
//! `.ci/run` builds the firmware and installs `qemu-system-arm` before the workspace's tests, so
//! CI always runs this. Elsewhere it is skipped, with the reason printed, when either is missing:
//! build the firmware with the command in `.ci/run` (step "device firmware").

mod device_common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use device_common::{
    Device, crc32, failed, leading_number, listing, ok, pattern, qemu_running, runnable,
};

/// The device's store, as `examples/microbit/src/store.rs` sizes it: 190 data pages of 1 KiB.
const STORE_CAPACITY: u64 = 190 * 1024;

/// The board: QEMU's `microbit`, an nRF51822.
const MACHINE: &[&str] = &["-machine", "microbit"];

fn firmware() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/microbit/target/thumbv6m-none-eabi/release/unstick-microbit")
}

/// The board running the firmware, with QEMU's monitor on a Unix socket to reset it by.
struct Microbit {
    device: Device,
    monitor: PathBuf,
}

impl Microbit {
    /// Boots the firmware, its monitor's socket in `dir`.
    fn boot(dir: &Path) -> Microbit {
        let monitor = dir.join("monitor.sock");
        let spec = format!("unix:{},server=on,wait=off", monitor.display());
        let device = Device::boot(|serial| qemu_running(MACHINE, &firmware(), serial, &spec));
        Microbit { device, monitor }
    }

    /// Resets the board as its reset button does (`system_reset` on QEMU's monitor), then
    /// waits until it answers again. QEMU reloads the ELF; the flash outside it is kept.
    fn reset(&self) {
        let mut monitor = UnixStream::connect(&self.monitor).expect("QEMU's monitor");
        monitor
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let greeting = until_prompt(&mut monitor);
        assert!(greeting.contains("QEMU"), "{greeting}");
        monitor.write_all(b"system_reset\n").unwrap();
        // The next prompt comes once the command has run.
        until_prompt(&mut monitor);
        self.device.wait_ready();
    }
}

/// What QEMU's monitor writes up to and including its next prompt.
fn until_prompt(monitor: &mut UnixStream) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = Vec::new();
    let mut chunk = [0u8; 512];
    while !text.ends_with(b"(qemu) ") {
        assert!(Instant::now() < deadline, "no monitor prompt: {text:?}");
        let n = monitor.read(&mut chunk).expect("read QEMU's monitor");
        assert!(n > 0, "QEMU's monitor closed");
        text.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The RAM the stack may take: from the end of the statics (`__sheap`, where the firmware's
/// `stack` built-in stops looking) to the top of RAM (`_stack_start`), read from the ELF's
/// symbol table. A stack that reaches its bottom has overrun the statics.
fn stack_room(elf: &Path) -> u64 {
    let bytes = fs::read(elf).expect("read the firmware");
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(&bytes[..5], b"\x7fELF\x01", "not a 32-bit ELF");
    let (sections, size, count) = (u32_at(0x20), u16_at(0x2E), u16_at(0x30));
    let section = |i: usize| sections + i * size;
    let symtab = (0..count)
        .map(section)
        .find(|&s| u32_at(s + 4) == 2)
        .expect("a symbol table");
    let strings = u32_at(section(u32_at(symtab + 24)) + 16);
    let symbol = |name: &str| -> u64 {
        let (start, len) = (u32_at(symtab + 16), u32_at(symtab + 20));
        (start..start + len)
            .step_by(16)
            .find(|&sym| {
                let at = strings + u32_at(sym);
                bytes[at..].split(|&b| b == 0).next() == Some(name.as_bytes())
            })
            .map(|sym| u32_at(sym + 4) as u64)
            .unwrap_or_else(|| panic!("no symbol {name} in the firmware"))
    };
    let bottom = (symbol("__sheap") + 3) & !3;
    symbol("_stack_start") - bottom
}

/// The `stack` built-in's figure: the most stack used since boot, in bytes.
fn peak_stack(device: &Device) -> u64 {
    let stack = ok(&device.shell("stack"), "stack");
    leading_number(&stack, "stack")
}

#[test]
fn files_go_through_the_flash_a_cut_and_a_reset() {
    if !runnable(&firmware()) {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let board = Microbit::boot(cwd);
    let device = &board.device;

    // The device says what it is; a fresh board's store is empty.
    let info = device.info(cwd);
    assert_eq!(info["board"], "microbit", "{info}");
    assert_eq!(info["platform"], "thumbv6m-none-eabi", "{info}");
    assert_eq!(info["max_file_size"], STORE_CAPACITY, "{info}");
    assert_eq!(info["free_space"], STORE_CAPACITY, "{info}");
    assert_eq!(listing(device, cwd), []);

    // 20 KiB, more than the whole RAM, up and back byte-exact.
    let big = pattern(20 * 1024, 3);
    fs::write(cwd.join("big.bin"), &big).unwrap();
    let put_started = Instant::now();
    ok(&device.ftp(&["put", "big.bin"], cwd), "put big.bin");
    let put_took = put_started.elapsed();
    device.get_exact("big.bin", &big, cwd, "after its upload");
    let stat = ok(&device.ftp(&["stat", "big.bin"], cwd), "stat big.bin");
    assert!(stat.contains("file 20480 bytes"), "stat big.bin: {stat}");
    assert_eq!(listing(device, cwd), [("big.bin".to_owned(), 20480)]);
    // The shell reads the same flash.
    let crc = device.shell("crc big.bin");
    assert_eq!(crc.status.code(), Some(0), "{crc:?}");
    assert_eq!(
        String::from_utf8_lossy(&crc.stdout),
        format!("{:08x} {} big.bin\n", crc32(&big), big.len())
    );

    // One byte more than the free flash: refused from the header, long before the body could
    // have crossed the UART (at the rate big.bin's upload went), nothing written; the device
    // then drains the rest of the body and serves again.
    let free = device.info(cwd)["free_space"].as_u64().expect("free_space");
    assert_eq!(free, STORE_CAPACITY - 20 * 1024);
    let over_len = free + 1;
    fs::write(cwd.join("over.bin"), pattern(over_len as usize, 4)).unwrap();
    let refusal_started = Instant::now();
    let refused = failed(&device.ftp(&["put", "over.bin"], cwd), "put over.bin");
    let refusal_took = refusal_started.elapsed();
    assert!(
        refused.contains("no_space")
            && refused.contains(&format!("{over_len} bytes"))
            && refused.contains(&format!("{free} bytes free")),
        "{refused}"
    );
    let crossing = put_took.mul_f64(over_len as f64 / big.len() as f64);
    assert!(
        refusal_took < crossing / 2,
        "the refusal took {refusal_took:?}; the body crosses the UART in about {crossing:?}"
    );
    device.wait_ready();
    assert_eq!(listing(device, cwd), [("big.bin".to_owned(), 20480)]);
    assert_eq!(device.info(cwd)["free_space"], free);

    // An upload cut off mid-body is kept.
    let cut = pattern(20_000, 6);
    fs::write(cwd.join("cut.bin"), &cut).unwrap();
    device.cut_upload("cut.bin", &cut, 8_000, cwd);

    // The deepest the stack went for every kind of file request (a reset paints it afresh):
    // it stayed above the statics (a stack that reached them reports all of its room).
    let room = stack_room(&firmware());
    let before_reset = peak_stack(device);
    eprintln!("microbit peak stack before the reset: {before_reset} of {room} bytes");
    assert!(
        before_reset < room,
        "the stack reached the statics: {before_reset} of {room} bytes"
    );

    // A reset between the upload and the download: the flash keeps the file and the partial
    // upload, and the board has restarted (its uptime begins again).
    let reset_at = Instant::now();
    board.reset();
    let uptime = ok(&device.shell("uptime"), "uptime after the reset");
    let ms = leading_number(&uptime, "uptime");
    assert!(
        ms < reset_at.elapsed().as_millis() as u64 + 1_000,
        "up {ms} ms, the reset was {:?} ago",
        reset_at.elapsed()
    );
    device.get_exact("big.bin", &big, cwd, "after the reset");

    // `put --resume` finishes the cut upload.
    device.resume_upload("cut.bin", &cut, 8_000, cwd);

    // Delete, then stat and delete what is gone.
    ok(&device.ftp(&["delete", "big.bin"], cwd), "delete big.bin");
    let gone = failed(&device.ftp(&["stat", "big.bin"], cwd), "stat after delete");
    assert!(gone.contains("no such file"), "{gone}");
    let again = failed(&device.ftp(&["delete", "big.bin"], cwd), "delete twice");
    assert!(again.contains("not_found"), "{again}");
    assert_eq!(listing(device, cwd), [("cut.bin".to_owned(), 20_000)]);

    // And since the reset: a resumed upload, downloads, deletes.
    let used = peak_stack(device);
    eprintln!("microbit peak stack after the reset: {used} of {room} bytes");
    assert!(
        used < room,
        "the stack reached the statics: {used} of {room} bytes"
    );

    eprintln!("microbit file test took {:?}", started.elapsed());
}

#[test]
fn the_shell_built_ins_answer_with_their_exit_statuses() {
    if !runnable(&firmware()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let board = Microbit::boot(dir.path());
    let device = &board.device;

    let echo = device.shell("echo hi there");
    assert_eq!(echo.status.code(), Some(0), "{echo:?}");
    assert_eq!(echo.stdout, b"hi there\n");
    assert!(echo.stderr.is_empty(), "{echo:?}");

    let unknown = device.shell("reboot now");
    assert_eq!(unknown.status.code(), Some(127), "{unknown:?}");
    assert!(unknown.stdout.is_empty(), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("reboot: command not found"),
        "{unknown:?}"
    );

    let missing = device.shell("crc nothing.bin");
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nothing.bin: no such file"),
        "{missing:?}"
    );

    let free = ok(&device.shell("free"), "free");
    assert!(
        free.contains(&format!("{STORE_CAPACITY} free of {STORE_CAPACITY}")),
        "{free}"
    );

    let used = peak_stack(device);
    let room = stack_room(&firmware());
    eprintln!("microbit peak stack after the shell requests: {used} of {room} bytes");
    assert!(
        (1..room).contains(&used),
        "stack: {used} bytes of {room} bytes"
    );
}
