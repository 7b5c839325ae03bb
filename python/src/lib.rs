//! # unstick's Python package, native half
//!
//! `unstick._unstick` puts unstick-core's [`FrameDecoder`](unstick_core::FrameDecoder) and
//! [`HeaderFrameEncoder`](unstick_core::HeaderFrameEncoder) behind PyO3. The Python half
//! (`unstick/__init__.py`) re-exports what is here and adds what belongs to Python: headers
//! serialized with Python's `json` module, and the blocking socket calls.
//!
//! - [`decoder::Decoder`]: bytes in, whole [`decoder::Frame`]s out, in pieces of any size. The
//!   header is checked by the core's scanner and handed to Python as the core's normalised JSON
//!   text, which `json.loads` turns into a dict. Decoding and hashing run with the GIL released.
//! - [`encoder::encode_json`]: a header given as JSON text and a body, framed by the core's
//!   encoder (`"total_size"` or `"filesize"`, and a digest on request, added to the header).
//! - [`FrameError`] (a `ValueError`) carries the core's message for bytes that are not frames;
//!   [`DigestMismatch`] is the one after which the stream goes on.
//!
//! Nothing here panics on any input: the core promises that for its decoder and encoder, and the
//! glue only indexes what the core says it consumed.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

mod decoder;
mod encoder;
mod profile;

pyo3::create_exception!(
    unstick,
    FrameError,
    PyValueError,
    "Bytes that are not a valid frame, or a header that cannot be framed.\n\n\
     The message is the decoder's (or the encoder's). After any FrameError but a\n\
     DigestMismatch the decoder refuses input until reset(): the stream is out of sync, and the\n\
     usual answer is to close the connection. ``frames`` holds the frames the same feed()\n\
     completed before the error."
);

pyo3::create_exception!(
    unstick,
    DigestMismatch,
    FrameError,
    "A frame's body does not match the md5 or xxh3 digest its header declared.\n\n\
     The frame was consumed whole, so the decoder is at the next frame: feed() again (with\n\
     b\"\" to go on with the input it was given) and decoding continues."
);

/// The extension module: its classes, its function and its exceptions.
#[pymodule]
fn _unstick(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<decoder::Decoder>()?;
    m.add_class::<decoder::Frame>()?;
    m.add_function(wrap_pyfunction!(encoder::encode_json, m)?)?;
    m.add("FrameError", m.py().get_type::<FrameError>())?;
    m.add("DigestMismatch", m.py().get_type::<DigestMismatch>())?;
    m.add("MAX_HEADER_LIMIT", decoder::MAX_HEADER_LIMIT)?;
    Ok(())
}
