//! The text encoding seed clients decode command output with.
//!
//! The seed's shell clients were written on Chinese Windows, where `cmd.exe` writes in code
//! page 936, and decode every reply with `decode('gbk')`. A server whose commands write UTF-8
//! (Linux, macOS) can turn their output into GBK for them: text GBK can show is converted
//! exactly; a character it cannot (an emoji, say) becomes `?`; bytes that are not UTF-8 (a
//! file already in GBK, binary data) pass through unchanged.
//!
//! On Windows the commands' output is in the console's code page already (`cmd.exe` and most
//! console programs write in it when their output is a pipe), so on Chinese Windows it is GBK
//! as it is: the default there is [`SeedEncoding::AsIs`], as everywhere, except where the code
//! page is UTF-8 (65001), where converting to GBK is what the seed's clients need (see
//! [`SeedEncoding::system_default`]).

use std::fmt;
use std::str::FromStr;

/// What a seed client's replies are encoded in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeedEncoding {
    /// The commands' output as it is (UTF-8 on Linux and macOS).
    #[default]
    AsIs,
    /// GBK (code page 936), which the seed's clients decode.
    Gbk,
}

impl SeedEncoding {
    /// What seed clients get unless told otherwise: [`AsIs`](Self::AsIs), except on Windows
    /// whose code page is UTF-8 (65001), where the commands write UTF-8 and the seed's clients
    /// need [`Gbk`](Self::Gbk). The code page is the console's the server runs in (which its
    /// commands share), or the system's OEM code page without a console (which the console
    /// each command then gets starts with). On Chinese Windows (936, GBK) and any other code
    /// page, output is passed as it is: GBK is what the seed's clients decode, and other code
    /// pages cannot be converted faithfully.
    pub fn system_default() -> SeedEncoding {
        match system_code_page() {
            Some(UTF8_CODE_PAGE) => SeedEncoding::Gbk,
            _ => SeedEncoding::AsIs,
        }
    }

    /// `output`, in this encoding.
    pub fn encode(self, output: Vec<u8>) -> Vec<u8> {
        match self {
            SeedEncoding::AsIs => output,
            SeedEncoding::Gbk => to_gbk(&output),
        }
    }
}

/// Converts the UTF-8 runs of `output` to GBK (`?` for what GBK cannot show) and keeps the
/// other bytes as they are.
fn to_gbk(output: &[u8]) -> Vec<u8> {
    let mut encoder = encoding_rs::GBK.new_encoder();
    let mut out = Vec::with_capacity(output.len());
    for chunk in output.utf8_chunks() {
        let mut text = chunk.valid();
        while !text.is_empty() {
            let room = encoder
                .max_buffer_length_from_utf8_without_replacement(text.len())
                .unwrap_or(text.len() * 2 + 16);
            let start = out.len();
            out.resize(start + room, 0);
            let (result, read, written) =
                encoder.encode_from_utf8_without_replacement(text, &mut out[start..], false);
            out.truncate(start + written);
            text = &text[read..];
            if let encoding_rs::EncoderResult::Unmappable(_) = result {
                out.push(b'?');
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// Windows' number for UTF-8 as a code page.
const UTF8_CODE_PAGE: u32 = 65001;

/// The code page commands write their output in, on Windows.
#[cfg(windows)]
fn system_code_page() -> Option<u32> {
    let (console, oem) = super::process::code_pages();
    Some(console.unwrap_or(oem))
}

/// Unix commands write UTF-8 text, or whatever their locale says: there is no code page.
#[cfg(not(windows))]
fn system_code_page() -> Option<u32> {
    None
}

impl FromStr for SeedEncoding {
    type Err = String;

    fn from_str(text: &str) -> Result<SeedEncoding, String> {
        match text.to_ascii_lowercase().as_str() {
            "as-is" | "utf-8" | "utf8" => Ok(SeedEncoding::AsIs),
            "gbk" | "cp936" => Ok(SeedEncoding::Gbk),
            _ => Err(format!(
                "unknown encoding `{text}`; use gbk (what the seed's clients decode) or as-is"
            )),
        }
    }
}

impl fmt::Display for SeedEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SeedEncoding::AsIs => "as-is",
            SeedEncoding::Gbk => "gbk",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_becomes_gbk_and_what_gbk_lacks_a_question_mark() {
        let gbk = SeedEncoding::Gbk.encode("新建文件夹 ok\n".as_bytes().to_vec());
        assert_eq!(gbk, b"\xd0\xc2\xbd\xa8\xce\xc4\xbc\xfe\xbc\xd0 ok\n");
        let (back, _, errors) = encoding_rs::GBK.decode(&gbk);
        assert!(!errors);
        assert_eq!(back, "新建文件夹 ok\n");
        assert_eq!(SeedEncoding::Gbk.encode("a😀b".as_bytes().to_vec()), b"a?b");
        // Bytes that are not UTF-8 (already GBK, or binary) are kept.
        assert_eq!(
            SeedEncoding::Gbk.encode(b"\xff\xfe x \xd0\xc2".to_vec()),
            b"\xff\xfe x \xd0\xc2"
        );
        assert_eq!(
            SeedEncoding::AsIs.encode(b"\xe6\x96\xb0".to_vec()),
            b"\xe6\x96\xb0"
        );
        assert_eq!("GBK".parse(), Ok(SeedEncoding::Gbk));
        assert!("latin1".parse::<SeedEncoding>().is_err());
    }
}
