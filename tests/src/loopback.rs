//! A small scripted HTTP/1.1 server on 127.0.0.1, with optional TLS from a
//! certificate generated at start. It serves the conformance suite, the bench
//! and the soak: it records every request exactly as received and answers
//! what a [`Responder`] decides, including faults (never answering, closing,
//! an endless body).
//!
//! It is written on raw TCP rather than on hyper so that a reply can break the
//! protocol on purpose.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Largest request head the server reads.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body the server reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Request target, e.g. `/orders?id=1`.
    pub target: String,
    /// Header names (lower-case) and values, in received order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (chunked coding removed).
    pub body: Vec<u8>,
    /// The request line and header section exactly as received, up to and
    /// including the blank line (for framing checks).
    pub head: String,
    /// 1-based number of the connection it came on.
    pub connection: usize,
}

impl Recorded {
    /// Path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// Query part of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Values of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A complete response, after `delay_ms`. `Content-Length` is added unless
    /// given in `headers`.
    Respond {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
        /// Wait before answering.
        delay_ms: u64,
    },
    /// Read the request and never answer.
    Hang,
    /// Close the connection without answering.
    Close,
    /// A chunked body that never ends.
    Endless {
        /// Status code.
        status: u16,
    },
    /// A head announcing `total` body bytes, then one byte every `every_ms`
    /// (slow-loris).
    Trickle {
        /// Status code.
        status: u16,
        /// Announced (and eventually sent) body length.
        total: usize,
        /// Pause between bytes.
        every_ms: u64,
    },
    /// Exactly these bytes, then the connection is closed — with a TCP reset
    /// when `reset` — whatever they announced.
    Raw {
        /// Bytes to send (a head, maybe part of a body).
        bytes: Vec<u8>,
        /// Close with RST instead of FIN.
        reset: bool,
    },
}

impl Reply {
    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay_ms: 0,
        }
    }
}

/// How a test server's certificate is made.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// Subject alternative names (DNS names or IP addresses).
    pub names: Vec<String>,
    /// When it is valid.
    pub validity: Validity,
    /// What kind of certificate it is.
    pub shape: CertShape,
}

/// Validity period of a [`TestCert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid now.
    Current,
    /// Ended in 2020.
    Expired,
    /// Starts in 2090.
    NotYet,
}

/// The kind of a [`TestCert`]; the certificate to trust is the served one
/// except for [`CertShape::CaIssuedCa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertShape {
    /// A self-signed end-entity certificate (CA:FALSE).
    Leaf,
    /// A self-signed CA:TRUE certificate, as `openssl req -x509` makes.
    SelfSignedCa,
    /// A CA:TRUE certificate issued by a separate root, which is the one to trust.
    CaIssuedCa,
}

/// Decides the reply to each request.
pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A responder that answers with `replies` in order, then with the last one
/// again (a server that recovers after failures); it closes the connection
/// when `replies` is empty.
pub fn in_order(replies: Vec<Reply>) -> Responder {
    let served = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move |_: &Recorded| {
        let i = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        replies
            .get(i)
            .or(replies.last())
            .cloned()
            .unwrap_or(Reply::Close)
    })
}

/// A running server; stops (and drops every connection) when dropped.
pub struct LoopbackServer {
    port: u16,
    tls_ca_pem: Option<String>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Conn: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conn for T {}

impl LoopbackServer {
    /// Starts a plain-HTTP server on 127.0.0.1 on a free port.
    pub async fn http(responder: Responder) -> std::io::Result<Self> {
        Self::start(responder, None, true).await
    }

    /// Like [`LoopbackServer::http`] but keeps no record of requests (for
    /// benchmarks and soak runs, where the record would grow without bound).
    pub async fn http_unrecorded(responder: Responder) -> std::io::Result<Self> {
        Self::start(responder, None, false).await
    }

    /// Starts an HTTPS server with a self-signed certificate for `127.0.0.1`
    /// and `localhost`; [`LoopbackServer::ca_pem`] gives the certificate to trust.
    pub async fn https(responder: Responder) -> std::io::Result<Self> {
        Self::https_for(&["127.0.0.1", "localhost"], responder).await
    }

    /// Like [`LoopbackServer::https`], with a certificate for `names`.
    pub async fn https_for(names: &[&str], responder: Responder) -> std::io::Result<Self> {
        Self::https_with(names, false, responder).await
    }

