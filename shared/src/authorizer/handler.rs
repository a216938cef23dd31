//! The handler: one event in, a token check, one decision and one log line out.

use std::time::Instant;

use serde_json::Value;

use crate::domain::scope::Scopes;
use crate::domain::token::TokenError;
use crate::domain::verify::{self, Verified};
use crate::domain::{App, Error};
use crate::telemetry::{Audit, RequestLine, metrics};

use super::event::{Event, PolicyEvent, RequestRoute, Shape, bearer};
use super::policy::{
    AuthContext, AuthorizerResponse, PolicyDocument, PolicyResponse, PolicyScope, SimpleResponse,
};
use super::{AuthorizerConfig, AuthorizerError, RouteScopes};

/// How one call ended, for the log line.
struct Outcome {
    kind: &'static str,
    route: Option<String>,
    /// The listed route the call is for, as the metrics' `Route`; `None`:
    /// none is listed or the event does not say (a REST TOKEN event).
    metric_route: Option<String>,
    outcome: &'static str,
    error: Option<&'static str>,
    detail: Option<String>,
    allowed_routes: Option<usize>,
}

impl Outcome {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            route: None,
            metric_route: None,
            outcome: "error",
            error: None,
            detail: None,
            allowed_routes: None,
        }
    }

    fn failed(&mut self, outcome: &'static str, error: &Error) {
        self.outcome = outcome;
        self.error = Some(error.code());
        if error.is_failure() {
            self.detail = Some(error.source_chain());
        }
    }
}

/// The authorizer: the service's state and the route map, built once per cold start.
#[derive(Clone)]
pub struct Authorizer {
    app: App,
    routes: RouteScopes,
    policies: PolicyScope,
}

impl Authorizer {
    /// An authorizer checking tokens with `app` against `routes`, answering
    /// IAM-policy events with policies for the called method alone.
    pub fn new(app: App, routes: RouteScopes) -> Self {
        Self {
            app,
            routes,
            policies: PolicyScope::Request,
        }
    }

    /// An authorizer with a checked configuration (see [`AuthorizerConfig`]).
    pub fn with_config(app: App, config: AuthorizerConfig) -> Self {
        Self {
            app,
            policies: config.policies(),
            routes: config.routes,
        }
    }

    /// Handles one event of any of the four shapes (see the module docs).
    /// Writes one log line (kind, route, outcome, key id, session id,
    /// latency), never the token.
    ///
    /// # Errors
    /// See [`AuthorizerError`]. HTTP API calls only fail on a malformed
    /// event; an event of no known shape is [`AuthorizerError::Internal`].
    pub async fn handle(
        &self,
        event: Value,
        request_id: &str,
    ) -> Result<AuthorizerResponse, AuthorizerError> {
        let started = Instant::now();
        let mut audit = Audit::default();
        let work = async {
            match Event::parse(event) {
                Err(e) => {
                    let mut log = Outcome::new(e.shape.map_or("unknown", Shape::kind));
                    log.detail = Some(e.detail);
                    (Err(AuthorizerError::Internal), log)
                }
                Ok(Event::HttpV2 {
                    route_key,
                    authorization,
                }) => {
                    self.simple(route_key, authorization.as_deref(), &mut audit)
                        .await
                }
                Ok(Event::Policy(event)) => self.policy(event, &mut audit).await,
            }
        };
        let ((result, log), dynamodb_calls) = metrics::counting_calls(work).await;
        RequestLine {
            function: "authorizer",
            kind: Some(log.kind),
            route: log.route.as_deref().unwrap_or("unknown"),
            metric_route: log.metric_route.as_deref().unwrap_or("unknown"),
            method: None,
            status: None,
            outcome: log.outcome,
            error: log.error,
            detail: log.detail,
            allowed_routes: log.allowed_routes,
            audit: &audit,
            latency: started.elapsed(),
            dynamodb_calls,
            request_id,
        }
        .emit("authorize");
        result
    }

