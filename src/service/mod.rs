//! The request -> reply decision, over the [`Store`] port.
//!
//! Knows the contract's check order and failure policy (retry the cache
//! until the request's deadline) but neither AMQP nor Redis: tests drive it
//! with an in-memory store.

mod outcome_cache;
mod retry;
mod store;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use self::outcome_cache::{Cached, OutcomeCache};
use self::retry::retry_until;
pub use self::store::{CallRecord, Store, StoreError};
use crate::outcomes::OutcomeList;
use crate::protocol::{
    parse_request, render_error, render_outcomes, Inbound, Query, ReplyRoute, RequestKind,
    RequestProperties, Selection, Unanswered, WsError,
};
use crate::telemetry::metrics::{self, RESULT_DEAD_LETTERED, RESULT_OK};
use crate::telemetry::Throttle;

/// `amqp.app_id` by default.
const DEFAULT_APP_ID: &str = "lcm-outcome-worker";

/// Records Redis cannot give as the data model says (a key of the wrong
/// type, a value not UTF-8 or over its size limit) are answered at once
/// (section 5's rows); every request for such a record would log it, so
/// one warning per this long says so, with the count held back.
static UNREADABLE: Throttle = Throttle::new(Duration::from_secs(10));

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish `body` along `route`, then acknowledge the request.
    Reply {
        /// Where the reply goes.
        route: ReplyRoute,
        /// The rendered reply.
        body: Vec<u8>,
    },
    /// The request is not to be answered: reject it into the dead-letter
    /// queue.
    DeadLetter {
        /// Why, for the log.
        why: Unanswered,
    },
}

/// The decision for one request, with what the logs and metrics need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The echoed callid (empty when the request had none).
    pub callid: String,
    /// The body's `source`, when usable.
    pub source: Option<String>,
    /// The request kind, when the subtopic was recognised.
    pub kind: Option<&'static RequestKind>,
    /// `ok`, the label of the `WS_Error` kind, or `dead_lettered`.
    pub result: &'static str,
    /// What to do.
    pub action: Action,
}

/// A request read and routed ([`Service::read`]), its reply not decided
/// yet.
#[derive(Debug)]
pub struct Request {
    inbound: Inbound,
    route: Result<ReplyRoute, Unanswered>,
}

impl Request {
    /// The callid to echo (empty when the request had none).
    pub fn callid(&self) -> &str {
        &self.inbound.callid
    }

    /// The body's `source`, when usable.
    pub fn source(&self) -> Option<&str> {
        self.inbound.source.as_deref()
    }
}

/// Decides replies; cheap to share between concurrent deliveries.
#[derive(Debug)]
pub struct Service<S> {
    store: S,
    own_app_id: String,
    max_message_bytes: usize,
    max_list_bytes: usize,
    deadline: Duration,
    cache: OutcomeCache,
}

impl<S: Store> Service<S> {
    /// A service answering from `store`, with the body size limit and the
    /// per-request deadline of the configuration. Outcome lists are not
    /// cached; see [`Service::with_outcome_cache`]. The worker's own
    /// `app_id` is the default's; see [`Service::with_own_app_id`].
    pub fn new(store: S, max_message_bytes: usize, deadline: Duration) -> Self {
        Self {
            store,
            own_app_id: DEFAULT_APP_ID.to_owned(),
            max_message_bytes,
            max_list_bytes: usize::MAX,
            deadline,
            cache: OutcomeCache::new(Duration::ZERO, 0),
        }
    }

    /// Keeps parsed outcome lists for `ttl` (a campaign edit shows within
    /// `ttl` at worst), holding at most `budget` bytes of them.
    pub fn with_outcome_cache(mut self, ttl: Duration, budget: usize) -> Self {
        self.cache = OutcomeCache::new(ttl, budget);
        self
    }

    /// Releases the cached outcome lists whose time is up; run it every
    /// second or so, so that memory goes back after a spike of requests
    /// even when none follows. Returns the bytes released.
    pub fn release_expired_outcomes(&self) -> usize {
        self.cache.release_expired()
    }

    /// Answers an outcome list whose reply rendering is over `max` bytes as
    /// corrupt (`limits.max_outcome_list_bytes`): stored short, it may still
    /// render long (every element gets the campaign id).
    pub fn with_max_list_bytes(mut self, max: usize) -> Self {
        self.max_list_bytes = max;
        self
    }

