//! The config file: defaults a user would otherwise repeat on every client command (the server
//! address of each tool, the token or the file holding it).
//!
//! Where: `--config FILE`, else `$UNSTICK_CONFIG`, else `unstick/config.toml` under the user's
//! config directory (`$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application
//! Support` on macOS, `%APPDATA%` on Windows). A default file that does not exist is no error;
//! a named one is.
//!
//! Format: a small part of TOML, so that the file stays valid TOML if a richer format is ever
//! needed: `key = "string"` lines (or `'literal'`), `#` comments, and the sections `[shell]`
//! and `[ftp]` (or dotted keys, `shell.addr = ...`). Keys outside a section apply to both
//! tools; a section's key wins for its tool.
//!
//! ```toml
//! token_file = "~/.config/unstick/token"
//! [shell]
//! addr = "build-box"
//! [ftp]
//! addr = "tls://files.example.org"
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "UNSTICK_CONFIG";

/// The sections a config file may have (besides the top level).
const SECTIONS: [&str; 2] = ["shell", "ftp"];

/// The keys every section (and the top level) may hold.
const KEYS: [&str; 3] = ["addr", "token", "token_file"];

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
    /// A line is not a valid entry.
    Entry {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: EntryProblem,
    },
}

/// What is wrong with one line of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryProblem {
    /// Neither `key = value`, `[section]`, a comment nor blank.
    NotAnEntry,
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
    /// A value that is not a quoted string.
    NotAString {
        /// The key.
        key: String,
    },
    /// A string with no closing quote, or a backslash escape other than `\\`, `\"`, `\t`, `\n`.
    BadString {
        /// The key.
        key: String,
    },
    /// Something other than a comment after the value.
    TrailingText {
        /// The key.
        key: String,
    },
    /// The same key twice in one section.
    Duplicate {
        /// The key.
        key: String,
    },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = |suggestion: &Option<&str>| match suggestion {
            Some(s) => format!("; did you mean `{s}`?"),
            None => String::new(),
        };
        match self {
            EntryProblem::NotAnEntry => {
                f.write_str("not an entry; write key = \"value\", [section] or # a comment")
            }
            EntryProblem::UnknownSection { name, suggestion } => write!(
                f,
                "unknown section [{name}]{}; the sections are [shell] and [ftp]",
                hint(suggestion)
            ),
            EntryProblem::UnknownKey { key, suggestion } => write!(
                f,
                "unknown key `{key}`{}; the keys are addr, token and token_file",
                hint(suggestion)
            ),
            EntryProblem::NotAString { key } => {
                write!(f, "`{key}` takes a quoted string, as {key} = \"...\"")
            }
            EntryProblem::BadString { key } => write!(
                f,
                "the string of `{key}` is not closed, or has an escape other than \\\\, \\\", \\t, \\n"
            ),
            EntryProblem::TrailingText { key } => write!(
                f,
                "text after the value of `{key}`; only a # comment may follow it"
            ),
            EntryProblem::Duplicate { key } => write!(f, "`{key}` is set twice in this section"),
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
                line,
                problem,
            } => write!(f, "config file {}, line {line}: {problem}", path.display()),
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
        let mut config = ConfigFile {
            path: Some(path.to_owned()),
            ..ConfigFile::default()
        };
        let mut section: Option<&'static str> = None;
        for (index, raw) in text.lines().enumerate() {
            let fail = |problem| ConfigError::Entry {
                path: path.to_owned(),
                line: index + 1,
                problem,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let (name, rest) = header
                    .split_once(']')
                    .ok_or(fail(EntryProblem::NotAnEntry))?;
                let rest = rest.trim();
                if !(rest.is_empty() || rest.starts_with('#')) {
                    return Err(fail(EntryProblem::NotAnEntry));
                }
                let name = name.trim();
                section = Some(known(name, &SECTIONS).ok_or_else(|| {
                    fail(EntryProblem::UnknownSection {
                        name: name.to_owned(),
                        suggestion: closest(name, &SECTIONS),
                    })
                })?);
                continue;
            }
            let (key, value) = line.split_once('=').ok_or(fail(EntryProblem::NotAnEntry))?;
            let key = key.trim();
            let (key_section, key) = match key.split_once('.') {
                Some((outer, inner)) if section.is_none() => {
                    let outer = outer.trim();
                    let found = known(outer, &SECTIONS).ok_or_else(|| {
                        fail(EntryProblem::UnknownSection {
                            name: outer.to_owned(),
                            suggestion: closest(outer, &SECTIONS),
                        })
                    })?;
                    (Some(found), inner.trim())
                }
                _ => (section, key),
            };
            if key.is_empty() {
                return Err(fail(EntryProblem::NotAnEntry));
            }
            let Some(key) = known(key, &KEYS) else {
                return Err(fail(EntryProblem::UnknownKey {
                    key: key.to_owned(),
                    suggestion: closest(key, &KEYS),
                }));
            };
            let value = parse_string(value.trim(), key).map_err(fail)?;
            let target = match key_section {
                None => &mut config.common,
                Some("shell") => &mut config.shell,
                Some(_) => &mut config.ftp,
            };
            let duplicate = match key {
                "addr" => target.addr.replace(value).is_some(),
                "token" => target.token.replace(value).is_some(),
                _ => target.token_file.replace(file_path(&value, path)).is_some(),
            };
            if duplicate {
                return Err(fail(EntryProblem::Duplicate {
                    key: key.to_owned(),
                }));
            }
        }
        Ok(config)
    }
}

