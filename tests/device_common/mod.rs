//! What the tests of the firmware under QEMU share (`device.rs`: the Cortex-M4 device on the
//! `mps2-an386`; `microbit.rs`: the micro:bit's on the `microbit`): QEMU running a firmware with
//! its UART on a loopback port or a pty, killed when dropped; the real `unstick` binary driving
//! it, every call bounded in time; a request written straight onto the line in link frames; and
//! the data sent.
//!
//! Both tests skip, with the reason printed, where the firmware is not built or QEMU is not
//! installed ([`missing_prerequisite`]); `.ci/run` builds both firmwares and installs QEMU
//! before the workspace's tests, so CI always runs them.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_unstick");

/// Longest any one CLI call may take (a 200 KiB upload crosses the emulated UART at roughly
/// 20 to 30 KB/s).
pub const CALL_LIMIT: Duration = Duration::from_secs(40);

/// Whether a test of the firmware `elf` can run here; if not, says why (the test then returns,
/// skipped).
pub fn runnable(elf: &Path) -> bool {
    match missing_prerequisite(elf) {
        Some(reason) => {
            println!("skipped: {reason}");
            false
        }
        None => true,
    }
}

/// Why a test of the firmware `elf` cannot run here, if it cannot.
fn missing_prerequisite(elf: &Path) -> Option<String> {
    if !elf.is_file() {
        return Some(format!(
            "{} is not built (see the \"device firmware\" step of .ci/run)",
            elf.display()
        ));
    }
    let qemu = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match qemu {
        Ok(status) if status.success() => None,
        _ => Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into()),
    }
}

