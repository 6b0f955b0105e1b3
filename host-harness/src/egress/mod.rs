//! The single egress choke point: every `wasi:http` request of a guest comes
//! through [`RunEgress::send_request`], which applies the tenant's
//! [`policy::EgressPolicy`], resolves the name itself, checks every
//! address, and dials only a checked address (so a DNS answer cannot change
//! between the check and the connection). wasmtime's `default_send_request`
//! is not used: it resolves on its own, applies no address policy and trusts
//! only webpki roots.
//!
//! What is enforced for whom is an [`Outbound`] and its [`NetworkLimits`],
//! built by the tenant ([`crate::tenant`]) and handed to each run's hooks;
//! this module knows nothing else of tenants.

pub mod limits;
mod outbound;
pub mod policy;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod tls;

use crate::progress::ProgressFn;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
pub(crate) use outbound::{DEFAULT_MAX_BACKOFF, NetworkLimits, Outbound, OutboundBuilder};
use policy::{Admission, Denial, Scheme, parse_host};
use pool::{Connection, Lease, PoolKey};
use proxy::{ConnectAnswer, MAX_CONNECT_HEAD, Proxy, connect_answer};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The `WasiHttpHooks` of one run.
pub(crate) struct RunEgress {
    outbound: Arc<Outbound>,
    limits: NetworkLimits,
    /// The tenant's id, for logs.
    tenant: Arc<str>,
    events: ProgressFn,
    /// Requests this run has made so far.
    requests: u32,
}

impl RunEgress {
    /// Hooks for a run of tenant `tenant` through `outbound` within `limits`,
    /// reporting host-side events to `events`.
    pub(crate) fn new(
        outbound: Arc<Outbound>,
        limits: NetworkLimits,
        tenant: Arc<str>,
        events: ProgressFn,
    ) -> Self {
        RunEgress {
            outbound,
            limits,
            tenant,
            events,
            requests: 0,
        }
    }

    /// The same hooks for the tenant's next run: a new event sink and a
    /// fresh `max_requests_per_run` budget.
    pub(crate) fn next_run(&mut self, events: ProgressFn) {
        self.events = events;
        self.requests = 0;
    }
}

type SendFuture = Box<dyn Future<Output = Result<Exchange, Error>> + Send>;

impl WasiHttpHooks for RunEgress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let (outbound, limits) = (self.outbound.clone(), self.limits);
        let tenant = self.tenant.clone();
        let events = self.events.clone();
        self.requests = self.requests.saturating_add(1);
        let over_budget = self.requests > limits.max_requests_per_run;
        Box::new(async move {
            if over_budget {
                events(&format!(
                    "egress refused: this run already made {} requests (limit max_requests_per_run)",
                    limits.max_requests_per_run
                ));
                return Err(Error::ConnectionLimitReached);
            }
            // The URI is logged without its query, which may carry values
            // from the workflow context.
            let span = tracing::debug_span!(
                "egress",
                tenant = %tenant,
                scheme = ?request.uri().scheme_str(),
                authority = ?request.uri().authority().map(ToString::to_string),
                path = request.uri().path()
            );
            let route = Route {
                out: &outbound,
                limits: &limits,
                tenant: &tenant,
                events: &events,
            };
            let result = tracing::Instrument::instrument(send(route, request, options), span).await;
            match &result {
                Err(Refusal::Limited { retry_after, held }) => {
                    let marker = held.marker();
                    let seconds = retry_after_seconds(*retry_after);
                    tracing::info!(tenant = %tenant, %marker, seconds, "egress answered locally");
                    events(&format!(
                        "egress: held back by the tenant's limits ({marker}); answered 429, retry after {seconds} s"
                    ));
                    return Ok(local_answer(seconds, held));
                }
                Err(Refusal::Policy(denial)) => {
                    tracing::warn!(tenant = %tenant, %denial, "egress refused");
                    events(&format!("egress refused: {denial}"));
                }
                Err(Refusal::Proxy { message, .. }) => {
                    tracing::warn!(tenant = %tenant, %message, "egress through the proxy failed");
                    events(&format!("egress through the proxy failed: {message}"));
                }
                Err(Refusal::HostTimeout {
                    what,
                    setting,
                    limit,
                    ..
                }) => {
                    let ms = limit.as_millis();
                    tracing::info!(tenant = %tenant, setting, ms, "egress timed out at the tenant's limit");
                    events(&format!(
                        "egress: {what} within the tenant's {setting} ({ms} ms)"
                    ));
                }
                Err(Refusal::Resolver { host, message }) => {
                    tracing::info!(tenant = %tenant, %host, %message, "name resolution failed");
                    events(&format!("egress: {host} could not be resolved: {message}"));
                }
                _ => {}
            }
            result.map_err(Refusal::into_error)
        })
    }
}

