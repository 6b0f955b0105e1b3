//! Header name and value rules (RFC 9110 §5).

use crate::model::Problem;

/// Longest header value accepted (bytes).
pub const MAX_HEADER_VALUE_LEN: usize = 8192;

/// Headers the step or the host controls. They describe the connection or the
/// framing of the message (RFC 9110 §7.6.1, RFC 9112 §6), which the host's HTTP
/// stack sets itself; wasmtime refuses the same list (`DEFAULT_FORBIDDEN_HEADERS`)
/// plus `content-length`, which the step derives from the body.
pub const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `name` is a valid field name (a `token`, RFC 9110 §5.1).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

/// Problems of one configured header; `path` is e.g. `headers[2]`.
pub fn check_header(path: &str, name: &str, value: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if name.is_empty() {
        problems.push(Problem::new(format!("{path}.key"), "header name is empty"));
    } else if !is_valid_name(name) {
        problems.push(Problem::new(
            format!("{path}.key"),
            format!("{name:?} is not a valid header name; use letters, digits and - (no spaces or separators)"),
        ));
    } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        problems.push(Problem::new(
            format!("{path}.key"),
            format!("{name} is set by the step itself and cannot be configured"),
        ));
    }
    problems.extend(check_value(&format!("{path}.value"), value));
    problems
}

/// Problems of one header value. CR, LF and NUL are refused outright: they would
/// split the header section (request smuggling, RFC 9110 §5.5).
pub fn check_value(path: &str, value: &str) -> Option<Problem> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Some(Problem::new(
            path,
            "header values must not contain CR, LF or NUL characters",
        ))
    } else if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        Some(Problem::new(
            path,
            "header values must not contain control characters",
        ))
    } else if value.len() > MAX_HEADER_VALUE_LEN {
        Some(Problem::new(
            path,
            format!(
                "is {} bytes long; at most {MAX_HEADER_VALUE_LEN} are allowed",
                value.len()
            ),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("X-Request-Id"));
        assert!(is_valid_name("a!#$%&'*+-.^_`|~9"));
        for bad in ["", "Bad Name", "a:b", "ü", "a\r"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert_eq!(check_header("h", "Content-Length", "1")[0].path, "h.key");
        assert_eq!(check_header("h", "HOST", "x")[0].path, "h.key");
    }

    #[test]
    fn values() {
        assert!(check_value("v", "Bearer abc\tdef").is_none());
        assert!(check_value("v", "ünïcode is sent as UTF-8").is_none());
        for bad in ["a\rb", "a\nb", "a\0b", "a\x01b", "a\x7fb"] {
            assert!(check_value("v", bad).is_some(), "{bad:?}");
        }
        assert!(check_value("v", &"x".repeat(MAX_HEADER_VALUE_LEN + 1)).is_some());
    }
}
