//! An in-process cache of parsed campaign outcome lists.
//!
//! Outcome lists change rarely (a campaign edit) and are read on every
//! request, so each is parsed and rendered once and shared for `ttl`. An
//! edit shows within `ttl` at worst. Call records are never cached: they
//! come and go with calls.
//!
//! Memory follows the configuration, not what campaign administration
//! writes: the lists held are bounded by a byte budget
//! (`redis.outcome_cache_bytes`), and expired ones are released by
//! [`OutcomeCache::release_expired`], which the worker runs every second,
//! so that memory goes back after a spike even when no request follows it.
//!
//! One request at a time fills a campaign's entry ([`OutcomeCache::fill_turn`]):
//! when a list expires, every request in hand for its campaign misses at
//! once, and each would fetch, parse and render the same list.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::outcomes::OutcomeList;

/// A campaign's list as cached: `None` when the campaign has none stored.
pub type Cached = Option<Arc<OutcomeList>>;

/// Campaign id -> outcome list, each entry good for `ttl`, all of them
/// within `budget` bytes.
#[derive(Debug)]
pub struct OutcomeCache {
    ttl: Duration,
    budget: usize,
    entries: Mutex<Entries>,
    /// Campaign id -> the turn to fill its entry, while a request holds or
    /// waits for it.
    fills: Mutex<HashMap<String, Weak<FillTurn>>>,
}

/// The turn to fill one campaign's entry.
type FillTurn = tokio::sync::Mutex<()>;

#[derive(Debug, Default)]
struct Entries {
    by_campaign: HashMap<String, Entry>,
    /// When each entry was stored, oldest first. Every entry has the same
    /// time to live, so this is also the order in which they expire. An
    /// item whose entry has since been replaced or removed is skipped.
    stored: VecDeque<(Instant, String)>,
    /// The sum of the entries' `bytes`.
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    stored_at: Instant,
    list: Cached,
    bytes: usize,
}

impl OutcomeCache {
    /// A cache keeping entries for `ttl`, within `budget` bytes; a zero
    /// `ttl` or `budget` disables it.
    pub fn new(ttl: Duration, budget: usize) -> Self {
        Self {
            ttl,
            budget,
            entries: Mutex::new(Entries::default()),
            fills: Mutex::new(HashMap::new()),
        }
    }

    fn disabled(&self) -> bool {
        self.ttl.is_zero() || self.budget == 0
    }

    /// The list cached for `campaign_id`, if still fresh.
    pub fn get(&self, campaign_id: &str) -> Option<Cached> {
        if self.disabled() {
            return None;
        }
        let entries = self.lock();
        let entry = entries.by_campaign.get(campaign_id)?;
        (entry.stored_at.elapsed() < self.ttl).then(|| entry.list.clone())
    }

    /// Waits until no other request is filling `campaign_id`'s entry, and
    /// holds the turn until the guard is dropped; the caller looks in the
    /// cache again first. Turns are taken in order of asking. `None` while
    /// the cache is disabled: nothing would be filled.
    pub async fn fill_turn(&self, campaign_id: &str) -> Option<OwnedMutexGuard<()>> {
        if self.disabled() {
            return None;
        }
        let turn = {
            let mut fills = self.fills();
            match fills.get(campaign_id).and_then(Weak::upgrade) {
                Some(turn) => turn,
                None => {
                    let turn = Arc::new(FillTurn::new(()));
                    fills.insert(campaign_id.to_owned(), Arc::downgrade(&turn));
                    turn
                }
            }
        };
        Some(turn.lock_owned().await)
    }

    /// Caches `list` for `campaign_id` from now, releasing expired entries
    /// and then the oldest ones as the budget requires. A list larger than
    /// the whole budget is not cached.
    pub fn insert(&self, campaign_id: &str, list: Cached) {
        if self.disabled() {
            return;
        }
        let bytes = entry_bytes(campaign_id, &list);
        let now = Instant::now();
        let mut entries = self.lock();
        entries.remove(campaign_id);
        if bytes > self.budget {
            return;
        }
        if let Some(expired) = now.checked_sub(self.ttl) {
            entries.release_stored_until(expired);
        }
        while entries.bytes + bytes > self.budget && entries.release_oldest() {}
        entries.stored.push_back((now, campaign_id.to_owned()));
        let entry = Entry {
            stored_at: now,
            list,
            bytes,
        };
        entries.by_campaign.insert(campaign_id.to_owned(), entry);
        entries.bytes += bytes;
    }

    /// Releases the entries whose time to live has passed; the bytes
    /// released.
    pub fn release_expired(&self) -> usize {
        if self.disabled() {
            return 0;
        }
        let Some(expired) = Instant::now().checked_sub(self.ttl) else {
            return 0;
        };
        self.fills().retain(|_, turn| turn.strong_count() > 0);
        let mut entries = self.lock();
        let before = entries.bytes;
        entries.release_stored_until(expired);
        let released = before - entries.bytes;
        if entries.by_campaign.is_empty() {
            // Give back the tables' own memory too.
            *entries = Entries::default();
        }
        released
    }

