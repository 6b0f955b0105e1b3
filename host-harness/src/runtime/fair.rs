//! Run slots shared fairly between tenants. The runtime has `capacity`
//! slots (its pool is sized for them); a tenant holds at most its share of
//! them at once (`max_concurrent_runs`). A run beyond its tenant's share, or
//! beyond the capacity, waits in its tenant's own queue — bounded, and for
//! at most the runtime's `slot_wait` — and never takes a slot another tenant
//! could use; a freed slot goes to the tenants with waiting runs in turn
//! (round robin), not to whichever run came first, so one tenant's backlog
//! delays another tenant's run by at most one slot's turn.
//!
//! No wasmtime types: this is policy, tested on its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why a run got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot was in use (and stayed so for the wait).
    Full,
    /// The tenant had its share running (and kept it for the wait).
    Share,
    /// The tenant's queue of waiting runs was full.
    QueueFull,
}

/// The slots of one runtime.
pub(crate) struct Slots {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    free: usize,
    tenants: HashMap<usize, TenantSlots>,
    /// Tenants with waiting runs, in the order they get the next free slot.
    turns: VecDeque<usize>,
    next_waiter: u64,
}

#[derive(Default)]
struct TenantSlots {
    running: usize,
    share: usize,
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// A slot held by a run of `tenant`; given back when dropped.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    tenant: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.release(self.tenant);
    }
}

/// A queued run's place: on drop before it got its slot (timed out, or the
/// caller gave up) it leaves the queue, or gives back a slot granted in the
/// meantime.
struct Waiting {
    slots: Arc<Slots>,
    tenant: usize,
    id: u64,
    granted: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut granted) = self.granted.take() else {
            return;
        };
        let mut state = self.slots.lock();
        // Under the lock no grant is under way: the slot was either sent
        // (and is ours to give back) or the run is still queued.
        if granted.try_recv().is_ok() {
            state.release(self.tenant);
        } else if let Some(t) = state.tenants.get_mut(&self.tenant) {
            t.waiting.retain(|(id, _)| *id != self.id);
            state.forget_if_idle(self.tenant);
        }
    }
}

impl State {
    /// Gives a slot of `tenant` back and hands free slots to waiting runs.
    fn release(&mut self, tenant: usize) {
        self.free += 1;
        if let Some(t) = self.tenants.get_mut(&tenant) {
            t.running = t.running.saturating_sub(1);
        }
        self.dispatch();
        self.forget_if_idle(tenant);
    }

    /// Hands free slots to the waiting runs of the tenants whose turn it is
    /// and that are below their share.
    fn dispatch(&mut self) {
        let mut passes = self.turns.len();
        while self.free > 0 && passes > 0 {
            let Some(tenant) = self.turns.pop_front() else {
                break;
            };
            let Some(t) = self.tenants.get_mut(&tenant) else {
                passes = self.turns.len();
                continue;
            };
            if t.running >= t.share {
                // At its share: it waits for one of its own runs to end.
                self.turns.push_back(tenant);
                passes -= 1;
                continue;
            }
            // The first waiter still listening gets it (a dropped one has left).
            let mut granted = false;
            while let Some((_, waiter)) = t.waiting.pop_front() {
                if waiter.send(()).is_ok() {
                    granted = true;
                    break;
                }
            }
            if granted {
                t.running += 1;
                self.free -= 1;
            }
            if !t.waiting.is_empty() {
                self.turns.push_back(tenant);
            } else if t.running == 0 {
                // Only runs that had gone were waiting.
                self.tenants.remove(&tenant);
            }
            passes = self.turns.len();
        }
    }

    /// Drops a tenant's entry once it holds and awaits nothing, so a
    /// long-lived runtime keeps no state per tenant it ever saw.
    fn forget_if_idle(&mut self, tenant: usize) {
        if self
            .tenants
            .get(&tenant)
            .is_some_and(|t| t.running == 0 && t.waiting.is_empty())
        {
            self.tenants.remove(&tenant);
            self.turns.retain(|&t| t != tenant);
        }
    }
}

