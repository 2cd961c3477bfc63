//! Request parsing and validation: docs/protocol.md section 3, and checks 1 to 5
//! of section 5 in that order. Every row of the error table that can be
//! decided from the body alone is decided here.

use serde_json::{Map, Value};

use super::data::data_text;
use super::error::{cut, WsError, MAX_ECHO_BYTES};
use super::kinds::RequestKind;

/// A request that passed every check that needs no cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// What is asked.
    pub kind: &'static RequestKind,
    /// The call id, trimmed, at most [`MAX_ECHO_BYTES`] bytes, no control characters.
    pub callid: String,
    /// The account number, trimmed, not empty.
    pub account_number: String,
    /// The whole `data` object, for the fields of the request kind.
    pub data: Map<String, Value>,
}

/// What the parser made of a body: the fields needed to answer, and either
/// a query for the cache or the error to reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// `source` from the body, when it is a usable non-empty string.
    pub source: Option<String>,
    /// The callid to echo: trimmed and cut, empty when the request had none.
    pub callid: String,
    /// The request kind when the subtopic was recognised.
    pub kind: Option<&'static RequestKind>,
    /// The body's `subtopic` names a reply: never to be answered.
    pub is_reply: bool,
    /// The query, or the error the contract names.
    pub query: Result<Query, WsError>,
}

/// A GetBusinessOutcome request body, as a requester sends it.
pub fn request_body(source: &str, callid: &str, account: &str) -> Value {
    serde_json::json!({
        "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
        "source": source,
        "data": {"callid": callid, "AccountNumber": account}
    })
}

