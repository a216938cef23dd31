//! The OAuth2 routes, on the same logic as `/auth/*`:
//! client credentials (RFC 6749 §4.4) is a login, introspection (RFC 7662) a
//! verify, revocation (RFC 7009) a revoke by token limited to the client's
//! own tokens, and the metadata document (RFC 8414) says where they are.

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::config::TokenPolicy;
use crate::domain::introspect::{self, Introspection};
use crate::domain::login::{self, LoginRequest};
use crate::domain::revoke::{self, RevokeRequest};
use crate::domain::{App, Error};
use crate::http::body::Fields;
use crate::http::credential::client_credentials;
use crate::http::error::ApiError;
use crate::http::response::{issued_body, revoked_body, verified_body};
use crate::telemetry::Audit;

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
        Err(Error::SessionConflict) => Err(ApiError::InvalidRequest(
            ApiError::from(Error::SessionConflict).description(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn introspect(
    app: &App,
    basic: Option<&str>,
    fields: &Fields,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let client = client_credentials(basic, fields)?;
    let token = fields.text("token")?;
    match introspect::introspect(app, &client.api_key, token, audit).await? {
        Introspection::Active(v) => {
            let mut body = verified_body(&v);
            body.insert("client_id".into(), json!(v.claims.sub));
            body.insert("iss".into(), json!(v.claims.iss));
            body.insert("token_type".into(), json!("Bearer"));
            if let Some(aud) = &v.claims.aud {
                body.insert("aud".into(), json!(aud));
            }
            Ok(Value::Object(body))
        }
        Introspection::Inactive => Ok(json!({"active": false})),
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
