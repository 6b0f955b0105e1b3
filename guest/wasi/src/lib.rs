//! The step's effects over WASI 0.2, shared by the two components built from
//! this workspace: the step (`guest/`, world `https-step`) and the HTTP
//! service (`guest/service/`, world `https-step-service`). This is the only
//! crate that makes the step's outbound requests (`wasi:http`), and it
//! sends one prepared request and reads the response under the attempt's
//! deadline and size cap; where OAuth 2.0 tokens are kept is each
//! component's own choice ([`TokenStore`]).
//!
//! # How to use
//! ```no_run
//! # fn demo(config: https_step_core::StepConfig, store: impl https_step_wasi::TokenStore) {
//! let result = https_step_core::run(config, "{}".into(), &mut https_step_wasi::Wasi::new(store));
//! # }
//! ```
//!
//! The deadline is enforced here, not only by the host: every wait (for the
//! body to be writable, for the response, for the next body chunk) polls the
//! operation's pollable together with a `monotonic-clock` timer for the
//! attempt's deadline. The same deadline is also passed to the host as
//! connect / first-byte / between-bytes timeouts so that it can give up early.
//! Only interfaces of the `wasi:http/proxy` world are used, so a component
//! built on this crate can run wherever that world runs.

use https_step_core::content::{BodyDecoder, Coding, too_large};
use https_step_core::{
    AttemptLimits, Effects, Method, PreparedRequest, RawResponse, SendError, StepError,
};
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Largest read per call of the response body stream.
const READ_CHUNK: u64 = 64 * 1024;

/// Where a component keeps OAuth 2.0 tokens between runs (the operations of
/// [`Effects::store_get`] and its siblings).
pub trait TokenStore {
    /// The value at `key`.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Sets `key`.
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Deletes `key` (no error when it is absent).
    fn delete(&mut self, key: &str) -> Result<(), String>;
    /// Adds 1 to the counter at `key` (absent counts as 0); the new value.
    fn increment(&mut self, key: &str) -> Result<u64, String>;
}

/// [`Effects`] over WASI, with tokens kept in `S`.
pub struct Wasi<S> {
    store: S,
}

impl<S: TokenStore> Wasi<S> {
    /// Effects that keep tokens in `store`.
    pub fn new(store: S) -> Self {
        Wasi { store }
    }
}

/// Most bytes one `blocking-write-and-flush` takes (wasi:io 0.2).
const WRITE_MAX: usize = 4096;

impl<S: TokenStore> Effects for Wasi<S> {
    fn send(
        &mut self,
        request: &PreparedRequest,
        limits: AttemptLimits,
    ) -> Result<RawResponse, SendError> {
        let deadline = Deadline::after_ms(limits.timeout_ms);
        send(request, limits, &deadline)
    }

    fn now_ms(&mut self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }

    fn unix_ms(&mut self) -> u64 {
        let now = wall_clock::now();
        now.seconds.saturating_mul(1000) + u64::from(now.nanoseconds / 1_000_000)
    }

    fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        wasip2::random::random::get_random_bytes(len as u64)
    }

    fn sleep_ms(&mut self, ms: u64) {
        // Blocks on a monotonic-clock pollable: the host parks the guest, no busy loop.
        monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    }

    fn progress(&mut self, line: &str) {
        // Straight to `wasi:cli/stderr`, which the host captures and
        // forwards: the line and its newline in as few writes as the stream
        // allows (`eprintln!` writes each formatted piece separately, and
        // goes through the libc of the target, if it has one).
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        let stderr = wasip2::cli::stderr::get_stderr();
        for chunk in text.as_bytes().chunks(WRITE_MAX) {
            if stderr.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }

    fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.store.get(key)
    }

    fn store_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.store.set(key, value)
    }

    fn store_delete(&mut self, key: &str) -> Result<(), String> {
        self.store.delete(key)
    }

    fn store_increment(&mut self, key: &str) -> Result<u64, String> {
        self.store.increment(key)
    }
}

