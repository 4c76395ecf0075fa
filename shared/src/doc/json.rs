//! A document's root types as JSON, for people and dashboards (`GET .../state?format=json`):
//! Y.Text as a string, Y.Map and Y.Array as JSON, XML types as their XML text.
//!
//! A stored update does not say what type each root is (Yjs clients name it when they call
//! `getText` / `getMap` ...), so the type is read off the content, as yrs' own inference does:
//! string, embed or format content is text (with map entries too, XML text), map entries alone a
//! map, other list content an array, unless every element is an XML element or XML text: then
//! an XML fragment (ProseMirror / Tiptap documents). A root with no content is an empty map.
use serde_json::{Map, Value};
use yrs::types::{AsPrelim, ToJson};
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, In, MapRef, Out, ReadTxn, TextRef, Transact, Update,
    XmlFragmentRef, XmlTextRef,
};

use super::state::{guard, DocError};

/// The root types of a Yjs update v1, by name (sorted), rendered as JSON.
pub fn state_to_json(state: &[u8]) -> Result<Value, DocError> {
    let update = Update::decode_v1(state).map_err(|e| DocError::InvalidUpdate(e.to_string()))?;
    guard("render a document as JSON", || {
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(update)
            .map_err(|e| DocError::InvalidUpdate(e.to_string()))?;
        let txn = doc.transact();
        let mut roots = Map::new();
        for (name, value) in txn.root_refs() {
            roots.insert(name.to_string(), root_json(&txn, value));
        }
        Ok(Value::Object(roots))
    })?
}

fn root_json<T: ReadTxn>(txn: &T, value: Out) -> Value {
    let rendered = match value {
        // Which kind yrs itself infers from the content (only an array's elements are walked:
        // yrs 0.28's list iterator never ends over text holding a non-ASCII character).
        Out::UndefinedRef(branch) => match Out::UndefinedRef(branch).as_prelim(txn) {
            In::Text(_) => Any::from(TextRef::from(branch).get_string(txn)),
            In::XmlText(_) => Any::from(XmlTextRef::from(branch).get_string(txn)),
            In::Array(_) => {
                let array = ArrayRef::from(branch);
                let all_xml = array
                    .iter(txn)
                    .all(|e| matches!(e, Out::YXmlElement(_) | Out::YXmlText(_)));
                if all_xml {
                    Any::from(XmlFragmentRef::from(branch).get_string(txn))
                } else {
                    array.to_json(txn)
                }
            }
            _ => MapRef::from(branch).to_json(txn),
        },
        other => other.to_json(txn),
    };
    any_to_json(&rendered)
}

fn any_to_json(any: &Any) -> Value {
    let mut text = String::new();
    any.to_json(&mut text);
    // yrs writes JSON; a value it cannot write (undefined) becomes null.
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use yrs::{Map as _, Text, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim};

    fn state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&yrs::StateVector::default())
    }

    #[test]
    fn every_kind_of_root_renders() {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            txn.get_or_insert_text("text")
                .insert(&mut txn, 0, "héllo 👋");
            let map = txn.get_or_insert_map("map");
            map.insert(&mut txn, "n", 1.5);
            map.insert(&mut txn, "s", "x");
            txn.get_or_insert_array("array")
                .insert_range(&mut txn, 0, [1, 2, 3]);
            let xml = txn.get_or_insert_xml_fragment("prosemirror");
            let p = xml.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
            p.insert(&mut txn, 0, XmlTextPrelim::new("para"));
        }
        let rendered = state_to_json(&state(&doc)).unwrap();
        assert_eq!(
            rendered,
            json!({
                "text": "héllo 👋",
                "map": {"n": 1.5, "s": "x"},
                "array": [1, 2, 3],
                "prosemirror": "<p>para</p>",
            })
        );
    }

    #[test]
    fn an_empty_document_is_an_empty_object_and_garbage_is_an_error() {
        assert_eq!(state_to_json(&[0, 0]).unwrap(), json!({}));
        assert!(state_to_json(&[1, 2, 3]).is_err());
    }
}
