//! The whole request -> reply decision (`Service::handle`) on arbitrary
//! bodies and AMQP properties, over a tiny in-memory store.
//!
//! Input layout (see `fuzz/seeds.py`, which writes the seed corpus):
//!
//! ```text
//! byte 0      bits 0-3: reply_to, correlation_id, message_id, app_id present
//!             bits 4-6: which call record the store answers (CALLS)
//! byte 1      which outcome list the store answers (LISTS, modulo)
//! then        for each property present, in that order: one length byte L,
//!             then L bytes (fewer if the input ends), decoded lossily as
//!             the worker decodes AMQP short strings (so U+FFFD can occur)
//! the rest    the message body
//! ```
//!
//! Invariants: never panics; a reply is JSON with channel `LCM`, topic
//! `WebService` and a subtopic the contract names; the echoed callid and
//! every echoed value are cut to 128 bytes; a success reply's elements
//! have exactly the five keys; the route is one the properties or the
//! body named.

#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lcm_worker::protocol::{ReplyRoute, RequestProperties, MAX_ECHO_BYTES};
use lcm_worker::service::{Action, CallRecord, Service, Store, StoreError};
use serde_json::Value;

const MAX_MESSAGE_BYTES: usize = 65536;
const SAMPLE_ACCOUNT: &str = "5|3|1|0|0|44|1";

/// Longest fixed text before an echoed value in an `errorMessage`
/// ("Corrupt business outcome data for Campaign ID:").
const LONGEST_ERROR_PREFIX: usize = 47;

/// What the store answers for any callid.
#[derive(Clone, Copy)]
enum Call {
    Sample,
    AnyAccount,
    NoCampaign,
    BlankCampaign,
    Missing,
    BadData,
    PaddedAccount,
    LongCampaign,
}

const CALLS: [Call; 8] = [
    Call::Sample,
    Call::AnyAccount,
    Call::NoCampaign,
    Call::BlankCampaign,
    Call::Missing,
    Call::BadData,
    Call::PaddedAccount,
    Call::LongCampaign,
];

/// What the store answers for any campaign.
#[derive(Clone, Copy)]
enum List {
    Stored(&'static str),
    Missing,
    BadData,
}

const LISTS: [List; 6] = [
    // The contract's Redis example, with a second level under 101.
    List::Stored(
        r#"[{"OutComeID":"101","Description":"Payment Done","LeadScore":"0","ParentID":null},
            {"OutComeID":"102","Description":"Payment Failure"},
            {"OutComeID":1011,"Description":"Paid in full","LeadScore":5,"ParentID":101},
            {"OutComeID":" 1012 ","Description":"Paid in part","ParentID":"101","CampaignID":"99"}]"#,
    ),
    List::Missing,
    List::Stored("{oops"),
    List::BadData,
    List::Stored("[]"),
    List::Stored(
        r#"[{"OutComeID":"\u00e9\u0000","Description":"\ud83d\ude00 \"quoted\" \\ \n","ParentID":-0.5e3},
            {"OutComeID":18446744073709551616,"Description":"","LeadScore":"","ParentID":"\u00e9\u0000"}]"#,
    ),
];

struct FixedStore {
    call: Call,
    list: List,
}

impl Store for FixedStore {
    async fn call(&self, _callid: &str) -> Result<Option<CallRecord>, StoreError> {
        let record = |campaign: Option<&str>, account: Option<&str>| {
            Ok(Some(CallRecord {
                campaign_id: campaign.map(Into::into),
                account_number: account.map(Into::into),
            }))
        };
        match self.call {
            Call::Sample => record(Some("1"), Some(SAMPLE_ACCOUNT)),
            Call::AnyAccount => record(Some("1"), None),
            Call::NoCampaign => record(None, Some(SAMPLE_ACCOUNT)),
            Call::BlankCampaign => record(Some(" \t"), None),
            Call::Missing => Ok(None),
            Call::BadData => Err(StoreError::BadData("WRONGTYPE".into())),
            Call::PaddedAccount => record(Some("1"), Some(" 5|3|1|0|0|44|1 ")),
            Call::LongCampaign => Ok(Some(CallRecord {
                campaign_id: Some(format!("c{}", "é".repeat(100))),
                account_number: None,
            })),
        }
    }

