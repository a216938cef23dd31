//! The `/auth/*` routes: request fields in, response bodies out.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::one_token;
use crate::domain::App;
use crate::domain::login::{self, LoginRequest};
use crate::domain::revoke::{self, RevokeRequest};
use crate::domain::verify;
use crate::http::body::Fields;
use crate::http::error::ApiError;
use crate::http::response::{issued_body, revoked_body, verified_body};
use crate::telemetry::Audit;

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

pub(super) async fn revoke(
    app: &App,
    bearer: Option<SecretString>,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let done = revoke::revoke(app, revoke_request(bearer, fields)?, audit).await?;
    Ok(revoked_body(&done))
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
