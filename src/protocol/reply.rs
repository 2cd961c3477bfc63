//! Reply rendering: the success reply and `WS_Error` (docs/protocol.md section 5).

use serde::Serialize;

use super::error::{cut, WsError};
use super::kinds::{RequestKind, Selection, WS_ERROR_SUBTOPIC};
use crate::outcomes::OutcomeList;

#[derive(Serialize)]
struct Envelope<'a, M> {
    channel: &'static str,
    topic: &'static str,
    subtopic: &'a str,
    message: M,
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    callid: &'a str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    #[serde(rename = "errorMessage")]
    error_message: String,
    msg: &'static str,
}

/// Renders a success reply: `subtopic` per kind, the selected outcomes in
/// stored order. The whole list is copied from its shared rendering.
pub fn render_outcomes(
    kind: &RequestKind,
    callid: &str,
    list: &OutcomeList,
    selection: &Selection<'_>,
) -> Vec<u8> {
    let mut reply = Vec::with_capacity(list.rendered().len() + 160);
    reply.extend_from_slice(br#"{"channel":"LCM","topic":"WebService","subtopic":"#);
    write_json(&mut reply, kind.reply_subtopic);
    reply.extend_from_slice(br#","message":{"callid":"#);
    write_json(&mut reply, cut(callid));
    reply.extend_from_slice(br#","response":"#);
    match selection {
        Selection::All => reply.extend_from_slice(list.rendered().as_bytes()),
        Selection::Some(outcomes) => write_json(&mut reply, outcomes),
    }
    reply.extend_from_slice(b"}}");
    reply
}

fn write_json<T: Serialize + ?Sized>(buffer: &mut Vec<u8>, value: &T) {
    // Writing strings and plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(buffer, value);
}

/// Renders a `WS_Error` reply.
pub fn render_error(callid: &str, error: &WsError) -> Vec<u8> {
    render(&Envelope {
        channel: "LCM",
        topic: "WebService",
        subtopic: WS_ERROR_SUBTOPIC,
        message: ErrorMessage {
            callid: cut(callid),
            error_type: "WS_Error",
            error_message: error.error_message(),
            msg: error.msg(),
        },
    })
}

fn render<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain structs of strings into a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn the_error_reply_has_the_documented_shape() {
        let body = render_error("12345", &WsError::InvalidCallId("12345".into()));
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"channel": "LCM", "topic": "WebService", "subtopic": "WS_Error",
                "message": {"callid": "12345", "errorType": "WS_Error",
                    "errorMessage": "Invalid Call ID:12345", "msg": "Invalid Call ID."}})
        );
    }

    #[test]
    fn the_success_reply_has_the_documented_shape() {
        let list = OutcomeList::parse("1", r#"[{"OutComeID":"101","Description":"Payment Done"}]"#)
            .unwrap();
        let kind = RequestKind::from_subtopic("GetBusinessOutcome").unwrap();
        let body = render_outcomes(kind, "12345", &list, &Selection::All);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"channel": "LCM", "topic": "WebService", "subtopic": "BusinessOutCome",
            "message": {"callid": "12345", "response": [
                {"OutComeID": "101", "Description": "Payment Done", "CampaignID": "1", "LeadScore": "0", "ParentID": null}
            ]}})
        );
    }
}
