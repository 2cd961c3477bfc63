//! Request parsing and validation: docs/protocol.md section 3, and checks 1 to 5
//! of section 5 in that order. Every row of the error table that can be
//! decided from the body alone is decided here.
//!
//! The body is read into borrowed, typed members ([`Envelope`]), not a
//! `serde_json::Value` tree: the readers of `json` and `data` keep what the
//! tree would have held under each key the checks look at, and skip the
//! rest. Top-level keys are matched exactly, `data` keys without regard to
//! ASCII case; of duplicate keys the last value counts, as in the tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::data::{Data, DataFields};
use super::error::{cut, WsError, MAX_ECHO_BYTES};
use super::kinds::RequestKind;
use crate::json::{first_key, visit_scalars_as, FirstKey, Scalar, Skip, Text};

/// A request that passed every check that needs no cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// What is asked.
    pub kind: &'static RequestKind,
    /// The call id, trimmed, at most [`MAX_ECHO_BYTES`] bytes, no control characters.
    pub callid: String,
    /// The account number, trimmed, not empty.
    pub account_number: String,
    /// The request kind's own `data` fields (`RequestKind::data_fields`),
    /// each under its own spelling, for `select`.
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

impl Inbound {
    /// Nothing read yet: the parser fills it in as the checks pass.
    fn undecided() -> Self {
        Inbound {
            source: None,
            callid: String::new(),
            kind: None,
            is_reply: false,
            query: Err(WsError::CallidEmpty),
        }
    }
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
    let mut inbound = Inbound::undecided();
    let text = match read_text(body, max_bytes) {
        Ok(text) => text,
        Err(reason) => {
            inbound.query = Err(malformed(reason));
            return inbound;
        }
    };
    let mut envelope = match serde_json::from_str::<Body<'_>>(text) {
        Ok(Body(Some(envelope))) => envelope,
        Ok(Body(None)) => {
            inbound.query = Err(malformed("body is not a JSON object"));
            return inbound;
        }
        // Not JSON, or one of the bodies only the tree reads (see `json`).
        Err(_) => match read_tree(text) {
            Ok(envelope) => envelope,
            Err(reason) => {
                inbound.query = Err(malformed(reason));
                return inbound;
            }
        },
    };
    inbound.source = text_field(envelope.source.as_ref())
        .filter(|s| is_routing_key(s))
        .map(str::to_owned);
    // Whatever else is wrong with it: a reply answered could loop.
    inbound.is_reply =
        text_field(envelope.subtopic.as_ref()).is_some_and(RequestKind::is_reply_subtopic);
    let data = read_data(envelope.data.take());
    if let Ok(Some(callid)) = data.as_ref().map_or(Ok(None), |d| d.text("callid")) {
        inbound.callid = cut(&callid).to_owned();
    }
    inbound.query = check(&envelope, data, &mut inbound.kind);
    inbound
}

fn check(
    envelope: &Envelope<'_>,
    data: Result<DataFields<'_>, &'static str>,
    kind_out: &mut Option<&'static RequestKind>,
) -> Result<Query, WsError> {
    if !text_field(envelope.channel.as_ref()).is_some_and(|c| c.eq_ignore_ascii_case("LCM")) {
        return Err(malformed("channel is not LCM"));
    }
    if !text_field(envelope.topic.as_ref()).is_some_and(|t| t.eq_ignore_ascii_case("WebService")) {
        return Err(malformed("topic is not WebService"));
    }
    // Check 1 does not cover the subtopic: a missing one is one "other
    // than those served", echoed as empty.
    let subtopic = match &envelope.subtopic {
        Some(Scalar::Text(s)) => Cow::Borrowed(s.trim()),
        None | Some(Scalar::Null) => Cow::Borrowed(""),
        Some(Scalar::Other(other)) => Cow::Owned(other.to_string()),
    };
    let kind = RequestKind::from_subtopic(&subtopic)
        .ok_or_else(|| WsError::UnsupportedSubtopic(subtopic.into_owned()))?;
    *kind_out = Some(kind);
    let data = data.map_err(malformed)?;
    // Check 3 ("data usable") covers the fields' types: a field of another
    // JSON type is Malformed before any field is judged missing.
    let callid = data.text("callid")?;
    let account_number = data.text("AccountNumber")?;
    for key in kind.data_fields {
        data.text(key)?;
    }
    let callid = callid.ok_or(WsError::CallidEmpty)?;
    if callid.len() > MAX_ECHO_BYTES || callid.chars().any(char::is_control) {
        return Err(WsError::InvalidCallId(callid.into_owned()));
    }
    let account_number = account_number.ok_or(WsError::AccountEmpty)?;
    let own_fields = kind
        .data_fields
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), data.get(key)?.to_value())))
        .collect();
    Ok(Query {
        kind,
        callid: callid.into_owned(),
        account_number: account_number.into_owned(),
        data: own_fields,
    })
}