/// The end of an attempt on the monotonic clock.
struct Deadline {
    started_ns: u64,
    at_ns: u64,
    timeout_ms: u32,
    /// The clock pollable of the deadline, made on the first wait and used
    /// by every later one (each is a host resource and a host timer).
    timer: std::cell::OnceCell<Pollable>,
}

/// A host timeout that may end an attempt before its `timeout_ms`: the
/// host passes each of the step's timeouts on capped by its own limits for
/// the tenant (this project's host: the policy settings named here).
#[derive(Clone, Copy)]
enum HostLimit {
    Connect,
    FirstByte,
    BetweenBytes,
}

impl HostLimit {
    fn describe(self) -> &'static str {
        match self {
            HostLimit::Connect => "the host's connect timeout (connect_timeout_ms)",
            HostLimit::FirstByte => "the host's first-byte timeout (first_byte_timeout_ms)",
            HostLimit::BetweenBytes => {
                "the host's between-bytes timeout (between_bytes_timeout_ms)"
            }
        }
    }
}

/// Time the attempt's own deadline may still have when the host reports its
/// own timeout of the same length: the host's timer starts a little after
/// the guest computed what to ask for, so it fires a little after the
/// deadline, never before it.
const SAME_DEADLINE_NS: u64 = 5_000_000;

impl Deadline {
    fn after_ms(ms: u32) -> Self {
        let now = monotonic_clock::now();
        Deadline {
            started_ns: now,
            at_ns: now.saturating_add(u64::from(ms) * 1_000_000),
            timeout_ms: ms,
            timer: std::cell::OnceCell::new(),
        }
    }

    fn remaining_ns(&self) -> u64 {
        self.at_ns.saturating_sub(monotonic_clock::now())
    }

    /// The attempt's own deadline came before `what`.
    fn timeout(&self, what: &str) -> StepError {
        StepError::Timeout(format!("{what} within timeout_ms ({} ms)", self.timeout_ms))
    }

    /// The host reported a timeout of kind `limit` before `what`: its own
    /// limit, shorter than what the step asked for, when the attempt's
    /// deadline has not come yet (then the message names the host's limit
    /// and how long it allowed, not `timeout_ms`); else the deadline.
    fn host_timeout(&self, what: &str, limit: HostLimit) -> StepError {
        let now = monotonic_clock::now();
        if self.at_ns.saturating_sub(now) <= SAME_DEADLINE_NS {
            return self.timeout(what);
        }
        let after_ms = now.saturating_sub(self.started_ns) / 1_000_000;
        StepError::Timeout(format!(
            "{what}: {} ended the attempt after {after_ms} ms, before its timeout_ms ({} ms); the host sets that limit for this tenant",
            limit.describe(),
            self.timeout_ms
        ))
    }

    /// Waits until `pollable` is ready; false when the deadline came first.
    fn wait(&self, pollable: &Pollable) -> bool {
        let timer = self
            .timer
            .get_or_init(|| monotonic_clock::subscribe_instant(self.at_ns));
        let ready = poll(&[pollable, timer]);
        ready.contains(&0)
    }
}

/// A failure of a request that surely never reached the server.
fn unsent(error: StepError) -> SendError {
    SendError {
        error,
        maybe_sent: false,
        budget_spent: false,
    }
}

/// A failure of a request that may have reached the server.
fn sent(error: StepError) -> SendError {
    SendError {
        error,
        maybe_sent: true,
        budget_spent: false,
    }
}

