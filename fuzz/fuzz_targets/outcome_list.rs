//! The stored outcome-list parser, `OutcomeList::parse`, on arbitrary
//! text: what the campaign administration (or anything else that can
//! write Redis) left under `P:campaign:<id>:outcomes`.
//!
//! The input is the stored value as it is (the seeds are the contract's
//! examples, readable as they are); the campaign id is fixed, since it
//! only travels into `CampaignID` verbatim.
//!
//! Invariants: never panics; on success every element has an `OutComeID`
//! that is not blank (fuzz/regressions/outcome_list-empty-outcome-id), and `rendered()` is a JSON array of objects, one per
//! element in stored order, each with exactly the five keys of the
//! contract and the element's values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lcm_worker::outcomes::OutcomeList;
use serde_json::Value;

const CAMPAIGN: &str = "1";
const KEYS: [&str; 5] = ["OutComeID", "Description", "CampaignID", "LeadScore", "ParentID"];

fuzz_target!(|data: &[u8]| {
    // The Redis store hands the parser UTF-8 only (anything else is
    // `BadData`, answered without parsing).
    let Ok(stored) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(list) = OutcomeList::parse(CAMPAIGN, stored) else {
        return;
    };
    for outcome in list.outcomes() {
        assert!(!outcome.id.trim().is_empty(), "a blank OutComeID was accepted");
        assert_eq!(outcome.campaign_id, CAMPAIGN);
    }
    let rendered: Value = serde_json::from_str(list.rendered()).expect("rendered() is JSON");
    let elements = rendered.as_array().expect("rendered() is an array");
    assert_eq!(elements.len(), list.outcomes().len());
    for (element, outcome) in elements.iter().zip(list.outcomes()) {
        let fields = element.as_object().expect("an element is an object");
        assert_eq!(fields.len(), KEYS.len(), "{element}");
        for key in KEYS {
            assert!(fields.contains_key(key), "{key} missing in {element}");
        }
        assert_eq!(fields["OutComeID"].as_str(), Some(outcome.id.as_str()));
        assert_eq!(fields["Description"].as_str(), Some(outcome.description.as_str()));
        assert_eq!(fields["CampaignID"].as_str(), Some(CAMPAIGN));
        assert_eq!(fields["LeadScore"].as_str(), Some(outcome.lead_score.as_str()));
        match (&fields["ParentID"], &outcome.parent_id) {
            (Value::Null, None) => {}
            (Value::String(rendered), Some(parent)) => assert_eq!(rendered, parent),
            (rendered, parent) => panic!("ParentID {rendered} rendered for {parent:?}"),
        }
    }
});
