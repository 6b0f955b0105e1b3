//! Content codings of response bodies (RFC 9110 §8.4): the step asks for
//! `gzip`, `deflate` and `br` and decodes them as the body streams in, so a
//! workflow sees the content, not the compressed bytes.
//!
//! The decoded size is what `max_response_bytes` limits, checked as bytes come
//! out of the decoder: a small compressed body that expands past the cap (a
//! "zip bomb") fails with `response-too-large` having produced at most the
//! cap. Compressed input is never kept; the decoders hold a fixed window
//! (32 KiB for deflate, up to 16 MiB for brotli as RFC 7932 §9.1 allows the
//! sender to choose) besides the output.
//!
//! Only a single coding the step knows is decoded. Anything else — a stacked
//! coding (`gzip, br`), an unknown one — is passed through undecoded with its
//! `Content-Encoding` header, never guessed.

use crate::model::StepError;
use flate2::{Decompress, FlushDecompress, Status};
use std::io::Write;

/// The `Accept-Encoding` the step sends unless the config sets one.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// A content coding the step decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` or `x-gzip` (RFC 1952; RFC 9110 §8.4.1.3), members concatenated.
    Gzip,
    /// `deflate`: RFC 1950 zlib data, or raw RFC 1951 data as some servers send.
    Deflate,
    /// `br` (RFC 7932).
    Brotli,
}

impl Coding {
    /// The coding to decode for a response's `Content-Encoding` value, or
    /// `None` when the body is to be passed on as it came: no header,
    /// `identity`, an unknown coding, or several stacked codings.
    pub fn of(content_encoding: Option<&str>) -> Option<Coding> {
        let value = content_encoding?.trim();
        if value.contains(',') {
            return None;
        }
        match value.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            _ => None,
        }
    }

    /// The coding's name in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// The `response-too-large` error for a body over `cap` bytes.
pub fn too_large(cap: u64, detail: &str) -> StepError {
    StepError::ResponseTooLarge(format!(
        "the response body is larger than max_response_bytes ({cap} bytes): {detail}"
    ))
}

/// Output that refuses to grow past the cap: nothing beyond it is kept.
struct Capped {
    out: Vec<u8>,
    cap: u64,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > self.cap {
            self.over = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "max_response_bytes",
            ));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum State {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Capped>>),
    /// `deflate` until its first two bytes tell a zlib header from raw data.
    DeflateStart(Vec<u8>),
    Deflate {
        inflate: Box<Decompress>,
        ended: bool,
    },
    Brotli(Box<brotli_decompressor::DecompressorWriter<Capped>>),
}

/// A response body being received: decoded on the fly when it has a coding,
/// never longer than the cap.
pub struct BodyDecoder {
    coding: Option<Coding>,
    state: State,
    /// Output for identity and deflate; gzip and brotli own theirs.
    out: Capped,
}

/// Buffer size of the brotli writer's output staging.
const BROTLI_BUFFER: usize = 16 * 1024;

