//! The request kinds the worker serves, and the one place that dispatches
//! on `subtopic`. Adding a kind means writing one handler module and adding
//! one line to [`KINDS`].

mod business_outcome;
mod business_outcome_parent;

use serde_json::{Map, Value};

use crate::outcomes::{Outcome, OutcomeList};
use crate::protocol::error::WsError;

/// Picks the reply entries from the campaign's outcome list, reading the
/// request kind's own `data` fields.
pub type Select = for<'a> fn(
    data: &Map<String, Value>,
    outcomes: &'a OutcomeList,
) -> Result<Selection<'a>, WsError>;

/// The entries a request kind picked from a campaign's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection<'a> {
    /// The whole list (its rendering is shared, not redone).
    All,
    /// Some entries, in stored order.
    Some(Vec<&'a Outcome>),
}

/// One request kind: how it is named on the wire and what it answers.
pub struct RequestKind {
    /// The request's `subtopic`, matched ASCII-case-insensitively.
    pub subtopic: &'static str,
    /// The `subtopic` of its success reply.
    pub reply_subtopic: &'static str,
    /// Its own `data` fields, read as text by `select`: one of another
    /// JSON type makes `data` unusable, checked with the common fields.
    pub data_fields: &'static [&'static str],
    /// Runs after every common check passed (docs/protocol.md section 9).
    pub select: Select,
}

/// The `subtopic` of an error reply.
pub const WS_ERROR_SUBTOPIC: &str = "WS_Error";

/// The dispatch table.
pub static KINDS: &[&RequestKind] = &[&business_outcome::KIND, &business_outcome_parent::KIND];

impl RequestKind {
    /// The kind named by a request's `subtopic`.
    pub fn from_subtopic(subtopic: &str) -> Option<&'static RequestKind> {
        KINDS
            .iter()
            .copied()
            .find(|kind| kind.subtopic.eq_ignore_ascii_case(subtopic))
    }

    /// Whether `subtopic` names a reply: a kind's success reply or
    /// `WS_Error`, compared ASCII-case-insensitively. Such a message is never
    /// answered (docs/protocol.md section 4, no reply loops).
    pub fn is_reply_subtopic(subtopic: &str) -> bool {
        let subtopic = subtopic.trim();
        subtopic.eq_ignore_ascii_case(WS_ERROR_SUBTOPIC)
            || KINDS
                .iter()
                .any(|kind| kind.reply_subtopic.eq_ignore_ascii_case(subtopic))
    }

    /// A stable label for metrics and logs: the canonical subtopic.
    pub fn label(&self) -> &'static str {
        self.subtopic
    }
}

impl std::fmt::Debug for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.subtopic)
    }
}

impl PartialEq for RequestKind {
    fn eq(&self, other: &Self) -> bool {
        self.subtopic == other.subtopic
    }
}

impl Eq for RequestKind {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtopics_dispatch_case_insensitively() {
        assert_eq!(
            RequestKind::from_subtopic("GetBusinessOutCome").map(|k| k.reply_subtopic),
            Some("BusinessOutCome")
        );
        assert_eq!(
            RequestKind::from_subtopic("getbusinessoutcomeparent").map(|k| k.reply_subtopic),
            Some("BusinessOutcomeParent")
        );
        assert!(RequestKind::from_subtopic("GetCampaigns").is_none());
    }

    #[test]
    fn the_parser_keeps_every_data_field_a_kind_reads() {
        for kind in KINDS {
            for key in kind.data_fields {
                assert!(
                    crate::protocol::data::DATA_KEYS.contains(key),
                    "{key} of {kind:?}: add it to DATA_KEYS"
                );
            }
        }
    }
}
