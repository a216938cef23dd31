//! The authorizer's answers: HTTP API simple responses and IAM policies.
//!
//! IAM matches a policy's `Resource` against the method ARN
//! (`arn:…:API/STAGE/METHOD/path`) with two wildcards, and both cross `/`:
//! `*` is any run of characters, `?` any one. So no resource pattern means
//! "one path segment": `GET/v1/documents/*` also matches
//! `GET/v1/documents/42/admin`, and a Deny of `GET/v1/documents/*/*` to stop
//! that would also deny a listed `GET /v1/documents/{id}/versions`. What a
//! pattern can say exactly is one literal ARN. Hence two kinds of policy:
//!
//! - [`PolicyScope::Request`] (the default): the policy names exactly the
//!   called methodArn, allowed or denied. Correct for every route map, and
//!   safe whatever API Gateway caches: reused for another request, it allows
//!   nothing but that one ARN, which this token was judged to reach.
//! - [`PolicyScope::Stage`]: one policy per token for every route of the
//!   stage, for authorizers with a result TTL (a TOKEN authorizer's cached
//!   policy is reused for every method and path). Only literal routes can be
//!   expressed, one ARN each, so a map with a path parameter is refused at
//!   init (see [`super::AuthorizerConfig`]).

use serde::Serialize;

use crate::domain::scope::Scopes;
use crate::domain::verify::Verified;

use super::event::{MethodArn, RequestRoute};
use super::routes::{Coverage, RouteScopes};

/// What the authorizer tells API Gateway about the caller: ids and scope, all public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthContext {
    /// The API key id.
    pub sub: String,
    /// The session id.
    pub session_id: String,
    /// The token's scopes, space-separated.
    pub scope: String,
    /// The token id.
    pub jti: String,
    /// The key's owner, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The key's metadata as JSON text (context values are scalars), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
}

impl From<&Verified> for AuthContext {
    fn from(v: &Verified) -> Self {
        Self {
            sub: v.claims.sub.clone(),
            session_id: v.claims.sid.clone(),
            scope: v.claims.scope.clone(),
            jti: v.claims.jti.clone(),
            owner: v.owner.as_ref().map(|o| o.to_string()),
            meta: v.meta.as_ref().map(|m| m.to_json()),
        }
    }
}

/// An HTTP API simple response (payload 2.0, `EnableSimpleResponses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleResponse {
    /// Whether API Gateway lets the request through; `false` is a 403.
    pub is_authorized: bool,
    /// Who the caller is; only when authorized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthContext>,
}

/// One statement of an IAM policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Always `execute-api:Invoke`.
    pub action: &'static str,
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// Resource ARNs.
    pub resource: Vec<String>,
}

/// An IAM policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// Always `2012-10-17`.
    pub version: &'static str,
    /// One statement: Allow of literal ARNs, or Deny.
    pub statement: Vec<Statement>,
}

/// Which requests a policy is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyScope {
    /// Just the called methodArn: any route map, result TTL 0.
    #[default]
    Request,
    /// Every route of the stage, for cached policies: literal routes only.
    Stage,
}

/// Why a policy allows or denies, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The token's scopes cover the route.
    Allow,
    /// A listed route, but the token lacks a scope.
    InsufficientScope,
    /// No listed route.
    RouteNotConfigured,
    /// The methodArn's path holds `*` or `?`, which IAM would read as wildcards.
    WildcardInPath,
    /// The route the event names does not fit its own methodArn.
    RouteMismatch,
}

impl Decision {
    /// The `error` field of the log line; `None` for an allow.
    pub fn error(self) -> Option<&'static str> {
        match self {
            Self::Allow => None,
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::RouteNotConfigured => Some("route_not_configured"),
            Self::WildcardInPath => Some("wildcard_in_path"),
            Self::RouteMismatch => Some("route_mismatch"),
        }
    }
}

