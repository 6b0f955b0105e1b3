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
pub fn read_body(request: IncomingRequest, cap: usize, timeout_ms: u64) -> Result<Vec<u8>, BodyError> {
    // A declared length over the cap is refused before anything is read.
    let declared = request
        .headers()
        .get(&"content-length".to_string())
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
    if let Some(len) = declared.filter(|&len| len > cap) {
        return Err(BodyError::TooLarge(len));
    }
    let body = request.consume().map_err(|()| BodyError::Broken("the body was already taken".into()))?;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    {
        let stream = body.stream().map_err(|()| BodyError::Broken("no body stream".into()))?;
        let ready = stream.subscribe();
        let deadline = monotonic_clock::subscribe_duration(timeout_ms.saturating_mul(1_000_000));
        loop {
            match stream.read(64 * 1024) {
                Ok(chunk) if chunk.is_empty() => {
                    if !poll(&[&ready, &deadline]).contains(&0) {
                        return Err(BodyError::Timeout);
                    }
                }
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > cap {
                        return Err(BodyError::TooLarge(bytes.len()));
                    }
                    if deadline.ready() {
                        return Err(BodyError::Timeout);
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(BodyError::Broken(e.to_debug_string())),
            }
        }
    }
    Ok(bytes)
}
