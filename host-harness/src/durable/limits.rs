//! The tenants' limits kept in Restate (README "Rate limits and
//! back-pressure", "Durable runs"): each [`Book`] — a tenant's token bucket,
//! places in flight and back-off windows for one scope — is the state of the
//! virtual object `HttpsStepLimits`, keyed by tenant and scope. Restate runs
//! one handler of a key at a time, so every service process of a deployment
//! decides from the same book, and a process that is replaced forgets
//! nothing. The egress point asks it through Restate's ingress
//! ([`RestateLimits`]); a wait it imposes that does not fit in an attempt
//! becomes the step's `Retry-After`, which the durable run sleeps durably,
//! holding no runtime slot.

use crate::egress::limits::{Ask, Book, BoxFuture, Quota, SharedLimits, Verdict};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The state key of a book.
const BOOK: &str = "book";

/// The virtual object `HttpsStepLimits`: one book per key.
pub(crate) struct LimitsObject;

/// `decide`'s input: a request of the key's tenant and scope.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Decide {
    origin: String,
    /// The rule as written, and what it allows.
    rule: Option<(String, Quota)>,
    /// The asking process's clock (Unix ms).
    now_ms: u64,
    /// How long a place it takes may be held.
    lease_ms: u64,
}

/// `back_off`'s input.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BackOff {
    origin: String,
    until_ms: u64,
    now_ms: u64,
}

#[restate_sdk::object(name = "HttpsStepLimits", client_visibility = "pub(crate)")]
impl LimitsObject {
    /// Decides a request with the key's book ([`Book::admit`]) and keeps it.
    #[handler]
    async fn decide(
        &self,
        ctx: ObjectContext<'_>,
        ask: Json<Decide>,
    ) -> HandlerResult<Json<Verdict>> {
        let ask = ask.into_inner();
        let mut book = load(&ctx).await?;
        let rule = ask.rule.as_ref().map(|(key, quota)| (key.as_str(), quota));
        let verdict = book.admit(&ask.origin, rule, ask.now_ms, ask.lease_ms);
        store(&ctx, book, rule.map(|(_, q)| q), ask.now_ms);
        Ok(Json(verdict))
    }

    /// Gives a place back.
    #[handler]
    async fn release(&self, ctx: ObjectContext<'_>, lease: Json<u64>) -> HandlerResult<()> {
        let mut book = load(&ctx).await?;
        book.release(lease.into_inner());
        ctx.set(BOOK, Json(book));
        Ok(())
    }

    /// Closes an origin of the key's scope until a time.
    #[handler]
    async fn back_off(&self, ctx: ObjectContext<'_>, request: Json<BackOff>) -> HandlerResult<()> {
        let request = request.into_inner();
        let mut book = load(&ctx).await?;
        book.back_off(&request.origin, request.until_ms, request.now_ms);
        ctx.set(BOOK, Json(book));
        Ok(())
    }
}

async fn load(ctx: &ObjectContext<'_>) -> Result<Book, TerminalError> {
    Ok(ctx
        .get::<Json<Book>>(BOOK)
        .await?
        .map(Json::into_inner)
        .unwrap_or_default())
}

/// Keeps `book`, or drops it when it holds nothing (no memory for the
/// origins a tenant called once).
fn store(ctx: &ObjectContext<'_>, book: Book, quota: Option<&Quota>, now_ms: u64) {
    if book.is_idle(quota, now_ms) {
        ctx.clear(BOOK);
    } else {
        ctx.set(BOOK, Json(book));
    }
}

/// The key of a tenant's book for a scope: both, unambiguously.
fn key(tenant: &str, scope: &str) -> String {
    serde_json::json!([tenant, scope]).to_string()
}

/// [`SharedLimits`] kept in Restate, asked through its ingress.
#[derive(Clone)]
pub struct RestateLimits {
    client: restate_sdk::ingress::Client<Ingress>,
}

impl std::fmt::Debug for RestateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestateLimits")
    }
}

impl RestateLimits {
    /// Limits kept by the `HttpsStepLimits` object of the Restate whose
    /// ingress is at `ingress` (e.g. `http://127.0.0.1:8080`).
    pub fn new(ingress: &str) -> Result<RestateLimits, crate::Error> {
        let bad = |e: String| {
            crate::Error::policy(crate::error::PolicyProblem::Ingress {
                url: ingress.to_string(),
                reason: e,
            })
        };
        let uri: http::Uri = ingress
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let client = restate_sdk::ingress::Client::new(uri, Ingress(http))
            .map_err(|e| bad(e.to_string()))?;
        Ok(RestateLimits { client })
    }

    fn object(&self, tenant: &str, scope: &str) -> LimitsObjectIngressClient<Ingress> {
        LimitsObjectIngressClient::from_client(self.client.clone(), key(tenant, scope))
    }

    /// Sends a one-way call without waiting for it (a release, a window):
    /// when it is lost, the place expires and the window is missed, which
    /// the limits tolerate.
    fn send(&self, call: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(call);
        }
    }
}

impl SharedLimits for RestateLimits {
    fn decide<'a>(
        &'a self,
        ask: Ask<'a>,
        now_ms: u64,
        lease_ms: u64,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        let request = Decide {
            origin: ask.origin.to_string(),
            rule: ask.rule.map(|(key, quota)| (key.to_string(), *quota)),
            now_ms,
            lease_ms,
        };
        let object = self.object(ask.tenant, ask.scope());
        Box::pin(async move {
            let reply = object
                .decide(Json(request))
                .call()
                .await
                .map_err(|e| e.to_string())?;
            reply
                .into_body()
                .map(Json::into_inner)
                .map_err(|e| e.to_string())
        })
    }

    fn release(&self, tenant: &str, scope: &str, lease: u64) {
        let object = self.object(tenant, scope);
        self.send(async move {
            let _ = object.release(Json(lease)).send().await;
        });
    }

    fn back_off(&self, tenant: &str, scope: &str, origin: &str, until_unix_ms: u64) {
        let object = self.object(tenant, scope);
        let request = BackOff {
            origin: origin.to_string(),
            until_ms: until_unix_ms,
            now_ms: crate::egress::limits::unix_ms(),
        };
        self.send(async move {
            let _ = object.back_off(Json(request)).send().await;
        });
    }
}

/// Restate's ingress client over hyper (HTTP/1.1, pooled connections).
#[derive(Clone)]
pub(crate) struct Ingress(
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
);

/// A failed call of the ingress.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngressError {
    /// No exchange with the ingress.
    #[error(transparent)]
    Client(#[from] hyper_util::client::legacy::Error),
    /// The answer's body could not be read.
    #[error(transparent)]
    Body(#[from] hyper::Error),
}

impl restate_sdk::ingress::RequestExecutor for Ingress {
    type Error = IngressError;

    fn execute(
        &self,
        request: http::Request<Bytes>,
    ) -> impl std::future::Future<Output = Result<http::Response<Bytes>, IngressError>> + Send {
        let client = self.0.clone();
        async move {
            let response = client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(http::Response::from_parts(parts, body))
        }
    }
}
