"""Type hints for unstick's native module (Rust, PyO3): the decoder, frames and the encoder."""

from typing import Any, Dict, List, Optional, Union, final

__all__ = [
    "MAX_HEADER_LIMIT",
    "Decoder",
    "DigestMismatch",
    "Frame",
    "FrameError",
    "encode_json",
]

#: The largest ``max_header`` a Decoder takes, in bytes.
MAX_HEADER_LIMIT: int

class FrameError(ValueError):
    """Bytes that are not a valid frame, or a header that cannot be framed."""

    #: The frames the same ``feed()`` completed before the error.
    frames: List[Frame]

class DigestMismatch(FrameError):
    """A body does not match its header's md5 or xxh3; the decoder goes on with the next frame."""

@final
class Frame:
    """One decoded frame."""

    #: The header, parsed by Python's json from the decoder's checked text.
    @property
    def header(self) -> Dict[str, Any]: ...
    #: The body.
    @property
    def body(self) -> bytes: ...
    #: The header as the decoder checked it: JSON text, ``\\uXXXX`` escapes decoded.
    @property
    def header_json(self) -> str: ...
    #: "verified", "absent", "not_a_digest" or "unsupported".
    @property
    def md5(self) -> str: ...
    #: "verified", "absent", "not_a_digest" or "unsupported".
    @property
    def xxh3(self) -> str: ...
    #: Whether a declared digest was checked and matched.
    @property
    def verified(self) -> bool: ...

@final
class Decoder:
    """Turns bytes into whole frames, however the bytes are cut."""

    def __new__(
        cls, profile: str = "seed", max_header: int = 8192, max_body: Optional[int] = None
    ) -> "Decoder": ...
    def feed(self, data: Union[bytes, bytearray]) -> List[Frame]:
        """Decode ``data``; return the frames it completes, in order."""
    def reset(self) -> None:
        """Forget any partial frame, leftover input and error."""
    @property
    def bytes_needed(self) -> int:
        """The fewest bytes that finish the next part of the current frame."""
    @property
    def at_boundary(self) -> bool:
        """Whether no byte of a next frame has arrived."""
    @property
    def max_header(self) -> int:
        """The largest header this decoder accepts, in bytes."""

def encode_json(
    header_json: str,
    body: bytes = b"",
    *,
    digest: Optional[str] = None,
    size_field: str = "total_size",
    profile: str = "seed",
) -> bytes:
    """Frame ``body`` behind the JSON object ``header_json``."""