    async fn outcome_list(&self, _campaign_id: &str) -> Result<Option<String>, StoreError> {
        match self.list {
            List::Stored(text) => Ok(Some(text.to_owned())),
            List::Missing => Ok(None),
            List::BadData => Err(StoreError::BadData("not UTF-8".into())),
        }
    }
}

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime"),
    );
}

/// Splits the input into the store's answers, the properties (`reply_to`,
/// `correlation_id`, `message_id`, `app_id`) and the body.
fn split(data: &[u8]) -> (FixedStore, [Option<String>; 4], &[u8]) {
    let (flags, list, mut rest) = match data {
        [flags, list, rest @ ..] => (*flags, *list, rest),
        _ => (0, 0, data),
    };
    let store = FixedStore {
        call: CALLS[usize::from((flags >> 4) & 7)],
        list: LISTS[usize::from(list) % LISTS.len()],
    };
    let mut property = |bit: u8| -> Option<String> {
        if flags & (1 << bit) == 0 {
            return None;
        }
        let (&len, tail) = rest.split_first()?;
        let len = usize::from(len).min(tail.len());
        let (value, tail) = tail.split_at(len);
        rest = tail;
        Some(String::from_utf8_lossy(value).into_owned())
    };
    let properties = [property(0), property(1), property(2), property(3)];
    (store, properties, rest)
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

fuzz_target!(|data: &[u8]| {
    let (store, owned, body) = split(data);
    let properties = RequestProperties {
        reply_to: owned[0].as_deref(),
        correlation_id: owned[1].as_deref(),
        message_id: owned[2].as_deref(),
        app_id: owned[3].as_deref(),
        ..RequestProperties::default()
    };
    let service = Service::new(store, MAX_MESSAGE_BYTES, Duration::from_secs(2));
    let handled = RUNTIME.with(|runtime| {
        runtime.borrow().block_on(service.handle(
            body,
            &properties,
            tokio::time::Instant::now(),
        ))
    });
    assert!(handled.callid.len() <= MAX_ECHO_BYTES, "callid not cut");

    let (route, reply) = match &handled.action {
        Action::Reply { route, body } => (route, body),
        Action::DeadLetter { .. } => return,
    };
    // The route is one the request named.
    match route {
        ReplyRoute::ReplyTo(key) => {
            assert!(!key.is_empty());
            assert_eq!(Some(key.as_str()), properties.reply_to);
        }
        ReplyRoute::Source(key) => {
            assert!(!key.is_empty());
            assert!(
                handled.source.as_ref() == Some(key) || properties.app_id == Some(key.as_str()),
                "route {key:?} named by neither source nor app_id"
            );
        }
    }

    let reply: Value = serde_json::from_slice(reply).expect("the reply is JSON");
    assert_eq!(text(&reply, "channel"), "LCM");
    assert_eq!(text(&reply, "topic"), "WebService");
    let message = &reply["message"];
    assert!(message.is_object(), "message is not an object: {reply}");
    let callid = text(message, "callid");
    assert!(callid.len() <= MAX_ECHO_BYTES, "echoed callid of {} bytes", callid.len());
    assert_eq!(callid, handled.callid);
    match text(&reply, "subtopic") {
        "WS_Error" => {
            assert_ne!(handled.result, "ok");
            assert_eq!(text(message, "errorType"), "WS_Error");
            let error_message = text(message, "errorMessage");
            assert!(
                error_message.len() <= LONGEST_ERROR_PREFIX + MAX_ECHO_BYTES,
                "errorMessage of {} bytes: an echoed value was not cut",
                error_message.len()
            );
            assert!(!text(message, "msg").is_empty());
            assert_eq!(message.as_object().map(|m| m.len()), Some(4), "{reply}");
        }
        subtopic @ ("BusinessOutCome" | "BusinessOutcomeParent") => {
            assert_eq!(handled.result, "ok");
            let kind = handled.kind.expect("a success names its kind");
            assert_eq!(subtopic, kind.reply_subtopic);
            assert!(!callid.is_empty());
            let response = message["response"].as_array().expect("response is an array");
            for element in response {
                let fields = element.as_object().expect("an element is an object");
                assert_eq!(fields.len(), 5, "{element}");
                for key in ["OutComeID", "Description", "CampaignID", "LeadScore"] {
                    text(element, key);
                }
                assert!(matches!(element["ParentID"], Value::Null | Value::String(_)));
            }
        }
        other => panic!("unexpected subtopic {other:?}"),
    }
});
