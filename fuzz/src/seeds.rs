//! The seed corpus: real messages, made here with real yrs documents, the crate's own encoders
//! and the message shapes y-websocket and y-webrtc send. `ylambda-fuzz seeds fuzz/corpus` writes
//! them (committed under `fuzz/corpus/<target>/`); a test checks the committed files are what
//! this module makes. Everything is deterministic: fixed client ids, fixed times.
use std::collections::HashMap;
use std::sync::Arc;

use ylambda_shared::auth::{mint_hs256, Access, Claims};
use ylambda_shared::protocol::pieces::split_into_pieces;
use ylambda_shared::protocol::transport::encode_frame;
use ylambda_shared::protocol::ywebsocket::{
    encode_awareness, encode_awareness_removal, encode_awareness_update, encode_permission_denied,
    encode_sync_step1, encode_sync_step2, encode_update, AwarenessState,
};
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayPrelim, Doc, Map, MapPrelim, ReadTxn, StateVector, Text, TextPrelim, Transact,
    Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim,
};

use crate::targets::on_message::OP_SEPARATOR;
use crate::targets::{JWT_ROOM, JWT_SECRET};

/// One seed file: `fuzz/corpus/{target}/{name}`.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// 2100-01-01: tokens that stay valid for as long as this corpus matters.
const FAR_FUTURE: u64 = 4_102_444_800;
/// 2001-09-09: an expired token.
const LONG_AGO: u64 = 1_000_000_000;

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: name.to_string(),
            bytes,
        })
    };
    let docs = documents();
    let frames = ywebsocket_frames(&docs);
    for (name, frame) in &frames {
        add("ywebsocket", name, frame.clone());
    }
    for (name, update) in &docs {
        for knob in [0u8, 48, 240] {
            let mut bytes = vec![knob];
            bytes.extend_from_slice(update);
            add(
                "update",
                &format!("{name}-max{}", 16 + usize::from(knob)),
                bytes,
            );
        }
    }
    for (name, text) in piece_scripts(&docs) {
        add("pieces", &name, text.into_bytes());
    }
    for (name, json) in signaling_messages() {
        add("signaling", name, json.into_bytes());
    }
    for (name, token) in tokens() {
        add("jwt", &name, token);
    }
    for (name, script) in handler_scripts(&docs) {
        add("on_message", name, script);
    }
    seeds
}

fn doc(client: u64) -> Doc {
    Doc::with_client_id(client)
}