fn statement(effect: &'static str, resource: Vec<String>) -> PolicyDocument {
    PolicyDocument {
        version: "2012-10-17",
        statement: vec![Statement {
            action: "execute-api:Invoke",
            effect,
            resource,
        }],
    }
}

impl PolicyDocument {
    /// The policy for one request: Allow exactly its methodArn when the route
    /// the event names (or, for a TOKEN event, every listed route its path
    /// fits) is covered by `held`; otherwise Deny that ARN.
    pub fn for_request(
        routes: &RouteScopes,
        route: &RequestRoute,
        arn: &MethodArn,
        held: &Scopes,
    ) -> (Self, Decision) {
        let other_method =
            matches!(route, RequestRoute::Rest { method, .. } if method != arn.method());
        let decision = if !arn.is_literal() {
            Decision::WildcardInPath
        } else if other_method {
            Decision::RouteMismatch
        } else {
            let named = match route {
                RequestRoute::PathOnly => None,
                RequestRoute::Key(key) => Some(key.as_deref().and_then(|k| routes.route(k))),
                RequestRoute::Rest { method, resource } => {
                    Some(routes.rest_route(method, resource))
                }
            };
            let coverage = match named {
                None => Ok(routes.coverage(arn.method(), arn.path(), held)),
                Some(None) => Ok(Coverage::Unlisted),
                Some(Some((key, _))) if !key.matches(arn.method(), arn.path()) => Err(()),
                Some(Some((_, required))) if required.is_subset(held) => Ok(Coverage::Allowed),
                Some(Some(_)) => Ok(Coverage::Refused),
            };
            match coverage {
                Ok(Coverage::Allowed) => Decision::Allow,
                Ok(Coverage::Refused) => Decision::InsufficientScope,
                Ok(Coverage::Unlisted) => Decision::RouteNotConfigured,
                Err(()) => Decision::RouteMismatch,
            }
        };
        let effect = if decision == Decision::Allow {
            "Allow"
        } else {
            "Deny"
        };
        (statement(effect, vec![arn.arn().to_owned()]), decision)
    }

    /// The policy for every route of the stage: Allow the literal ARN of each
    /// listed route without parameters whose scopes `held` covers; when there
    /// is none, Deny the whole stage. Routes with parameters are never
    /// allowed here (the configuration refuses them with this scope).
    pub fn for_stage(routes: &RouteScopes, stage_prefix: &str, held: &Scopes) -> (Self, Decision) {
        let allowed: Vec<String> = routes
            .allowed_literals(held)
            .into_iter()
            .map(|(method, path)| format!("{stage_prefix}{method}{path}"))
            .collect();
        if allowed.is_empty() {
            (
                statement("Deny", vec![format!("{stage_prefix}*/*")]),
                Decision::InsufficientScope,
            )
        } else {
            (statement("Allow", allowed), Decision::Allow)
        }
    }

    /// A Deny of `arn` alone, for a caller with no valid token (HTTP API
    /// payload 1.0 answers those with a policy, not an error).
    pub fn deny(arn: &MethodArn) -> Self {
        statement("Deny", vec![arn.arn().to_owned()])
    }

    /// How many resources the policy allows.
    pub fn allowed_resources(&self) -> usize {
        self.statement
            .iter()
            .filter(|s| s.effect == "Allow")
            .map(|s| s.resource.len())
            .sum()
    }
}

/// A REST API (or HTTP API payload 1.0) authorizer's answer: the caller and
/// its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    /// The API key id, or `anonymous` for a caller without a valid token.
    pub principal_id: String,
    /// What the caller may invoke.
    pub policy_document: PolicyDocument,
    /// Who the caller is; absent without a valid token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthContext>,
}

