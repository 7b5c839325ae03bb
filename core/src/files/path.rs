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
    /// A component is a Windows device name (`CON`, `NUL`, `COM1`, ..., also `nul.txt`).
    DeviceName,
    /// A component contains `:`, which Windows reads as a drive or an alternate data stream.
    Stream,
    /// A component ends with a dot or a space, which Windows strips (`a.` names `a`).
    TrailingDotOrSpace,
    /// A component contains a character Windows refuses in names (`<`, `>`, `"`, `|`, `?`, `*`).
    WindowsCharacter,
    /// A component has the shape of an 8.3 short name (`PROGRA~1`, `UNSTIC~1.TXT`), which
    /// Windows resolves to another, long name.
    ShortName,
}

/// Which naming traps a server refuses beyond the portable rules of [`check_path`]: those of
/// the file system its files live on. The portable rules are the same everywhere; these are
/// chosen by the host, because a name such as `aux.c` or `a:b` is an ordinary file on Linux and
/// a device or an alternate data stream on Windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRules {
    /// The portable rules only (a case-sensitive POSIX file system).
    #[default]
    Portable,
    /// Also refuses the reserved prefix in any case (`.UNSTICK-tmp-1`): on a case-insensitive
    /// file system (macOS' default) it names the server's own files.
    CaseInsensitive,
    /// Also refuses what Windows reads specially: the reserved prefix in any case, device
    /// names, `:` (streams), trailing dots and spaces, `<>"|?*` and 8.3 short-name shapes.
    Windows,
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
            PathError::DeviceName => {
                "Windows device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, CONIN$, CONOUT$, also with an extension) are refused"
            }
            PathError::Stream => "`:` is refused (on Windows it names a drive or a data stream)",
            PathError::TrailingDotOrSpace => {
                "names ending with a dot or a space are refused (Windows strips them)"
            }
            PathError::WindowsCharacter => {
                "the characters < > \" | ? * are refused (Windows does not allow them in names)"
            }
            PathError::ShortName => {
                "names shaped like 8.3 short names (`NAME~1.TXT`) are refused (Windows resolves them to another name)"
            }
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

/// [`check_path`], then the extra rules of `rules` on every component.
pub fn check_path_with(text: &str, rules: NameRules) -> Result<(), PathError> {
    check_path(text)?;
    text.split('/')
        .try_for_each(|component| check_component_with(component, rules))
}

/// The extra rules of `rules` for one component that already passed [`check_path`] (or for a
/// local file name a client derives from a remote path).
pub fn check_component_with(component: &str, rules: NameRules) -> Result<(), PathError> {
    match rules {
        NameRules::Portable => Ok(()),
        NameRules::CaseInsensitive => check_reserved_ignoring_case(component),
        NameRules::Windows => {
            check_reserved_ignoring_case(component)?;
            check_windows_component(component)
        }
    }
}

fn check_reserved_ignoring_case(component: &str) -> Result<(), PathError> {
    let prefix = RESERVED_PREFIX.as_bytes();
    match component.as_bytes().get(..prefix.len()) {
        Some(start) if start.eq_ignore_ascii_case(prefix) => Err(PathError::Reserved),
        _ => Ok(()),
    }
}

/// Windows' traps in one component (Win32 path rules and NTFS short names).
fn check_windows_component(component: &str) -> Result<(), PathError> {
    for c in component.chars() {
        match c {
            ':' => return Err(PathError::Stream),
            '<' | '>' | '"' | '|' | '?' | '*' => return Err(PathError::WindowsCharacter),
            _ => {}
        }
    }
    if component.ends_with(['.', ' ']) {
        return Err(PathError::TrailingDotOrSpace);
    }
    if is_device_name(component) {
        return Err(PathError::DeviceName);
    }
    if is_short_name_shape(component) {
        return Err(PathError::ShortName);
    }
    Ok(())
}

/// Whether Win32 maps `component` to a device: its part before the first dot, without trailing
/// spaces, is a device name in any case (`nul`, `NUL.txt`, `con .log`, `COM¹`).
fn is_device_name(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or(component);
    let stem = stem.trim_end_matches(' ');
    let upper = |s: &str, name: &str| s.eq_ignore_ascii_case(name);
    if ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
        .iter()
        .any(|name| upper(stem, name))
    {
        return true;
    }
    let (Some(head), Some(digit)) = (stem.get(..3), stem.get(3..)) else {
        return false;
    };
    (upper(head, "COM") || upper(head, "LPT"))
        && matches!(
            digit,
            "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
        )
}

