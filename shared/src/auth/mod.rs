//! Access control: JWTs checked at `$connect`.
//!
//! A token is either an HS256 JWT signed with `YLAMBDA_AUTH_SECRET` (minted by the app's own
//! auth system), or an RS256 / ES256 JWT signed by an identity provider whose public keys are
//! published as a JWKS at `YLAMBDA_AUTH_JWKS_URL` (Cognito, Auth0; see [`jwks`]). The header's
//! `alg` picks the key: HS256 only ever meets the secret, RS256 / ES256 only a JWKS key of that
//! type, and every other `alg` (`none` included) is refused. Claims:
//! - `exp` (required): seconds since the epoch; the connection's records expire with it;
//! - `room` or `rooms`: the rooms it opens, each an exact name or a `prefix*` pattern;
//! - `access`: `rw` (default) or `ro`: read-only, enforced by the server;
//! - `sub`: who it was issued to, kept for logs;
//! - `iss` / `aud`: checked against `YLAMBDA_AUTH_ISSUER` / `YLAMBDA_AUTH_AUDIENCE` when set
//!   (then required); with no audience set, a token that names one is refused.
//!
//! Verification fails closed: a missing, malformed, forged or expired token is refused, and so is
//! a token with neither `room` nor `rooms`, and so is every token when the JWKS cannot be fetched.
pub mod jwks;
#[cfg(test)]
mod jwks_tests;

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::config::Config;
pub use jwks::{Jwks, JwksOptions, JwksUrl};

/// The claims this server reads and `ylambda token` writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `true` opens every room of the HTTP API (listing, reading, writing) and nothing else: a
    /// WebSocket still needs a `room` / `rooms` claim (`ylambda token --admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
}

impl Claims {
    /// The `room` and `rooms` patterns, in that order (exact names or `prefix*`).
    pub fn patterns(&self) -> Vec<&str> {
        self.room
            .iter()
            .map(String::as_str)
            .chain(self.rooms.iter().flatten().map(String::as_str))
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Rw,
    Ro,
}

/// What a valid token grants for one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub readonly: bool,
    pub sub: Option<String>,
    /// The token's `exp`, seconds since the epoch.
    pub expires_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token: `401`.
    #[error("a token is required (?token=...)")]
    Missing,
    /// Malformed, forged, expired or incomplete: `401`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Valid, for other rooms: `403`.
    #[error("the token does not open room {0:?}")]
    Forbidden(String),
}

impl AuthError {
    /// The HTTP status `$connect` answers with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => 401,
            AuthError::Forbidden(_) => 403,
        }
    }
}

/// Checks tokens: HS256 against a secret, RS256 / ES256 against a JWKS, or both.
pub struct Verifier {
    /// `None` without a secret, or for an empty one (which the configuration never passes):
    /// every HS256 token is then refused, so a mistake closes the door rather than opening it.
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    /// `exp`, `iss`, `aud` rules; `algorithms` is set per token to exactly the one it is
    /// checked with.
    validation: Validation,
}

impl Verifier {
    /// HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Verifier {
        Verifier {
            secret: Some(secret)
                .filter(|s| !s.is_empty())
                .and_then(|s| DecodingKey::from_secret(s).ok()),
            jwks: None,
            validation: base_validation(),
        }
    }

    /// RS256 / ES256 tokens signed with a key of `jwks`.
    pub fn jwks(jwks: Jwks) -> Verifier {
        Verifier {
            secret: None,
            jwks: Some(jwks),
            validation: base_validation(),
        }
    }

    /// Also accepts RS256 / ES256 tokens signed with a key of `jwks`.
    pub fn with_jwks(self, jwks: Jwks) -> Verifier {
        Verifier {
            jwks: Some(jwks),
            ..self
        }
    }

    /// Requires `iss` to be one of `issuers` (no-op for an empty list).
    pub fn with_issuers(mut self, issuers: &[String]) -> Verifier {
        if !issuers.is_empty() {
            self.validation.set_issuer(issuers);
            self.validation.required_spec_claims.insert("iss".into());
        }
        self
    }

    /// Requires `aud` to name one of `audiences` (no-op for an empty list).
    pub fn with_audiences(mut self, audiences: &[String]) -> Verifier {
        if !audiences.is_empty() {
            self.validation.set_audience(audiences);
            self.validation.required_spec_claims.insert("aud".into());
        }
        self
    }

    /// The verifier `config` asks for: `None` (no token checks) when neither
    /// `YLAMBDA_AUTH_SECRET` nor `YLAMBDA_AUTH_JWKS_URL` is set.
    pub fn from_config(config: &Config) -> Option<Verifier> {
        let verifier = match (&config.auth_secret, &config.auth_jwks_url) {
            (None, None) => return None,
            (Some(secret), None) => Verifier::hs256(secret.0.as_bytes()),
            (None, Some(url)) => Verifier::jwks(Jwks::new(url.clone())),
            (Some(secret), Some(url)) => {
                Verifier::hs256(secret.0.as_bytes()).with_jwks(Jwks::new(url.clone()))
            }
        };
        Some(
            verifier
                .with_issuers(&config.auth_issuers)
                .with_audiences(&config.auth_audiences),
        )
    }

    /// The claims of a valid token (signature, `exp`, `iss`, `aud`), for any room.
    pub async fn check(&self, token: Option<&str>) -> Result<Claims, AuthError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        // Unverified: it only says which key to try, and the key must then agree.
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let jwks_key;
        let key = match header.alg {
            Algorithm::HS256 => self
                .secret
                .as_ref()
                .ok_or_else(|| AuthError::Invalid("HS256 tokens are not accepted here".into()))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    AuthError::Invalid(format!("{:?} tokens are not accepted here", header.alg))
                })?;
                let kid = header.kid.as_deref().ok_or_else(|| {
                    AuthError::Invalid(format!("a {:?} token needs a `kid` header", header.alg))
                })?;
                jwks_key = jwks.key(kid, header.alg).await?;
                &jwks_key
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {other:?} is not accepted"
                )))
            }
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        Ok(decode::<Claims>(token, key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims)
    }

    /// The grant `token` gives for `room`.
    pub async fn verify(&self, token: Option<&str>, room: &str) -> Result<Grant, AuthError> {
        let claims = self.check(token).await?;
        let patterns = claims.patterns();
        if patterns.is_empty() {
            return Err(AuthError::Invalid("no room or rooms claim".into()));
        }
        if !patterns.iter().any(|pattern| opens(pattern, room)) {
            return Err(AuthError::Forbidden(room.to_string()));
        }
        Ok(Grant {
            readonly: claims.access == Some(Access::Ro),
            sub: claims.sub,
            expires_at: claims.exp,
        })
    }
}

