//! Request bodies: JSON objects or form-urlencoded fields, read the same way.
//!
//! `login` and `revoke` accept both encodings with the same field names. JSON
//! values keep their types (a flag must be `true`/`false`); form values are
//! text (`true`/`false`). A name given twice is an error in either encoding
//! (RFC 6749 §3.1; a JSON member at any depth): parsers disagree on which one
//! wins, so a proxy could check one value while we act on the other. Every
//! check is linear in the input, and the caps apply before the work.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::http::error::ApiError;

/// Largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Most fields a form body or query string may hold.
pub const MAX_FIELDS: usize = 16;

/// The fields of a request body.
#[derive(Debug, Default)]
pub enum Fields {
    /// No body.
    #[default]
    Empty,
    /// A JSON object.
    Json(Map<String, Value>),
    /// Form fields, each name at most once.
    Form(Vec<(String, String)>),
}

/// Which encoding a `Content-Type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/merge-patch+json` (RFC 7396), JSON that a PATCH takes.
    MergePatch,
}

impl Encoding {
    /// The encoding of a `Content-Type` value; `None` for anything else.
    pub fn of(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Self::Form)
        } else if media.eq_ignore_ascii_case("application/merge-patch+json") {
            Some(Self::MergePatch)
        } else {
            None
        }
    }
}

impl Fields {
    /// Parses `body` sent as `content_type`. Size is checked first, then type, then syntax.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::Empty);
        }
        match content_type.and_then(Encoding::of) {
            Some(Encoding::Json) => json_object(body).map(Self::Json),
            Some(Encoding::Form) => Self::urlencoded(body, "the form body"),
            Some(Encoding::MergePatch) | None => Err(ApiError::UnsupportedMediaType),
        }
    }

    /// Parses a JSON object body, as the management routes take: sent as
    /// `application/json` or, where `merge_patch`, also as
    /// `application/merge-patch+json` (RFC 7396). No body is an empty object.
    pub fn json(
        content_type: Option<&str>,
        body: &[u8],
        merge_patch: bool,
    ) -> Result<Map<String, Value>, ApiError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match content_type.and_then(Encoding::of) {
            Some(Encoding::Json) => json_object(body),
            Some(Encoding::MergePatch) if merge_patch => json_object(body),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }

    /// Parses form-urlencoded text: at most [`MAX_FIELDS`] fields, each name once.
    pub fn form(text: &[u8]) -> Result<Self, ApiError> {
        Self::urlencoded(text, "the form body")
    }

    /// Parses a query string (without the `?`): at most [`MAX_QUERY_BYTES`]
    /// and [`MAX_FIELDS`] fields, each name once.
    pub fn query(query: &str) -> Result<Self, ApiError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(ApiError::InvalidRequest(
                "the query string exceeds 8 KiB".into(),
            ));
        }
        Self::urlencoded(query.as_bytes(), "the query string")
    }

    /// `what` names the text in error descriptions.
    fn urlencoded(text: &[u8], what: &str) -> Result<Self, ApiError> {
        // Counted as the decoder will see them (it skips empty pieces), before any decoding.
        let mut pieces = text.split(|&b| b == b'&').filter(|p| !p.is_empty());
        if pieces.nth(MAX_FIELDS).is_some() {
            return Err(ApiError::InvalidRequest(format!(
                "{what} has more than {MAX_FIELDS} fields"
            )));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(text)
            .map_err(|_| ApiError::InvalidRequest(format!("{what} is malformed")))?;
        let mut seen = HashSet::with_capacity(pairs.len());
        if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            return Err(ApiError::InvalidRequest(repeated(name, what)));
        }
        Ok(Self::Form(pairs))
    }

    /// A text field; `null` counts as absent.
    pub fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self {
            Self::Empty => Ok(None),
            Self::Json(map) => match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(ApiError::InvalidRequest(format!(
                    "field {name} must be a string"
                ))),
            },
            Self::Form(pairs) => Ok(pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())),
        }
    }

    /// A boolean flag; absent is `false`.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        let mistyped = || ApiError::InvalidRequest(format!("field {name} must be true or false"));
        match self {
            Self::Empty => Ok(false),
            Self::Json(map) => match map.get(name) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(mistyped()),
            },
            Self::Form(_) => match self.text(name)? {
                None => Ok(false),
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(_) => Err(mistyped()),
            },
        }
    }

    /// Whether any of `names` is present.
    pub fn has_any(&self, names: &[&str]) -> bool {
        match self {
            Self::Empty => false,
            Self::Json(map) => names
                .iter()
                .any(|n| map.get(*n).is_some_and(|v| !v.is_null())),
            Self::Form(pairs) => pairs.iter().any(|(n, _)| names.contains(&n.as_str())),
        }
    }
}

