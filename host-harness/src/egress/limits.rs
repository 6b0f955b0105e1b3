//! Per-destination limits of a tenant's requests, enforced where every
//! request passes (README "Rate limits and back-pressure"):
//!
//! - **Rate limits** (`[[rate_limits]]`): for the origins a rule covers, a
//!   token bucket (`requests_per_second`, `burst`) and a cap on the requests
//!   open at once (`max_in_flight`), shared by all of the tenant's runs.
//! - **Back-pressure** (`shared_backoff`): an upstream `429`, or `503` with
//!   `Retry-After`, closes that origin for the tenant until the time it
//!   names (capped by `max_backoff_ms`); the tenant's other requests to it
//!   are answered locally until then and never reach it.
//!
//! A request that may not go now is held while the wait fits in what is
//! left of its attempt, else answered locally: `429` with `Retry-After` and
//! the [`LOCAL_LIMIT_HEADER`] marker, as Envoy's local rate limit filter
//! marks its own answers; the step retries it like any 429.
//!
//! The decisions are one piece of plain data per tenant and scope (a rule,
//! or an origin no rule covers), a [`Book`], the same wherever it is kept:
//! in this process ([`LocalLimits`], the default) or in a store several
//! service processes share (the Restate service keeps each book in a
//! virtual object; an embedder can bring its own [`SharedLimits`]). Times
//! are Unix milliseconds, meaningful to every process that shares a book.
//! No wasmtime types.

use super::policy::{AllowedOrigin, Scheme};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header that marks a `429` as the host's own answer, with the rule or
/// window that held the request back (`requests_per_second
/// https://api.example.com:443`, `max_in_flight …`, `backoff …`): the
/// step's own constant, so the step reads what the host writes.
pub use https_step_core::response::LOCAL_LIMIT_HEADER;

/// The `Retry-After` of a local answer when the wait is not known (a place
/// among `max_in_flight` frees when another request ends).
const UNKNOWN_WAIT: Duration = Duration::from_secs(1);
/// How often a request held for a place among `max_in_flight` looks again
/// at a book it cannot be woken from (a shared store's).
const PLACE_POLL: Duration = Duration::from_millis(50);
/// Most back-off windows one book keeps: past ones go first, then the
/// oldest — never memory.
const MAX_WINDOWS: usize = 1024;

/// One checked `[[rate_limits]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    /// The origins it covers (the `allowed_hosts` grammar).
    pub(crate) origin: AllowedOrigin,
    /// The rule as written back (`scheme://host:port`): its book's scope.
    pub(crate) key: String,
    /// What it allows.
    pub(crate) quota: Quota,
}

/// What a rule allows, as a book needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// Tokens added per second; none: no rate.
    pub per_second: Option<f64>,
    /// The bucket's size: how many requests may go at once after a quiet spell.
    pub burst: u32,
    /// The most requests open at once; none: no cap.
    pub max_in_flight: Option<u32>,
}

/// What held a request back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "held")]
pub enum Held {
    /// The rule's token bucket was empty.
    Rate {
        /// The rule, as written (`scheme://host:port`).
        rule: String,
    },
    /// The rule's `max_in_flight` requests were open.
    InFlight {
        /// The rule, as written.
        rule: String,
    },
    /// The origin answered 429 (or 503 with `Retry-After`) and asked the
    /// tenant to wait.
    Backoff {
        /// The origin, `scheme://host:port`.
        origin: String,
    },
    /// The store that keeps the limits could not be asked; until it can,
    /// nothing goes unchecked.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl Held {
    /// The [`LOCAL_LIMIT_HEADER`] value: which setting, and for what.
    pub fn marker(&self) -> String {
        match self {
            Held::Rate { rule } => format!("requests_per_second {rule}"),
            Held::InFlight { rule } => format!("max_in_flight {rule}"),
            Held::Backoff { origin } => format!("backoff {origin}"),
            Held::Unavailable { reason } => format!("unavailable {reason}"),
        }
    }
}

/// What a book decided about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Go; with a rule that caps requests in flight, holding place `lease`
    /// until it is released.
    Go {
        /// The place taken, to release when the request is over.
        lease: Option<u64>,
    },
    /// A token comes after `wait_ms`.
    Wait {
        /// Milliseconds until a token.
        wait_ms: u64,
        /// The rule.
        held: Held,
    },
    /// Every place is taken until another request ends.
    Full {
        /// The rule.
        held: Held,
    },
    /// The origin is closed for `wait_ms` more.
    Closed {
        /// Milliseconds the window stays closed.
        wait_ms: u64,
        /// The window.
        held: Held,
    },
}