    /// The `app_id` the worker's replies carry (`amqp.app_id`): a message
    /// routed only by it is one of those replies come back, never answered.
    pub fn with_own_app_id(mut self, app_id: &str) -> Self {
        app_id.clone_into(&mut self.own_app_id);
        self
    }

    /// As [`Service::read`], but a panic while reading becomes `None`, so
    /// that one poisoned message cannot take the worker down: the caller
    /// dead-letters it.
    pub fn read_guarded(&self, body: &[u8], properties: &RequestProperties<'_>) -> Option<Request> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.read(body, properties))).ok()
    }

    /// As [`Service::decide`], but a panic while deciding becomes `None`.
    pub async fn decide_guarded(&self, request: Request, received: Instant) -> Option<Handled> {
        AssertUnwindSafe(self.decide(request, received))
            .catch_unwind()
            .await
            .ok()
    }

    /// Decides the reply to one request received at `received`: reads it,
    /// then decides.
    pub async fn handle(
        &self,
        body: &[u8],
        properties: &RequestProperties<'_>,
        received: Instant,
    ) -> Handled {
        self.decide(self.read(body, properties), received).await
    }

    /// Parses a request and chooses its reply's route: pure and cheap, no
    /// cache lookup, so that the delivery's log span can be made once
    /// with the callid and source ([`Request`]).
    pub fn read(&self, body: &[u8], properties: &RequestProperties<'_>) -> Request {
        let inbound = parse_request(body, self.max_message_bytes);
        let route = ReplyRoute::choose(
            properties,
            inbound.source.as_deref(),
            inbound.is_reply,
            &self.own_app_id,
        );
        Request { inbound, route }
    }

    /// Decides the reply to a request read by [`Service::read`].
    pub async fn decide(&self, request: Request, received: Instant) -> Handled {
        let Request { inbound, route } = request;
        // Routing is decided first: a request nobody is to hear costs no
        // cache lookup.
        let (result, action) = match route {
            Err(why) => (RESULT_DEAD_LETTERED, Action::DeadLetter { why }),
            Ok(route) => {
                let answer = match &inbound.query {
                    Ok(query) => self.answer(query, received + self.deadline).await,
                    Err(error) => Err(error.clone()),
                };
                match answer {
                    Ok(body) => (RESULT_OK, Action::Reply { route, body }),
                    Err(error) => {
                        let body = render_error(&inbound.callid, &error);
                        (error.label(), Action::Reply { route, body })
                    }
                }
            }
        };
        Handled {
            callid: inbound.callid,
            source: inbound.source,
            kind: inbound.kind,
            result,
            action,
        }
    }

    /// Check 6 of the contract, the cache lookups in order; then the
    /// request kind's own selection, rendered.
    async fn answer(&self, query: &Query, deadline: Instant) -> Result<Vec<u8>, WsError> {
        let stored = self.campaign_outcomes(query, deadline).await?;
        let empty;
        let list = match &stored {
            Some(list) => list.as_ref(),
            None => {
                empty = OutcomeList::new(Vec::new());
                &empty
            }
        };
        let selection: Selection<'_> = (query.kind.select)(&query.data, list)?;
        if stored.is_none() {
            // The callid of the span leads to the campaign: logs carry no
            // business data beyond callid, correlation id and source.
            tracing::warn!("campaign has no stored outcome list; answering []");
            metrics::empty_outcome_list();
        }
        Ok(render_outcomes(query.kind, &query.callid, list, &selection))
    }