    /// The fill turns; a poisoned lock still holds a usable table.
    fn fills(&self) -> MutexGuard<'_, HashMap<String, Weak<FillTurn>>> {
        self.fills.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes the cached entries hold now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic elsewhere cannot leave the map half-updated in a harmful way.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Entries {
    fn remove(&mut self, campaign_id: &str) {
        if let Some(entry) = self.by_campaign.remove(campaign_id) {
            self.bytes -= entry.bytes;
        }
    }

    /// Releases the entries stored at or before `before`.
    fn release_stored_until(&mut self, before: Instant) {
        while self.stored.front().is_some_and(|(at, _)| *at <= before) {
            self.pop_oldest();
        }
    }

    /// Releases the oldest entry; `false` when there is none.
    fn release_oldest(&mut self) -> bool {
        while let Some(released) = self.pop_oldest() {
            if released {
                return true;
            }
        }
        false
    }

    /// Takes the oldest item of the order of storing and releases its
    /// entry, unless that has been replaced or removed since: `Some(true)`
    /// when an entry was released, `None` when the order is empty.
    fn pop_oldest(&mut self) -> Option<bool> {
        let (stored_at, campaign_id) = self.stored.pop_front()?;
        let current = self
            .by_campaign
            .get(&campaign_id)
            .is_some_and(|entry| entry.stored_at == stored_at);
        if current {
            self.remove(&campaign_id);
        }
        Some(current)
    }
}

/// What an entry holds: its key, its bookkeeping, and the list.
fn entry_bytes(campaign_id: &str, list: &Cached) -> usize {
    // The key is held twice: in the map and in the order of storing.
    2 * campaign_id.len()
        + std::mem::size_of::<(String, Entry)>()
        + std::mem::size_of::<(Instant, String)>()
        + list.as_ref().map_or(0, |list| list.memory_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Cached {
        Some(Arc::new(OutcomeList::new(Vec::new())))
    }

    /// A list of `n` outcomes with 100-byte descriptions.
    fn list_of(n: usize) -> Cached {
        let item = format!(r#"{{"OutComeID":"1","Description":"{}"}}"#, "d".repeat(100));
        let stored = format!("[{}]", vec![item.as_str(); n].join(","));
        Some(Arc::new(OutcomeList::parse("1", &stored).unwrap()))
    }

    const BUDGET: usize = 1 << 20;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let cache = OutcomeCache::new(Duration::from_millis(100), BUDGET);
        cache.insert("1", list());
        assert!(cache.get("1").is_some());
        assert!(cache.get("2").is_none());
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(cache.get("1").is_none());
    }

    #[test]
    fn a_zero_ttl_or_budget_caches_nothing() {
        for cache in [
            OutcomeCache::new(Duration::ZERO, BUDGET),
            OutcomeCache::new(Duration::from_secs(1), 0),
        ] {
            cache.insert("1", list());
            assert!(cache.get("1").is_none());
            assert_eq!(cache.bytes(), 0);
        }
    }

    #[test]
    fn the_absence_of_a_list_is_cached_too() {
        let cache = OutcomeCache::new(Duration::from_secs(1), BUDGET);
        cache.insert("1", None);
        assert_eq!(cache.get("1"), Some(None));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_released_without_any_later_request() {
        let cache = OutcomeCache::new(Duration::from_millis(100), BUDGET);
        for campaign in 0..20 {
            cache.insert(&campaign.to_string(), list_of(10));
        }
        tokio::time::advance(Duration::from_millis(50)).await;
        cache.insert("late", list_of(10));
        let late = entry_bytes("late", &list_of(10));
        tokio::time::advance(Duration::from_millis(60)).await;
        let early = cache.bytes() - late;
        assert_eq!(cache.release_expired(), early);
        assert_eq!(cache.bytes(), late, "only the late entry is left");
        assert!(cache.get("late").is_some());
        tokio::time::advance(Duration::from_millis(50)).await;
        cache.release_expired();
        assert_eq!(cache.bytes(), 0);
        let entries = cache.lock();
        assert!(entries.by_campaign.is_empty() && entries.stored.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_holds_by_releasing_the_oldest_entries_first() {
        let one = entry_bytes("0", &list_of(50));
        let cache = OutcomeCache::new(Duration::from_secs(60), 3 * one + one / 2);
        for campaign in 0..10 {
            cache.insert(&campaign.to_string(), list_of(50));
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(cache.bytes() <= 3 * one + one / 2);
        }
        let kept: Vec<bool> = (0..10)
            .map(|c| cache.get(&c.to_string()).is_some())
            .collect();
        let mut expected = [false; 10];
        expected[7..].fill(true);
        assert_eq!(kept, expected);
        assert_eq!(cache.bytes(), 3 * one);
    }

    #[test]
    fn a_list_over_the_whole_budget_is_not_cached_and_evicts_nothing() {
        let cache = OutcomeCache::new(Duration::from_secs(60), 10_000);
        cache.insert("small", list());
        cache.insert("huge", list_of(1000));
        assert!(cache.get("huge").is_none());
        assert!(cache.get("small").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn replacing_an_entry_counts_its_bytes_once() {
        let cache = OutcomeCache::new(Duration::from_millis(100), BUDGET);
        cache.insert("1", list_of(10));
        let once = cache.bytes();
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(30)).await;
            cache.insert("1", list_of(10));
            assert_eq!(cache.bytes(), once);
        }
        // The replaced entries' places in the order are skipped, not
        // mistaken for the current one.
        tokio::time::advance(Duration::from_millis(90)).await;
        cache.release_expired();
        assert!(cache.get("1").is_some());
        tokio::time::advance(Duration::from_millis(20)).await;
        cache.release_expired();
        assert_eq!(cache.bytes(), 0);
    }
}
