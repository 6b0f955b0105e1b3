//! The demo's HTTPS echo server: hyper over rustls on 127.0.0.1, with a
//! certificate generated at start, recording what it received so the
//! transcript can show it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Largest request body the demo server reads; the demo's bodies are tiny.
const MAX_BODY: usize = 1024 * 1024;

/// A request as the server received it.
pub(super) struct Received {
    /// Method.
    pub method: String,
    /// Request target, e.g. `/orders?id=1`.
    pub target: String,
    /// Header names (lower-case) and values, in received order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// Path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// Query part of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// The answer to a request: a status and a JSON body.
pub(super) type Answer = (u16, serde_json::Value);

/// What the server answers to each request.
pub(super) type Respond = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

/// A running server; it stops when dropped.
pub(super) struct EchoServer {
    origin: String,
    ca_pem: String,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    _tasks: JoinSet<()>,
}

impl EchoServer {
    /// Starts the server on 127.0.0.1 with a new self-signed certificate for
    /// `127.0.0.1` and `localhost`.
    pub async fn start(respond: Respond) -> std::io::Result<EchoServer> {
        let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .map_err(|e| other(&e))?;
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| other(&e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let origin = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let (log, count) = (received.clone(), connections.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, respond, log) = (acceptor.clone(), respond.clone(), log.clone());
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        let (respond, log) = (respond.clone(), log.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(answer(request, &respond, &log).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(EchoServer {
            origin,
            ca_pem: cert.cert.pem(),
            received,
            connections,
            _tasks: tasks,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The certificate a client must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Requests received so far.
    pub fn received(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    respond: &Respond,
    log: &Mutex<Vec<Received>>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let received = Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |pq| pq.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let (status, json) = respond(&received);
    log.lock().unwrap_or_else(|p| p.into_inner()).push(received);
    let mut response = hyper::Response::new(Full::new(Bytes::from(json.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
