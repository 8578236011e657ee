//! The per-tenant cap: on a standard queue a message group id is a tenant,
//! and at most `limit` handlers of one tenant run at once across every batch
//! of one engine ([`super::EngineConfig::max_in_flight_per_group`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Handlers running per tenant, shared by the clones of one engine.
#[derive(Debug)]
pub(super) struct GroupSlots {
    limit: usize,
    running: Mutex<HashMap<Arc<str>, usize>>,
    /// Bumped whenever a slot is given back: batches whose next messages
    /// wait for their tenant watch it.
    freed: watch::Sender<u64>,
}

impl GroupSlots {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            running: Mutex::new(HashMap::new()),
            freed: watch::Sender::new(0),
        }
    }

    /// Whether `group` has room for one more handler now.
    pub(super) fn has_room(&self, group: &str) -> bool {
        self.lock().get(group).is_none_or(|n| *n < self.limit)
    }

    /// Takes a slot of `group` if it has room.
    pub(super) fn try_take(&self, group: &Arc<str>) -> bool {
        let mut running = self.lock();
        let n = running.entry(Arc::clone(group)).or_insert(0);
        if *n >= self.limit {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back a slot taken by [`GroupSlots::try_take`].
    pub(super) fn give_back(&self, group: &str) {
        {
            let mut running = self.lock();
            if let Some(n) = running.get_mut(group) {
                *n -= 1;
                if *n == 0 {
                    running.remove(group);
                }
            }
        }
        self.freed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that changes whenever a slot is given back.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.freed.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        // Counts change in one statement each: a panic cannot leave one half-done.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Waits until a slot of any tenant is given back; never, without a cap.
pub(super) async fn slot_freed(freed: &mut Option<watch::Receiver<u64>>) {
    match freed {
        Some(freed) => {
            // The sender lives as long as the engine that runs this batch.
            let _ = freed.changed().await;
        }
        None => std::future::pending().await,
    }
}