/// The limits of one tenant's scope — a rule and the origins it covers, or
/// one origin no rule covers — as plain data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// Tokens, and the Unix millisecond they were counted at.
    bucket: Option<(f64, u64)>,
    /// Places taken among `max_in_flight`: (lease, Unix ms it expires at).
    leases: Vec<(u64, u64)>,
    /// Origins closed until a Unix millisecond.
    closed: Vec<(String, u64)>,
    next_lease: u64,
}

impl Book {
    /// Decides whether a request to `origin` under `quota` (of the rule
    /// `rule`) may go at `now_ms`; a place it takes expires after
    /// `lease_ms` (what the request may last: a process that dies holding
    /// it frees it then).
    pub fn admit(
        &mut self,
        origin: &str,
        rule: Option<(&str, &Quota)>,
        now_ms: u64,
        lease_ms: u64,
    ) -> Verdict {
        self.closed.retain(|(_, until)| *until > now_ms);
        if let Some((_, until)) = self.closed.iter().find(|(o, _)| o == origin) {
            return Verdict::Closed {
                wait_ms: until - now_ms,
                held: Held::Backoff {
                    origin: origin.to_string(),
                },
            };
        }
        let Some((rule, quota)) = rule else {
            return Verdict::Go { lease: None };
        };
        self.leases.retain(|(_, expires)| *expires > now_ms);
        if let Some(max) = quota.max_in_flight
            && self.leases.len() >= max as usize
        {
            return Verdict::Full {
                held: Held::InFlight {
                    rule: rule.to_string(),
                },
            };
        }
        if let Some(rate) = quota.per_second {
            let burst = f64::from(quota.burst);
            let (tokens, at) = self.bucket.unwrap_or((burst, now_ms));
            let tokens = (tokens + now_ms.saturating_sub(at) as f64 / 1000.0 * rate).min(burst);
            if tokens < 1.0 {
                self.bucket = Some((tokens, now_ms));
                return Verdict::Wait {
                    wait_ms: ((1.0 - tokens) / rate * 1000.0).ceil() as u64,
                    held: Held::Rate {
                        rule: rule.to_string(),
                    },
                };
            }
            self.bucket = Some((tokens - 1.0, now_ms));
        }
        if quota.max_in_flight.is_none() {
            return Verdict::Go { lease: None };
        }
        let lease = self.next_lease;
        self.next_lease += 1;
        self.leases.push((lease, now_ms.saturating_add(lease_ms)));
        Verdict::Go { lease: Some(lease) }
    }

    /// Gives place `lease` back.
    pub fn release(&mut self, lease: u64) {
        self.leases.retain(|(id, _)| *id != lease);
    }

    /// Closes `origin` until `until_unix_ms` (a later end wins).
    pub fn back_off(&mut self, origin: &str, until_unix_ms: u64, now_ms: u64) {
        self.closed.retain(|(_, until)| *until > now_ms);
        match self.closed.iter_mut().find(|(o, _)| o == origin) {
            Some((_, until)) => *until = (*until).max(until_unix_ms),
            None => {
                if self.closed.len() >= MAX_WINDOWS
                    && let Some(i) = (0..self.closed.len()).min_by_key(|&i| self.closed[i].1)
                {
                    self.closed.swap_remove(i);
                }
                self.closed.push((origin.to_string(), until_unix_ms));
            }
        }
    }

    /// Whether the book holds nothing worth keeping at `now_ms`: no place
    /// taken, no window open and a full bucket (a store may drop it).
    pub fn is_idle(&self, quota: Option<&Quota>, now_ms: u64) -> bool {
        let full = match (
            self.bucket,
            quota.and_then(|q| q.per_second.map(|r| (r, q.burst))),
        ) {
            (Some((tokens, at)), Some((rate, burst))) => {
                tokens + now_ms.saturating_sub(at) as f64 / 1000.0 * rate >= f64::from(burst)
            }
            _ => true,
        };
        full && self.leases.iter().all(|(_, e)| *e <= now_ms)
            && self.closed.iter().all(|(_, u)| *u <= now_ms)
    }
}

/// A request that may go, holding its place among `max_in_flight` until
/// dropped (when its response has been read, or it failed).
pub type Permit = Box<dyn Send + Sync>;

/// What a request may do now.
pub enum Admission {
    /// Go, holding this until the request is over.
    Go(Permit),
    /// Not within the time it may be held: answer it locally, asking the
    /// step to come back after `retry_after`.
    Refused {
        /// When to try again.
        retry_after: Duration,
        /// What held it back.
        held: Held,
    },
}

