//! Request bodies: JSON objects or form-urlencoded fields, read the same way.
//!
//! `login` and `revoke` accept both encodings with the same field names. JSON
//! values keep their types (a flag must be `true`/`false`); form values are
//! text (`true`/`false`). A repeated form field is an error (RFC 6749 §3.1).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

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
}

impl Encoding {
    /// The encoding of a `Content-Type` value; `None` for anything else.
    pub fn of(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Self::Form)
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
            Some(Encoding::Json) => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => Ok(Self::Json(map)),
                Ok(_) => Err(ApiError::InvalidRequest(
                    "the JSON body must be an object".into(),
                )),
                Err(_) => Err(ApiError::InvalidRequest(
                    "the body is not valid JSON".into(),
                )),
            },
            Some(Encoding::Form) => Self::form(body),
            None => Err(ApiError::UnsupportedMediaType),
        }
    }

    /// Parses form-urlencoded text (also used for query strings).
    pub fn form(text: &[u8]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(text)
            .map_err(|_| ApiError::InvalidRequest("the form body is malformed".into()))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::InvalidRequest(format!(
                    "field {name} is repeated"
                )));
            }
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
}
