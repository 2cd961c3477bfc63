use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn the_documentation_sample_request_gets_the_documentation_sample_response() {
    let env = TestEnv::new("sample").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("agent-desktop-eu").await;

    let reply = requester.request(&sample_request("agent-desktop-eu")).await;

    let expected: Value = json!({
      "channel": "LCM",
      "topic": "WebService",
      "subtopic": "BusinessOutCome",
      "message": {
        "callid": "12345",
        "response": [
          {"OutComeID": "101", "Description": "Payment Done", "CampaignID": "1", "LeadScore": "0", "ParentID": null},
          {"OutComeID": "102", "Description": "Payment Failure", "CampaignID": "1", "LeadScore": "0", "ParentID": null}
        ]
      }
    });
    assert_eq!(reply.body, expected);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.app_id.as_deref(), Some("lcm-outcome-worker"));
}

#[tokio::test]
async fn the_seed_command_loads_the_shipped_demo_data() {
    let env = TestEnv::new("seed").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args(["seed", "config/demo-data.json"])
        .envs(env.worker_env())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("seeded 1 calls and 1 campaigns"));

    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("agent-desktop-eu").await;
    let reply = requester.request(&sample_request("agent-desktop-eu")).await;
    let ids: Vec<&str> = reply.body["message"]["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["OutComeID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["101", "102"]);
}

#[tokio::test]
async fn seed_rejects_a_file_with_a_corrupt_outcome_list() {
    let env = TestEnv::new("seedbad").await;
    let path = std::env::temp_dir().join(format!("{}.json", env.names.id));
    std::fs::write(&path, r#"{"campaigns": {"1": [{"Description": "no id"}]}}"#).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("seed")
        .arg(&path)
        .envs(env.worker_env())
        .output()
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("campaign 1"));
}

#[tokio::test]
async fn sigterm_stops_the_worker_cleanly_with_exit_status_zero() {
    let env = TestEnv::new("sigterm").await;
    let worker = env.start_worker(&[]).await;
    let logs = worker.logs.clone();
    let status = worker.terminate().await;
    assert!(status.success(), "{status:?}");
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.contains("AMQP channel and connection closed"),
        "{logs}"
    );
    assert!(!logs.contains("guest:guest"), "password logged:\n{logs}");
}