impl BodyDecoder {
    /// A decoder for `coding` (`None`: the body is kept as it comes) whose
    /// output may hold at most `cap` bytes.
    pub fn new(coding: Option<Coding>, cap: u64) -> Self {
        let capped = || Capped {
            out: Vec::new(),
            cap,
            over: false,
        };
        let state = match coding {
            None => State::Identity,
            Some(Coding::Gzip) => {
                State::Gzip(Box::new(flate2::write::MultiGzDecoder::new(capped())))
            }
            Some(Coding::Deflate) => State::DeflateStart(Vec::new()),
            Some(Coding::Brotli) => State::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(capped(), BROTLI_BUFFER),
            )),
        };
        BodyDecoder {
            coding,
            state,
            out: capped(),
        }
    }

    /// Makes room for a body of `len` bytes (its declared `Content-Length`)
    /// up to the cap, when it is kept as it comes: the buffer is then
    /// allocated once, not doubled as it fills (which, for a large file,
    /// leaves freed halves the next allocation cannot use).
    pub fn expect(&mut self, len: u64) {
        if matches!(self.state, State::Identity) {
            self.out
                .out
                .reserve(usize::try_from(len.min(self.out.cap)).unwrap_or(0));
        }
    }

    /// Takes the next bytes of the body as received.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), StepError> {
        let result = match &mut self.state {
            State::Identity => self.out.write_all(chunk),
            State::Gzip(d) => d.write_all(chunk),
            State::Brotli(d) => d.write_all(chunk),
            State::DeflateStart(head) => {
                head.extend_from_slice(chunk);
                if head.len() < 2 {
                    return Ok(());
                }
                // RFC 1950 §2.2: CM = 8 and the 16-bit header a multiple of 31.
                let zlib =
                    head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
                let head = std::mem::take(head);
                self.state = State::Deflate {
                    inflate: Box::new(Decompress::new(zlib)),
                    ended: false,
                };
                return self.push(&head);
            }
            State::Deflate { inflate, ended } => inflate_into(inflate, ended, chunk, &mut self.out),
        };
        result.map_err(|e| self.fault(&e))
    }

    /// Ends the body: the decoded bytes, or why the data was unusable.
    pub fn finish(self) -> Result<Vec<u8>, StepError> {
        let coding = self.coding;
        let corrupt = |detail: &str| corrupt(coding, detail);
        match self.state {
            State::Identity => Ok(self.out.out),
            State::Gzip(mut d) => match d.try_finish() {
                Ok(()) => d
                    .finish()
                    .map(|c| c.out)
                    .map_err(|e| corrupt(&e.to_string())),
                Err(_) if d.get_ref().over => Err(too_large(d.get_ref().cap, "it decodes to more")),
                Err(e) => Err(corrupt(&format!(
                    "{e} (the data ends too early or its checksum is wrong)"
                ))),
            },
            State::DeflateStart(head) if head.is_empty() => Ok(Vec::new()),
            State::DeflateStart(_) | State::Deflate { ended: false, .. } => {
                Err(corrupt("the compressed data ends too early"))
            }
            State::Deflate { ended: true, .. } => Ok(self.out.out),
            State::Brotli(mut d) => match d.close() {
                Ok(()) => d
                    .into_inner()
                    .map(|c| c.out)
                    .map_err(|_| corrupt("the stream did not end cleanly")),
                Err(_) if d.get_ref().over => Err(too_large(d.get_ref().cap, "it decodes to more")),
                Err(_) => Err(corrupt("the compressed data is corrupt or ends too early")),
            },
        }
    }

    /// The error behind a failed write: the cap, or corrupt data.
    fn fault(&self, e: &std::io::Error) -> StepError {
        let over = match &self.state {
            State::Gzip(d) => d.get_ref().over,
            State::Brotli(d) => d.get_ref().over,
            _ => self.out.over,
        };
        match (over, self.coding) {
            (true, None) => too_large(self.out.cap, "the server sent more"),
            (true, Some(_)) => too_large(self.out.cap, "it decodes to more"),
            (false, coding) => corrupt(coding, &e.to_string()),
        }
    }
}

fn corrupt(coding: Option<Coding>, detail: &str) -> StepError {
    let name = coding.map_or("identity", Coding::as_str);
    StepError::InvalidResponse(format!(
        "the response body is not valid {name} data (Content-Encoding: {name}): {detail}; set \"decompress\": false to receive it undecoded"
    ))
}

