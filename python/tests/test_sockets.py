"""send_frame() and recv_frame() over connected socket pairs: whole frames, nothing more."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, Tuple

import pytest

import unstick

#: No test waits longer than this for a byte.
TIMEOUT = 10


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    for s in (a, b):
        s.settimeout(TIMEOUT)
    yield a, b
    a.close()
    b.close()


def test_frames_sent_back_to_back_are_received_one_by_one(pair) -> None:
    a, b = pair
    # One write holding three frames: the seed's client would read them as one.
    a.sendall(
        unstick.encode({"op": "stdout"}, b"one\n", "xxh3")
        + unstick.encode({"op": "stderr"}, b"two\n", "md5")
        + unstick.encode({"op": "exit", "code": 3})
    )
    frames = [unstick.recv_frame(b) for _ in range(3)]
    assert [(f.header["op"], f.body) for f in frames] == [
        ("stdout", b"one\n"), ("stderr", b"two\n"), ("exit", b"")
    ]
    assert [f.verified for f in frames] == [True, True, False]


def test_recv_frame_leaves_the_next_frames_bytes_in_the_socket(pair) -> None:
    a, b = pair
    second = unstick.encode({"n": 2}, b"second")
    a.sendall(unstick.encode({"n": 1}, b"x" * 100_000) + second)
    assert unstick.recv_frame(b).body == b"x" * 100_000
    rest = b""
    while len(rest) < len(second):
        rest += b.recv(4096)
    assert rest == second


def test_a_frame_dribbled_a_byte_at_a_time_arrives_whole(pair) -> None:
    a, b = pair
    wire = unstick.encode({"name": "新建文件夹"}, bytes(range(256)), "md5")

    def dribble() -> None:
        for i in range(len(wire)):
            a.send(wire[i : i + 1])

    sender = threading.Thread(target=dribble)
    sender.start()
    frame = unstick.recv_frame(b)
    sender.join(TIMEOUT)
    assert (frame.header["name"], frame.body, frame.md5) == ("新建文件夹", bytes(range(256)), "verified")


def test_send_frame_takes_encodes_options(pair) -> None:
    a, b = pair
    unstick.send_frame(a, {"filename": "f"}, bytearray(b"abc"), "md5", size_field="filesize")
    unstick.send_frame(a, {"op": "x"}, memoryview(b"de"), profile="seed")
    first, second = unstick.recv_frame(b), unstick.recv_frame(b)
    assert first.header["filesize"] == 3 and first.md5 == "verified"
    assert second.body == b"de"


def test_a_close_between_frames_and_inside_one_are_told_apart(pair) -> None:
    a, b = pair
    a.sendall(unstick.encode({"n": 1}))
    a.close()
    assert unstick.recv_frame(b).header == {"n": 1, "total_size": 0}
    with pytest.raises(unstick.ConnectionClosed, match="before a frame began") as e:
        unstick.recv_frame(b)
    assert e.value.needed == 0 and isinstance(e.value, ConnectionError)


@pytest.mark.parametrize("cut,needed", [(2, 2), (4, 25), (10, 19), (-5, 5)])
def test_a_close_inside_a_frame_says_how_much_was_missing(pair, cut: int, needed: int) -> None:
    a, b = pair
    wire = unstick.encode({"op": "x"}, b"hello")  # 4 + 25 + 5 bytes
    a.sendall(wire[:cut])
    a.close()
    with pytest.raises(unstick.ConnectionClosed, match="inside a frame") as e:
        unstick.recv_frame(b)
    assert e.value.needed == needed


def test_garbage_raises_frame_error_and_a_changed_body_spares_the_next_frame(pair) -> None:
    a, b = pair
    bad = bytearray(unstick.encode({"n": 1}, b"abc", "xxh3"))
    bad[-2] ^= 0x20
    a.sendall(bytes(bad) + unstick.encode({"n": 2}, b"def", "xxh3") + b"GET / HTTP/1.1\r\n")
    with pytest.raises(unstick.DigestMismatch):
        unstick.recv_frame(b)
    assert unstick.recv_frame(b).header["n"] == 2
    with pytest.raises(unstick.FrameError, match="length prefix is negative|header"):
        unstick.recv_frame(b)


def test_recv_frame_enforces_max_header_and_max_body(pair) -> None:
    a, b = pair
    a.sendall(unstick.encode({"pad": "x" * 100}))
    with pytest.raises(unstick.FrameError, match="exceeds max_header \\(64"):
        unstick.recv_frame(b, max_header=64)
    # Refused from the prefix: the header is still in the socket.
    assert b.recv(1, socket.MSG_PEEK) == b"{"


def test_a_silent_peer_times_out_as_the_socket_says(pair) -> None:
    a, b = pair
    b.settimeout(0.2)
    a.sendall(unstick.encode({"n": 1})[:6])
    with pytest.raises(socket.timeout):  # TimeoutError from Python 3.10 on
        unstick.recv_frame(b)
