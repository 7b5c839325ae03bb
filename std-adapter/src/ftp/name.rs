//! Remote file names: the only form in which a client's path reaches the file system.

use std::borrow::Cow;
use std::fmt;

/// Prefix of the server's own bookkeeping files (partial uploads, temporary files). Names with
/// a component starting with it are refused, so clients cannot read or overwrite them.
pub const RESERVED_PREFIX: &str = ".unstick-";

/// Longest remote path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// Longest single component accepted, in bytes (the usual `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// A validated path relative to the server root: one or more `/`-separated components, none of
/// them empty, `.`, `..` or reserved, with no NUL, backslash, control character or drive letter.
///
/// Validation is purely textual; the server then opens each component from a directory handle
/// without following symbolic links, so a valid name cannot leave the root either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePath {
    text: String,
}

/// Why a remote path was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// The path starts with a drive letter such as `C:`.
    DriveLetter,
    /// The path contains a backslash (a Windows separator, refused rather than guessed at).
    Backslash,
    /// The path contains a NUL byte.
    Nul,
    /// The path contains a control character (newline, escape, ...).
    ControlCharacter,
    /// A component is `..`.
    ParentComponent,
    /// A component is empty (`a//b`, or a trailing `/`) or `.`.
    EmptyComponent,
    /// A component starts with the server's reserved prefix `.unstick-`.
    Reserved,
    /// The path or one of its components is too long.
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            PathError::Empty => "the path is empty",
            PathError::Absolute => "absolute paths are refused; give a path relative to the root",
            PathError::DriveLetter => "drive letters are refused; give a path relative to the root",
            PathError::Backslash => "backslashes are refused; separate directories with `/`",
            PathError::Nul => "the path contains a NUL byte",
            PathError::ControlCharacter => "the path contains a control character",
            PathError::ParentComponent => "`..` components are refused",
            PathError::EmptyComponent => {
                "empty and `.` components are refused (`a//b`, `a/./b`, `a/`)"
            }
            PathError::Reserved => "names starting with `.unstick-` are reserved for the server",
            PathError::TooLong => "the path is too long (4096 bytes, 255 per component at most)",
        };
        f.write_str(text)
    }
}

impl std::error::Error for PathError {}

impl RemotePath {
    /// Validates `text` as a path relative to the root.
    pub fn parse(text: &str) -> Result<RemotePath, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let bytes = text.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(PathError::DriveLetter);
        }
        for c in text.chars() {
            match c {
                '\0' => return Err(PathError::Nul),
                '\\' => return Err(PathError::Backslash),
                c if c.is_control() => return Err(PathError::ControlCharacter),
                _ => {}
            }
        }
        for component in text.split('/') {
            match component {
                "" | "." => return Err(PathError::EmptyComponent),
                ".." => return Err(PathError::ParentComponent),
                c if c.starts_with(RESERVED_PREFIX) => return Err(PathError::Reserved),
                c if c.len() > MAX_COMPONENT_LEN => return Err(PathError::TooLong),
                _ => {}
            }
        }
        Ok(RemotePath {
            text: text.to_owned(),
        })
    }

    /// Parses a directory argument where the root itself is allowed: `""`, `"."` and `"/"`
    /// mean the root (`None`).
    pub fn parse_dir(text: &str) -> Result<Option<RemotePath>, PathError> {
        let trimmed = text.strip_suffix('/').unwrap_or(text);
        match trimmed {
            "" | "." => Ok(None),
            other => RemotePath::parse(other).map(Some),
        }
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

/// Writes `name` with control and bidirectional-formatting characters escaped, so that a name
/// chosen by someone else cannot move the cursor, clear the screen or reorder what a terminal
/// shows. Backslashes are doubled, so the escapes cannot be confused with the name.
pub fn escape_for_terminal(name: &str) -> String {
    escape_characters(name, Backslash::Double)
}

/// Like [`escape_for_terminal`], for text that is already in [`name_text`]'s escaped form
/// (backslashes doubled, bytes that are not UTF-8 as `\xNN`): its backslashes stay as they are.
pub fn escape_escaped_name_for_terminal(text: &str) -> String {
    escape_characters(text, Backslash::Keep)
}

/// What [`escape_characters`] does with a backslash.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backslash {
    Double,
    Keep,
}

fn escape_characters(text: &str, backslash: Backslash) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else if c == '\\' && backslash == Backslash::Double {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
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
    fn terminal_escapes() {
        assert_eq!(escape_for_terminal("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape_for_terminal("x\ny"), "x\\ny");
        assert_eq!(escape_for_terminal("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(escape_for_terminal("ok 😀"), "ok 😀");
        assert_eq!(escape_for_terminal("a\\xff"), "a\\\\xff");
        assert_eq!(
            escape_escaped_name_for_terminal("a\\xff\u{7}"),
            "a\\xff\\u{7}"
        );
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
