//! Turns the bytes of a response into the step's [`Response`].

use crate::model::{KeyValue, Response, ResponseFormat, StepError};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// The header a host puts on a `429` it answered itself because its limits
/// for the tenant held the request back (a rate limit, a cap on requests in
/// flight, an upstream's back-off window), naming which; the request never
/// reached the server. This project's host writes it (README "Rate limits
/// and back-pressure"), as Envoy marks its local rate limit's answers.
pub const LOCAL_LIMIT_HEADER: &str = "x-https-step-local-limit";

/// A response as the transport delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header names and raw values in received order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, at most `max_response_bytes` long.
    pub body: Vec<u8>,
}

/// Decodes a header value: UTF-8 when valid, else ISO-8859-1, which is how
/// RFC 9110 §5.5 says recipients historically read non-ASCII octets.
fn decode_header_value(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_owned(),
        Err(_) => raw.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Whether a `Content-Type` value names JSON: `application/json` or any
/// `+json` structured syntax suffix (RFC 6839 §3.1).
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The `charset` parameter of a `Content-Type` value (RFC 9110 §8.3.2), if any.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// How the body's text is to be read.
enum Text {
    /// No charset, UTF-8, or a label the WHATWG Encoding Standard does not
    /// know: UTF-8 when valid, else not text (never guessed).
    Utf8,
    /// A declared charset other than UTF-8, by its label as declared.
    Declared(&'static encoding_rs::Encoding, String),
}

/// Decodes `bytes` in a declared charset (WHATWG Encoding Standard, as
/// browsers read it: `iso-8859-1` is windows-1252, `utf-16` is UTF-16LE); a
/// byte order mark overrides the label (WHATWG "decode"). `None` when the
/// bytes are not valid in that charset.
fn decode_charset(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Option<String> {
    let (encoding, bytes) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((bom, len)) => (bom, &bytes[len..]),
        None => (encoding, bytes),
    };
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(std::borrow::Cow::into_owned)
}

/// Builds the response as `format` says.
///
/// - `auto`: the body becomes text when it is UTF-8 or decodes in the
///   charset its `Content-Type` declares, else base64 (a body that does not
///   decode in its declared charset is an `invalid-response` error). JSON is
///   parsed when the Content-Type says JSON — then invalid JSON is an
///   `invalid-response` error, returned next to the response — or, without
///   a Content-Type, when the body happens to be JSON.
/// - `json`: as `auto`, but the body must be JSON whatever the Content-Type.
/// - `text`: as `auto`, never parsed.
/// - `binary`: base64 always, with the Content-Type and the SHA-256.
///
/// serde_json refuses nesting deeper than 128 levels with an error, so a
/// hostile body cannot overflow the stack.
pub fn decode(
    raw: RawResponse,
    format: ResponseFormat,
) -> (Response, Option<serde_json::Value>, Option<StepError>) {
    let headers: Vec<KeyValue> = raw
        .headers
        .iter()
        .map(|(name, value)| KeyValue::new(name.clone(), decode_header_value(value)))
        .collect();
    let content_type = headers
        .iter()
        .find(|kv| kv.key.eq_ignore_ascii_case("content-type"))
        .map(|kv| kv.value.clone());
    if format == ResponseFormat::Binary {
        let response = Response {
            status: raw.status,
            headers,
            body: String::new(),
            body_sha256: Some(hex::encode(Sha256::digest(&raw.body))),
            body_base64: Some(base64::engine::general_purpose::STANDARD.encode(raw.body)),
            json: None,
            content_type,
        };
        return (response, None, None);
    }
    let declared_json = content_type.as_deref().is_some_and(is_json_media_type);
    // Whether JSON is required (an error when absent) and whether it is tried.
    let (required, parse) = match format {
        ResponseFormat::Json => (true, true),
        ResponseFormat::Text => (false, false),
        _ => (declared_json, declared_json || content_type.is_none()),
    };
    let reading = match content_type.as_deref().and_then(charset_param) {
        Some(label) => match encoding_rs::Encoding::for_label(label.as_bytes()) {
            Some(encoding) if encoding != encoding_rs::UTF_8 => {
                Text::Declared(encoding, label.to_string())
            }
            _ => Text::Utf8,
        },
        None => Text::Utf8,
    };
    let mut error = None;
    let text = match reading {
        Text::Utf8 => String::from_utf8(raw.body).map_err(|e| {
            if required {
                error = Some(StepError::InvalidResponse(format!("{} but is not valid UTF-8", json_reason(format, content_type.as_deref()))));
            }
            e.into_bytes()
        }),
        Text::Declared(encoding, label) => decode_charset(encoding, &raw.body).ok_or_else(|| {
            error = Some(StepError::InvalidResponse(format!(
                "the response body is not valid {label} text, the charset its Content-Type declares ({}); it is returned as body_base64",
                encoding.name()
            )));
            raw.body
        }),
    };
    let (body, body_base64, json) = match text {
        Ok(text) => {
            // An empty body (HEAD, 204, 304…) is no JSON document, whatever
            // the Content-Type says; only `json` requires one.
            let json = if parse && !text.is_empty() && (required || !text.trim().is_empty()) {
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => Some(v),
                    Err(err) => {
                        if required {
                            error = Some(StepError::InvalidResponse(format!(
                                "{} but is not valid JSON: {err}",
                                json_reason(format, content_type.as_deref())
                            )));
                        }
                        None
                    }
                }
            } else {
                if format == ResponseFormat::Json {
                    error = Some(StepError::InvalidResponse(
                        "response_format is json but the response body is empty".into(),
                    ));
                }
                None
            };
            (text, None, json)
        }
        Err(bytes) => (
            String::new(),
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            None,
        ),
    };
    let response = Response {
        status: raw.status,
        headers,
        body,
        body_base64,
        json: json.as_ref().map(serde_json::Value::to_string),
        content_type: None,
        body_sha256: None,
    };
    (response, json, error)
}

/// Why the body had to be JSON, for the error message.
fn json_reason(format: ResponseFormat, content_type: Option<&str>) -> String {
    match format {
        ResponseFormat::Json => "response_format is json, so the response must be JSON,".into(),
        _ => format!(
            "the response says it is JSON ({})",
            content_type.unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_auto(raw: RawResponse) -> (Response, Option<serde_json::Value>, Option<StepError>) {
        decode(raw, ResponseFormat::Auto)
    }

    fn raw(ct: Option<&str>, body: &[u8]) -> RawResponse {
        RawResponse {
            status: 200,
            headers: ct
                .map(|c| ("content-type".to_string(), c.as_bytes().to_vec()))
                .into_iter()
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn media_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            assert!(is_json_media_type(yes), "{yes}");
        }
        for no in ["text/plain", "application/jsonp", "text/json+x", ""] {
            assert!(!is_json_media_type(no), "{no}");
        }
    }

    #[test]
    fn json_text_and_binary() {
        let (r, v, e) = decode_auto(raw(Some("application/json"), br#"{ "id" : 7 }"#));
        assert_eq!(
            (r.json.as_deref(), v, e),
            (
                Some(r#"{"id":7}"#),
                Some(serde_json::json!({"id": 7})),
                None
            )
        );
        let (r, _, e) = decode_auto(raw(Some("text/plain"), b"{\"id\":7}"));
        assert_eq!((r.json, e, r.body.as_str()), (None, None, "{\"id\":7}"));
        let (r, _, _) = decode_auto(raw(None, b"[1,2]"));
        assert_eq!(r.json.as_deref(), Some("[1,2]"));
        let (r, _, e) = decode_auto(raw(None, b"hello"));
        assert_eq!((r.json, e), (None, None));
        let (r, _, e) = decode_auto(raw(Some("image/png"), &[0x89, b'P', 0xff, 0]));
        assert_eq!(
            (r.body.as_str(), r.body_base64.as_deref(), e),
            ("", Some("iVD/AA=="), None)
        );
    }

    #[test]
    fn empty_body_is_not_json() {
        let (r, v, e) = decode_auto(raw(Some("application/json"), b""));
        assert_eq!((r.json, v, e, r.body.as_str()), (None, None, None, ""));
    }

    #[test]
    fn declared_json_must_be_json() {
        let (r, _, e) = decode_auto(raw(Some("application/json"), b"{nope"));
        assert_eq!(r.body, "{nope");
        assert_eq!(e.map(|e| e.kind()), Some("invalid-response"));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let (_, _, e) = decode_auto(raw(Some("application/json"), deep.as_bytes()));
        let msg = e.expect("too deep").to_string();
        assert!(msg.contains("recursion limit"), "{msg}");
    }

    #[test]
    fn declared_charsets_are_decoded() {
        let cases: [(&str, &[u8], &str); 7] = [
            ("text/plain; charset=ISO-8859-1", b"caf\xe9", "café"),
            // WHATWG: iso-8859-1 is read as windows-1252, as browsers do.
            ("text/plain; charset=iso-8859-1", b"\x80 5", "€ 5"),
            (
                "text/plain; charset=\"windows-1252\"",
                b"\x93quoted\x94",
                "\u{201c}quoted\u{201d}",
            ),
            ("text/plain;charset=utf-16le", b"h\0i\0", "hi"),
            ("text/plain; charset=UTF-16BE", b"\0h\0i", "hi"),
            ("text/plain; charset=utf-16", b"\xfe\xff\0h\0i", "hi"),
            (
                "text/plain; charset=Shift_JIS",
                b"\x83\x65\x83\x58\x83\x67",
                "テスト",
            ),
        ];
        for (ct, body, text) in cases {
            let (r, _, e) = decode_auto(raw(Some(ct), body));
            assert_eq!(
                (r.body.as_str(), r.body_base64, e),
                (text, None, None),
                "{ct}"
            );
        }
        let (r, v, e) = decode_auto(raw(
            Some("application/json; charset=utf-16le"),
            b"{\0\"\0a\0\"\0:\x001\0}\0",
        ));
        assert_eq!(
            (r.json.as_deref(), v, e),
            (Some(r#"{"a":1}"#), Some(serde_json::json!({"a": 1})), None)
        );
    }

    #[test]
    fn bad_or_missing_charset_never_guesses() {
        let (r, _, e) = decode_auto(raw(Some("text/plain; charset=utf-16le"), b"odd"));
        assert_eq!(
            (r.body.as_str(), r.body_base64.as_deref()),
            ("", Some("b2Rk"))
        );
        let msg = e.expect("not UTF-16").to_string();
        assert!(msg.contains("not valid utf-16le text"), "{msg}");
        let (r, _, e) = decode_auto(raw(Some("text/plain; charset=shift_jis"), b"\x83"));
        assert_eq!(
            (r.body_base64.is_some(), e.map(|e| e.kind())),
            (true, Some("invalid-response"))
        );
        // Undeclared, or a label nobody knows: UTF-8 or base64, as before.
        for ct in [
            Some("text/plain"),
            Some("text/plain; charset=klingon"),
            None,
        ] {
            let (r, _, e) = decode_auto(raw(ct, b"caf\xe9"));
            assert_eq!(
                (r.body.as_str(), r.body_base64.as_deref(), e),
                ("", Some("Y2Fm6Q=="), None),
                "{ct:?}"
            );
        }
        let (r, _, _) = decode_auto(raw(Some("text/plain; charset=utf-8"), "café".as_bytes()));
        assert_eq!(r.body, "café");
    }

    #[test]
    fn non_utf8_header_is_latin1() {
        let r = RawResponse {
            status: 200,
            headers: vec![("x".into(), vec![b'c', 0xe9])],
            body: vec![],
        };
        assert_eq!(decode_auto(r).0.headers[0].value, "cé");
    }

    #[test]
    fn json_format_requires_json_whatever_the_type() {
        let json = |ct, body: &[u8]| decode(raw(ct, body), ResponseFormat::Json);
        let (r, v, e) = json(Some("text/plain"), b"{\"a\":1}");
        assert_eq!(
            (r.json.as_deref(), v, e),
            (Some("{\"a\":1}"), Some(serde_json::json!({"a": 1})), None)
        );
        for (ct, body, needle) in [
            (Some("text/html"), &b"<html>"[..], "not valid JSON"),
            (None, b"", "empty"),
            (Some("application/json"), b"\xff", "not valid UTF-8"),
        ] {
            let (_, _, e) = json(ct, body);
            let e = e.expect("error");
            assert_eq!(e.kind(), "invalid-response");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().contains("response_format is json"), "{e}");
        }
    }

    #[test]
    fn text_format_never_parses() {
        let (r, v, e) = decode(
            raw(Some("application/json"), b"{nope"),
            ResponseFormat::Text,
        );
        assert_eq!((r.body.as_str(), r.json, v, e), ("{nope", None, None, None));
        let (r, _, e) = decode(raw(None, &[0xff, 0]), ResponseFormat::Text);
        assert_eq!((r.body_base64.as_deref(), e), (Some("/wA="), None));
    }

    #[test]
    fn binary_format_is_base64_with_type_and_digest() {
        let (r, v, e) = decode(
            raw(Some("application/json"), b"{\"a\":1}"),
            ResponseFormat::Binary,
        );
        assert_eq!(
            (r.body.as_str(), r.body_base64.as_deref(), r.json, v, e),
            ("", Some("eyJhIjoxfQ=="), None, None, None)
        );
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        // sha256 of {"a":1}, as `printf '{"a":1}' | sha256sum` gives it.
        assert_eq!(
            r.body_sha256.as_deref(),
            Some("015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862")
        );
        let (r, _, _) = decode(raw(None, b""), ResponseFormat::Binary);
        assert_eq!((r.body_base64.as_deref(), r.content_type), (Some(""), None));
        assert_eq!(
            r.body_sha256.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }
}