/// A request asking to go: whose, where, under which rule.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The tenant's id.
    pub tenant: &'a str,
    /// The request's origin, `scheme://host:port`.
    pub origin: &'a str,
    /// The tenant's first rule that covers the origin, as written, and what
    /// it allows.
    pub rule: Option<(&'a str, &'a Quota)>,
    /// The longest the request may be held before it is answered locally
    /// (the egress point gives it half of what is left of its attempt).
    pub hold: Duration,
}

impl Ask<'_> {
    /// The scope whose book decides: the rule, or the origin itself.
    pub fn scope(&self) -> &str {
        self.rule.map_or(self.origin, |(rule, _)| rule)
    }
}

/// A boxed future, for the object-safe [`SharedLimits`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a tenant's [`Book`]s live. [`LocalLimits`] keeps them in this
/// process; a store several processes share makes the limits hold across
/// them.
pub trait SharedLimits: Send + Sync + std::fmt::Debug {
    /// Decides `ask` with the book of its tenant and scope at `now_ms`
    /// ([`Book::admit`]) and keeps the book; an error when the store cannot
    /// be asked.
    fn decide<'a>(
        &'a self,
        ask: Ask<'a>,
        now_ms: u64,
        lease_ms: u64,
    ) -> BoxFuture<'a, Result<Verdict, String>>;
    /// Gives place `lease` of `ask`'s book back.
    fn release(&self, tenant: &str, scope: &str, lease: u64);
    /// Closes `origin` (in `scope`'s book) for `tenant` until `until_unix_ms`.
    fn back_off(&self, tenant: &str, scope: &str, origin: &str, until_unix_ms: u64);
}

/// Decides `ask` against `store`: at once, after waits that fit in
/// `ask.hold`, or not (the caller answers it locally).
pub async fn admit(store: &Arc<dyn SharedLimits>, ask: Ask<'_>) -> Admission {
    let deadline = tokio::time::Instant::now() + ask.hold;
    // A place a request holds: until the end of its attempt, at the most.
    let lease_ms = u64::try_from(ask.hold.as_millis())
        .unwrap_or(u64::MAX)
        .max(1000);
    loop {
        let refused = |retry_after: Duration, held| Admission::Refused {
            retry_after: retry_after.max(Duration::from_millis(1)),
            held,
        };
        let (wait, held) = match store.decide(ask, unix_ms(), lease_ms).await {
            Ok(Verdict::Go { lease }) => {
                return Admission::Go(Box::new(lease.map(|lease| Place {
                    store: store.clone(),
                    tenant: ask.tenant.to_string(),
                    scope: ask.scope().to_string(),
                    lease,
                })));
            }
            // A back-off window is never waited out inside an attempt: the
            // step is told to come back (a durable engine then sleeps
            // holding nothing).
            Ok(Verdict::Closed { wait_ms, held }) => {
                return refused(Duration::from_millis(wait_ms), held);
            }
            Ok(Verdict::Wait { wait_ms, held }) => (Some(Duration::from_millis(wait_ms)), held),
            Ok(Verdict::Full { held }) => (None, held),
            // A store that cannot be asked keeps its limits closed: no
            // request goes unchecked.
            Err(reason) => return refused(UNKNOWN_WAIT, Held::Unavailable { reason }),
        };
        let now = tokio::time::Instant::now();
        match wait {
            Some(wait) if now + wait <= deadline => tokio::time::sleep(wait).await,
            Some(wait) => return refused(wait, held),
            None if now + PLACE_POLL <= deadline => tokio::time::sleep(PLACE_POLL).await,
            None => return refused(UNKNOWN_WAIT, held),
        }
    }
}

/// A place among a rule's `max_in_flight`, given back when dropped.
struct Place {
    store: Arc<dyn SharedLimits>,
    tenant: String,
    scope: String,
    lease: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.store.release(&self.tenant, &self.scope, self.lease);
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The books of this process: what the runs of the tenants that hold it
/// share. The default.
#[derive(Debug, Default)]
pub struct LocalLimits {
    books: Mutex<HashMap<(String, String), Book>>,
}

impl LocalLimits {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Book>> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SharedLimits for LocalLimits {
    fn decide<'a>(
        &'a self,
        ask: Ask<'a>,
        now_ms: u64,
        lease_ms: u64,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        let key = (ask.tenant.to_string(), ask.scope().to_string());
        let mut books = self.lock();
        let book = books.entry(key.clone()).or_default();
        let verdict = book.admit(ask.origin, ask.rule, now_ms, lease_ms);
        // A book with nothing in it is dropped: a tenant that calls many
        // origins keeps no memory for the quiet ones.
        if book.is_idle(ask.rule.map(|(_, q)| q), now_ms)
            && matches!(verdict, Verdict::Go { lease: None })
        {
            books.remove(&key);
        }
        Box::pin(std::future::ready(Ok(verdict)))
    }

