//! Linux: a keeper process that kills the commands' process groups when the server dies,
//! however it dies (`kill -9`, the OOM killer, a crash), not only when it stops.
//!
//! The keeper is `/bin/sh` running [`KEEPER_SCRIPT`], with `unstick-keeper` for its `$0` (and
//! for its name in `ps`, once it has renamed itself). It is spawned when the server starts to
//! serve (or, failing that, at its first command), in a process group of its own, so that a
//! Ctrl-C on the server's terminal does not reach it, and it ignores SIGHUP, SIGINT, SIGQUIT
//! and SIGTERM. Its standard input is one end of a Unix socket pair: the channel. The server
//! holds the other end, the only copy, and writes one line to it per change: `+PGID` once a
//! command's group is spawned, `-PGID` once the group is killed and its leader reaped (so that
//! no id is signalled once it may have been reused). The keeper keeps the set of held groups in
//! a shell variable. When the server process ends, whatever ends it, the kernel closes the
//! server's end; the keeper's `read` meets the end of its input, and it sends SIGKILL to every
//! group still in its set, then exits.
//!
//! The keeper holds nothing of the server's but its channel: every descriptor the server opens
//! is close-on-exec (std's sockets, files, pipes and this socket pair; rustix and polling ask
//! for it too, and serialport opens its port with `O_CLOEXEC`), so the server's sockets and the
//! commands' pipes do not stay open in it (tests read its `/proc/PID/fd`, here and in
//! `tests/shell_server_death.rs`). What the server was itself started with without that flag
//! (cargo's jobserver pipe, say) passes on to it, as to every command.
//!
//! A write never raises SIGPIPE (the channel is written with `MSG_NOSIGNAL`: a program that
//! embeds the server may not ignore SIGPIPE), and it waits at most [`WRITE_LIMIT`], which only a
//! keeper that stopped reading while a few hundred lines queued makes it do. A write that fails
//! means the keeper died (an administrator's `kill`, the OOM killer) or is stuck: it is killed
//! if it still runs (so that it never takes the closing channel for the server's death and
//! kills groups the server still runs), reaped, and replaced by a new keeper, which is told at
//! once every group the server holds (the server keeps its own set).
//!
//! What is not covered:
//! - a group spawned in the instant between its spawn returning and its line being written,
//!   should the server die exactly then;
//! - a keeper that died is noticed, and replaced, at the next change (a command starting or
//!   ending): should the server die before that, its commands run on;
//! - the other way round, a group killed and reaped in the instant before its `-` line is
//!   written, should the server die exactly then, is signalled once more: its id names no group
//!   by then, unless the kernel gave it out again within that instant.
//!
//! A parent-death signal (`PR_SET_PDEATHSIG`) on the shell would not do: it fires when the
//! *thread* that spawned it ends (the server's worker threads come and go), and it reaches the
//! shell only, not what the shell started.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::SendFlags;
use rustix::process::Pid;

/// The keeper's `$0`, and the name it gives itself (`/proc/PID/comm`, at most 15 bytes).
const KEEPER_NAME: &str = "unstick-keeper";

/// The keeper's program, for `/bin/sh -c`, `$0` being [`KEEPER_NAME`], which it takes for its
/// name (a shell that cannot write `/proc/self/comm` goes on as `sh`). Its standard input is
/// the channel: a line `+PGID` adds a group to `held`, `-PGID` takes one occurrence out; any
/// other line is ignored, and so is a group id that is not a number from 2 up, in at most 7
/// digits with no leading zero (`kill -- -0` would be its own group, `kill -- -1` every process
/// it may signal; Linux ids are below 2^22), and a last line that the end of input cut short. `held` is the ids, each
/// with a space on both sides (` 12 34 `), changed by parameter expansion only: no line makes
/// it fork. (dash's `kill` takes `-s KILL --` but not `-KILL --`.)
const KEEPER_SCRIPT: &str = r#"trap '' HUP INT QUIT TERM
printf %s "$0" >/proc/self/comm
held=' '
while IFS= read -r line; do
    pgid=${line#[+-]}
    case $pgid in
    '' | 0* | 1 | ????????* | *[!0-9]*) continue ;;
    esac
    case $line in
    +*) held="$held$pgid " ;;
    -*)
        case $held in
        *" $pgid "*) held="${held%% $pgid *} ${held#* $pgid }" ;;
        esac
        ;;
    esac
