//! The `/admin/v1/*` routes of the management API: paths with parameters
//! matched without slicing, the bearer token verified before anything else
//! (then the route's scope, then ownership: see [`crate::domain::manage`]),
//! JSON in and out. Views never hold a secret or a hash; times are RFC 3339
//! UTC and absent values `null`.

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{Reply, bearer_of};
use crate::domain::api_key::KeyRecord;
use crate::domain::audit::AuditEvent;
use crate::domain::manage::{
    self, AUDIT_READ, CreateRequest, KEYS_READ, KEYS_WRITE, KeyFilter, KeyPatch, PORTAL, Paging,
    RequestInfo, SessionView, Status, format_time, format_time_ms,
};
use crate::domain::portal;
use crate::domain::{App, Error};
use crate::http::body::Fields;
use crate::http::credential::Credential;
use crate::http::error::ApiError;
use crate::telemetry::Audit;

/// Where the management API's paths start, after any stage prefix.
pub const PREFIX: &str = "/admin/v1";

/// One of the management API's endpoints, with its path parameters as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `/admin/v1/keys`.
    Keys,
    /// `/admin/v1/keys/{key_id}`.
    Key(&'a str),
    /// `/admin/v1/keys/{key_id}/rotate`.
    Rotate(&'a str),
    /// `/admin/v1/keys/{key_id}/revoke`.
    RevokeKey(&'a str),
    /// `/admin/v1/keys/{key_id}/sessions`.
    Sessions(&'a str),
    /// `/admin/v1/keys/{key_id}/sessions/revoke`.
    RevokeSessions(&'a str),
    /// `/admin/v1/keys/{key_id}/sessions/{session_id}/revoke`.
    RevokeSession(&'a str, &'a str),
    /// `/admin/v1/events`.
    Events,
    /// `/admin/v1/portal-sessions`.
    PortalSessions,
    /// `/admin/v1/portal-sessions/exchange`: the one route without a token.
    PortalExchange,
}

impl<'a> Endpoint<'a> {
    /// The endpoint `path` names: its first `/admin/v1` segments and what
    /// follows them, so a stage or URL prefix before it is allowed. Split
    /// into segments, never sliced, so any text gets an answer.
    pub fn of(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let start = segments.windows(2).position(|w| w == ["admin", "v1"])?;
        match segments.get(start.saturating_add(2)..)? {
            ["keys"] => Some(Self::Keys),
            ["keys", id] => Some(Self::Key(id)),
            ["keys", id, "rotate"] => Some(Self::Rotate(id)),
            ["keys", id, "revoke"] => Some(Self::RevokeKey(id)),
            ["keys", id, "sessions"] => Some(Self::Sessions(id)),
            ["keys", id, "sessions", "revoke"] => Some(Self::RevokeSessions(id)),
            ["keys", id, "sessions", session, "revoke"] => Some(Self::RevokeSession(id, session)),
            ["events"] => Some(Self::Events),
            ["portal-sessions"] => Some(Self::PortalSessions),
            ["portal-sessions", "exchange"] => Some(Self::PortalExchange),
            _ => None,
        }
    }

    /// The path template, as documented and logged.
    pub fn template(self) -> &'static str {
        match self {
            Self::Keys => "/admin/v1/keys",
            Self::Key(_) => "/admin/v1/keys/{key_id}",
            Self::Rotate(_) => "/admin/v1/keys/{key_id}/rotate",
            Self::RevokeKey(_) => "/admin/v1/keys/{key_id}/revoke",
            Self::Sessions(_) => "/admin/v1/keys/{key_id}/sessions",
            Self::RevokeSessions(_) => "/admin/v1/keys/{key_id}/sessions/revoke",
            Self::RevokeSession(..) => "/admin/v1/keys/{key_id}/sessions/{session_id}/revoke",
            Self::Events => "/admin/v1/events",
            Self::PortalSessions => "/admin/v1/portal-sessions",
            Self::PortalExchange => "/admin/v1/portal-sessions/exchange",
        }
    }

    /// Every template, for a server or a document that lists them all.
    pub const TEMPLATES: &'static [&'static str] = &[
        "/admin/v1/keys",
        "/admin/v1/keys/{key_id}",
        "/admin/v1/keys/{key_id}/rotate",
        "/admin/v1/keys/{key_id}/revoke",
        "/admin/v1/keys/{key_id}/sessions",
        "/admin/v1/keys/{key_id}/sessions/revoke",
        "/admin/v1/keys/{key_id}/sessions/{session_id}/revoke",
        "/admin/v1/events",
        "/admin/v1/portal-sessions",
        "/admin/v1/portal-sessions/exchange",
    ];

    /// The `Allow` header value.
    fn allow(self) -> &'static str {
        match self {
            Self::Keys => "GET, POST",
            Self::Key(_) => "GET, PATCH",
            Self::Sessions(_) | Self::Events => "GET",
            _ => "POST",
        }
    }

    /// The scope `method` needs here; `None` when the endpoint does not take it.
    fn scope(self, method: &Method) -> Option<&'static str> {
        let (get, post, patch) = (
            method == Method::GET,
            method == Method::POST,
            method == Method::PATCH,
        );
        match self {
            Self::Keys if get => Some(KEYS_READ),
            Self::Keys if post => Some(KEYS_WRITE),
            Self::Key(_) if get => Some(KEYS_READ),
            Self::Key(_) if patch => Some(KEYS_WRITE),
            Self::Sessions(_) if get => Some(KEYS_READ),
            Self::Events if get => Some(AUDIT_READ),
            Self::PortalSessions if post => Some(PORTAL),
            Self::Rotate(_)
            | Self::RevokeKey(_)
            | Self::RevokeSessions(_)
            | Self::RevokeSession(..)
                if post =>
            {
                Some(KEYS_WRITE)
            }
            _ => None,
        }
    }

    /// Whether a customer portal session may use this endpoint with
    /// `method`: its owner's keys, their sessions and events, never a
    /// change of a key's owner or metadata (a PATCH) nor a portal link.
    fn portal_may(self, method: &Method) -> bool {
        !matches!(
            (self, method),
            (Self::Key(_), &Method::PATCH) | (Self::PortalSessions, _)
        )
    }
}