fn send(
    request: &PreparedRequest,
    limits: AttemptLimits,
    deadline: &Deadline,
) -> Result<RawResponse, SendError> {
    let internal = |what: &str| unsent(StepError::Internal(format!("wasi:http refused {what}")));
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.as_bytes().to_vec()))
        .chain(
            // Every body the step sends has a known length: Content-Length,
            // never chunked coding, which some servers refuse (RFC 9112 §6.3).
            // No body: no Content-Length either, unless the method
            // anticipates content (RFC 9110 §8.6) — then `0`.
            (request.method.anticipates_body() || !request.body.is_empty()).then(|| {
                (
                    "Content-Length".to_string(),
                    request.body.len().to_string().into_bytes(),
                )
            }),
        )
        .collect();
    let headers = Fields::from_list(&entries).map_err(|e| {
        unsent(StepError::InvalidConfig(vec![
            https_step_core::Problem::new("headers", format!("refused by the host: {e:?}")),
        ]))
    })?;
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
            Method::Head => WasiMethod::Head,
            Method::Options => WasiMethod::Options,
        })
        .map_err(|()| internal("the method"))?;
    let scheme = if request.url.scheme() == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| internal("the scheme"))?;
    outgoing
        .set_authority(Some(&request.authority()))
        .map_err(|()| internal("the authority"))?;
    outgoing
        .set_path_with_query(Some(&request.path_with_query()))
        .map_err(|()| internal("the path"))?;
    // Without a body resource the host sends the request with no body at
    // all: neither Content-Length nor Transfer-Encoding for an empty one.
    let body = if request.body.is_empty() {
        None
    } else {
        Some(outgoing.body().map_err(|()| internal("the body"))?)
    };

    let options = RequestOptions::new();
    let remaining = deadline.remaining_ns();
    // Setting an option fails only when the host does not support it; the
    // guest-side deadline still holds then.
    let _ = options.set_connect_timeout(Some(remaining));
    let _ = options.set_first_byte_timeout(Some(remaining));
    let _ = options.set_between_bytes_timeout(Some(remaining));

    let future = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|c| classify(map_error_code(&c, deadline), &c))?;
    // A failed body write is reported only when the response future has no
    // better explanation: when the host refuses or times out the request, it
    // closes the body stream, and the future then carries the real reason.
    let write_result = body.map_or(Ok(()), |body| write_body(body, &request.body, deadline));

    let pollable = future.subscribe();
    if !deadline.wait(&pollable) {
        return Err(sent(
            write_result
                .err()
                .unwrap_or_else(|| deadline.timeout("no response")),
        ));
    }
    drop(pollable);
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(classify(map_error_code(&code, deadline), &code)),
        Some(Err(())) => return Err(internal("to hand over the response twice")),
        None => return Err(sent(deadline.timeout("no response"))),
    };
    let status = response.status();
    let headers = response.headers().entries();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    let coding = if limits.decompress {
        Coding::of(header("content-encoding"))
    } else {
        None
    };
    // A HEAD response's Content-Length describes a body that is not sent
    // (RFC 9110 §9.3.2); an encoded body's says nothing of its decoded size.
    let declared_len = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared_len.filter(|&len| {
        len > limits.max_response_bytes && coding.is_none() && request.method != Method::Head
    }) {
        return Err(sent(too_large(
            limits.max_response_bytes,
            &format!("it declares {len} bytes"),
        )));
    }
    let incoming = response
        .consume()
        .map_err(|()| internal("the response body"))?;
    let mut decoder = BodyDecoder::new(coding, limits.max_response_bytes);
    if let Some(len) = declared_len.filter(|_| request.method != Method::Head) {
        decoder.expect(len);
    }
    let body = read_body(incoming, decoder, limits, deadline).map_err(sent)?;
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// Classifies a response-body failure from the host's description, the one
/// thing wasmtime 48 gives for it (see [`https_step_core::host_text`]).
fn body_error(detail: &str, limits: AttemptLimits, deadline: &Deadline) -> StepError {
    use https_step_core::host_text::{BodyFailure, body_failure};
    match body_failure(detail) {
        BodyFailure::Incomplete => StepError::Protocol(format!(
            "the response body ended before its announced length ({detail})"
        )),
        BodyFailure::TooLarge => {
            too_large(limits.max_response_bytes, "the host's limit stopped it")
        }
        BodyFailure::Timeout => {
            deadline.host_timeout("the response body did not arrive", HostLimit::BetweenBytes)
        }
        BodyFailure::Broken => StepError::Connection(format!(
            "the connection broke while the response body was read ({detail})"
        )),
        BodyFailure::Other => {
            StepError::Connection(format!("reading the response body failed: {detail}"))
        }
    }
}

