//! Remote file names: the only form in which a client's path reaches the file system.

use std::borrow::Cow;
use std::fmt;

use unstick_core::session::PeerText;

pub use unstick_core::files::path::{MAX_COMPONENT_LEN, PathError, RESERVED_PREFIX};
use unstick_core::files::{NameRules, check_component_with, check_dir_with, check_path_with};

/// The names this build's server refuses beyond the portable rules: those that are traps on
/// the file system it stores files on. Windows: device names, streams, trailing dots and
/// spaces, short names, the reserved prefix in any case. macOS (case-insensitive by default):
/// the reserved prefix in any case. Elsewhere: none, so a Linux server keeps `aux.c` or `a:b`.
pub const SERVER_NAME_RULES: NameRules = if cfg!(windows) {
    NameRules::Windows
} else if cfg!(target_vendor = "apple") {
    NameRules::CaseInsensitive
} else {
    NameRules::Portable
};

/// Checks a local file name the client derives from a remote path (`get NAME` without a local
/// path): on Windows a remote `CON` or `a:b` must not become a device or a stream here.
pub fn check_local_name(name: &str) -> Result<(), PathError> {
    let rules = if cfg!(windows) {
        NameRules::Windows
    } else {
        NameRules::Portable
    };
    check_component_with(name, rules)
}

/// A validated path relative to the server root: one or more `/`-separated components, none of
/// them empty, `.`, `..` or reserved, with no NUL, backslash, control character or drive letter.
///
/// Validation is purely textual; the server then opens each component from a directory handle
/// without following symbolic links, so a valid name cannot leave the root either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePath {
    text: String,
}

impl RemotePath {
    /// Validates `text` as a path relative to the root.
    pub fn parse(text: &str) -> Result<RemotePath, PathError> {
        unstick_core::files::check_path(text)?;
        Ok(RemotePath {
            text: text.to_owned(),
        })
    }

    /// Validates `text` as a path relative to the root, also under `rules` (a server applies
    /// [`SERVER_NAME_RULES`]; a client leaves the remote file system's rules to the server).
    pub fn parse_with(text: &str, rules: NameRules) -> Result<RemotePath, PathError> {
        check_path_with(text, rules)?;
        Ok(RemotePath {
            text: text.to_owned(),
        })
    }

    /// Parses a directory argument where the root itself is allowed: `""`, `"."` and `"/"`
    /// mean the root (`None`).
    pub fn parse_dir(text: &str) -> Result<Option<RemotePath>, PathError> {
        Self::parse_dir_with(text, NameRules::Portable)
    }

