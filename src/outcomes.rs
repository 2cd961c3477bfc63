//! Stored outcome lists: parsing and normalisation (docs/protocol.md section 6).
//!
//! Pure: turns the JSON text kept under `P:campaign:<id>:outcomes` into the
//! reply entries of section 5. The text is read into typed fields, not a
//! `serde_json::Value` tree (see `crate::json`); a text those readers
//! refuse is read through the tree, which decides as before.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::Value;

use crate::json::{first_key, visit_scalars_as, FirstKey, Scalar, Skip, Text};

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
    let mut outcomes = match serde_json::from_str::<StoredList>(stored) {
        Ok(StoredList(Some(outcomes))) => outcomes?,
        Ok(StoredList(None)) => return Err(CorruptList("not a JSON array")),
        Err(_) => return parse_tree(campaign_id, stored),
    };
    for outcome in &mut outcomes {
        campaign_id.clone_into(&mut outcome.campaign_id);
    }
    Ok(outcomes)
}

/// A stored list read as a `Value` tree: for a text the typed readers
/// refuse (not JSON, or one only the tree reads; see `crate::json`).
fn parse_tree(campaign_id: &str, stored: &str) -> Result<Vec<Outcome>, CorruptList> {
    let items = match serde_json::from_str::<Value>(stored) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(CorruptList("not a JSON array")),
        Err(_) => return Err(CorruptList("not JSON")),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(mut fields) => {
                let mut field = |key: &str| fields.remove(key).map(Scalar::from_value);
                let element = Element {
                    id: field("OutComeID"),
                    description: field("Description"),
                    lead_score: field("LeadScore"),
                    parent_id: field("ParentID"),
                };
                element.outcome(campaign_id)
            }
            _ => Err(CorruptList("an element is not an object")),
        })
        .collect()
}

/// The fields of one stored element the reply reads, as written; of
/// duplicate keys the last value counts, as in the tree.
#[derive(Default)]
struct Element<'de> {
    id: Option<Scalar<'de>>,
    description: Option<Scalar<'de>>,
    lead_score: Option<Scalar<'de>>,
    parent_id: Option<Scalar<'de>>,
}

impl<'de> Element<'de> {
    /// Reads the value of `key`, kept if it is a field the reply reads.
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let field = match key {
            "OutComeID" => &mut self.id,
            "Description" => &mut self.description,
            "LeadScore" => &mut self.lead_score,
            "ParentID" => &mut self.parent_id,
            _ => {
                map.next_value::<Skip>()?;
                return Ok(());
            }
        };
        *field = Some(map.next_value()?);
        Ok(())
    }

    /// The reply entry, checked field by field in the order of
    /// docs/protocol.md section 6.
    fn outcome(self, campaign_id: &str) -> Result<Outcome, CorruptList> {
        // A blank id is no id: nothing could refer to it, not even as a parent.
        let id = id_text(self.id.as_ref())
            .filter(|id| !id.trim().is_empty())
            .ok_or(CorruptList("an element has no usable OutComeID"))?;
        let description = match self.description {
            Some(Scalar::Text(text)) => text.into_owned(),
            _ => return Err(CorruptList("an element has no Description string")),
        };
        let lead_score = match &self.lead_score {
            None | Some(Scalar::Null) => "0".to_owned(),
            other => id_text(other.as_ref())
                .ok_or(CorruptList("an element has an unusable LeadScore"))?,
        };
        let parent_id = match &self.parent_id {
            None | Some(Scalar::Null) => None,
            other => Some(
                id_text(other.as_ref())
                    .ok_or(CorruptList("an element has an unusable ParentID"))?,
            ),
        };
        Ok(Outcome {
            id,
            description,
            campaign_id: campaign_id.to_owned(),
            lead_score,
            parent_id,
        })
    }
}

/// A string as stored, or a number as its decimal text.
fn id_text(value: Option<&Scalar<'_>>) -> Option<String> {
    match value? {
        Scalar::Text(text) => Some(text.as_ref().to_owned()),
        Scalar::Other(other) => match &**other {
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        },
        Scalar::Null => None,
    }
}

/// A whole stored list read by the typed readers: `None` when the text is
/// not an array; else the outcomes (campaign ids left empty), or the first
/// element's fault. Every element is read in full either way, so that a
/// text that is not JSON further on is "not JSON", as in the tree.
struct StoredList(Option<Result<Vec<Outcome>, CorruptList>>);

impl<'de> Deserialize<'de> for StoredList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StoredListVisitor)
    }
}

struct StoredListVisitor;

