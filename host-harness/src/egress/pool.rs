//! Keep-alive connections, one pool per tenant (it lives in [`crate::Tenant`],
//! so a connection is never shared between tenants), keyed by origin.
//!
//! # How to use
//! 1. [`ConnectionPool::checkout`] an idle connection to the origin, if any.
//! 2. Otherwise dial (after the policy checks), handshake with hyper and wrap
//!    the halves with [`Connection::spawn`] and [`Lease::new`].
//! 3. Send with [`Lease::send`]; when it gives the request back (the pooled
//!    connection had closed before anything was written), dial and send it
//!    on a fresh connection.
//! 4. Call [`Lease::release`] once the response body has ended: the
//!    connection goes back to the pool, and closes by itself if it is still
//!    idle after `max_idle`. A lease dropped before that closes its
//!    connection, which is how a cancelled or abandoned exchange ends.
//!
//! A pooled connection skips name resolution and the address check: it was
//! dialled to an address that passed them for this tenant, whose policy does
//! not change. The origin itself is still admitted on every request.

use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`ConnectionPool::checkout`] waits for an idle connection to
/// report ready; it normally does at once (or reports it has closed).
const READY_WAIT: Duration = Duration::from_secs(1);

/// The origin a connection was made to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// `true` for `https`.
    pub tls: bool,
    /// Host as written in the URL (lower-case name or IP literal).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// How a tenant reuses connections: at most `keep` idle ones per origin
/// (0: never), each idle at most `max_idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    keep: usize,
    max_idle: Duration,
}

impl Reuse {
    /// `keep` idle connections per origin, for `max_idle` each (at least 1 ms:
    /// tokio's timers have that resolution).
    pub fn new(keep: usize, max_idle: Duration) -> Self {
        Reuse {
            keep,
            max_idle: max_idle.max(Duration::from_millis(1)),
        }
    }

    /// Whether connections are kept at all.
    pub fn enabled(self) -> bool {
        self.keep > 0
    }
}

/// One HTTP/1.1 connection: hyper's sender and the task driving the socket.
/// Dropping it closes the connection (the task is aborted).
pub struct Connection<B> {
    sender: SendRequest<B>,
    task: tokio::task::AbortHandle,
    /// When the connection, idle in a pool, is to close by itself (as
    /// [`IdleClock`] milliseconds); [`IN_USE`] while an exchange has it.
    idle_until: Arc<AtomicU64>,
}

/// [`Connection::idle_until`] of a connection in use.
const IN_USE: u64 = u64::MAX;

/// Milliseconds on tokio's clock since the first connection of the
/// process, the unit of [`Connection::idle_until`].
struct IdleClock;

impl IdleClock {
    fn origin() -> tokio::time::Instant {
        static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(tokio::time::Instant::now)
    }

    fn now_ms() -> u64 {
        u64::try_from(IdleClock::origin().elapsed().as_millis()).unwrap_or(IN_USE - 1)
    }

    fn instant(ms: u64) -> tokio::time::Instant {
        IdleClock::origin() + Duration::from_millis(ms)
    }
}

impl<B> Drop for Connection<B> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<B> Connection<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Spawns the task that drives `conn` (one per connection, not per
    /// request: it outlives each exchange so the connection can be reused).
    /// An idle pooled connection closes at its deadline even if no one asks
    /// for it again, so a quiet tenant does not hold sockets. The deadline is
    /// checked lazily: leasing and releasing only store it, and the task
    /// wakes when the deadline it last saw passes (at most once per
    /// `max_idle` while the connection is busy) — never per request.
    pub fn spawn<T>(
        sender: SendRequest<B>,
        conn: hyper::client::conn::http1::Connection<T, B>,
        reuse: Reuse,
    ) -> Self
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let idle_until = Arc::new(AtomicU64::new(IN_USE));
        let deadline = idle_until.clone();
        let task = tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut check = tokio::time::Instant::now() + reuse.max_idle;
            loop {
                tokio::select! {
                    // Errors reach the exchange through the response future or body.
                    _ = &mut conn => return,
                    () = tokio::time::sleep_until(check) => {
                        match deadline.load(Ordering::Acquire) {
                            IN_USE => check = tokio::time::Instant::now() + reuse.max_idle,
                            until if until <= IdleClock::now_ms() => return,
                            until => check = IdleClock::instant(until),
                        }
                    }
                }
            }
        })
        .abort_handle();
        Connection {
            sender,
            task,
            idle_until,
        }
    }
}