    async fn campaign_outcomes(&self, query: &Query, deadline: Instant) -> Result<Cached, WsError> {
        let invalid_call = || WsError::InvalidCallId(query.callid.clone());
        let call = retry_until(deadline, || self.store.call(&query.callid))
            .await?
            .map_err(|error| {
                if let Some(held_back) = UNREADABLE.allow() {
                    tracing::warn!(%error, held_back, "call record is unreadable");
                }
                invalid_call()
            })?
            .ok_or_else(invalid_call)?;
        let campaign_id = call
            .campaign_id
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| WsError::NoCampaign(query.callid.clone()))?;
        if let Some(stored) = call.account_number {
            if stored.trim() != query.account_number {
                return Err(WsError::InvalidAccount(query.account_number.clone()));
            }
        }
        if let Some(cached) = self.cache.get(&campaign_id) {
            return Ok(cached);
        }
        // One fetch per campaign at a time; those that waited for it find
        // its list cached.
        let _turn = tokio::time::timeout_at(deadline, self.cache.fill_turn(&campaign_id))
            .await
            .map_err(|_| WsError::CacheUnavailable)?;
        if let Some(cached) = self.cache.get(&campaign_id) {
            return Ok(cached);
        }
        let corrupt = || WsError::CorruptOutcomes(campaign_id.clone());
        let stored = retry_until(deadline, || self.store.outcome_list(&campaign_id))
            .await?
            .map_err(|error| {
                if let Some(held_back) = UNREADABLE.allow() {
                    tracing::warn!(%error, held_back, "stored outcome list is unreadable");
                }
                corrupt()
            })?;
        let list = match stored {
            None => None,
            Some(stored) => {
                let list = OutcomeList::parse(&campaign_id, &stored).map_err(|error| {
                    tracing::warn!(%error, "stored outcome list is unusable");
                    corrupt()
                })?;
                if list.rendered().len() > self.max_list_bytes {
                    tracing::warn!(
                        bytes = list.rendered().len(),
                        "outcome list renders over limits.max_outcome_list_bytes"
                    );
                    return Err(corrupt());
                }
                Some(Arc::new(list))
            }
        };
        self.cache.insert(&campaign_id, list.clone());
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct MemoryStore {
        calls: HashMap<String, CallRecord>,
        lists: HashMap<String, String>,
        failures_left: AtomicUsize,
    }

    impl MemoryStore {
        fn sample() -> Self {
            let mut store = Self::default();
            store.calls.insert(
                "12345".into(),
                CallRecord {
                    campaign_id: Some("1".into()),
                    account_number: Some("5|3|1|0|0|44|1".into()),
                },
            );
            store.lists.insert(
                "1".into(),
                r#"[{"OutComeID":"101","Description":"Payment Done"}]"#.into(),
            );
            store
        }

        fn fail(&self) -> Result<(), StoreError> {
            let left = self.failures_left.load(Ordering::SeqCst);
            if left > 0 {
                self.failures_left.store(left - 1, Ordering::SeqCst);
                return Err(StoreError::Unavailable("down".into()));
            }
            Ok(())
        }
    }