/// `exp` required, no leeway: a token is dead at `exp`, not a minute later.
fn base_validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.leeway = 0;
    validation
}

/// Whether a `room` / `rooms` entry opens `room`: an exact name, or `prefix*`.
pub fn opens(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

/// An HS256 token with `claims` (what `ylambda token` prints).
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, AuthError> {
    let key = EncodingKey::from_secret(secret).map_err(|e| AuthError::Invalid(e.to_string()))?;
    encode(&Header::new(Algorithm::HS256), claims, &key)
        .map_err(|e| AuthError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::unix_now_secs;

    const SECRET: &[u8] = b"test secret, long enough for HS256";

    fn token(claims: Claims) -> String {
        mint_hs256(SECRET, &claims).unwrap()
    }

    fn claims(room: &str) -> Claims {
        Claims {
            exp: unix_now_secs() + 60,
            room: Some(room.into()),
            ..Claims::default()
        }
    }

    #[tokio::test]
    async fn a_valid_token_opens_its_rooms_only() {
        let v = Verifier::hs256(SECRET);
        let grant = v
            .verify(Some(&token(claims("notes"))), "notes")
            .await
            .unwrap();
        assert!(!grant.readonly);
        assert_eq!(
            v.verify(Some(&token(claims("notes"))), "other").await,
            Err(AuthError::Forbidden("other".into()))
        );
        let prefixed = Claims {
            rooms: Some(vec!["team-a/*".into(), "lobby".into()]),
            room: None,
            ..claims("")
        };
        assert!(v
            .verify(Some(&token(prefixed.clone())), "team-a/doc")
            .await
            .is_ok());
        assert!(v
            .verify(Some(&token(prefixed.clone())), "lobby")
            .await
            .is_ok());
        assert_eq!(
            v.verify(Some(&token(prefixed)), "team-b/doc")
                .await
                .map_err(|e| e.status()),
            Err(403)
        );
    }

    #[tokio::test]
    async fn read_only_and_subject_are_carried() {
        let v = Verifier::hs256(SECRET);
        let ro = Claims {
            access: Some(Access::Ro),
            sub: Some("user-1".into()),
            ..claims("r")
        };
        let grant = v.verify(Some(&token(ro)), "r").await.unwrap();
        assert!(grant.readonly);
        assert_eq!(grant.sub.as_deref(), Some("user-1"));
    }

    #[tokio::test]
    async fn bad_tokens_are_refused_with_401() {
        let v = Verifier::hs256(SECRET);
        let expired = Claims {
            exp: unix_now_secs() - 1,
            ..claims("r")
        };
        let forged = mint_hs256(b"another secret entirely, same length", &claims("r")).unwrap();
        let no_room = Claims {
            room: None,
            ..claims("r")
        };
        let mut tampered = token(claims("r"));
        tampered.insert(tampered.len() / 2, 'x');
        for (what, t) in [
            ("missing", None),
            ("empty", Some(String::new())),
            ("garbage", Some("not.a.jwt".to_string())),
            ("expired", Some(token(expired))),
            ("forged", Some(forged)),
            ("no room", Some(token(no_room))),
            ("tampered", Some(tampered)),
        ] {
            let result = v.verify(t.as_deref(), "r").await;
            assert_eq!(
                result.as_ref().map_err(AuthError::status).err(),
                Some(401),
                "{what}: {result:?}"
            );
        }
        // `alg: none` is not HS256.
        let none = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none","typ":"JWT"}"#),
            base64_url(&format!(r#"{{"exp":{},"room":"r"}}"#, unix_now_secs() + 60))
        );
        assert_eq!(
            v.verify(Some(&none), "r").await.map_err(|e| e.status()),
            Err(401)
        );
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn patterns() {
        assert!(opens("a", "a"));
        assert!(!opens("a", "ab"));
        assert!(opens("a*", "ab"));
        assert!(opens("*", "anything"));
        assert!(!opens("b*", "ab"));
    }
}
