//! Reading the fields of a request's `data` object (docs/protocol.md section 3):
//! keys ASCII-case-insensitive, strings trimmed, numbers as decimal text.

use serde_json::{Map, Value};

use super::error::WsError;

/// A `data` field's text, its key matched ASCII-case-insensitively:
/// strings trimmed, numbers as decimal text; `None` when absent, null or
/// blank; `Malformed` for other JSON types.
pub fn data_text(data: &Map<String, Value>, key: &str) -> Result<Option<String>, WsError> {
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

/// Looks a key up ASCII-case-insensitively (docs/protocol.md section 3).
fn get_ci<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    data.get(key).or_else(|| {
        data.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}
