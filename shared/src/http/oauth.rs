//! The OAuth2 routes, on the same logic as `/auth/*`:
//! client credentials (RFC 6749 §4.4) is a login, introspection (RFC 7662) a
//! verify, revocation (RFC 7009) a revoke by token limited to the client's
//! own tokens, and the metadata document (RFC 8414) says where they are.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::auth::{issued_body, revoked_body, verified_body};
use crate::app::App;
use crate::client::{Requirement, admit, caller, client_credentials};
use crate::config::TokenPolicy;
use crate::error::ApiError;
use crate::login::{self, LoginRequest};
use crate::request::Fields;
use crate::revoke::{self, RevokeRequest};
use crate::telemetry::Audit;
use crate::token::TokenError;
use crate::verify;

pub(super) async fn token(
    app: &App,
    basic: Option<&str>,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let client = client_credentials(basic, fields)?;
    match fields.text("grant_type")? {
        Some("client_credentials") => {}
        Some(_) => return Err(ApiError::UnsupportedGrantType),
        None => {
            return Err(ApiError::InvalidRequest(
                "field grant_type is required".into(),
            ));
        }
    }
    let request = LoginRequest {
        api_key: client.api_key,
        session_id: fields.text("session_id")?.map(str::to_owned),
        scope: fields.text("scope")?.map(str::to_owned),
    };
    match login::login(app, request, audit).await {
        Ok(issued) => Ok(issued_body(&issued)),
        // RFC 6749 §5.2 has no conflict code; the session rule is ours.
        Err(ApiError::SessionConflict) => Err(ApiError::InvalidRequest(
            ApiError::SessionConflict.description(),
        )),
        Err(e) => Err(e),
    }
}

/// Introspection costs one store read: the token's stateless checks come
/// first, so the caller's key is read together with the key and session an
/// authentic token names. The caller is still judged first: a client that
/// fails to authenticate learns nothing about the token, not even a 503 for it.
pub(super) async fn introspect(
    app: &App,
    basic: Option<&str>,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let client = client_credentials(basic, fields)?;
    let caller_key = caller(&client.api_key, audit)?;
    let token = fields.text("token")?;
    let claims = match token {
        Some(token) => Some(verify::authentic_claims(app, token).await),
        None => None,
    };
    let owner = match &claims {
        Some(Ok(claims)) => verify::owner(claims).ok(),
        _ => None,
    };
    let (caller_record, state) = match &owner {
        Some((key, session)) => {
            let (record, state) = app
                .store
                .caller_key_and_session(caller_key.id(), key, session)
                .await?;
            (record, Some(state))
        }
        None => (app.store.key(caller_key.id()).await?, None),
    };
    let now = app.clock.now()?;
    admit(caller_record, &caller_key, Requirement::Usable, now)?;
    let claims =
        claims.ok_or_else(|| ApiError::InvalidRequest("field token is required".into()))?;
    // The resource server's own key id is in the log; the token's owner is in the answer.
    let verified = claims.and_then(|claims| match state {
        Some(state) => verify::backed(claims, state, None, now),
        None => Err(TokenError::Revoked.into()),
    });
    match verified {
        Ok(v) => {
            let mut body = verified_body(&v);
            body.insert("client_id".into(), json!(v.claims.sub));
            body.insert("iss".into(), json!(v.claims.iss));
            body.insert("token_type".into(), json!("Bearer"));
            if let Some(aud) = &v.claims.aud {
                body.insert("aud".into(), json!(aud));
            }
            Ok(Value::Object(body))
        }
        // RFC 7662 §2.2: any token that is not active gets this and nothing more.
        Err(ApiError::InvalidToken(_)) => Ok(json!({"active": false})),
        Err(e) => Err(e),
    }
}

pub(super) async fn revoke(
    app: &App,
    basic: Option<&str>,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let client = client_credentials(basic, fields)?;
    let request = RevokeRequest::ClientToken {
        api_key: client.api_key,
        token: required_token(fields)?,
    };
    Ok(revoked_body(&revoke::revoke(app, request, audit).await?))
}

fn required_token(fields: &Fields) -> Result<SecretString, ApiError> {
    fields
        .text("token")?
        .map(SecretString::from)
        .ok_or_else(|| ApiError::InvalidRequest("field token is required".into()))
}

/// The RFC 8414 metadata; endpoints are under the issuer, which is the service's base URL.
pub(super) fn metadata(policy: &TokenPolicy) -> Value {
    let base = policy.issuer.trim_end_matches('/');
    let auth_methods = json!(["client_secret_basic", "client_secret_post"]);
    json!({
        "issuer": policy.issuer,
        "token_endpoint": format!("{base}/oauth2/token"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
    })
}
