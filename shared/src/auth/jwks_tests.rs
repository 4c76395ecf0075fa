//! RS256 / ES256 tokens against a JWKS served by a local HTTP server: keys generated here
//! (aws-lc-rs), tokens signed here byte by byte, so nothing but the verifier is under test.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyUncompressedBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::adapters::unix_now_secs;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A key pair of the identity provider's, with its `kid`.
struct TestKey {
    kid: String,
    signer: Signer,
}

impl TestKey {
    fn rsa(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }

    fn ec(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
        }
    }

    /// The public half, as a JWKS lists it.
    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Signer::Ec(pair) => {
                let point: EcPublicKeyUncompressedBin = pair.public_key().as_be_bytes().unwrap();
                let point = point.as_ref();
                assert_eq!(point.len(), 65);
                json!({
                    "kty": "EC", "kid": self.kid, "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..]),
                })
            }
        }
    }

    /// A token with the key's own `alg` and `kid`.
    fn token(&self, claims: Value) -> String {
        self.token_with(
            json!({ "alg": self.alg(), "kid": self.kid, "typ": "JWT" }),
            claims,
        )
    }

    /// A token with any header, signed with this key's algorithm.
    fn token_with(&self, header: Value, claims: Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Ec(pair) => pair
                .sign(&SystemRandom::new(), message.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{message}.{}", b64(&signature))
    }
}

fn hs256_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    header
}

