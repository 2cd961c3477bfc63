//! Stored outcome lists: parsing and normalisation (docs/protocol.md section 6).
//!
//! Pure: turns the JSON text kept under `P:campaign:<id>:outcomes` into the
//! reply entries of section 5.

use serde::Serialize;
use serde_json::{Map, Value};

/// One business outcome as the reply carries it: every field a string,
/// `ParentID` a string or null, spelled as the documentation's sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The outcome's id.
    #[serde(rename = "OutComeID")]
    pub id: String,
    /// What the agent sees.
    #[serde(rename = "Description")]
    pub description: String,
    /// The campaign whose key held the list (never the stored element's).
    #[serde(rename = "CampaignID")]
    pub campaign_id: String,
    /// Lead score, `"0"` when not stored.
    #[serde(rename = "LeadScore")]
    pub lead_score: String,
    /// The primary outcome this one sits under, if any.
    #[serde(rename = "ParentID")]
    pub parent_id: Option<String>,
}

/// The stored list is not a JSON array of outcome objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt outcome list: {0}")]
pub struct CorruptList(pub &'static str);

/// A campaign's parsed outcome list with its reply JSON rendered once, so
/// that requests share it instead of re-parsing and re-rendering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeList {
    outcomes: Vec<Outcome>,
    rendered: String,
}

impl OutcomeList {
    /// Parses a stored list (see [`parse_outcome_list`]) and renders it.
    pub fn parse(campaign_id: &str, stored: &str) -> Result<Self, CorruptList> {
        Ok(Self::new(parse_outcome_list(campaign_id, stored)?))
    }

    /// Wraps parsed outcomes.
    pub fn new(outcomes: Vec<Outcome>) -> Self {
        // Serialising plain structs of strings cannot fail.
        let rendered = serde_json::to_string(&outcomes).unwrap_or_else(|_| "[]".to_owned());
        Self { outcomes, rendered }
    }

    /// The outcomes, in stored order.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The whole list as the reply's `response` JSON array.
    pub fn rendered(&self) -> &str {
        &self.rendered
    }

    /// The memory the list holds, in bytes (its own and its heap's): what
    /// a cache of lists counts against its budget.
    pub fn memory_bytes(&self) -> usize {
        let outcomes: usize = self.outcomes.iter().map(Outcome::heap_bytes).sum();
        std::mem::size_of::<Self>()
            + self.rendered.capacity()
            + self.outcomes.capacity() * std::mem::size_of::<Outcome>()
            + outcomes
    }
}

impl Outcome {
    /// The heap memory of its strings, in bytes.
    fn heap_bytes(&self) -> usize {
        self.id.capacity()
            + self.description.capacity()
            + self.campaign_id.capacity()
            + self.lead_score.capacity()
            + self.parent_id.as_ref().map_or(0, String::capacity)
    }
}

/// Parses a stored outcome list, keeping its order.
pub fn parse_outcome_list(campaign_id: &str, stored: &str) -> Result<Vec<Outcome>, CorruptList> {
    let items = match serde_json::from_str::<Value>(stored) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(CorruptList("not a JSON array")),
        Err(_) => return Err(CorruptList("not JSON")),
    };
    items
        .iter()
        .map(|item| match item {
            Value::Object(fields) => parse_outcome(campaign_id, fields),
            _ => Err(CorruptList("an element is not an object")),
        })
        .collect()
}

fn parse_outcome(campaign_id: &str, fields: &Map<String, Value>) -> Result<Outcome, CorruptList> {
    // A blank id is no id: nothing could refer to it, not even as a parent.
    let id = id_text(fields.get("OutComeID"))
        .filter(|id| !id.trim().is_empty())
        .ok_or(CorruptList("an element has no usable OutComeID"))?;
    let description = match fields.get("Description") {
        Some(Value::String(text)) => text.clone(),
        _ => return Err(CorruptList("an element has no Description string")),
    };
    let lead_score = match fields.get("LeadScore") {
        None | Some(Value::Null) => "0".to_owned(),
        other => id_text(other).ok_or(CorruptList("an element has an unusable LeadScore"))?,
    };
    let parent_id = match fields.get("ParentID") {
        None | Some(Value::Null) => None,
        other => Some(id_text(other).ok_or(CorruptList("an element has an unusable ParentID"))?),
    };
    Ok(Outcome {
        id,
        description,
        campaign_id: campaign_id.to_owned(),
        lead_score,
        parent_id,
    })
}

