//! The stored form of an [`AwarenessEntry`], shared by the Redis and DynamoDB doc stores (the
//! connection id is the key of the entry, so it is not repeated in the bytes).
use crate::ports::AwarenessEntry;

/// Version byte leading every encoded awareness entry, so the encoding can change without an old
/// reader misreading a new entry (it reports it corrupt instead).
const AWARENESS_V1: u8 = 1;

/// Encodes an awareness entry (the connection id is the hash field, so it is not repeated):
/// version byte `1`, client count (u32 BE), per client its id (u64 BE) and clock (u32 BE), then
/// the awareness update bytes to the end. Compact, binary-safe and cheap to validate.
pub(crate) fn encode_awareness(entry: &AwarenessEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entry.clients.len() * 12 + entry.update.len());
    out.push(AWARENESS_V1);
    // More than u32::MAX clients cannot be announced in one 128 KB message anyway.
    let count = u32::try_from(entry.clients.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (id, clock) in entry.clients.iter().take(count as usize) {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&clock.to_be_bytes());
    }
    out.extend_from_slice(&entry.update);
    out
}

/// The inverse of [`encode_awareness`]; any length or version mismatch is an error, never a panic.
pub(crate) fn decode_awareness(connection_id: &str, raw: &[u8]) -> Result<AwarenessEntry, String> {
    let bad = |why: &str| format!("awareness entry of connection {connection_id:?}: {why}");
    let (&version, rest) = raw.split_first().ok_or_else(|| bad("empty"))?;
    if version != AWARENESS_V1 {
        return Err(bad(&format!("unknown encoding version {version}")));
    }
    let (count, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("truncated client count"))?;
    let count = u32::from_be_bytes(*count) as usize;
    if count.checked_mul(12).is_none_or(|need| need > rest.len()) {
        return Err(bad("truncated client list"));
    }
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let (id, after_id) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("truncated client id"))?;
        let (clock, after_clock) = after_id
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated clock"))?;
        clients.push((u64::from_be_bytes(*id), u32::from_be_bytes(*clock)));
        rest = after_clock;
    }
    Ok(AwarenessEntry {
        connection_id: connection_id.to_string(),
        clients,
        update: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awareness_encoding_round_trips_and_rejects_damage() {
        let entry = AwarenessEntry {
            connection_id: "c1".into(),
            clients: vec![(u64::MAX, u32::MAX), (0, 0), (42, 7)],
            update: (0..=255u8).collect(),
        };
        let raw = encode_awareness(&entry);
        assert_eq!(decode_awareness("c1", &raw), Ok(entry.clone()));
        let empty = AwarenessEntry {
            connection_id: "c2".into(),
            clients: vec![],
            update: vec![],
        };
        assert_eq!(decode_awareness("c2", &encode_awareness(&empty)), Ok(empty));

        assert!(decode_awareness("c1", &[]).is_err());
        assert!(decode_awareness("c1", &[2, 0, 0, 0, 0]).is_err(), "version");
        assert!(decode_awareness("c1", &[1, 0, 0]).is_err(), "short count");
        assert!(decode_awareness("c1", &raw[..5 + 3 * 12 - 1]).is_err());
        assert!(decode_awareness("c1", &[1, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
    }
}
