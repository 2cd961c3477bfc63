//! The `seed` command: loads calls and campaign outcome lists from a JSON
//! file into Redis, for demos and tests.
//!
//! ```json
//! {
//!   "calls": {"12345": {"campaign_id": "1", "account_number": "5|3|1|0|0|44|1"}},
//!   "campaigns": {"1": [{"OutComeID": "101", "Description": "Payment Done"}]}
//! }
//! ```

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;

use crate::outcomes::parse_outcome_list;
use crate::redis::{CallEntry, Inserted, ListEntry, RedisStore};

/// The seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedData {
    /// Call records by callid.
    #[serde(default)]
    pub calls: BTreeMap<String, SeedCall>,
    /// Outcome lists by campaign id, in display order.
    #[serde(default)]
    pub campaigns: BTreeMap<String, Value>,
}

/// One call record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCall {
    /// The campaign (string or number).
    pub campaign_id: Value,
    /// The account number the request must match, if any.
    #[serde(default)]
    pub account_number: Option<Value>,
}

/// What `write` does with a record whose key is already in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it with the file's (the default).
    Replace,
    /// Leave it as it is (`seed --keep-existing`): a seed run again, as the
    /// compose stack's one-shot seed service is on every `up`, then writes
    /// nothing over data that is there, edited or not.
    Keep,
}

/// What was written, and what was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Call records written.
    pub calls: usize,
    /// Outcome lists written.
    pub campaigns: usize,
    /// Call records already there and kept ([`Existing::Keep`]).
    pub kept_calls: usize,
    /// Outcome lists already there and kept ([`Existing::Keep`]).
    pub kept_campaigns: usize,
}

/// Reads and checks a seed file without touching Redis.
pub fn read(path: &std::path::Path) -> anyhow::Result<SeedData> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let data: SeedData =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for (campaign, list) in &data.campaigns {
        parse_outcome_list(campaign, &list.to_string())
            .with_context(|| format!("campaign {campaign} in {}", path.display()))?;
    }
    Ok(data)
}

/// Writes `data` under the store's key prefix in one transaction; records
/// already there are replaced or kept, as `existing` says.
pub async fn write(
    store: &RedisStore,
    data: &SeedData,
    existing: Existing,
) -> anyhow::Result<Seeded> {
    let mut texts = Vec::with_capacity(data.calls.len());
    for call in data.calls.values() {
        let campaign = scalar(&call.campaign_id, "campaign_id")?;
        let account = match &call.account_number {
            Some(account) => Some(scalar(account, "account_number")?),
            None => None,
        };
        texts.push((campaign, account));
    }
    let calls: Vec<CallEntry<'_>> = data
        .calls
        .keys()
        .zip(&texts)
        .map(|(callid, (campaign, account))| CallEntry {
            callid,
            campaign_id: campaign,
            account_number: account.as_deref(),
        })
        .collect();
    let lists: Vec<String> = data.campaigns.values().map(Value::to_string).collect();
    let lists: Vec<ListEntry<'_>> = data
        .campaigns
        .keys()
        .zip(&lists)
        .map(|(campaign_id, list)| ListEntry { campaign_id, list })
        .collect();
    let written = match existing {
        Existing::Replace => store.replace(&calls, &lists).await.map(|()| Inserted {
            calls: calls.len(),
            lists: lists.len(),
        }),
        Existing::Keep => store.insert_missing(&calls, &lists).await,
    }
    .context("writing to Redis")?;
    Ok(Seeded {
        calls: written.calls,
        campaigns: written.lists,
        kept_calls: calls.len() - written.calls,
        kept_campaigns: lists.len() - written.lists,
    })
}

fn scalar(value: &Value, field: &str) -> anyhow::Result<String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        _ => bail!("{field} must be a string or a number"),
    }
}
