//! `GetBusinessOutcome`: the campaign's whole outcome list, primary and
//! secondary outcomes alike (docs/protocol.md section 9, decision).

use serde_json::{Map, Value};

use super::{RequestKind, Selection};
use crate::outcomes::OutcomeList;
use crate::protocol::error::WsError;

/// The handler.
pub static KIND: RequestKind = RequestKind {
    subtopic: "GetBusinessOutcome",
    reply_subtopic: "BusinessOutCome",
    data_fields: &[],
    select,
};

fn select<'a>(
    _data: &Map<String, Value>,
    _outcomes: &'a OutcomeList,
) -> Result<Selection<'a>, WsError> {
    Ok(Selection::All)
}
