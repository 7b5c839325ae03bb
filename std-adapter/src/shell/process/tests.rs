//! The Unix tests run `sh`, the Windows ones `cmd.exe`: each platform's default shell.

use super::*;
use crate::shell::interpreter::Shell;

fn limits() -> CommandLimits {
    CommandLimits {
        timeout: Duration::from_secs(20),
        max_output: 1 << 20,
        idle: None,
    }
}

fn run_in(
    command: &str,
    workdir: &Path,
    limits: &CommandLimits,
) -> Result<(RunOutcome, CapturedOutput), RunError> {
    let mut out = CapturedOutput::default();
    let running = RunningCommands::new();
    let shell = Shell::default();
    let spec = CommandSpec {
        shell: &shell,
        command,
        workdir,
        stdin: false,
        pty: None,
    };
    let outcome = run_command(&spec, limits, None, &running, &mut out)?;
    Ok((outcome, out))
}

fn run(command: &str, limits: &CommandLimits) -> (RunOutcome, CapturedOutput) {
    let root = if cfg!(windows) {
        std::env::temp_dir()
    } else {
        "/".into()
    };
    run_in(command, &root, limits).unwrap()
}

#[cfg(unix)]
#[test]
fn exit_codes_and_streams_are_reported() {
    let (outcome, out) = run("echo out; echo err >&2; exit 7", &limits());
    assert_eq!(outcome.termination, Termination::Exited(7));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!outcome.truncated && !outcome.timed_out && !outcome.client_gone);
}

#[cfg(windows)]
#[test]
fn exit_codes_and_streams_are_reported() {
    let (outcome, out) = run("echo out& echo err 1>&2& exit /b 7", &limits());
    assert_eq!(outcome.termination, Termination::Exited(7));
    assert_eq!(out.stdout, b"out\r\n");
    assert_eq!(out.stderr, b"err \r\n");
    assert!(!outcome.truncated && !outcome.timed_out && !outcome.client_gone);
}

#[cfg(unix)]
#[test]
fn signals_are_reported_as_signals() {
    let (outcome, _) = run("kill -9 $$", &limits());
    assert_eq!(outcome.termination, Termination::Signaled(9));
    assert_eq!(outcome.termination.shell_status(), 137);
}

#[cfg(unix)]
#[test]
fn output_is_cut_at_the_cap() {
    let limits = CommandLimits {
        max_output: 100_000,
        ..limits()
    };
    let (outcome, out) = run("yes", &limits);
    assert!(outcome.truncated);
    assert_eq!(outcome.termination, Termination::Signaled(libc::SIGKILL));
    assert_eq!(out.stdout.len(), 100_000);
    assert!(out.stdout.chunks(2).all(|c| c == b"y\n"));
}

#[cfg(windows)]
#[test]
fn output_is_cut_at_the_cap() {
    // Small: cmd.exe writes a line per call, which is slow under Wine.
    let limits = CommandLimits {
        max_output: 10_000,
        ..limits()
    };
    let (outcome, out) = run("for /l %i in (1,0,2) do @echo y", &limits);
    assert!(
        outcome.truncated,
        "{outcome:?} after {} bytes",
        out.stdout.len()
    );
    assert_eq!(outcome.termination, Termination::Signaled(KILL_SIGNAL));
    assert_eq!(out.stdout.len(), 10_000);
    assert!(out.stdout.chunks(3).all(|c| b"y\r\n".starts_with(c)));
}

#[cfg(unix)]
#[test]
fn a_command_that_closes_its_output_is_still_timed() {
    let limits = CommandLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let (outcome, _) = run("exec >&- 2>&-; sleep 30", &limits);
    assert!(outcome.timed_out);
    assert_eq!(outcome.termination, Termination::Signaled(libc::SIGKILL));
}

#[cfg(windows)]
#[test]
fn a_command_that_runs_too_long_is_killed_with_its_children() {
    let limits = CommandLimits {
        timeout: Duration::from_millis(500),
        ..limits()
    };
    // The shell starts another cmd.exe, which loops: both are in the job and both die.
    let started = std::time::Instant::now();
    let (outcome, _) = run("cmd /c \"for /l %i in (1,0,2) do @rem\"", &limits);
    assert!(outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.termination, Termination::Signaled(KILL_SIGNAL));
    assert_eq!(outcome.termination.shell_status(), 137);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[cfg(unix)]
#[test]
fn a_background_job_holding_the_output_ends_with_the_shell() {
    // Before the shell's exit was watched, this waited for the time limit.
    let (outcome, out) = run("sleep 30 & echo started", &limits());
    assert!(!outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"started\n");
}

#[cfg(windows)]
#[test]
fn a_background_process_holding_the_output_ends_with_the_shell() {
    let (outcome, out) = run(
        "start /b cmd /c \"for /l %i in (1,0,2) do @rem\"& echo started",
        &limits(),
    );
    assert!(!outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"started\r\n");
}

#[test]
fn huge_limits_do_not_overflow_the_clock() {
    let limits = CommandLimits {
        timeout: Duration::MAX,
        ..limits()
    };
    let (outcome, out) = run("echo ok", &limits);
    assert_eq!(outcome.termination, Termination::Exited(0));
    let expected: &[u8] = if cfg!(windows) { b"ok\r\n" } else { b"ok\n" };
    assert_eq!(out.stdout, expected);
}

#[test]
fn spawn_failure_is_an_error() {
    let missing = std::env::temp_dir().join("nonexistent/unstick/workdir");
    let failure = run_in("echo", &missing, &limits());
    assert!(matches!(failure, Err(RunError::Spawn(_))), "{failure:?}");
}

#[cfg(unix)]
#[test]
fn another_shell_can_be_chosen() {
    let shell: Shell = "bash".parse().unwrap();
    let spec = CommandSpec {
        shell: &shell,
        command: "echo ${BASH_VERSION:+bash}",
        workdir: Path::new("/"),
        stdin: false,
        pty: None,
    };
    let mut out = CapturedOutput::default();
    let running = RunningCommands::new();
    let outcome = run_command(&spec, &limits(), None, &running, &mut out).unwrap();
    assert_eq!(outcome.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"bash\n");
}

#[cfg(unix)]
#[test]
fn a_missing_shell_is_named_in_the_error() {
    let shell: Shell = "/nonexistent/unstick-sh".parse().unwrap();
    let spec = CommandSpec {
        shell: &shell,
        command: "true",
        workdir: Path::new("/"),
        stdin: false,
        pty: None,
    };
    let running = RunningCommands::new();
    let failure = run_command(
        &spec,
        &limits(),
        None,
        &running,
        &mut CapturedOutput::default(),
    );
    let Err(RunError::Spawn(e)) = failure else {
        panic!("{failure:?}");
    };
    assert!(e.to_string().contains("/nonexistent/unstick-sh"), "{e}");
    assert!(e.to_string().contains("--shell"), "{e}");
}