done
for pgid in $held; do
    kill -s KILL -- "-$pgid"
done
"#;

/// The longest a write to the keeper may wait for room in the channel before the keeper is
/// taken as stuck and replaced.
const WRITE_LIMIT: Duration = Duration::from_secs(1);

/// The process's keeper, started on first use.
static KEEPER: OnceLock<GroupKeeper> = OnceLock::new();

/// The server's side of the keeper: the groups it holds, and the keeper.
#[derive(Debug)]
pub(super) struct GroupKeeper {
    state: Mutex<KeeperState>,
}

#[derive(Debug, Default)]
struct KeeperState {
    /// Groups spawned and not yet killed and reaped: what the keeper is to kill.
    held: HashSet<Pid>,
    /// The keeper running now, told every group in `held`, if one could be started.
    running: Option<RunningKeeper>,
}

/// A line to the keeper.
#[derive(Clone, Copy, Debug)]
enum Change {
    Held(Pid),
    Released(Pid),
}

#[derive(Debug)]
struct RunningKeeper {
    child: Child,
    /// The server's end of the channel: the only copy (close-on-exec, so no command holds it).
    channel: UnixStream,
}

impl GroupKeeper {
    /// The process's keeper.
    pub(super) fn get() -> &'static GroupKeeper {
        KEEPER.get_or_init(GroupKeeper::new)
    }

    fn new() -> GroupKeeper {
        GroupKeeper {
            state: Mutex::new(KeeperState::default()),
        }
    }

    /// Starts the keeper if none runs (or the last one died).
    pub(super) fn start(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ensure_running()
    }

    /// Keeps group `pgid`: the keeper kills it if the server dies first. `Err` when no keeper
    /// could be started (the command runs without that cover until one can).
    pub(super) fn keep(&self, pgid: Pid) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.held.insert(pgid);
        state.tell(Change::Held(pgid))
    }

    /// Stops keeping group `pgid`: it was killed and its leader reaped.
    pub(super) fn release(&self, pgid: Pid) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.held.remove(&pgid)
            && let Err(e) = state.tell(Change::Released(pgid))
        {
            tracing::warn!(
                server = "shell",
                error = %e,
                "cannot restart the process that kills commands if the server dies; the next command tries again"
            );
        }
    }

    /// The keeper's pid, starting it if none runs: for tests.
    #[cfg(test)]
    fn pid(&self) -> io::Result<u32> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ensure_running()?;
        state
            .running
            .as_ref()
            .map(|keeper| keeper.child.id())
            .ok_or_else(|| io::Error::other("no keeper"))
    }

    /// What a server's death does to its keeper: the channel closes, nothing is killed. The
    /// keeper, for the test to wait on.
    #[cfg(test)]
    fn close_channel(self) -> Option<Child> {
        let state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        state.running.map(|keeper| keeper.child)
    }
}

impl KeeperState {
    /// Makes sure a keeper runs: starts one if there is none yet or the last one died.
    fn ensure_running(&mut self) -> io::Result<()> {
        if let Some(keeper) = &mut self.running
            && let Ok(None) = keeper.child.try_wait()
        {
            return Ok(());
        }
        self.replace()
    }

    /// Tells the keeper of `change`, made to `held` already. A keeper that cannot be told is
    /// replaced by one told every group in `held`.
    fn tell(&mut self, change: Change) -> io::Result<()> {
        if let Some(keeper) = &self.running {
            let line = match change {
                Change::Held(pgid) => format!("+{}\n", pgid.as_raw_pid()),
                Change::Released(pgid) => format!("-{}\n", pgid.as_raw_pid()),
            };
            if keeper.send(line.as_bytes()).is_ok() {
                return Ok(());
            }
        }
        self.replace()
    }