struct Idle<B> {
    conn: Connection<B>,
    since: Instant,
}

type IdleMap<B> = HashMap<PoolKey, Vec<Idle<B>>>;

/// Idle keep-alive connections of one tenant, by origin.
pub struct ConnectionPool<B> {
    idle: Arc<Mutex<IdleMap<B>>>,
}

impl<B> Default for ConnectionPool<B> {
    fn default() -> Self {
        ConnectionPool {
            idle: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<B> std::fmt::Debug for ConnectionPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectionPool({} idle)", self.idle_count())
    }
}

impl<B> ConnectionPool<B> {
    /// Open idle connections right now, all origins (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.lock()
            .values()
            .flatten()
            .filter(|i| !i.conn.sender.is_closed())
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap<B>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every update is a single push or pop), so a poisoned lock is used.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection to `key` that is still open and
    /// has been idle less than `reuse`'s `max_idle`, leased for one exchange;
    /// expired and closed ones met on the way are closed and forgotten.
    pub async fn checkout(&self, key: &PoolKey, reuse: Reuse) -> Option<Lease<B>> {
        loop {
            let mut idle = {
                let mut map = self.lock();
                let list = map.get_mut(key)?;
                let found = loop {
                    match list.pop() {
                        None => break None,
                        Some(i)
                            if i.since.elapsed() < reuse.max_idle && !i.conn.sender.is_closed() =>
                        {
                            break Some(i);
                        }
                        Some(_) => {}
                    }
                };
                if list.is_empty() {
                    map.remove(key);
                }
                found?
            };
            // An idle connection is ready at once unless the server has closed
            // it since (then hyper reports an error and we try the next one).
            idle.conn.idle_until.store(IN_USE, Ordering::Release);
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, idle.conn.sender.ready()).await {
                return Some(Lease {
                    conn: idle.conn,
                    home: Some(Home {
                        idle: self.idle.clone(),
                        key: key.clone(),
                        reuse,
                    }),
                });
            }
        }
    }
}

/// A connection in use by one exchange. See the module docs.
pub struct Lease<B> {
    conn: Connection<B>,
    /// Where to return the connection; `None` when it is not to be reused.
    home: Option<Home<B>>,
}

/// The pool and origin a leased connection returns to, and the reuse settings.
struct Home<B> {
    idle: Arc<Mutex<IdleMap<B>>>,
    key: PoolKey,
    reuse: Reuse,
}

impl<B> Lease<B>
where
    B: http_body::Body + 'static,
{
    /// A lease on a new connection that returns to `pool` under `key` as
    /// `reuse` allows (never, when it is disabled).
    pub fn new(conn: Connection<B>, pool: &ConnectionPool<B>, key: PoolKey, reuse: Reuse) -> Self {
        Lease {
            conn,
            home: reuse.enabled().then(|| Home {
                idle: pool.idle.clone(),
                key,
                reuse,
            }),
        }
    }

    /// Sends `request`. `Err((error, Some(request)))` means nothing was written
    /// (the connection had closed) and the request can go on another one.
    pub async fn send(
        &mut self,
        request: http::Request<B>,
    ) -> Result<http::Response<hyper::body::Incoming>, (hyper::Error, Option<http::Request<B>>)>
    {
        self.conn
            .sender
            .try_send_request(request)
            .await
            .map_err(|mut e| {
                let request = e.take_message();
                (e.into_error(), request)
            })
    }

    /// The exchange is over and the response fully read: the connection may
    /// serve the next request of this tenant to the same origin.
    pub fn release(self) {
        let Lease {
            conn,
            home: Some(Home { idle, key, reuse }),
        } = self
        else {
            return;
        };
        if conn.sender.is_closed() {
            return;
        }
        let max_idle_ms = u64::try_from(reuse.max_idle.as_millis()).unwrap_or(IN_USE / 2);
        conn.idle_until.store(
            IdleClock::now_ms()
                .saturating_add(max_idle_ms)
                .min(IN_USE - 1),
            Ordering::Release,
        );
        let mut map = idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(key).or_default();
        if list.len() >= reuse.keep {
            // The least recently used goes (and is closed).
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}
