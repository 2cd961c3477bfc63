//! The reply schemas of docs/asyncapi.yaml (docs/schemas/*.json): every
//! reply the tests receive is checked against the one its subtopic names,
//! so the published contract cannot drift from what the worker sends.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

struct Schemas {
    business_outcome: Validator,
    business_outcome_parent: Validator,
    ws_error: Validator,
}

fn compile(text: &str) -> Validator {
    let schema: Value = serde_json::from_str(text).expect("a schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas {
        business_outcome: compile(include_str!("../../../docs/schemas/business-outcome.json")),
        business_outcome_parent: compile(include_str!(
            "../../../docs/schemas/business-outcome-parent.json"
        )),
        ws_error: compile(include_str!("../../../docs/schemas/ws-error.json")),
    })
}

/// Why `reply` breaks its schema, or `None` when it keeps it.
fn schema_violation(reply: &Value) -> Option<String> {
    let schemas = schemas();
    let validator = match reply["subtopic"].as_str() {
        Some("BusinessOutCome") => &schemas.business_outcome,
        Some("BusinessOutcomeParent") => &schemas.business_outcome_parent,
        Some("WS_Error") => &schemas.ws_error,
        _ => return Some(format!("no reply schema has this subtopic: {reply}")),
    };
    let errors: Vec<String> = validator
        .iter_errors(reply)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| format!("{}: {reply}", errors.join("; ")))
}

/// Panics when `reply` breaks its schema.
pub fn assert_schema(reply: &Value) {
    if let Some(violation) = schema_violation(reply) {
        panic!("reply breaks docs/schemas: {violation}");
    }
}

#[test]
fn the_schemas_take_the_documented_replies_and_refuse_others() {
    let sample = serde_json::json!({"channel": "LCM", "topic": "WebService", "subtopic": "BusinessOutCome",
        "message": {"callid": "12345", "response": [
            {"OutComeID": "101", "Description": "Payment Done", "CampaignID": "1", "LeadScore": "0", "ParentID": null}]}});
    assert_eq!(schema_violation(&sample), None);
    let mut numeric = sample.clone();
    numeric["message"]["response"][0]["LeadScore"] = serde_json::json!(0);
    assert!(schema_violation(&numeric).is_some());
    let error = serde_json::json!({"channel": "LCM", "topic": "WebService", "subtopic": "WS_Error",
        "message": {"callid": "1", "errorType": "WS_Error", "errorMessage": "Invalid Call ID:1", "msg": "Invalid Call ID."}});
    assert_eq!(schema_violation(&error), None);
    let mut wrong_msg = error.clone();
    wrong_msg["message"]["msg"] = serde_json::json!("Invalid Request.");
    assert!(schema_violation(&wrong_msg).is_some());
}