/// A body that must be one JSON object, no member named twice.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match strict_json(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidRequest(
            "the JSON body must be an object".into(),
        )),
        Err(JsonError::Repeated) => Err(ApiError::InvalidRequest(
            "the JSON body names a member twice".into(),
        )),
        Err(JsonError::Syntax) => Err(ApiError::InvalidRequest(
            "the body is not valid JSON".into(),
        )),
    }
}

/// The description of a repeated field. The name is echoed only when it looks
/// like one of ours, never arbitrary request text (which might be a secret).
fn repeated(name: &str, what: &str) -> String {
    if (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        format!("field {name} is repeated")
    } else {
        format!("{what} repeats a field")
    }
}

/// Why [`strict_json`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// Not one JSON value (serde_json's syntax, depth and number rules).
    Syntax,
    /// An object, at some depth, names a member twice.
    Repeated,
}

const REPEATED: &str = "an object names a member twice";

/// Parses `bytes` as one JSON value in which no object names a member twice.
/// serde_json's own `Map` keeps the last of two; this refuses the document.
/// The cost is that of building the value: each member is one map insertion,
/// which also tells whether the name was already there.
pub fn strict_json(bytes: &[u8]) -> Result<Value, JsonError> {
    serde_json::from_slice::<Strict>(bytes)
        .map(|Strict(value)| value)
        .map_err(|e| {
            // Only the visitor's own error is a data error: every other
            // refusal is syntax, end of input or input/output.
            if e.classify() == serde_json::error::Category::Data {
                JsonError::Repeated
            } else {
                JsonError::Syntax
            }
        })
}