/// `qemu-system-arm` running `elf` on the board `machine` names (`-machine ...`, `-cpu ...`),
/// its UART0 on `serial`, its monitor on `monitor` (`none`, or a socket).
pub fn qemu_running(machine: &[&str], elf: &Path, serial: &str, monitor: &str) -> Command {
    let mut command = Command::new("qemu-system-arm");
    command
        .args(machine)
        .arg("-nographic")
        .args(["-monitor", monitor, "-serial", serial])
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// QEMU running a firmware, its UART served on a loopback port or a pty; killed when dropped.
pub struct Device {
    pub qemu: Child,
    /// The address the CLI is given: `uart+tcp://HOST:PORT` or `serial:/dev/pts/N@115200`.
    pub addr: String,
    /// QEMU's UART bridge as a plain TCP address (`HOST:PORT`), or the pty's path.
    pub line: String,
}

impl Device {
    /// Boots the firmware with its UART bridged to a TCP port (the address is
    /// `uart+tcp://HOST:PORT`): `qemu` is QEMU's command with the `-serial` it is given.
    pub fn boot(qemu: impl FnOnce(&str) -> Command) -> Device {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let line = format!("127.0.0.1:{port}");
        let qemu = qemu(&format!("tcp:{line},server=on,wait=off"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start qemu-system-arm");
        let mut device = Device {
            qemu,
            addr: format!("uart+tcp://{line}"),
            line,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&device.line).is_err() {
            if let Ok(Some(status)) = device.qemu.try_wait() {
                panic!("qemu-system-arm exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "QEMU's serial port never opened");
            thread::sleep(Duration::from_millis(50));
        }
        device.wait_ready();
        device
    }

    /// Boots the firmware with its UART on a pseudo-terminal, reached as a serial line (the
    /// address is `serial:/dev/pts/N`), as a real board's USB serial port is: `qemu` is QEMU's
    /// command with the `-serial` it is given.
    pub fn boot_on_a_pty(qemu: impl FnOnce(&str) -> Command) -> Device {
        let mut qemu = qemu("pty")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start qemu-system-arm");
        // QEMU names the pty on stdout: `char device redirected to /dev/pts/N (label serial0)`.
        let stdout = qemu.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
            while let Some(Ok(line)) = lines.next() {
                if let Some(path) = line.split_whitespace().find(|w| w.starts_with("/dev/pts/")) {
                    let _ = tx.send(path.to_owned());
                }
            }
        });
        let Ok(path) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = qemu.kill();
            panic!("QEMU did not name its pty");
        };
        let device = Device {
            qemu,
            addr: format!("serial:{path}@115200"),
            line: path,
        };
        device.wait_ready();
        device
    }

    /// `unstick ftp ARGS --addr <device>` in `cwd`.
    pub fn ftp(&self, args: &[&str], cwd: &Path) -> Output {
        let mut command = Command::new(BIN);
        command
            .arg("ftp")
            .args(args)
            .args(["--addr", &self.addr, "--timeout", "30"])
            .current_dir(cwd);
        run_bounded(command, CALL_LIMIT)
    }

    /// `unstick shell connect <device> -c COMMAND`.
    pub fn shell(&self, command_line: &str) -> Output {
        let mut command = Command::new(BIN);
        command.args(["shell", "connect", &self.addr, "-c", command_line]);
        run_bounded(command, CALL_LIMIT)
    }

    /// The device's answer to `unstick info --json`.
    pub fn info(&self, cwd: &Path) -> serde_json::Value {
        let info = ok(
            &unstick_in(cwd, &["info", "--json", &self.addr], CALL_LIMIT),
            "info",
        );
        serde_json::from_str(&info).expect("one JSON object")
    }

    /// Downloads `name` and checks that it came back as `expected`, byte for byte (`when`
    /// says when, for the failure's message).
    pub fn get_exact(&self, name: &str, expected: &[u8], cwd: &Path, when: &str) {
        let back = format!("{name}.back");
        ok(
            &self.ftp(&["get", name, &back], cwd),
            &format!("get {name} {when}"),
        );
        let got = fs::read(cwd.join(&back)).unwrap();
        assert!(got == expected, "{name} came back different {when}");
        fs::remove_file(cwd.join(&back)).unwrap();
    }

    /// `put --resume` of the upload of `data` as `name` that [`Device::cut_upload`] cut after
    /// `sent` bytes: it continues from there, and the whole file comes back.
    pub fn resume_upload(&self, name: &str, data: &[u8], sent: usize, cwd: &Path) {
        let resumed = self.ftp(&["put", "--resume", name], cwd);
        let note = ok(&resumed, "put --resume") + &String::from_utf8_lossy(&resumed.stderr);
        assert!(
            note.contains(&format!("resumed at byte {sent}")),
            "not resumed: {note}"
        );
        self.get_exact(name, data, cwd, "after the resume");
    }

    /// Waits until the device answers a request: after boot, and after a refusal, when what
    /// the client had already pushed into QEMU's socket (up to a whole upload) crosses the
    /// emulated UART first. Probes with short-lived requests until one is answered.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let mut command = Command::new(BIN);
            command.args([
                "ftp",
                "stat",
                "probe",
                "--addr",
                &self.addr,
                "--timeout",
                "1",
            ]);
            let out = run_bounded(command, Duration::from_secs(4));
            let text = String::from_utf8_lossy(&out.stderr);
            // `stat` of a name that does not exist fails with this message: an answer.
            if text.contains("no such file") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the device did not answer again within 45 s: {text}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts an upload of `data` as `name` straight onto QEMU's UART socket, in link frames,
    /// and breaks it off after its first `sent` bytes (the connection is dropped: the rest never
    /// comes). Then, at once, waits for the device to report the upload kept: QEMU takes the
    /// next connection once the cut one's bytes have crossed the emulated UART, so the next
    /// request's start frame comes right behind the cut's last frame, well within the second of
    /// silence that would tear the upload. Broken off by the next request rather than by
    /// silence, the upload is kept all the same. It declares MD5, which both devices compute
    /// (the micro:bit computes no XXH3); the resume hashes the kept prefix with its own.
    pub fn cut_upload(&self, name: &str, data: &[u8], sent: usize, cwd: &Path) {
        {
            let mut raw = TcpStream::connect(&self.line).unwrap();
            let header = format!(
                r#"{{"op":"put","path":"{name}","algorithm":"md5","total_size":{}}}"#,
                data.len()
            );
            let mut request = (header.len() as i32).to_le_bytes().to_vec();
            request.extend_from_slice(header.as_bytes());
            request.extend_from_slice(&data[..sent]);
            raw.write_all(&link_frames(&request, 77)).unwrap();
        }
        let kept = format!("interrupted upload of {sent} bytes");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stat = self.ftp(&["stat", name], cwd);
            let text = String::from_utf8_lossy(&stat.stdout).into_owned()
                + &String::from_utf8_lossy(&stat.stderr);
            if text.contains(&kept) {
                break;
            }
            assert!(Instant::now() < deadline, "no partial upload kept: {text}");
            thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// Runs `command` to its end, killing it after `limit`; its output either way.
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unstick");
    let readers = [
        drain(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        drain(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ];
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for unstick") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().expect("reap unstick");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
    Output {
        status,
        stdout,
        stderr,
    }
}

fn drain(source: Option<Box<dyn Read + Send>>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut source) = source {
            let _ = source.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// `unstick ARGS` with a time limit, from `cwd`.
pub fn unstick_in(cwd: &Path, args: &[&str], limit: Duration) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(cwd);
    run_bounded(command, limit)
}

/// `bytes` as a request in link frames, its first frame numbered `seq`.
pub fn link_frames(bytes: &[u8], seq: u8) -> Vec<u8> {
    use unstick_core::serial_link::{LinkSender, MAX_ENCODED, MTU, encode_frame};
    let mut sender = LinkSender::new(seq);
    sender.start_request();
    let mut line = Vec::new();
    for piece in bytes.chunks(MTU) {
        let mut frame = [0u8; MAX_ENCODED];
        let n = encode_frame(sender.next_header(false), piece, &mut frame).unwrap();
        line.extend_from_slice(&frame[..n]);
    }
    line
}

/// The call's stdout, once it is known to have succeeded.
pub fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The call's stderr, once it is known to have failed.
pub fn failed(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} should have failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Deterministic, incompressible-looking bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// CRC-32 (IEEE), as the devices' `crc` prints it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The names and sizes `unstick ftp ls` printed.
pub fn listing(device: &Device, cwd: &Path) -> Vec<(String, u64)> {
    let out = ok(&device.ftp(&["ls"], cwd), "ls");
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.to_owned();
            let size = words.next()?.parse().ok()?;
            Some((name, size))
        })
        .collect()
}

/// The first word of a built-in's output, as a number (`stack`, `uptime`).
pub fn leading_number(output: &str, what: &str) -> u64 {
    output
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: {output}"))
}