/// Writes the body without blocking past the deadline, then finishes it.
fn write_body(body: OutgoingBody, bytes: &[u8], deadline: &Deadline) -> Result<(), StepError> {
    if !bytes.is_empty() {
        let stream = body
            .write()
            .map_err(|()| StepError::Internal("wasi:http gave no body stream".into()))?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = writable(&stream, deadline, false)?;
            // As much as `check-write` grants (wasi:io 0.2 `output-stream`).
            let (chunk, tail) =
                rest.split_at(usize::try_from(n).unwrap_or(usize::MAX).min(rest.len()));
            stream.write(chunk).map_err(write_error)?;
            rest = tail;
        }
        flushed(&stream, deadline)?;
        // The stream must be dropped before `finish` (wasi:http 0.2 resource rules).
    }
    OutgoingBody::finish(body, None).map_err(|c| map_error_code(&c, deadline))
}

/// Flushes `stream`, every byte of the body written, and waits until the
/// host took them. A stream the host has closed by then is no failure: it
/// knows the body's length (`Content-Length`, RFC 9112 §6.2) and lets go of
/// the stream once it has read that many bytes, which can happen before this
/// last look.
fn flushed(stream: &OutputStream, deadline: &Deadline) -> Result<(), StepError> {
    match stream.flush() {
        Err(StreamError::Closed) => Ok(()),
        Err(e) => Err(write_error(e)),
        Ok(()) => writable(stream, deadline, true).map(drop),
    }
}

/// Waits until `stream` accepts bytes; returns how many (0 when `written`,
/// the whole body handed over, and the host has closed the stream).
fn writable(stream: &OutputStream, deadline: &Deadline, written: bool) -> Result<u64, StepError> {
    loop {
        match stream.check_write() {
            Ok(0) => {
                if !deadline.wait(&stream.subscribe()) {
                    return Err(deadline.timeout("the request body was not accepted"));
                }
            }
            Ok(n) => return Ok(n),
            Err(StreamError::Closed) if written => return Ok(0),
            Err(e) => return Err(write_error(e)),
        }
    }
}

fn write_error(e: StreamError) -> StepError {
    match e {
        StreamError::Closed => {
            StepError::Connection("the connection closed while sending the request body".into())
        }
        StreamError::LastOperationFailed(err) => StepError::Connection(format!(
            "sending the request body failed: {}",
            err.to_debug_string()
        )),
    }
}

/// Reads the body to its end through `body`, which decodes it and keeps it
/// under the cap as the chunks arrive.
fn read_body(
    incoming: IncomingBody,
    mut body: BodyDecoder,
    limits: AttemptLimits,
    deadline: &Deadline,
) -> Result<Vec<u8>, StepError> {
    {
        let stream: InputStream = incoming
            .stream()
            .map_err(|()| StepError::Internal("wasi:http gave no response stream".into()))?;
        let pollable = stream.subscribe();
        loop {
            match stream.read(READ_CHUNK) {
                Ok(chunk) if chunk.is_empty() => {
                    if !deadline.wait(&pollable) {
                        return Err(deadline.timeout("the response body did not arrive"));
                    }
                }
                Ok(_) if deadline.remaining_ns() == 0 => {
                    // A server that streams without pause never makes us wait.
                    return Err(deadline.timeout("the response body did not end"));
                }
                // Checked while streaming: nothing past the cap is kept.
                Ok(chunk) => body.push(&chunk)?,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(match wasip2::http::types::http_error_code(&err) {
                        Some(code) => map_error_code(&code, deadline),
                        None => body_error(&err.to_debug_string(), limits, deadline),
                    });
                }
            }
        }
    }
    // Trailers are not used; dropping the future is enough.
    drop(IncomingBody::finish(incoming));
    body.finish()
}

