//! The file server: accepting connections and holding them in the shared lobby; each ready
//! request is served by [`request`](super::request), atomic verified commits by
//! [`staging`](super::staging).

use std::io;
use std::net::TcpListener;
use std::sync::Arc;

use unstick_core::session::TOKEN_CAP;

use super::config::FileServerConfig;
use super::request::serve_file_request;
use super::sweeper::Sweeper;
use super::tree::{Dir, SweepReport, SweepRules};
use crate::server::foreign::{self, ForeignProtocol, Recognition};
use crate::server::lobby::{self, framed_request_ready};
use crate::server::{
    Admission, ClientKind, Connection, ErrorCode, GREETING_PAUSE, HEADER_CAP, Handback, Service,
    Shutdown, error_frame,
};

/// The file server. Cheap to clone; clones share the root handle.
///
/// It changes no process-wide state, signal dispositions included, so on Unix a host that
/// embeds it should ignore or catch `SIGXFSZ` before serving (the `unstick` binary catches
/// it): then a write past a file-size limit (`RLIMIT_FSIZE`) fails with `EFBIG`, and that
/// upload alone is refused as `no_space`, its staging file removed and any file of its name
/// left as it was.
/// Left at its default, the signal ends the whole process at that write.
#[derive(Clone, Debug)]
pub struct FileServer {
    root: Arc<Dir>,
    config: Arc<FileServerConfig>,
    /// The sweep of the root that serving starts in the background.
    sweeper: Arc<Sweeper>,
}

