//! Request bodies as the bytes sent: base64 decoding for binary bodies and
//! parts, and `multipart/form-data` (RFC 7578) framing.
//!
//! Memory: the body is built once per run, in one buffer reserved at its
//! final size, and base64 is decoded straight into it (no decoded copy on
//! the side), so a run holds the body about once besides its input.

use crate::model::{
    Body, DEFAULT_BINARY_CONTENT_TYPE, DEFAULT_TEXT_CONTENT_TYPE, MultipartPart, Problem,
};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::borrow::Cow;
use std::io::Read;

/// The standard alphabet (RFC 4648 §4) with or without padding: what
/// `base64`, browsers' `btoa` and most SDKs write, and what the step's own
/// `body_base64` output holds.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The body's bytes and the `Content-Type` its kind implies (a configured
/// `Content-Type` header wins over it, except for multipart, where
/// validation refuses one).
pub struct Encoded<'a> {
    /// What is sent.
    pub bytes: Vec<u8>,
    /// The kind's media type.
    pub content_type: Option<Cow<'a, str>>,
}

/// Encodes `body`; `boundary` is asked for once, for a multipart body. A
/// problem only for base64 that [`check_base64`] would have refused.
pub fn encode<'a>(
    body: &'a Body,
    boundary: &mut dyn FnMut() -> String,
) -> Result<Encoded<'a>, Problem> {
    let (bytes, content_type): (Vec<u8>, Option<Cow<'a, str>>) = match body {
        Body::Json(text) => (
            text.as_str().as_bytes().to_vec(),
            Some("application/json".into()),
        ),
        Body::Form(fields) => {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter().map(|kv| (&kv.key, &kv.value)))
                .finish();
            (
                encoded.into_bytes(),
                Some("application/x-www-form-urlencoded".into()),
            )
        }
        Body::Text(t) => (
            t.text.as_bytes().to_vec(),
            Some(
                t.content_type
                    .as_deref()
                    .unwrap_or(DEFAULT_TEXT_CONTENT_TYPE)
                    .into(),
            ),
        ),
        Body::Binary(b) => {
            let mut bytes = Vec::with_capacity(base64::decoded_len_estimate(b.base64.len()));
            append_base64(&b.base64, &mut bytes)
                .map_err(|e| Problem::new("body.binary.base64", e))?;
            (
                bytes,
                Some(
                    b.content_type
                        .as_deref()
                        .unwrap_or(DEFAULT_BINARY_CONTENT_TYPE)
                        .into(),
                ),
            )
        }
        Body::Multipart(parts) => {
            let boundary = boundary();
            let bytes = multipart(parts, &boundary)?;
            (
                bytes,
                Some(format!("multipart/form-data; boundary={boundary}").into()),
            )
        }
    };
    Ok(Encoded {
        bytes,
        content_type,
    })
}

/// A multipart boundary from 16 random bytes: 128 bits chosen after the
/// parts are fixed, so no content can contain it except by a chance of
/// 2^-128 per position (RFC 2046 §5.1.1 asks that it not occur in the
/// parts). Letters, digits and `-` only, so it needs no quoting.
pub fn boundary(random: &[u8]) -> String {
    format!("https-step-{}", hex::encode(random))
}

/// Checks that `text` is base64 the step decodes, without keeping the bytes.
pub fn check_base64(field: &str, text: &str) -> Option<Problem> {
    std::io::copy(&mut decoder(text), &mut std::io::sink())
        .err()
        .map(|e| Problem::new(field, describe(&e)))
}

/// Decodes `text` onto the end of `out`.
fn append_base64(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    decoder(text)
        .read_to_end(out)
        .map(drop)
        .map_err(|e| describe(&e))
}

fn decoder(text: &str) -> base64::read::DecoderReader<'static, GeneralPurpose, SkipWhitespace<'_>> {
    base64::read::DecoderReader::new(SkipWhitespace(text.as_bytes()), &BASE64)
}

/// Reads bytes with ASCII white space left out: base64 wrapped at 76
/// columns (MIME, RFC 2045 §6.8; `base64` without `-w0`) decodes as is.
struct SkipWhitespace<'a>(&'a [u8]);