/// Whether `component` could be an NTFS 8.3 alias: a base of at most 8 characters ending in
/// `~` and digits, and at most one dot followed by up to 3 characters (`PROGRA~1`,
/// `UNSTIC~1.TXT`). NTFS resolves such a name to the long name it abbreviates, which could be
/// one the rules refuse, such as a reserved `.unstick-` file.
fn is_short_name_shape(component: &str) -> bool {
    let (base, ext) = match component.split_once('.') {
        Some((base, ext)) => (base, ext),
        None => (component, ""),
    };
    if base.chars().count() > 8 || ext.chars().count() > 3 || ext.contains('.') {
        return false;
    }
    match base.rfind('~') {
        Some(tilde) => {
            let digits = &base[tilde + 1..];
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
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

/// [`check_dir`], then the extra rules of `rules` on every component.
pub fn check_dir_with(text: &str, rules: NameRules) -> Result<Option<&str>, PathError> {
    let dir = check_dir(text)?;
    if let Some(dir) = dir {
        check_path_with(dir, rules)?;
    }
    Ok(dir)
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

    #[test]
    fn windows_traps_are_refused_only_under_windows_rules() {
        use NameRules::{CaseInsensitive, Portable, Windows};
        let table: &[(&str, Result<(), PathError>)] = &[
            ("a.txt", Ok(())),
            ("dir/新建文件夹/file", Ok(())),
            ("console.txt", Ok(())),
            ("COM10", Ok(())),
            ("LPT", Ok(())),
            ("nullish", Ok(())),
            ("a~b.txt", Ok(())),
            ("backup~1.tar.gz", Ok(())),
            ("longername~1.txt", Ok(())),
            (".hidden", Ok(())),
            ("a..b", Ok(())),
            ("CON", Err(PathError::DeviceName)),
            ("d/nul", Err(PathError::DeviceName)),
            ("nul.txt", Err(PathError::DeviceName)),
            ("Aux.tar.gz", Err(PathError::DeviceName)),
            ("con .txt", Err(PathError::DeviceName)),
            ("com1", Err(PathError::DeviceName)),
            ("LPT9.log", Err(PathError::DeviceName)),
            ("COM¹", Err(PathError::DeviceName)),
            ("conout$", Err(PathError::DeviceName)),
            ("prn/x", Err(PathError::DeviceName)),
            ("file:stream", Err(PathError::Stream)),
            ("a/b::$DATA", Err(PathError::Stream)),
            ("a.", Err(PathError::TrailingDotOrSpace)),
            ("dir./b", Err(PathError::TrailingDotOrSpace)),
            ("a ", Err(PathError::TrailingDotOrSpace)),
            ("nul ", Err(PathError::TrailingDotOrSpace)),
            ("a?b", Err(PathError::WindowsCharacter)),
            ("a*", Err(PathError::WindowsCharacter)),
            ("x<y>z", Err(PathError::WindowsCharacter)),
            ("\"q\"", Err(PathError::WindowsCharacter)),
            ("p|q", Err(PathError::WindowsCharacter)),
            ("PROGRA~1", Err(PathError::ShortName)),
            ("UNSTIC~1.TXT", Err(PathError::ShortName)),
            ("d/AB~12", Err(PathError::ShortName)),
            (".UNSTICK-tmp-1", Err(PathError::Reserved)),
            ("d/.Unstick-partial-x", Err(PathError::Reserved)),
        ];
        for (text, expected) in table {
            assert_eq!(check_path_with(text, Windows), *expected, "{text:?}");
            // None of these is refused by the portable rules: a Linux server keeps them.
            assert_eq!(check_path_with(text, Portable), Ok(()), "{text:?}");
            assert_eq!(check_path(text), Ok(()), "{text:?}");
        }
        assert_eq!(
            check_path_with(".UNSTICK-tmp-1", CaseInsensitive),
            Err(PathError::Reserved)
        );
        assert_eq!(check_path_with("CON", CaseInsensitive), Ok(()));
        // The portable rules come first.
        assert_eq!(
            check_path_with("C:\\x", Windows),
            Err(PathError::DriveLetter)
        );
        assert_eq!(
            check_path_with("a/../b", Windows),
            Err(PathError::ParentComponent)
        );
        assert_eq!(check_dir_with("/", Windows), Ok(None));
        assert_eq!(check_dir_with("d/", Windows), Ok(Some("d")));
        assert_eq!(check_dir_with("aux/", Windows), Err(PathError::DeviceName));
        assert_eq!(check_component_with("nul.txt", Portable), Ok(()));
        assert_eq!(
            check_component_with("nul.txt", Windows),
            Err(PathError::DeviceName)
        );
    }
}
