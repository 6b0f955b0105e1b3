//! Turns the bytes of a response into the step's [`Response`].

use crate::model::{KeyValue, Response, StepError};
use base64::Engine as _;

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
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Builds the response. The body becomes text when it is UTF-8, else base64.
/// JSON is parsed when the Content-Type says JSON — then invalid JSON is an
/// `invalid-response` error, returned next to the response — or, without a
/// Content-Type, when the body happens to be JSON. serde_json refuses nesting
/// deeper than 128 levels with an error, so a hostile body cannot overflow the
/// stack.
pub fn decode(raw: RawResponse) -> (Response, Option<serde_json::Value>, Option<StepError>) {
    let headers: Vec<KeyValue> = raw
        .headers
        .iter()
        .map(|(name, value)| KeyValue::new(name.clone(), decode_header_value(value)))
        .collect();
    let content_type = headers
        .iter()
        .find(|kv| kv.key.eq_ignore_ascii_case("content-type"))
        .map(|kv| kv.value.clone());
    let declared_json = content_type.as_deref().is_some_and(is_json_media_type);
    let mut error = None;
    let (body, body_base64, json) = match String::from_utf8(raw.body) {
        Ok(text) => {
            let json = if declared_json || (content_type.is_none() && !text.trim().is_empty()) {
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => Some(v),
                    Err(err) => {
                        if declared_json {
                            error = Some(StepError::InvalidResponse(format!(
                                "the response says it is JSON ({}) but is not valid JSON: {err}",
                                content_type.as_deref().unwrap_or_default()
                            )));
                        }
                        None
                    }
                }
            } else {
                None
            };
            (text, None, json)
        }
        Err(err) => {
            let bytes = err.into_bytes();
            if declared_json {
                error = Some(StepError::InvalidResponse(
                    "the response says it is JSON but is not valid UTF-8".into(),
                ));
            }
            (String::new(), Some(base64::engine::general_purpose::STANDARD.encode(bytes)), None)
        }
    };
    let response = Response {
        status: raw.status,
        headers,
        body,
        body_base64,
        json: json.as_ref().map(serde_json::Value::to_string),
    };
    (response, json, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ct: Option<&str>, body: &[u8]) -> RawResponse {
        RawResponse {
            status: 200,
            headers: ct.map(|c| ("content-type".to_string(), c.as_bytes().to_vec())).into_iter().collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn media_types() {
        for yes in ["application/json", "Application/JSON; charset=utf-8", "application/problem+json"] {
            assert!(is_json_media_type(yes), "{yes}");
        }
        for no in ["text/plain", "application/jsonp", "text/json+x", ""] {
            assert!(!is_json_media_type(no), "{no}");
        }
    }

    #[test]
    fn json_text_and_binary() {
        let (r, v, e) = decode(raw(Some("application/json"), br#"{ "id" : 7 }"#));
        assert_eq!((r.json.as_deref(), v, e), (Some(r#"{"id":7}"#), Some(serde_json::json!({"id": 7})), None));
        let (r, _, e) = decode(raw(Some("text/plain"), b"{\"id\":7}"));
        assert_eq!((r.json, e, r.body.as_str()), (None, None, "{\"id\":7}"));
        let (r, _, _) = decode(raw(None, b"[1,2]"));
        assert_eq!(r.json.as_deref(), Some("[1,2]"));
        let (r, _, e) = decode(raw(None, b"hello"));
        assert_eq!((r.json, e), (None, None));
        let (r, _, e) = decode(raw(Some("image/png"), &[0x89, b'P', 0xff, 0]));
        assert_eq!((r.body.as_str(), r.body_base64.as_deref(), e), ("", Some("iVD/AA=="), None));
    }

    #[test]
    fn declared_json_must_be_json() {
        let (r, _, e) = decode(raw(Some("application/json"), b"{nope"));
        assert_eq!(r.body, "{nope");
        assert_eq!(e.map(|e| e.kind()), Some("invalid-response"));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let (_, _, e) = decode(raw(Some("application/json"), deep.as_bytes()));
        let msg = e.expect("too deep").to_string();
        assert!(msg.contains("recursion limit"), "{msg}");
    }

    #[test]
    fn non_utf8_header_is_latin1() {
        let r = RawResponse { status: 200, headers: vec![("x".into(), vec![b'c', 0xe9])], body: vec![] };
        assert_eq!(decode(r).0.headers[0].value, "cé");
    }
}
