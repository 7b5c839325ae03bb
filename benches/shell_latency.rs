//! Round-trip latency of `true` through the remote shell, against the floor of spawning
//! `sh -c true` locally, over plaintext and over TLS (one persistent connection each), and
//! against a server written like the seed's Python one.
//!
//! ```sh
//! cargo bench --bench shell_latency                 # 400 rounds
//! SHELL_BENCH_ROUNDS=2000 cargo bench --bench shell_latency
//! ```
//!
//! Each round runs every contender once, in turn, so load from elsewhere on the machine hits
//! them alike. Clients keep one connection for all rounds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use unstick_std::shell::{
    CapturedOutput, SeedShellClient, ShellClient, ShellConfig, ShellServer, Termination,
};
use unstick_std::tls::{ClientTls, ServerTls, ServerTlsOptions};

const DEFAULT_ROUNDS: usize = 400;
const WARM_UP_ROUNDS: usize = 20;

/// One way of running `true` and waiting for it.
trait Contender {
    fn name(&self) -> &str;
    fn run_true(&mut self);
}

/// The floor: spawn `sh -c true` here, with its output piped as the server pipes it.
struct LocalSpawn;

impl Contender for LocalSpawn {
    fn name(&self) -> &str {
        "local `sh -c true` (floor)"
    }

    fn run_true(&mut self) {
        let out = Command::new("sh")
            .args(["-c", "true"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn sh");
        assert!(out.status.success());
    }
}

/// unstick: a framed client over loopback to an in-process server.
struct Unstick {
    name: &'static str,
    client: ShellClient,
}

impl Contender for Unstick {
    fn name(&self) -> &str {
        self.name
    }

    fn run_true(&mut self) {
        let mut out = CapturedOutput::default();
        let report = self.client.exec("true", &mut out).expect("exec");
        assert_eq!(report.termination, Termination::Exited(0));
    }
}

/// The seed-style Python server, through `SeedShellClient`.
struct SeedPython {
    name: &'static str,
    client: SeedShellClient,
    _server: PythonServer,
}

impl Contender for SeedPython {
    fn name(&self) -> &str {
        self.name
    }

    fn run_true(&mut self) {
        let mut sink = Vec::new();
        self.client.exec("true", &mut sink).expect("exec");
    }
}

struct PythonServer(Child);

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_python_server(extra: &[&str]) -> Option<(PythonServer, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/shell_seed_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--forever")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let port: u16 = line.trim().parse().ok()?;
    Some((PythonServer(child), format!("127.0.0.1:{port}")))
}

fn seed_python(name: &'static str, extra: &[&str]) -> Option<SeedPython> {
    let (server, addr) = start_python_server(extra)?;
    let client = SeedShellClient::connect(&addr).ok()?;
    Some(SeedPython {
        name,
        client,
        _server: server,
    })
}

/// An in-process server and a client of it, over TLS when `tls_state` (where the server's
/// generated identity goes) is given.
fn unstick(tls_state: Option<&Path>) -> Unstick {
    let mut config = ShellConfig::default();
    let mut trust = ClientTls::default();
    if let Some(state) = tls_state {
        let options = ServerTlsOptions {
            state_dir: Some(state.to_owned()),
            ..ServerTlsOptions::default()
        };
        let tls = ServerTls::load(&options, &["localhost".to_owned()]).expect("TLS identity");
        trust.pin = Some(tls.fingerprint());
        config.transport.tls = Some(tls);
    }
    let server = ShellServer::bind("127.0.0.1:0", config).expect("bind");
    let addr = server.local_addr().expect("addr").to_string();
    thread::spawn(move || server.serve());
    let (name, addr) = match tls_state {
        Some(_) => ("unstick shell (framed), TLS", format!("tls://{addr}")),
        None => ("unstick shell (framed)", addr),
    };
    Unstick {
        name,
        client: ShellClient::connect_with(&addr, None, trust).expect("connect"),
    }
}

/// Latency figures of one contender, in microseconds.
struct Summary {
    median: f64,
    mean: f64,
    p90: f64,
    p99: f64,
}

fn summarize(samples: &mut [Duration]) -> Summary {
    samples.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let total: Duration = samples.iter().sum();
    Summary {
        median: at(0.5),
        mean: micros(total) / samples.len() as f64,
        p90: at(0.9),
        p99: at(0.99),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else here takes arguments.
    let rounds = std::env::var("SHELL_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let state = tempfile::tempdir().expect("temp dir");
    let mut contenders: Vec<Box<dyn Contender>> = vec![
        Box::new(LocalSpawn),
        Box::new(unstick(None)),
        Box::new(unstick(Some(state.path()))),
    ];
    let seed_servers = [
        ("seed-style Python server", &[][..]),
        ("seed-style Python server, TCP_NODELAY", &["--nodelay"][..]),
    ];
    for (name, extra) in seed_servers {
        match seed_python(name, extra) {
            Some(c) => contenders.push(Box::new(c)),
            None => eprintln!("skipping {name}: python3 or the peer script is unavailable"),
        }
    }

    for _ in 0..WARM_UP_ROUNDS {
        contenders.iter_mut().for_each(|c| c.run_true());
    }
    let mut samples = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds {
        for (c, s) in contenders.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            c.run_true();
            s.push(start.elapsed());
        }
    }

    println!("round trip of `true`, {rounds} rounds (microseconds)");
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>13}",
        "", "median", "mean", "p90", "p99", "median/floor"
    );
    let summaries: Vec<Summary> = samples.iter_mut().map(|s| summarize(s)).collect();
    let floor = summaries[0].median;
    for (c, s) in contenders.iter().zip(&summaries) {
        println!(
            "{:<40} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>12.2}x",
            c.name(),
            s.median,
            s.mean,
            s.p90,
            s.p99,
            s.median / floor
        );
    }
    println!(
        "TLS against plaintext, on one persistent connection each: {:.2}x (median)",
        summaries[2].median / summaries[1].median
    );
}