/// Inflates `input` into `out`, through a fixed staging buffer.
fn inflate_into(
    inflate: &mut Decompress,
    ended: &mut bool,
    mut input: &[u8],
    out: &mut Capped,
) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        if *ended {
            return if input.is_empty() {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "data follows the end of the deflate stream",
                ))
            };
        }
        let (before_in, before_out) = (inflate.total_in(), inflate.total_out());
        let status = inflate
            .decompress(input, &mut buf, FlushDecompress::None)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let consumed = usize::try_from(inflate.total_in() - before_in).unwrap_or(input.len());
        let produced = usize::try_from(inflate.total_out() - before_out).unwrap_or(0);
        input = &input[consumed.min(input.len())..];
        out.write_all(&buf[..produced])?;
        *ended = status == Status::StreamEnd;
        // More output may be pending only when the staging buffer filled up.
        if !*ended && input.is_empty() && produced < buf.len() {
            return Ok(());
        }
        if !*ended && consumed == 0 && produced == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compress");
        e.finish().expect("compress")
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compress");
        e.finish().expect("compress")
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compress");
        e.finish().expect("compress")
    }

    /// "hello, hello, hello" compressed at quality 11 by the reference brotli
    /// library (Google's C implementation, through PyPI `brotlicffi` 1.2.1.0).
    const BROTLI_HELLO: &[u8] = &[
        0x1b, 0x12, 0x00, 0xf8, 0x8d, 0x94, 0x6e, 0xde, 0x44, 0x09, 0x52, 0x86, 0x96, 0x6c, 0x2c,
        0x6f, 0x11, 0x4f, 0x24, 0xd0, 0x71, 0x00,
    ];

    fn decode(
        coding: Option<Coding>,
        cap: u64,
        body: &[u8],
        chunk: usize,
    ) -> Result<Vec<u8>, StepError> {
        let mut d = BodyDecoder::new(coding, cap);
        for part in body.chunks(chunk.max(1)) {
            d.push(part)?;
        }
        d.finish()
    }

    #[test]
    fn header_values() {
        assert_eq!(Coding::of(Some("gzip")), Some(Coding::Gzip));
        assert_eq!(Coding::of(Some(" X-GZIP ")), Some(Coding::Gzip));
        assert_eq!(Coding::of(Some("Deflate")), Some(Coding::Deflate));
        assert_eq!(Coding::of(Some("br")), Some(Coding::Brotli));
        for passed in [
            None,
            Some("identity"),
            Some("zstd"),
            Some("gzip, br"),
            Some(""),
        ] {
            assert_eq!(Coding::of(passed), None, "{passed:?}");
        }
    }

    #[test]
    fn every_coding_decodes_in_any_chunking() {
        let text = "hello, hello, hello".repeat(500);
        let cases = [
            (Coding::Gzip, gzip(text.as_bytes())),
            (Coding::Deflate, zlib(text.as_bytes())),
            (Coding::Deflate, raw_deflate(text.as_bytes())),
        ];
        for (coding, body) in cases {
            for chunk in [1, 2, 3, 100, 1 << 20] {
                assert_eq!(
                    decode(Some(coding), 1 << 20, &body, chunk).expect("decodes"),
                    text.as_bytes(),
                    "{coding:?} by {chunk}"
                );
            }
        }
        for chunk in [1, 5, 100] {
            assert_eq!(
                decode(Some(Coding::Brotli), 1 << 20, BROTLI_HELLO, chunk).expect("br"),
                b"hello, hello, hello"
            );
        }
        let two_members = [gzip(b"ab"), gzip(b"cd")].concat();
        assert_eq!(
            decode(Some(Coding::Gzip), 100, &two_members, 3).expect("multi-member"),
            b"abcd"
        );
        assert_eq!(
            decode(Some(Coding::Deflate), 100, b"", 1).expect("empty"),
            b""
        );
        assert_eq!(decode(None, 100, b"as is", 2).expect("identity"), b"as is");
    }

    #[test]
    fn bombs_stop_at_the_cap() {
        let zeros = vec![0u8; 10 << 20];
        let cap = 1 << 20;
        for (coding, body) in [
            (Coding::Gzip, gzip(&zeros)),
            (Coding::Deflate, zlib(&zeros)),
            (Coding::Deflate, raw_deflate(&zeros)),
        ] {
            assert!(body.len() < 20_000, "{coding:?}: {}", body.len());
            let mut d = BodyDecoder::new(Some(coding), cap);
            let err = body
                .chunks(4096)
                .try_for_each(|c| d.push(c))
                .expect_err("over the cap");
            assert_eq!(err.kind(), "response-too-large", "{coding:?}: {err}");
            assert!(err.to_string().contains("decodes to more"), "{err}");
            assert!(d.out.out.len() as u64 <= cap);
        }
        let err = decode(None, 4, b"12345", 1).expect_err("identity over the cap");
        assert!(err.to_string().contains("the server sent more"), "{err}");
        assert_eq!(
            decode(Some(Coding::Gzip), 5, &gzip(b"12345"), 7).expect("exactly the cap"),
            b"12345"
        );
    }

    #[test]
    fn corrupt_and_truncated_data_name_the_coding() {
        let gz = gzip(b"some text that is long enough to compress");
        let z = zlib(b"some text that is long enough to compress");
        let cases: Vec<(Coding, Vec<u8>)> = vec![
            (Coding::Gzip, b"not gzip at all".to_vec()),
            (Coding::Gzip, gz[..gz.len() - 4].to_vec()),
            (Coding::Deflate, z[..z.len() / 2].to_vec()),
            (Coding::Deflate, [z.clone(), b"junk".to_vec()].concat()),
            (Coding::Deflate, vec![0xff, 0xff, 0xff, 0xff]),
            (
                Coding::Brotli,
                BROTLI_HELLO[..BROTLI_HELLO.len() - 3].to_vec(),
            ),
            (Coding::Brotli, b"\xff\xff\xff\xff not brotli".to_vec()),
        ];
        for (coding, body) in cases {
            let err = decode(Some(coding), 1 << 20, &body, 3).expect_err("corrupt");
            assert_eq!(err.kind(), "invalid-response", "{coding:?} {body:?}: {err}");
            assert!(
                err.to_string()
                    .contains(&format!("Content-Encoding: {}", coding.as_str())),
                "{err}"
            );
        }
    }
}
