"""Framed TCP messages without sticky packets.

A TCP stream has no message boundaries: two ``send()`` calls can arrive as one ``recv()``, and
one ``send()`` as several. unstick frames every message as ``[length][JSON header][body]``, the
seed's ``struct.pack('i', len(header)) + json.dumps(header).encode() + body``, and decodes
frames with unstick-core's decoder (Rust): whole frames out, however the bytes were cut, every
header checked before it is parsed, digests verified.

>>> import unstick
>>> wire = unstick.encode({"op": "stdout"}, b"hi\\n", digest="md5")
>>> decoder = unstick.Decoder()
>>> [f.header for f in decoder.feed(wire[:3])], decoder.feed(wire[3:])[0].body
([], b'hi\\n')

On a blocking socket, ``send_frame(sock, header, body)`` and ``recv_frame(sock)`` do the same,
and ``recv_frame`` reads exactly one frame, never a byte of the next.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any, Optional, Union

from ._unstick import (
    MAX_HEADER_LIMIT,
    Decoder,
    DigestMismatch,
    Frame,
    FrameError,
    encode_json,
)

__all__ = [
    "MAX_HEADER_LIMIT",
    "ConnectionClosed",
    "Decoder",
    "DigestMismatch",
    "Frame",
    "FrameError",
    "encode",
    "recv_frame",
    "send_frame",
]

#: The most ``recv_frame`` asks the socket for at once, inside a large body.
_READ_SIZE = 1 << 20

BytesLike = Union[bytes, bytearray, memoryview]


class ConnectionClosed(ConnectionError):
    """The peer closed the connection before a whole frame arrived.

    ``needed`` is 0 when it closed between frames (a clean end), otherwise at least how many
    bytes of the frame it had started were still missing.
    """

    def __init__(self, message: str, needed: int) -> None:
        super().__init__(message)
        self.needed = needed


def encode(
    header: Mapping[str, Any],
    body: BytesLike = b"",
    digest: Optional[str] = None,
    *,
    size_field: str = "total_size",
    profile: str = "seed",
) -> bytes:
    """Return one frame: the length prefix, ``header`` as JSON, then ``body``.

    ``header`` is serialized with Python's ``json`` module, then framed by unstick-core's
    encoder, which adds the body's length as ``"total_size"`` (``size_field="filesize"`` writes
    the seed's upload header instead) and, with ``digest="md5"`` or ``"xxh3"``, the body's
    digest, which the receiving decoder verifies. The header must not have those members
    itself. Raises FrameError for a header that cannot be framed, TypeError for one that is
    not a mapping or not JSON-serializable.
    """
    if not isinstance(header, Mapping):
        raise TypeError(f"header must be a mapping (a dict), not {type(header).__name__}")
    text = json.dumps(dict(header), separators=(",", ":"), allow_nan=False)
    return encode_json(
        text, bytes(body), digest=digest, size_field=size_field, profile=profile
    )


def send_frame(
    sock: socket.socket,
    header: Mapping[str, Any],
    body: BytesLike = b"",
    digest: Optional[str] = None,
    **options: str,
) -> None:
    """Send one frame on a blocking socket: ``sock.sendall(encode(header, body, digest))``.

    ``options`` are encode()'s keywords, ``size_field`` and ``profile``.
    """
    sock.sendall(encode(header, body, digest, **options))


def recv_frame(
    sock: socket.socket,
    *,
    profile: str = "seed",
    max_header: int = 8192,
    max_body: Optional[int] = None,
) -> Frame:
    """Receive exactly one frame from a blocking socket.

    Reads the prefix, then the header, then the body, each with reads no larger than what the
    frame still lacks, so the next frame's bytes stay in the socket for the next call. This is
    the fix of the seed's clients: where they call ``recv(1024)`` and get a piece of the reply,
    or the start of the next one, this returns the whole reply and nothing else.

    Raises FrameError (or DigestMismatch, after which the next frame can be read) for bytes
    that are not a frame, and ConnectionClosed if the peer closes first. A socket timeout
    raises as ``sock.recv`` does; the bytes read so far are then lost.
    """
    decoder = Decoder(profile, max_header, max_body)
    while True:
        wanted = decoder.bytes_needed
        data = sock.recv(min(wanted, _READ_SIZE))
        if not data:
            if decoder.at_boundary:
                raise ConnectionClosed("connection closed before a frame began", 0)
            raise ConnectionClosed(
                f"connection closed inside a frame; at least {wanted} more bytes were expected",
                wanted,
            )
        frames = decoder.feed(data)
        if frames:
            return frames[0]
