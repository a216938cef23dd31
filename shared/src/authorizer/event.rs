//! The four event shapes API Gateway sends a Lambda authorizer, told apart
//! by `version` and `type` (field names as in `aws_lambda_events::apigw`):
//!
//! | shape | `version` | `type` | token | route | answer |
//! |---|---|---|---|---|---|
//! | HTTP API, payload 2.0 | `"2.0"` | `REQUEST` | `headers.authorization` | `routeKey` | simple |
//! | HTTP API, payload 1.0 | `"1.0"` | `REQUEST` | `headers` `Authorization`, any case | `requestContext.routeKey` | IAM policy |
//! | REST API TOKEN | absent | `TOKEN` | `authorizationToken` | only the `methodArn`'s path | IAM policy |
//! | REST API REQUEST | absent | `REQUEST` | `headers` `Authorization`, any case | `httpMethod` and `resource` | IAM policy |
//!
//! Every IAM-policy shape carries `methodArn`. Anything else is an
//! [`EventError`], which the handler answers with an error, never an allow.

use std::collections::BTreeMap;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::http::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::Value;

/// Which of API Gateway's authorizer events arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// HTTP API REQUEST authorizer, payload 2.0, simple responses.
    HttpV2,
    /// HTTP API REQUEST authorizer, payload 1.0, IAM policy responses.
    HttpV1,
    /// REST API TOKEN authorizer.
    RestToken,
    /// REST API REQUEST authorizer.
    RestRequest,
}

impl Shape {
    /// The shape's name in the log line.
    pub fn kind(self) -> &'static str {
        match self {
            Self::HttpV2 => "http_api",
            Self::HttpV1 => "http_api_v1",
            Self::RestToken => "rest_token",
            Self::RestRequest => "rest_request",
        }
    }

    /// Tells the shape from `version` and `type`; `None` for anything else.
    fn detect(event: &Value) -> Option<Self> {
        let text = |field: &str| match event.get(field) {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(s.as_str())),
            Some(_) => None,
        };
        match (text("version")?, text("type")?) {
            (Some("2.0"), Some("REQUEST") | None) => Some(Self::HttpV2),
            (Some("1.0"), Some("REQUEST")) => Some(Self::HttpV1),
            (None, Some("TOKEN")) => Some(Self::RestToken),
            (None, Some("REQUEST")) => Some(Self::RestRequest),
            _ => None,
        }
    }
}

/// An event that is none of the four shapes, or one of them malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    /// The shape it claimed to be, if any.
    pub shape: Option<Shape>,
    /// What is wrong, for the log; never a field's value.
    pub detail: String,
}

/// How an IAM-policy event names the route being called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRoute {
    /// An HTTP API route key (`GET /v1/documents/{id}`); `None` when absent.
    Key(Option<String>),
    /// A REST API method and resource template (`GET`, `/v1/documents/{id}`).
    Rest {
        /// `httpMethod`.
        method: String,
        /// `resource`.
        resource: String,
    },
    /// Nothing but the `methodArn` (REST TOKEN).
    PathOnly,
}

/// An event asking for an IAM policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEvent {
    /// Which shape it came as.
    pub shape: Shape,
    /// The method being called.
    pub method_arn: MethodArn,
    /// The route, as far as the event names it.
    pub route: RequestRoute,
    /// The raw `Authorization` value (or `authorizationToken`).
    pub authorization: Option<String>,
}

