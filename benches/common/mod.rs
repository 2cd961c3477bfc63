//! What the pure-path benches share: a campaign's stored list and an
//! in-memory store.

use std::collections::HashMap;

use lcm_worker::service::{CallRecord, Store, StoreError};

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