    impl Store for MemoryStore {
        async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
            self.fail()?;
            Ok(self.calls.get(callid).cloned())
        }
        async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
            self.fail()?;
            Ok(self.lists.get(campaign_id).cloned())
        }
    }

    fn service(store: MemoryStore) -> Service<MemoryStore> {
        Service::new(store, 65536, Duration::from_millis(2000))
    }

    fn sample_body(callid: &str, account: &str) -> Vec<u8> {
        json!({"channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
            "source": "desk", "data": {"callid": callid, "AccountNumber": account}})
        .to_string()
        .into_bytes()
    }

    async fn reply_of<S: Store>(service: &Service<S>, body: &[u8]) -> Value {
        let handled = service
            .handle(body, &RequestProperties::default(), Instant::now())
            .await;
        match handled.action {
            Action::Reply { body, .. } => serde_json::from_slice(&body).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    async fn error_message_of(service: &Service<MemoryStore>, body: &[u8]) -> String {
        let reply = reply_of(service, body).await;
        reply["message"]["errorMessage"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn the_sample_call_gets_its_outcomes() {
        let reply = reply_of(
            &service(MemoryStore::sample()),
            &sample_body("12345", "5|3|1|0|0|44|1"),
        )
        .await;
        assert_eq!(reply["subtopic"], "BusinessOutCome");
        assert_eq!(reply["message"]["response"][0]["OutComeID"], "101");
    }

    #[tokio::test]
    async fn an_unknown_call_is_an_invalid_call_id() {
        let message =
            error_message_of(&service(MemoryStore::sample()), &sample_body("999", "1")).await;
        assert_eq!(message, "Invalid Call ID:999");
    }

    #[tokio::test]
    async fn a_call_without_campaign_has_no_campaign() {
        let mut store = MemoryStore::sample();
        store.calls.insert("2".into(), CallRecord::default());
        let message = error_message_of(&service(store), &sample_body("2", "1")).await;
        assert_eq!(message, "No campaign for Call ID:2");
    }

    #[tokio::test]
    async fn a_differing_account_number_is_invalid() {
        let message =
            error_message_of(&service(MemoryStore::sample()), &sample_body("12345", "9")).await;
        assert_eq!(message, "Invalid AccountNumber:9");
    }

    #[tokio::test]
    async fn a_call_without_account_number_accepts_any() {
        let mut store = MemoryStore::sample();
        store.calls.get_mut("12345").unwrap().account_number = None;
        let reply = reply_of(&service(store), &sample_body("12345", "anything")).await;
        assert_eq!(reply["subtopic"], "BusinessOutCome");
    }

    #[tokio::test]
    async fn a_campaign_without_list_answers_an_empty_list() {
        let mut store = MemoryStore::sample();
        store.lists.clear();
        let reply = reply_of(&service(store), &sample_body("12345", "5|3|1|0|0|44|1")).await;
        assert_eq!(reply["message"]["response"], json!([]));
    }

    #[tokio::test]
    async fn a_corrupt_list_names_the_campaign() {
        let mut store = MemoryStore::sample();
        store.lists.insert("1".into(), "{oops".into());
        let message =
            error_message_of(&service(store), &sample_body("12345", "5|3|1|0|0|44|1")).await;
        assert_eq!(message, "Corrupt business outcome data for Campaign ID:1");
    }

    #[tokio::test]
    async fn cache_failures_are_retried_within_the_deadline() {
        let store = MemoryStore::sample();
        store.failures_left.store(3, Ordering::SeqCst);
        let reply = reply_of(&service(store), &sample_body("12345", "5|3|1|0|0|44|1")).await;
        assert_eq!(reply["subtopic"], "BusinessOutCome");
    }

    #[tokio::test]
    async fn a_cache_down_past_the_deadline_is_unavailable() {
        let store = MemoryStore::sample();
        store.failures_left.store(usize::MAX, Ordering::SeqCst);
        let service = Service::new(store, 65536, Duration::from_millis(100));
        let message = error_message_of(&service, &sample_body("12345", "5|3|1|0|0|44|1")).await;
        assert_eq!(message, "Cache unavailable");
    }

    struct BadDataStore;

    impl Store for BadDataStore {
        async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
            match callid {
                "wrongtype" => Err(StoreError::BadData("WRONGTYPE".into())),
                _ => Ok(Some(CallRecord {
                    campaign_id: Some("3".into()),
                    account_number: None,
                })),
            }
        }
        async fn outcome_list(&self, _: &str) -> Result<Option<String>, StoreError> {
            Err(StoreError::BadData("not UTF-8".into()))
        }
    }

    #[tokio::test]
    async fn unreadable_stored_values_are_answered_at_once_not_retried() {
        // Retrying would end in `Cache unavailable` at the deadline instead.
        let service = Service::new(BadDataStore, 65536, Duration::from_millis(500));
        let reply = reply_of(&service, &sample_body("wrongtype", "1")).await;
        assert_eq!(
            reply["message"]["errorMessage"],
            "Invalid Call ID:wrongtype"
        );
        let reply = reply_of(&service, &sample_body("other", "1")).await;
        assert_eq!(
            reply["message"]["errorMessage"],
            "Corrupt business outcome data for Campaign ID:3"
        );
    }

    /// A store whose user may not run the lookup, counting the attempts.
    #[derive(Default)]
    struct RefusingStore(AtomicUsize);

    impl Store for RefusingStore {
        async fn call(&self, _: &str) -> Result<Option<CallRecord>, StoreError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Refused(
                "NOPERM no permissions to run 'hmget'".into(),
            ))
        }
        async fn outcome_list(&self, _: &str) -> Result<Option<String>, StoreError> {
            unreachable!("the call lookup is refused first")
        }
    }

    // Paused: a retry would advance the clock at once, not wait it out.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_cache_unavailable_at_once_without_a_retry() {
        let service = Service::new(RefusingStore::default(), 65536, Duration::from_secs(600));
        for _ in 0..3 {
            let reply = reply_of(&service, &sample_body("12345", "1")).await;
            assert_eq!(reply["message"]["errorMessage"], "Cache unavailable");
        }
        assert_eq!(
            service.store.0.load(Ordering::SeqCst),
            3,
            "one attempt each"
        );
    }

    /// A store whose outcome list takes a while and counts its fetches.
    struct SlowListStore(MemoryStore, AtomicUsize);

    impl Store for SlowListStore {
        async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
            self.0.call(callid).await
        }
        async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.0.outcome_list(campaign_id).await
        }
    }

    // Paused: the store's 5 ms pass at once, and together.
    #[tokio::test(start_paused = true)]
    async fn the_requests_in_hand_for_a_campaign_fetch_its_list_once() {
        let body = sample_body("12345", "5|3|1|0|0|44|1");
        for (ttl, budget, fetches) in [(1000, 1 << 20, 1), (0, 0, 32)] {
            let store = SlowListStore(MemoryStore::sample(), AtomicUsize::new(0));
            let service = Service::new(store, 65536, Duration::from_secs(2))
                .with_outcome_cache(Duration::from_millis(ttl), budget);
            let replies =
                futures_util::future::join_all((0..32).map(|_| reply_of(&service, &body))).await;
            for reply in replies {
                assert_eq!(reply["message"]["response"][0]["OutComeID"], "101");
            }
            assert_eq!(
                service.store.1.load(Ordering::SeqCst),
                fetches,
                "cache ttl {ttl} ms"
            );
        }
    }

    /// A store whose call lookup panics for one callid.
    struct PanickingStore(MemoryStore);

    impl Store for PanickingStore {
        async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
            assert_ne!(callid, "boom", "a handler fault");
            self.0.call(callid).await
        }
        async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
            self.0.outcome_list(campaign_id).await
        }
    }

    #[tokio::test]
    async fn a_list_that_renders_over_the_limit_is_corrupt() {
        let service = service(MemoryStore::sample()).with_max_list_bytes(50);
        let reply = reply_of(&service, &sample_body("12345", "5|3|1|0|0|44|1")).await;
        assert_eq!(
            reply["message"]["errorMessage"],
            "Corrupt business outcome data for Campaign ID:1"
        );
        let service = self::service(MemoryStore::sample()).with_max_list_bytes(1000);
        let reply = reply_of(&service, &sample_body("12345", "5|3|1|0|0|44|1")).await;
        assert_eq!(reply["subtopic"], "BusinessOutCome");
    }

    #[tokio::test]
    async fn a_panic_while_deciding_is_caught_and_the_next_request_served() {
        let service = Service::new(
            PanickingStore(MemoryStore::sample()),
            65536,
            Duration::from_secs(2),
        );
        let properties = RequestProperties::default();
        let handle_guarded = |body: Vec<u8>| {
            let service = &service;
            let properties = &properties;
            async move {
                let request = service.read_guarded(&body, properties).expect("read");
                service.decide_guarded(request, Instant::now()).await
            }
        };
        let poisoned = handle_guarded(sample_body("boom", "1")).await;
        assert!(poisoned.is_none());
        let next = handle_guarded(sample_body("12345", "5|3|1|0|0|44|1"))
            .await
            .expect("served");
        assert_eq!(next.result, "ok");
    }

    #[tokio::test]
    async fn a_request_nobody_can_be_answered_is_dead_lettered() {
        let mut body: Value = serde_json::from_slice(&sample_body("12345", "1")).unwrap();
        body.as_object_mut().unwrap().remove("source");
        let handled = service(MemoryStore::sample())
            .handle(
                body.to_string().as_bytes(),
                &RequestProperties::default(),
                Instant::now(),
            )
            .await;
        assert!(matches!(handled.action, Action::DeadLetter { .. }));
    }

    #[tokio::test]
    async fn garbage_with_a_reply_to_is_answered_malformed() {
        let props = RequestProperties {
            reply_to: Some("q"),
            ..Default::default()
        };
        let handled = service(MemoryStore::sample())
            .handle(b"\x00garbage", &props, Instant::now())
            .await;
        assert_eq!(handled.result, "malformed");
        assert!(matches!(
            handled.action,
            Action::Reply {
                route: ReplyRoute::ReplyTo(_),
                ..
            }
        ));
    }
}