fn malformed(reason: &str) -> WsError {
    WsError::Malformed(reason.to_owned())
}

fn read_text(body: &[u8], max_bytes: usize) -> Result<&str, &'static str> {
    if body.len() > max_bytes {
        return Err("body exceeds the size limit");
    }
    std::str::from_utf8(body).map_err(|_| "body is not UTF-8")
}

/// A body the typed readers refused, read as a `Value` tree: it is not
/// JSON, or it is one of the bodies only the tree reads (see `json`).
fn read_tree(text: &str) -> Result<Envelope<'static>, &'static str> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(Envelope::from_map(object)),
        Ok(_) => Err("body is not a JSON object"),
        Err(_) => Err("body is not JSON"),
    }
}

/// `data` is an object, or a string that holds one.
fn read_data(data: Option<Data<'_>>) -> Result<DataFields<'_>, &'static str> {
    const NOT_AN_OBJECT: &str = "data string does not hold a JSON object";
    match data {
        Some(Data::Fields(fields)) => Ok(fields),
        Some(Data::Text(text)) => match serde_json::from_str::<Data<'_>>(&text) {
            Ok(Data::Fields(fields)) => Ok(fields.into_owned()),
            Ok(_) => Err(NOT_AN_OBJECT),
            Err(_) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(object)) => Ok(DataFields::from_map(&object)),
                _ => Err(NOT_AN_OBJECT),
            },
        },
        None | Some(Data::Null) => Err("data is missing"),
        Some(Data::Other) => Err("data is not a JSON object"),
    }
}

/// A string member's text, trimmed, when it is not blank.
fn text_field<'a>(value: Option<&'a Scalar<'_>>) -> Option<&'a str> {
    match value {
        Some(Scalar::Text(s)) => Some(s.trim()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// AMQP routing keys are short strings: at most 255 bytes.
fn is_routing_key(text: &str) -> bool {
    text.len() <= 255
}

/// The members of a request object the checks read, as written.
#[derive(Default)]
struct Envelope<'de> {
    channel: Option<Scalar<'de>>,
    topic: Option<Scalar<'de>>,
    subtopic: Option<Scalar<'de>>,
    source: Option<Scalar<'de>>,
    data: Option<Data<'de>>,
}

impl<'de> Envelope<'de> {
    /// Reads the value of member `key`, kept if the checks read it; a
    /// later duplicate replaces an earlier one.
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let member = match key {
            "channel" => &mut self.channel,
            "topic" => &mut self.topic,
            "subtopic" => &mut self.subtopic,
            "source" => &mut self.source,
            "data" => {
                self.data = Some(map.next_value()?);
                return Ok(());
            }
            _ => {
                map.next_value::<Skip>()?;
                return Ok(());
            }
        };
        *member = Some(map.next_value()?);
        Ok(())
    }

    /// The same members out of an object read as a tree.
    fn from_map(mut object: Map<String, Value>) -> Envelope<'static> {
        let mut member = |key: &str| object.remove(key).map(Scalar::from_value);
        let (channel, topic, subtopic, source) = (
            member("channel"),
            member("topic"),
            member("subtopic"),
            member("source"),
        );
        let data = object.remove("data").map(|data| match data {
            Value::Object(fields) => Data::Fields(DataFields::from_map(&fields)),
            Value::String(text) => Data::Text(Cow::Owned(text)),
            Value::Null => Data::Null,
            _ => Data::Other,
        });
        Envelope {
            channel,
            topic,
            subtopic,
            source,
            data,
        }
    }
}

/// A whole body: an object's members, or `None` for any other JSON value
/// (read in full all the same).
struct Body<'de>(Option<Envelope<'de>>);

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    visit_scalars_as!(and strings Body(None));
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Body(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        match first_key(&mut map)? {
            FirstKey::Number(_) => return Ok(Body(None)),
            FirstKey::End => {}
            FirstKey::Key(key) => {
                envelope.read(&key, &mut map)?;
                while let Some(Text(key)) = map.next_key()? {
                    envelope.read(&key, &mut map)?;
                }
            }
        }
        Ok(Body(Some(envelope)))
    }
}

