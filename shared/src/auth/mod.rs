//! Access control: JWTs minted by the app's own auth system, checked at `$connect`.
//!
//! A token is an HS256 JWT signed with `YLAMBDA_AUTH_SECRET`. Claims:
//! - `exp` (required): seconds since the epoch; the connection's records expire with it;
//! - `room` or `rooms`: the rooms it opens, each an exact name or a `prefix*` pattern;
//! - `access`: `rw` (default) or `ro`: read-only, enforced by the server;
//! - `sub`: who it was issued to, kept for logs.
//!
//! Verification fails closed: a missing, malformed, forged or expired token is refused, and so is
//! a token with neither `room` nor `rooms`.
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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

/// Checks tokens against one HS256 secret.
pub struct Verifier {
    /// `None` for an empty secret (which the configuration never passes): every token is then
    /// refused, so a mistake closes the door rather than opening it.
    key: Option<DecodingKey>,
    validation: Validation,
}

impl Verifier {
    pub fn hs256(secret: &[u8]) -> Verifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        // A token is dead at `exp`, not a minute later.
        validation.leeway = 0;
        Verifier {
            key: DecodingKey::from_secret(secret).ok(),
            validation,
        }
    }

    /// The claims of a valid token (signature, `exp`), for any room.
    pub fn check(&self, token: Option<&str>) -> Result<Claims, AuthError> {
        let token = token
            .filter(|t| !t.trim().is_empty())
            .ok_or(AuthError::Missing)?;
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| AuthError::Invalid("no secret configured".into()))?;
        Ok(decode::<Claims>(token.trim(), key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims)
    }

    /// The grant `token` gives for `room`.
    pub fn verify(&self, token: Option<&str>, room: &str) -> Result<Grant, AuthError> {
        let claims = self.check(token)?;
        let patterns: Vec<&str> = claims
            .room
            .iter()
            .map(String::as_str)
            .chain(claims.rooms.iter().flatten().map(String::as_str))
            .collect();
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

    #[test]
    fn a_valid_token_opens_its_rooms_only() {
        let v = Verifier::hs256(SECRET);
        let grant = v.verify(Some(&token(claims("notes"))), "notes").unwrap();
        assert!(!grant.readonly);
        assert_eq!(
            v.verify(Some(&token(claims("notes"))), "other"),
            Err(AuthError::Forbidden("other".into()))
        );
        let prefixed = Claims {
            rooms: Some(vec!["team-a/*".into(), "lobby".into()]),
            room: None,
            ..claims("")
        };
        assert!(v
            .verify(Some(&token(prefixed.clone())), "team-a/doc")
            .is_ok());
        assert!(v.verify(Some(&token(prefixed.clone())), "lobby").is_ok());
        assert_eq!(
            v.verify(Some(&token(prefixed)), "team-b/doc")
                .map_err(|e| e.status()),
            Err(403)
        );
    }

    #[test]
    fn read_only_and_subject_are_carried() {
        let v = Verifier::hs256(SECRET);
        let ro = Claims {
            access: Some(Access::Ro),
            sub: Some("user-1".into()),
            ..claims("r")
        };
        let grant = v.verify(Some(&token(ro)), "r").unwrap();
        assert!(grant.readonly);
        assert_eq!(grant.sub.as_deref(), Some("user-1"));
    }

    #[test]
    fn bad_tokens_are_refused_with_401() {
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
            let result = v.verify(t.as_deref(), "r");
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
        assert_eq!(v.verify(Some(&none), "r").map_err(|e| e.status()), Err(401));
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
