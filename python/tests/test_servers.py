"""The package against unstick's real servers (the binary cargo built), and the examples."""

from __future__ import annotations

import hashlib
import itertools
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import unstick

from conftest import REPO

#: No test waits longer than this for a byte or a process.
TIMEOUT = 30
EXAMPLES = REPO / "examples" / "python"
# Both streams, more output than one frame's worth of a pipe read, and a status.
COMMAND = b"printf 'out\\n'; printf 'err\\n' >&2; seq 1 20000; exit 3"
EXPECTED_STDOUT = b"out\n" + b"".join(b"%d\n" % n for n in range(1, 20001))


def connect(server) -> socket.socket:
    return socket.create_connection(server.address, timeout=TIMEOUT)


def exec_in_pieces(sock: socket.socket, command: bytes, sizes) -> List[unstick.Frame]:
    """Sends an exec request, then feeds the decoder what arrives in pieces of `sizes` until
    the exit (or error) frame."""
    unstick.send_frame(sock, {"op": "exec"}, command, "xxh3")
    decoder, frames = unstick.Decoder(), []
    while not frames or frames[-1].header["op"] not in ("exit", "error"):
        data = sock.recv(65536)
        assert data, "the server closed the connection before the exit frame"
        i = 0
        while i < len(data):
            n = next(sizes)
            frames.extend(decoder.feed(data[i : i + n]))
            i += n
    assert decoder.at_boundary
    return frames


def outputs(frames: List[unstick.Frame], op: str) -> bytes:
    return b"".join(f.body for f in frames if f.header["op"] == op)


@pytest.mark.parametrize("size", range(1, 8))
def test_a_command_on_the_shell_server_with_its_reply_fed_in_pieces(serve, tmp_path, size):
    server = serve("shell", "serve", "--workdir", str(tmp_path))
    with connect(server) as sock:
        frames = exec_in_pieces(sock, COMMAND, itertools.repeat(size))
        assert outputs(frames, "stdout") == EXPECTED_STDOUT
        assert outputs(frames, "stderr") == b"err\n"
        assert frames[-1].header["op"] == "exit" and frames[-1].header["code"] == 3
        assert all(f.xxh3 == "verified" for f in frames if f.body)
        # The same connection takes the next command, its reply cut 1 to 7 bytes at a time.
        frames = exec_in_pieces(sock, b"pwd; kill -9 $$", itertools.cycle(range(1, 8)))
        assert outputs(frames, "stdout") == str(tmp_path).encode() + b"\n"
        assert frames[-1].header["signal"] == 9


def test_recv_frame_reads_a_large_reply_frame_by_frame(serve, tmp_path):
    server = serve("shell", "serve", "--workdir", str(tmp_path))
    with connect(server) as sock:
        unstick.send_frame(sock, {"op": "exec"}, b"head -c 300000 /dev/zero | tr '\\0' a")
        frames = [unstick.recv_frame(sock)]
        while frames[-1].header["op"] != "exit":
            frames.append(unstick.recv_frame(sock))
        assert outputs(frames, "stdout") == b"a" * 300_000
        assert len(frames) > 2 and frames[-1].header["code"] == 0
        # A refusal is a frame like any other.
        unstick.send_frame(sock, {"op": "exec", "cwd": "no/such/dir"}, b"true")
        refusal = unstick.recv_frame(sock)
        assert (refusal.header["op"], refusal.header["code"]) == ("error", "bad_path")


def test_the_seeds_client_with_recv_frame_gets_whole_replies(serve, tmp_path):
    """The seed's first client sends raw text and reads the reply with one recv(1024): a reply
    longer than that is cut, and its rest is read as the next command's reply. With the server
    framing its replies (--seed-reply json), recv_frame is the two-line fix."""
    server = serve("shell", "serve", "--workdir", str(tmp_path), "--seed-reply", "json")
    long_output = b"".join(b"%d\n" % n for n in range(1, 1001))
    with connect(server) as phone:
        phone.send(b"seq 1 1000")
        reply = unstick.recv_frame(phone)
        assert reply.body == long_output and reply.md5 == "verified"
        assert reply.header["file_name"] == "output"
        phone.send(b"echo next")
        assert unstick.recv_frame(phone).body == b"next\n"
    with connect(server) as phone:  # the seed's client as it was: one recv(1024) a reply
        phone.send(b"seq 1 1000")
        assert len(phone.recv(1024)) < len(long_output)
        phone.send(b"echo next")
        second = phone.recv(1024)
        assert second.strip(b"0123456789\n") == b"", "the first reply's rest, not the second's"


def test_a_seed_upload_is_stored_after_its_md5_is_checked(serve, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = serve("ftp", "serve", "--root", str(root))
    content = bytes(range(256)) * 100
    with connect(server) as sk:
        head = {"filepath": "C:\\Users\\Aaron\\Desktop\\新建文件夹", "filename": "config"}
        unstick.send_frame(sk, head, content, "md5", size_field="filesize")
        assert unstick.recv_frame(sk).header["op"] == "stored"
    assert (root / "config").read_bytes() == content
    # A body that does not match its md5 is refused, and nothing is kept.
    wire = bytearray(unstick.encode({"filename": "bad"}, content, "md5", size_field="filesize"))
    wire[-1] ^= 1
    with connect(server) as sk:
        sk.sendall(wire)
        reply = unstick.recv_frame(sk)
        assert reply.header["op"] == "error", reply.header
    assert not (root / "bad").exists()


def run_example(name: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
    )


def address(server) -> str:
    return "%s:%d" % server.address


def test_the_shell_client_example(serve, tmp_path):
    server = serve("shell", "serve", "--workdir", str(tmp_path))
    done = run_example(
        "shell_client.py",
        address(server),
        stdin=b"echo hello\n\nseq 1 5000 | wc -l\nls /no/such/file\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b">>>hello\n>>>>>>5000\n>>>>>>"
    assert b"/no/such/file" in done.stderr


def test_the_upload_client_example(serve, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = serve("ftp", "serve", "--root", str(root))
    source = tmp_path / "notes.txt"
    source.write_bytes("新建文件夹\n".encode() * 1000)
    done = run_example("upload_client.py", str(source), address(server))
    assert done.returncode == 0, done.stderr
    assert b"'op': 'stored'" in done.stdout
    stored = (root / "notes.txt").read_bytes()
    assert hashlib.md5(stored).digest() == hashlib.md5(source.read_bytes()).digest()