impl FileServer {
    /// Opens (creating it if needed) the root directory. An empty token is refused, and so is
    /// one longer than [`TOKEN_CAP`] bytes. Nothing below the root is read yet: the sweep of
    /// stale temporary files and expired partial uploads starts when the server serves.
    pub fn new(config: FileServerConfig) -> io::Result<FileServer> {
        let token_problem = match config.token.as_deref().map(str::len) {
            Some(0) => Some("the token is empty; choose a long random secret".to_owned()),
            Some(len) if len > TOKEN_CAP => Some(format!(
                "the token is {len} bytes long; use at most {TOKEN_CAP} (64 random characters are plenty)"
            )),
            _ => None,
        };
        if let Some(problem) = token_problem {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, problem));
        }
        let root = Dir::open_root(&config.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open the root directory {}: {e}",
                    config.root.display()
                ),
            )
        })?;
        Ok(FileServer {
            root: Arc::new(root),
            config: Arc::new(config),
            sweeper: Arc::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FileServerConfig {
        &self.config
    }

    /// Waits until the sweep that serving started in the background has finished, and returns
    /// what it removed; `None` when it failed (the log says why) or serving has not started
    /// one. Requests are served meanwhile; this is for tests and tools that need to know.
    pub fn wait_for_sweep(&self) -> Option<SweepReport> {
        self.sweeper.wait()
    }

    /// Serves `listener`'s connections until the process ends.
    pub fn serve(&self, listener: TcpListener) -> io::Result<()> {
        self.serve_until(listener, &Shutdown::new())
    }

    /// Serves `listener`'s connections until `shutdown` is requested; then stops accepting,
    /// lets the transfers in progress finish within the shutdown grace, cuts off the rest (an
    /// upload cut off is kept for resume, like any torn upload; temporary files are removed)
    /// and returns. A listener on a non-loopback address is refused unless a token is set and
    /// is not easy to guess.
    ///
    /// The first call also starts the sweep of the root, on a thread of its own, once the
    /// server is ready to serve: temporary files left by uploads a crash cut short and partial
    /// uploads older than [`FileServerConfig::partial_max_age`] are removed while requests are
    /// already served ([`FileServer::wait_for_sweep`] waits for it).
    pub fn serve_until(&self, listener: TcpListener, shutdown: &Shutdown) -> io::Result<()> {
        let local = listener.local_addr()?;
        let transport = &self.config.transport;
        transport.check_listen(local, self.config.token.as_deref())?;
        let config = self.config.lobby;
        let entrance = transport.entrance(listener, &config, "ftp")?;
        let rules = SweepRules {
            partial_max_age: self.config.partial_max_age,
        };
        self.sweeper.start(&self.root, rules, shutdown);
        let penalties = self.config.penalties.clone();
        lobby::serve(
            entrance,
            Arc::new(self.clone()),
            config,
            penalties,
            shutdown,
        )
    }
}

impl Service for FileServer {
    type Mode = ClientKind;

    const NAME: &'static str = "ftp";

    fn admit(&self, client: ClientKind, received: &[u8], paused: bool) -> Admission<ClientKind> {
        if client == ClientKind::Unknown {
            match foreign::recognise(received, paused) {
                Recognition::Foreign(protocol) => {
                    return Admission::Refuse {
                        code: ErrorCode::ForeignProtocol,
                        reason: match protocol {
                            ForeignProtocol::Tls => "the client opened with TLS, not the file \
                                protocol: start the server with --tls, or connect without tls://"
                                .to_owned(),
                            other => {
                                format!("the client opened with {other}, not the file protocol")
                            }
                        },
                        reply: foreign::reply(protocol, "file"),
                    };
                }
                Recognition::Undecided => {
                    return Admission::Wait {
                        pause: Some(GREETING_PAUSE),
                    };
                }
                Recognition::NotForeign => {}
            }
        }
        if framed_request_ready(received, HEADER_CAP) {
            Admission::Serve(ClientKind::Framed)
        } else {
            Admission::Wait { pause: None }
        }
    }

    fn serve(&self, conn: Connection<ClientKind>) -> Handback<ClientKind> {
        serve_file_request(&self.config, &self.root, conn)
    }

    fn refusal_reply(&self, _client: ClientKind, code: ErrorCode, message: &str) -> Vec<u8> {
        error_frame(code, message)
    }

    fn timeout_reply(&self, _client: ClientKind, _received: &[u8], message: &str) -> Vec<u8> {
        error_frame(ErrorCode::IdleTimeout, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &std::path::Path, token: Option<&str>) -> FileServerConfig {
        FileServerConfig {
            root: root.to_path_buf(),
            token: token.map(str::to_owned),
            ..FileServerConfig::default()
        }
    }

    #[test]
    fn beyond_loopback_a_token_is_required_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let empty = FileServer::new(config(dir.path(), Some(""))).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::InvalidInput);
        // Sessions compare at most TOKEN_CAP bytes: a longer token would lock everyone out.
        let long = "t".repeat(TOKEN_CAP + 1);
        let too_long = FileServer::new(config(dir.path(), Some(&long))).unwrap_err();
        assert!(too_long.to_string().contains("bytes long"), "{too_long}");
        let longest = "t".repeat(TOKEN_CAP);
        assert!(FileServer::new(config(dir.path(), Some(&longest))).is_ok());
        let server = FileServer::new(config(dir.path(), None)).unwrap();
        let open = TcpListener::bind("0.0.0.0:0").unwrap();
        let refused = server.serve_until(open, &Shutdown::new()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("without a token"), "{refused}");
    }

    #[cfg(unix)]
    #[test]
    fn requests_are_served_while_the_sweep_of_a_deep_tree_runs_and_it_then_finishes() {
        use std::time::{Duration, SystemTime};

        use crate::files::{ClientOptions, FileClient, RemotePath};

        // A comb 2,000 directories deep, two side directories per level, with what the sweep
        // is for at the bottom: a stale temporary file and a partial upload past its age.
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let mut level = root.duplicate().unwrap();
        for _ in 0..2000 {
            level.subdir("a", true).unwrap();
            level.subdir("b", true).unwrap();
            level = level.subdir("d", true).unwrap();
        }
        level.create_new(".unstick-tmp-1-1-0").unwrap();
        let old = level.create_new(".unstick-partial-old").unwrap();
        old.set_modified(SystemTime::now() - Duration::from_secs(9 * 24 * 3600))
            .unwrap();
        drop(old);
        root.create_new("top.txt").unwrap();

        let server = FileServer::new(config(dir.path(), None)).unwrap();
        // The sweep waits for the test's word: the request below is answered while it has not
        // even begun, so no request can be waiting for it.
        let (go, gate) = std::sync::mpsc::channel();
        *server.sweeper.gate.lock().unwrap() = Some(gate);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = Shutdown::new();
        let serving = {
            let (server, shutdown) = (server.clone(), shutdown.clone());
            std::thread::spawn(move || server.serve_until(listener, &shutdown))
        };
        let options = ClientOptions {
            timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        };
        let mut client = FileClient::connect(&addr, options).unwrap();
        let names: Vec<String> = client
            .list(None)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a", "b", "d", "top.txt"].map(String::from).to_vec());
        assert!(
            client.stat(&RemotePath::parse("top.txt").unwrap()).is_ok(),
            "a second request too"
        );

        go.send(()).unwrap();
        let report = server.wait_for_sweep().expect("the sweep finished");
        assert_eq!(
            (report.temporaries, report.expired_partials, report.dirs),
            (1, 1, 1 + 3 * 2000),
            "{report:?}"
        );
        assert_eq!(level.stat(".unstick-tmp-1-1-0").unwrap(), None);
        assert_eq!(level.stat(".unstick-partial-old").unwrap(), None);
        shutdown.request();
        serving.join().unwrap().unwrap();
    }
}
