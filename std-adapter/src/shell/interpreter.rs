//! The program commands run through: `sh -c` by default on Unix, `cmd.exe /c` on Windows (what
//! the seed's Python server runs with `shell=True` on each), or the one `--shell` names.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::process::Command;
use std::str::FromStr;

/// How a shell takes the command it is to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellKind {
    /// `PROGRAM -c COMMAND`: `sh`, `bash`, `dash`, `zsh`, busybox's `sh`...
    Posix,
    /// `PROGRAM /c "COMMAND"`, the command line written as Python's `shell=True` writes it, since
    /// `cmd.exe` parses its command line its own way rather than as separate arguments.
    Cmd,
    /// `PROGRAM -NoProfile -NonInteractive -EncodedCommand BASE64`: `powershell` or `pwsh`. The
    /// command travels as Base64 of its UTF-16 text, so no quoting rule can change it.
    PowerShell,
}

/// The program that runs every command, and how it is given one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shell {
    program: OsString,
    kind: ShellKind,
}

impl Shell {
    /// A shell of `kind` run as `program` (a name looked up in `PATH`, or a path).
    pub fn new(program: impl Into<OsString>, kind: ShellKind) -> Shell {
        Shell {
            program: program.into(),
            kind,
        }
    }

    /// `sh`, the Unix default.
    pub fn sh() -> Shell {
        Shell::new("sh", ShellKind::Posix)
    }

    /// `%COMSPEC%` (`cmd.exe` when it is not set), the Windows default.
    pub fn cmd() -> Shell {
        let program = std::env::var_os("COMSPEC")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from("cmd.exe"));
        Shell::new(program, ShellKind::Cmd)
    }

    /// The program run.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// How the program is given a command.
    pub fn kind(&self) -> ShellKind {
        self.kind
    }

    /// A process that runs `command` with this shell (arguments only: where it runs, its
    /// environment and its pipes are the caller's to set).
    pub fn command(&self, command: &str) -> Command {
        let mut process = Command::new(&self.program);
        match self.kind {
            ShellKind::Posix => {
                process.arg("-c").arg(command);
            }
            ShellKind::Cmd => cmd_arguments(&mut process, command),
            ShellKind::PowerShell => {
                process
                    .args(["-NoProfile", "-NonInteractive", "-EncodedCommand"])
                    .arg(powershell_encoded(command));
            }
        }
        process
    }
}

impl Default for Shell {
    /// `sh` on Unix, `cmd.exe` (`%COMSPEC%`) on Windows.
    fn default() -> Shell {
        if cfg!(windows) {
            Shell::cmd()
        } else {
            Shell::sh()
        }
    }
}

/// `cmd.exe`'s arguments: `/c "COMMAND"`, exactly as Python's `subprocess` writes them for
/// `shell=True`, so that a command means on unstick what it meant on the seed's server.
#[cfg(windows)]
fn cmd_arguments(process: &mut Command, command: &str) {
    use std::os::windows::process::CommandExt;
    process.raw_arg("/c").raw_arg(format!("\"{command}\""));
}

/// Elsewhere (a `cmd` under an emulator, say) the arguments are plain arguments.
#[cfg(not(windows))]
fn cmd_arguments(process: &mut Command, command: &str) {
    process.arg("/c").arg(command);
}

/// `command` as `-EncodedCommand` takes it: Base64 of its UTF-16LE text.
fn powershell_encoded(command: &str) -> String {
    let utf16: Vec<u8> = command.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64(&utf16)
}

/// Standard Base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl FromStr for Shell {
    type Err = String;

    /// `sh`, `bash`, `cmd`, `powershell`, `pwsh`, or a path to one; the kind is told by the
    /// file's name (`cmd`, `powershell` and `pwsh`, with or without `.exe`; anything else takes
    /// `-c` as `sh` does).
    fn from_str(text: &str) -> Result<Shell, String> {
        if text.trim().is_empty() {
            return Err("the shell is empty; name one such as sh, cmd or powershell".into());
        }
        // The file's name, read the same on every platform (a Windows path names cmd.exe
        // wherever the option is parsed).
        let name = text.rsplit(['/', '\\']).next().unwrap_or(text);
        let name = name.to_ascii_lowercase();
        let stem = name.strip_suffix(".exe").unwrap_or(&name);
        let kind = match stem {
            "cmd" => ShellKind::Cmd,
            "powershell" | "pwsh" => ShellKind::PowerShell,
            _ => ShellKind::Posix,
        };
        if kind == ShellKind::Cmd && text.eq_ignore_ascii_case("cmd") && cfg!(windows) {
            return Ok(Shell::cmd());
        }
        Ok(Shell::new(text, kind))
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_are_told_by_their_names() {
        let kind = |text: &str| text.parse::<Shell>().unwrap().kind();
        assert_eq!(kind("sh"), ShellKind::Posix);
        assert_eq!(kind("/usr/local/bin/bash"), ShellKind::Posix);
        assert_eq!(kind("cmd"), ShellKind::Cmd);
        assert_eq!(kind(r"C:\Windows\System32\CMD.EXE"), ShellKind::Cmd);
        assert_eq!(kind("powershell"), ShellKind::PowerShell);
        assert_eq!(kind("pwsh.exe"), ShellKind::PowerShell);
        assert!("".parse::<Shell>().is_err());
    }

    #[test]
    fn powershell_gets_base64_of_utf16() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // What PowerShell's own [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes(...))
        // gives for `dir`.
        assert_eq!(powershell_encoded("dir"), "ZABpAHIA");
    }

    #[cfg(unix)]
    #[test]
    fn the_unix_default_is_sh_dash_c() {
        let shell = Shell::default();
        assert_eq!(shell, Shell::sh());
        let command = shell.command("echo hi");
        assert_eq!(command.get_program(), "sh");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["-c", "echo hi"]);
    }
}
