//! The one place the step reads a host's error *text*. wasmtime 48 attaches
//! no `wasi:http` error-code to a failed response-body stream
//! (`http-error-code` returns none), so the `Display` text of its
//! `wasmtime_wasi_http::Error` is all the guest gets. Each text matched here
//! has its own test, with the exact string wasmtime 48.0.8 writes, so an
//! upgrade that rewords one fails a test instead of reclassifying silently.

/// What a response-body stream failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// The body ended before its announced length (RFC 9112 §8).
    Incomplete,
    /// The host's own cap on response bodies stopped it.
    TooLarge,
    /// The host's between-bytes (or read) timeout fired.
    Timeout,
    /// The connection was closed or reset.
    Broken,
    /// Anything else.
    Other,
}

/// Classifies the text of a body stream error.
pub fn body_failure(detail: &str) -> BodyFailure {
    let d = detail.to_ascii_lowercase();
    if d.contains("incomplete http response") {
        BodyFailure::Incomplete
    } else if d.contains("http response body size exceeds limit") {
        BodyFailure::TooLarge
    } else if d.contains("connection read timeout") {
        BodyFailure::Timeout
    } else if d.contains("connection terminated") {
        BodyFailure::Broken
    } else {
        BodyFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The texts of wasmtime-wasi-http 48.0.8's `Error` Display (src/error.rs).
    #[test]
    fn incomplete() {
        assert_eq!(
            body_failure("incomplete HTTP response"),
            BodyFailure::Incomplete
        );
    }

    #[test]
    fn too_large() {
        assert_eq!(
            body_failure("HTTP response body size exceeds limit: 1048576 bytes"),
            BodyFailure::TooLarge
        );
        assert_eq!(
            body_failure("HTTP response body size exceeds limit"),
            BodyFailure::TooLarge
        );
    }

    #[test]
    fn timeout() {
        assert_eq!(
            body_failure("connection read timeout"),
            BodyFailure::Timeout
        );
    }

    #[test]
    fn broken() {
        assert_eq!(body_failure("connection terminated"), BodyFailure::Broken);
    }

    #[test]
    fn anything_else() {
        assert_eq!(body_failure("TLS protocol error"), BodyFailure::Other);
    }
}
