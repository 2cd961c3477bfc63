//! `GetBusinessOutcomeParent`: the secondary outcomes under one primary
//! outcome (docs/protocol.md section 9).

use serde_json::{Map, Value};

use super::{RequestKind, Selection};
use crate::outcomes::OutcomeList;
use crate::protocol::data::data_text;
use crate::protocol::error::WsError;

/// The handler.
pub static KIND: RequestKind = RequestKind {
    subtopic: "GetBusinessOutcomeParent",
    reply_subtopic: "BusinessOutcomeParent",
    data_fields: &["ParentBusinessOutcomeId"],
    select,
};

fn select<'a>(data: &Map<String, Value>, list: &'a OutcomeList) -> Result<Selection<'a>, WsError> {
    let parent = data_text(data, "ParentBusinessOutcomeId")?.ok_or(WsError::ParentEmpty)?;
    let outcomes = list.outcomes();
    if !outcomes.iter().any(|o| o.id.trim() == parent) {
        return Err(WsError::InvalidParent(parent));
    }
    Ok(Selection::Some(
        outcomes
            .iter()
            .filter(|o| o.parent_id.as_deref().map(str::trim) == Some(parent.as_str()))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::Outcome;
    use serde_json::json;

    fn tree() -> OutcomeList {
        OutcomeList::parse(
            "1",
            r#"[{"OutComeID":"1","Description":"Reached"},
                {"OutComeID":"11","Description":"Paid","ParentID":"1"},
                {"OutComeID":"2","Description":"No answer"},
                {"OutComeID":"12","Description":"Promise","ParentID":1}]"#,
        )
        .unwrap()
    }

    fn ids<'a>(selection: &Selection<'a>) -> Vec<&'a str> {
        match selection {
            Selection::Some(outcomes) => {
                outcomes.iter().map(|o: &&Outcome| o.id.as_str()).collect()
            }
            Selection::All => panic!("a parent request never selects the whole list"),
        }
    }

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn children_come_in_stored_order_whatever_the_id_type() {
        let tree = tree();
        let children = select(&data(json!({"ParentBusinessOutcomeId": 1})), &tree).unwrap();
        assert_eq!(ids(&children), ["11", "12"]);
        let children = select(&data(json!({"parentbusinessoutcomeid": " 1 "})), &tree).unwrap();
        assert_eq!(ids(&children), ["11", "12"]);
    }

    #[test]
    fn a_parent_without_children_has_none() {
        let tree = tree();
        let children = select(&data(json!({"ParentBusinessOutcomeId": "2"})), &tree).unwrap();
        assert!(ids(&children).is_empty());
    }

    #[test]
    fn a_missing_or_blank_parent_is_empty() {
        for value in [
            json!({}),
            json!({"ParentBusinessOutcomeId": " "}),
            json!({"ParentBusinessOutcomeId": null}),
        ] {
            assert_eq!(select(&data(value), &tree()), Err(WsError::ParentEmpty));
        }
    }

    #[test]
    fn an_unknown_parent_is_invalid() {
        assert_eq!(
            select(&data(json!({"ParentBusinessOutcomeId": "99"})), &tree()),
            Err(WsError::InvalidParent("99".into()))
        );
    }
}