/// The authorizer's answer, in the shape of the event it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuthorizerResponse {
    /// To an HTTP API with payload 2.0.
    Simple(SimpleResponse),
    /// To a REST API authorizer or an HTTP API with payload 1.0.
    Policy(PolicyResponse),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/";

    /// IAM's resource matching: `*` any run of characters (including `/` and
    /// none), `?` exactly one, everything else itself.
    fn iam_matches(pattern: &str, arn: &str) -> bool {
        let (p, a) = (pattern.as_bytes(), arn.as_bytes());
        // reach[j]: the pattern's prefix read so far matches arn[..j].
        let mut reach = vec![false; a.len() + 1];
        reach[0] = true;
        for &c in p {
            let mut next = vec![false; a.len() + 1];
            for j in 0..=a.len() {
                match c {
                    b'*' => next[j] = reach[j] || (j > 0 && next[j - 1]),
                    b'?' => next[j] = j > 0 && reach[j - 1],
                    lit => next[j] = j > 0 && reach[j - 1] && a[j - 1] == lit,
                }
            }
            reach = next;
        }
        reach[a.len()]
    }

    /// API Gateway's decision for `method path` under `policy`: an explicit
    /// Deny wins, otherwise it needs an Allow.
    fn decides(policy: &PolicyDocument, method: &str, path: &str) -> bool {
        let arn = format!("{STAGE}{method}{path}");
        let matching = |effect: &str| {
            policy
                .statement
                .iter()
                .any(|s| s.effect == effect && s.resource.iter().any(|r| iam_matches(r, &arn)))
        };
        !matching("Deny") && matching("Allow")
    }

    fn routes(value: &str) -> RouteScopes {
        RouteScopes::parse(value).unwrap()
    }

    fn held(s: &str) -> Scopes {
        if s.is_empty() {
            Scopes::default()
        } else {
            Scopes::parse(s).unwrap()
        }
    }

    fn arn(method: &str, path: &str) -> MethodArn {
        MethodArn::parse(&format!("{STAGE}{method}{path}")).unwrap()
    }

    fn token_policy(map: &str, scopes: &str, method: &str, path: &str) -> PolicyDocument {
        PolicyDocument::for_request(
            &routes(map),
            &RequestRoute::PathOnly,
            &arn(method, path),
            &held(scopes),
        )
        .0
    }

    #[test]
    fn the_iam_matcher_crosses_slashes_as_iam_does() {
        assert!(iam_matches("a/*", "a/b/c"));
        assert!(iam_matches("a/*", "a/"));
        assert!(iam_matches("a/?", "a/b"));
        assert!(iam_matches("a?b", "a/b"));
        assert!(!iam_matches("a/?", "a/bc"));
        assert!(!iam_matches("a/b", "a/bc"));
        assert!(iam_matches("*", ""));
        assert!(iam_matches("GET/*/x", "GET/a/b/x"));
    }

    #[test]
    fn a_read_token_is_not_allowed_an_unlisted_route_below_an_allowed_parameter() {
        let map = "GET /v1/documents/{id}=read;GET /v1/documents/{id}/versions=read";
        for path in ["/v1/documents/42", "/v1/documents/42/versions"] {
            let p = token_policy(map, "read", "GET", path);
            assert!(decides(&p, "GET", path), "{path}: {p:?}");
            assert!(!decides(&p, "GET", "/v1/documents/42/admin"), "{p:?}");
        }
        let p = token_policy(map, "read", "GET", "/v1/documents/42/admin");
        assert!(!decides(&p, "GET", "/v1/documents/42/admin"), "{p:?}");
        assert!(!decides(&p, "GET", "/v1/documents/42"), "{p:?}");
    }

    #[test]
    fn a_request_policy_names_the_called_arn_alone() {
        let p = token_policy(
            "GET /v1/documents/{id}=read",
            "read",
            "GET",
            "/v1/documents/42",
        );
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": [format!("{STAGE}GET/v1/documents/42")],
                }],
            })
        );
        assert!(
            !decides(&p, "GET", "/v1/documents/43"),
            "reused, it allows no other ARN"
        );
    }

    #[test]
    fn a_path_holding_an_iam_wildcard_is_denied() {
        let map = "GET /v1/documents/{id}=read";
        for path in ["/v1/documents/*", "/v1/documents/?"] {
            let (p, decision) = PolicyDocument::for_request(
                &routes(map),
                &RequestRoute::PathOnly,
                &arn("GET", path),
                &held("read"),
            );
            assert_eq!(decision, Decision::WildcardInPath);
            assert!(!p.statement.iter().any(|s| s.effect == "Allow"), "{p:?}");
        }
    }

    #[test]
    fn a_named_route_is_judged_by_its_own_scopes_and_must_fit_its_arn() {
        let map = routes("GET /v1/documents/{id}=read;GET /v1/documents/special=admin");
        let key = |k: &str| RequestRoute::Key(Some(k.into()));
        let judge = |route: &RequestRoute, path: &str, scopes: &str| {
            PolicyDocument::for_request(&map, route, &arn("GET", path), &held(scopes)).1
        };
        assert_eq!(
            judge(&key("GET /v1/documents/{id}"), "/v1/documents/42", "read"),
            Decision::Allow
        );
        assert_eq!(
            judge(
                &key("GET /v1/documents/special"),
                "/v1/documents/special",
                "read"
            ),
            Decision::InsufficientScope
        );
        assert_eq!(
            judge(&key("GET /v1/documents/{id}"), "/v1/documents/42/x", "read"),
            Decision::RouteMismatch
        );
        assert_eq!(
            judge(&key("GET /v1/other"), "/v1/other", "read admin"),
            Decision::RouteNotConfigured
        );
        assert_eq!(
            judge(&RequestRoute::Key(None), "/v1/documents/42", "read"),
            Decision::RouteNotConfigured
        );
        let rest = |method: &str, resource: &str| RequestRoute::Rest {
            method: method.into(),
            resource: resource.into(),
        };
        assert_eq!(
            judge(
                &rest("GET", "/v1/documents/{id}"),
                "/v1/documents/42",
                "read"
            ),
            Decision::Allow
        );
        assert_eq!(
            judge(&rest("GET", "/v1/other"), "/v1/other", "read admin"),
            Decision::RouteNotConfigured
        );
        assert_eq!(
            judge(
                &rest("POST", "/v1/documents/{id}"),
                "/v1/documents/42",
                "read"
            ),
            Decision::RouteMismatch,
            "the event's method must be the ARN's"
        );
        let any = routes("ANY /v1/items=read");
        let (_, decision) = PolicyDocument::for_request(
            &any,
            &rest("DELETE", "/v1/items"),
            &arn("GET", "/v1/items"),
            &held("read"),
        );
        assert_eq!(decision, Decision::RouteMismatch);
    }

    #[test]
    fn a_stage_policy_allows_each_covered_literal_route_and_nothing_else() {
        let map = routes(
            "GET /v1/whoami=read;POST /v1/documents=write documents:write;\
             GET /v1/public=;ANY /v1/items=read",
        );
        let (p, decision) = PolicyDocument::for_stage(&map, STAGE, &held("read"));
        assert_eq!(decision, Decision::Allow);
        assert!(decides(&p, "GET", "/v1/whoami"));
        assert!(decides(&p, "GET", "/v1/public"));
        assert!(decides(&p, "DELETE", "/v1/items"));
        assert!(!decides(&p, "POST", "/v1/documents"));
        assert!(!decides(&p, "GET", "/v1/whoami/x"));
        assert!(!decides(&p, "GET", "/v1/items/x"));
        assert!(
            p.statement
                .iter()
                .flat_map(|s| &s.resource)
                .all(|r| !r.contains(['*', '?']))
        );
    }

    #[test]
    fn a_token_that_may_call_nothing_gets_an_explicit_deny_of_the_stage() {
        let (p, decision) =
            PolicyDocument::for_stage(&routes("POST /v1/documents=write"), STAGE, &held("read"));
        assert_eq!(decision, Decision::InsufficientScope);
        assert_eq!(p.statement[0].effect, "Deny");
        assert_eq!(p.statement[0].resource, vec![format!("{STAGE}*/*")]);
        assert_eq!(p.allowed_resources(), 0);
    }

    /// A route map over a small alphabet of segments, so that routes overlap.
    fn route_map() -> impl Strategy<Value = String> {
        map_of(prop_oneof![
            Just("a"),
            Just("b"),
            Just("{id}"),
            Just("{x}"),
            Just("{rest+}")
        ])
    }

    /// A route map of literal routes only, as a stage policy takes.
    fn literal_route_map() -> impl Strategy<Value = String> {
        map_of(prop_oneof![Just("a"), Just("b"), Just("42")])
    }

    fn map_of(
        segment: impl Strategy<Value = &'static str> + Clone,
    ) -> impl Strategy<Value = String> {
        let route = (
            prop_oneof![Just("GET"), Just("POST"), Just("ANY")],
            prop::collection::vec(segment, 0..4),
            prop_oneof![Just(""), Just("read"), Just("admin"), Just("read admin")],
        )
            .prop_map(|(method, segments, scopes)| {
                format!("{method} /{}={scopes}", segments.join("/"))
            });
        prop::collection::vec(route, 1..6).prop_map(|routes| routes.join(";"))
    }

    /// A request path over the same alphabet, plus strangers and wildcards.
    fn request_path() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just("a"),
            Just("b"),
            Just("42"),
            Just("admin"),
            Just(""),
            Just("*"),
            Just("?"),
        ];
        prop::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/")))
    }

    fn request_method() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("GET"), Just("POST"), Just("DELETE")]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The policy built for one request, and reused by API Gateway for any
        /// other (a cache), allows a method and path only if every listed route
        /// it fits is covered by the token's scopes and at least one fits.
        #[test]
        fn a_request_policy_allows_only_paths_a_covered_listed_route_fits(
            map in route_map(),
            scopes in prop_oneof![Just(""), Just("read"), Just("admin"), Just("read admin")],
            (called_method, called) in (request_method(), request_path()),
            probes in prop::collection::vec((request_method(), request_path()), 1..8),
        ) {
            let Ok(map) = RouteScopes::parse(&map) else {
                // Two spellings of one route: the parser refuses the map.
                return Ok(());
            };
            let held = held(scopes);
            let (policy, _) = PolicyDocument::for_request(
                &map,
                &RequestRoute::PathOnly,
                &arn(called_method, &called),
                &held,
            );
            for (method, path) in probes.iter().map(|(m, p)| (*m, p.as_str())).chain([(called_method, called.as_str())]) {
                if decides(&policy, method, path) {
                    prop_assert_eq!(
                        map.coverage(method, path, &held),
                        Coverage::Allowed,
                        "{} {} allowed by {:?}", method, path, policy
                    );
                }
            }
            let expected = !called.contains(['*', '?'])
                && map.coverage(called_method, &called, &held) == Coverage::Allowed;
            prop_assert_eq!(decides(&policy, called_method, &called), expected);
        }

        /// A stage policy, reused for every route, allows a path only if a
        /// covered listed route fits it, and allows every such path.
        #[test]
        fn a_stage_policy_allows_only_paths_a_covered_listed_route_fits(
            map in literal_route_map(),
            scopes in prop_oneof![Just(""), Just("read"), Just("admin"), Just("read admin")],
            probes in prop::collection::vec((request_method(), request_path()), 1..12),
        ) {
            let Ok(map) = RouteScopes::parse(&map) else {
                return Ok(());
            };
            let held = held(scopes);
            let (policy, _) = PolicyDocument::for_stage(&map, STAGE, &held);
            for (method, path) in probes {
                prop_assert_eq!(
                    decides(&policy, method, &path),
                    map.coverage(method, &path, &held) == Coverage::Allowed,
                    "{} {} under {:?}", method, path, policy
                );
            }
        }
    }
}