impl Read for SkipWhitespace<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let Some((&b, rest)) = self.0.split_first() else {
                break;
            };
            self.0 = rest;
            if !b.is_ascii_whitespace() {
                buf[n] = b;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A decoding failure in words a workflow author can act on.
fn describe(e: &std::io::Error) -> String {
    use base64::DecodeError as D;
    let detail = match e.get_ref().and_then(|inner| inner.downcast_ref::<D>()) {
        Some(D::InvalidByte(offset, byte)) if matches!(byte, b'-' | b'_') => {
            format!(
                "{:?} at offset {offset} belongs to the URL-safe alphabet; give standard base64 (+ and /)",
                char::from(*byte)
            )
        }
        Some(D::InvalidByte(offset, byte)) => format!(
            "{:?} at offset {offset} is not a base64 character",
            char::from(*byte)
        ),
        Some(D::InvalidLength(_)) => {
            "its length is not a whole number of base64 groups (a character is missing or extra)"
                .into()
        }
        Some(D::InvalidLastSymbol(offset, _)) => format!(
            "the last character (offset {offset}) has bits that encode nothing; it is truncated or altered"
        ),
        Some(D::InvalidPadding) => "its = padding is misplaced".into(),
        None => e.to_string(),
    };
    format!(
        "is not valid base64 (RFC 4648 §4, white space ignored; offsets count without it): {detail}"
    )
}

/// The multipart body: each part as RFC 7578 §4 frames it, in order, then
/// the close delimiter.
fn multipart(parts: &[MultipartPart], boundary: &str) -> Result<Vec<u8>, Problem> {
    // Reserved at (about) the final size, so the buffer never doubles.
    let framing = 2 * boundary.len() + 128;
    let size: usize = parts
        .iter()
        .map(|p| {
            let content = p.value.as_ref().map_or_else(
                || base64::decoded_len_estimate(p.base64.as_ref().map_or(0, String::len)),
                String::len,
            );
            framing
                + p.name.len()
                + p.filename.as_ref().map_or(0, String::len)
                + p.content_type.as_ref().map_or(0, String::len)
                + content
        })
        .sum();
    let mut out = Vec::with_capacity(size + boundary.len() + 8);
    for (i, part) in parts.iter().enumerate() {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(escape(&part.name).as_bytes());
        out.push(b'"');
        if let Some(filename) = &part.filename {
            out.extend_from_slice(b"; filename=\"");
            out.extend_from_slice(escape(filename).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        let default_type = (part.filename.is_some() || part.base64.is_some())
            .then_some(DEFAULT_BINARY_CONTENT_TYPE);
        if let Some(content_type) = part.content_type.as_deref().or(default_type) {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        match (&part.value, &part.base64) {
            (Some(value), _) => out.extend_from_slice(value.as_bytes()),
            (None, Some(b64)) => append_base64(b64, &mut out)
                .map_err(|e| Problem::new(format!("body.multipart[{i}].base64"), e))?,
            (None, None) => {}
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    Ok(out)
}

/// Escapes a field or file name inside its quoted `Content-Disposition`
/// parameter: `"` and `\` as quoted-pairs (`\"`, `\\`: the quoted-string of
/// RFC 9110 §5.6.4 that RFC 7578 §4.2's parameters are), CR and LF as `%0D`
/// and `%0A` (a header cannot hold them at all; the HTML Standard's
/// multipart/form-data encoding writes them so). Everything else, non-ASCII
/// included, is sent as UTF-8 as browsers send it; `filename*` (RFC 5987) is
/// not used, as RFC 7578 §4.2 says.
///
/// Why `\"` and not the HTML Standard's `%22` for a quote: of four widely
/// used parsers, all read `\"` back as `"` (Werkzeug/Flask,
/// python-multipart/FastAPI, `multipart`/Bottle, multer/axum) while only two
/// decode `%22` (README "Multipart bodies"; `tests/tests/multipart_werkzeug.rs`).
fn escape(name: &str) -> Cow<'_, str> {
    if !name.contains(['"', '\\', '\r', '\n']) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BinaryBody;

    fn part(
        name: &str,
        value: Option<&str>,
        base64: Option<&str>,
        filename: Option<&str>,
        content_type: Option<&str>,
    ) -> MultipartPart {
        MultipartPart {
            name: name.into(),
            value: value.map(Into::into),
            base64: base64.map(Into::into),
            filename: filename.map(Into::into),
            content_type: content_type.map(Into::into),
        }
    }

    #[test]
    fn base64_forms_accepted() {
        for (text, bytes) in [
            ("aGk=", &b"hi"[..]),
            ("aGk", b"hi"),
            ("aG\r\nk=\n", b"hi"),
            ("", b""),
            ("/+8=", &[0xff, 0xef]),
        ] {
            let mut out = vec![1];
            append_base64(text, &mut out).expect(text);
            assert_eq!(&out[1..], bytes, "{text:?}");
            assert!(check_base64("f", text).is_none(), "{text:?}");
        }
    }

    #[test]
    fn base64_problems_say_why() {
        for (text, needle) in [
            ("aGk*", "'*' at offset 3 is not a base64 character"),
            ("aG-k", "URL-safe"),
            ("aGkhx", "whole number"),
            ("aGl=", "bits that encode nothing"),
            ("a=Gk", "offset 1"),
        ] {
            let p = check_base64("body.binary.base64", text).expect(text);
            assert_eq!(p.path, "body.binary.base64");
            assert!(p.message.contains(needle), "{text:?}: {}", p.message);
        }
        // Offsets past the decoder's first chunk are still the input's.
        let long = format!("{}*", "A".repeat(4000));
        assert!(
            check_base64("f", &long)
                .expect("bad")
                .message
                .contains("offset 4000")
        );
    }

    #[test]
    fn binary_is_decoded_with_its_type() {
        let body = Body::Binary(BinaryBody {
            base64: "JVBERi0=".into(),
            content_type: Some("application/pdf".into()),
        });
        let e = encode(&body, &mut || unreachable!()).expect("encode");
        assert_eq!(e.bytes, b"%PDF-");
        assert_eq!(e.content_type.as_deref(), Some("application/pdf"));
        let body = Body::Binary(BinaryBody {
            base64: "AA==".into(),
            content_type: None,
        });
        assert_eq!(
            encode(&body, &mut || unreachable!())
                .expect("encode")
                .content_type
                .as_deref(),
            Some(DEFAULT_BINARY_CONTENT_TYPE)
        );
    }

    #[test]
    fn multipart_framing() {
        let body = Body::Multipart(vec![
            part("title", Some("Q3 \"final\""), None, None, None),
            part(
                "tag",
                Some("a"),
                None,
                None,
                Some("text/plain; charset=utf-8"),
            ),
            part("tag", Some("b"), None, None, None),
            part(
                "scan",
                None,
                Some("JVBERi0="),
                Some("scan 1.pdf"),
                Some("application/pdf"),
            ),
            part("raw", None, Some("AAE="), None, None),
            part(
                "a\"b\r\nc\\",
                Some(""),
                None,
                Some("résumé \"v2\".txt"),
                None,
            ),
        ]);
        let e = encode(&body, &mut || "BND".into()).expect("encode");
        assert_eq!(
            e.content_type.as_deref(),
            Some("multipart/form-data; boundary=BND")
        );
        let want = concat!(
            "--BND\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3 \"final\"\r\n",
            "--BND\r\nContent-Disposition: form-data; name=\"tag\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\na\r\n",
            "--BND\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nb\r\n",
            "--BND\r\nContent-Disposition: form-data; name=\"scan\"; filename=\"scan 1.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-\r\n",
            "--BND\r\nContent-Disposition: form-data; name=\"raw\"\r\nContent-Type: application/octet-stream\r\n\r\n\u{0}\u{1}\r\n",
            "--BND\r\nContent-Disposition: form-data; name=\"a\\\"b%0D%0Ac\\\\\"; filename=\"résumé \\\"v2\\\".txt\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n",
            "--BND--\r\n",
        );
        assert_eq!(String::from_utf8(e.bytes.clone()).expect("utf-8"), want);
        assert!(e.bytes.capacity() >= e.bytes.len());
    }

    #[test]
    fn multipart_buffer_is_reserved_at_its_size() {
        let big = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            vec![7u8; 300_000],
        );
        let body = Body::Multipart(vec![
            part("f", None, Some(&big), Some("x.bin"), None),
            part("n", Some("1"), None, None, None),
        ]);
        let e = encode(&body, &mut || boundary(&[0xab; 16])).expect("encode");
        // No doubling: the reserve covered it (within the framing estimate).
        assert!(
            e.bytes.capacity() < e.bytes.len() + 1024,
            "{} vs {}",
            e.bytes.capacity(),
            e.bytes.len()
        );
    }

    #[test]
    fn boundary_is_a_token() {
        let b = boundary(&[0x00, 0xff, 0x10, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(b, "https-step-00ff1020000000000000000000000001");
        assert!(b.len() <= 70 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }
}
