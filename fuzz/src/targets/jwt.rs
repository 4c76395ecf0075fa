use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Deserialize;
use serde_json::Value;
use ylambda_shared::adapters::unix_now_secs;
use ylambda_shared::auth::{opens, Verifier};

/// The HS256 secret the target's verifier checks against (the seed tokens are signed with it).
pub const JWT_SECRET: &[u8] = b"ylambda fuzz secret, long enough for HS256";
/// The room every token is checked for.
pub const JWT_ROOM: &str = "notes";

/// Either a token as a client sends it in `?token=` (any bytes, made UTF-8), or
/// `S\n{header JSON}\n{claims JSON}`: a token with that header and those claims, correctly
/// signed with [`JWT_SECRET`], so the fuzzer reaches claims parsing and validation, not only
/// the signature check. Both go through `Verifier::check` and `Verifier::verify`.
///
/// Properties (fail closed): a token `verify` accepts for [`JWT_ROOM`] has a JSON header with
/// `alg` `HS256`, an `exp` not in the past, a `room` or `rooms` entry that opens the room, and
/// is read-only exactly when `access` is `ro`; `check` accepts whatever `verify` does.
pub fn jwt(data: &[u8]) {
    let token = match data.strip_prefix(b"S\n") {
        Some(rest) => signed(rest),
        None => String::from_utf8_lossy(data).into_owned(),
    };
    let verifier = Verifier::hs256(JWT_SECRET);
    // HS256 checks never wait on anything (only a JWKS fetch would): a plain executor runs them.
    let checked = futures::executor::block_on(verifier.check(Some(&token)));
    let Ok(grant) = futures::executor::block_on(verifier.verify(Some(&token), JWT_ROOM)) else {
        return;
    };
    assert!(checked.is_ok(), "verify accepts what check refuses");
    let now = unix_now_secs();
    let (header, claims) = parts(&token).expect("an accepted token has a JSON header and claims");
    assert_eq!(
        header.alg.as_ref().and_then(Value::as_str),
        Some("HS256"),
        "accepted a token that is not HS256"
    );
    let exp = claims
        .exp
        .as_ref()
        .and_then(Value::as_u64)
        .expect("accepted a token without a numeric exp");
    assert!(
        exp + 1 >= now,
        "accepted an expired token (exp {exp}, now {now})"
    );
    assert_eq!(grant.expires_at, exp, "the grant expires with the token");
    let patterns: Vec<&str> = claims
        .room
        .as_ref()
        .and_then(Value::as_str)
        .into_iter()
        .chain(
            claims
                .rooms
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        )
        .collect();
    assert!(
        patterns.iter().any(|p| opens(p, JWT_ROOM)),
        "accepted a token whose rooms {patterns:?} do not open {JWT_ROOM:?}"
    );
    let access = claims.access.as_ref().and_then(Value::as_str);
    assert_eq!(
        grant.readonly,
        access == Some("ro"),
        "read-only must follow the access claim ({:?})",
        claims.access
    );
}

/// `header` and `claims` as a token signed with [`JWT_SECRET`]; a line break separates them.
fn signed(rest: &[u8]) -> String {
    let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let signature = EncodingKey::from_secret(JWT_SECRET)
        .and_then(|key| jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256));
    match signature {
        Ok(signature) => format!("{message}.{signature}"),
        Err(_) => message,
    }
}

/// The header fields the checks read.
#[derive(Deserialize)]
struct Header {
    alg: Option<Value>,
}

/// The claims the checks read. Like the server's `Claims`, a struct: other claims are skipped
/// the way serde skips them (without checking their UTF-8 or the range of their numbers).
#[derive(Deserialize)]
struct Seen {
    exp: Option<Value>,
    room: Option<Value>,
    rooms: Option<Value>,
    access: Option<Value>,
}

/// A token's header and claims.
fn parts(token: &str) -> Option<(Header, Seen)> {
    let lenient = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut parts = token.trim().split('.');
    let header = serde_json::from_slice(&lenient.decode(parts.next()?).ok()?).ok()?;
    let claims = serde_json::from_slice(&lenient.decode(parts.next()?).ok()?).ok()?;
    Some((header, claims))
}
