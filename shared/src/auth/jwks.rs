//! An identity provider's public keys, from its JWKS URL (`YLAMBDA_AUTH_JWKS_URL`).
//!
//! The key set is fetched at first use and kept for the life of the process (a Lambda's cold
//! start). A token whose `kid` is not in it makes one refetch (a key rotated in), at most one per
//! [`JwksOptions::refetch_interval`], so tokens with made-up `kid`s cannot make this server hammer
//! the provider. A fetch has a deadline and a size limit; when it fails the token is refused
//! (401) and the reason is logged. Only RSA keys (for RS256) and P-256 keys (for ES256) are kept;
//! a key whose `alg` or `use` says otherwise is skipped, and so is every symmetric key.
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::AuthError;

/// Where a JWKS is fetched from: `https://…`, or `http://` to a loopback host (a local server,
/// tests). Plain http anywhere else would let anyone on the path hand us their own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksUrl(Uri);

impl JwksUrl {
    /// Checks `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<JwksUrl, String> {
        const HTTPS: &str = "must be an https:// URL \
            (e.g. https://cognito-idp.REGION.amazonaws.com/POOL_ID/.well-known/jwks.json)";
        let url = url.trim();
        if !url.contains("://") {
            return Err(HTTPS.into());
        }
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        let host = uri.host().ok_or("not a URL (no host)")?;
        match uri.scheme_str() {
            Some("https") => Ok(JwksUrl(uri)),
            Some("http") if is_loopback(host) => Ok(JwksUrl(uri)),
            Some("http") => {
                Err("must be https:// (plain http:// only to localhost, 127.0.0.1 or [::1])".into())
            }
            _ => Err(HTTPS.into()),
        }
    }
}

impl fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How a [`Jwks`] fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksOptions {
    /// Deadline for a whole fetch: connecting, TLS, the answer and its body.
    pub timeout: Duration,
    /// The largest JWKS accepted (bytes of body).
    pub max_bytes: usize,
    /// At most one refetch for an unknown `kid` per this long.
    pub refetch_interval: Duration,
    /// With nothing fetched yet, a failed fetch is not retried for this long: tokens that arrive
    /// meanwhile are refused at once rather than each waiting on a dead endpoint.
    pub retry_after_failure: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            timeout: Duration::from_secs(5),
            // Cognito's and Auth0's key sets are about 1 KB.
            max_bytes: 64 * 1024,
            refetch_interval: Duration::from_secs(30),
            retry_after_failure: Duration::from_secs(2),
        }
    }
}

/// A verification key and the one algorithm it is for.
#[derive(Clone)]
struct Key {
    alg: Algorithm,
    key: DecodingKey,
}

type KeySet = HashMap<String, Key>;

#[derive(Default)]
struct FetchState {
    /// When a `kid` missing from the cached set last caused a fetch.
    last_refetch: Option<Instant>,
    /// The last fetch, if it failed: when it ended and why.
    last_failure: Option<(Instant, String)>,
}

/// The key set at one URL, fetched once and refreshed on an unknown `kid` (see the module docs).
pub struct Jwks {
    url: JwksUrl,
    options: JwksOptions,
    /// `None` until a fetch succeeds.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held for a fetch and its bookkeeping: one fetch at a time, and tokens that wait on it see
    /// what it found.
    fetching: tokio::sync::Mutex<FetchState>,
}

impl Jwks {
    pub fn new(url: JwksUrl) -> Jwks {
        Jwks::with_options(url, JwksOptions::default())
    }