/// Serves one admin request: routing and method, then the token and the
/// route's scope, then the body and query, then the use case.
pub(super) async fn handle(
    app: &App,
    request: &Request,
    credential: Credential<'_>,
    audit: &mut Audit,
) -> Result<Reply, ApiError> {
    let path = request.uri().path();
    let endpoint = Endpoint::of(path).ok_or(ApiError::NotFound)?;
    let method = request.method();
    let body = || {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Fields::json(
            content_type,
            request.body().as_ref(),
            method == Method::PATCH,
        )
    };
    if endpoint == Endpoint::PortalExchange {
        if method != Method::POST {
            return Err(ApiError::MethodNotAllowed("POST"));
        }
        return exchange(app, &body()?).await;
    }
    let scope = endpoint
        .scope(method)
        .ok_or(ApiError::MethodNotAllowed(endpoint.allow()))?;
    let token = bearer_of(credential)?;
    let info = RequestInfo {
        request_id: audit.request_id.clone(),
        source_ip: source_ip(request),
    };
    let caller = manage::authorize(
        app,
        token.as_ref().map(|t| t.expose_secret()),
        scope,
        endpoint.portal_may(method),
        info,
        audit,
    )
    .await?;
    let query = Fields::query(request.uri().query().unwrap_or(""))?;
    let paging =
        || Paging::parse(query.text("limit")?, query.text("cursor")?).map_err(ApiError::from);
    let now = || app.clock.now().map_err(|e| ApiError::from(Error::from(e)));
    match endpoint {
        Endpoint::Keys if method == Method::POST => {
            let made = manage::create(app, &caller, CreateRequest::from_json(&body()?)?).await?;
            let location = format!("{}/{}", path.trim_end_matches('/'), made.record.id);
            let body = json!({
                "key": key_view(&made.record, now()?),
                "api_key": made.api_key.expose().expose_secret(),
            });
            Ok(Reply {
                status: StatusCode::CREATED,
                body,
                location: Some(location),
            })
        }
        Endpoint::Keys => {
            let filter = KeyFilter::parse(query.text("owner")?, query.text("status")?)?;
            let page = manage::list_keys(app, &caller, filter, paging()?).await?;
            let now = now()?;
            let keys: Vec<Value> = page.items.iter().map(|k| key_view(k, now)).collect();
            Ok(json!({"keys": keys, "next_cursor": page.next_cursor}).into())
        }
        Endpoint::Key(id) if method == Method::PATCH => {
            let patch = KeyPatch::from_json(&body()?, now()?)?;
            let record = manage::patch(app, &caller, id, patch).await?;
            Ok(key_view(&record, now()?).into())
        }
        Endpoint::Key(id) => Ok(key_view(&manage::show(app, &caller, id).await?, now()?).into()),
        Endpoint::Rotate(id) => {
            let grace = manage::grace_from_json(&body()?)?;
            let rotated = manage::rotate(app, &caller, id, grace).await?;
            let until = rotated.record.previous_secret.as_ref().map(|(_, u)| *u);
            Ok(json!({
                "previous_secret_valid_until": until.and_then(format_time),
                "key": key_view(&rotated.record, now()?),
                "api_key": rotated.api_key.expose().expose_secret(),
            })
            .into())
        }
        Endpoint::RevokeKey(id) => {
            no_body(&body()?)?;
            let revoked = manage::revoke(app, &caller, id).await?;
            audit.tally.revocations = 1;
            Ok(key_view(&revoked, now()?).into())
        }
        Endpoint::Sessions(id) => {
            let page = manage::sessions(app, &caller, id, paging()?).await?;
            let sessions: Vec<Value> = page.items.iter().map(session_view).collect();
            Ok(json!({"sessions": sessions, "next_cursor": page.next_cursor}).into())
        }
        Endpoint::RevokeSession(id, session) => {
            no_body(&body()?)?;
            let revoked = manage::revoke_session(app, &caller, id, session).await?;
            audit.tally.revocations = u32::from(revoked);
            Ok(json!({"revoked": revoked}).into())
        }
        Endpoint::RevokeSessions(id) => {
            no_body(&body()?)?;
            let ended = manage::revoke_sessions(app, &caller, id).await?;
            audit.tally.revocations = 1;
            Ok(json!({"revoked": ended > 0, "sessions_revoked": ended}).into())
        }
        Endpoint::Events => {
            let (key_id, owner) = (query.text("key_id")?, query.text("owner")?);
            let page = manage::events(app, &caller, key_id, owner, paging()?).await?;
            let events: Vec<Value> = page.items.iter().map(event_view).collect();
            Ok(json!({"events": events, "next_cursor": page.next_cursor}).into())
        }
        Endpoint::PortalSessions => {
            let link =
                manage::create_portal_link(app, &caller, manage::link_request_from_json(&body()?)?)
                    .await?;
            Ok(Reply {
                status: StatusCode::CREATED,
                body: json!({
                    "url": link.url.expose_secret(),
                    "expires_at": format_time(link.expires_at),
                }),
                location: None,
            })
        }
        Endpoint::PortalExchange => Err(ApiError::NotFound),
    }
}