impl<'de> Visitor<'de> for StoredListVisitor {
    type Value = StoredList;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }
    visit_scalars_as!(and strings StoredList(None));
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(StoredList(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut outcomes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut fault = None;
        while let Some(item) = seq.next_element::<Item>()? {
            if fault.is_some() {
                continue;
            }
            match item.0.map(|element| element.outcome("")) {
                Some(Ok(outcome)) => outcomes.push(outcome),
                Some(Err(error)) => fault = Some(error),
                None => fault = Some(CorruptList("an element is not an object")),
            }
        }
        Ok(StoredList(Some(match fault {
            Some(error) => Err(error),
            None => Ok(outcomes),
        })))
    }
}

/// One element of the array: its fields, or `None` when it is not an object.
struct Item<'de>(Option<Element<'de>>);

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an outcome object")
    }
    visit_scalars_as!(and strings Item(None));
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Item(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut element = Element::default();
        match first_key(&mut map)? {
            FirstKey::Number(_) => return Ok(Item(None)),
            FirstKey::End => {}
            FirstKey::Key(key) => {
                element.read(&key, &mut map)?;
                while let Some(Text(key)) = map.next_key()? {
                    element.read(&key, &mut map)?;
                }
            }
        }
        Ok(Item(Some(element)))
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

    /// The parser as it was before stored lists were read without a tree,
    /// kept as the reference the typed readers are compared with.
    mod reference {
        use super::super::{CorruptList, Outcome};
        use serde_json::{Map, Value};

        /// Parses a stored outcome list, keeping its order.
        pub(super) fn parse_outcome_list(
            campaign_id: &str,
            stored: &str,
        ) -> Result<Vec<Outcome>, CorruptList> {
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

        fn parse_outcome(
            campaign_id: &str,
            fields: &Map<String, Value>,
        ) -> Result<Outcome, CorruptList> {
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
                other => {
                    id_text(other).ok_or(CorruptList("an element has an unusable LeadScore"))?
                }
            };
            let parent_id = match fields.get("ParentID") {
                None | Some(Value::Null) => None,
                other => {
                    Some(id_text(other).ok_or(CorruptList("an element has an unusable ParentID"))?)
                }
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
    }

    mod against_the_tree {
        use super::*;
        use proptest::prelude::*;

        /// Stored-list text: elements of every shape, duplicate keys,
        /// numbers as written, serde_json's private keys, junk.
        fn stored_text() -> impl Strategy<Value = String> {
            let key = prop::sample::select(vec![
                "OutComeID",
                "Description",
                "LeadScore",
                "ParentID",
                "CampaignID",
                "outcomeid",
                "x",
                "$serde_json::private::Number",
                "$serde_json::private::RawValue",
            ])
            .prop_map(|k| format!("\"{k}\""));
            let leaf = prop::sample::select(vec![
                "\"101\"",
                "\" \"",
                "\"\"",
                "101",
                "1e5",
                "-0.50",
                "98765432109876543210",
                "null",
                "true",
                "\"Paid\"",
                "\"\\u00e9\\n\"",
                "\"5\"",
                "\"x\"",
                "[]",
                "{}",
                "\"{\\\"OutComeID\\\":1,\\\"Description\\\":\\\"d\\\"}\"",
            ])
            .prop_map(str::to_owned);
            let value = leaf.prop_recursive(3, 24, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                        let members: Vec<String> =
                            pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            });
            prop_oneof![
                prop::collection::vec(value.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                value,
                // Cut short: not JSON, wherever the cut falls.
                prop::collection::vec(any::<u8>(), 0..4)
                    .prop_map(|_| "[{\"OutComeID\":1".to_owned()),
            ]
        }

        fn agree(stored: &str) {
            assert_eq!(
                parse_outcome_list("7", stored),
                reference::parse_outcome_list("7", stored),
                "{stored}"
            );
        }

        #[test]
        fn faults_further_on_and_private_keys_decide_as_in_the_tree() {
            for stored in [
                r#"[1, {"#,
                r#"[{"OutComeID":1}, "\ud800"]"#,
                r#"[{"OutComeID":"1","Description":"a","OutComeID":" "}]"#,
                r#"[{"$serde_json::private::Number":"5"}]"#,
                r#"[{"$serde_json::private::RawValue":"{\"OutComeID\":1,\"Description\":\"d\"}"}]"#,
                r#"{"$serde_json::private::RawValue":"[{\"OutComeID\":1,\"Description\":\"d\"}]"}"#,
                r#"{"$serde_json::private::Number":"5"}"#,
                r#"{"a":[1,2]}"#,
            ] {
                agree(stored);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn generated_lists_are_read_as_the_tree_read_them(stored in stored_text()) {
                agree(&stored);
            }
        }
    }
}