    pub fn with_options(url: JwksUrl, options: JwksOptions) -> Jwks {
        Jwks {
            url,
            options,
            keys: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    /// The key `kid` names, if it is a key for `alg`.
    pub(crate) async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        if let Some(found) = self.cached(kid) {
            return for_alg(found, kid, alg);
        }
        let mut state = self.fetching.lock().await;
        // A fetch may have finished while this token waited for the lock.
        if let Some(found) = self.cached(kid) {
            return for_alg(found, kid, alg);
        }
        let now = Instant::now();
        if self.has_keys() {
            if state
                .last_refetch
                .is_some_and(|at| now.duration_since(at) < self.options.refetch_interval)
            {
                return Err(unknown_kid(kid));
            }
            state.last_refetch = Some(now);
        } else if let Some((at, why)) = &state.last_failure {
            if now.duration_since(*at) < self.options.retry_after_failure {
                return Err(unavailable(why));
            }
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
                state.last_failure = None;
                let found = keys.get(kid).cloned();
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(keys));
                match found {
                    Some(found) => for_alg(found, kid, alg),
                    None => Err(unknown_kid(kid)),
                }
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "cannot fetch the JWKS: tokens signed with its keys are refused");
                let error = unavailable(&why);
                state.last_failure = Some((Instant::now(), why));
                Err(error)
            }
        }
    }

    fn cached(&self, kid: &str) -> Option<Key> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.as_ref()?.get(kid).cloned()
    }

    fn has_keys(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// One fetch of the key set, within the deadline and size limit.
    async fn fetch(&self) -> Result<KeySet, String> {
        let body = tokio::time::timeout(self.options.timeout, self.download())
            .await
            .map_err(|_| format!("no complete answer within {:?}", self.options.timeout))??;
        parse_key_set(&body)
    }

    async fn download(&self) -> Result<Bytes, String> {
        // A client per fetch: fetches are rare (a cold start, a rotation), so nothing is pooled.
        // aws-lc-rs is given explicitly rather than through rustls' process-wide default.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("TLS setup failed: {e}"))?
            // `JwksUrl` allows plain http only to loopback hosts.
            .https_or_http()
            .enable_http1()
            .build();
        let client: Client<_, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let request = Request::get(self.url.0.clone())
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        let max = self.options.max_bytes;
        Limited::new(response.into_body(), max)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    format!("the JWKS is larger than {max} bytes")
                } else {
                    error_chain(&*e)
                }
            })
    }
}

fn for_alg(found: Key, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
    if found.alg == alg {
        Ok(found.key)
    } else {
        Err(AuthError::Invalid(format!(
            "key {} is a {:?} key, the token says {alg:?}",
            shown(kid),
            found.alg
        )))
    }
}

fn unknown_kid(kid: &str) -> AuthError {
    AuthError::Invalid(format!("no key {} in the JWKS", shown(kid)))
}

fn unavailable(why: &str) -> AuthError {
    AuthError::Invalid(format!("the JWKS could not be fetched: {why}"))
}

/// A `kid` from a token, for messages: quoted, escaped and cut short.
fn shown(kid: &str) -> String {
    let short: String = kid.chars().take(64).collect();
    format!("{short:?}")
}

/// An error and its sources (hyper's own message is often only "client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The usable keys of a JWKS document; a key this server cannot or must not use is skipped.
fn parse_key_set(body: &[u8]) -> Result<KeySet, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document ({e})"))?;
    let mut keys = KeySet::new();
    for value in document.keys {
        match usable_key(value) {
            Ok((kid, key)) => {
                keys.entry(kid).or_insert(key);
            }
            Err(why) => tracing::debug!("JWKS key skipped: {why}"),
        }
    }
    if keys.is_empty() {
        tracing::warn!("the JWKS has no usable RS256 / ES256 key with a kid");
    }
    Ok(keys)
}

fn usable_key(value: serde_json::Value) -> Result<(String, Key), String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let kid = jwk.common.key_id.clone().ok_or("a key without kid")?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(format!("key {}: not for signatures", shown(&kid)));
    }
    let (alg, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return Err(format!("key {}: not an RSA or P-256 key", shown(&kid))),
    };
    if jwk.common.key_algorithm.is_some_and(|a| a != declared) {
        return Err(format!("key {}: for another algorithm", shown(&kid)));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {}: {e}", shown(&kid)))?;
    Ok((kid, Key { alg, key }))
}
