//! The bench's own data set, and the reply each request must get.
//!
//! Pure: no broker, no cache. The worker reads `redis.key_prefix`, so the
//! bench cannot use a prefix of its own; it keeps apart from real data by
//! unique ids instead: calls `bench-<runid>-<n>`, campaigns
//! `bench-<runid>-c<k>`.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::outcomes::{parse_outcome_list, CorruptList};

/// The `subtopic` of a GetBusinessOutcome success reply.
const REPLY_SUBTOPIC: &str = "BusinessOutCome";

/// One seeded call and the request that asks about it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `bench-<runid>-<n>`.
    pub callid: String,
    /// The account number stored with the call and sent in the request.
    pub account: String,
    /// Index into [`DataSet::campaigns`].
    pub campaign: usize,
    /// The request body, rendered once so that sending costs no JSON work.
    pub body: Vec<u8>,
}

/// One seeded campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// `bench-<runid>-c<k>`.
    pub id: String,
    /// The outcome list as stored in Redis.
    pub stored: String,
    /// The `message.response` every reply for this campaign must carry.
    pub expected: Value,
    /// The text of the first `message.response` that [`check_reply`]
    /// passed: a later reply carrying the same bytes needs no comparison
    /// of JSON values (see [`DataSet::check`]).
    passed: OnceLock<Box<[u8]>>,
}

/// Every call and campaign of one run.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// Unique to this run; also the correlation ids' prefix.
    pub run_id: String,
    /// The calls, requested round-robin.
    pub calls: Vec<Call>,
    /// The campaigns, assigned to calls round-robin.
    pub campaigns: Vec<Campaign>,
}