/// The name in `names` that `given` is.
fn known(given: &str, names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|name| *name == given)
}

/// The name in `names` closest to `given`, if it is close enough to be a typo of it.
fn closest(given: &str, names: &[&'static str]) -> Option<&'static str> {
    let given = given.to_ascii_lowercase().replace('-', "_");
    names
        .iter()
        .copied()
        .map(|name| (edit_distance(&given, name), name))
        .filter(|&(distance, name)| {
            distance <= 2
                || (given.len() >= 3 && (given.starts_with(name) || name.starts_with(&given)))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// The number of characters to insert, delete or replace to turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let replace = previous[j] + usize::from(ca != cb);
            current[j + 1] = replace.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// A TOML basic string (`"..."`, escapes `\\ \" \t \n`) or literal string (`'...'`), with
/// nothing but a comment after it.
fn parse_string(text: &str, key: &str) -> Result<String, EntryProblem> {
    let bad_string = || EntryProblem::BadString {
        key: key.to_owned(),
    };
    let mut chars = text.chars();
    let quote = match chars.next() {
        Some(q @ ('"' | '\'')) => q,
        _ => {
            return Err(EntryProblem::NotAString {
                key: key.to_owned(),
            });
        }
    };
    let mut value = String::new();
    loop {
        match chars.next().ok_or_else(bad_string)? {
            c if c == quote => break,
            '\\' if quote == '"' => value.push(match chars.next().ok_or_else(bad_string)? {
                '\\' => '\\',
                '"' => '"',
                't' => '\t',
                'n' => '\n',
                _ => return Err(bad_string()),
            }),
            c => value.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(EntryProblem::TrailingText {
            key: key.to_owned(),
        });
    }
    Ok(value)
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

    fn problem(text: &str) -> (usize, EntryProblem) {
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
    }

    #[test]
    fn bad_entries_are_refused_with_their_line() {
        let table = [
            ("addr", 1, EntryProblem::NotAnEntry),
            (
                "\n[shel]",
                2,
                EntryProblem::UnknownSection {
                    name: "shel".into(),
                    suggestion: Some("shell"),
                },
            ),
            (
                "[ftp]\naddress = \"x\"",
                2,
                EntryProblem::UnknownKey {
                    key: "address".into(),
                    suggestion: Some("addr"),
                },
            ),
            (
                "token-file = \"x\"",
                1,
                EntryProblem::UnknownKey {
                    key: "token-file".into(),
                    suggestion: Some("token_file"),
                },
            ),
            (
                "colour = \"x\"",
                1,
                EntryProblem::UnknownKey {
                    key: "colour".into(),
                    suggestion: None,
                },
            ),
            (
                "addr = 8080",
                1,
                EntryProblem::NotAString { key: "addr".into() },
            ),
            (
                "addr = \"x",
                1,
                EntryProblem::BadString { key: "addr".into() },
            ),
            (
                "addr = \"\\q\"",
                1,
                EntryProblem::BadString { key: "addr".into() },
            ),
            (
                "addr = \"x\" y",
                1,
                EntryProblem::TrailingText { key: "addr".into() },
            ),
            (
                "addr = \"x\"\naddr = \"y\"",
                2,
                EntryProblem::Duplicate { key: "addr".into() },
            ),
        ];
        for (text, line, expected) in table {
            assert_eq!(problem(text), (line, expected), "{text}");
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