    /// Ends the keeper, if any, and starts a new one told every group in `held`.
    fn replace(&mut self) -> io::Result<()> {
        if let Some(old) = self.running.take() {
            old.end();
        }
        let keeper = RunningKeeper::spawn()?;
        let mut lines = String::new();
        for pgid in &self.held {
            let _ = writeln!(lines, "+{}", pgid.as_raw_pid());
        }
        if !lines.is_empty()
            && let Err(e) = keeper.send(lines.as_bytes())
        {
            keeper.end();
            return Err(e);
        }
        self.running = Some(keeper);
        Ok(())
    }
}

impl RunningKeeper {
    /// Spawns a keeper with nothing to keep yet.
    fn spawn() -> io::Result<RunningKeeper> {
        // Both ends close-on-exec (std makes every descriptor so): the keeper gets its end as
        // its standard input only, and neither it nor any command gets the server's end.
        let (channel, keeper_end) = UnixStream::pair()?;
        channel.set_write_timeout(Some(WRITE_LIMIT))?;
        let child = Command::new("/bin/sh")
            .args(["-c", KEEPER_SCRIPT, KEEPER_NAME])
            .stdin(Stdio::from(OwnedFd::from(keeper_end)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(RunningKeeper { child, channel })
    }

    /// Writes `lines` whole, or fails: the keeper died, stopped reading for [`WRITE_LIMIT`], or
    /// took part of them (its input no longer ends on a line's end).
    fn send(&self, lines: &[u8]) -> io::Result<()> {
        loop {
            match rustix::net::send(&self.channel, lines, SendFlags::NOSIGNAL) {
                Ok(n) if n == lines.len() => return Ok(()),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the keeper took only part of the lines",
                    ));
                }
                // A signal came before anything was written.
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Kills the keeper if it still runs, then reaps it and closes the channel, in that order:
    /// a keeper that met the channel's end would kill every group it holds.
    fn end(mut self) {
        let _ = self.child.kill();
        // SIGKILL ends it at once: it blocks in nothing but `read(2)` and `kill(2)`.
        let _ = self.child.wait();
        drop(self.channel);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::ExitStatus;
    use std::time::Instant;

    use rustix::process::{Signal, WaitId, WaitIdOptions};

    use super::*;

    /// The bound on every wait here.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A `sleep` leading a process group of its own, as a command's shell does.
    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn pgid(child: &Child) -> Pid {
        Pid::from_child(child)
    }

    /// `child`'s status once it ended, if it did within [`PATIENCE`].
    fn ended(child: &mut Child) -> Option<ExitStatus> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts `child` was killed with SIGKILL; ends it either way.
    fn assert_killed(child: &mut Child, what: &str) {
        let status = ended(child);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGKILL),
            "{what}: {status:?}"
        );
    }

    /// Asserts `child` still runs; ends it.
    fn assert_spared(child: &mut Child, what: &str) {
        let status = child.try_wait().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(status.is_none(), "{what} was killed: {status:?}");
    }

    /// The descriptors of process `pid` (`self` for this one) and what each is open on, but
    /// those closed while they are read.
    fn fds_of(pid: &str) -> Vec<(String, String)> {
        let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
        dir.filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let fd = entry.file_name().into_string().ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
    }

    /// This process's descriptors that are not close-on-exec, with what each is open on.
    fn inheritable_fds() -> Vec<(String, String)> {
        let cloexec = u32::try_from(libc::O_CLOEXEC).unwrap();
        fds_of("self")
            .into_iter()
            .filter(|(fd, _)| {
                let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
                    return false;
                };
                // `flags:` is in octal.
                info.lines()
                    .find_map(|line| line.strip_prefix("flags:"))
                    .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
                    .is_some_and(|flags| flags & cloexec == 0)
            })
            .collect()
    }

