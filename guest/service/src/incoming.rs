//! The incoming side: the one module that reads the request, through waki's
//! `wasi:http` bindings. waki's own `Request::body` reads with
//! `blocking-read`, which waits as long as the client likes; here the body
//! is read under a deadline (its pollable and a `monotonic-clock` timer
//! polled together) and a size cap, so a slow or huge request cannot hold
//! the instance.

use waki::bindings::wasi::clocks::monotonic_clock;
use waki::bindings::wasi::http::types::IncomingRequest;
use waki::bindings::wasi::io::poll::poll;
use waki::bindings::wasi::io::streams::StreamError;

/// How many bytes past the cap an over-cap body is read and dropped before
/// the 413 goes out. Most clients write their whole body before they read
/// the answer; if the server stops reading and closes, such a client sees a
/// reset or a broken pipe instead of the 413 (RFC 9112 §9.6 asks servers to
/// close gracefully for this reason). Beyond this much the answer is sent at
/// once: a client pushing more than 8 MiB too much does not get to hold the
/// instance for it.
const DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// Why a request body could not be had.
pub enum BodyError {
    /// It is at least this many bytes, over the cap.
    TooLarge(usize),
    /// It did not arrive in time.
    Timeout,
    /// The stream failed.
    Broken(String),
}

/// The request's body: at most `cap` bytes, within `timeout_ms`.
pub fn read_body(
    request: IncomingRequest,
    cap: usize,
    timeout_ms: u64,
) -> Result<Vec<u8>, BodyError> {
    let declared = request
        .headers()
        .get(&"content-length".to_string())
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
    // A declared length too far over the cap to be drained is refused before
    // anything is read.
    if let Some(len) = declared.filter(|&len| len > cap.saturating_add(DRAIN_BYTES)) {
        return Err(BodyError::TooLarge(len));
    }
    let body = request
        .consume()
        .map_err(|()| BodyError::Broken("the body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| BodyError::Broken("no body stream".into()))?;
    let ready = stream.subscribe();
    let deadline = monotonic_clock::subscribe_duration(timeout_ms.saturating_mul(1_000_000));
    // Kept only while within the cap; counted on past it.
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(cap));
    let mut seen = 0usize;
    let outcome = loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => {
                if !poll(&[&ready, &deadline]).contains(&0) {
                    break Err(BodyError::Timeout);
                }
            }
            Ok(chunk) => {
                seen = seen.saturating_add(chunk.len());
                if seen <= cap {
                    bytes.extend_from_slice(&chunk);
                } else if seen > cap.saturating_add(DRAIN_BYTES) {
                    break Err(BodyError::TooLarge(seen));
                }
                if deadline.ready() {
                    break Err(BodyError::Timeout);
                }
            }
            Err(StreamError::Closed) if seen > cap => break Err(BodyError::TooLarge(seen)),
            Err(StreamError::Closed) => break Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                break Err(BodyError::Broken(e.to_debug_string()));
            }
        }
    };
    // A body drained past the cap but cut off by the deadline is still too
    // large: that is the answer the client can act on.
    match outcome {
        Err(BodyError::Timeout) if seen > cap => Err(BodyError::TooLarge(seen)),
        other => other,
    }
}
