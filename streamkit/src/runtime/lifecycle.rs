//! The lifecycle [`State`] of an application instance and the listener of its changes.

use std::sync::Arc;

/// Lifecycle state of an application instance.
///
/// ```text
/// Created ──start──▶ Rebalancing ◀──▶ Running
///                        │               │
///                        └──close──▶ PendingShutdown ──▶ NotRunning
/// any state ──a thread fails──▶ Error
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Created,
    /// Some thread is joining the group or moving partitions.
    Rebalancing,
    /// Every thread owns its tasks and processes.
    Running,
    /// `close()` was called; threads are committing and leaving the group.
    PendingShutdown,
    /// Stopped cleanly.
    NotRunning,
    /// A thread failed; the instance stopped. See [`KafkaStreams::error`](crate::KafkaStreams::error).
    Error,
}

impl State {
    pub(crate) fn can_become(self, next: State) -> bool {
        use State::*;
        match (self, next) {
            (a, b) if a == b => false,
            (Created, Rebalancing | PendingShutdown | Error) => true,
            (Rebalancing, Running | PendingShutdown | Error) => true,
            (Running, Rebalancing | PendingShutdown | Error) => true,
            (PendingShutdown, NotRunning | Error) => true,
            _ => false,
        }
    }
}

/// Called with (old, new) on every state change.
pub type StateListener = Arc<dyn Fn(State, State) + Send + Sync>;
