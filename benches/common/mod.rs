//! What the pure-path benches share: a campaign's stored list and an
//! in-memory store.

use std::collections::HashMap;
use std::time::Duration;

use lcm_worker::protocol::RequestProperties;
use lcm_worker::service::{CallRecord, Service, Store, StoreError};

/// A campaign of 8 outcomes, as the campaign administration stores it.
pub fn stored_list() -> String {
    let outcomes: Vec<String> = (1..=8)
        .map(|i| {
            format!(
                r#"{{"OutComeID":"{}","Description":"Outcome number {i}","LeadScore":"{i}","ParentID":null}}"#,
                100 + i
            )
        })
        .collect();
    format!("[{}]", outcomes.join(","))
}

/// Call records and stored lists in maps; answers with clones, as a
/// store reading Redis builds new values.
pub struct MemoryStore {
    pub calls: HashMap<String, CallRecord>,
    pub lists: HashMap<String, String>,
}

impl MemoryStore {
    /// The contract's sample call `12345` in campaign `1` of [`stored_list`].
    pub fn sample() -> Self {
        Self {
            calls: HashMap::from([(
                "12345".to_owned(),
                CallRecord {
                    campaign_id: Some("1".into()),
                    account_number: Some("5|3|1|0|0|44|1".into()),
                },
            )]),
            lists: HashMap::from([("1".to_owned(), stored_list())]),
        }
    }
}

impl Store for MemoryStore {
    async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self.calls.get(callid).cloned())
    }
    async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lists.get(campaign_id).cloned())
    }
}

/// The service over [`MemoryStore::sample`], its outcome list cached for
/// an hour: after the first request every list is a cache hit.
pub fn sample_service() -> Service<MemoryStore> {
    Service::new(MemoryStore::sample(), 65536, Duration::from_secs(2))
        .with_outcome_cache(Duration::from_secs(3600), 16 << 20)
}

/// A request's properties naming a reply queue. (Not a Direct Reply-to
/// address: the worker answers only addresses of the exact form RabbitMQ
/// issues, and would dead-letter a made-up one without deciding.)
pub fn sample_properties() -> RequestProperties<'static> {
    RequestProperties {
        reply_to: Some("lcm-bench-replies"),
        correlation_id: Some("c-1"),
        ..Default::default()
    }
}

/// A single-threaded runtime for the async cases.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}
