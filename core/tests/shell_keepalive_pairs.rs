//! Keepalives between the shell's client and server sessions, in memory, on a fake clock that
//! jumps to the sessions' next deadline whenever neither side can move, under every chunking
//! of [`pairs::all_cuts`]: a command silent for an hour outlives a client's 3 s patience,
//! because the server says it is alive; a server that falls silent is given up on within it.
#![cfg(all(feature = "md5", feature = "xxh3"))]

mod pairs;

use std::time::Duration;

use pairs::{Budget, Cuts, Pipe, Read, all_cuts};
use unstick_core::shell::{
    Dialect, ExitReport, ShellAction, ShellClientSession, ShellProtocolError, ShellReply,
    ShellRules, ShellServerSession, Termination,
};
use unstick_core::time::Instant;

const PATIENCE: Duration = Duration::from_secs(3);

const EXIT_0: ExitReport = ExitReport {
    termination: Termination::Exited(0),
    truncated: false,
    timed_out: false,
};

/// How a run ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exit(ExitReport),
    Failed(ShellProtocolError),
}

/// Runs a command that stays silent for `silence`, then exits, between a client that waits
/// [`PATIENCE`] for a silent server and a server that, from `dies_at` on, sends nothing more
/// (its host gone); returns how the client's wait ended and when.
fn run(cuts: Cuts, silence: Duration, dies_at: Option<Duration>) -> (End, Instant) {
    let mut command = [0u8; 64];
    let mut server =
        ShellServerSession::<1024>::new(ShellRules::default(), Dialect::Framed, &mut command);
    let mut client = ShellClientSession::<1024>::new().with_reply_timeout(Some(PATIENCE));
    let (mut c2s, mut s2c) = (Pipe::new(cuts), Pipe::new(cuts.reversed()));
    let mut buf = [0u8; 1024];
    let mut now = Instant::ZERO;
    let mut started: Option<Instant> = None;
    client.exec("sleep", None).unwrap();
    c2s.send_transmits(&mut buf, b"sleep", |b| client.poll_transmit(b));
    let mut budget = Budget::new(1_000_000, format!("{cuts:?}"));
    loop {
        let alive = dies_at.is_none_or(|at| now < Instant::ZERO + at);
        let mut moved = false;
        // The server's host: feeds the request, runs the command (silent until it ends),
        // and sends what the session queues while it is alive.
        if alive {
            moved |= s2c.send_transmits(&mut buf, &[], |b| server.poll_transmit(b));
            if started.is_none() {
                if !c2s.pending().is_empty() {
                    let used = server.handle_input(now, c2s.pending());
                    c2s.consume(used);
                    moved |= used > 0;
                } else {
                    moved |= c2s.read() == Read::Data;
                }
                if let Some(ShellAction::Run { .. }) = server.poll_action() {
                    started = Some(now);
                }
            } else if started.is_some_and(|at| now >= at + silence) {
                server.handle_exit(EXIT_0).unwrap();
                started = Some(Instant::from_millis(u64::MAX / 2));
            }
            moved |= s2c.send_transmits(&mut buf, &[], |b| server.poll_transmit(b));
        }
        // The client's host.
        if s2c.pending().is_empty() {
            moved |= s2c.read() == Read::Data;
        } else {
            let used = match client.handle_input(now, s2c.pending()) {
                Ok((_, Some(ShellReply::Exit(report)))) => return (End::Exit(report), now),
                Ok((_, Some(other))) => panic!("{cuts:?}: {other:?}"),
                Ok((used, None)) => used,
                Err(e) => return (End::Failed(e), now),
            };
            s2c.consume(used);
            moved = true;
        }
        if !moved {
            // Time passes to the next deadline: the server's keepalive, the command's end, the
            // client's patience.
            let ends = started.map(|at| at + silence).filter(|&at| at > now);
            let next = [
                alive.then(|| server.poll_timeout(now)).flatten(),
                client.poll_timeout(now),
                ends,
                dies_at.map(|at| Instant::ZERO + at).filter(|&at| at > now),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("a deadline");
            now = next.max(now);
            if alive {
                server.handle_timeout(now);
            }
            if let Err(e) = client.handle_timeout(now) {
                return (End::Failed(e), now);
            }
        }
        budget.spend(true, || format!("at {now:?}"));
    }
}

#[test]
fn a_command_silent_for_an_hour_outlives_a_clients_patience_of_three_seconds() {
    for cuts in all_cuts() {
        let (end, at) = run(cuts, Duration::from_secs(3600), None);
        assert_eq!(end, End::Exit(EXIT_0), "{cuts:?}");
        assert_eq!(at, Instant::ZERO + Duration::from_secs(3600), "{cuts:?}");
    }
}

#[test]
fn a_server_that_falls_silent_is_given_up_on_within_the_clients_patience() {
    for cuts in all_cuts() {
        let dies = Duration::from_secs(100);
        let (end, at) = run(cuts, Duration::from_secs(3600), Some(dies));
        assert_eq!(
            end,
            End::Failed(ShellProtocolError::TimedOut { limit: PATIENCE }),
            "{cuts:?}"
        );
        let since = at.saturating_duration_since(Instant::ZERO + dies);
        assert!(
            since <= PATIENCE,
            "{cuts:?}: {since:?} after the server fell silent"
        );
        // Silent from the start (a port that accepts and never answers): the same.
        let (end, at) = run(cuts, Duration::from_secs(3600), Some(Duration::ZERO));
        assert!(matches!(
            end,
            End::Failed(ShellProtocolError::TimedOut { .. })
        ));
        assert_eq!(at, Instant::ZERO + PATIENCE, "{cuts:?}");
    }
}