/// A parsed authorizer event.
#[derive(Debug, Clone)]
pub enum Event {
    /// HTTP API payload 2.0: route key and `Authorization` value.
    HttpV2 {
        /// `routeKey`, or `requestContext.routeKey`.
        route_key: Option<String>,
        /// The `authorization` header.
        authorization: Option<String>,
    },
    /// One of the IAM-policy shapes.
    Policy(PolicyEvent),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpV1Event {
    method_arn: String,
    #[serde(default)]
    headers: Option<BTreeMap<String, Option<String>>>,
    request_context: HttpV1Context,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpV1Context {
    #[serde(default)]
    route_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestTokenEvent {
    #[serde(default)]
    authorization_token: Option<String>,
    method_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestRequestEvent {
    method_arn: String,
    resource: String,
    http_method: String,
    #[serde(default)]
    headers: Option<BTreeMap<String, Option<String>>>,
}

impl Event {
    /// Tells the shape and reads the fields the authorizer needs.
    ///
    /// # Errors
    /// An event of none of the shapes, a missing or mistyped field, or a
    /// `methodArn` that is not a plain execute-api ARN.
    pub fn parse(event: Value) -> Result<Self, EventError> {
        let shape = Shape::detect(&event).ok_or_else(|| EventError {
            shape: None,
            detail: "none of the four authorizer event shapes (version/type)".into(),
        })?;
        let malformed = |e: serde_json::Error| EventError {
            shape: Some(shape),
            detail: format!("malformed {} event: {}", shape.kind(), serde_shape(&e)),
        };
        let (arn, route, authorization) = match shape {
            Shape::HttpV2 => {
                let event: ApiGatewayV2CustomAuthorizerV2Request =
                    serde_json::from_value(event).map_err(malformed)?;
                let authorization = event
                    .headers
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                return Ok(Self::HttpV2 {
                    route_key: event.route_key.or(event.request_context.route_key),
                    authorization,
                });
            }
            Shape::HttpV1 => {
                let event: HttpV1Event = serde_json::from_value(event).map_err(malformed)?;
                (
                    event.method_arn,
                    RequestRoute::Key(event.request_context.route_key),
                    authorization_header(event.headers.as_ref()),
                )
            }
            Shape::RestToken => {
                let event: RestTokenEvent = serde_json::from_value(event).map_err(malformed)?;
                (
                    event.method_arn,
                    RequestRoute::PathOnly,
                    event.authorization_token,
                )
            }
            Shape::RestRequest => {
                let event: RestRequestEvent = serde_json::from_value(event).map_err(malformed)?;
                (
                    event.method_arn,
                    RequestRoute::Rest {
                        method: event.http_method,
                        resource: event.resource,
                    },
                    authorization_header(event.headers.as_ref()),
                )
            }
        };
        let method_arn = MethodArn::parse(&arn).ok_or_else(|| EventError {
            shape: Some(shape),
            detail: "methodArn is not a plain execute-api method ARN".into(),
        })?;
        Ok(Self::Policy(PolicyEvent {
            shape,
            method_arn,
            route,
            authorization,
        }))
    }
}

/// The `Authorization` header of a REST or payload 1.0 event, whose header
/// names keep the client's case. Two spellings at once are no header: which
/// one API Gateway cached by is unknown.
fn authorization_header(headers: Option<&BTreeMap<String, Option<String>>>) -> Option<String> {
    let mut values = headers?
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value);
    match (values.next(), values.next()) {
        (Some(Some(value)), None) => Some(value.clone()),
        _ => None,
    }
}

/// What is wrong with an event's shape, for the log. serde's "invalid
/// type/value" messages quote the offending value, which could be a token.
fn serde_shape(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("missing field") {
        text
    } else {
        "a field has the wrong type or value".into()
    }
}

/// A `methodArn`: `arn:PARTITION:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn {
    arn: String,
    stage_prefix: String,
    method: String,
    path: String,
}

impl MethodArn {
    /// Parses a methodArn. The partition, region, account, API, stage and
    /// method must be plain names: a wildcard there would widen every policy
    /// built on them. The path (after `METHOD/`) may be empty (`GET/` is `/`).
    pub fn parse(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("execute-api"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let mut resource = parts.next()?.splitn(4, '/');
        let (api, stage, method, path) = (
            resource.next()?,
            resource.next()?,
            resource.next()?,
            resource.next()?,
        );
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'*' | b'?' | b'/' | b':'))
        };
        if ![partition, region, account, api, stage, method]
            .into_iter()
            .all(plain)
        {
            return None;
        }
        Some(Self {
            arn: arn.to_owned(),
            stage_prefix: format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/"),
            method: method.to_owned(),
            path: format!("/{path}"),
        })
    }