/// Trades `{"code"}` for a portal token.
async fn exchange(app: &App, body: &Map<String, Value>) -> Result<Reply, ApiError> {
    let exchanged = portal::exchange(app, manage::code_from_json(body)?).await?;
    let link = &exchanged.link;
    Ok(json!({
        "access_token": exchanged.token.expose_secret(),
        "token_type": "Bearer",
        "expires_in": exchanged.expires_in,
        "owner": link.owner,
        "allowed_scopes": link.allowed_scopes.to_string(),
        "return_url": link.return_url,
        "max_keys": app.admin.portal_max_keys,
    })
    .into())
}

/// A POST that takes no fields: an empty object or no body.
fn no_body(body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(
            "this route takes no fields".into(),
        ))
    }
}

/// The caller's address as API Gateway saw it; none locally.
fn source_ip(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
        _ => None,
    }
}

/// A key as the management API shows it: never a secret or a hash.
pub fn key_view(r: &KeyRecord, now: u64) -> Value {
    let previous_until = r
        .previous_secret
        .as_ref()
        .map(|(_, until)| *until)
        .filter(|until| *until > now);
    json!({
        "key_id": r.id,
        "name": r.name,
        "owner": r.owner,
        "scopes": r.scopes.to_string(),
        "status": Status::of(r, now).as_str(),
        "created_at": format_time(r.created_at),
        "expires_at": r.expires_at.and_then(format_time),
        "last_used_at": r.last_used_at.and_then(format_time),
        "meta": r.meta,
        "previous_secret_valid_until": previous_until.and_then(format_time),
        "created_by": r.created_by,
    })
}

