//! The protocol code against byte vectors made by the JavaScript reference (`y-protocols` 1.0.7,
//! `yjs` 13.6): see tests/fixtures/README.md for how they were made.
use serde_json::Value;
use ylambda_shared::protocol::ywebsocket::{self, decode_messages, Incoming};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, Transact, Update};

const FIXTURES: &str = include_str!("../../tests/fixtures/y-protocols.json");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fixtures() -> Vec<Value> {
    let all: Value = serde_json::from_str(FIXTURES).unwrap();
    all["fixtures"].as_array().unwrap().clone()
}

fn by_name(name: &str) -> Value {
    fixtures()
        .into_iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// Checks one decoded message against its fixture expectation; returns nothing, panics on mismatch.
fn check(name: &str, message: &Incoming, expect: &Value, all: &[Value]) {
    match (expect["kind"].as_str().unwrap(), message) {
        ("sync_step1", Incoming::SyncStep1(sv)) => {
            let want = expect["state_vector"].as_object().unwrap();
            assert_eq!(sv.len(), want.len(), "{name}");
            for (client, clock) in want {
                let client: u64 = client.parse().unwrap();
                assert_eq!(
                    u64::from(sv.get(&yrs::ClientID::new(client))),
                    clock.as_u64().unwrap(),
                    "{name}: client {client}"
                );
            }
            if let Some(svhex) = expect["state_vector_hex"].as_str() {
                // Entry order in the encoding is not significant (Yjs and yrs iterate maps
                // differently), so compare decoded vectors.
                assert_eq!(
                    sv,
                    &yrs::StateVector::decode_v1(&hex(svhex)).unwrap(),
                    "{name}: state vector"
                );
            }
        }
        ("sync_step2", Incoming::SyncStep2(update)) | ("sync_update", Incoming::Update(update)) => {
            assert_eq!(
                update,
                &hex(expect["update_hex"].as_str().unwrap()),
                "{name}"
            );
            let doc = Doc::new();
            if let Some(base) = expect["applies_to"].as_str() {
                let base = all.iter().find(|f| f["name"] == base).unwrap();
                let base = hex(base["expect"]["update_hex"].as_str().unwrap());
                doc.transact_mut()
                    .apply_update(Update::decode_v1(&base).unwrap())
                    .unwrap();
            }
            doc.transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
            for (root, text) in expect["text"].as_object().unwrap() {
                let t = doc.get_or_insert_text(root.as_str());
                assert_eq!(
                    t.get_string(&doc.transact()),
                    text.as_str().unwrap(),
                    "{name}"
                );
            }
            let sv = doc.transact().state_vector();
            for (client, clock) in expect["state_vector"].as_object().unwrap() {
                let client: u64 = client.parse().unwrap();
                assert_eq!(
                    u64::from(sv.get(&yrs::ClientID::new(client))),
                    clock.as_u64().unwrap()
                );
            }
        }
        ("awareness", Incoming::Awareness { update, encoded }) => {
            let want = expect["clients"].as_array().unwrap();
            assert_eq!(update.clients.len(), want.len(), "{name}");
            for c in want {
                let id = yrs::ClientID::new(c["client_id"].as_u64().unwrap());
                let entry = &update.clients[&id];
                assert_eq!(
                    u64::from(entry.clock),
                    c["clock"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(&*entry.json, c["state_json"].as_str().unwrap(), "{name}");
            }
            if want.len() == 1 {
                assert_eq!(
                    encoded,
                    &hex(expect["update_hex"].as_str().unwrap()),
                    "{name}"
                );
            }
        }
        ("auth_permission_denied", Incoming::Auth(reason)) => {
            assert_eq!(reason.as_deref(), expect["reason"].as_str(), "{name}");
        }
        ("query_awareness", Incoming::QueryAwareness) => {}
        (kind, other) => panic!("{name}: expected {kind}, decoded {other:?}"),
    }
}

#[test]
fn every_reference_message_decodes_as_expected() {
    let all = fixtures();
    assert!(all.len() >= 10, "fixture file lost entries");
    for f in &all {
        let name = f["name"].as_str().unwrap();
        let messages = decode_messages(&hex(f["hex"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if f["expect"]["kind"] == "concatenated" {
            let parts = f["expect"]["messages"].as_array().unwrap();
            assert_eq!(messages.len(), parts.len(), "{name}");
            for (m, part) in messages.iter().zip(parts) {
                check(name, m, &part["expect"], &all);
            }
        } else {
            assert_eq!(messages.len(), 1, "{name}");
            check(name, &messages[0], &f["expect"], &all);
        }
    }
}

#[test]
fn our_encoders_produce_the_reference_bytes() {
    let step1 = by_name("sync-step1-non-empty");
    assert_eq!(
        ywebsocket::encode_sync_step1(&hex(step1["expect"]["state_vector_hex"].as_str().unwrap())),
        hex(step1["hex"].as_str().unwrap())
    );
    let step2 = by_name("sync-step2-hello");
    assert_eq!(
        ywebsocket::encode_sync_step2(&hex(step2["expect"]["update_hex"].as_str().unwrap())),
        hex(step2["hex"].as_str().unwrap())
    );
    let update = by_name("sync-update-insert");
    assert_eq!(
        ywebsocket::encode_update(&hex(update["expect"]["update_hex"].as_str().unwrap())),
        hex(update["hex"].as_str().unwrap())
    );
    let awareness = by_name("awareness-state");
    assert_eq!(
        ywebsocket::encode_awareness(&hex(awareness["expect"]["update_hex"].as_str().unwrap())),
        hex(awareness["hex"].as_str().unwrap())
    );
    // What the server broadcasts when client 10 (last clock 2) leaves is byte-identical to what
    // y-protocols itself sends.
    assert_eq!(
        ywebsocket::encode_awareness_removal(&[(10, 2)]),
        hex(by_name("awareness-removal")["hex"].as_str().unwrap())
    );
    assert_eq!(
        ywebsocket::encode_permission_denied("read-only"),
        hex(by_name("auth-permission-denied")["hex"].as_str().unwrap())
    );
}