/// What one request is sent under: the tenant's egress, the run's limits,
/// the tenant's id and the run's events.
#[derive(Clone, Copy)]
struct Route<'a> {
    out: &'a Outbound,
    limits: &'a NetworkLimits,
    tenant: &'a str,
    events: &'a ProgressFn,
}

/// `Retry-After` in whole seconds, rounded up (RFC 9110 §10.2.3).
fn retry_after_seconds(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The host's own answer to a request its tenant's limits held back: `429`
/// with `Retry-After` and [`limits::LOCAL_LIMIT_HEADER`] naming what held
/// it, so the step retries it like any 429 and can tell it apart.
fn local_answer(retry_after_s: u64, held: &limits::Held) -> Exchange {
    use http_body_util::Full;
    let body = serde_json::json!({
        "error": "held back by the host's limits for this tenant",
        "limit": held.marker(),
        "retry_after_s": retry_after_s,
    })
    .to_string();
    let mut response = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(retry_after_s),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(marker) = http::HeaderValue::from_str(&held.marker()) {
        headers.insert(limits::LOCAL_LIMIT_HEADER, marker);
    }
    let worker: Box<dyn Future<Output = Result<(), Error>> + Send> =
        Box::new(std::future::ready(Ok(())));
    (response, worker)
}

/// Why a request did not get a response.
enum Refusal {
    Policy(Denial),
    /// The tenant's proxy could not be used; `denied` when the proxy's own
    /// policy refused the destination (CONNECT 403).
    Proxy {
        message: String,
        denied: bool,
    },
    /// The tenant's limits held it back longer than its attempt may wait:
    /// answered locally ([`local_answer`]), never sent.
    Limited {
        retry_after: Duration,
        held: limits::Held,
    },
    /// One of the tenant's own timeouts ran out before the guest's: `what`
    /// did not happen within `setting` (`limit`).
    HostTimeout {
        error: Error,
        what: &'static str,
        setting: &'static str,
        limit: Duration,
    },
    /// The host's resolver failed for `host`; its `message` goes to the
    /// run's events, not into the guest's error (DNS error payloads carry
    /// DNS response codes, which the system resolver does not give).
    Resolver {
        host: String,
        message: String,
    },
    Other(Error),
}

impl Refusal {
    fn into_error(self) -> Error {
        match self {
            Refusal::Policy(Denial::Address { .. }) => Error::DestinationIpProhibited,
            Refusal::Policy(_) => Error::HttpRequestDenied,
            Refusal::Proxy { denied: true, .. } => Error::HttpRequestDenied,
            Refusal::Proxy {
                message,
                denied: false,
            } => Error::InternalError(Some(message)),
            Refusal::HostTimeout { error, .. } | Refusal::Other(error) => error,
            // Answered before it comes to this (`send_request`).
            Refusal::Limited { .. } => Error::HttpRequestDenied,
            Refusal::Resolver { .. } => Error::DnsError {
                rcode: None,
                info_code: None,
            },
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Other(e)
    }
}

impl From<hyper::Error> for Refusal {
    fn from(e: hyper::Error) -> Self {
        Refusal::Other(hyper_error(e))
    }
}

/// Maps hyper's errors, telling oversized response heads and bodies that
/// end before their announced length apart.
fn hyper_error(e: hyper::Error) -> Error {
    let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
    let io_kind = io.map(std::io::Error::kind);
    // The TLS error may sit deeper: hyper reports a request it could not
    // finish as `Canceled`, caused by the connection's own I/O error.
    let tls = std::iter::successors(std::error::Error::source(&e), |s| s.source())
        .filter_map(|s| s.downcast_ref::<std::io::Error>())
        .find(|io| {
            io.get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        });
    if let Some(io) = tls {
        // A TLS alert after the handshake: in TLS 1.3 the server checks the
        // client's certificate after the client has finished (RFC 8446
        // §4.4.2), so a refused or missing one arrives with the response.
        tls_error(io)
    } else if e.is_parse_too_large() {
        Error::HttpResponseHeaderSectionSize(None)
    } else if e.is_incomplete_message() || io_kind == Some(std::io::ErrorKind::UnexpectedEof) {
        // The body ended before its Content-Length (RFC 9112 §8).
        Error::HttpResponseIncomplete
    } else if matches!(
        io_kind,
        Some(
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        )
    ) {
        Error::ConnectionTerminated
    } else {
        Error::from(e)
    }
}

/// The timeouts of one request: the guest's, clamped to the tenant's maxima.
struct Timeouts {
    connect: Timeout,
    first_byte: Timeout,
    between_bytes: Duration,
}

/// One timeout of a request, and the tenant's setting when it is the
/// tenant's limit that ends it (the guest asked for longer, or for nothing):
/// that one is named in the run's events, so nobody looks for the cause in
/// the step's own `timeout_ms`.
#[derive(Clone, Copy)]
struct Timeout {
    after: Duration,
    tenant_setting: Option<&'static str>,
}

impl Timeout {
    fn new(asked: Option<Duration>, max: Duration, setting: &'static str) -> Self {
        match asked {
            Some(asked) if asked < max => Timeout {
                after: asked,
                tenant_setting: None,
            },
            _ => Timeout {
                after: max,
                tenant_setting: Some(setting),
            },
        }
    }

    /// The refusal when it ran out before `what` happened.
    fn expired(self, error: Error, what: &'static str) -> Refusal {
        match self.tenant_setting {
            Some(setting) => Refusal::HostTimeout {
                error,
                what,
                setting,
                limit: self.after,
            },
            None => Refusal::Other(error),
        }
    }
}

impl Timeouts {
    fn new(limits: &NetworkLimits, options: Option<RequestOptions>) -> Self {
        let o = options.unwrap_or_default();
        let between = o
            .between_bytes_timeout
            .map_or(limits.between_bytes_timeout, |a| {
                a.min(limits.between_bytes_timeout)
            });
        Timeouts {
            connect: Timeout::new(
                o.connect_timeout,
                limits.connect_timeout,
                "connect_timeout_ms",
            ),
            first_byte: Timeout::new(
                o.first_byte_timeout,
                limits.first_byte_timeout,
                "first_byte_timeout_ms",
            ),
            // tokio's timers need a non-zero period.
            between_bytes: between.max(Duration::from_millis(1)),
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A response and the worker future wasmtime keeps alive alongside it.
type Exchange = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

async fn send(
    route: Route<'_>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Exchange, Refusal> {
    let uri = request.uri().clone();
    let origin = admit(route.out, &uri)?;
    let timeouts = Timeouts::new(route.limits, options);
    let via = route
        .out
        .proxy
        .as_ref()
        .filter(|p| p.applies_to(&origin.host));
    if via.is_some() {
        // The proxy resolves names; an address written in the URL is checked here.
        let ip = match origin.host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = ip {
            route
                .out
                .policy
                .check_address(
                    origin.admission,
                    origin.scheme,
                    origin.port,
                    &origin.host.to_string(),
                    ip,
                )
                .map_err(Refusal::Policy)?;
        }
    }

    let declared_len = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let max_body = route.limits.max_request_body_bytes;
    if declared_len.is_some_and(|n| n > max_body) {
        return Err(Error::HttpRequestBodySize(declared_len).into());
    }
    // The tenant's limits for this origin: go now, after a wait that fits
    // in half of what is left of the attempt (the request keeps the other
    // half: a permit won at the deadline would only time out upstream), or
    // not at all (a local 429).
    let origin_text = origin.to_string();
    let ask = limits::Ask {
        tenant: route.tenant,
        origin: &origin_text,
        rule: limits::rule_for(&route.out.rules, origin.scheme, &origin.host, origin.port)
            .map(|r| (r.key.as_str(), &r.quota)),
        hold: timeouts.first_byte.after / 2,
    };
    let permit = match limits::admit(&route.out.limits, ask).await {
        limits::Admission::Go(permit) => permit,
        limits::Admission::Refused { retry_after, held } => {
            return Err(Refusal::Limited { retry_after, held });
        }
    };
    let mut request = request.map(|body| {
        Guarded::new(body, None, max_body, |_| Error::HttpRequestBodySize(None)).boxed_unsync()
    });
    match via {
        // Plain http through a proxy: the absolute form (RFC 9112 §3.2.2) and
        // the proxy's credentials; the guest's own Proxy-Authorization is not sent on.
        Some(proxy) if origin.scheme == Scheme::Http => {
            request
                .headers_mut()
                .remove(http::header::PROXY_AUTHORIZATION);
            if let Some(auth) = proxy.authorization() {
                let value =
                    http::HeaderValue::from_str(auth).map_err(|_| Error::HttpRequestUriInvalid)?;
                request
                    .headers_mut()
                    .insert(http::header::PROXY_AUTHORIZATION, value);
            }
        }
        // Otherwise the request line carries only the path (origin-form, RFC
        // 9112 §3.2.1); wasmtime has already set the Host header from the authority.
        _ => {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() =
                http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
        }
    }

    // A kept-alive connection of this tenant to this origin first (RFC 9112
    // §9.3: persistent connections). If it turns out to have closed before
    // the request was written, the request goes on a new connection.
    let key = origin.pool_key();
    let reuse = route.limits.reuse;
    let exchanged = 'sent: {
        if reuse.enabled()
            && let Some(lease) = route.out.pool.checkout(&key, reuse).await
        {
            match exchange(route, lease, request, &timeouts).await {
                Err((_, Some(unsent))) => request = unsent,
                done => break 'sent done.map_err(|(e, _)| e)?,
            }
        }
        let lease = dial(route, &origin, via, &timeouts).await?;
        exchange(route, lease, request, &timeouts)
            .await
            .map_err(|(e, _)| e)?
    };
    Ok(after_response(route, &ask, exchanged, permit))
}

/// What the tenant's limits take from a response: a back-off window when
/// it asks the tenant to stay away (and `shared_backoff` is on), and the
/// request's place among `max_in_flight`, held until its body is read.
fn after_response(
    route: Route<'_>,
    ask: &limits::Ask<'_>,
    (response, worker): Exchange,
    permit: limits::Permit,
) -> Exchange {
    let origin = ask.origin;
    if let Some(max) = route.out.max_backoff {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let now = limits::unix_ms();
        if let Some(until) = limits::backoff_until(status, retry_after, now, max) {
            route
                .out
                .limits
                .back_off(route.tenant, ask.scope(), origin, until);
            (route.events)(&format!(
                "egress: {origin} answered {status} asking to wait {} ms; the tenant's requests to it are held back until then",
                until - now
            ));
        }
    }
    // The permit lives as long as the body, which the guest drops once it
    // has read it (or given up on it).
    let response = response.map(|body| {
        body.map_frame(move |frame| {
            let _held = &permit;
            frame
        })
        .boxed_unsync()
    });
    (response, worker)
}

/// Where a request goes, as admitted by the tenant's policy.
struct Origin {
    scheme: Scheme,
    host: url::Host<String>,
    port: u16,
    admission: Admission,
}

/// `scheme://host:port`, the port always written: the key of the origin's
/// back-off window and what the run's events name.
impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    fn pool_key(&self) -> PoolKey {
        PoolKey {
            tls: self.scheme == Scheme::Https,
            host: self.host.to_string(),
            port: self.port,
        }
    }
}

/// The origin of `uri`, if the tenant's policy admits it (the host name or
/// address against the allowlist; addresses are checked after resolving).
fn admit(out: &Outbound, uri: &http::Uri) -> Result<Origin, Refusal> {
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => return Err(Error::HttpRequestUriInvalid.into()),
    };
    let raw_host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let host = parse_host(raw_host).ok_or(Error::HttpRequestUriInvalid)?;
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    let admission = out
        .policy
        .admit(scheme, &host, port)
        .map_err(Refusal::Policy)?;
    Ok(Origin {
        scheme,
        host,
        port,
        admission,
    })
}

/// A new connection to `origin` (directly, or through `via`), TLS for https,
/// and the HTTP/1.1 handshake, each step within the connect timeout.
async fn dial(
    route: Route<'_>,
    origin: &Origin,
    via: Option<&Proxy>,
    timeouts: &Timeouts,
) -> Result<Lease<WasiBody>, Refusal> {
    let tcp = match via {
        None => connect_direct(route.out, origin, timeouts).await?,
        Some(proxy) => connect_proxy(route.out, proxy, timeouts).await?,
    };
    let stream: Box<dyn Stream> = match (origin.scheme, via) {
        (Scheme::Http, _) => Box::new(tcp),
        (Scheme::Https, None) => {
            Box::new(tls_handshake(route.out, &origin.host, origin.port, tcp, timeouts).await?)
        }
        (Scheme::Https, Some(proxy)) => {
            let tunnel =
                tokio::time::timeout(timeouts.connect.after, open_tunnel(proxy, origin, tcp))
                    .await
                    .map_err(|_| Refusal::Proxy {
                        message: format!("the proxy {proxy} did not answer CONNECT in time"),
                        denied: false,
                    })??;
            Box::new(tls_handshake(route.out, &origin.host, origin.port, tunnel, timeouts).await?)
        }
    };
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(route.limits.max_response_headers)
        // hyper's minimum buffer is 8 KiB.
        .max_buf_size(route.limits.max_response_header_bytes.max(8192))
        .handshake::<_, WasiBody>(TokioIo::new(stream))
        .await?;
    let reuse = route.limits.reuse;
    Ok(Lease::new(
        Connection::spawn(sender, conn, reuse),
        &route.out.pool,
        origin.pool_key(),
        reuse,
    ))
}

/// Resolves the name (the host's own resolver, not the guest's), keeps only
/// the addresses the policy allows (so a DNS answer cannot change between the
/// check and the connection) and connects to one of them.
async fn connect_direct(
    out: &Outbound,
    origin: &Origin,
    timeouts: &Timeouts,
) -> Result<TcpStream, Refusal> {
    let Origin {
        scheme,
        host,
        port,
        admission,
    } = origin;
    let addrs = tokio::time::timeout(timeouts.connect.after, resolve(out, host, *port))
        .await
        .map_err(|_| {
            timeouts
                .connect
                .expired(Error::DnsTimeout, "the name was not resolved")
        })??;
    let host_name = host.to_string();
    let mut checked = Vec::new();
    let mut first_denial = None;
    for addr in addrs {
        match out
            .policy
            .check_address(*admission, *scheme, *port, &host_name, addr.ip())
        {
            Ok(()) => checked.push(addr),
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    if checked.is_empty() {
        return Err(match first_denial {
            Some(d) => Refusal::Policy(d),
            None => Error::DestinationNotFound.into(),
        });
    }
    tokio::time::timeout(timeouts.connect.after, connect(&checked))
        .await
        .map_err(|_| {
            timeouts
                .connect
                .expired(Error::ConnectionTimeout, "no connection was established")
        })?
}

/// Connects to the tenant's proxy. Its address is not checked against the
/// private-network rule: the policy names it (proxies are usually internal).
async fn connect_proxy(
    out: &Outbound,
    proxy: &Proxy,
    timeouts: &Timeouts,
) -> Result<TcpStream, Refusal> {
    let unreachable = |why: &str| Refusal::Proxy {
        message: format!("the proxy {proxy} is unreachable: {why}"),
        denied: false,
    };
    let (name, port) = proxy.address();
    let host = parse_host(name).ok_or_else(|| unreachable("its host is not a valid name"))?;
    let attempt = async {
        let addrs = resolve(out, &host, port)
            .await
            .map_err(|_| unreachable("its name does not resolve"))?;
        connect(&addrs)
            .await
            .map_err(|_| unreachable("the connection failed"))
    };
    tokio::time::timeout(timeouts.connect.after, attempt)
        .await
        .map_err(|_| unreachable("no connection in time"))?
}

/// `CONNECT host:port` on `tcp` (RFC 9110 §9.3.6); the stream is the tunnel
/// once the proxy answers 2xx.
async fn open_tunnel(
    proxy: &Proxy,
    origin: &Origin,
    mut tcp: TcpStream,
) -> Result<TcpStream, Refusal> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let authority = format!("{}:{}", origin.host, origin.port);
    let failed = |why: String, denied: bool| Refusal::Proxy {
        message: format!("the proxy {proxy} {why}"),
        denied,
    };
    tcp.write_all(&proxy.connect_request(&authority))
        .await
        .map_err(|e| failed(format!("closed the connection: {e}"), false))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| failed(format!("closed the connection: {e}"), false))?;
        if n == 0 {
            return Err(failed(
                format!("closed the connection instead of answering CONNECT {authority}"),
                false,
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        match connect_answer(&head) {
            ConnectAnswer::Partial if head.len() < MAX_CONNECT_HEAD => continue,
            ConnectAnswer::Open { extra: 0 } => return Ok(tcp),
            ConnectAnswer::Refused { status: 407, .. } => {
                return Err(failed(
                    format!(
                        "requires authentication (407) for CONNECT {authority}; check the credentials of proxy in the tenant policy"
                    ),
                    false,
                ));
            }
            // The proxy's own policy refused the destination.
            ConnectAnswer::Refused {
                status: 403,
                reason,
            } => {
                return Err(failed(
                    format!("refused CONNECT {authority} (403 {reason})"),
                    true,
                ));
            }
            ConnectAnswer::Refused { status, reason } => {
                return Err(failed(
                    format!("answered CONNECT {authority} with {status} {reason}"),
                    false,
                ));
            }
            ConnectAnswer::Partial | ConnectAnswer::Open { .. } | ConnectAnswer::Garbled => {
                return Err(failed(
                    format!("answered CONNECT {authority} with something that is not a tunnel"),
                    false,
                ));
            }
        }
    }
}

/// TLS over `tcp` with the tenant's roots and pinned certificates (and the
/// client certificate configured for this origin, if any), the name checked
/// against `host` (a DNS name or an IP address, RFC 6125).
async fn tls_handshake(
    out: &Outbound,
    host: &url::Host<String>,
    port: u16,
    tcp: TcpStream,
    timeouts: &Timeouts,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Refusal> {
    let server_name = match host {
        url::Host::Domain(d) => rustls_pki_types::ServerName::try_from(d.clone())
            .map_err(|_| Error::HttpRequestUriInvalid)?,
        url::Host::Ipv4(ip) => rustls_pki_types::ServerName::IpAddress(IpAddr::V4(*ip).into()),
        url::Host::Ipv6(ip) => rustls_pki_types::ServerName::IpAddress(IpAddr::V6(*ip).into()),
    };
    let connector = tokio_rustls::TlsConnector::from(out.tls_for(host, port).clone());
    tokio::time::timeout(timeouts.connect.after, connector.connect(server_name, tcp))
        .await
        .map_err(|_| {
            timeouts
                .connect
                .expired(Error::ConnectionTimeout, "the TLS handshake did not finish")
        })?
        .map_err(|e| Refusal::Other(tls_error(&e)))
}

/// Sends `request` on `lease` and hands back the response, whose body returns
/// the connection to the tenant's pool once it has been read to the end.
/// The request comes back with the error when it was never written.
async fn exchange(
    route: Route<'_>,
    mut lease: Lease<WasiBody>,
    request: http::Request<WasiBody>,
    timeouts: &Timeouts,
) -> Result<Exchange, (Refusal, Option<http::Request<WasiBody>>)> {
    let response = match tokio::time::timeout(timeouts.first_byte.after, lease.send(request)).await
    {
        // Dropping the lease closes the connection: the server may still
        // answer this request, and nothing else may read that answer.
        Err(_) => {
            let refusal = timeouts
                .first_byte
                .expired(Error::ConnectionReadTimeout, "no response arrived");
            return Err((refusal, None));
        }
        Ok(Err((e, unsent))) => return Err((hyper_error(e).into(), unsent)),
        Ok(Ok(response)) => response,
    };
    let cap = route.limits.max_response_bytes;
    let response = response.map(|incoming| {
        let incoming = incoming.map_err(hyper_error as fn(hyper::Error) -> Error);
        Guarded::new(incoming, Some(timeouts.between_bytes), cap, |cap| {
            Error::HttpResponseBodySize(Some(cap))
        })
        .returning(lease)
        .boxed_unsync()
    });
    // The connection is driven by its own task (see `pool`), so there is no
    // per-request worker for wasmtime to keep alive.
    let worker: Box<dyn Future<Output = Result<(), Error>> + Send> =
        Box::new(std::future::ready(Ok(())));
    Ok((response, worker))
}

/// Resolves once; the tenant's static overrides come before DNS.
async fn resolve(out: &Outbound, host: &url::Host, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    match host {
        url::Host::Ipv4(ip) => Ok(vec![SocketAddr::new(IpAddr::V4(*ip), port)]),
        url::Host::Ipv6(ip) => Ok(vec![SocketAddr::new(IpAddr::V6(*ip), port)]),
        url::Host::Domain(name) => match out.resolve.get(name) {
            Some(addrs) => Ok(addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => match tokio::net::lookup_host((name.as_str(), port)).await {
                Ok(addrs) => Ok(addrs.collect()),
                // getaddrinfo's failures (EAI_NONAME, EAI_AGAIN…) reach us as
                // text only: a DNS error without a response code for the
                // guest, the resolver's words in the run's events.
                Err(err) => Err(Refusal::Resolver {
                    host: name.clone(),
                    message: err.to_string(),
                }),
            },
        },
    }
}

/// Connects to the first checked address that accepts.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Refusal> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                // Small request/response exchanges: do not wait for Nagle.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last.map(|e| e.kind()) {
        Some(std::io::ErrorKind::ConnectionRefused) => Error::ConnectionRefused,
        _ => Error::DestinationUnavailable,
    }
    .into())
}

/// A failed handshake as `tls-alert-received`, the one TLS case of wasi:http
/// 0.2 that carries a description: with the alert the server sent, or the one
/// this host sent when it refused the certificate (RFC 8446 §6.2), and the
/// reason in words (`tls-certificate-error` has no room for the reason).
fn tls_error(err: &std::io::Error) -> Error {
    let failure = crate::egress::tls::describe(err);
    Error::TlsAlertReceived {
        alert_id: failure.alert,
        alert_message: Some(failure.message),
    }
}

/// A body bounded in size (checked while streaming) and, for responses,
/// failing when the peer pauses longer than the between-bytes timeout. Used
/// for response bodies (the tenant's cap, whatever the guest asks for) and
/// request bodies (`max_request_body_bytes`). A response body also holds the
/// lease on its connection and returns it to the pool at the end.
struct Guarded<B> {
    inner: B,
    lease: Option<Lease<WasiBody>>,
    between_bytes: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    remaining: u64,
    cap: u64,
    too_large: fn(u64) -> Error,
}

impl<B> Guarded<B> {
    fn new(
        inner: B,
        between_bytes: Option<Duration>,
        cap: u64,
        too_large: fn(u64) -> Error,
    ) -> Self {
        Guarded {
            inner,
            lease: None,
            between_bytes: between_bytes.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            remaining: cap,
            cap,
            too_large,
        }
    }
}

impl<B: Body> Guarded<B> {
    fn returning(mut self, lease: Lease<WasiBody>) -> Self {
        self.lease = Some(lease);
        // No body at all (204, 304, HEAD): nothing will be read.
        if self.inner.is_end_stream() {
            self.ended();
        }
        self
    }

    /// The body has been read to its end: the connection may be reused.
    fn ended(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl<B> Body for Guarded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > self.remaining {
                    return Poll::Ready(Some(Err((self.too_large)(self.cap))));
                }
                self.remaining -= len;
                if let Some((period, timer)) = &mut self.between_bytes {
                    let next = tokio::time::Instant::now() + *period;
                    timer.as_mut().reset(next);
                }
                // A reader may stop at `is_end_stream` without polling for the end.
                if self.inner.is_end_stream() {
                    self.ended();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A failed exchange leaves the connection unusable: closed on drop.
                self.lease = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.ended();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((_, timer)) = &mut self.between_bytes
                    && timer.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::policy::Admission;

    fn outbound(allow: &[&str]) -> Outbound {
        allow
            .iter()
            .fold(OutboundBuilder::default(), |b, origin| {
                b.allow(origin).expect("a valid origin")
            })
            .build()
            .expect("a valid egress")
    }

    fn limits() -> NetworkLimits {
        let five = Duration::from_secs(5);
        NetworkLimits {
            connect_timeout: five,
            first_byte_timeout: five,
            between_bytes_timeout: five,
            max_response_bytes: 1 << 20,
            max_response_header_bytes: 1 << 16,
            max_response_headers: 100,
            max_request_body_bytes: 1 << 20,
            max_requests_per_run: 10,
            reuse: pool::Reuse::new(0, five),
        }
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().expect("a URI")
    }

    #[test]
    fn admission_checks_scheme_and_allowlist_before_any_io() {
        let open = outbound(&[]);
        assert!(matches!(
            admit(&open, &uri("ftp://example.com/")),
            Err(Refusal::Other(Error::HttpRequestUriInvalid))
        ));
        assert!(matches!(
            admit(&open, &uri("http://example.com/")),
            Err(Refusal::Policy(Denial::Origin(_)))
        ));
        let public = admit(&open, &uri("https://example.com/x"))
            .ok()
            .expect("public https is admitted");
        assert_eq!(
            (public.admission, public.port),
            (Admission::PublicOnly, 443)
        );
        let listed = outbound(&["http://127.0.0.1:8080"]);
        let explicit = admit(&listed, &uri("http://127.0.0.1:8080/"))
            .ok()
            .expect("an allowed origin");
        assert_eq!(explicit.admission, Admission::Explicit);
        assert_eq!(
            explicit.pool_key(),
            PoolKey {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
    }

    #[test]
    fn a_timeout_names_the_tenant_setting_only_when_the_tenant_limit_ends_it() {
        let limits = limits();
        let asked_less = Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(1)),
            first_byte_timeout: Some(Duration::from_secs(60)),
            between_bytes_timeout: None,
        });
        let timeouts = Timeouts::new(&limits, asked_less);
        assert_eq!(timeouts.connect.after, Duration::from_secs(1));
        assert!(matches!(
            timeouts
                .connect
                .expired(Error::ConnectionTimeout, "no connection"),
            Refusal::Other(Error::ConnectionTimeout)
        ));
        assert_eq!(timeouts.first_byte.after, limits.first_byte_timeout);
        assert!(matches!(
            timeouts
                .first_byte
                .expired(Error::ConnectionReadTimeout, "no response"),
            Refusal::HostTimeout {
                setting: "first_byte_timeout_ms",
                error: Error::ConnectionReadTimeout,
                ..
            }
        ));
        assert_eq!(timeouts.between_bytes, limits.between_bytes_timeout);
        // Nothing asked: the tenant's limits, named.
        let timeouts = Timeouts::new(&limits, None);
        assert_eq!(timeouts.connect.tenant_setting, Some("connect_timeout_ms"));
    }

    #[tokio::test]
    async fn dial_connects_only_to_checked_addresses() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let limits = limits();
        let timeouts = Timeouts::new(&limits, None);
        // Admitted only as a public https host: the loopback address is refused
        // after resolving, before connecting.
        let open = outbound(&[]);
        let events: ProgressFn = Arc::new(|_: &str| {});
        let route = Route {
            out: &open,
            limits: &limits,
            tenant: "t",
            events: &events,
        };
        let origin = admit(&open, &uri(&format!("https://127.0.0.1:{port}/")))
            .ok()
            .expect("admitted as public https");
        assert!(matches!(
            dial(route, &origin, None, &timeouts).await,
            Err(Refusal::Policy(Denial::Address { .. }))
        ));
        // Allowed explicitly: connected (HTTP/1.1's handshake needs no bytes from the server).
        let listed = outbound(&[&format!("http://127.0.0.1:{port}")]);
        let route = Route {
            out: &listed,
            limits: &limits,
            tenant: "t",
            events: &events,
        };
        let origin = admit(&listed, &uri(&format!("http://127.0.0.1:{port}/")))
            .ok()
            .expect("allowed");
        assert!(dial(route, &origin, None, &timeouts).await.is_ok());
        // Nothing listening: a connection error, not a policy refusal.
        drop(listener);
        assert!(matches!(
            dial(route, &origin, None, &timeouts).await,
            Err(Refusal::Other(_))
        ));
    }
}
