use ylambda_shared::doc::validate_update;
use ylambda_shared::protocol::ywebsocket::{
    awareness_states, decode_messages, encode_awareness, encode_awareness_update, Incoming,
};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::StateVector;

/// A binary y-websocket frame (what a base64 text frame decodes to), as the handler reads it:
/// `decode_messages`, then `validate_update` on every sync step 2 and update.
///
/// Properties: a decoded frame has at least one message; a state vector re-encodes to one that
/// decodes the same; an awareness update re-encoded with `encode_awareness_update` decodes to the
/// same states.
pub fn ywebsocket(data: &[u8]) {
    let Ok(messages) = decode_messages(data) else {
        return;
    };
    assert!(!messages.is_empty(), "a decoded frame has messages");
    for message in &messages {
        match message {
            Incoming::SyncStep2(update) | Incoming::Update(update) => {
                let _ = validate_update(update);
            }
            Incoming::SyncStep1(sv) => {
                let again =
                    StateVector::decode_v1(&sv.encode_v1()).expect("state vector re-decodes");
                assert_eq!(&again, sv, "state vector round trip");
            }
            Incoming::Awareness { update, .. } => {
                let states = awareness_states(update);
                let frame = encode_awareness(&encode_awareness_update(&states));
                let decoded = decode_messages(&frame).expect("re-encoded awareness decodes");
                let [Incoming::Awareness { update: again, .. }] = decoded.as_slice() else {
                    panic!("re-encoded awareness is one awareness message: {decoded:?}");
                };
                assert_eq!(awareness_states(again), states, "awareness round trip");
            }
            Incoming::QueryAwareness | Incoming::Auth(_) | Incoming::Unknown(_) => {}
        }
    }
}