fn session_view(s: &SessionView) -> Value {
    json!({
        "session_id": s.session_id,
        "scope": s.scope,
        "issued_at": format_time(s.issued_at),
        "expires_at": format_time(s.expires_at),
    })
}

fn event_view(e: &AuditEvent) -> Value {
    json!({
        "id": e.id,
        "time": format_time_ms(e.time_ms),
        "action": e.action,
        "actor": e.actor,
        "key_id": e.key_id,
        "owner": e.owner,
        "session_id": e.session_id,
        "request_id": e.request_id,
        "source_ip": e.source_ip,
        "changes": e.changes,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_path_names_its_endpoint_with_its_parameters_behind_any_prefix() {
        let id = "0123456789abcdef";
        for (path, want) in [
            ("/admin/v1/keys", Some(Endpoint::Keys)),
            ("/admin/v1/keys/", Some(Endpoint::Keys)),
            ("/prod/admin/v1/keys", Some(Endpoint::Keys)),
            ("/admin/v1/events", Some(Endpoint::Events)),
            ("/admin/v1/portal-sessions", Some(Endpoint::PortalSessions)),
            (
                "/x/admin/v1/portal-sessions/exchange/",
                Some(Endpoint::PortalExchange),
            ),
            ("/admin/v1/portal-sessions/a", None),
            ("/admin/v1/keys/0123456789abcdef", Some(Endpoint::Key(id))),
            (
                "/admin/v1/keys/0123456789abcdef/rotate",
                Some(Endpoint::Rotate(id)),
            ),
            (
                "/admin/v1/keys/0123456789abcdef/revoke",
                Some(Endpoint::RevokeKey(id)),
            ),
            (
                "/admin/v1/keys/0123456789abcdef/sessions",
                Some(Endpoint::Sessions(id)),
            ),
            (
                "/admin/v1/keys/0123456789abcdef/sessions/revoke",
                Some(Endpoint::RevokeSessions(id)),
            ),
            (
                "/admin/v1/keys/0123456789abcdef/sessions/revoke/revoke",
                Some(Endpoint::RevokeSession(id, "revoke")),
            ),
            ("/admin/v1", None),
            ("/admin/v1/", None),
            ("/admin/v2/keys", None),
            ("/admin/v1//keys", None),
            ("/admin/v1/keys/a/b", None),
            ("/admin/v1/keys/a/sessions/b", None),
            ("/v1/admin/keys", None),
            ("", None),
        ] {
            assert_eq!(Endpoint::of(path), want, "{path:?}");
        }
    }

    #[test]
    fn every_endpoint_has_its_template_listed() {
        let id = "0123456789abcdef";
        for endpoint in [
            Endpoint::Keys,
            Endpoint::Key(id),
            Endpoint::Rotate(id),
            Endpoint::RevokeKey(id),
            Endpoint::Sessions(id),
            Endpoint::RevokeSessions(id),
            Endpoint::RevokeSession(id, "s"),
            Endpoint::Events,
            Endpoint::PortalSessions,
            Endpoint::PortalExchange,
        ] {
            assert!(
                Endpoint::TEMPLATES.contains(&endpoint.template()),
                "{endpoint:?}"
            );
            let path = endpoint
                .template()
                .replace("{key_id}", id)
                .replace("{session_id}", "s");
            assert_eq!(Endpoint::of(&path), Some(endpoint));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        #[test]
        fn any_path_is_no_endpoint_or_one_whose_parameters_are_segments_of_it(
            path in prop_oneof![
                any::<String>(),
                "(/[a-z0-9é]{0,3})?/admin/v1(/(keys|sessions|revoke|rotate|events|portal-sessions|exchange|é|[0-9a-f]{1,16}|)){0,6}/?",
            ],
        ) {
            if let Some(endpoint) = Endpoint::of(&path) {
                let segments: Vec<&str> = path.split('/').collect();
                let params = match endpoint {
                    Endpoint::Keys | Endpoint::Events | Endpoint::PortalSessions
                    | Endpoint::PortalExchange => vec![],
                    Endpoint::Key(k) | Endpoint::Rotate(k) | Endpoint::RevokeKey(k)
                    | Endpoint::Sessions(k) | Endpoint::RevokeSessions(k) => vec![k],
                    Endpoint::RevokeSession(k, s) => vec![k, s],
                };
                for p in params {
                    prop_assert!(segments.contains(&p));
                }
                prop_assert!(path.contains("/admin/v1/"));
            }
        }
    }
}
