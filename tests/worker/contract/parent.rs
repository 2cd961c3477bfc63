//! docs/protocol.md section 9: GetBusinessOutcomeParent.

use serde_json::{json, Value};

use crate::support::*;

/// A two-level tree: primaries 1 and 2; children of 1 stored out of id order.
const TREE: &str = r#"[
    {"OutComeID":"1","Description":"Reached"},
    {"OutComeID":"13","Description":"Promise to pay","ParentID":"1"},
    {"OutComeID":"2","Description":"No answer"},
    {"OutComeID":"11","Description":"Paid","ParentID":1,"LeadScore":9},
    {"OutComeID":"21","Description":"Voicemail","ParentID":"2"},
    {"OutComeID":"3","Description":"Wrong number"}
]"#;

fn parent_request(parent: Value) -> Value {
    json!({
        "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcomeParent",
        "data": {"callid": "c1", "AccountNumber": "A1", "ParentBusinessOutcomeId": parent}
    })
}

fn ids(reply: &Value) -> Vec<String> {
    reply["message"]["response"]
        .as_array()
        .unwrap_or_else(|| panic!("not a success reply: {reply}"))
        .iter()
        .map(|o| o["OutComeID"].as_str().unwrap().to_owned())
        .collect()
}

async fn tree_env(test: &str) -> (TestEnv, Worker) {
    let env = TestEnv::new(test).await;
    env.seed_call("c1", &[("campaign_id", "7"), ("account_number", "A1")])
        .await;
    env.seed_outcomes("7", TREE).await;
    let worker = env.start_worker(&[]).await;
    (env, worker)
}

#[tokio::test]
async fn children_are_answered_in_stored_order_for_string_and_numeric_parent_ids() {
    let (env, _worker) = tree_env("parent-order").await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&parent_request(json!("1"))).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutcomeParent");
    assert_eq!(reply.body["message"]["callid"], "c1");
    assert_eq!(
        reply.body["message"]["response"],
        json!([
            {"OutComeID": "13", "Description": "Promise to pay", "CampaignID": "7", "LeadScore": "0", "ParentID": "1"},
            {"OutComeID": "11", "Description": "Paid", "CampaignID": "7", "LeadScore": "9", "ParentID": "1"}
        ])
    );
    let numeric = requester.request(&parent_request(json!(2))).await;
    assert_eq!(ids(&numeric.body), ["21"]);
}

#[tokio::test]
async fn the_subtopic_matches_in_any_letter_case() {
    let (env, _worker) = tree_env("parent-case").await;
    let mut requester = env.requester("desk").await;
    let mut body = parent_request(json!("1"));
    body["subtopic"] = json!("getBUSINESSoutcomePARENT");
    let reply = requester.request(&body).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutcomeParent");
    assert_eq!(ids(&reply.body), ["13", "11"]);
}

#[tokio::test]
async fn a_parent_without_children_answers_an_empty_list() {
    let (env, _worker) = tree_env("parent-empty").await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&parent_request(json!("3"))).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutcomeParent");
    assert_eq!(reply.body["message"]["response"], json!([]));
}

#[tokio::test]
async fn missing_and_unknown_parent_ids_get_their_errors() {
    let (env, worker) = tree_env("parent-errors").await;
    let mut requester = env.requester("desk").await;
    for missing in [json!(null), json!(""), json!("  ")] {
        let reply = requester.request(&parent_request(missing)).await;
        assert_eq!(reply.error_message(), "ParentBusinessOutcomeId is empty");
        assert_eq!(reply.msg(), "Invalid Parent Business Outcome ID.");
    }
    let unknown = requester.request(&parent_request(json!("99"))).await;
    assert_eq!(
        unknown.error_message(),
        "Invalid ParentBusinessOutcomeId:99"
    );
    assert_eq!(unknown.msg(), "Invalid Parent Business Outcome ID.");
    // A child's id is an outcome of the campaign: a valid (childless) parent.
    let child = requester.request(&parent_request(json!("11"))).await;
    assert_eq!(child.body["message"]["response"], json!([]));
    // Metrics tell the two request kinds apart.
    worker
        .wait_counter(
            "lcm_requests_total",
            &[
                "subtopic=\"GetBusinessOutcomeParent\"",
                "result=\"parent_empty\"",
            ],
            3.0,
        )
        .await;
}

#[tokio::test]
async fn common_checks_come_before_the_parent_checks() {
    let (env, _worker) = tree_env("parent-order-of-checks").await;
    let mut requester = env.requester("desk").await;
    let mut unknown_call = parent_request(json!(null));
    unknown_call["data"]["callid"] = json!("nope");
    let reply = requester.request(&unknown_call).await;
    assert_eq!(reply.error_message(), "Invalid Call ID:nope");
    let mut wrong_account = parent_request(json!("99"));
    wrong_account["data"]["AccountNumber"] = json!("B2");
    let reply = requester.request(&wrong_account).await;
    assert_eq!(reply.error_message(), "Invalid AccountNumber:B2");
}

#[tokio::test]
async fn get_business_outcome_still_answers_the_whole_list_children_included() {
    let (env, worker) = tree_env("parent-whole").await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&request_for("c1", "A1")).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
    assert_eq!(ids(&reply.body), ["1", "13", "2", "11", "21", "3"]);
    worker
        .wait_counter(
            "lcm_requests_total",
            &["subtopic=\"GetBusinessOutcome\"", "result=\"ok\""],
            1.0,
        )
        .await;
}