    /// Like [`LoopbackServer::https_for`]; with `expired`, the certificate's
    /// validity ended in 2020 (for TLS failure tests).
    pub async fn https_with(
        names: &[&str],
        expired: bool,
        responder: Responder,
    ) -> std::io::Result<Self> {
        let validity = if expired {
            Validity::Expired
        } else {
            Validity::Current
        };
        Self::https_cert(
            &TestCert {
                names: names.iter().map(|n| n.to_string()).collect(),
                validity,
                shape: CertShape::Leaf,
            },
            responder,
        )
        .await
    }

    /// An HTTPS server presenting a certificate made as `cert` says;
    /// [`LoopbackServer::ca_pem`] gives the certificate a client should trust.
    pub async fn https_cert(cert: &TestCert, responder: Responder) -> std::io::Result<Self> {
        let other = |e: rcgen::Error| std::io::Error::other(e.to_string());
        let mut params = rcgen::CertificateParams::new(cert.names.clone()).map_err(other)?;
        match cert.validity {
            Validity::Current => {}
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2019, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 1, 1);
            }
            Validity::NotYet => {
                params.not_before = rcgen::date_time_ymd(2090, 1, 1);
                params.not_after = rcgen::date_time_ymd(2091, 1, 1);
            }
        }
        let key = rcgen::KeyPair::generate().map_err(other)?;
        let (served, trusted) = match cert.shape {
            CertShape::Leaf => {
                let c = params.self_signed(&key).map_err(other)?;
                (c.clone(), c)
            }
            CertShape::SelfSignedCa => {
                // What `openssl req -x509` makes: basicConstraints CA:TRUE.
                params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                let c = params.self_signed(&key).map_err(other)?;
                (c.clone(), c)
            }
            CertShape::CaIssuedCa => {
                let mut root =
                    rcgen::CertificateParams::new(Vec::<String>::new()).map_err(other)?;
                root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                let root_key = rcgen::KeyPair::generate().map_err(other)?;
                let issuer = rcgen::Issuer::new(root.clone(), root_key);
                let root = root.self_signed(issuer.key()).map_err(other)?;
                params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                (params.signed_by(&key, &issuer).map_err(other)?, root)
            }
        };
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![served.der().clone()], der)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start(responder, Some((acceptor, trusted.pem())), true).await
    }

    /// An HTTPS server with a TLS setup of the test's own (e.g. one that
    /// requires a client certificate); `trusted_pem` is what
    /// [`LoopbackServer::ca_pem`] reports.
    pub async fn https_acceptor(
        acceptor: tokio_rustls::TlsAcceptor,
        trusted_pem: String,
        responder: Responder,
    ) -> std::io::Result<Self> {
        Self::start(responder, Some((acceptor, trusted_pem)), true).await
    }

    /// A server that answers every TLS ClientHello with the fatal alert
    /// `alert` (RFC 8446 §6.2), or closes the connection when `alert` is
    /// `None` (an aborted handshake). Its origin is `https://…`.
    pub async fn tls_refusing(alert: Option<u8>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let connections = connections.clone();
            async move {
                let mut tasks = JoinSet::new();
                while let Ok((mut tcp, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tasks.spawn(async move {
                        let mut hello = vec![0; 16 * 1024];
                        let _ = tcp.read(&mut hello).await;
                        if let Some(alert) = alert {
                            // An alert record: type 21, TLS 1.2 record version, length 2, fatal (2).
                            let _ = tcp.write_all(&[21, 3, 3, 0, 2, 2, alert]).await;
                        }
                    });
                    while tasks.try_join_next().is_some() {}
                }
            }
        });
        let requests = Arc::new(Mutex::new(Vec::new()));
        Ok(LoopbackServer {
            port,
            tls_ca_pem: Some(String::new()),
            requests,
            connections,
            task,
        })
    }

    async fn start(
        responder: Responder,
        tls: Option<(tokio_rustls::TlsAcceptor, String)>,
        record: bool,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (acceptor, tls_ca_pem) = match tls {
            Some((a, pem)) => (Some(a), Some(pem)),
            None => (None, None),
        };
        let task = tokio::spawn({
            let requests = requests.clone();
            let connections = connections.clone();
            async move {
                // Dropped with the accept task: aborts every connection.
                let mut tasks = JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    let number = connections.fetch_add(1, Ordering::SeqCst) + 1;
                    let responder = responder.clone();
                    let requests = requests.clone();
                    let acceptor = acceptor.clone();
                    tasks.spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        // A second handle on the socket, to reset it on request.
                        let resetter = std::os::fd::AsFd::as_fd(&tcp)
                            .try_clone_to_owned()
                            .ok()
                            .map(socket2::Socket::from);
                        let conn: Box<dyn Conn> = match acceptor {
                            Some(a) => match a.accept(tcp).await {
                                Ok(tls) => Box::new(tls),
                                Err(_) => return,
                            },
                            None => Box::new(tcp),
                        };
                        serve(
                            conn,
                            number,
                            responder,
                            record.then_some(requests),
                            resetter,
                        )
                        .await;
                    });
                    while tasks.try_join_next().is_some() {}
                }
            }
        });
        Ok(LoopbackServer {
            port,
            tls_ca_pem,
            requests,
            connections,
            task,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls_ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// PEM of the certificate to trust (HTTPS servers only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls_ca_pem.as_deref()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connections accepted so far (including ones that sent nothing).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut conn: Box<dyn Conn>,
    number: usize,
    responder: Responder,
    requests: Option<Arc<Mutex<Vec<Recorded>>>>,
    resetter: Option<socket2::Socket>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut conn, &mut buf, number).await else {
            return;
        };
        let keep_alive = !request
            .header_values("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("close"));
        if let Some(requests) = &requests {
            requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request.clone());
        }
        match responder(&request) {
            Reply::Respond {
                status,
                headers,
                body,
                delay_ms,
            } => {
                // A zero sleep would still wait for the timer's next 1 ms tick.
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (name, value) in &headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                {
                    head.push_str(&format!("content-length: {}\r\n", body.len()));
                }
                head.push_str("\r\n");
                // A HEAD response announces the body's length but sends none
                // (RFC 9110 §9.3.2).
                let body: &[u8] = if request.method == "HEAD" { &[] } else { &body };
                if conn.write_all(head.as_bytes()).await.is_err()
                    || conn.write_all(body).await.is_err()
                {
                    return;
                }
                let _ = conn.flush().await;
            }
            Reply::Hang => {
                // Never answer, but let go once the client hangs up, so a long
                // run does not accumulate dead connections.
                let mut sink = [0u8; 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Reply::Close => return,
            Reply::Endless { status } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n",
                    reason(status)
                );
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                while conn.write_all(chunk.as_bytes()).await.is_ok() {}
                return;
            }
            Reply::Trickle {
                status,
                total,
                every_ms,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {total}\r\n\r\n",
                    reason(status)
                );
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..total {
                    tokio::time::sleep(Duration::from_millis(every_ms)).await;
                    if conn.write_all(b"x").await.is_err() || conn.flush().await.is_err() {
                        return;
                    }
                }
            }
            Reply::Raw { bytes, reset } => {
                let _ = conn.write_all(&bytes).await;
                let _ = conn.flush().await;
                if reset {
                    // SO_LINGER 0: closing sends RST instead of FIN.
                    if let Some(socket) = &resetter {
                        let _ = socket.set_linger(Some(Duration::ZERO));
                    }
                }
                return;
            }
        }
        if !keep_alive {
            return;
        }
    }
}

/// Reads one request; `None` at end of stream or on a malformed request.
async fn read_request(
    conn: &mut Box<dyn Conn>,
    buf: &mut Vec<u8>,
    connection: usize,
) -> Option<Recorded> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD || !read_more(conn, buf).await {
            return None;
        }
    };
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut slots);
    parsed.parse(&buf[..head_end]).ok()?;
    let method = parsed.method?.to_string();
    let target = parsed.path?.to_string();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(conn, buf).await?
    } else {
        let len: usize = find("content-length").map_or(Some(0), |v| v.trim().parse().ok())?;
        if len > MAX_BODY {
            return None;
        }
        while buf.len() < len {
            if !read_more(conn, buf).await {
                return None;
            }
        }
        buf.drain(..len).collect()
    };
    Some(Recorded {
        method,
        target,
        headers,
        body,
        head,
        connection,
    })
}

async fn read_chunked(conn: &mut Box<dyn Conn>, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if !read_more(conn, buf).await {
                return None;
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            if !read_more(conn, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
        if size == 0 {
            return Some(body);
        }
        if body.len() > MAX_BODY {
            return None;
        }
    }
}

async fn read_more(conn: &mut Box<dyn Conn>, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}