/// A string as stored, or a number as its decimal text.
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_blank_outcome_id_makes_the_list_corrupt() {
        // Found by the outcome_list fuzz target (fuzz/regressions).
        for stored in [
            r#"[{"OutComeID":"","Description":""}]"#,
            r#"[{"OutComeID":" \t","Description":"x"}]"#,
        ] {
            assert_eq!(
                OutcomeList::parse("1", stored),
                Err(CorruptList("an element has no usable OutComeID")),
                "{stored}"
            );
        }
    }

    #[test]
    fn numbers_keep_every_digit_as_written() {
        let stored = r#"[{"OutComeID":98765432109876543210,"Description":"d","LeadScore":1e5,"ParentID":0.10}]"#;
        let list = OutcomeList::parse("1", stored).unwrap();
        let outcome = &list.outcomes()[0];
        assert_eq!(outcome.id, "98765432109876543210");
        assert_eq!(outcome.lead_score, "1e+5");
        assert_eq!(outcome.parent_id.as_deref(), Some("0.10"));
    }

    #[test]
    fn numbers_become_strings_and_defaults_apply() {
        let list = parse_outcome_list(
            "7",
            r#"[{"OutComeID":101,"Description":"Paid","LeadScore":5,"ParentID":100,"CampaignID":"99"},
                {"OutComeID":"102","Description":"Failed"}]"#,
        )
        .unwrap();
        assert_eq!(
            list,
            vec![
                Outcome {
                    id: "101".into(),
                    description: "Paid".into(),
                    campaign_id: "7".into(),
                    lead_score: "5".into(),
                    parent_id: Some("100".into()),
                },
                Outcome {
                    id: "102".into(),
                    description: "Failed".into(),
                    campaign_id: "7".into(),
                    lead_score: "0".into(),
                    parent_id: None,
                },
            ]
        );
    }

    #[test]
    fn order_is_kept() {
        let list = parse_outcome_list(
            "1",
            r#"[{"OutComeID":"3","Description":"c"},{"OutComeID":"1","Description":"a"},{"OutComeID":"2","Description":"b"}]"#,
        )
        .unwrap();
        let ids: Vec<_> = list.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["3", "1", "2"]);
    }

    #[test]
    fn a_list_counts_its_strings_and_its_rendering_in_its_memory() {
        let one = OutcomeList::parse("1", r#"[{"OutComeID":"1","Description":"d"}]"#).unwrap();
        let stored = format!(
            "[{}]",
            vec![r#"{"OutComeID":"1","Description":"a longer description"}"#; 100].join(",")
        );
        let hundred = OutcomeList::parse("1", &stored).unwrap();
        assert!(one.memory_bytes() > one.rendered().len());
        assert!(hundred.memory_bytes() > hundred.rendered().len() + 100 * 20);
        assert!(hundred.memory_bytes() > 50 * one.memory_bytes());
    }

    #[test]
    fn an_empty_array_is_an_empty_list() {
        assert_eq!(parse_outcome_list("1", "[]"), Ok(vec![]));
    }

    #[test]
    fn unusable_lists_are_corrupt() {
        for stored in [
            "{",
            r#"{"OutComeID":"1"}"#,
            r#"[1]"#,
            r#"[{"Description":"no id"}]"#,
            r#"[{"OutComeID":"1"}]"#,
            r#"[{"OutComeID":true,"Description":"x"}]"#,
            r#"[{"OutComeID":"1","Description":5}]"#,
            r#"[{"OutComeID":"1","Description":"x","LeadScore":[1]}]"#,
            r#"[{"OutComeID":"1","Description":"x","ParentID":{}}]"#,
        ] {
            assert!(parse_outcome_list("1", stored).is_err(), "{stored}");
        }
    }
}