    /// The ARN as API Gateway sent it.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// `arn:PARTITION:execute-api:REGION:ACCOUNT:API/STAGE/`.
    pub fn stage_prefix(&self) -> &str {
        &self.stage_prefix
    }

    /// The called method (`GET`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The called path (`/v1/documents/42`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the ARN is free of IAM wildcards, so a policy naming it allows
    /// that one method and path and nothing else. A client can put `*` or `?`
    /// in its path.
    pub fn is_literal(&self) -> bool {
        !self.arn.contains(['*', '?'])
    }

    /// `METHOD /path` of the call, for the log line.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The bearer token of an `Authorization` value, by the one parser the
/// HTTP routes use; anything else (no header, another scheme, a malformed
/// value) is no token.
pub(crate) fn bearer(value: Option<&str>) -> Option<&str> {
    crate::http::bearer(value?.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::{Decision, PolicyDocument, RouteScopes};
    use crate::domain::scope::Scopes;
    use proptest::prelude::*;
    use serde_json::json;

    const HTTP_V2: &str = include_str!("../../../events/authorizer/http-api-valid.json");
    const HTTP_V1: &str = include_str!("../../../events/authorizer/http-api-v1-valid.json");
    const REST_TOKEN: &str = include_str!("../../../events/authorizer/rest-token-valid.json");
    const REST_REQUEST: &str = include_str!("../../../events/authorizer/rest-request-valid.json");

    fn fixture(text: &str) -> Value {
        serde_json::from_str(&text.replace("__TOKEN__", "abc.def.ghi")).unwrap()
    }

    fn policy_event(text: &str) -> PolicyEvent {
        match Event::parse(fixture(text)).unwrap() {
            Event::Policy(p) => p,
            other => panic!("expected a policy event, got {other:?}"),
        }
    }

    #[test]
    fn each_fixture_is_told_apart_by_version_and_type() {
        assert!(matches!(
            Event::parse(fixture(HTTP_V2)).unwrap(),
            Event::HttpV2 { route_key: Some(ref k), authorization: Some(ref a) }
                if k == "GET /v1/whoami" && a == "Bearer abc.def.ghi"
        ));
        let v1 = policy_event(HTTP_V1);
        assert_eq!(v1.shape, Shape::HttpV1);
        assert_eq!(v1.route, RequestRoute::Key(Some("GET /v1/whoami".into())));
        assert_eq!(v1.authorization.as_deref(), Some("Bearer abc.def.ghi"));
        let token = policy_event(REST_TOKEN);
        assert_eq!(token.shape, Shape::RestToken);
        assert_eq!(token.route, RequestRoute::PathOnly);
        let request = policy_event(REST_REQUEST);
        assert_eq!(request.shape, Shape::RestRequest);
        assert_eq!(
            request.route,
            RequestRoute::Rest {
                method: "GET".into(),
                resource: "/v1/whoami".into()
            }
        );
        assert_eq!(request.authorization.as_deref(), Some("Bearer abc.def.ghi"));
        assert_eq!(request.method_arn.route(), "GET /v1/whoami");
    }

    #[test]
    fn a_rest_request_finds_the_authorization_header_in_any_case() {
        for name in ["Authorization", "authorization", "AUTHORIZATION"] {
            let mut event = fixture(REST_REQUEST);
            event["headers"] = json!({ name: "Bearer t" });
            let Event::Policy(p) = Event::parse(event).unwrap() else {
                panic!("policy event expected");
            };
            assert_eq!(p.authorization.as_deref(), Some("Bearer t"), "{name}");
        }
    }

    #[test]
    fn two_spellings_of_the_authorization_header_or_none_are_no_token() {
        for headers in [
            json!({"Authorization": "Bearer a", "authorization": "Bearer b"}),
            json!({"Accept": "*/*"}),
            json!(null),
            json!({"Authorization": null}),
        ] {
            let mut event = fixture(REST_REQUEST);
            event["headers"] = headers.clone();
            let Event::Policy(p) = Event::parse(event).unwrap() else {
                panic!("policy event expected");
            };
            assert_eq!(p.authorization, None, "{headers}");
        }
    }

    #[test]
    fn events_of_no_known_shape_are_errors() {
        let mut versionless_2 = fixture(HTTP_V2);
        versionless_2["version"] = json!("3.0");
        let mut token_with_version = fixture(REST_TOKEN);
        token_with_version["version"] = json!("1.0");
        let mut numeric_type = fixture(REST_REQUEST);
        numeric_type["type"] = json!(1);
        for event in [
            json!(null),
            json!([]),
            json!("TOKEN"),
            json!({}),
            json!({"routeKey": "GET /v1/whoami"}),
            json!({"type": "token", "methodArn": "x"}),
            versionless_2,
            token_with_version,
            numeric_type,
        ] {
            let e = Event::parse(event.clone()).unwrap_err();
            assert_eq!(e.shape, None, "{event}");
        }
    }

    #[test]
    fn a_known_shape_without_its_fields_is_a_malformed_event() {
        let mut no_arn = fixture(REST_TOKEN);
        no_arn.as_object_mut().unwrap().remove("methodArn");
        let e = Event::parse(no_arn).unwrap_err();
        assert_eq!(e.shape, Some(Shape::RestToken));
        assert!(e.detail.contains("methodArn"), "{}", e.detail);
        let mut no_resource = fixture(REST_REQUEST);
        no_resource.as_object_mut().unwrap().remove("resource");
        assert_eq!(
            Event::parse(no_resource).unwrap_err().shape,
            Some(Shape::RestRequest)
        );
        let mut bad_token = fixture(REST_TOKEN);
        bad_token["authorizationToken"] = json!(["Bearer secret-value"]);
        let e = Event::parse(bad_token).unwrap_err();
        assert!(!e.detail.contains("secret-value"), "{}", e.detail);
    }

    #[test]
    fn a_method_arn_yields_its_stage_prefix_method_and_path() {
        let raw = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/v1/documents/42";
        let arn = MethodArn::parse(raw).unwrap();
        assert_eq!(
            arn.stage_prefix(),
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/"
        );
        assert_eq!(arn.route(), "GET /v1/documents/42");
        assert_eq!(arn.arn(), raw);
        assert!(arn.is_literal());
        let root = MethodArn::parse("arn:aws-cn:execute-api:cn-north-1:1:api/dev/GET/").unwrap();
        assert_eq!(root.path(), "/");
        assert_eq!(root.method(), "GET");
        let star = MethodArn::parse("arn:aws:execute-api:us-east-1:1:api/dev/GET/v1/*").unwrap();
        assert!(
            !star.is_literal(),
            "a client's '*' in the path is a wildcard"
        );
    }

    #[test]
    fn malformed_or_wildcard_method_arns_are_rejected() {
        for bad in [
            "",
            "arn:aws:execute-api:us-east-1:1:api/prod",
            "arn:aws:execute-api:us-east-1:1:api/prod/GET",
            "arn:aws:lambda:us-east-1:1:api/prod/GET/x",
            "arn:aws:execute-api:us-east-1:1:*/prod/GET/x",
            "arn:aws:execute-api:us-east-1:1:api/*/GET/x",
            "arn:aws:execute-api:us-east-1:1:api/prod/*/x",
            "arn:aws:execute-api:us-east-1::api/prod/GET/x",
            "arn:aws:execute-api:*:1:api/prod/GET/x",
            "nonsense",
        ] {
            assert_eq!(MethodArn::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_bearer_scheme_with_a_token_carries_one() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(
            bearer(Some("Bearer a.b-c_d~e+f/g==")),
            Some("a.b-c_d~e+f/g==")
        );
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(Some("Bearer a b")), None);
        assert_eq!(bearer(Some("Bearer a\tb")), None);
        assert_eq!(bearer(Some("Bearer =abc")), None);
        assert_eq!(bearer(Some("Bearer ==")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(Some("")), None);
        assert_eq!(bearer(None), None);
    }

    /// JSON values of any shape, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            prop_oneof![
                Just("TOKEN"),
                Just("REQUEST"),
                Just("1.0"),
                Just("2.0"),
                Just("arn:aws:execute-api:us-east-1:1:api/prod/GET/x"),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("version".to_owned()),
                        Just("type".to_owned()),
                        Just("methodArn".to_owned()),
                        Just("headers".to_owned()),
                        Just("requestContext".to_owned()),
                        Just("routeKey".to_owned()),
                        Just("resource".to_owned()),
                        Just("httpMethod".to_owned()),
                        Just("authorizationToken".to_owned()),
                        "[a-zA-Z]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A valid event of one of the four shapes with one field replaced,
    /// removed, or added.
    fn mutated_event() -> impl Strategy<Value = Value> {
        let base = prop_oneof![
            Just(HTTP_V2),
            Just(HTTP_V1),
            Just(REST_TOKEN),
            Just(REST_REQUEST)
        ];
        (base, any::<prop::sample::Index>(), any_json(), 0..3u8).prop_map(
            |(text, index, value, how)| {
                let mut event = fixture(text);
                let object = event.as_object_mut().unwrap();
                let keys: Vec<String> = object.keys().cloned().collect();
                let key = index.get(&keys).clone();
                match how {
                    0 => {
                        object.insert(key, value);
                    }
                    1 => {
                        object.remove(&key);
                    }
                    _ => {
                        if let Some(Value::Object(inner)) = object.get_mut("requestContext") {
                            inner.insert(key, value);
                        } else if let Some(Value::Object(inner)) = object.get_mut("headers") {
                            inner.insert(key, value);
                        } else {
                            object.insert("extra".into(), value);
                        }
                    }
                }
                event
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_json_value_parses_to_an_event_or_a_typed_error(event in any_json()) {
            match Event::parse(event) {
                Ok(Event::Policy(p)) => prop_assert!(MethodArn::parse(p.method_arn.arn()).is_some()),
                Ok(Event::HttpV2 { .. }) => {}
                Err(e) => prop_assert!(!e.detail.is_empty()),
            }
        }

        #[test]
        fn a_mutated_valid_event_parses_to_an_event_or_a_typed_error(event in mutated_event()) {
            let claimed = Shape::detect(&event);
            match Event::parse(event) {
                Ok(Event::Policy(p)) => {
                    prop_assert_eq!(Some(p.shape), claimed);
                    // And on to a decision: an allow names the literal ARN alone.
                    let routes = RouteScopes::parse("GET /v1/whoami=read;ANY /v1/{x}=").unwrap();
                    let held = Scopes::parse("read").unwrap();
                    let (policy, decision) =
                        PolicyDocument::for_request(&routes, &p.route, &p.method_arn, &held);
                    if decision == Decision::Allow {
                        prop_assert!(p.method_arn.is_literal());
                        prop_assert_eq!(policy.allowed_resources(), 1);
                        prop_assert_eq!(&policy.statement[0].resource, &vec![p.method_arn.arn().to_owned()]);
                    } else {
                        prop_assert_eq!(policy.allowed_resources(), 0);
                    }
                }
                Ok(Event::HttpV2 { .. }) => prop_assert_eq!(claimed, Some(Shape::HttpV2)),
                Err(e) => prop_assert!(e.shape.is_none() || e.shape == claimed),
            }
        }
    }
}
