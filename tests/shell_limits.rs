//! The shell server's limits end to end: time limit, output cap, client hang-up, reaping, and
//! slow clients dropped at the request deadline.

mod shell_common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use shell_common::{
    Collected, ServerProcess, connect_cli, eventually, exec, exec_frame, group_of,
    live_group_members, raw_connection, read_raw_frame, shells_of, status_kib,
};
use unstick_std::shell::{OutputSink, OutputStream, Termination};

/// Records the process group of the shell whose pid a command reports, and that group's live
/// members at that moment.
#[derive(Default)]
struct GroupWitness {
    text: Vec<u8>,
    pgid: Option<u32>,
    members_seen: usize,
}

impl OutputSink for GroupWitness {
    fn write_output(&mut self, _: OutputStream, bytes: &[u8]) -> std::io::Result<()> {
        self.text.extend_from_slice(bytes);
        if self.pgid.is_some() {
            return Ok(());
        }
        let line = std::str::from_utf8(&self.text)
            .ok()
            .and_then(|t| t.strip_suffix('\n'));
        if let Some(line) = line {
            let shell: u32 = line.trim().parse().expect("pid line");
            let pgid = group_of(shell);
            self.pgid = Some(pgid);
            self.members_seen = live_group_members(pgid).len();
        }
        Ok(())
    }
}

#[test]
fn timeout_kills_the_command_and_all_its_children() {
    let server = ServerProcess::start(&["--timeout", "1500ms"]);
    let mut client = server.client(None);
    let mut witness = GroupWitness::default();
    // The background shell and its two sleeps exist by the time `$$` is printed.
    let command = "sh -c 'sleep 300 & sleep 300' & sleep 0.5; echo $$; wait";
    let report = client.exec(command, &mut witness).expect("exec");
    assert!(report.timed_out, "{report:?}");
    assert_eq!(report.termination, Termination::Signaled(9));
    let pgid = witness.pgid.expect("the command printed its pid");
    // The command's shell and both sleeps at least (the inner shell may exec its last sleep).
    assert!(
        witness.members_seen >= 3,
        "sh and two sleeps: saw {}",
        witness.members_seen
    );
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(pgid)
            .is_empty()),
        "still alive: {:?}",
        live_group_members(pgid)
    );
    // The connection is still usable after a timeout.
    let (report, out) = exec(&mut client, "echo after");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"after\n");
}

#[test]
fn a_command_cut_short_names_the_server_option_that_set_the_limit() {
    let server = ServerProcess::start(&["--timeout", "500ms", "--max-output", "1K"]);
    // With -c, and line by line from piped input: one message for both.
    for (args, input) in [(&["-c", "sleep 30"][..], &b""[..]), (&[], b"sleep 30\n")] {
        let out = connect_cli(&server.addr, args, input, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + 9), "{stderr}");
        assert!(
            stderr.contains("ran out of time")
                && stderr.contains("`unstick shell serve --timeout`"),
            "{stderr}"
        );
    }
    let out = connect_cli(&server.addr, &["-c", "yes"], b"", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`unstick shell serve --max-output`"),
        "{stderr}"
    );
}

#[test]
fn a_client_that_hangs_up_takes_its_command_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir]);

    // The control: a client that stays gets its file.
    let addr = server.addr.clone();
    let stays = thread::spawn(move || {
        let mut stream = raw_connection(&addr);
        stream
            .write_all(&exec_frame("sleep 3; touch stayed"))
            .expect("send");
        read_raw_frame(&mut stream).expect("exit frame")
    });

    let mut leaves = raw_connection(&server.addr);
    leaves
        .write_all(&exec_frame("sleep 3; touch left"))
        .expect("send");
    thread::sleep(Duration::from_millis(300));
    drop(leaves);

    let (exit, _) = stays.join().expect("control client");
    assert_eq!(exit["op"], "exit");
    assert_eq!(exit["code"], 0);
    assert!(dir.path().join("stayed").exists());
    // The hung-up command would have touched its file at the same moment; give it a margin.
    thread::sleep(Duration::from_millis(500));
    assert!(
        !dir.path().join("left").exists(),
        "the command outlived its client"
    );
    assert!(shells_of(server.pid()).is_empty());
}

