//! docs/protocol.md section 6: what the worker makes of stored data.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn stored_outcomes_are_normalised_in_stored_order() {
    let env = TestEnv::new("normalise").await;
    env.seed_call("c1", &[("campaign_id", "42")]).await;
    env.seed_outcomes(
        "42",
        r#"[{"OutComeID":300,"Description":"Callback","LeadScore":7,"ParentID":100,"CampaignID":"999","Extra":true},
            {"OutComeID":"100","Description":"Reached"},
            {"OutComeID":"200","Description":"No answer","LeadScore":"3","ParentID":null}]"#,
    )
    .await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&request_for("c1", "any account")).await;
    assert_eq!(
        reply.body["message"]["response"],
        json!([
            {"OutComeID": "300", "Description": "Callback", "CampaignID": "42", "LeadScore": "7", "ParentID": "100"},
            {"OutComeID": "100", "Description": "Reached", "CampaignID": "42", "LeadScore": "0", "ParentID": null},
            {"OutComeID": "200", "Description": "No answer", "CampaignID": "42", "LeadScore": "3", "ParentID": null}
        ])
    );
}

#[tokio::test]
async fn tolerant_parsing_accepts_the_documentation_variants() {
    let env = TestEnv::new("tolerant").await;
    env.seed_call("777", &[("campaign_id", "1"), ("account_number", "12")])
        .await;
    env.seed_outcomes("1", r#"[{"OutComeID":"1","Description":"One"}]"#)
        .await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    // Numbers for callid and AccountNumber, data as a string, keys in other
    // letter cases, envelope in other letter cases, no source.
    let body = json!({
        "channel": "lcm", "topic": "Webservice", "subtopic": "getbusinessoutcome",
        "data": "{\"CallID\": 777, \"accountnumber\": 12, \"unknown\": 1}"
    });
    let reply = requester.request(&body).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutCome", "{}", reply.body);
    assert_eq!(reply.body["message"]["callid"], "777");
}

#[tokio::test]
async fn a_campaign_without_a_stored_list_answers_an_empty_list() {
    let env = TestEnv::new("emptylist").await;
    env.seed_call("c2", &[("campaign_id", "5")]).await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&request_for("c2", "1")).await;
    assert_eq!(reply.body["message"]["response"], json!([]));
    assert_eq!(
        worker.counter("lcm_empty_outcome_lists_total", &[]).await,
        1.0
    );
    worker
        .wait_logged("campaign has no stored outcome list")
        .await;
}

#[tokio::test]
async fn a_campaign_edit_is_seen_within_the_outcome_cache_ttl() {
    let env = TestEnv::new("edit").await;
    env.seed_call("c3", &[("campaign_id", "6")]).await;
    env.seed_outcomes("6", r#"[{"OutComeID":"1","Description":"Before"}]"#)
        .await;
    let _worker = env
        .start_worker(&[("LCM__REDIS__OUTCOME_CACHE_MS", "300")])
        .await;
    let mut requester = env.requester("desk").await;
    let before = requester.request(&request_for("c3", "1")).await;
    assert_eq!(
        before.body["message"]["response"][0]["Description"],
        "Before"
    );

    env.seed_outcomes("6", r#"[{"OutComeID":"1","Description":"After"}]"#)
        .await;
    let edited = tokio::time::Instant::now();
    loop {
        let reply = requester.request(&request_for("c3", "1")).await;
        if reply.body["message"]["response"][0]["Description"] == "After" {
            break;
        }
        // The TTL, plus the time a stale reply takes to travel back.
        assert!(
            edited.elapsed() < std::time::Duration::from_millis(300 + 200),
            "the edit was not seen within the cache TTL"
        );
    }
}

#[tokio::test]
async fn numbers_are_echoed_digit_for_digit_as_written() {
    let env = TestEnv::new("big-numbers").await;
    env.seed_call("123456789012345678901234567890", &[("campaign_id", "7")])
        .await;
    env.seed_outcomes(
        "7",
        r#"[{"OutComeID":98765432109876543210,"Description":"d","LeadScore":1e5}]"#,
    )
    .await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    // Written by hand: the numbers must reach the worker as they are here.
    let body = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome",
        "data":{"callid":123456789012345678901234567890,"AccountNumber":1}}"#;
    let correlation_id = new_correlation_id();
    requester
        .publish(
            body,
            lapin::BasicProperties::default()
                .with_reply_to(requester.reply_queue.as_str().into())
                .with_correlation_id(correlation_id.as_str().into()),
        )
        .await;
    let reply = requester.reply_for(&correlation_id).await.expect("a reply");
    assert_eq!(
        reply.body["message"]["callid"],
        "123456789012345678901234567890"
    );
    assert_eq!(
        reply.body["message"]["response"],
        json!([{"OutComeID": "98765432109876543210", "Description": "d",
            "CampaignID": "7", "LeadScore": "1e+5", "ParentID": null}])
    );
}