    /// [`RemotePath::parse_dir`], also under `rules`.
    pub fn parse_dir_with(text: &str, rules: NameRules) -> Result<Option<RemotePath>, PathError> {
        Ok(check_dir_with(text, rules)?.map(|text| RemotePath {
            text: text.to_owned(),
        }))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The directories leading to the last component.
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        let end = self.text.rfind('/').unwrap_or(0);
        self.text[..end].split('/').filter(|c| !c.is_empty())
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        match self.text.rfind('/') {
            Some(i) => &self.text[i + 1..],
            None => &self.text,
        }
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `name` as a user typed it, with control and bidirectional-formatting characters escaped
/// ([`PeerText`]), so that a name chosen by someone else cannot move the cursor, clear the
/// screen or reorder what a terminal shows. A name that is not UTF-8, in the escaped form a
/// listing gives it (`\xNN` for its odd bytes), passes as it is.
pub fn escape_for_terminal(name: &str) -> String {
    PeerText::new(name).to_string()
}

/// The text form of a file-system name that may not be UTF-8: the name itself when it is
/// (`escaped` false); otherwise (`escaped` true) every byte that is not part of valid UTF-8
/// written as `\xNN` and every backslash as `\\`, so the text still tells names apart.
pub fn name_text(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (Cow::Borrowed(text), false);
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    (Cow::Owned(out), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_traversal_form() {
        let table: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("C:\\Windows", PathError::DriveLetter),
            ("c:evil", PathError::DriveLetter),
            ("a\\..\\b", PathError::Backslash),
            ("a\0b", PathError::Nul),
            ("a\nb", PathError::ControlCharacter),
            ("..", PathError::ParentComponent),
            ("a/../../b", PathError::ParentComponent),
            ("a/..", PathError::ParentComponent),
            ("a//b", PathError::EmptyComponent),
            ("./a", PathError::EmptyComponent),
            ("a/", PathError::EmptyComponent),
            (".unstick-partial-x", PathError::Reserved),
            ("d/.unstick-tmp", PathError::Reserved),
        ];
        for (text, expected) in table {
            assert_eq!(RemotePath::parse(text).as_ref(), Err(expected), "{text:?}");
        }
        assert_eq!(RemotePath::parse(&"a".repeat(256)), Err(PathError::TooLong));
    }

    #[test]
    fn accepts_plain_names_and_splits_them() {
        let p = RemotePath::parse("新建文件夹/sub/😀 report..v2.bin").unwrap();
        assert_eq!(p.parents().collect::<Vec<_>>(), ["新建文件夹", "sub"]);
        assert_eq!(p.file_name(), "😀 report..v2.bin");
        let q = RemotePath::parse(".hidden").unwrap();
        assert_eq!(q.parents().count(), 0);
        assert_eq!(q.file_name(), ".hidden");
        assert_eq!(RemotePath::parse_dir("."), Ok(None));
        assert_eq!(RemotePath::parse_dir("/"), Ok(None));
        assert_eq!(RemotePath::parse_dir("d/").unwrap().unwrap().as_str(), "d");
    }

    #[test]
    fn servers_apply_their_file_system_rules_and_clients_check_local_names() {
        assert_eq!(
            RemotePath::parse_with("d/nul.txt", NameRules::Windows),
            Err(PathError::DeviceName)
        );
        assert_eq!(
            RemotePath::parse_dir_with("dir/a:b/", NameRules::Windows),
            Err(PathError::Stream)
        );
        // A client's remote paths are the server's business: `aux.c` may be fine there.
        assert!(RemotePath::parse("aux.c").is_ok());
        let on_windows = check_local_name("aux.c");
        if cfg!(windows) {
            assert_eq!(on_windows, Err(PathError::DeviceName));
            assert_eq!(SERVER_NAME_RULES, NameRules::Windows);
        } else {
            assert_eq!(on_windows, Ok(()));
        }
        if cfg!(target_os = "linux") {
            assert_eq!(SERVER_NAME_RULES, NameRules::Portable);
        }
    }

    #[test]
    fn terminal_escapes() {
        assert_eq!(escape_for_terminal("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_for_terminal("x\ny"), "x\\ny");
        assert_eq!(escape_for_terminal("evil\u{202e}txt"), "evil\\u202etxt");
        assert_eq!(escape_for_terminal("ok 😀"), "ok 😀");
        assert_eq!(escape_for_terminal("bad\\name"), "bad\\name");
        assert_eq!(escape_for_terminal("a\\xff\u{7}"), "a\\xff\\x07");
    }

    #[test]
    fn names_that_are_not_utf8_are_escaped_unambiguously() {
        let table: &[(&[u8], &str, bool)] = &[
            (b"plain \\ name", "plain \\ name", false),
            ("😀".as_bytes(), "😀", false),
            (b"bad\xffname", "bad\\xffname", true),
            (b"\xc3\\", "\\xc3\\\\", true),
            (b"\xe2\x82", "\\xe2\\x82", true),
        ];
        for (bytes, text, escaped) in table {
            let (got, got_escaped) = name_text(bytes);
            assert_eq!((got.as_ref(), got_escaped), (*text, *escaped), "{bytes:?}");
        }
    }
}