#[test]
fn no_zombies_remain_after_a_thousand_commands() {
    let server = ServerProcess::start(&["--timeout", "2s", "--max-output", "1K"]);
    let mut client = server.client(None);
    let mix = [
        "true",
        "exit 7",
        "kill -9 $$",
        "echo out; echo err >&2",
        "yes",
    ];
    for i in 0..1000 {
        let command = mix[i % mix.len()];
        let mut sink = Collected::default();
        client.exec(command, &mut sink).expect("exec");
    }
    let children = shells_of(server.pid());
    let zombies: Vec<_> = children.iter().filter(|p| p.state == 'Z').collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
    assert!(children.is_empty(), "children left: {children:?}");
}

#[test]
fn yes_is_cut_at_the_cap_killed_and_memory_stays_flat() {
    const CAP: u64 = 32 << 20;
    let server = ServerProcess::start(&["--max-output", "32M"]);
    let mut client = server.client(None);
    let (report, _) = exec(&mut client, "echo warm");
    assert_eq!(report.termination, Termination::Exited(0));
    let rss_before = status_kib(server.pid(), "VmRSS");
    let peak_before = status_kib(server.pid(), "VmHWM");

    for _ in 0..3 {
        let mut counted = Collected::default();
        let report = client.exec("yes", &mut counted).expect("exec");
        assert!(report.truncated, "{report:?}");
        assert_eq!(report.termination, Termination::Signaled(9));
        assert_eq!(counted.counted, CAP);
    }
    let mut kept = Collected::keeping();
    client.exec("yes", &mut kept).expect("exec");
    assert_eq!(kept.stdout.len() as u64, CAP);
    assert!(kept.stdout.chunks(2).all(|pair| pair == b"y\n"));

    // 128 MiB went through; a server that held a command's output would have grown by 32 MiB.
    let rss_growth = status_kib(server.pid(), "VmRSS").saturating_sub(rss_before);
    let peak_growth = status_kib(server.pid(), "VmHWM").saturating_sub(peak_before);
    assert!(rss_growth < 4096, "RSS grew by {rss_growth} KiB");
    assert!(peak_growth < 4096, "peak RSS grew by {peak_growth} KiB");
    assert!(shells_of(server.pid()).is_empty());
}

/// A client sending a framed request one byte at a time.
struct Dripper {
    stream: TcpStream,
    request: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    closed: bool,
}

impl Dripper {
    fn open(addr: &str) -> Dripper {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nonblocking(true).expect("nonblocking");
        // A request far longer than the test lasts at one byte per drip.
        let request = exec_frame(&format!("echo {}", "x".repeat(200)));
        Dripper {
            stream,
            request,
            sent: 0,
            received: Vec::new(),
            closed: false,
        }
    }