#[cfg(test)]
mod reference;

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
        pub(super) fn request_like() -> impl Strategy<Value = Value> {
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

    /// What the typed parser and the tree-based reference must agree on:
    /// everything but `Query::data`, which the reference fills with the
    /// whole `data` object; its kind's own fields are compared by text.
    fn agree(body: &[u8], limit: usize) {
        let new = parse_request(body, limit);
        let old = reference::parse_request(body, limit);
        let text = |query: &Query| {
            query
                .kind
                .data_fields
                .iter()
                .map(|key| crate::protocol::data_text(&query.data, key))
                .collect::<Vec<_>>()
        };
        let summary = |inbound: Inbound| {
            (
                inbound.source,
                inbound.callid,
                inbound.kind,
                inbound.is_reply,
                inbound.query.map(|q| {
                    let text = text(&q);
                    (q.kind, q.callid, q.account_number, text)
                }),
            )
        };
        assert_eq!(
            summary(new),
            summary(old),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn duplicate_members_keep_the_last_value() {
        let body = br#"{"channel":"CRM","channel":"LCM","topic":"WebService",
            "subtopic":"GetBusinessOutcome","data":3,
            "data":{"callid":"1","callid":"2","AccountNumber":"9"}}"#;
        let query = parse_request(body, LIMIT).query.unwrap();
        assert_eq!(query.callid, "2");
        agree(body, LIMIT);
    }

    #[test]
    fn a_data_key_spelt_exactly_wins_over_other_spellings() {
        let body = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome",
            "data":{"CALLID":"1","callid":"2","AccountNumber":"9"}}"#;
        assert_eq!(parse_request(body, LIMIT).query.unwrap().callid, "2");
        agree(body, LIMIT);
    }

    #[test]
    fn of_other_spellings_the_first_met_wins_with_its_last_value() {
        // The tree keeps one entry per spelling, where it was first met,
        // holding the last value given under that spelling.
        let body = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome",
            "data":{"CALLID":"1","CallId":"2","CALLID":"3","AccountNumber":"9"}}"#;
        assert_eq!(parse_request(body, LIMIT).query.unwrap().callid, "3");
        agree(body, LIMIT);
    }

    #[test]
    fn a_data_string_with_escapes_and_numbers_is_read_as_its_object() {
        let body = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcomeParent",
            "data":"{\"call\\u0069d\": 12.50, \"AccountNumber\": \" 4 \", \"parentbusinessoutcomeid\": 101}"}"#;
        let query = parse_request(body, LIMIT).query.unwrap();
        assert_eq!(
            (query.callid.as_str(), query.account_number.as_str()),
            ("12.50", "4")
        );
        assert_eq!(
            crate::protocol::data_text(&query.data, "ParentBusinessOutcomeId"),
            Ok(Some("101".into()))
        );
        agree(body, LIMIT);
    }

    #[test]
    fn a_subtopic_of_another_type_is_echoed_as_its_json() {
        let body = br#"{"channel":"LCM","topic":"WebService","subtopic":{"b": [1, 2.0], "a":null, "b":true}}"#;
        assert_eq!(
            parse_request(body, LIMIT).query,
            Err(WsError::UnsupportedSubtopic(
                r#"{"b":true,"a":null}"#.into()
            ))
        );
        agree(body, LIMIT);
    }

    #[test]
    fn an_unknown_member_nested_past_the_limit_is_not_json_as_before() {
        let deep = format!(
            r#"{{"channel":"LCM","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            parse_request(deep.as_bytes(), LIMIT).query,
            Err(WsError::Malformed("body is not JSON".into()))
        );
        agree(deep.as_bytes(), LIMIT);
    }

    #[test]
    fn serde_json_private_keys_read_as_the_tree_reads_them() {
        // With arbitrary_precision and raw_value, a `Value` reads these
        // objects as a number and as the JSON in the string.
        for body in [
            br#"{"$serde_json::private::Number":"5"}"#.as_slice(),
            br#"{"$serde_json::private::Number":"x"}"#,
            br#"{"$serde_json::private::Number":"5","channel":"LCM"}"#,
            br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"$serde_json::private::Number":"7"}}"#,
            br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"callid":{"$serde_json::private::Number":"7"},"AccountNumber":1}}"#,
            br#"{"$serde_json::private::RawValue":"{\"channel\":\"LCM\",\"topic\":\"WebService\",\"subtopic\":\"GetBusinessOutcome\",\"data\":{\"callid\":\"1\",\"AccountNumber\":\"2\"}}"}"#,
            br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"$serde_json::private::RawValue":"{\"callid\":3,\"AccountNumber\":4}"}}"#,
            br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":"{\"$serde_json::private::RawValue\":\"{\\\"callid\\\":3,\\\"AccountNumber\\\":4}\"}"}"#,
            br#"{"x":{"$serde_json::private::RawValue":"nope"},"channel":"LCM"}"#,
        ] {
            agree(body, LIMIT);
        }
        let raw = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"$serde_json::private::RawValue":"{\"callid\":3,\"AccountNumber\":4}"}}"#;
        assert_eq!(parse_request(raw, LIMIT).query.unwrap().callid, "3");
    }

    #[test]
    fn lone_surrogates_and_bad_escapes_anywhere_are_not_json() {
        for body in [
            br#"{"channel":"LCM","x":"\ud800"}"#.as_slice(),
            br#"{"channel":"LCM","x":["\q"]}"#,
            br#"{"\ud800":1}"#,
            br#"{"channel":"LCM","data":{"other":"\udc00"}}"#,
        ] {
            assert_eq!(
                parse_request(body, LIMIT).query,
                Err(WsError::Malformed("body is not JSON".into())),
                "{}",
                String::from_utf8_lossy(body)
            );
            agree(body, LIMIT);
        }
    }

    mod against_the_tree {
        use super::*;
        use proptest::prelude::*;

        /// JSON text, not a `Value`: duplicate keys, escaped spellings,
        /// numbers as written and serde_json's private keys can occur.
        fn json_text() -> impl Strategy<Value = String> {
            let key = prop::sample::select(vec![
                "channel",
                "topic",
                "subtopic",
                "data",
                "source",
                "callid",
                "CallID",
                "CALLID",
                "call\\u0069d",
                "AccountNumber",
                "accountnumber",
                "ParentBusinessOutcomeId",
                "PARENTBUSINESSOUTCOMEID",
                "dat\\u0061",
                "x",
                "$serde_json::private::Number",
                "$serde_json::private::RawValue",
            ])
            .prop_map(|k| format!("\"{k}\""));
            let leaf = prop::sample::select(vec![
                "\"LCM\"",
                "\"lcm\"",
                "\"WebService\"",
                "\"GetBusinessOutcome\"",
                "\"getbusinessoutcomeparent\"",
                "\"BusinessOutCome\"",
                "\"12345\"",
                "\" 7 \"",
                "\"\"",
                "\"  \"",
                "null",
                "true",
                "12345",
                "1e5",
                "-0.50",
                "123456789012345678901234567890",
                "\"\\u0041\\n\"",
                "\"a\\u0007b\"",
                "\"5\"",
                "\"x\"",
                "[]",
                "{}",
                "\"{\\\"callid\\\":\\\"1\\\",\\\"AccountNumber\\\":2}\"",
                "\"{\\\"CALLID\\\":1,\\\"callid\\\":\\\" \\\",\\\"AccountNumber\\\":[]}\"",
                "\"[1]\"",
                "\"{\"",
            ])
            .prop_map(str::to_owned);
            leaf.prop_recursive(4, 48, 8, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    prop::collection::vec((key.clone(), inner.clone()), 0..8).prop_map(|pairs| {
                        let members: Vec<String> =
                            pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                        format!("{{{}}}", members.join(","))
                    }),
                    inner.prop_map(|text| serde_json::to_string(&text).unwrap()),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn generated_json_text_is_decided_as_the_tree_decided_it(text in json_text()) {
                agree(text.as_bytes(), 65536);
            }

            #[test]
            fn generated_request_values_are_decided_as_the_tree_decided_them(
                value in properties::request_like()
            ) {
                agree(value.to_string().as_bytes(), 65536);
            }

            #[test]
            fn arbitrary_bytes_are_decided_as_the_tree_decided_them(
                body in prop::collection::vec(any::<u8>(), 0..512)
            ) {
                agree(&body, 256);
            }
        }
    }
}