    /// The groups the keeper's script would kill after reading `input` to its end, in order,
    /// with `kill` standing in as a function that prints its group instead (a function comes
    /// before a regular built-in): no process is signalled.
    fn groups_killed_after(input: &str) -> String {
        let script = format!("kill() {{ shift 3; echo \"$1\"; }}\n{KEEPER_SCRIPT}");
        let mut shell = Command::new("/bin/sh")
            .args(["-c", &script, KEEPER_NAME])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        shell
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let mut out = String::new();
        shell
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(shell.wait().unwrap().success());
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_keeper_script_holds_the_groups_added_and_not_taken_out() {
        let table = [
            ("", ""),
            ("+12\n", "-12"),
            ("+12\n+34\n+56\n", "-12 -34 -56"),
            // Out of the middle, the front, the back; the last one out.
            ("+12\n+34\n+56\n-34\n", "-12 -56"),
            ("+12\n+34\n+56\n-12\n", "-34 -56"),
            ("+12\n+34\n+56\n-56\n", "-12 -34"),
            ("+12\n-12\n", ""),
            ("+12\n-12\n+12\n", "-12"),
            // One occurrence out per line; an id is not a part of another.
            ("+12\n+12\n-12\n", "-12"),
            ("+12\n+112\n+123\n-12\n", "-112 -123"),
            ("+112\n-12\n-11\n-1\n", "-112"),
            // Taking out what is not held changes nothing.
            ("-99\n+12\n-99\n", "-12"),
            // The lowest id and the highest Linux gives, 2^22 - 1.
            ("+2\n+4194303\n", "-2 -4194303"),
            // Ignored: no sign, no digits, other characters, spaces, 0, 1 (kill -1 would
            // signal everything), leading zeros, 8 digits, a last line cut short.
            ("12\n\n+\n-\n+a\n+12a\n+-12\n+*\n-*\n+ 12\n+12 \n", ""),
            ("+0\n+1\n+012\n+12345678\n+34\n+56", "-34"),
        ];
        for (input, killed) in table {
            assert_eq!(groups_killed_after(input), killed, "{input:?}");
        }
    }

    #[test]
    fn a_keeper_kills_the_groups_it_holds_when_its_channel_ends_and_spares_the_released() {
        let keeper = RunningKeeper::spawn().unwrap();
        let [mut held, mut twice, mut released, mut cut_short] = [(); 4].map(|()| sleeper());
        let lines = format!(
            "+{held}\n+{twice}\n+{released}\n+junk\n+{twice}\n-{twice}\n-{released}\n+{cut_short}",
            held = pgid(&held).as_raw_pid(),
            twice = pgid(&twice).as_raw_pid(),
            released = pgid(&released).as_raw_pid(),
            cut_short = pgid(&cut_short).as_raw_pid(),
        );
        keeper.send(lines.as_bytes()).unwrap();
        // The keeper holds nothing this process opened (each test's pipes and sockets
        // included): its channel, /dev/null, for an instant at its start its own name (which
        // the shell opens in place of its output, keeping a copy of its output meanwhile), and
        // what this process was itself started with, not close-on-exec, on purpose (cargo's
        // jobserver pipe), which every program it starts inherits.
        let pid = keeper.child.id();
        let comm = format!("/proc/{pid}/comm");
        let inherited = inheritable_fds();
        for (fd, target) in fds_of(&pid.to_string()) {
            let expected = match fd.as_str() {
                "0" => target.starts_with("socket:"),
                _ => {
                    target == "/dev/null"
                        || target == comm
                        || inherited.contains(&(fd.clone(), target.clone()))
                }
            };
            assert!(expected, "the keeper holds {target} as {fd}");
        }
        // What a server that dies does: its end of the channel closes, it kills nothing.
        let RunningKeeper { mut child, channel } = keeper;
        drop(channel);
        assert!(ended(&mut child).is_some_and(|s| s.success()));
        assert_killed(&mut held, "a held group");
        assert_killed(&mut twice, "a group held twice and released once");
        assert_spared(&mut released, "a released group");
        assert_spared(&mut cut_short, "a group whose line was cut short");
    }

    #[test]
    fn a_keeper_names_itself() {
        let keeper = GroupKeeper::new();
        let pid = keeper.pid().unwrap();
        let comm = format!("/proc/{pid}/comm");
        let deadline = Instant::now() + PATIENCE;
        while std::fs::read_to_string(&comm).unwrap() != format!("{KEEPER_NAME}\n")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            std::fs::read_to_string(&comm).unwrap(),
            format!("{KEEPER_NAME}\n")
        );
        let mut child = keeper.close_channel().unwrap();
        assert!(ended(&mut child).is_some_and(|s| s.success()));
    }

