//! The route map of `AUTHORIZER_ROUTE_SCOPES`: which scopes each protected
//! route requires, and which listed routes a concrete request matches.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::ConfigError;
use crate::domain::scope::Scopes;

use super::ROUTE_SCOPES_VAR;

/// HTTP methods a route may name; `ANY` matches every method.
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// The methods `ANY` stands for, spelled out where a policy must name each.
pub(crate) const CONCRETE_METHODS: &[&str] =
    &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    /// Literal text.
    Lit(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// `{name+}`: one non-empty segment or more; always the last.
    Greedy,
}

/// A configured route: a method and a path template as API Gateway spells
/// them (`GET /v1/documents/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RouteKey {
    method: String,
    path: String,
    segments: Vec<Segment>,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl RouteKey {
    /// Parses `METHOD /path`, the form of an HTTP API `routeKey`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let (method, path) = s
            .split_once(' ')
            .ok_or_else(|| format!("route {s:?} must be METHOD and path, e.g. GET /v1/whoami"))?;
        if !METHODS.contains(&method) {
            return Err(format!(
                "route {s:?}: method must be one of {}",
                METHODS.join(", ")
            ));
        }
        let malformed = || {
            format!(
                "route {s:?}: path must start with '/' and hold no '*', '?' or '#'; \
                 parameters are whole segments like {{id}}, and {{proxy+}} only last"
            )
        };
        let rest = path.strip_prefix('/').ok_or_else(malformed)?;
        let mut segments = Vec::new();
        for segment in rest.split('/') {
            if segments.last() == Some(&Segment::Greedy) {
                return Err(malformed());
            }
            let parsed = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let (name, greedy) = match name.strip_suffix('+') {
                        Some(name) => (name, true),
                        None => (name, false),
                    };
                    let named = !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    match (named, greedy) {
                        (false, _) => return Err(malformed()),
                        (true, false) => Segment::Param,
                        (true, true) => Segment::Greedy,
                    }
                }
                // `*` and `?` would act as wildcards in a resource ARN.
                None if segment.bytes().all(|b| {
                    b.is_ascii_graphic() && !matches!(b, b'*' | b'?' | b'{' | b'}' | b'#')
                }) =>
                {
                    Segment::Lit(segment.to_owned())
                }
                None => return Err(malformed()),
            };
            segments.push(parsed);
        }
        Ok(Self {
            method: method.to_owned(),
            path: path.to_owned(),
            segments,
        })
    }

    /// Whether a request for `method` and the concrete `path` (`/v1/documents/42`)
    /// fits this route: `ANY` fits every method, `{param}` one non-empty
    /// segment, `{param+}` one or more.
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != "ANY" && self.method != method {
            return false;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut concrete = rest.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Greedy => {
                    let remaining: Vec<&str> = concrete.by_ref().collect();
                    return !remaining.is_empty() && remaining.iter().all(|s| !s.is_empty());
                }
                Segment::Param => match concrete.next() {
                    Some(s) if !s.is_empty() => {}
                    _ => return false,
                },
                Segment::Lit(text) => {
                    if concrete.next() != Some(text.as_str()) {
                        return false;
                    }
                }
            }
        }
        concrete.next().is_none()
    }

    /// Whether the path holds a `{param}` or `{param+}`.
    fn has_parameter(&self) -> bool {
        self.segments.iter().any(|s| !matches!(s, Segment::Lit(_)))
    }

    /// The concrete methods this route stands for.
    fn methods(&self) -> Vec<&str> {
        if self.method == "ANY" {
            CONCRETE_METHODS.to_vec()
        } else {
            vec![self.method.as_str()]
        }
    }
}

/// How the route map judges one request for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// No listed route fits the request: denied to every token.
    Unlisted,
    /// A listed route fits, but the token lacks some scope it requires.
    Refused,
    /// The token holds every scope of every listed route that fits.
    Allowed,
}

/// The scopes each protected route requires, from `AUTHORIZER_ROUTE_SCOPES`.
///
/// Invariants: route keys are unique and well formed; a route that is not
/// listed is denied to every token; a route listed with no scopes admits any
/// valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteScopes(BTreeMap<RouteKey, Scopes>);