/// Whether the request behind `code` may have reached the server: only
/// failures before or during connection setup say surely not.
fn classify(error: StepError, code: &ErrorCode) -> SendError {
    use ErrorCode as C;
    let before_sending = matches!(
        code,
        C::HttpRequestDenied
            | C::DestinationIpProhibited
            | C::DnsTimeout
            | C::DnsError(_)
            | C::DestinationNotFound
            | C::DestinationUnavailable
            | C::DestinationIpUnroutable
            | C::ConnectionRefused
            | C::ConnectionTimeout
            | C::ConnectionLimitReached
            | C::TlsProtocolError
            | C::TlsCertificateError
            | C::TlsAlertReceived(_)
            | C::HttpRequestBodySize(_)
    );
    SendError {
        error,
        maybe_sent: !before_sending,
        // The one use hosts make of this code: a budget of requests per run
        // (README "Tenant sandbox", `max_requests_per_run`).
        budget_spent: matches!(code, C::ConnectionLimitReached),
    }
}

/// Maps a `wasi:http` error to the step's error, in words a workflow author
/// can act on.
fn map_error_code(code: &ErrorCode, deadline: &Deadline) -> StepError {
    use ErrorCode as C;
    match code {
        C::HttpRequestDenied => StepError::Denied(
            "the host's outbound policy does not allow this destination (HTTP-request-denied); ask the platform to allow the origin".into(),
        ),
        C::DestinationIpProhibited => StepError::Denied(
            "the destination resolves to an address the host's policy prohibits (destination-IP-prohibited), such as a private or loopback network".into(),
        ),
        C::DnsTimeout => deadline.host_timeout("the DNS lookup did not finish", HostLimit::Connect),
        C::DnsError(p) => StepError::Connection(format!(
            "the DNS lookup failed{}",
            p.rcode.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
        )),
        C::DestinationNotFound => StepError::Connection("the host name was not found".into()),
        C::DestinationUnavailable | C::DestinationIpUnroutable => {
            StepError::Connection("the destination is unreachable".into())
        }
        C::ConnectionRefused => StepError::Connection("the connection was refused".into()),
        C::ConnectionTerminated => StepError::Connection("the connection was closed by the server".into()),
        // Worded again by the run, which counts its requests.
        C::ConnectionLimitReached => {
            StepError::Denied("the host allows this run no more requests".into())
        }
        C::ConnectionTimeout => {
            deadline.host_timeout("no connection was established", HostLimit::Connect)
        }
        C::ConnectionReadTimeout | C::HttpResponseTimeout => {
            deadline.host_timeout("no response", HostLimit::FirstByte)
        }
        C::ConnectionWriteTimeout => deadline.timeout("the request could not be sent"),
        C::TlsProtocolError => StepError::Tls("the TLS handshake failed".into()),
        C::TlsCertificateError => StepError::Tls("the server's TLS certificate is not trusted or not valid for this host".into()),
        // wasi:http 0.2 gives a description only with `tls-alert-received`;
        // this project's host reports its own certificate verdicts there too
        // (with the alert it sent), so the message is the host's reason.
        C::TlsAlertReceived(a) => StepError::Tls(match (&a.alert_message, a.alert_id) {
            (Some(m), _) => format!("the TLS handshake failed: {m}"),
            (None, Some(id)) => format!("the TLS handshake failed with alert {id}"),
            (None, None) => "the TLS handshake failed with an alert".into(),
        }),
        C::HttpResponseBodySize(_) => StepError::ResponseTooLarge("the response body exceeds the host's limit".into()),
        // The host checks the announced Content-Length before it connects.
        C::HttpRequestBodySize(size) => StepError::Denied(format!(
            "the request body{} is larger than the host allows for this tenant (max_request_body_bytes); nothing was sent",
            size.map(|n| format!(" ({n} bytes)")).unwrap_or_default()
        )),
        C::HttpResponseHeaderSectionSize(_) | C::HttpResponseHeaderSize(_) => {
            StepError::InvalidResponse("the response headers exceed the size limit".into())
        }
        C::HttpResponseIncomplete => StepError::Protocol("the response ended before it was complete".into()),
        C::InternalError(m) => StepError::Connection(format!(
            "the request failed in the host{}",
            m.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
        )),
        other => StepError::Protocol(format!("the HTTP exchange failed: {other:?}")),
    }
}