fn state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// Real updates of real documents: (name, update v1).
fn documents() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();

    let text_doc = doc(1);
    let text = text_doc.get_or_insert_text("t");
    let first = {
        let mut txn = text_doc.transact_mut();
        text.insert(&mut txn, 0, "hello");
        txn.encode_update_v1()
    };
    out.push(("text-insert".to_string(), first));
    let edit = {
        let mut txn = text_doc.transact_mut();
        text.insert(&mut txn, 5, " wörld 😀");
        text.remove_range(&mut txn, 1, 2);
        let bold: Attrs = HashMap::from([(Arc::from("bold"), Any::Bool(true))]);
        text.format(&mut txn, 0, 3, bold);
        txn.encode_update_v1()
    };
    out.push(("text-edit-format-delete".to_string(), edit));
    out.push(("text-state".to_string(), state(&text_doc)));

    let rich = doc((1 << 53) - 1);
    {
        let map = rich.get_or_insert_map("map");
        let mut txn = rich.transact_mut();
        map.insert(&mut txn, "int", 42);
        map.insert(&mut txn, "float", 1.5);
        map.insert(&mut txn, "big", 1i64 << 40);
        map.insert(&mut txn, "yes", true);
        map.insert(&mut txn, "null", Any::Null);
        map.insert(&mut txn, "undefined", Any::Undefined);
        map.insert(&mut txn, "string", "ünïcode ✓");
        map.insert(&mut txn, "buffer", Any::from(vec![0u8, 255, 7]));
        map.insert(
            &mut txn,
            "json",
            Any::from(HashMap::from([(
                "a".to_string(),
                Any::from(vec![Any::from(1), Any::Null]),
            )])),
        );
        map.insert(
            &mut txn,
            "nested map",
            MapPrelim::from([("inner", "value")]),
        );
        map.insert(&mut txn, "nested array", ArrayPrelim::from([1, 2, 3]));
        map.insert(&mut txn, "nested text", TextPrelim::new("inner ✍️"));
        map.insert(&mut txn, "overwritten", "first");
        map.insert(&mut txn, "overwritten", "second");
        map.remove(&mut txn, "int");
    }
    {
        let array = rich.get_or_insert_array("array");
        let mut txn = rich.transact_mut();
        array.insert_range(&mut txn, 0, (0..20).map(|i| Any::from(format!("v{i}"))));
        array.remove_range(&mut txn, 3, 5);
    }
    {
        let xml = rich.get_or_insert_xml_fragment("xml");
        let mut txn = rich.transact_mut();
        let p = xml.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
        p.insert_attribute(&mut txn, "class", "lead");
        let t = p.insert(&mut txn, 0, XmlTextPrelim::new("para"));
        t.insert(&mut txn, 4, "graph");
    }
    out.push(("rich-state".to_string(), state(&rich)));

    // A long string, to be cut by the splitter; and two clients with concurrent edits.
    let alice = doc(7);
    let long: String = (0..300)
        .map(|i| ["a", "é", "你", "😀", "z"][i % 5])
        .collect();
    alice
        .get_or_insert_text("t")
        .insert(&mut alice.transact_mut(), 0, &long);
    let bob = doc(8);
    bob.transact_mut()
        .apply_update(yrs::Update::decode_v1(&state(&alice)).expect("own update"))
        .expect("applies");
    {
        let text = bob.get_or_insert_text("t");
        let mut txn = bob.transact_mut();
        // Byte offsets on char boundaries: each "aé你😀z" is 11 bytes.
        text.remove_range(&mut txn, 33, 22);
        text.insert(&mut txn, 10, "[bob]");
    }
    out.push(("long-string".to_string(), state(&alice)));
    out.push(("two-clients".to_string(), state(&bob)));
    // Two clients setting one key, one of them three times: its old values merge into one
    // deleted struct that the other's value names inside (with garbage collection, Deleted
    // content; without, Any content the delete set covers).
    for (name, skip_gc) in [
        ("concurrent-map-sets", false),
        ("concurrent-map-sets-no-gc", true),
    ] {
        let new = |client| {
            Doc::with_options(yrs::Options {
                client_id: yrs::ClientID::new(client),
                skip_gc,
                ..yrs::Options::default()
            })
        };
        let (first, second) = (new(1), new(2));
        let set = |doc: &Doc, value: Any| {
            let map = doc.get_or_insert_map("m");
            map.insert(&mut doc.transact_mut(), "k", value);
        };
        let apply = |doc: &Doc, update: &[u8]| {
            let update = yrs::Update::decode_v1(update).expect("own update");
            doc.transact_mut().apply_update(update).expect("applies");
        };
        set(&first, Any::from(1));
        apply(&second, &state(&first));
        set(&first, Any::from(2));
        set(&first, Any::from(3));
        set(&second, Any::from("b"));
        apply(&first, &state(&second));
        out.push((name.to_string(), state(&first)));
    }
    out.push(("empty".to_string(), vec![0, 0]));
    out
}

fn awareness_update(client: u64, clock: u32, json: &str) -> Vec<u8> {
    encode_awareness_update(&[AwarenessState {
        client,
        clock,
        json: json.to_string(),
    }])
}

