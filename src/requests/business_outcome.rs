//! `GetBusinessOutcome`: the campaign's whole outcome list, primary and
//! secondary outcomes alike (PROTOCOL.md section 9, decision).

use serde_json::{Map, Value};

use super::RequestKind;
use crate::outcomes::Outcome;
use crate::protocol::WsError;

/// The handler.
pub static KIND: RequestKind = RequestKind {
    subtopic: "GetBusinessOutcome",
    reply_subtopic: "BusinessOutCome",
    select,
};

fn select(_data: &Map<String, Value>, outcomes: Vec<Outcome>) -> Result<Vec<Outcome>, WsError> {
    Ok(outcomes)
}