impl RouteScopes {
    /// Reads and parses `AUTHORIZER_ROUTE_SCOPES`. A missing or malformed
    /// value is logged as one line naming the variable and returned, so the
    /// function fails at init.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
            .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))
    }

    /// Reads `AUTHORIZER_ROUTE_SCOPES` through `lookup`.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        lookup(ROUTE_SCOPES_VAR)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(ROUTE_SCOPES_VAR))
            .and_then(|v| Self::parse(&v))
    }

    /// Parses `METHOD /path=scope scope;METHOD /path=...`: entries separated by
    /// `;`, each a route key as API Gateway spells it, `=`, and the
    /// space-separated scopes a token must all hold (none: any valid token).
    /// Whitespace around entries and an empty last entry are ignored.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable: no routes, an entry
    /// without `=`, an unknown method, a path that is not a clean template, a
    /// malformed scope, or a route listed twice.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: ROUTE_SCOPES_VAR,
            reason,
        };
        let mut routes = BTreeMap::new();
        for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (route, scopes) = entry.split_once('=').ok_or_else(|| {
                invalid(format!(
                    "entry {entry:?} must be ROUTE=SCOPES, e.g. GET /v1/whoami=read"
                ))
            })?;
            let route = RouteKey::parse(route.trim()).map_err(invalid)?;
            let scopes = scopes.split_whitespace().collect::<Vec<_>>().join(" ");
            let scopes = if scopes.is_empty() {
                Scopes::default()
            } else {
                Scopes::parse(&scopes).map_err(|e| invalid(format!("route {route}: {e}")))?
            };
            let listed = route.to_string();
            if routes.insert(route, scopes).is_some() {
                return Err(invalid(format!("route {listed} is listed twice")));
            }
        }
        if routes.is_empty() {
            return Err(invalid("lists no routes".into()));
        }
        Ok(Self(routes))
    }

    /// The scopes `route_key` (`GET /v1/whoami`) requires; `None` when the
    /// route is not listed, which means deny.
    pub fn required(&self, route_key: &str) -> Option<&Scopes> {
        self.route(route_key).map(|(_, scopes)| scopes)
    }

    /// The listed route spelled `route_key`, with its scopes.
    pub(crate) fn route(&self, route_key: &str) -> Option<(&RouteKey, &Scopes)> {
        let route = RouteKey::parse(route_key).ok()?;
        self.0.get_key_value(&route)
    }

    /// The listed route a REST API method names: `method resource` itself, or
    /// else `ANY resource` (API Gateway prefers a method over `ANY` too).
    pub(crate) fn rest_route(&self, method: &str, resource: &str) -> Option<(&RouteKey, &Scopes)> {
        self.route(&format!("{method} {resource}"))
            .or_else(|| self.route(&format!("ANY {resource}")))
    }

    /// How a request for `method` and the concrete `path` is judged for a
    /// token holding `held`, when only the path is known (a REST TOKEN event):
    /// every listed route that fits must be covered, so the answer is right
    /// whichever of them API Gateway routed the request to.
    pub fn coverage(&self, method: &str, path: &str, held: &Scopes) -> Coverage {
        let mut fitting = self
            .0
            .iter()
            .filter(|(route, _)| route.matches(method, path))
            .peekable();
        if fitting.peek().is_none() {
            return Coverage::Unlisted;
        }
        if fitting.all(|(_, required)| required.is_subset(held)) {
            Coverage::Allowed
        } else {
            Coverage::Refused
        }
    }

    /// The first route with a path parameter, if any: such a route cannot be
    /// allowed by a policy reused for other routes (see the module docs).
    pub(crate) fn first_parameterized(&self) -> Option<String> {
        self.0
            .keys()
            .find(|route| route.has_parameter())
            .map(ToString::to_string)
    }

    /// The `(METHOD, /path)` pairs of every literal route that
    /// [`Self::coverage`] allows to `held`, `ANY` spelled out per method
    /// (so `ANY /x` never reaches a `GET /x` listed with other scopes).
    /// Routes with parameters are never in it.
    pub(crate) fn allowed_literals(&self, held: &Scopes) -> Vec<(&str, &str)> {
        let mut allowed: Vec<(&str, &str)> = self
            .0
            .keys()
            .filter(|route| !route.has_parameter())
            .flat_map(|route| {
                route
                    .methods()
                    .into_iter()
                    .map(|method| (method, route.path.as_str()))
            })
            .filter(|(method, path)| self.coverage(method, path, held) == Coverage::Allowed)
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn routes(value: &str) -> RouteScopes {
        RouteScopes::parse(value).unwrap()
    }

    fn reason(value: &str) -> String {
        match RouteScopes::parse(value).unwrap_err() {
            ConfigError::Invalid { name, reason } => {
                assert_eq!(name, ROUTE_SCOPES_VAR);
                reason
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn held(s: &str) -> Scopes {
        if s.is_empty() {
            Scopes::default()
        } else {
            Scopes::parse(s).unwrap()
        }
    }

    #[test]
    fn a_route_map_parses_into_required_scopes() {
        let r = routes("GET /v1/whoami=read;POST /v1/documents=write documents:write");
        assert_eq!(r.required("GET /v1/whoami").unwrap().to_string(), "read");
        assert_eq!(
            r.required("POST /v1/documents").unwrap().to_string(),
            "documents:write write"
        );
    }

    #[test]
    fn an_unlisted_route_has_no_requirement_and_is_denied() {
        let r = routes("GET /v1/whoami=read");
        assert_eq!(r.required("POST /v1/whoami"), None);
        assert_eq!(r.required("GET /v1/other"), None);
        assert_eq!(r.required("$default"), None);
        assert_eq!(r.required("get /v1/whoami"), None);
    }

    #[test]
    fn a_route_with_an_empty_scope_set_admits_any_valid_token() {
        let r = routes("GET /v1/public=");
        assert!(r.required("GET /v1/public").unwrap().is_empty());
    }

    #[test]
    fn whitespace_around_entries_and_a_trailing_separator_are_ignored() {
        let r = routes(" GET /v1/whoami = read ;\n POST /v1/documents=write  documents:write ; ");
        assert_eq!(r.required("GET /v1/whoami").unwrap().to_string(), "read");
        assert_eq!(
            r.required("POST /v1/documents").unwrap().to_string(),
            "documents:write write"
        );
    }

    #[test]
    fn path_parameters_and_any_are_route_keys_as_api_gateway_spells_them() {
        let r = routes("ANY /v1/items/{id}=read;GET /v1/files/{proxy+}=read");
        assert!(r.required("ANY /v1/items/{id}").is_some());
        assert!(r.required("GET /v1/files/{proxy+}").is_some());
    }

    #[test]
    fn malformed_route_maps_are_rejected_naming_the_variable() {
        assert!(reason("GET /v1/whoami").contains("ROUTE=SCOPES"));
        assert!(reason("FETCH /v1/whoami=read").contains("method must be one of"));
        assert!(reason("get /v1/whoami=read").contains("method must be one of"));
        assert!(reason("GET v1/whoami=read").contains("path must start"));
        assert!(reason("GET /v1/*=read").contains("path must start"));
        assert!(reason("GET /v1/a?b=read").contains("path must start"));
        assert!(reason("GET /v1/{=read").contains("path must start"));
        assert!(reason("GET /v1/x{id}=read").contains("path must start"));
        assert!(reason("GET /v1/{}=read").contains("path must start"));
        assert!(reason("GET /v1/{p+}/x=read").contains("only last"));
        assert!(reason("GET/v1=read").contains("METHOD and path"));
        assert!(reason("GET /v1/whoami=re\"ad").contains("scope"));
        assert!(reason("GET /v1/whoami=read;GET /v1/whoami=write").contains("listed twice"));
        assert!(reason(" ; ").contains("no routes"));
        let err = RouteScopes::parse("GET /x").unwrap_err().to_string();
        assert!(
            err.starts_with("AUTHORIZER_ROUTE_SCOPES is invalid"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_or_blank_route_map_is_missing() {
        assert_eq!(
            RouteScopes::from_lookup(|_| None),
            Err(ConfigError::Missing(ROUTE_SCOPES_VAR))
        );
        assert_eq!(
            RouteScopes::from_lookup(|_| Some("  ".into())),
            Err(ConfigError::Missing(ROUTE_SCOPES_VAR))
        );
    }

    #[test]
    fn a_parameter_fits_exactly_one_non_empty_segment() {
        let route = RouteKey::parse("GET /v1/documents/{id}").unwrap();
        assert!(route.matches("GET", "/v1/documents/42"));
        assert!(!route.matches("GET", "/v1/documents/42/admin"));
        assert!(!route.matches("GET", "/v1/documents/"));
        assert!(!route.matches("GET", "/v1/documents"));
        assert!(!route.matches("POST", "/v1/documents/42"));
        assert!(!route.matches("GET", "v1/documents/42"));
    }

    #[test]
    fn a_greedy_parameter_fits_one_segment_or_more_and_any_every_method() {
        let route = RouteKey::parse("ANY /v1/files/{path+}").unwrap();
        assert!(route.matches("GET", "/v1/files/a"));
        assert!(route.matches("DELETE", "/v1/files/a/b/c"));
        assert!(!route.matches("GET", "/v1/files"));
        assert!(!route.matches("GET", "/v1/files/"));
        assert!(!route.matches("GET", "/v1/files/a//b"));
        let root = RouteKey::parse("GET /").unwrap();
        assert!(root.matches("GET", "/"));
        assert!(!root.matches("GET", "/x"));
    }

    #[test]
    fn a_path_two_listed_routes_fit_needs_the_scopes_of_both() {
        let r = routes("GET /v1/documents/{id}=read;GET /v1/documents/special=admin");
        assert_eq!(
            r.coverage("GET", "/v1/documents/42", &held("read")),
            Coverage::Allowed
        );
        assert_eq!(
            r.coverage("GET", "/v1/documents/special", &held("read")),
            Coverage::Refused,
            "API Gateway routes it to the literal route, which needs admin"
        );
        assert_eq!(
            r.coverage("GET", "/v1/documents/special", &held("admin read")),
            Coverage::Allowed
        );
        assert_eq!(
            r.coverage("GET", "/v1/documents/42/admin", &held("admin read")),
            Coverage::Unlisted
        );
    }

    #[test]
    fn a_rest_method_falls_back_to_any_on_its_resource() {
        let r = routes("GET /v1/items=read;ANY /v1/items=admin");
        assert_eq!(
            r.rest_route("GET", "/v1/items").unwrap().1.to_string(),
            "read"
        );
        assert_eq!(
            r.rest_route("POST", "/v1/items").unwrap().1.to_string(),
            "admin"
        );
        assert!(r.rest_route("POST", "/v1/other").is_none());
    }

    #[test]
    fn literal_routes_expand_any_into_every_method_and_skip_parameters() {
        let r = routes("ANY /v1/items=read;GET /v1/documents/{id}=read;POST /v1/x=write");
        let allowed = r.allowed_literals(&held("read"));
        assert_eq!(allowed.len(), CONCRETE_METHODS.len());
        assert!(allowed.iter().all(|(_, path)| *path == "/v1/items"));
        assert_eq!(
            r.first_parameterized().as_deref(),
            Some("GET /v1/documents/{id}")
        );
        assert_eq!(routes("GET /v1/x=read").first_parameterized(), None);
        let overlap = routes("ANY /v1/items=read;GET /v1/items=admin");
        assert!(
            !overlap
                .allowed_literals(&held("read"))
                .contains(&("GET", "/v1/items")),
            "GET /v1/items needs admin"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_route_map_parser_answers_any_string_with_a_map_or_a_typed_error(value in ".{0,200}") {
            match RouteScopes::parse(&value) {
                Ok(map) => prop_assert!(!map.0.is_empty()),
                Err(ConfigError::Invalid { name, .. }) => prop_assert_eq!(name, ROUTE_SCOPES_VAR),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn the_route_map_parser_answers_route_like_strings_without_panicking(
            value in r"((GET|ANY|POST|get) ?(/[a-z{}+*?#]{0,6}){0,4} ?=? ?[a-z: ]{0,10};?){0,5}"
        ) {
            match RouteScopes::parse(&value) {
                Ok(map) => {
                    for route in map.0.keys() {
                        let reparsed = RouteKey::parse(&route.to_string());
                        prop_assert_eq!(reparsed.as_ref(), Ok(route));
                    }
                }
                Err(ConfigError::Invalid { name, .. }) => prop_assert_eq!(name, ROUTE_SCOPES_VAR),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
