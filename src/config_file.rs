//! The config file: defaults a user would otherwise repeat on every client command (the server
//! address of each tool, the token or the file holding it).
//!
//! Where: `--config FILE`, else `$UNSTICK_CONFIG`, else `unstick/config.toml` under the user's
//! config directory (`$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application
//! Support` on macOS, `%APPDATA%` on Windows). A default file that does not exist is no error;
//! a named one is.
//!
//! Format: TOML (read by the `toml` crate into serde structs), with string keys at the top
//! level and in the sections `[shell]` and `[ftp]` (or dotted keys, `shell.addr = ...`). Keys
//! outside a section apply to both tools; a section's key wins for its tool. `unknown_hosts`
//! (what a client does with a TLS server it meets for the first time) is a top-level key only.
//!
//! ```toml
//! token_file = "~/.config/unstick/token"
//! unknown_hosts = "refuse"
//! [shell]
//! addr = "build-box"
//! [ftp]
//! addr = "tls://files.example.org"
//! ```

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::tls_cli::UnknownHosts;

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "UNSTICK_CONFIG";

/// The sections a config file may have (besides the top level).
const SECTIONS: [&str; 2] = ["shell", "ftp"];

/// The keys every section (and the top level) may hold.
const KEYS: [&str; 3] = ["addr", "token", "token_file"];

/// The keys only the top level may hold.
const TOP_KEYS: [&str; 1] = ["unknown_hosts"];

/// The values of one section (or of the top level).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolDefaults {
    /// The server address, as `--addr` takes it.
    pub addr: Option<String>,
    /// The shared secret.
    pub token: Option<String>,
    /// A file whose first line is the shared secret (relative to the config file's directory;
    /// `~/` is the home directory).
    pub token_file: Option<PathBuf>,
}

/// A read config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it was read from (`None`: no file, all defaults built in).
    pub path: Option<PathBuf>,
    /// Keys outside any section.
    pub common: ToolDefaults,
    /// `[shell]`.
    pub shell: ToolDefaults,
    /// `[ftp]`.
    pub ftp: ToolDefaults,
    /// `unknown_hosts`: what a client does with a TLS server met for the first time.
    pub unknown_hosts: Option<UnknownHosts>,
}

/// One section's keys as the file has them.
#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a section of string keys, as [shell]"
)]
struct SectionKeys {
    addr: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
}

/// The whole file as it has it: the top level's keys and the two sections (serde's `flatten`
/// cannot be combined with `deny_unknown_fields`, hence the keys spelt out).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    addr: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
    unknown_hosts: Option<String>,
    #[serde(default)]
    shell: SectionKeys,
    #[serde(default)]
    ftp: SectionKeys,
}

/// Why a config file cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file cannot be read (or, named by `--config` or `$UNSTICK_CONFIG`, does not exist).
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An entry is not valid.
    Entry {
        /// The file.
        path: PathBuf,
        /// The number of the line the problem is on, from 1 (`None`: the TOML reader did not
        /// say where).
        line: Option<usize>,
        /// What is wrong with it.
        problem: EntryProblem,
    },
}

