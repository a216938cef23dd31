//! The `/auth/*` routes: request fields in, response bodies out.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::one_token;
use crate::app::App;
use crate::error::ApiError;
use crate::login::{self, Issued, LoginRequest};
use crate::request::Fields;
use crate::revoke::{self, RevokeRequest, Revoked};
use crate::telemetry::Audit;
use crate::verify::{self, Verified};

pub(super) async fn login(
    app: &App,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let api_key = fields
        .text("api_key")?
        .ok_or_else(|| ApiError::InvalidRequest("field api_key is required".into()))?;
    let request = LoginRequest {
        api_key: SecretString::from(api_key),
        session_id: fields.text("session_id")?.map(str::to_owned),
        scope: fields.text("scope")?.map(str::to_owned),
    };
    Ok(issued_body(&login::login(app, request, audit).await?))
}

/// The body of a token response, for `/auth/login` and `/oauth2/token` alike.
pub(super) fn issued_body(issued: &Issued) -> Value {
    json!({
        "access_token": issued.access_token.expose_secret(),
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
        "session_id": issued.session_id,
    })
}

pub(super) async fn verify(
    app: &App,
    bearer: Option<SecretString>,
    fields: &Fields,
    query: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let token = one_token(bearer, fields.text("token")?)?;
    let scope = match (query.text("scope")?, fields.text("scope")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "send scope in the query or the body, not both".into(),
            ));
        }
        (q, b) => q.or(b),
    };
    let verified =
        verify::verify(app, token.as_ref().map(|t| t.expose_secret()), scope, audit).await?;
    Ok(Value::Object(verified_body(&verified)))
}

/// The claims of a valid token, as `/auth/verify` shows them.
pub(super) fn verified_body(v: &Verified) -> Map<String, Value> {
    let c = &v.claims;
    let mut body = Map::new();
    body.insert("active".into(), json!(true));
    body.insert("sub".into(), json!(c.sub));
    body.insert("session_id".into(), json!(c.sid));
    body.insert("scope".into(), json!(c.scope));
    body.insert("jti".into(), json!(c.jti));
    body.insert("iat".into(), json!(c.iat));
    body.insert("exp".into(), json!(c.exp));
    body.insert("expires_in".into(), json!(v.expires_in));
    body
}

pub(super) async fn revoke(
    app: &App,
    bearer: Option<SecretString>,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let done = revoke::revoke(app, revoke_request(bearer, fields)?, audit).await?;
    Ok(revoked_body(&done))
}

pub(super) fn revoked_body(done: &Revoked) -> Value {
    let mut body = Map::new();
    body.insert("revoked".into(), json!(true));
    body.insert("sessions_revoked".into(), json!(done.sessions));
    if done.api_key {
        body.insert("api_key_revoked".into(), json!(true));
    }
    Value::Object(body)
}

fn revoke_request(
    bearer: Option<SecretString>,
    fields: &Fields,
) -> Result<RevokeRequest, ApiError> {
    let invalid = |m: &str| Err(ApiError::InvalidRequest(m.into()));
    let api_key = fields.text("api_key")?;
    let token = one_token(bearer, fields.text("token")?)?;
    let (all_sessions, revoke_key) = (fields.flag("all_sessions")?, fields.flag("revoke_api_key")?);
    let session_id = fields.text("session_id")?.map(str::to_owned);
    match (token, api_key) {
        (Some(_), Some(_)) => invalid("send a token or an api_key, not both"),
        (None, None) => invalid("send a bearer token, a token field or an api_key"),
        (Some(token), None) => {
            if fields.has_any(&["session_id", "all_sessions", "revoke_api_key"]) {
                return invalid("session_id, all_sessions and revoke_api_key go with api_key");
            }
            Ok(RevokeRequest::Token(token))
        }
        (None, Some(key)) => {
            let api_key = SecretString::from(key);
            match (revoke_key, all_sessions, session_id) {
                (true, false, None) => Ok(RevokeRequest::Key { api_key }),
                (false, true, None) => Ok(RevokeRequest::AllSessions { api_key }),
                (false, false, session_id) => Ok(RevokeRequest::Session {
                    api_key,
                    session_id,
                }),
                _ => invalid("choose one of session_id, all_sessions and revoke_api_key"),
            }
        }
    }
}
