//! One single-threaded tokio runtime per core (the runtime's per-core
//! mode, [`RuntimeBuilder::per_core`](super::RuntimeBuilder::per_core)).
//!
//! Each tenant is pinned to one core, so a run, the tasks wasi:http spawns
//! for its requests and the tenant's pooled connections all stay on one
//! thread: the many hand-offs of one request (the guest's store task, the
//! send task, the body task, hyper's connection task) are then queue pushes
//! on that thread instead of cross-thread wake-ups. A call made from another
//! thread — a host's own runtime — costs two hand-offs: there and back. The
//! engine, the `InstancePre` and the instance pool stay shared by all cores.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The core this thread is: (its [`Cores`]' id, the core's index).
    static CURRENT: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The per-core runtimes of one step runtime. Dropping it stops their
/// threads (runs still on them are cancelled, as when a host drops a run).
pub(super) struct Cores {
    id: usize,
    handles: Vec<tokio::runtime::Handle>,
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Cores {
    /// Starts `n` (at least one) threads, each running a current-thread
    /// tokio runtime with I/O and timers.
    pub(super) fn start(n: usize) -> std::io::Result<Cores> {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for index in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("https-step-core-{index}"))
                .spawn(move || {
                    CURRENT.set(Some((id, index)));
                    // Returns when the sender is dropped with the `Cores`.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Cores {
            id,
            handles,
            _stop: stops,
        })
    }

    /// Runs `work` on the core of the tenant with `hint` (its
    /// [`crate::Tenant`] number): in place when this thread is that core,
    /// else spawned there and awaited. Dropping the returned future cancels
    /// the work wherever it runs.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        hint: usize,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let index = hint % self.handles.len();
        if CURRENT.get() == Some((self.id, index)) {
            return Ok(work.await);
        }
        let mut task = AbortOnDrop(self.handles[index].spawn(work));
        (&mut task.0).await
    }
}

/// Aborts the task when the caller stops waiting for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