/// What is wrong with one entry of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryProblem {
    /// Not TOML, or TOML with a value of the wrong type (a key's value that is not a string, a
    /// key set twice), as the TOML reader says it.
    Invalid {
        /// The reader's message.
        message: String,
    },
    /// A section other than `[shell]` and `[ftp]`.
    UnknownSection {
        /// The section's name.
        name: String,
        /// The known name it is closest to.
        suggestion: Option<&'static str>,
    },
    /// A key this version does not know.
    UnknownKey {
        /// The key.
        key: String,
        /// The known key it is closest to.
        suggestion: Option<&'static str>,
    },
    /// A value that is not one of those its key takes.
    BadValue {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// The values it takes.
        expected: &'static str,
    },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = |suggestion: &Option<&str>| match suggestion {
            Some(s) => format!("; did you mean `{s}`?"),
            None => String::new(),
        };
        match self {
            EntryProblem::Invalid { message } => write!(
                f,
                "{message}; write key = \"value\" lines, [shell] and [ftp] sections and # comments"
            ),
            EntryProblem::UnknownSection { name, suggestion } => write!(
                f,
                "unknown section [{name}]{}; the sections are [shell] and [ftp]",
                hint(suggestion)
            ),
            EntryProblem::UnknownKey { key, suggestion } => write!(
                f,
                "unknown key `{key}`{}; the keys are addr, token and token_file, and \
                 unknown_hosts outside the sections",
                hint(suggestion)
            ),
            EntryProblem::BadValue {
                key,
                value,
                expected,
            } => write!(f, "`{key}` is {value:?}; use {expected}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unreadable { path, source } => {
                write!(f, "config file {}: {source}", path.display())
            }
            ConfigError::Entry {
                path,
                line: Some(line),
                problem,
            } => write!(f, "config file {}, line {line}: {problem}", path.display()),
            ConfigError::Entry {
                path,
                line: None,
                problem,
            } => write!(f, "config file {}: {problem}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The default config file: `unstick/config.toml` under the user's config directory.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("unstick").join("config.toml"))
}

impl ConfigFile {
    /// Reads the config file `given` by `--config`, else the one `$UNSTICK_CONFIG` names, else
    /// the default one if it exists. Warns on stderr when a file holding a token is readable
    /// by other users.
    pub fn load(given: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let named = given.map(Path::to_owned).or_else(|| {
            std::env::var_os(CONFIG_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let (path, must_exist) = match named {
            Some(path) => (path, true),
            None => match default_path() {
                Some(path) => (path, false),
                None => return Ok(ConfigFile::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !must_exist && e.kind() == io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default());
            }
            Err(source) => return Err(ConfigError::Unreadable { path, source }),
        };
        let config = ConfigFile::parse(&text, &path)?;
        if [&config.common, &config.shell, &config.ftp]
            .iter()
            .any(|d| d.token.is_some())
        {
            warn_if_others_can_read(&path, "holds a token");
        }
        Ok(config)
    }

    /// Reads a config file's text; `path` is where it came from, for messages and for
    /// relative `token_file` paths.
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let fail = |span: Option<Range<usize>>, problem| ConfigError::Entry {
            path: path.to_owned(),
            line: span.map(|span| line_of(text, span.start)),
            problem,
        };
        let invalid = |e: toml::de::Error| {
            let message = e.message().to_owned();
            fail(e.span(), EntryProblem::Invalid { message })
        };
        let table = DeTable::parse(text).map_err(invalid)?;
        if let Some((span, problem)) = unknown_name(table.get_ref()) {
            return Err(fail(Some(span), problem));
        }
        let unknown_hosts_span = table
            .get_ref()
            .get("unknown_hosts")
            .map(|value| value.span());
        let keys = FileKeys::deserialize(toml::de::Deserializer::from(table)).map_err(invalid)?;
        let defaults = |addr, token, token_file: Option<String>| ToolDefaults {
            addr,
            token,
            token_file: token_file.map(|file| file_path(&file, path)),
        };
        let section = |s: SectionKeys| defaults(s.addr, s.token, s.token_file);
        let unknown_hosts = match keys.unknown_hosts {
            None => None,
            Some(text) => Some(UnknownHosts::from_name(&text).ok_or_else(|| {
                let problem = EntryProblem::BadValue {
                    key: "unknown_hosts",
                    value: text,
                    expected: "ask, accept or refuse",
                };
                fail(unknown_hosts_span, problem)
            })?),
        };
        Ok(ConfigFile {
            path: Some(path.to_owned()),
            common: defaults(keys.addr, keys.token, keys.token_file),
            shell: section(keys.shell),
            ftp: section(keys.ftp),
            unknown_hosts,
        })
    }
}

/// The first name in the file this version does not know, where it is and the known name it
/// is closest to. (serde's `deny_unknown_fields` refuses it too, but says neither whether it
/// is a section nor what was meant.)
fn unknown_name(top: &DeTable<'_>) -> Option<(Range<usize>, EntryProblem)> {
    for (name, value) in top {
        let (span, name) = (name.span(), name.get_ref());
        if KEYS.contains(&name.as_ref()) || TOP_KEYS.contains(&name.as_ref()) {
            continue;
        }
        match value.get_ref() {
            DeValue::Table(keys) if SECTIONS.contains(&name.as_ref()) => {
                let unknown = keys
                    .keys()
                    .find(|key| !KEYS.contains(&key.get_ref().as_ref()));
                if let Some(key) = unknown {
                    return Some((key.span(), unknown_key(key.get_ref())));
                }
            }
            // A known section that is not a table: the type error is serde's to report.
            _ if SECTIONS.contains(&name.as_ref()) => {}
            DeValue::Table(_) => {
                let problem = EntryProblem::UnknownSection {
                    name: name.to_string(),
                    suggestion: closest(name, &SECTIONS),
                };
                return Some((span, problem));
            }
            _ => return Some((span, unknown_key(name))),
        }
    }
    None
}

/// The problem of the unknown key `key`.
fn unknown_key(key: &str) -> EntryProblem {
    EntryProblem::UnknownKey {
        key: key.to_owned(),
        suggestion: closest(key, &KEYS),
    }
}

/// The number, from 1, of the line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// The name in `names` closest to `given`, if it is close enough to be a typo of it.
fn closest(given: &str, names: &[&'static str]) -> Option<&'static str> {
    let given = given.to_ascii_lowercase().replace('-', "_");
    names
        .iter()
        .copied()
        .map(|name| (strsim::levenshtein(&given, name), name))
        .filter(|&(distance, name)| {
            distance <= 2
                || (given.len() >= 3 && (given.starts_with(name) || name.starts_with(&given)))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// A path written in the config file: `~/` is the home directory, a relative path is relative
/// to the file's directory.
fn file_path(text: &str, config: &Path) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    let path = PathBuf::from(text);
    match config.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

/// Warns on stderr when other users can read `path` (a file that `what`: holds a token).
#[cfg(unix)]
pub fn warn_if_others_can_read(path: &Path, what: &str) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.mode() & 0o077 != 0
    {
        eprintln!(
            "unstick: warning: {} {what} and has mode {:o}, which lets other users read it; chmod 600 {}",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        );
    }
}

/// Warns on stderr when other users can read `path`: nothing to check on Windows, where a
/// file under the user's profile is the user's own by default.
#[cfg(not(unix))]
pub fn warn_if_others_can_read(_path: &Path, _what: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(text, Path::new("/etc/u/config.toml"))
    }

    fn problem(text: &str) -> (Option<usize>, EntryProblem) {
        match parse(text) {
            Err(ConfigError::Entry { line, problem, .. }) => (line, problem),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn entries_go_to_their_section() {
        let config = parse(
            "# defaults\n\ntoken = \"s3\\\"cret\" # shared\n[shell]\naddr = 'build-box'\n\
             [ftp]\naddr = \"tls://files\"\ntoken_file = \"token\"\n",
        )
        .unwrap();
        assert_eq!(config.common.token.as_deref(), Some("s3\"cret"));
        assert_eq!(config.shell.addr.as_deref(), Some("build-box"));
        assert_eq!(config.ftp.addr.as_deref(), Some("tls://files"));
        assert_eq!(
            config.ftp.token_file,
            Some(PathBuf::from("/etc/u/token")),
            "relative to the file"
        );
        let dotted = parse("ftp.addr = \"h\"\nshell.token = \"t\"").unwrap();
        assert_eq!(dotted.ftp.addr.as_deref(), Some("h"));
        assert_eq!(dotted.shell.token.as_deref(), Some("t"));
        assert_eq!(
            parse("unknown_hosts = \"refuse\"").unwrap().unknown_hosts,
            Some(UnknownHosts::Refuse)
        );
        assert_eq!(parse("").unwrap().unknown_hosts, None);
    }

    #[test]
    fn unknown_hosts_takes_a_policy_and_only_at_the_top_level() {
        assert_eq!(
            problem("\nunknown_hosts = \"never\""),
            (
                Some(2),
                EntryProblem::BadValue {
                    key: "unknown_hosts",
                    value: "never".into(),
                    expected: "ask, accept or refuse",
                }
            )
        );
        assert!(matches!(
            problem("[ftp]\nunknown_hosts = \"refuse\""),
            (Some(2), EntryProblem::UnknownKey { .. })
        ));
    }

    #[test]
    fn bad_entries_are_refused_with_their_line() {
        let unknown_key = |key: &str, suggestion| EntryProblem::UnknownKey {
            key: key.into(),
            suggestion,
        };
        let unknown_section = |name: &str, suggestion| EntryProblem::UnknownSection {
            name: name.into(),
            suggestion,
        };
        let names = [
            ("\n[shel]", 2, unknown_section("shel", Some("shell"))),
            (
                "\nshel.addr = \"h\"",
                2,
                unknown_section("shel", Some("shell")),
            ),
            (
                "[ftp]\naddress = \"x\"",
                2,
                unknown_key("address", Some("addr")),
            ),
            ("[ftp]\n'adr' = \"x\"", 2, unknown_key("adr", Some("addr"))),
            (
                "token-file = \"x\"",
                1,
                unknown_key("token-file", Some("token_file")),
            ),
            ("colour = \"x\"", 1, unknown_key("colour", None)),
            ("[shell.tls]\nca = \"x\"", 1, unknown_key("tls", None)),
        ];
        for (text, line, expected) in names {
            assert_eq!(problem(text), (Some(line), expected), "{text}");
        }
        // Not TOML, or not a string where one is wanted: the TOML reader's message, on the line.
        let invalid = [
            ("addr", 1, "expected"),
            (
                "addr = 8080",
                1,
                "invalid type: integer `8080`, expected a string",
            ),
            ("addr = \"x", 1, "invalid basic string"),
            ("addr = \"\\q\"", 1, "escape"),
            ("addr = \"x\" y", 1, "newline"),
            ("addr = \"x\"\naddr = \"y\"", 2, "duplicate key"),
            (
                "\n\nshell = \"x\"",
                3,
                "invalid type: string \"x\", expected a section of string keys",
            ),
        ];
        for (text, line, says) in invalid {
            match problem(text) {
                (found, EntryProblem::Invalid { message }) => {
                    assert_eq!(found, Some(line), "{text}: {message}");
                    assert!(message.contains(says), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let message = parse("[ftp]\nadr = \"x\"").unwrap_err().to_string();
        assert!(
            message.contains("/etc/u/config.toml, line 2")
                && message.contains("did you mean `addr`"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_named_file_is_an_error_and_a_missing_default_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert!(matches!(
            ConfigFile::load(Some(&missing)),
            Err(ConfigError::Unreadable { .. })
        ));
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[shell]\naddr = \"h\"\n").unwrap();
        let config = ConfigFile::load(Some(&file)).unwrap();
        assert_eq!(config.shell.addr.as_deref(), Some("h"));
    }
}
