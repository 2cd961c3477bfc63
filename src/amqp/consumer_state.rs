//! Whether the worker holds a live consumer: the session sets it, `/readyz`
//! reads it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether the worker holds a live consumer now; clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct ConsumerState {
    consuming: Arc<AtomicBool>,
}

impl ConsumerState {
    pub(super) fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::SeqCst);
    }

    /// Whether the worker is consuming now.
    pub fn consuming(&self) -> bool {
        self.consuming.load(Ordering::SeqCst)
    }
}
