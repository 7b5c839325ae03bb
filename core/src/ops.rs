//! The operations of the two unstick protocols: the `"op"` member of every header.

use crate::wire_enum::wire_enum;

wire_enum! {
    /// The remote shell's `"op"`s (docs/PROTOCOL.md, "Remote shell").
    pub enum ShellOp {
        /// A request: run the frame's body as a command.
        Exec = "exec",
        /// A reply: a chunk of the command's standard output.
        Stdout = "stdout",
        /// A reply: a chunk of the command's standard error.
        Stderr = "stderr",
        /// A reply: how the command ended (its last reply).
        Exit = "exit",
        /// A reply: the request was refused (see [`ErrorFrame`](crate::ErrorFrame)).
        Error = "error",
        /// A request, and its reply: what the endpoint is (see [`info`](crate::info)).
        Info = "info",
        /// After an exec request that declared `"stdin":true`: a chunk of the command's
        /// standard input.
        Stdin = "stdin",
        /// After an exec request that declared `"stdin":true`: the end of the command's
        /// standard input (its last frame of the request).
        StdinEnd = "stdin_end",
        /// A reply to an exec request that asked for keepalives (`"alive"`): the server is
        /// there, and the command runs; sent at its start and whenever nothing else was sent
        /// for the interval asked.
        Alive = "alive",
        /// After an exec request that asked for a pty (`"pty"`), while its command runs: the
        /// client's terminal has a new size (`"rows"`, `"cols"`).
        Resize = "resize",
    }
}

wire_enum! {
    /// The file server's `"op"`s (docs/PROTOCOL.md, "File server").
    pub enum FileOp {
        /// A request: store the frame's body under a path (a `done` trailer follows).
        Put = "put",
        /// The trailer of a `put` (the whole file's digest), and the last reply of a `get`.
        Done = "done",
        /// A request: send a file.
        Get = "get",
        /// A request: list a directory.
        Ls = "ls",
        /// A request, and its reply: a path's kind, size and time.
        Stat = "stat",
        /// A request: remove a file or an empty directory.
        Delete = "delete",
        /// A request: create a directory (with `"parents":true`, its missing parents too).
        Mkdir = "mkdir",
        /// A request: rename `path` to `to`.
        Rename = "rename",
        /// A reply: the directory exists now.
        Made = "made",
        /// A reply: the path has its new name.
        Renamed = "renamed",
        /// A reply: the upload is committed.
        Stored = "stored",
        /// A reply: the head of a file's bytes.
        File = "file",
        /// A reply: one entry of a listing.
        Entry = "entry",
        /// A reply: the end of a listing.
        End = "end",
        /// A reply: the path is gone.
        Deleted = "deleted",
        /// A reply: the request was refused (see [`ErrorFrame`](crate::ErrorFrame)).
        Error = "error",
        /// A request, and its reply: what the endpoint is (see [`info`](crate::info)).
        Info = "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire_enum::UnknownWireName;

    #[test]
    fn ops_read_back_from_their_wire_strings_and_as_json() {
        for &op in ShellOp::ALL {
            assert_eq!(op.as_str().parse(), Ok(op));
        }
        for &op in FileOp::ALL {
            assert_eq!(op.as_str().parse(), Ok(op));
            let mut json = [0u8; 32];
            let n = serde_json_core::to_slice(&op, &mut json).unwrap();
            let (back, _) = serde_json_core::from_slice::<FileOp>(&json[..n]).unwrap();
            assert_eq!(back, op);
        }
        assert_eq!("rm".parse::<FileOp>(), Err(UnknownWireName));
        assert!(serde_json_core::from_slice::<ShellOp>(br#""ls""#).is_err());
    }
}