impl DataSet {
    /// Builds `calls` calls over `campaigns` campaigns of `outcomes`
    /// outcomes each. Expected replies come from the worker's own
    /// normalisation ([`parse_outcome_list`]), so a change there cannot
    /// make the bench disagree with the contract silently: the unit tests
    /// below pin the normalised form.
    pub fn generate(
        run_id: &str,
        source: &str,
        calls: usize,
        campaigns: usize,
        outcomes: usize,
    ) -> Result<Self, CorruptList> {
        let campaigns = (0..campaigns.max(1))
            .map(|k| {
                let id = format!("bench-{run_id}-c{k}");
                let stored = outcome_list(outcomes).to_string();
                let expected = serde_json::to_value(parse_outcome_list(&id, &stored)?)
                    .map_err(|_| CorruptList("not serialisable"))?;
                Ok(Campaign {
                    id,
                    stored,
                    expected,
                    passed: OnceLock::new(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let calls = (0..calls.max(1))
            .map(|n| {
                let callid = callid(run_id, n as u64);
                let account = format!("{n}|bench|{run_id}");
                let body = request_body(source, &callid, &account);
                Call {
                    callid,
                    account,
                    campaign: n % campaigns.len(),
                    body,
                }
            })
            .collect();
        Ok(Self {
            run_id: run_id.to_owned(),
            calls,
            campaigns,
        })
    }

    /// The call the `seq`-th request asks about.
    pub fn call_for(&self, seq: u64) -> &Call {
        let index = usize::try_from(call_index(seq, self.calls.len() as u64)).unwrap_or(0);
        &self.calls[index]
    }

    /// Checks a reply body against what `call` must get.
    ///
    /// Every reply is checked, and cheaply, since the bench shares the
    /// machine with what it measures: the envelope and callid are read
    /// without building a JSON tree, and a `message.response` whose text is
    /// byte for byte one that passed the full comparison passes too. Any
    /// other reply gets the full comparison ([`check_reply`]).
    pub fn check(&self, call: &Call, body: &[u8]) -> Result<(), Mismatch> {
        let campaign = &self.campaigns[call.campaign];
        let view = serde_json::from_slice::<ReplyView<'_>>(body).ok();
        if let (Some(view), Some(passed)) = (&view, campaign.passed.get()) {
            if view.is_reply_to(&call.callid) && view.message.response.get().as_bytes() == &**passed
            {
                return Ok(());
            }
        }
        check_reply(body, &call.callid, &campaign.expected)?;
        if let Some(view) = view {
            let _ = campaign
                .passed
                .set(view.message.response.get().as_bytes().into());
        }
        Ok(())
    }
}

/// The parts of a reply the check reads, borrowed from the body.
#[derive(Deserialize)]
struct ReplyView<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    subtopic: Cow<'a, str>,
    #[serde(borrow)]
    message: MessageView<'a>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow)]
    callid: Cow<'a, str>,
    #[serde(borrow)]
    response: &'a RawValue,
}

impl ReplyView<'_> {
    /// A BusinessOutCome reply to `callid`, as [`check_reply`] requires.
    fn is_reply_to(&self, callid: &str) -> bool {
        self.channel == "LCM"
            && self.topic == "WebService"
            && self.subtopic == REPLY_SUBTOPIC
            && self.message.callid == callid
    }
}

/// Why a reply is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The body is not JSON.
    #[error("the body is not JSON")]
    NotJson,
    /// `channel`, `topic` or `subtopic` differ (a `WS_Error` lands here).
    #[error("not a BusinessOutCome reply")]
    Envelope,
    /// `message.callid` is not the request's.
    #[error("message.callid differs from the request's")]
    Callid,
    /// `message.response` differs from the seeded list.
    #[error("message.response differs from the seeded outcome list")]
    Response,
}

/// Compares a reply with the expected one: the envelope, `message.callid`,
/// and `message.response` as a JSON value, so that key order inside an
/// outcome does not matter but the order of the outcomes does.
pub fn check_reply(body: &[u8], callid: &str, expected: &Value) -> Result<(), Mismatch> {
    let reply: Value = serde_json::from_slice(body).map_err(|_| Mismatch::NotJson)?;
    if reply["channel"] != "LCM"
        || reply["topic"] != "WebService"
        || reply["subtopic"] != REPLY_SUBTOPIC
    {
        return Err(Mismatch::Envelope);
    }
    let message = &reply["message"];
    if message["callid"] != callid {
        return Err(Mismatch::Callid);
    }
    if message["response"] != *expected {
        return Err(Mismatch::Response);
    }
    Ok(())
}

/// The callid of call `n` of run `run_id`.
fn callid(run_id: &str, n: u64) -> String {
    format!("bench-{run_id}-{n}")
}

/// Which of `calls` calls the `seq`-th request asks about.
fn call_index(seq: u64, calls: u64) -> u64 {
    // `calls` is never 0 in a data set (see `generate`).
    seq % calls.max(1)
}

/// The correlation id of the `seq`-th request of run `run_id`.
pub fn correlation_id(run_id: &str, seq: u64) -> String {
    format!("{run_id}-{seq}")
}

/// The sequence number of a request of run `run_id`, from the correlation
/// id [`correlation_id`] gave it; `None` for any other id.
pub fn sequence_of(correlation_id: &str, run_id: &str) -> Option<u64> {
    correlation_id
        .strip_prefix(run_id)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The callid a request of a run of `calls` calls asks about, from its
/// correlation id alone: for `examples/echo.rs`, which reads that call's
/// record without parsing the body. `None` for an id the bench did not
/// make.
pub fn callid_of_request(correlation_id: &str, calls: u64) -> Option<String> {
    let (run_id, _) = correlation_id.rsplit_once('-')?;
    let seq = sequence_of(correlation_id, run_id)?;
    Some(callid(run_id, call_index(seq, calls)))
}

fn request_body(source: &str, callid: &str, account: &str) -> Vec<u8> {
    crate::protocol::request_body(source, callid, account)
        .to_string()
        .into_bytes()
}

/// A stored list that exercises the normalisation the worker does: ids as
/// strings and numbers, missing and numeric lead scores, children under the
/// first outcome, and a stored `CampaignID` the reply must ignore.
fn outcome_list(outcomes: usize) -> Value {
    let items: Vec<Value> = (0..outcomes)
        .map(|i| {
            let id = 1000 + i as u64;
            let mut item = json!({"Description": format!("Bench outcome {i}")});
            item["OutComeID"] = if i % 2 == 0 {
                json!(id.to_string())
            } else {
                json!(id)
            };
            match i % 3 {
                1 => item["LeadScore"] = json!(i),
                2 => item["LeadScore"] = json!(i.to_string()),
                _ => {}
            }
            if i > 0 && i % 2 == 1 {
                item["ParentID"] = json!("1000");
            }
            if i == 0 {
                item["CampaignID"] = json!("not-this-one");
            }
            item
        })
        .collect();
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::render_outcomes;
    use crate::protocol::RequestKind;

    fn data() -> DataSet {
        DataSet::generate("r1", "lcm-bench", 5, 2, 3).unwrap()
    }

    #[test]
    fn ids_are_unique_to_the_run_and_calls_round_robin_over_campaigns() {
        let data = data();
        let ids: Vec<_> = data.calls.iter().map(|c| c.callid.as_str()).collect();
        assert_eq!(
            ids,
            [
                "bench-r1-0",
                "bench-r1-1",
                "bench-r1-2",
                "bench-r1-3",
                "bench-r1-4"
            ]
        );
        let campaigns: Vec<_> = data.calls.iter().map(|c| c.campaign).collect();
        assert_eq!(campaigns, [0, 1, 0, 1, 0]);
        assert_eq!(data.campaigns[1].id, "bench-r1-c1");
        assert_eq!(data.call_for(7).callid, "bench-r1-2");
    }

    #[test]
    fn a_requests_callid_follows_from_its_correlation_id() {
        let data = data();
        for seq in 0..12 {
            assert_eq!(
                callid_of_request(&correlation_id(&data.run_id, seq), 5).as_deref(),
                Some(data.call_for(seq).callid.as_str()),
                "seq {seq}"
            );
        }
        for foreign in ["", "r1", "r1-x", "r1-"] {
            assert_eq!(callid_of_request(foreign, 5), None, "{foreign:?}");
        }
        assert_eq!(sequence_of(&correlation_id("r1", 42), "r1"), Some(42));
        for other in ["r2-42", "r1-", "r142", "r1-4x"] {
            assert_eq!(sequence_of(other, "r1"), None, "{other:?}");
        }
    }

    #[test]
    fn the_expected_response_is_the_normalised_list() {
        let data = data();
        assert_eq!(
            data.campaigns[0].expected,
            json!([
                {"OutComeID": "1000", "Description": "Bench outcome 0", "CampaignID": "bench-r1-c0", "LeadScore": "0", "ParentID": null},
                {"OutComeID": "1001", "Description": "Bench outcome 1", "CampaignID": "bench-r1-c0", "LeadScore": "1", "ParentID": "1000"},
                {"OutComeID": "1002", "Description": "Bench outcome 2", "CampaignID": "bench-r1-c0", "LeadScore": "2", "ParentID": null},
            ])
        );
    }

    #[test]
    fn the_request_body_carries_the_call_and_account() {
        let data = data();
        let body: Value = serde_json::from_slice(&data.calls[3].body).unwrap();
        assert_eq!(body["subtopic"], "GetBusinessOutcome");
        assert_eq!(body["source"], "lcm-bench");
        assert_eq!(body["data"]["callid"], "bench-r1-3");
        assert_eq!(body["data"]["AccountNumber"], "3|bench|r1");
    }

    #[test]
    fn the_reply_the_worker_renders_passes() {
        let data = data();
        let call = &data.calls[1];
        let campaign = &data.campaigns[call.campaign];
        let kind = RequestKind::from_subtopic("GetBusinessOutcome").unwrap();
        let list = crate::outcomes::OutcomeList::parse(&campaign.id, &campaign.stored).unwrap();
        let reply = render_outcomes(kind, &call.callid, &list, &crate::protocol::Selection::All);
        assert_eq!(data.check(call, &reply), Ok(()));
    }

    #[test]
    fn a_reply_that_passed_once_passes_again_and_a_changed_one_still_fails() {
        let data = data();
        let call = &data.calls[0];
        let expected = &data.campaigns[0].expected;
        let reply = |response: &Value| {
            json!({"channel": "LCM", "topic": "WebService", "subtopic": "BusinessOutCome",
                   "message": {"callid": "bench-r1-0", "response": response}})
            .to_string()
            .into_bytes()
        };
        assert!(data.campaigns[0].passed.get().is_none());
        assert_eq!(data.check(call, &reply(expected)), Ok(()));
        assert!(data.campaigns[0].passed.get().is_some());
        // The same text again: passes without the full comparison.
        assert_eq!(data.check(call, &reply(expected)), Ok(()));
        // Once a response has passed, a different one is still compared in full.
        let mut changed = expected.clone();
        changed[0]["Description"] = json!("changed");
        assert_eq!(data.check(call, &reply(&changed)), Err(Mismatch::Response));
        let other_call = &data.calls[2];
        assert_eq!(
            data.check(other_call, &reply(expected)),
            Err(Mismatch::Callid)
        );
        // Same values, other spacing: not the text that passed, but equal.
        let spaced = String::from_utf8(reply(expected))
            .unwrap()
            .replace(",", ", ");
        assert_eq!(data.check(call, spaced.as_bytes()), Ok(()));
    }

    #[test]
    fn wrong_replies_say_what_differs() {
        let data = data();
        let call = &data.calls[0];
        let expected = &data.campaigns[0].expected;
        let ok = json!({"channel": "LCM", "topic": "WebService", "subtopic": "BusinessOutCome",
                        "message": {"callid": "bench-r1-0", "response": expected}});
        let with = |pointer: &str, value: Value| {
            let mut reply = ok.clone();
            *reply.pointer_mut(pointer).unwrap() = value;
            reply.to_string().into_bytes()
        };
        assert_eq!(data.check(call, &ok.to_string().into_bytes()), Ok(()));
        assert_eq!(data.check(call, b"nope"), Err(Mismatch::NotJson));
        assert_eq!(
            data.check(call, &with("/subtopic", json!("WS_Error"))),
            Err(Mismatch::Envelope)
        );
        assert_eq!(
            data.check(call, &with("/message/callid", json!("bench-r1-1"))),
            Err(Mismatch::Callid)
        );
        assert_eq!(
            data.check(call, &with("/message/response/0/LeadScore", json!(0))),
            Err(Mismatch::Response)
        );
        let mut reordered = expected.as_array().unwrap().clone();
        reordered.swap(0, 1);
        assert_eq!(
            data.check(call, &with("/message/response", Value::Array(reordered))),
            Err(Mismatch::Response)
        );
    }
}
