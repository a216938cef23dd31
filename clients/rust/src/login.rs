//! The service's HTTP calls: login (`/auth/login` or `/oauth2/token`) and
//! revoke, with their answers turned into a [`Granted`] or an [`Error`].

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Response, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Action, Error};
use crate::schedule::Granted;
use crate::token::AccessToken;

/// Where and how a source logs in.
pub(crate) struct Service {
    pub(crate) http: reqwest::Client,
    pub(crate) login_url: Url,
    pub(crate) revoke_url: Url,
    pub(crate) oauth2: bool,
    pub(crate) api_key: SecretString,
    pub(crate) session_id: String,
    pub(crate) scope: Option<String>,
}

/// `POST /auth/login`'s body. No `Debug`: it holds the key.
#[derive(Serialize)]
struct LoginBody<'a> {
    api_key: &'a str,
    session_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// A login's success body. No `Debug`: it holds the token.
#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

/// The service's error body (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Service {
    /// One login request.
    pub(crate) async fn login(&self) -> Result<Granted, Error> {
        let key = self.api_key.expose_secret();
        let request = if self.oauth2 {
            // client_secret_post: the key id is the key's public part.
            let client_id = key_id(key).unwrap_or_default();
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", key),
                ("session_id", self.session_id.as_str()),
            ];
            if let Some(scope) = &self.scope {
                form.push(("scope", scope));
            }
            self.http.post(self.login_url.clone()).form(&form)
        } else {
            let body = LoginBody {
                api_key: key,
                session_id: &self.session_id,
                scope: self.scope.as_deref(),
            };
            self.http.post(self.login_url.clone()).json(&body)
        };
        let response = request
            .send()
            .await
            .map_err(|e| Error::unreachable(Action::Login, e))?;
        let body = checked(Action::Login, response).await?;
        let body: TokenBody = serde_json::from_slice(&body).map_err(|_| {
            Error::new(
                Action::Login,
                Error::INVALID_RESPONSE,
                "the answer is not a token",
            )
        })?;
        // Refused here, a token that cannot go in a header would fail every request later.
        if !body.token_type.eq_ignore_ascii_case("bearer")
            || HeaderValue::from_str(&body.access_token).is_err()
        {
            return Err(Error::new(
                Action::Login,
                Error::INVALID_RESPONSE,
                "the answer is not a bearer token",
            ));
        }
        Ok(Granted {
            token: AccessToken::new(body.access_token),
            expires_in: Duration::from_secs(body.expires_in),
        })
    }

    /// `POST /auth/revoke` with the token: ends its session.
    pub(crate) async fn revoke(&self, token: &AccessToken) -> Result<(), Error> {
        let response = self
            .http
            .post(self.revoke_url.clone())
            .header(AUTHORIZATION, bearer(token)?)
            .send()
            .await
            .map_err(|e| Error::unreachable(Action::Revoke, e))?;
        checked(Action::Revoke, response).await.map(drop)
    }
}

/// `Bearer <token>`, marked sensitive so that no `Debug` of the headers shows it.
pub(crate) fn bearer(token: &AccessToken) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str())).map_err(|_| {
        Error::new(
            Action::Login,
            Error::INVALID_RESPONSE,
            "the token is not a header value",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The body of a 2xx answer, or the error it carries.
async fn checked(action: Action, response: Response) -> Result<Vec<u8>, Error> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::unreachable(action, e))?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let code = status.as_u16();
    Err(match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(refusal) => Error::new(
            action,
            refusal.error,
            refusal
                .error_description
                .unwrap_or_else(|| "no description".into()),
        ),
        // No error code: a proxy or load balancer answered, not the service.
        Err(_) if status.is_server_error() => {
            Error::new(action, Error::UNREACHABLE, "the service is unavailable")
        }
        Err(_) => Error::new(
            action,
            Error::INVALID_RESPONSE,
            "the answer is not the service's",
        ),
    }
    .with_status(code))
}

/// The key id in `bauth_<id>_<secret>_<checksum>`; a malformed key gets
/// none, and the server says `invalid_client`.
fn key_id(key: &str) -> Option<&str> {
    key.strip_prefix("bauth_")?.split('_').next()
}

#[cfg(test)]
mod tests {
    use super::key_id;

    #[test]
    fn the_key_id_is_the_part_after_the_prefix() {
        assert_eq!(key_id("bauth_0123abcd_secret_check"), Some("0123abcd"));
        assert_eq!(key_id("other_0123"), None);
    }
}