/// A JSON value deserialized by [`StrictVisitor`].
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// Builds a [`Value`] as serde_json's own visitor does, but refuses repeated members.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|Strict(value)| value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if members.insert(name, value).is_some() {
                return Err(de::Error::custom(REPEATED));
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json; charset=utf-8");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn json_and_form_read_the_same() {
        let j = Fields::parse(JSON, br#"{"api_key":"k","all_sessions":true}"#).unwrap();
        let f = Fields::parse(FORM, b"api_key=k&all_sessions=true").unwrap();
        for fields in [j, f] {
            assert_eq!(fields.text("api_key").unwrap(), Some("k"));
            assert!(fields.flag("all_sessions").unwrap());
            assert_eq!(fields.text("session_id").unwrap(), None);
        }
    }

    #[test]
    fn mistyped_fields_are_invalid_requests() {
        let j = Fields::parse(JSON, br#"{"api_key":7,"all_sessions":"yes"}"#).unwrap();
        assert!(matches!(
            j.text("api_key"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            j.flag("all_sessions"),
            Err(ApiError::InvalidRequest(_))
        ));
        let f = Fields::parse(FORM, b"all_sessions=yes").unwrap();
        assert!(matches!(
            f.flag("all_sessions"),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    #[test]
    fn bodies_are_checked_for_size_type_and_syntax() {
        let big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert!(matches!(
            Fields::parse(JSON, &big),
            Err(ApiError::PayloadTooLarge)
        ));
        assert!(matches!(
            Fields::parse(Some("text/plain"), b"x"),
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            Fields::parse(None, b"x"),
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            Fields::parse(JSON, b"{"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            Fields::parse(JSON, b"[1]"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            Fields::parse(FORM, b"a=1&a=2"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(Fields::parse(None, b""), Ok(Fields::Empty)));
    }

    fn description(result: Result<Fields, ApiError>) -> String {
        match result {
            Err(ApiError::InvalidRequest(d)) => d,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn a_json_member_named_twice_at_any_depth_is_an_invalid_request() {
        for body in [
            &br#"{"api_key":"a","api_key":"b"}"#[..],
            br#"{"scope":"read","x":{"a":1,"a":1}}"#,
            br#"{"x":[{"deep":[{"k":null,"k":null}]}]}"#,
            br#"{"a":1,"b":2,"a":3}"#,
        ] {
            assert_eq!(
                description(Fields::parse(JSON, body)),
                "the JSON body names a member twice",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let nested_once = Fields::parse(JSON, br#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#);
        assert!(matches!(nested_once, Ok(Fields::Json(_))));
    }

    #[test]
    fn a_repeated_form_or_query_field_is_an_invalid_request() {
        assert_eq!(
            description(Fields::parse(FORM, b"api_key=a&scope=x&api_key=b")),
            "field api_key is repeated"
        );
        assert_eq!(
            description(Fields::query("scope=a&scope=b")),
            "field scope is repeated"
        );
        // A name that might be anything is not echoed.
        assert_eq!(
            description(Fields::parse(FORM, b"bauth_X=1&bauth_X=2")),
            "the form body repeats a field"
        );
    }

    #[test]
    fn sixteen_fields_parse_and_seventeen_are_refused_before_decoding() {
        let fields = |n: usize| {
            (0..n)
                .map(|i| format!("f{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert!(
            matches!(Fields::parse(FORM, fields(16).as_bytes()), Ok(Fields::Form(p)) if p.len() == 16)
        );
        assert!(matches!(Fields::query(&fields(16)), Ok(Fields::Form(p)) if p.len() == 16));
        assert_eq!(
            description(Fields::parse(FORM, fields(17).as_bytes())),
            "the form body has more than 16 fields"
        );
        assert_eq!(
            description(Fields::query(&fields(17))),
            "the query string has more than 16 fields"
        );
        // Empty pieces are no fields, as the decoder skips them.
        let sparse = format!("&&{}&&", fields(16).replace('&', "&&"));
        assert!(matches!(Fields::query(&sparse), Ok(Fields::Form(p)) if p.len() == 16));
        // 17 repeated names are refused by the cap, before the repetition check.
        let same = vec!["a=1"; 17].join("&");
        assert_eq!(
            description(Fields::query(&same)),
            "the query string has more than 16 fields"
        );
    }

    #[test]
    fn a_query_string_over_8_kib_is_refused() {
        let at_cap = format!("scope={}", "r".repeat(MAX_QUERY_BYTES - "scope=".len()));
        assert!(Fields::query(&at_cap).is_ok());
        assert_eq!(
            description(Fields::query(&format!("{at_cap}d"))),
            "the query string exceeds 8 KiB"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        const CONTENT_TYPES: [Option<&str>; 6] = [
            JSON,
            FORM,
            None,
            Some("text/plain"),
            Some("APPLICATION/JSON;x"),
            Some("application/x-www-form-urlencoded; charset=\u{e9}"),
        ];

        /// Every refusal is one of the request errors, never anything else.
        fn is_request_error(e: &ApiError) -> bool {
            matches!(
                e,
                ApiError::InvalidRequest(_)
                    | ApiError::PayloadTooLarge
                    | ApiError::UnsupportedMediaType
            )
        }

        /// JSON documents, nested a few levels, whose objects may repeat names.
        fn json_text() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                any::<bool>().prop_map(|b| b.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| f.to_string()),
                "[a-c\\\"é]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    prop::collection::vec(("[a-c]{1,2}", inner), 0..4).prop_map(|members| {
                        let members: Vec<String> = members
                            .into_iter()
                            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            })
        }

        /// Whether a parsed document, as serde_json reads it, lost a member to last-wins.
        fn members_in_text(text: &str) -> usize {
            text.matches("\":").count()
        }

        fn members_in_value(v: &Value) -> usize {
            match v {
                Value::Object(m) => m.len() + m.values().map(members_in_value).sum::<usize>(),
                Value::Array(a) => a.iter().map(members_in_value).sum(),
                _ => 0,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn any_bytes_as_any_content_type_are_fields_or_a_request_error(
                body in prop::collection::vec(any::<u8>(), 0..512),
                content_type in prop::sample::select(&CONTENT_TYPES[..]),
            ) {
                if let Err(e) = Fields::parse(content_type, &body) {
                    prop_assert!(is_request_error(&e), "{e:?}");
                }
            }

            #[test]
            fn strict_json_agrees_with_serde_json_or_refuses_a_repeated_member(text in json_text()) {
                let loose: Value = serde_json::from_str(&text).unwrap();
                // Strings hold no `":`, so each one in the text ends a member name.
                let lost = members_in_text(&text) != members_in_value(&loose);
                match strict_json(text.as_bytes()) {
                    Ok(strict) => {
                        prop_assert!(!lost, "{text}");
                        prop_assert_eq!(strict, loose);
                    }
                    Err(e) => {
                        prop_assert_eq!(e, JsonError::Repeated);
                        prop_assert!(lost, "{text}");
                    }
                }
            }

            #[test]
            fn any_bytes_are_json_or_a_json_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let loose = serde_json::from_slice::<Value>(&bytes);
                match strict_json(&bytes) {
                    Ok(strict) => prop_assert_eq!(Some(strict), loose.ok()),
                    Err(JsonError::Syntax) => prop_assert!(loose.is_err()),
                    Err(JsonError::Repeated) => prop_assert!(loose.is_ok()),
                }
            }

            #[test]
            fn any_query_string_is_fields_with_distinct_names_or_an_invalid_request(
                query in "[a-c=&%+0-9A-F\\u{e9}\\u{0}]{0,64}",
            ) {
                match Fields::query(&query) {
                    Ok(Fields::Form(pairs)) => {
                        prop_assert!(pairs.len() <= MAX_FIELDS);
                        let names: HashSet<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
                        prop_assert_eq!(names.len(), pairs.len());
                    }
                    Ok(other) => prop_assert!(false, "{other:?}"),
                    Err(e) => prop_assert!(matches!(e, ApiError::InvalidRequest(_)), "{e:?}"),
                }
            }

            #[test]
            fn any_long_query_string_is_refused_by_its_length(extra in 1..64usize) {
                let query = "a".repeat(MAX_QUERY_BYTES + extra);
                prop_assert!(matches!(Fields::query(&query), Err(ApiError::InvalidRequest(_))));
            }
        }
    }
}
