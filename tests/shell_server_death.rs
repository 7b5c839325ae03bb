//! A shell server that dies without stopping (`kill -9`, the OOM killer, a crash) takes its
//! commands with it, background jobs and their children included (issue 18, item 7); and the
//! README's recipe for a job that should outlive its command, its connection and the server
//! works. Linux: the keeper that does it is Linux's, and the checks read `/proc`.
#![cfg(target_os = "linux")]

mod serve_common;
mod shell_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serve_common::{Served, eventually, is_alive, send_signal};
use shell_common::{KEEPER_NAME, children_of, client_at, exec, exec_frame, raw_connection};
use unstick_std::shell::Termination;

/// How long a dead server's commands may take to die, and a killed server to be reaped.
const DEATH_LIMIT: Duration = Duration::from_secs(10);

/// Processes a test started through a server, killed when the test ends if they still run, so
/// that a failing test leaves no `sleep 300` behind.
struct Leftovers(Vec<u32>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_alive(pid) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Waits for `dir/name` to hold a complete line of pids, as a command wrote it.
fn pids_written_to(dir: &Path, name: &str) -> Vec<u32> {
    let path = dir.join(name);
    let mut pids = Vec::new();
    let written = eventually(DEATH_LIMIT, || {
        let Ok(text) = fs::read_to_string(&path) else {
            return false;
        };
        let Some(line) = text.strip_suffix('\n') else {
            return false;
        };
        pids = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        !pids.is_empty()
    });
    assert!(written, "the command did not write {name}");
    pids
}

#[test]
fn a_killed_server_takes_its_commands_and_their_children_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let mut server = Served::shell(&["--workdir", workdir, "--timeout", "300s"]);
    // The shell ($$), a background sleep, and a background shell with a sleep of its own: a
    // child of the server, two grandchildren and a great-grandchild, all in the command's group.
    let command = "sleep 300 & echo $! > job; \
                   sh -c 'sleep 300 & echo $$ $! > nested; wait' & \
                   echo $$ > shell; wait";
    let mut connection = raw_connection(&server.addr);
    std::io::Write::write_all(&mut connection, &exec_frame(command)).expect("send the command");
    let mut pids = pids_written_to(dir.path(), "shell");
    pids.extend(pids_written_to(dir.path(), "job"));
    pids.extend(pids_written_to(dir.path(), "nested"));
    let _leftovers = Leftovers(pids.clone());
    assert_eq!(pids.len(), 4, "{pids:?}");
    assert!(pids.iter().all(|&pid| is_alive(pid)), "{pids:?}");

    server.signal(libc::SIGKILL);
    let status = server
        .wait_exit(DEATH_LIMIT)
        .expect("the killed server was not reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(
        eventually(DEATH_LIMIT, || pids.iter().all(|&pid| !is_alive(pid))),
        "outlived the server: {:?} of {pids:?}",
        pids.iter()
            .filter(|&&pid| is_alive(pid))
            .collect::<Vec<_>>()
    );
    drop(connection);
}

/// The descriptors of process `pid` with what each is open on: all of them, or, if
/// `only_inheritable`, those that are not close-on-exec (`/proc/PID/fdinfo` gives the flags, in
/// octal).
fn fds_of(pid: u32, only_inheritable: bool) -> Vec<(String, String)> {
    let cloexec = u32::try_from(libc::O_CLOEXEC).expect("O_CLOEXEC");
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let fd = entry.file_name().into_string().ok()?;
        let target = fs::read_link(entry.path()).ok()?;
        if only_inheritable {
            let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
            let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?;
            let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
            if flags & cloexec != 0 {
                return None;
            }
        }
        Some((fd, target.to_string_lossy().into_owned()))
    })
    .collect()
}

#[test]
fn a_servers_keeper_holds_none_of_its_sockets() {
    let server = Served::shell(&[]);
    let mut keeper = None;
    let named = eventually(DEATH_LIMIT, || {
        keeper = children_of(server.pid())
            .into_iter()
            .find(|p| p.name == KEEPER_NAME);
        keeper.is_some()
    });
    assert!(named, "no keeper among {:?}", children_of(server.pid()));
    let keeper = keeper.expect("found above").pid;
    // Its channel, /dev/null, for an instant its own name (the shell writes it there), and
    // what the server was itself started with, not close-on-exec (cargo's jobserver pipe, say),
    // as every program it starts inherits: not the listener, nor the poller, nor anything else
    // the server opened.
    let inherited = fds_of(server.pid(), true);
    let comm = format!("/proc/{keeper}/comm");
    for (fd, target) in fds_of(keeper, false) {
        let expected = match fd.as_str() {
            "0" => target.starts_with("socket:"),
            _ => {
                target == "/dev/null"
                    || target == comm
                    || inherited.contains(&(fd.clone(), target.clone()))
            }
        };
        assert!(
            expected,
            "the keeper holds {target} as {fd}; the server: {:?}",
            fds_of(server.pid(), false)
        );
    }
}

/// The README's recipe ("A job that outlives its command") with `JOB` for the job.
fn outliving_recipe(job: &str) -> String {
    format!("{{ setsid sh -c 'echo; exec {job} >job.log 2>&1 </dev/null' & }} | read ready")
}

#[test]
fn the_readme_recipe_starts_a_job_that_outlives_its_command_connection_and_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("job");
    fs::write(&script, "#!/bin/sh\necho $$ > job.pid\nexec sleep 300\n").expect("write the job");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the job");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let mut server = Served::shell(&["--workdir", workdir]);

    let mut client = client_at(&server.addr, None);
    let (report, out) = exec(&mut client, &outliving_recipe("./job"));
    assert_eq!(
        report.termination,
        Termination::Exited(0),
        "{report:?}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command's group was killed before its exit was reported; the job had left it.
    let job = pids_written_to(dir.path(), "job.pid")[0];
    let _leftovers = Leftovers(vec![job]);
    assert!(is_alive(job), "the job died with its command");

    drop(client);
    let (report, _) = exec(&mut client_at(&server.addr, None), "true");
    assert_eq!(report.termination, Termination::Exited(0));
    assert!(is_alive(job), "the job died with its connection");

    server.signal(libc::SIGKILL);
    server
        .wait_exit(DEATH_LIMIT)
        .expect("the killed server was not reaped");
    // Whatever a dead server's commands are killed by has had its time (the first test shows
    // they die well within it).
    std::thread::sleep(Duration::from_millis(500));
    assert!(is_alive(job), "the job died with the server");
}
