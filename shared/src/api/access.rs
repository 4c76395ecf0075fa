//! Who may call the API: with access control on, a bearer token (`Authorization: Bearer`, or
//! `?token=` for clients that cannot set headers, such as `EventSource`). An admin token
//! (`admin: true`) opens everything; a room token of the WebSocket opens its rooms, reading
//! only if it is `access: ro`. With access control off, the API is as open as the WebSocket.
use http::header;

use super::{query_param, ApiError, ApiRequest};
use crate::auth::{opens, Access, Claims};
use crate::handler::Handler;

fn bearer(request: &ApiRequest) -> Option<String> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    from_header.or_else(|| query_param(request, "token"))
}

/// The claims of the request's valid token; `None` when access control is off.
async fn claims(handler: &Handler, request: &ApiRequest) -> Result<Option<Claims>, ApiError> {
    let Some(verifier) = handler.verifier() else {
        return Ok(None);
    };
    let token = bearer(request);
    let claims = verifier
        .check(token.as_deref())
        .await
        .map_err(|e| ApiError::unauthorized(format!("{e} (send Authorization: Bearer TOKEN)")))?;
    Ok(Some(claims))
}

/// Listing every room: admin tokens only.
pub(super) async fn require_admin(handler: &Handler, request: &ApiRequest) -> Result<(), ApiError> {
    match claims(handler, request).await? {
        None => Ok(()),
        Some(claims) if claims.admin == Some(true) => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "listing rooms and their events needs an admin token (ylambda token --admin)".into(),
        )),
    }
}

/// One room: an admin token, or a token that opens the room (read-write to write).
pub(super) async fn require_room(
    handler: &Handler,
    request: &ApiRequest,
    room: &str,
    write: bool,
) -> Result<(), ApiError> {
    let Some(claims) = claims(handler, request).await? else {
        return Ok(());
    };
    if claims.admin == Some(true) {
        return Ok(());
    }
    let patterns = claims.patterns();
    if patterns.is_empty() {
        return Err(ApiError::unauthorized(
            "invalid token: no room, rooms or admin claim".into(),
        ));
    }
    if !patterns.iter().any(|p| opens(p, room)) {
        return Err(ApiError::forbidden(format!(
            "the token does not open room {room:?}"
        )));
    }
    if write && claims.access == Some(Access::Ro) {
        return Err(ApiError::forbidden(
            "a read-only token cannot write (access: ro)".into(),
        ));
    }
    Ok(())
}
