//! `encode_json`: a header given as JSON text and a body, framed by the core's encoder.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use unstick_core::{Algorithm, HeaderFrameEncoder, SizeField};

use crate::{FrameError, profile};

/// Room for what the encoder adds to the header: `,"total_size":` and 20 digits, then
/// `,"xxh3":"` and 32 hex digits and a quote, with the closing brace; rounded up.
const ADDED_MEMBERS: usize = 96;

/// Frames ``body`` behind the JSON object ``header_json`` (str): the length prefix, then the
/// header with the body's length added as ``"total_size"`` (or ``"filesize"``, as the seed's
/// upload client writes it) and, when ``digest`` is ``"md5"`` or ``"xxh3"``, the body's digest.
///
/// The header is checked as a decoder checks one; escapes such as ``\u65b0`` are written as
/// UTF-8. Raises FrameError if it is not one JSON object or already has a total_size,
/// filesize, md5 or xxh3 member.
#[pyfunction]
#[pyo3(
    signature = (header_json, body = &[][..], *, digest = None, size_field = "total_size", profile = "seed"),
    text_signature = "(header_json, body=b'', *, digest=None, size_field='total_size', profile='seed')"
)]
pub(crate) fn encode_json<'py>(
    py: Python<'py>,
    header_json: &str,
    body: &[u8],
    digest: Option<&str>,
    size_field: &str,
    profile: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let checksum = match digest {
        None => None,
        Some("md5") => Some(Algorithm::Md5),
        Some("xxh3") => Some(Algorithm::Xxh3),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown digest {other:?}; expected \"md5\", \"xxh3\" or None"
            )));
        }
    };
    let size_field = match size_field {
        "total_size" => SizeField::TotalSize,
        "filesize" => SizeField::Filesize,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown size_field {other:?}; expected \"total_size\" or \"filesize\""
            )));
        }
    };
    let profile = profile::parse(profile)?;
    let encoder = HeaderFrameEncoder::new(profile)
        .size_field(size_field)
        .checksum(checksum);
    let capacity = profile.width.len() + header_json.len() + ADDED_MEMBERS + body.len();
    // Hashing a large body takes a while: other Python threads run meanwhile.
    let frame = py.detach(|| {
        let mut out = vec![0u8; capacity];
        encoder
            .encode_frame_json(header_json.as_bytes(), body, &mut out)
            .map(|n| {
                out.truncate(n);
                out
            })
    });
    match frame {
        Ok(frame) => Ok(PyBytes::new(py, &frame)),
        Err(e) => Err(FrameError::new_err(e.to_string())),
    }
}