/// Parses and validates a request body (docs/protocol.md section 3, checks 1 to 5
/// of section 5, in that order).
pub fn parse_request(body: &[u8], max_bytes: usize) -> Inbound {
    let mut inbound = Inbound {
        source: None,
        callid: String::new(),
        kind: None,
        is_reply: false,
        query: Err(WsError::CallidEmpty),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMIT: usize = 65536;

    fn parse(value: Value) -> Inbound {
        parse_request(value.to_string().as_bytes(), LIMIT)
    }

    fn request(data: Value) -> Value {
        json!({"channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutCome", "data": data})
    }

    fn error_of(value: Value) -> WsError {
        parse(value).query.expect_err("expected an error")
    }

    #[test]
    fn the_documentation_sample_parses() {
        let inbound = parse(json!({
            "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutCome",
            "source": "agent-desktop-eu",
            "data": {"callid": "12345", "AccountNumber": "5|3|1|0|0|44|1"}
        }));
        assert_eq!(inbound.source.as_deref(), Some("agent-desktop-eu"));
        assert_eq!(inbound.callid, "12345");
        let query = inbound.query.unwrap();
        assert_eq!(query.kind.subtopic, "GetBusinessOutcome");
        assert_eq!(query.callid, "12345");
        assert_eq!(query.account_number, "5|3|1|0|0|44|1");
    }

    #[test]
    fn envelope_fields_compare_case_insensitively() {
        let inbound = parse(
            json!({"channel": "lcm", "topic": "Webservice", "subtopic": "getbusinessoutcome",
            "data": {"CALLID": " 7 ", "accountnumber": "9"}}),
        );
        let query = inbound.query.unwrap();
        assert_eq!(
            (query.callid.as_str(), query.account_number.as_str()),
            ("7", "9")
        );
    }

    #[test]
    fn data_may_be_a_string_holding_an_object() {
        let query = parse(request(json!("{\"callid\": 5, \"AccountNumber\": 6}"))).query;
        assert_eq!(query.unwrap().callid, "5");
    }

    #[test]
    fn numbers_are_taken_as_their_decimal_text() {
        let query = parse(request(json!({"callid": 12345, "AccountNumber": 44})))
            .query
            .unwrap();
        assert_eq!(
            (query.callid.as_str(), query.account_number.as_str()),
            ("12345", "44")
        );
    }

    #[test]
    fn numbers_keep_every_digit_as_written() {
        let body = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome",
            "data":{"callid":123456789012345678901234567890,"AccountNumber":1e5}}"#;
        let query = parse_request(body, LIMIT).query.unwrap();
        assert_eq!(query.callid, "123456789012345678901234567890");
        // Every digit is kept; an exponent is written with its sign.
        assert_eq!(query.account_number, "1e+5");
    }

    #[test]
    fn source_is_optional() {
        let inbound = parse(request(json!({"callid": "1", "AccountNumber": "2"})));
        assert_eq!(inbound.source, None);
        assert!(inbound.query.is_ok(), "{:?}", inbound.query);
    }

    #[test]
    fn a_body_over_the_limit_is_malformed() {
        let body = request(json!({"callid": "1", "AccountNumber": "x".repeat(100)})).to_string();
        let inbound = parse_request(body.as_bytes(), 50);
        assert_eq!(
            inbound.query,
            Err(WsError::Malformed("body exceeds the size limit".into()))
        );
    }

    #[test]
    fn non_utf8_non_json_and_non_objects_are_malformed() {
        let cases: [(&[u8], &str); 4] = [
            (b"\xff\xfe{}", "body is not UTF-8"),
            (b"{not json", "body is not JSON"),
            (b"[1,2]", "body is not a JSON object"),
            (b"", "body is not JSON"),
        ];
        for (body, reason) in cases {
            assert_eq!(
                parse_request(body, LIMIT).query,
                Err(WsError::Malformed(reason.into())),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deeply_nested_json_is_malformed_not_a_crash() {
        let body = "[".repeat(100_000);
        assert_eq!(
            parse_request(body.as_bytes(), 1 << 20).query,
            Err(WsError::Malformed("body is not JSON".into()))
        );
    }

    #[test]
    fn wrong_channel_or_topic_is_malformed_and_still_echoes_callid() {
        let mut body = request(json!({"callid": "77", "AccountNumber": "1"}));
        body["channel"] = json!("CRM");
        let inbound = parse(body.clone());
        assert_eq!(
            inbound.query,
            Err(WsError::Malformed("channel is not LCM".into()))
        );
        assert_eq!(inbound.callid, "77");
        body["channel"] = json!("LCM");
        body["topic"] = json!("Other");
        assert_eq!(
            error_of(body),
            WsError::Malformed("topic is not WebService".into())
        );
    }

    #[test]
    fn an_unknown_subtopic_is_unsupported_before_data_is_checked() {
        let body =
            json!({"channel": "LCM", "topic": "WebService", "subtopic": "GetCampaigns", "data": 3});
        assert_eq!(
            error_of(body),
            WsError::UnsupportedSubtopic("GetCampaigns".into())
        );
    }

    #[test]
    fn unusable_data_is_malformed() {
        assert_eq!(
            error_of(request(json!(3))),
            WsError::Malformed("data is not a JSON object".into())
        );
        assert_eq!(
            error_of(request(json!("not an object"))),
            WsError::Malformed("data string does not hold a JSON object".into())
        );
        let mut body = request(json!({}));
        body.as_object_mut().unwrap().remove("data");
        assert_eq!(error_of(body), WsError::Malformed("data is missing".into()));
    }

    #[test]
    fn missing_null_empty_or_blank_callid_is_empty() {
        for data in [
            json!({"AccountNumber": "1"}),
            json!({"callid": null}),
            json!({"callid": ""}),
            json!({"callid": "  "}),
        ] {
            assert_eq!(
                error_of(request(data.clone())),
                WsError::CallidEmpty,
                "{data}"
            );
        }
    }

    #[test]
    fn long_or_control_callids_are_invalid_and_echoed_cut() {
        let long = "9".repeat(200);
        let inbound = parse(request(json!({"callid": long, "AccountNumber": "1"})));
        assert_eq!(inbound.query, Err(WsError::InvalidCallId(long.clone())));
        assert_eq!(inbound.callid.len(), 128);
        assert_eq!(
            WsError::InvalidCallId(long).error_message(),
            format!("Invalid Call ID:{}", "9".repeat(128))
        );
        assert_eq!(
            error_of(request(json!({"callid": "12\u{7}3", "AccountNumber": "1"}))),
            WsError::InvalidCallId("12\u{7}3".into())
        );
    }

    #[test]
    fn callid_is_checked_before_account_number() {
        assert_eq!(
            error_of(request(json!({"callid": " "}))),
            WsError::CallidEmpty
        );
        assert_eq!(
            error_of(request(json!({"callid": "1"}))),
            WsError::AccountEmpty
        );
        assert_eq!(
            error_of(request(json!({"callid": "1", "AccountNumber": "   "}))),
            WsError::AccountEmpty
        );
    }

    #[test]
    fn a_callid_of_another_json_type_is_malformed() {
        assert_eq!(
            error_of(request(json!({"callid": true, "AccountNumber": "1"}))),
            WsError::Malformed("callid is not a string or number".into())
        );
    }

    #[test]
    fn a_field_of_another_json_type_is_malformed_before_any_field_is_missing() {
        // Check 3 (data usable) comes before check 4 (callid present).
        assert_eq!(
            error_of(request(json!({"callid": "", "AccountNumber": true}))),
            WsError::Malformed("AccountNumber is not a string or number".into())
        );
        let parent = json!({"channel": "LCM", "topic": "WebService",
            "subtopic": "GetBusinessOutcomeParent",
            "data": {"AccountNumber": "1", "ParentBusinessOutcomeId": {}}});
        assert_eq!(
            error_of(parent),
            WsError::Malformed("ParentBusinessOutcomeId is not a string or number".into())
        );
    }

    #[test]
    fn a_missing_or_non_string_subtopic_is_unsupported() {
        let body = |subtopic: Value| {
            let mut body = request(json!({"callid": "1", "AccountNumber": "1"}));
            body["subtopic"] = subtopic;
            body
        };
        let mut missing = body(Value::Null);
        missing.as_object_mut().unwrap().remove("subtopic");
        assert_eq!(
            error_of(missing),
            WsError::UnsupportedSubtopic(String::new())
        );
        assert_eq!(
            error_of(body(Value::Null)),
            WsError::UnsupportedSubtopic(String::new())
        );
        assert_eq!(
            error_of(body(json!(5))),
            WsError::UnsupportedSubtopic("5".into())
        );
    }

    #[test]
    fn a_reply_is_recognised_whatever_else_is_wrong_with_it() {
        for subtopic in [
            "BusinessOutCome",
            "businessoutcomeparent",
            " WS_Error ",
            "ws_error",
        ] {
            let inbound = parse(json!({"channel": "other", "subtopic": subtopic}));
            assert!(inbound.is_reply, "{subtopic}");
        }
        assert!(!parse(request(json!({"callid": "1"}))).is_reply);
    }

    mod properties {
        use super::*;
        use crate::protocol::render_error;
        use proptest::prelude::*;

        /// JSON built from the words a request is made of, so that the
        /// generator reaches deep into the checks, not only the first one.
        fn request_like() -> impl Strategy<Value = Value> {
            let word = prop_oneof![
                Just("LCM".to_owned()),
                Just("WebService".to_owned()),
                Just("GetBusinessOutcome".to_owned()),
                Just("getbusinessoutcomeparent".to_owned()),
                Just("12345".to_owned()),
                Just(" ".to_owned()),
                ".{0,200}",
            ];
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                word.prop_map(Value::from),
            ];
            let key = prop_oneof![
                Just("channel"),
                Just("topic"),
                Just("subtopic"),
                Just("data"),
                Just("source"),
                Just("callid"),
                Just("CallID"),
                Just("AccountNumber"),
                Just("ParentBusinessOutcomeId"),
            ];
            leaf.prop_recursive(4, 64, 8, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::vec((key.clone(), inner.clone()), 0..8).prop_map(|pairs| {
                        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    }),
                    inner.prop_map(|v| Value::from(v.to_string())),
                ]
            })
        }

        fn check_decision(body: &[u8], limit: usize) {
            let inbound = parse_request(body, limit);
            assert!(inbound.callid.len() <= MAX_ECHO_BYTES);
            match inbound.query {
                Ok(query) => {
                    assert!(!query.callid.is_empty() && query.callid.len() <= MAX_ECHO_BYTES);
                    assert!(!query.callid.chars().any(char::is_control));
                    assert!(!query.account_number.is_empty());
                }
                Err(error) => {
                    let reply: Value =
                        serde_json::from_slice(&render_error(&inbound.callid, &error))
                            .expect("the error reply is JSON");
                    assert_eq!(reply["subtopic"], "WS_Error");
                    assert!(reply["message"]["errorMessage"].as_str().unwrap().len() <= 200);
                }
            }
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic_and_always_decide(
                body in prop::collection::vec(any::<u8>(), 0..4096)
            ) {
                check_decision(&body, 2048);
            }

            #[test]
            fn arbitrary_request_like_json_never_panics_and_always_decides(value in request_like()) {
                check_decision(value.to_string().as_bytes(), 65536);
            }
        }
    }
}
