//! The port the service reads the cache through: call records and outcome
//! lists as section 6 of docs/protocol.md stores them. `crate::redis` implements
//! it; the service's tests use an in-memory store.

use std::future::Future;

/// A call record as the dialer stores it (`P:call:<callid>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRecord {
    /// The campaign the call belongs to.
    pub campaign_id: Option<String>,
    /// When present, the request's AccountNumber must equal it.
    pub account_number: Option<String>,
}

/// The cache could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, or failing: worth retrying until the deadline.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// The cache refuses the worker: its user may not run the lookup
    /// (`NOPERM`), or authentication is refused. Retrying cannot cure it,
    /// and every request would wait out its deadline in vain.
    #[error("cache refuses the lookup: {0}")]
    Refused(String),
    /// The stored value cannot be read as the data model says (wrong Redis
    /// type, not UTF-8, over its size limit): retrying would get the same
    /// answer.
    #[error("unreadable stored value: {0}")]
    BadData(String),
}

/// Read access to the cache the dialer and campaign administration write.
pub trait Store: Send + Sync + 'static {
    /// The call record, or `None` when no record exists for `callid`.
    fn call(
        &self,
        callid: &str,
    ) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;

    /// The stored outcome list text, or `None` when the campaign has none.
    fn outcome_list(
        &self,
        campaign_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}
