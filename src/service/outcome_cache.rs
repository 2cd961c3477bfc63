//! An in-process cache of parsed campaign outcome lists.
//!
//! Outcome lists change rarely (a campaign edit) and are read on every
//! request, so each is parsed and rendered once and shared for `ttl`. An
//! edit shows within `ttl` at worst. Call records are never cached: they
//! come and go with calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::outcomes::OutcomeList;

/// More campaigns than any deployment has: past it the cache starts over
/// rather than grow without bound.
const MAX_ENTRIES: usize = 10_000;

/// A campaign's list as cached: `None` when the campaign has none stored.
pub type Cached = Option<Arc<OutcomeList>>;

/// Campaign id -> outcome list, each entry good for `ttl`.
#[derive(Debug)]
pub struct OutcomeCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Cached)>>,
}

impl OutcomeCache {
    /// A cache keeping entries for `ttl`; a zero `ttl` disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The list cached for `campaign_id`, if still fresh.
    pub fn get(&self, campaign_id: &str) -> Option<Cached> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.lock();
        let (stored_at, list) = entries.get(campaign_id)?;
        (stored_at.elapsed() < self.ttl).then(|| list.clone())
    }

    /// Caches `list` for `campaign_id` from now.
    pub fn insert(&self, campaign_id: &str, list: Cached) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (stored_at, _)| stored_at.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(campaign_id.to_owned(), (Instant::now(), list));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, Cached)>> {
        // A panic elsewhere cannot leave the map half-updated in a harmful way.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Cached {
        Some(Arc::new(OutcomeList::new(Vec::new())))
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let cache = OutcomeCache::new(Duration::from_millis(100));
        cache.insert("1", list());
        assert!(cache.get("1").is_some());
        assert!(cache.get("2").is_none());
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(cache.get("1").is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = OutcomeCache::new(Duration::ZERO);
        cache.insert("1", list());
        assert!(cache.get("1").is_none());
    }

    #[test]
    fn the_absence_of_a_list_is_cached_too() {
        let cache = OutcomeCache::new(Duration::from_secs(1));
        cache.insert("1", None);
        assert_eq!(cache.get("1"), Some(None));
    }
}