    #[test]
    fn a_group_keeper_kills_the_groups_kept_and_spares_the_released() {
        // A keeper of this test's own, so that its channel can be closed as a server's death
        // closes it.
        let keeper = GroupKeeper::new();
        let [mut kept, mut released] = [(); 2].map(|()| sleeper());
        keeper.keep(pgid(&kept)).unwrap();
        keeper.keep(pgid(&released)).unwrap();
        keeper.release(pgid(&released));
        let mut child = keeper.close_channel().unwrap();
        assert!(ended(&mut child).is_some_and(|s| s.success()));
        assert_killed(&mut kept, "a kept group");
        assert_spared(&mut released, "a released group");
    }

    #[test]
    fn a_keeper_killed_is_replaced_by_one_that_kills_the_same_groups() {
        let keeper = GroupKeeper::new();
        let [mut before, mut after, mut released] = [(); 3].map(|()| sleeper());
        keeper.keep(pgid(&before)).unwrap();
        keeper.keep(pgid(&released)).unwrap();
        let first = keeper.pid().unwrap();
        let first_pid = Pid::from_raw(i32::try_from(first).unwrap()).unwrap();
        // `first` is this test's keeper, not yet reaped.
        rustix::process::kill_process(first_pid, Signal::KILL).unwrap();
        // Once it is dead (a zombie, left to the keeper to reap), its end of the channel is
        // closed: the next change finds it so and starts a new keeper, told of every group held.
        rustix::process::waitid(
            WaitId::Pid(first_pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        )
        .unwrap();
        keeper.release(pgid(&released));
        keeper.keep(pgid(&after)).unwrap();
        let second = keeper.pid().unwrap();
        assert_ne!(second, first, "no new keeper after the first died");
        let mut child = keeper.close_channel().unwrap();
        assert!(ended(&mut child).is_some_and(|s| s.success()));
        assert_killed(&mut before, "a group kept before the first keeper died");
        assert_killed(&mut after, "a group kept after");
        assert_spared(&mut released, "a released group");
    }

    #[test]
    fn a_keeper_that_stops_reading_is_replaced_and_kills_nothing_on_its_way_out() {
        let keeper = GroupKeeper::new();
        let [mut kept, mut other] = [(); 2].map(|()| sleeper());
        keeper.keep(pgid(&kept)).unwrap();
        let first = keeper.pid().unwrap();
        let first_pid = Pid::from_raw(i32::try_from(first).unwrap()).unwrap();
        rustix::process::kill_process(first_pid, Signal::STOP).unwrap();
        // Lines queue in the channel until it is full; the write that then waits out the limit
        // ends the first keeper and starts another.
        let deadline = Instant::now() + PATIENCE;
        while keeper.pid().unwrap() == first && Instant::now() < deadline {
            keeper.keep(pgid(&other)).unwrap();
            keeper.release(pgid(&other));
        }
        assert_ne!(keeper.pid().unwrap(), first, "the stopped keeper was kept");
        // Killed and reaped, not left to meet the channel's end and kill what it held.
        assert!(!Path::new(&format!("/proc/{first}")).exists());
        assert_spared(&mut other, "a released group");
        assert!(
            kept.try_wait().unwrap().is_none(),
            "the first keeper killed"
        );
        let mut child = keeper.close_channel().unwrap();
        assert!(ended(&mut child).is_some_and(|s| s.success()));
        assert_killed(&mut kept, "a group kept before the first keeper stopped");
    }
}