/// Binary y-websocket frames: (name, frame).
fn ywebsocket_frames(docs: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let empty_sv = StateVector::default().encode_v1();
    out.push(("sync-step1-empty".to_string(), encode_sync_step1(&empty_sv)));
    let with_text = doc(3);
    with_text
        .get_or_insert_text("t")
        .insert(&mut with_text.transact_mut(), 0, "abc");
    let sv = with_text.transact().state_vector().encode_v1();
    out.push(("sync-step1".to_string(), encode_sync_step1(&sv)));
    for (name, update) in docs.iter().filter(|(n, _)| n != "long-string") {
        out.push((format!("sync-step2-{name}"), encode_sync_step2(update)));
        out.push((format!("update-{name}"), encode_update(update)));
    }
    let cursor = r##"{"user":{"name":"ana","color":"#30bced"},"cursor":{"anchor":{"type":{"client":1,"clock":0},"tname":null,"item":null,"assoc":0}}}"##;
    out.push((
        "awareness".to_string(),
        encode_awareness(&awareness_update(1, 3, cursor)),
    ));
    out.push((
        "awareness-removal".to_string(),
        encode_awareness_removal(&[(1, 4), ((1 << 53) - 1, 1)]),
    ));
    out.push(("query-awareness".to_string(), vec![3]));
    out.push((
        "auth-permission-denied".to_string(),
        encode_permission_denied("no"),
    ));
    let mut several = encode_sync_step1(&sv);
    several.extend(encode_awareness(&awareness_update(9, 1, r#"{"a":1}"#)));
    several.push(3);
    several.extend(encode_update(&docs[0].1));
    out.push(("several-messages".to_string(), several));
    out.push(("unknown-type".to_string(), vec![42, 2, 0xaa, 0xbb, 3]));
    out
}

/// Pieces scripts for the reassembly target: (name, lines).
fn piece_scripts(docs: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let frame = encode_frame(&encode_update(&docs[0].1));
    let pieces = split_into_pieces(&frame, "m1", 20).expect("pieces");
    let mut out = vec![
        ("in-order".to_string(), pieces.join("\n")),
        ("reversed-with-repeat".to_string(), {
            let mut reversed = pieces.clone();
            reversed.reverse();
            reversed.insert(1, reversed[0].clone());
            reversed.join("\n")
        }),
    ];
    let mut mixed = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        mixed.push(piece.clone());
        mixed.push(format!("!{}", piece.replace("m1", "m2")));
        if i == 0 {
            mixed.push("~1:m3:0:3:QUJD".to_string());
            mixed.push("~1:m3:0:3:QUJE".to_string()); // overlap
            mixed.push("~1:m3:1:4:QUJD".to_string()); // count mismatch
            mixed.push("~1:m4:0:2:QUJD".to_string());
            mixed.push("~1:m5:0:2:QUJD".to_string()); // too many open
        }
    }
    out.push(("two-connections-and-refusals".to_string(), mixed.join("\n")));
    out.push((
        "bad-headers".to_string(),
        [
            "~2:a:0:2:QUJD",
            "~1:a:01:2:QUJD",
            "~1:a:0:99999999999:QUJD",
            "~1:a:2:2:QUJD",
            "~1::0:2:QUJD",
            "~1:a:0:2:",
        ]
        .join("\n"),
    ));
    out.push(("split-round-trip".to_string(), format!("#{frame}")));
    out
}

/// Signaling messages as y-webrtc sends them (`src/y-webrtc.js`): (name, JSON).
fn signaling_messages() -> Vec<(&'static str, String)> {
    let offer = r#"{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"}"#;
    vec![
        ("subscribe", r#"{"type":"subscribe","topics":["ylambda-demo"]}"#.to_string()),
        ("subscribe-many", r#"{"type":"subscribe","topics":["a","b","a","room/with/slashes"]}"#.to_string()),
        ("unsubscribe", r#"{"type":"unsubscribe","topics":["ylambda-demo"]}"#.to_string()),
        ("ping", r#"{"type":"ping"}"#.to_string()),
        ("publish-announce", r#"{"type":"publish","topic":"ylambda-demo","data":{"type":"announce","from":"9d0b3c2e-2f4f-4d4b-a8b6-2c1e0f6a7b11"}}"#.to_string()),
        ("publish-signal", format!(r#"{{"type":"publish","topic":"ylambda-demo","data":{{"to":"a1","from":"b2","type":"signal","token":"c3","signal":{offer}}}}}"#)),
        ("publish-encrypted", r#"{"type":"publish","topic":"ylambda-demo","data":"AAECAwQFBgcICQ=="}"#.to_string()),
        ("unknown", r#"{"type":"pong"}"#.to_string()),
    ]
}

/// Access tokens: (name, bytes). Raw tokens, and `S\n{header}\n{claims}` for the signing mode.
fn tokens() -> Vec<(String, Vec<u8>)> {
    let claims = |room: Option<&str>, rooms: Option<Vec<&str>>, exp: u64| Claims {
        exp,
        room: room.map(str::to_string),
        rooms: rooms.map(|r| r.into_iter().map(str::to_string).collect()),
        ..Claims::default()
    };
    let minted = [
        ("room", claims(Some(JWT_ROOM), None, FAR_FUTURE)),
        (
            "rooms-prefix",
            claims(None, Some(vec!["team/*", "no*"]), FAR_FUTURE),
        ),
        ("other-room", claims(Some("other"), None, FAR_FUTURE)),
        ("expired", claims(Some(JWT_ROOM), None, LONG_AGO)),
        ("no-room", claims(None, None, FAR_FUTURE)),
        (
            "read-only",
            Claims {
                access: Some(Access::Ro),
                sub: Some("user-1".into()),
                ..claims(Some(JWT_ROOM), None, FAR_FUTURE)
            },
        ),
    ];
    let mut out: Vec<(String, Vec<u8>)> = minted
        .iter()
        .map(|(name, c)| {
            let token = mint_hs256(JWT_SECRET, c).expect("mint");
            (format!("token-{name}"), token.into_bytes())
        })
        .collect();
    let forged = mint_hs256(b"another secret, not the fuzz one", &minted[0].1).expect("mint");
    out.push(("token-forged".to_string(), forged.into_bytes()));
    let signed = [
        (
            "hs256",
            r#"{"alg":"HS256","typ":"JWT"}"#,
            format!(r#"{{"exp":{FAR_FUTURE},"room":"notes"}}"#),
        ),
        (
            "ro",
            r#"{"alg":"HS256"}"#,
            format!(r#"{{"exp":{FAR_FUTURE},"rooms":["x","n*"],"access":"ro","sub":"s"}}"#),
        ),
        (
            "alg-none",
            r#"{"alg":"none"}"#,
            format!(r#"{{"exp":{FAR_FUTURE},"room":"notes"}}"#),
        ),
        (
            "alg-hs512",
            r#"{"alg":"HS512","typ":"JWT"}"#,
            format!(r#"{{"exp":{FAR_FUTURE},"room":"notes"}}"#),
        ),
        (
            "exp-string",
            r#"{"alg":"HS256"}"#,
            r#"{"exp":"4102444800","room":"notes"}"#.to_string(),
        ),
        (
            "exp-float",
            r#"{"alg":"HS256"}"#,
            r#"{"exp":4102444800.5,"room":"notes"}"#.to_string(),
        ),
        (
            "access-other",
            r#"{"alg":"HS256"}"#,
            format!(r#"{{"exp":{FAR_FUTURE},"room":"notes","access":"admin"}}"#),
        ),
        (
            "duplicate-room",
            r#"{"alg":"HS256"}"#,
            format!(r#"{{"exp":{FAR_FUTURE},"room":"x","room":"notes"}}"#),
        ),
    ];
    for (name, header, claims) in signed {
        out.push((
            format!("signed-{name}"),
            format!("S\n{header}\n{claims}").into_bytes(),
        ));
    }
    out
}

fn op(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![code];
    out.extend_from_slice(payload);
    out
}

fn script(ops: &[Vec<u8>]) -> Vec<u8> {
    ops.join(OP_SEPARATOR)
}

/// Handler scripts (see `targets::on_message`): (name, script).
fn handler_scripts(docs: &[(String, Vec<u8>)]) -> Vec<(&'static str, Vec<u8>)> {
    const TEXT: u8 = 0;
    const BINARY: u8 = 4;
    const PIECES: u8 = 8;
    const RECONNECT: u8 = 12;
    let step1 = encode_sync_step1(&StateVector::default().encode_v1());
    let update = |i: usize| encode_update(&docs[i].1);
    let awareness = encode_awareness(&awareness_update(1, 1, r#"{"user":{"name":"ana"}}"#));
    vec![
        (
            "sync-and-edit",
            script(&[
                op(BINARY, &step1),
                op(BINARY | 1, &step1),
                op(BINARY, &update(0)),
                op(BINARY, &update(1)),
                op(BINARY | 1, &encode_sync_step2(&docs[2].1)),
                op(BINARY | 2, &update(3)),
                op(BINARY | 2, &step1),
            ]),
        ),
        (
            "awareness",
            script(&[
                op(BINARY, &awareness),
                op(BINARY | 1, &[3]),
                op(RECONNECT, &[]),
                op(BINARY | 1, &[3]),
            ]),
        ),
        (
            "pieces-and-compaction",
            script(&[
                op(PIECES, &encode_update(&docs[4].1)),
                op(BINARY | 1, &update(0)),
                op(BINARY, &update(1)),
                op(BINARY, &update(5)),
                op(PIECES | 1, &step1),
            ]),
        ),
        (
            "signaling",
            script(&[
                op(TEXT | 3, br#"{"type":"subscribe","topics":["t","u"]}"#),
                op(TEXT, br#"{"type":"subscribe","topics":["t"]}"#),
                op(
                    TEXT | 3,
                    br#"{"type":"publish","topic":"t","data":{"type":"announce","from":"p"}}"#,
                ),
                op(TEXT | 3, br#"{"type":"ping"}"#),
                op(TEXT | 3, br#"{"type":"unsubscribe","topics":["u"]}"#),
                op(BINARY | 3, &step1),
            ]),
        ),
        (
            "bad-frames",
            script(&[
                op(TEXT, b"not base64!"),
                op(BINARY | 1, &[0, 0, 5, 1]),
                op(TEXT | 1, b"~1:a:0:2:AA"),
                op(BINARY | 1, &step1),
                op(TEXT, b"~9:nope"),
            ]),
        ),
    ]
}
