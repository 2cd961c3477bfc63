//! The parser as it was before it read bodies without a tree: every body
//! became a `serde_json::Value` first. Kept, for the tests only, as the
//! reference the typed parser is compared with on generated bodies.

use serde_json::{Map, Value};

use super::{Inbound, Query};
use crate::protocol::data::get_ci;
use crate::protocol::error::{cut, WsError, MAX_ECHO_BYTES};
use crate::protocol::kinds::RequestKind;

/// Parses and validates a request body (docs/protocol.md section 3, checks 1 to 5
/// of section 5, in that order).
pub(super) fn parse_request(body: &[u8], max_bytes: usize) -> Inbound {
    let mut inbound = Inbound::undecided();
    let mut object = match read_object(body, max_bytes) {
        Ok(object) => object,
        Err(reason) => {
            inbound.query = Err(malformed(reason));
            return inbound;
        }
    };
    inbound.source = text_field(&object, "source").filter(|s| is_routing_key(s));
    // Whatever else is wrong with it: a reply answered could loop.
    inbound.is_reply =
        text_field(&object, "subtopic").is_some_and(|s| RequestKind::is_reply_subtopic(&s));
    let data = read_data(object.remove("data"));
    if let Ok(Some(callid)) = data.as_ref().map_or(Ok(None), |d| data_text(d, "callid")) {
        inbound.callid = cut(&callid).to_owned();
    }
    inbound.query = check(&object, data, &mut inbound.kind);
    inbound
}

fn check(
    object: &Map<String, Value>,
    data: Result<Map<String, Value>, &'static str>,
    kind_out: &mut Option<&'static RequestKind>,
) -> Result<Query, WsError> {
    if !text_field(object, "channel").is_some_and(|c| c.eq_ignore_ascii_case("LCM")) {
        return Err(malformed("channel is not LCM"));
    }
    if !text_field(object, "topic").is_some_and(|t| t.eq_ignore_ascii_case("WebService")) {
        return Err(malformed("topic is not WebService"));
    }
    // Check 1 does not cover the subtopic: a missing one is one "other
    // than those served", echoed as empty.
    let subtopic = match object.get("subtopic") {
        Some(Value::String(s)) => s.trim().to_owned(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    let kind =
        RequestKind::from_subtopic(&subtopic).ok_or(WsError::UnsupportedSubtopic(subtopic))?;
    *kind_out = Some(kind);
    let data = data.map_err(malformed)?;
    // Check 3 ("data usable") covers the fields' types: a field of another
    // JSON type is Malformed before any field is judged missing.
    let callid = data_text(&data, "callid")?;
    let account_number = data_text(&data, "AccountNumber")?;
    for key in kind.data_fields {
        data_text(&data, key)?;
    }
    let callid = callid.ok_or(WsError::CallidEmpty)?;
    if callid.len() > MAX_ECHO_BYTES || callid.chars().any(char::is_control) {
        return Err(WsError::InvalidCallId(callid));
    }
    let account_number = account_number.ok_or(WsError::AccountEmpty)?;
    Ok(Query {
        kind,
        callid,
        account_number,
        data,
    })
}

fn malformed(reason: &str) -> WsError {
    WsError::Malformed(reason.to_owned())
}

fn read_object(body: &[u8], max_bytes: usize) -> Result<Map<String, Value>, &'static str> {
    if body.len() > max_bytes {
        return Err("body exceeds the size limit");
    }
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8")?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("body is not a JSON object"),
        Err(_) => Err("body is not JSON"),
    }
}

/// `data` is an object, or a string that holds one.
fn read_data(data: Option<Value>) -> Result<Map<String, Value>, &'static str> {
    match data {
        Some(Value::Object(data)) => Ok(data),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(data)) => Ok(data),
            _ => Err("data string does not hold a JSON object"),
        },
        None | Some(Value::Null) => Err("data is missing"),
        Some(_) => Err("data is not a JSON object"),
    }
}

fn text_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// AMQP routing keys are short strings: at most 255 bytes.
fn is_routing_key(text: &str) -> bool {
    text.len() <= 255
}

/// A `data` field's text, its key matched ASCII-case-insensitively:
/// strings trimmed, numbers as decimal text; `None` when absent, null or
/// blank; `Malformed` for other JSON types.
fn data_text(data: &Map<String, Value>, key: &str) -> Result<Option<String>, WsError> {
    let text = match get_ci(data, key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(WsError::Malformed(format!(
                "{key} is not a string or number"
            )))
        }
    };
    Ok(Some(text).filter(|t| !t.is_empty()))
}