    async fn simple(
        &self,
        route: Option<String>,
        authorization: Option<&str>,
        audit: &mut Audit,
    ) -> (Result<AuthorizerResponse, AuthorizerError>, Outcome) {
        let mut log = Outcome::new(Shape::HttpV2.kind());
        let deny = Ok(AuthorizerResponse::Simple(SimpleResponse {
            is_authorized: false,
            context: None,
        }));
        let required = route
            .as_deref()
            .and_then(|route| self.routes.required(route))
            .cloned();
        log.metric_route = route
            .as_deref()
            .and_then(|r| self.routes.route(r))
            .map(|(listed, _)| listed.to_string());
        log.route = route;
        let Some(required) = required else {
            log.outcome = "deny";
            log.error = Some("route_not_configured");
            return (deny, log);
        };
        let required = (!required.is_empty()).then(|| required.to_string());
        match verify::verify(&self.app, bearer(authorization), required.as_deref(), audit).await {
            Ok(verified) => {
                log.outcome = "allow";
                let context = Some(AuthContext::from(&verified));
                (
                    Ok(AuthorizerResponse::Simple(SimpleResponse {
                        is_authorized: true,
                        context,
                    })),
                    log,
                )
            }
            Err(e) => {
                let outcome = if e.is_failure() {
                    "unavailable"
                } else {
                    "deny"
                };
                log.failed(outcome, &e);
                (deny, log)
            }
        }
    }

    async fn policy(
        &self,
        event: PolicyEvent,
        audit: &mut Audit,
    ) -> (Result<AuthorizerResponse, AuthorizerError>, Outcome) {
        let mut log = Outcome::new(event.shape.kind());
        log.route = Some(event.method_arn.route());
        log.metric_route = match &event.route {
            RequestRoute::Key(key) => key.as_deref().and_then(|k| self.routes.route(k)),
            RequestRoute::Rest { method, resource } => self.routes.rest_route(method, resource),
            RequestRoute::PathOnly => None,
        }
        .map(|(listed, _)| listed.to_string());
        let (verified, held) = match self.claims(event.authorization.as_deref(), audit).await {
            Ok(found) => found,
            Err(e) => {
                let (outcome, error) = match &e {
                    Error::InvalidToken(_) => ("unauthorized", AuthorizerError::Unauthorized),
                    Error::Unavailable(_) => ("unavailable", AuthorizerError::Unavailable),
                    _ => ("error", AuthorizerError::Internal),
                };
                // Payload 1.0 answers like payload 2.0: every failure is a 403.
                if event.shape == Shape::HttpV1 {
                    log.failed(
                        if outcome == "unavailable" {
                            outcome
                        } else {
                            "deny"
                        },
                        &e,
                    );
                    let denied = PolicyResponse {
                        principal_id: "anonymous".into(),
                        policy_document: PolicyDocument::deny(&event.method_arn),
                        context: None,
                    };
                    return (Ok(AuthorizerResponse::Policy(denied)), log);
                }
                log.failed(outcome, &e);
                return (Err(error), log);
            }
        };
        let (policy_document, decision) = match self.policies {
            PolicyScope::Request => {
                PolicyDocument::for_request(&self.routes, &event.route, &event.method_arn, &held)
            }
            PolicyScope::Stage => {
                PolicyDocument::for_stage(&self.routes, event.method_arn.stage_prefix(), &held)
            }
        };
        let allowed = policy_document.allowed_resources();
        log.outcome = if allowed > 0 { "allow" } else { "deny" };
        log.error = decision.error();
        log.allowed_routes = Some(allowed);
        (
            Ok(AuthorizerResponse::Policy(PolicyResponse {
                principal_id: verified.claims.sub.clone(),
                policy_document,
                context: Some(AuthContext::from(&verified)),
            })),
            log,
        )
    }

    /// A valid token in `authorization`, and the scopes it holds.
    async fn claims(
        &self,
        authorization: Option<&str>,
        audit: &mut Audit,
    ) -> Result<(Verified, Scopes), Error> {
        let verified = verify::verify(&self.app, bearer(authorization), None, audit).await?;
        let scope = &verified.claims.scope;
        let held = if scope.is_empty() {
            Ok(Scopes::default())
        } else {
            Scopes::parse(scope)
        };
        let held = held.map_err(|_| Error::InvalidToken(TokenError::Claims))?;
        Ok((verified, held))
    }
}