impl Slots {
    /// `capacity` slots, all free.
    pub(crate) fn new(capacity: usize) -> Arc<Slots> {
        Arc::new(Slots {
            capacity,
            state: Mutex::new(State {
                free: capacity,
                tenants: HashMap::new(),
                turns: VecDeque::new(),
                next_waiter: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements: a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots in use now.
    pub(crate) fn in_use(&self) -> usize {
        self.capacity - self.lock().free
    }

    /// A slot for a run of `tenant`, which may hold `share` at once and
    /// queue `max_queued` more: at once when one is free and the tenant is
    /// below its share, else after waiting in the tenant's queue for at most
    /// `wait` (zero: not at all).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        tenant: usize,
        share: usize,
        max_queued: usize,
        wait: Duration,
    ) -> Result<Slot, Refused> {
        let share = share.clamp(1, self.capacity);
        let (id, receiver, refused) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let t = state.tenants.entry(tenant).or_default();
            t.share = share;
            // Straight in when a slot is free, the tenant is below its share
            // and none of its runs waits already (its runs keep their order).
            // Any other tenant waiting then is at its own share.
            if state.free > 0 && t.running < share && t.waiting.is_empty() {
                t.running += 1;
                state.free -= 1;
                return Ok(Slot {
                    slots: self.clone(),
                    tenant,
                });
            }
            let refused = if t.running >= share {
                Refused::Share
            } else {
                Refused::Full
            };
            if wait.is_zero() || t.waiting.len() >= max_queued {
                state.forget_if_idle(tenant);
                return Err(if wait.is_zero() {
                    refused
                } else {
                    Refused::QueueFull
                });
            }
            let id = state.next_waiter;
            state.next_waiter += 1;
            let (sender, receiver) = oneshot::channel();
            t.waiting.push_back((id, sender));
            if !state.turns.contains(&tenant) {
                state.turns.push_back(tenant);
            }
            (id, receiver, refused)
        };
        let mut waiting = Waiting {
            slots: self.clone(),
            tenant,
            id,
            granted: Some(receiver),
        };
        let granted = match waiting.granted.as_mut() {
            Some(receiver) => tokio::time::timeout(wait, receiver).await,
            None => return Err(refused),
        };
        match granted {
            Ok(Ok(())) => {
                // Granted: the slot is this run's now, no longer the waiter's.
                waiting.granted = None;
                Ok(Slot {
                    slots: self.clone(),
                    tenant,
                })
            }
            // Timed out: dropping `waiting` leaves the queue, or gives back
            // a slot granted at the last moment.
            _ => Err(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::ZERO;
    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_tenant_holds_at_most_its_share() {
        let slots = Slots::new(4);
        let a1 = slots.acquire(1, 2, 8, NO_WAIT).await.expect("a slot");
        let _a2 = slots.acquire(1, 2, 8, NO_WAIT).await.expect("a second");
        assert_eq!(
            slots.acquire(1, 2, 8, NO_WAIT).await.err(),
            Some(Refused::Share)
        );
        // Another tenant still gets the slots the first may not take.
        let _b1 = slots.acquire(2, 2, 8, NO_WAIT).await.expect("b's first");
        let _b2 = slots.acquire(2, 2, 8, NO_WAIT).await.expect("b's second");
        assert_eq!(
            slots.acquire(3, 2, 8, NO_WAIT).await.err(),
            Some(Refused::Full)
        );
        assert_eq!(slots.in_use(), 4);
        drop(a1);
        assert_eq!(slots.in_use(), 3);
        let _c = slots
            .acquire(3, 2, 8, NO_WAIT)
            .await
            .expect("the freed slot");
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin_to_the_waiting_tenants() {
        let slots = Slots::new(2);
        let held = [
            slots.acquire(1, 2, 100, NO_WAIT).await.expect("a"),
            slots.acquire(1, 2, 100, NO_WAIT).await.expect("a"),
        ];
        // Tenant 1 queues ten runs, then tenant 2 one: tenant 2's run gets
        // the second slot freed, not the eleventh.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (tenant, n) in [(1, 10), (2, 1)] {
            for _ in 0..n {
                let (slots, order) = (slots.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    let slot = slots
                        .acquire(tenant, 2, 100, WAIT)
                        .await
                        .expect("a slot in time");
                    order.lock().expect("lock").push(tenant);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    drop(slot);
                }));
                tokio::task::yield_now().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        for t in tasks {
            t.await.expect("join");
        }
        let order = order.lock().expect("lock").clone();
        let second = order.iter().position(|&t| t == 2).expect("tenant 2 ran");
        assert!(
            second <= 1,
            "tenant 2 waited behind tenant 1's backlog: {order:?}"
        );
        assert_eq!(slots.in_use(), 0);
        assert!(
            slots.lock().tenants.is_empty(),
            "nothing is kept per idle tenant"
        );
    }

    #[tokio::test]
    async fn a_bounded_queue_and_a_bounded_wait() {
        let slots = Slots::new(1);
        let held = slots.acquire(1, 1, 1, NO_WAIT).await.expect("the slot");
        let short = Duration::from_millis(20);
        assert_eq!(
            slots.acquire(1, 1, 1, short).await.err(),
            Some(Refused::Share)
        );
        // One queued, the next refused at once.
        let queued = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(1, 1, 1, WAIT).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            slots.acquire(1, 1, 1, WAIT).await.err(),
            Some(Refused::QueueFull)
        );
        drop(held);
        assert_eq!(queued.await.expect("join"), Ok(()));
        assert_eq!(slots.in_use(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_nothing_behind() {
        let slots = Slots::new(1);
        let held = slots.acquire(1, 1, 8, NO_WAIT).await.expect("the slot");
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(2, 1, 8, WAIT).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(
            slots.in_use(),
            0,
            "the slot came back, not to a run that is gone"
        );
        let _again = slots.acquire(3, 1, 8, NO_WAIT).await.expect("free again");
    }
}