    /// Sends the next byte and notices whether the server has closed the connection.
    fn drip(&mut self) {
        if self.closed {
            return;
        }
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        if self.sent < self.request.len() {
            match self.stream.write(&self.request[self.sent..self.sent + 1]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

#[test]
fn slow_drip_connections_are_dropped_at_the_deadline_while_others_are_served() {
    // Enough session slots for all of them: the deadline, not the cap, is what is tested.
    let server = ServerProcess::start(&["--login-grace", "2s", "--max-sessions", "300"]);
    let mut drippers: Vec<Dripper> = (0..200).map(|_| Dripper::open(&server.addr)).collect();
    for d in &mut drippers {
        d.drip();
    }

    // While all 200 are connected, a new client is served.
    let mut client = server.client(None);
    let (report, out) = exec(&mut client, "echo served");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"served\n");
    assert!(drippers.iter().all(|d| !d.closed));

    let give_up = Instant::now() + Duration::from_secs(20);
    while drippers.iter().any(|d| !d.closed) && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(250));
        for d in &mut drippers {
            d.drip();
        }
    }
    let open = drippers.iter().filter(|d| !d.closed).count();
    assert_eq!(open, 0, "{open} slow connections are still open");
    for d in &drippers {
        assert!(d.sent < d.request.len(), "a dripper finished its request");
        let told = String::from_utf8_lossy(&d.received);
        assert!(
            told.contains("idle_timeout"),
            "no idle_timeout error frame: {told:?}"
        );
    }
    // The server still serves newcomers.
    let mut late = server.client(None);
    let (_, out) = exec(&mut late, "echo still");
    assert_eq!(out.stdout, b"still\n");
}

#[test]
fn a_client_that_stops_reading_cannot_keep_its_command_alive() {
    let server = ServerProcess::start(&["--timeout", "1s"]);
    let mut stalled = raw_connection(&server.addr);
    stalled.write_all(&exec_frame("yes")).expect("send");
    // The command fills the socket buffers and blocks; the client never reads.
    assert!(eventually(Duration::from_secs(5), || !shells_of(
        server.pid()
    )
    .is_empty()));
    assert!(
        eventually(Duration::from_secs(10), || shells_of(server.pid())
            .is_empty()),
        "the command outlived a client that stopped reading"
    );
    drop(stalled);
}

/// Whether process `pid` is still running (a zombie or a vanished pid is not).
fn is_running(pid: u32) -> bool {
    shell_common::processes()
        .iter()
        .any(|p| p.pid == pid && p.state != 'Z' && p.state != 'X')
}

fn printed_pid(stdout: &[u8]) -> u32 {
    let text = std::str::from_utf8(stdout).expect("utf-8");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("a pid: {text:?}"))
}

#[test]
fn a_background_job_holding_the_output_ends_with_its_command() {
    // With a 30 s limit, waiting for the job's pipes to close would end in a timeout.
    let server = ServerProcess::start(&["--timeout", "30s"]);
    let mut client = server.client(None);
    let (report, out) = exec(&mut client, "sleep 300 & echo $!");
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(report.termination, Termination::Exited(0));
    let job = printed_pid(&out.stdout);
    assert!(
        eventually(Duration::from_secs(5), || !is_running(job)),
        "the background job outlived its command"
    );
    assert!(shells_of(server.pid()).is_empty());
}

#[test]
fn a_background_job_with_its_own_output_is_killed_when_the_shell_exits() {
    let server = ServerProcess::start(&[]);
    let mut client = server.client(None);
    let (report, out) = exec(&mut client, "sleep 300 >/dev/null 2>&1 & echo $!");
    assert_eq!(report.termination, Termination::Exited(0));
    let job = printed_pid(&out.stdout);
    assert!(
        eventually(Duration::from_secs(5), || !is_running(job)),
        "the background job escaped the command's limits"
    );
}

#[test]
fn a_detached_process_holding_the_output_does_not_stall_the_reply() {
    let server = ServerProcess::start(&["--timeout", "30s"]);
    let mut client = server.client(None);
    // setsid leaves the command's process group, so only its pipes tie it to the command.
    let (report, out) = exec(&mut client, "setsid sleep 300 & echo $!");
    let detached = printed_pid(&out.stdout);
    // SAFETY: kill(2) with a pid this test's command just started and printed.
    unsafe {
        libc::kill(detached as libc::pid_t, libc::SIGKILL);
    }
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(report.termination, Termination::Exited(0));
    // The connection is in step for the next command.
    let (report, out) = exec(&mut client, "echo next");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"next\n");
}

#[test]
fn limits_too_large_for_the_clock_are_as_good_as_forever() {
    let forever = "18000000000000000000";
    let server = ServerProcess::start(&["--timeout", forever, "--idle-timeout", forever]);
    let mut client = server.client(None);
    let (report, out) = exec(&mut client, "echo ok");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"ok\n");
}