    fn release(&self, tenant: &str, scope: &str, lease: u64) {
        if let Some(book) = self
            .lock()
            .get_mut(&(tenant.to_string(), scope.to_string()))
        {
            book.release(lease);
        }
    }

    fn back_off(&self, tenant: &str, scope: &str, origin: &str, until_unix_ms: u64) {
        self.lock()
            .entry((tenant.to_string(), scope.to_string()))
            .or_default()
            .back_off(origin, until_unix_ms, unix_ms());
    }
}

/// The first rule of `rules` that covers `scheme://host:port`.
pub(crate) fn rule_for<'a>(
    rules: &'a [RateRule],
    scheme: Scheme,
    host: &url::Host<String>,
    port: u16,
) -> Option<&'a RateRule> {
    rules.iter().find(|r| r.origin.matches(scheme, host, port))
}

/// When an upstream response asks the tenant to stay away: a `429`, or a
/// `503` with `Retry-After` (RFC 9110 §10.2.3: seconds or an HTTP date),
/// until then, capped at `max` from now. A 429 without `Retry-After` names
/// no time, so it closes nothing (the step's own backoff applies).
pub(crate) fn backoff_until(
    status: u16,
    retry_after: Option<&str>,
    now_unix_ms: u64,
    max: Duration,
) -> Option<u64> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    let value = retry_after?.trim();
    let wait_ms = match value.parse::<u64>() {
        Ok(seconds) => seconds.saturating_mul(1000),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            let at_ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
            u64::try_from(at_ms).ok()?.saturating_sub(now_unix_ms)
        }
    };
    let capped = wait_ms.min(u64::try_from(max.as_millis()).unwrap_or(u64::MAX));
    (capped > 0).then(|| now_unix_ms.saturating_add(capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "https://api.test:443";

    fn quota(per_second: Option<f64>, burst: u32, max_in_flight: Option<u32>) -> Quota {
        Quota {
            per_second,
            burst,
            max_in_flight,
        }
    }

    #[test]
    fn a_book_allows_a_burst_then_the_rate() {
        let mut book = Book::default();
        let q = quota(Some(5.0), 5, None);
        for _ in 0..5 {
            assert_eq!(
                book.admit(RULE, Some((RULE, &q)), 1_000, 0),
                Verdict::Go { lease: None }
            );
        }
        assert_eq!(
            book.admit(RULE, Some((RULE, &q)), 1_000, 0),
            Verdict::Wait {
                wait_ms: 200,
                held: Held::Rate { rule: RULE.into() }
            }
        );
        assert_eq!(
            book.admit(RULE, Some((RULE, &q)), 1_200, 0),
            Verdict::Go { lease: None }
        );
        // A quiet spell refills up to the burst, no further.
        for _ in 0..5 {
            assert!(matches!(
                book.admit(RULE, Some((RULE, &q)), 60_000, 0),
                Verdict::Go { .. }
            ));
        }
        assert!(matches!(
            book.admit(RULE, Some((RULE, &q)), 60_000, 0),
            Verdict::Wait { .. }
        ));
    }

    #[test]
    fn places_are_held_until_released_or_expired() {
        let mut book = Book::default();
        let q = quota(None, 1, Some(2));
        let Verdict::Go { lease: Some(a) } = book.admit(RULE, Some((RULE, &q)), 0, 10_000) else {
            panic!("a place")
        };
        assert!(matches!(
            book.admit(RULE, Some((RULE, &q)), 0, 10_000),
            Verdict::Go { lease: Some(_) }
        ));
        assert!(matches!(
            book.admit(RULE, Some((RULE, &q)), 0, 10_000),
            Verdict::Full { .. }
        ));
        book.release(a);
        assert!(matches!(
            book.admit(RULE, Some((RULE, &q)), 0, 10_000),
            Verdict::Go { lease: Some(_) }
        ));
        // Places of a process that died expire.
        assert!(matches!(
            book.admit(RULE, Some((RULE, &q)), 10_001, 10_000),
            Verdict::Go { .. }
        ));
    }

    #[test]
    fn a_window_closes_one_origin_until_it_ends() {
        let mut book = Book::default();
        book.back_off(RULE, 6_000, 1_000);
        assert_eq!(
            book.admit(RULE, None, 1_000, 0),
            Verdict::Closed {
                wait_ms: 5_000,
                held: Held::Backoff {
                    origin: RULE.into()
                }
            }
        );
        assert_eq!(
            book.admit("https://other.test:443", None, 1_000, 0),
            Verdict::Go { lease: None }
        );
        book.back_off(RULE, 2_000, 1_000);
        assert!(
            matches!(
                book.admit(RULE, None, 5_000, 0),
                Verdict::Closed { wait_ms: 1_000, .. }
            ),
            "an earlier end does not shorten it"
        );
        assert_eq!(
            book.admit(RULE, None, 6_000, 0),
            Verdict::Go { lease: None }
        );
        assert!(book.is_idle(None, 6_000));
    }

    fn ask(tenant: &'static str, q: Option<&'static Quota>, hold_ms: u64) -> Ask<'static> {
        Ask {
            tenant,
            origin: RULE,
            rule: q.map(|q| (RULE, q)),
            hold: Duration::from_millis(hold_ms),
        }
    }

    #[tokio::test]
    async fn requests_are_held_within_their_attempt_else_refused() {
        static RATE: Quota = Quota {
            per_second: Some(10.0),
            burst: 1,
            max_in_flight: None,
        };
        let store: Arc<dyn SharedLimits> = Arc::new(LocalLimits::default());
        assert!(matches!(
            admit(&store, ask("t", Some(&RATE), 0)).await,
            Admission::Go(_)
        ));
        // The next token comes in 100 ms: refused when nothing may be waited…
        assert!(matches!(
            admit(&store, ask("t", Some(&RATE), 0)).await,
            Admission::Refused { .. }
        ));
        // …held when it fits.
        let started = std::time::Instant::now();
        assert!(matches!(
            admit(&store, ask("t", Some(&RATE), 1_000)).await,
            Admission::Go(_)
        ));
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
        // Another tenant's book is its own.
        assert!(matches!(
            admit(&store, ask("u", Some(&RATE), 0)).await,
            Admission::Go(_)
        ));
    }

    #[tokio::test]
    async fn a_place_is_given_back_when_its_permit_drops() {
        static ONE: Quota = Quota {
            per_second: None,
            burst: 1,
            max_in_flight: Some(1),
        };
        let store: Arc<dyn SharedLimits> = Arc::new(LocalLimits::default());
        let Admission::Go(first) = admit(&store, ask("t", Some(&ONE), 0)).await else {
            panic!("the place")
        };
        assert!(matches!(
            admit(&store, ask("t", Some(&ONE), 0)).await,
            Admission::Refused {
                held: Held::InFlight { .. },
                ..
            }
        ));
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move {
                matches!(
                    admit(&store, ask("t", Some(&ONE), 5_000)).await,
                    Admission::Go(_)
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert!(
            waiting.await.expect("join"),
            "the freed place went to the held request"
        );
    }

    #[tokio::test]
    async fn a_back_off_window_refuses_that_tenant_at_once() {
        let store: Arc<dyn SharedLimits> = Arc::new(LocalLimits::default());
        store.back_off("t", RULE, RULE, unix_ms() + 5_000);
        match admit(&store, ask("t", None, 60_000)).await {
            Admission::Refused { retry_after, held } => {
                assert_eq!(
                    held,
                    Held::Backoff {
                        origin: RULE.into()
                    }
                );
                assert!(retry_after > Duration::from_secs(4), "{retry_after:?}");
            }
            Admission::Go(_) => panic!("the window is open"),
        }
        assert!(
            matches!(admit(&store, ask("u", None, 0)).await, Admission::Go(_)),
            "another tenant goes"
        );
    }

    #[test]
    fn retry_after_names_the_window() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff_until(429, Some("5"), 1_000, hour), Some(6_000));
        assert_eq!(backoff_until(503, Some(" 2 "), 1_000, hour), Some(3_000));
        assert_eq!(backoff_until(429, None, 1_000, hour), None, "no time named");
        assert_eq!(backoff_until(500, Some("5"), 1_000, hour), None);
        assert_eq!(
            backoff_until(429, Some("86400"), 0, hour),
            Some(3_600_000),
            "capped"
        );
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(100));
        assert_eq!(backoff_until(429, Some(&date), 90_000, hour), Some(100_000));
        assert_eq!(backoff_until(429, Some("soon"), 0, hour), None);
    }
}
