"""encode() and Decoder: round trips, every cut, digests, errors, and the seed's own bytes."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Dict, List, Tuple

import pytest

import unstick

# The seed's custom-header shell server: struct.pack('i', len(header)) + json.dumps(header), its
# md5 the placeholder "fdsaf2143254f", then the command's output.
SEED_REPLY = (
    b"\x40\x00\x00\x00"
    b'{"md5": "fdsaf2143254f", "file_name": "f1.txt", "total_size": 7}'
    b"hello\r\n"
)
# The same server had it sent a real md5 of its output.
SEED_REPLY_MD5 = (
    b"\x53\x00\x00\x00"
    b'{"md5": "56439dac31c3e2298f34e545f40cb08a", "file_name": "f1.txt", "total_size": 8}'
    b"total 0\n"
)
# The seed's upload client: json.dumps escapes the folder's Chinese name, the size is
# "filesize", then the file.
SEED_UPLOAD = (
    b"\x6f\x00\x00\x00"
    b'{"filepath": "C:\\\\Users\\\\Aaron\\\\Desktop\\\\\\u65b0\\u5efa\\u6587\\u4ef6\\u5939",'
    b' "filename": "config", "filesize": 38}'
    b"[server]\nhost = 127.0.0.1\nport = 8090\n"
)
# docs/PROTOCOL.md's exec request, `echo hi; kill -9 $$`, byte for byte.
EXEC_REQUEST = (
    b"\x47\x00\x00\x00"
    b'{"op":"exec","total_size":19,"xxh3":"d8d54f4e406162c7febfaeb13832f159"}'
    b"echo hi; kill -9 $$"
)


def decode_in_pieces(wire: bytes, size: int, decoder: unstick.Decoder) -> List[unstick.Frame]:
    frames = []
    for i in range(0, len(wire), size):
        frames.extend(decoder.feed(wire[i : i + size]))
    return frames


def summary(frame: unstick.Frame) -> Tuple[Dict[str, Any], bytes, str, str]:
    return frame.header, frame.body, frame.md5, frame.xxh3


# A stream of frames of every kind the decoder meets: seed bytes, every digest, empty and binary
# bodies, escapes, non-ASCII, nesting.
STREAM_HEADERS: List[Tuple[Dict[str, Any], bytes, Any]] = [
    ({"op": "stdout"}, b"hi\n", "xxh3"),
    ({"op": "exit", "code": 0, "truncated": False}, b"", None),
    ({"name": "新建文件夹", "quote": 'say "hi"\\', "emoji": "\U0001f600"}, b"\x00\xff" * 50, "md5"),
    ({"nested": {"a": [1, 2.5, None, True], "b": {}}}, bytes(range(256)), "xxh3"),
    ({}, b"x", None),
]
STREAM = (
    SEED_REPLY
    + b"".join(unstick.encode(h, body, digest) for h, body, digest in STREAM_HEADERS)
    + SEED_UPLOAD
    + SEED_REPLY_MD5
)


def expected_stream() -> List[Tuple[Dict[str, Any], bytes, str, str]]:
    frames = [({"md5": "fdsaf2143254f", "file_name": "f1.txt", "total_size": 7},
               b"hello\r\n", "not_a_digest", "absent")]
    for header, body, digest in STREAM_HEADERS:
        full = dict(header, total_size=len(body))
        verdicts = {"md5": "absent", "xxh3": "absent"}
        if digest == "md5":
            full["md5"] = hashlib.md5(body).hexdigest()
            verdicts["md5"] = "verified"
        elif digest == "xxh3":
            verdicts["xxh3"] = "verified"
        frames.append((full, body, verdicts["md5"], verdicts["xxh3"]))
    frames.append(({"filepath": "C:\\Users\\Aaron\\Desktop\\新建文件夹", "filename": "config",
                    "filesize": 38}, SEED_UPLOAD[-38:], "absent", "absent"))
    frames.append(({"md5": "56439dac31c3e2298f34e545f40cb08a", "file_name": "f1.txt",
                    "total_size": 8}, b"total 0\n", "verified", "absent"))
    return frames


def without_xxh3(frames: List[Tuple[Dict[str, Any], bytes, str, str]]) -> list:
    """The frames with the xxh3 member (a digest this test does not compute) left out."""
    return [({k: v for k, v in h.items() if k != "xxh3"}, b, m, x) for h, b, m, x in frames]


@pytest.mark.parametrize("size", range(1, 8))
def test_a_stream_cut_in_pieces_of_any_size_decodes_whole(size: int) -> None:
    frames = decode_in_pieces(STREAM, size, unstick.Decoder())
    assert without_xxh3([summary(f) for f in frames]) == expected_stream()


def test_a_stream_fed_whole_or_cut_at_random_decodes_the_same() -> None:
    whole = [summary(f) for f in unstick.Decoder().feed(STREAM)]
    assert without_xxh3(whole) == expected_stream()
    rng = random.Random(24)
    for _ in range(50):
        decoder, frames, i = unstick.Decoder(), [], 0
        while i < len(STREAM):
            n = rng.randint(0, 40)
            frames.extend(decoder.feed(bytearray(STREAM[i : i + n])))
            i += n
        assert [summary(f) for f in frames] == whole
        assert decoder.at_boundary


def test_the_seed_frames_read_as_the_seed_wrote_them() -> None:
    (reply,) = unstick.Decoder().feed(SEED_REPLY)
    assert reply.header == {"md5": "fdsaf2143254f", "file_name": "f1.txt", "total_size": 7}
    assert reply.body == b"hello\r\n"
    assert (reply.md5, reply.xxh3, reply.verified) == ("not_a_digest", "absent", False)

    (upload,) = unstick.Decoder().feed(SEED_UPLOAD)
    assert upload.header["filepath"] == "C:\\Users\\Aaron\\Desktop\\新建文件夹"
    assert upload.header["filesize"] == len(upload.body) == 38
    # The decoder's normalised text: \u escapes decoded to UTF-8, backslashes still escaped.
    assert "新建文件夹" in upload.header_json
    assert json.loads(upload.header_json) == upload.header

    (checked,) = unstick.Decoder().feed(SEED_REPLY_MD5)
    assert (checked.md5, checked.verified) == ("verified", True)


def test_encode_writes_the_protocol_documents_bytes() -> None:
    assert unstick.encode({"op": "exec"}, b"echo hi; kill -9 $$", digest="xxh3") == EXEC_REQUEST
    assert unstick.encode({"op": "exit", "code": 0}) == (
        b"\x25\x00\x00\x00" b'{"op":"exit","code":0,"total_size":0}'
    )
    # The seed's upload header: "filesize", escapes written as UTF-8.
    head = {"filepath": "C:\\新", "filename": "config"}
    wire = unstick.encode(head, b"abc", size_field="filesize")
    header = '{"filepath":"C:\\\\新","filename":"config","filesize":3}'.encode()
    assert wire == len(header).to_bytes(4, "little") + header + b"abc"


@pytest.mark.parametrize("digest", [None, "md5", "xxh3"])
@pytest.mark.parametrize("profile", ["seed", "i16-le", "i16-be", "i32-be", "i64-le", "i64-be"])
def test_round_trip_in_every_profile_and_digest(profile: str, digest: Any) -> None:
    header = {"op": "put", "path": "a/b.txt", "n": -1, "big": 2**70}
    body = bytes(range(256)) * 3
    wire = unstick.encode(header, body, digest, profile=profile)
    (frame,) = decode_in_pieces(wire, 3, unstick.Decoder(profile))
    assert frame.body == body
    assert {k: frame.header[k] for k in header} == header
    assert frame.header["total_size"] == len(body)
    assert frame.verified == (digest is not None)
    assert getattr(frame, digest or "md5") == ("verified" if digest else "absent")


def test_a_body_that_changed_on_the_way_raises_and_the_next_frame_still_arrives() -> None:
    good = unstick.encode({"n": 1}, b"first", "md5")
    bad = bytearray(unstick.encode({"n": 2}, b"second", "xxh3"))
    bad[-1] ^= 1
    last = unstick.encode({"n": 3}, b"third", "md5")
    wire = good + bytes(bad) + last
    decoder = unstick.Decoder()
    with pytest.raises(unstick.DigestMismatch, match="does not match its xxh3 digest") as e:
        decoder.feed(wire)
    assert isinstance(e.value, unstick.FrameError) and isinstance(e.value, ValueError)
    assert [f.header["n"] for f in e.value.frames] == [1]
    assert [f.header["n"] for f in decoder.feed(b"")] == [3]

    # The same, byte by byte: the mismatch is raised by the byte that ends the frame.
    decoder, seen = unstick.Decoder(), []
    for i in range(len(wire)):
        try:
            seen.extend(f.header["n"] for f in decoder.feed(wire[i : i + 1]))
        except unstick.DigestMismatch as mismatch:
            assert i == len(good) + len(bad) - 1 and not mismatch.frames
            seen.append("mismatch")
    assert seen == [1, "mismatch", 3]


def test_a_wrong_md5_is_a_mismatch_too() -> None:
    forged = SEED_REPLY_MD5.replace(b"total 0", b"total 1")
    with pytest.raises(unstick.DigestMismatch, match="md5"):
        unstick.Decoder().feed(forged)


def head(header: bytes) -> bytes:
    """A seed prefix (4 bytes, little-endian) and `header`."""
    return len(header).to_bytes(4, "little") + header


BAD_STREAMS = [
    (b"\xff\xff\xff\xff{}", "length prefix is negative \\(-1\\)"),
    (b"\x00\x00\x00\x00", "header length is 0"),
    (head(b"{1}"), "header .* \\(at byte 1 of the header\\)"),
    (head(b"[1]"), "header"),
    (head(b'{"total_size":"7"}'), "`total_size` must be a non-negative integer"),
    (head(b'{"total_size":-1}'), "`total_size` must be a non-negative integer"),
    (head(b'{"filesize":1e3}'), "`filesize` must be a non-negative integer"),
    (head(b'{"total_size":1,"filesize":2}'), "total_size 1 but filesize 2"),
    (head(b'{"xxh3":"abc"}'), "`xxh3` must be 32 hex digits"),
    (head(b"{\xff\xfe}"), "header"),
    (head(b'{"a":' + b"[" * 32 + b"]" * 32 + b"}"), "header"),
    (head(b'{"a":1} {}'), "header"),
]


@pytest.mark.parametrize("wire,message", BAD_STREAMS)
def test_bytes_that_are_no_frame_raise_the_decoders_message(wire: bytes, message: str) -> None:
    for size in (1, 4, len(wire)):
        decoder = unstick.Decoder()
        with pytest.raises(unstick.FrameError, match=message) as e:
            decode_in_pieces(wire, size, decoder)
        assert not isinstance(e.value, unstick.DigestMismatch)
        # Out of sync: refused until reset, then a new stream decodes.
        assert (decoder.bytes_needed, decoder.at_boundary) == (0, False)
        with pytest.raises(unstick.FrameError, match="out of sync"):
            decoder.feed(EXEC_REQUEST)
        decoder.reset()
        assert [f.body for f in decoder.feed(EXEC_REQUEST)] == [b"echo hi; kill -9 $$"]


def test_frames_before_an_error_come_with_it() -> None:
    with pytest.raises(unstick.FrameError) as e:
        unstick.Decoder().feed(EXEC_REQUEST + SEED_REPLY + b"\xff\xff\xff\xff")
    assert [f.header.get("op") for f in e.value.frames] == ["exec", None]


def test_max_header_is_checked_from_the_prefix_alone() -> None:
    decoder = unstick.Decoder(max_header=64)
    assert decoder.max_header == 64
    assert decoder.feed(SEED_REPLY)[0].body == b"hello\r\n"  # a 64-byte header fits
    with pytest.raises(unstick.FrameError, match="header of 83 bytes exceeds max_header \\(64"):
        decoder.feed(SEED_REPLY_MD5[:4])  # no header byte needed to refuse it
    with pytest.raises(unstick.FrameError, match="out of sync"):
        decoder.feed(SEED_REPLY)
    # The default takes 8 KiB; up to 64 KiB on request.
    big = {"pad": "x" * 9000}
    with pytest.raises(unstick.FrameError, match="exceeds max_header \\(8192"):
        unstick.Decoder().feed(unstick.encode(big))
    assert unstick.Decoder(max_header=10_000).feed(unstick.encode(big))[0].header == dict(
        big, total_size=0
    )
    limit = unstick.MAX_HEADER_LIMIT
    huge = {"pad": "x" * (limit - 40)}
    assert unstick.Decoder(max_header=limit).feed(unstick.encode(huge))[0].header["pad"]


def test_max_body_refuses_a_body_before_it_arrives() -> None:
    decoder = unstick.Decoder(max_body=4)
    with pytest.raises(unstick.FrameError, match="body of 7 bytes exceeds the limit of 4"):
        decoder.feed(SEED_REPLY[:68])


def test_bytes_needed_never_reaches_into_the_next_frame() -> None:
    decoder = unstick.Decoder()
    needs = []
    wire = EXEC_REQUEST + SEED_REPLY
    i = 0
    while i < len(wire):
        needs.append(decoder.bytes_needed)
        frames = decoder.feed(wire[i : i + decoder.bytes_needed])
        i += needs[-1]
        if frames:
            needs.append("frame")
    assert needs == [4, 71, 19, "frame", 4, 64, 7, "frame"]
    assert decoder.bytes_needed == 4 and decoder.at_boundary
    decoder.feed(EXEC_REQUEST[:2])
    assert (decoder.bytes_needed, decoder.at_boundary) == (2, False)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: unstick.encode({"total_size": 1}), unstick.FrameError, "writes those itself"),
        (lambda: unstick.encode({"md5": "x"}), unstick.FrameError, "writes those itself"),
        (lambda: unstick.encode({"x": float("nan")}), ValueError, "not JSON compliant"),
        (lambda: unstick.encode({"x": "\ud800"}), unstick.FrameError, "header value must"),
        (lambda: unstick.encode([1]), TypeError, "must be a mapping"),  # type: ignore[arg-type]
        (lambda: unstick.encode({"x": object()}), TypeError, "not JSON serializable"),
        (lambda: unstick.encode({}, digest="sha1"), ValueError, "unknown digest \"sha1\""),
        (lambda: unstick.encode({}, size_field="n"), ValueError, "unknown size_field"),
        (lambda: unstick.encode({}, profile="i8"), ValueError, "unknown profile \"i8\""),
        (lambda: unstick.encode({"p": "x" * 40000}, profile="i16-le"), unstick.FrameError,
         "does not fit in the length prefix"),
        (lambda: unstick.Decoder("u32"), ValueError, "expected one of seed, i16-le"),
        (lambda: unstick.Decoder(max_header=1 << 20), ValueError, "max_header must be between"),
        (lambda: unstick.Decoder().feed("text"), TypeError, "data"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise(call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_frame_reads_back_and_prints() -> None:
    (frame,) = unstick.Decoder().feed(unstick.encode({"op": "stdout"}, b"hi", "md5"))
    assert repr(frame).startswith("Frame(header={'op': 'stdout', 'total_size': 2, 'md5': '")
    assert repr(frame).endswith("body=b'hi', md5='verified', xxh3='absent')")
    with pytest.raises(AttributeError):
        frame.body = b"other"  # type: ignore[misc]


def test_the_package_documentation_runs() -> None:
    import doctest

    assert doctest.testmod(unstick).failed == 0
