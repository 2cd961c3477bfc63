//! Writes for the operator commands: `seed` loads calls and outcome lists,
//! `bench` loads its own data set and removes it. The worker itself only
//! reads.

#[cfg(feature = "bench")]
use std::time::Duration;

use deadpool_redis::redis;

use super::store::RedisStore;
use crate::service::StoreError;

/// A call record to write (`P:call:<callid>`).
#[derive(Debug, Clone, Copy)]
pub struct CallEntry<'a> {
    /// The call id.
    pub callid: &'a str,
    /// Its campaign.
    pub campaign_id: &'a str,
    /// Its account number, when the dialer stores one.
    pub account_number: Option<&'a str>,
}

/// A campaign's outcome list to write (`P:campaign:<id>:outcomes`).
#[derive(Debug, Clone, Copy)]
pub struct ListEntry<'a> {
    /// The campaign id.
    pub campaign_id: &'a str,
    /// The list, as JSON text.
    pub list: &'a str,
}

/// How many entries [`RedisStore::insert_missing`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Call records written.
    pub calls: usize,
    /// Outcome lists written.
    pub lists: usize,
}

/// Commands per pipelined batch of the bench's writes: large enough to amortise round trips,
/// small enough to keep Redis responsive to the worker meanwhile.
#[cfg(feature = "bench")]
const BATCH: usize = 1000;

impl RedisStore {
    /// Writes every entry in one transaction, replacing records of the
    /// same keys whole.
    pub async fn replace(
        &self,
        calls: &[CallEntry<'_>],
        lists: &[ListEntry<'_>],
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for call in calls {
            let key = self.call_key(call.callid);
            pipe.del(&key).ignore();
            pipe.hset_multiple(&key, &fields(call)).ignore();
        }
        for entry in lists {
            pipe.set(self.outcomes_key(entry.campaign_id), entry.list)
                .ignore();
        }
        self.run(&pipe).await
    }

    /// Writes, in one transaction, the entries whose keys do not exist yet,
    /// and leaves the others as they are. The keys are WATCHed from the
    /// check to the write: if another client changes one of them meanwhile,
    /// nothing is written and the call fails (run it again).
    pub async fn insert_missing(
        &self,
        calls: &[CallEntry<'_>],
        lists: &[ListEntry<'_>],
    ) -> Result<Inserted, StoreError> {
        let call_keys: Vec<String> = calls.iter().map(|c| self.call_key(c.callid)).collect();
        let list_keys: Vec<String> = lists
            .iter()
            .map(|entry| self.outcomes_key(entry.campaign_id))
            .collect();
        if call_keys.is_empty() && list_keys.is_empty() {
            return Ok(Inserted::default());
        }
        let mut conn = self.connection().await?;
        let mut check = redis::pipe();
        check.cmd("WATCH").arg(&call_keys).arg(&list_keys).ignore();
        for key in call_keys.iter().chain(&list_keys) {
            check.exists(key);
        }
        let exists: Vec<bool> = check.query_async(&mut *conn).await.map_err(write_error)?;
        let (calls_exist, lists_exist) = exists.split_at(call_keys.len());

        let mut write = redis::pipe();
        write.atomic();
        let mut inserted = Inserted::default();
        for ((call, key), _) in calls
            .iter()
            .zip(&call_keys)
            .zip(calls_exist)
            .filter(|(_, exists)| !**exists)
        {
            write.hset_multiple(key, &fields(call)).ignore();
            inserted.calls += 1;
        }
        for ((entry, key), _) in lists
            .iter()
            .zip(&list_keys)
            .zip(lists_exist)
            .filter(|(_, exists)| !**exists)
        {
            write.set(key, entry.list).ignore();
            inserted.lists += 1;
        }
        // EXEC ends the WATCH, also when the transaction is empty; it
        // answers nil instead of the replies when a watched key changed.
        let committed: Option<()> = write.query_async(&mut *conn).await.map_err(write_error)?;
        committed.map(|()| inserted).ok_or_else(|| {
            StoreError::Unavailable(
                "redis: a key changed while it was being written; nothing was written".into(),
            )
        })
    }

    /// Writes every entry in pipelined batches, each key expiring after
    /// `ttl`, lists first so that no call points at a missing list.
    #[cfg(feature = "bench")]
    pub async fn write_expiring(
        &self,
        calls: &[CallEntry<'_>],
        lists: &[ListEntry<'_>],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let seconds = ttl.as_secs().max(1);
        for batch in lists.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for entry in batch {
                pipe.set_ex(self.outcomes_key(entry.campaign_id), entry.list, seconds)
                    .ignore();
            }
            self.run(&pipe).await?;
        }
        for batch in calls.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for call in batch {
                let key = self.call_key(call.callid);
                pipe.hset_multiple(&key, &fields(call)).ignore();
                pipe.expire(&key, seconds as i64).ignore();
            }
            self.run(&pipe).await?;
        }
        Ok(())
    }

    /// Deletes the records of these calls and the lists of these
    /// campaigns; returns how many keys existed.
    #[cfg(feature = "bench")]
    pub async fn remove<'a>(
        &self,
        callids: impl IntoIterator<Item = &'a str>,
        campaign_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<u64, StoreError> {
        let keys: Vec<String> = campaign_ids
            .into_iter()
            .map(|id| self.outcomes_key(id))
            .chain(callids.into_iter().map(|id| self.call_key(id)))
            .collect();
        let mut conn = self.connection().await?;
        let mut removed = 0;
        for batch in keys.chunks(BATCH) {
            let count: u64 = redis::cmd("DEL")
                .arg(batch)
                .query_async(&mut *conn)
                .await
                .map_err(write_error)?;
            removed += count;
        }
        Ok(removed)
    }

    async fn run(&self, pipe: &redis::Pipeline) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(write_error)
    }
}

fn fields<'a>(call: &CallEntry<'a>) -> Vec<(&'static str, &'a str)> {
    let mut fields = vec![("campaign_id", call.campaign_id)];
    if let Some(account) = call.account_number {
        fields.push(("account_number", account));
    }
    fields
}

fn write_error(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}
