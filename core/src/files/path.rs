//! Which paths a file server takes: the textual rules every remote path passes before it
//! reaches a file system (docs/PROTOCOL.md, "Paths").

use core::fmt;

/// Prefix of the server's own bookkeeping files (partial uploads, temporary files). Names with
/// a component starting with it are refused, so clients cannot read or overwrite them.
pub const RESERVED_PREFIX: &str = ".unstick-";

/// Longest remote path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// Longest single component accepted, in bytes (the usual `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a remote path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        f.write_str(match self {
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
        })
    }
}

impl core::error::Error for PathError {}

/// Checks `text` as a path relative to the root: one or more `/`-separated components, none of
/// them empty, `.`, `..` or reserved, with no NUL, backslash, control character or drive
/// letter, within the length limits.
///
/// The check is purely textual; a server must still open each component without following
/// symbolic links, so that a valid name cannot leave the root either.
pub fn check_path(text: &str) -> Result<(), PathError> {
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
    Ok(())
}

/// Checks a directory argument where the root itself is allowed: `""`, `"."` and `"/"` (and a
/// trailing `/`) mean the root, returned as `None`; anything else is checked by [`check_path`]
/// and returned without the trailing `/`.
pub fn check_dir(text: &str) -> Result<Option<&str>, PathError> {
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    match trimmed {
        "" | "." => Ok(None),
        other => check_path(other).map(|()| Some(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_as_the_protocol_says() {
        let table: [(&str, Result<(), PathError>); 14] = [
            ("a", Ok(())),
            ("dir/新建文件夹.txt", Ok(())),
            ("", Err(PathError::Empty)),
            ("/etc/passwd", Err(PathError::Absolute)),
            ("C:x", Err(PathError::DriveLetter)),
            ("a\\b", Err(PathError::Backslash)),
            ("a\0b", Err(PathError::Nul)),
            ("a\nb", Err(PathError::ControlCharacter)),
            ("a/../b", Err(PathError::ParentComponent)),
            ("a//b", Err(PathError::EmptyComponent)),
            ("a/./b", Err(PathError::EmptyComponent)),
            ("a/", Err(PathError::EmptyComponent)),
            ("x/.unstick-partial-y", Err(PathError::Reserved)),
            ("a/.unstick-", Err(PathError::Reserved)),
        ];
        for (text, expected) in table {
            assert_eq!(check_path(text), expected, "{text:?}");
        }
        let long_component = [b'x'; 256];
        let long_component = core::str::from_utf8(&long_component).unwrap();
        assert_eq!(check_path(long_component), Err(PathError::TooLong));
        assert_eq!(check_dir("."), Ok(None));
        assert_eq!(check_dir("/"), Ok(None));
        assert_eq!(check_dir("a/b/"), Ok(Some("a/b")));
        assert_eq!(check_dir("../x"), Err(PathError::ParentComponent));
    }
}
