//! Inputs the fuzzers found, replayed through their targets. Each test names what went wrong
//! and checks the input now gets the answer it should.
use ylambda_fuzz::{panics, targets};

fn replay(target: &str, input: &[u8]) {
    panics::install_quiet_hook();
    let target = targets::find(target).expect("a target");
    if let Err(message) = panics::run_caught(|| (target.run)(input)) {
        panic!("{}: {message}", target.name);
    }
}

/// Found by the mutation driver on the `jwt` target (a harness bug, not a server bug): claims
/// with invalid UTF-8 inside the string value of an unknown claim. jsonwebtoken (serde_json into
/// `Claims`) skips unknown claims without checking their UTF-8, so the token is valid; the
/// target's own JSON check refused it and called the acceptance a crash. The target now reads
/// the claims as the server does, with unknown bytes replaced.
#[test]
fn invalid_utf8_in_an_unknown_claim_is_ignored_like_the_claim() {
    let input = b"S\n{\"alg\":\"HS256\"}\n{\"exp\":4102444800,\"room\":\"notes\",\"accesw\":\"\xa8\x40\xe8\xce\x61dmin\"}";
    replay("jwt", input);
    // The server accepts it: the unknown claim is ignored, the token opens the room, read-write.
    let token = signed_token(&input[2..]);
    let grant = ylambda_shared::auth::Verifier::hs256(targets::JWT_SECRET)
        .verify(Some(&token), targets::JWT_ROOM)
        .expect("a valid token");
    assert!(!grant.readonly);
    assert_eq!(grant.expires_at, 4_102_444_800);
}

/// `header\nclaims` signed as the `jwt` target signs them.
fn signed_token(rest: &[u8]) -> String {
    use base64::Engine;
    let at = rest.iter().position(|&b| b == b'\n').expect("two parts");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!(
        "{}.{}",
        b64.encode(&rest[..at]),
        b64.encode(&rest[at + 1..])
    );
    let key = jsonwebtoken::EncodingKey::from_secret(targets::JWT_SECRET).expect("key");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("sign");
    format!("{message}.{signature}")
}