fn jwks_of(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

fn claims(room: &str) -> Value {
    json!({ "exp": unix_now_secs() + 60, "room": room, "sub": "user-1" })
}

/// What the test server answers.
struct Answer {
    status: u16,
    body: String,
    /// Accept the request and never answer.
    hang: bool,
    /// Requests received so far.
    requests: usize,
}

/// A JWKS endpoint on 127.0.0.1 whose answer the test changes as it goes.
struct JwksServer {
    url: JwksUrl,
    answer: Arc<Mutex<Answer>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(jwks: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = JwksUrl::parse(&format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: jwks.to_string(),
            hang: false,
            requests: 0,
        }));
        let shared = answer.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = shared.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, body, hang) = {
                        let mut a = answer.lock().unwrap();
                        a.requests += 1;
                        (a.status, a.body.clone(), a.hang)
                    };
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        JwksServer { url, answer, task }
    }

    fn serve(&self, jwks: Value) {
        let mut a = self.answer.lock().unwrap();
        a.status = 200;
        a.body = jwks.to_string();
    }

    fn set(&self, change: impl FnOnce(&mut Answer)) {
        change(&mut self.answer.lock().unwrap());
    }

    fn requests(&self) -> usize {
        self.answer.lock().unwrap().requests
    }

    fn verifier(&self) -> Verifier {
        Verifier::jwks(Jwks::new(self.url.clone()))
    }

    fn verifier_with(&self, options: JwksOptions) -> Verifier {
        Verifier::jwks(Jwks::with_options(self.url.clone(), options))
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reason a token is refused with 401 (panics if it is accepted or gets another status).
async fn refused(v: &Verifier, token: &str) -> String {
    match v.verify(Some(token), "r").await {
        Err(e @ AuthError::Invalid(_)) => e.to_string(),
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_the_jwks_are_accepted_and_the_keys_cached() {
    let (rsa, ec) = (TestKey::rsa("rsa-1"), TestKey::ec("ec-1"));
    let server = JwksServer::start(jwks_of(&[&rsa, &ec])).await;
    let v = server.verifier();
    for key in [&rsa, &ec] {
        let grant = v.verify(Some(&key.token(claims("r"))), "r").await.unwrap();
        assert_eq!(grant.sub.as_deref(), Some("user-1"), "{}", key.alg());
        assert_eq!(
            v.verify(Some(&key.token(claims("r"))), "elsewhere").await,
            Err(AuthError::Forbidden("elsewhere".into()))
        );
    }
    let ro = json!({ "exp": unix_now_secs() + 60, "rooms": ["r*"], "access": "ro" });
    assert!(v.verify(Some(&ec.token(ro)), "r2").await.unwrap().readonly);
    assert_eq!(server.requests(), 1, "one fetch serves every token");
    // Signaling connections go through `check`.
    assert_eq!(
        v.check(Some(&rsa.token(claims("r"))))
            .await
            .unwrap()
            .room
            .as_deref(),
        Some("r")
    );
    let expired = json!({ "exp": unix_now_secs() - 1, "room": "r" });
    assert!(refused(&v, &rsa.token(expired)).await.contains("xpired"));
    let mut tampered = rsa.token(claims("r"));
    tampered.insert(tampered.len() / 2, 'x');
    refused(&v, &tampered).await;
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_finds_a_rotated_key() {
    let (old, new) = (TestKey::rsa("2024"), TestKey::rsa("2025"));
    let server = JwksServer::start(jwks_of(&[&old])).await;
    let v = server.verifier();
    v.verify(Some(&old.token(claims("r"))), "r").await.unwrap();
    assert_eq!(server.requests(), 1);
    // The provider rotates: the new key is published and tokens start using it.
    server.serve(jwks_of(&[&old, &new]));
    v.verify(Some(&new.token(claims("r"))), "r").await.unwrap();
    assert_eq!(server.requests(), 2, "exactly one refetch");
    for key in [&old, &new, &new] {
        v.verify(Some(&key.token(claims("r"))), "r").await.unwrap();
    }
    assert_eq!(server.requests(), 2, "both keys are cached now");
}

#[tokio::test]
async fn forged_kids_refetch_at_most_once_per_window() {
    let key = TestKey::rsa("real");
    let server = JwksServer::start(jwks_of(&[&key])).await;
    let v = server.verifier();
    v.verify(Some(&key.token(claims("r"))), "r").await.unwrap();
    let forged: Vec<String> = (0..50)
        .map(|i| {
            key.token_with(
                json!({ "alg": "RS256", "kid": format!("forged-{i}") }),
                claims("r"),
            )
        })
        .collect();
    let results = futures::future::join_all(forged.iter().map(|t| v.verify(Some(t), "r"))).await;
    for result in results {
        let error = result.unwrap_err();
        assert_eq!(error.status(), 401);
        assert!(error.to_string().contains("no key \"forged-"), "{error}");
    }
    assert_eq!(
        server.requests(),
        2,
        "the first load, then one refetch for 50 unknown kids"
    );
    v.verify(Some(&key.token(claims("r"))), "r").await.unwrap();
    assert_eq!(
        server.requests(),
        2,
        "the known key still works from the cache"
    );

    // Once the window has passed, an unknown kid may refetch again (once).
    let window = Duration::from_millis(300);
    let v = server.verifier_with(JwksOptions {
        refetch_interval: window,
        ..JwksOptions::default()
    });
    v.verify(Some(&key.token(claims("r"))), "r").await.unwrap();
    refused(&v, &forged[0]).await;
    refused(&v, &forged[1]).await;
    assert_eq!(server.requests(), 4);
    let refetched = Instant::now();
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    assert!(refetched.elapsed() > window);
    refused(&v, &forged[2]).await;
    refused(&v, &forged[3]).await;
    assert_eq!(server.requests(), 5);
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() {
    let key = TestKey::ec("k");
    let server = JwksServer::start(jwks_of(&[&key])).await;
    let issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool";
    let v = server
        .verifier()
        .with_issuers(&[issuer.into()])
        .with_audiences(&["app-1".into(), "app-2".into()]);
    let with = |extra: Value| {
        let mut c = claims("r");
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        key.token(c)
    };
    v.verify(Some(&with(json!({ "iss": issuer, "aud": "app-2" }))), "r")
        .await
        .unwrap();
    for (token, reason) in [
        (
            with(json!({ "iss": "https://evil.example", "aud": "app-1" })),
            "InvalidIssuer",
        ),
        (
            with(json!({ "aud": "app-1" })),
            "Missing required claim: iss",
        ),
        (
            with(json!({ "iss": issuer, "aud": "app-3" })),
            "InvalidAudience",
        ),
        (
            with(json!({ "iss": issuer })),
            "Missing required claim: aud",
        ),
    ] {
        let refusal = refused(&v, &token).await;
        assert!(refusal.ends_with(reason), "{reason}: {refusal}");
    }
    // The same rules hold for HS256 tokens.
    let secret = b"an hs256 secret that is long enough";
    let hs = Verifier::hs256(secret).with_issuers(&[issuer.into()]);
    let mint = |iss: Option<&str>| {
        let mut c = json!({ "exp": unix_now_secs() + 60, "room": "r" });
        if let Some(iss) = iss {
            c["iss"] = iss.into();
        }
        let key = jsonwebtoken::EncodingKey::from_secret(secret).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &key).unwrap()
    };
    hs.verify(Some(&mint(Some(issuer))), "r").await.unwrap();
    assert!(refused(&hs, &mint(Some("https://evil.example")))
        .await
        .ends_with("InvalidIssuer"));
    assert!(refused(&hs, &mint(None)).await.ends_with("claim: iss"));
    // With no audience configured, a token meant for some audience is not taken.
    let open = server.verifier();
    assert!(refused(&open, &with(json!({ "aud": "app-1" })))
        .await
        .ends_with("InvalidAudience"));
    open.verify(Some(&with(json!({ "iss": "anyone" }))), "r")
        .await
        .unwrap();
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let (rsa, ec) = (TestKey::rsa("rsa"), TestKey::ec("ec"));
    let oct_secret = b"a symmetric key published in the jwks";
    let mut jwks = jwks_of(&[&rsa, &ec]);
    let keys = jwks["keys"].as_array_mut().unwrap();
    keys.push(json!({ "kty": "oct", "kid": "sym", "k": b64(oct_secret) }));
    let encrypting = TestKey::rsa("enc");
    let mut enc = encrypting.jwk();
    enc["use"] = "enc".into();
    keys.push(enc);
    let other_alg = TestKey::rsa("rs384");
    let mut rs384 = other_alg.jwk();
    rs384["alg"] = "RS384".into();
    keys.push(rs384);
    let server = JwksServer::start(jwks).await;
    let secret = b"the real hs256 secret, long enough!";
    let jwks_only = server.verifier();
    let both = Verifier::hs256(secret).with_jwks(Jwks::new(server.url.clone()));

    // HS256 signed with the RSA key's public modulus, the classic confusion.
    let public = rsa.jwk()["n"].as_str().unwrap().to_string();
    let hs_with_public = jsonwebtoken::encode(
        &hs256_header("rsa"),
        &claims("r"),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(refused(&jwks_only, &hs_with_public)
        .await
        .contains("HS256 tokens are not accepted"));
    assert!(refused(&both, &hs_with_public)
        .await
        .contains("InvalidSignature"));
    // HS256 with the symmetric key from the JWKS: never a JWKS key.
    let hs_with_oct = jsonwebtoken::encode(
        &hs256_header("sym"),
        &claims("r"),
        &jsonwebtoken::EncodingKey::from_secret(oct_secret).unwrap(),
    )
    .unwrap();
    refused(&jwks_only, &hs_with_oct).await;
    refused(&both, &hs_with_oct).await;
    // A header naming the other family's key.
    let rs_as_ec = rsa.token_with(json!({ "alg": "RS256", "kid": "ec" }), claims("r"));
    assert!(refused(&both, &rs_as_ec).await.contains("is a ES256 key"));
    let es_as_rsa = ec.token_with(json!({ "alg": "ES256", "kid": "rsa" }), claims("r"));
    assert!(refused(&both, &es_as_rsa).await.contains("is a RS256 key"));
    // Keys the JWKS marks for encryption or for another algorithm are not loaded.
    for key in [&encrypting, &other_alg] {
        assert!(refused(&both, &key.token(claims("r")))
            .await
            .contains("no key"));
    }
    // Other algorithms, `none` included, whatever the kid.
    for alg in ["none", "RS384", "PS256", "ES384", "EdDSA", "HS512"] {
        let token = rsa.token_with(json!({ "alg": alg, "kid": "rsa" }), claims("r"));
        refused(&both, &token).await;
    }
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"rsa"}"#),
        b64(claims("r").to_string().as_bytes())
    );
    refused(&both, &unsigned).await;
    let no_kid = rsa.token_with(json!({ "alg": "RS256" }), claims("r"));
    assert!(refused(&both, &no_kid).await.contains("kid"));
    // The genuine tokens pass through the same verifier.
    both.verify(Some(&rsa.token(claims("r"))), "r")
        .await
        .unwrap();
    both.verify(Some(&ec.token(claims("r"))), "r")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_jwks_that_cannot_be_fetched_gives_401_not_a_panic() {
    let key = TestKey::rsa("k");
    let token = key.token(claims("r"));

    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = JwksUrl::parse(&format!(
        "http://{}/jwks.json",
        closed.local_addr().unwrap()
    ))
    .unwrap();
    drop(closed);
    let v = Verifier::jwks(Jwks::new(url));
    assert!(refused(&v, &token).await.contains("could not be fetched"));

    // An error status, then right away another token: refused without asking again.
    let server = JwksServer::start(jwks_of(&[&key])).await;
    server.set(|a| a.status = 503);
    let v = server.verifier();
    assert!(refused(&v, &token).await.contains("503"));
    refused(&v, &token).await;
    assert_eq!(
        server.requests(),
        1,
        "a failed fetch is not retried at once"
    );
    // Once the endpoint is back (and the short back-off has passed), tokens are accepted.
    let v = server.verifier_with(JwksOptions {
        retry_after_failure: Duration::ZERO,
        ..JwksOptions::default()
    });
    refused(&v, &token).await;
    server.serve(jwks_of(&[&key]));
    v.verify(Some(&token), "r").await.unwrap();

    // Not a JWKS.
    server.set(|a| a.body = "<html>maintenance</html>".into());
    assert!(refused(&server.verifier(), &token)
        .await
        .contains("not a JWKS"));

    // An endpoint that never answers: refused at the deadline.
    server.set(|a| a.hang = true);
    let timeout = Duration::from_millis(300);
    let v = server.verifier_with(JwksOptions {
        timeout,
        ..JwksOptions::default()
    });
    let started = Instant::now();
    assert!(refused(&v, &token).await.contains("no complete answer"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_oversized_jwks_is_refused() {
    let key = TestKey::ec("k");
    let mut jwks = jwks_of(&[&key]);
    jwks["padding"] = "x".repeat(JwksOptions::default().max_bytes).into();
    let server = JwksServer::start(jwks).await;
    let token = key.token(claims("r"));
    assert!(refused(&server.verifier(), &token)
        .await
        .contains("larger than 65536 bytes"));
    // The same document under a higher limit is fine: the size was the only problem.
    let roomy = server.verifier_with(JwksOptions {
        max_bytes: 1 << 20,
        ..JwksOptions::default()
    });
    roomy.verify(Some(&token), "r").await.unwrap();
}

#[test]
fn jwks_urls() {
    for ok in [
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X/.well-known/jwks.json",
        "https://tenant.eu.auth0.com/.well-known/jwks.json",
        "http://127.0.0.1:9999/jwks",
        "http://localhost/jwks",
        "http://[::1]:80/jwks",
    ] {
        assert!(JwksUrl::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://example.com/jwks",
        "http://10.0.0.1/jwks",
        "ws://127.0.0.1/jwks",
        "tenant.auth0.com/.well-known/jwks.json",
        "",
    ] {
        assert!(JwksUrl::parse(bad).is_err(), "{bad}");
    }
}
