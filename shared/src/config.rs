//! Typed configuration, read once from the environment at cold start.
//!
//! A missing or invalid setting is an [`ConfigError`] naming the variable, so
//! the function fails at init with one log line instead of on the first request.

use std::time::Duration;

use thiserror::Error;

/// The rules that shape tokens: lifetimes, reuse and accepted clock skew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Lifetime of a fresh token (`TOKEN_TTL_SECONDS`).
    pub ttl_seconds: u64,
    /// A session's token is replaced once it has this little left
    /// (`REFRESH_WINDOW_SECONDS`); 0 reuses it until expiry.
    pub refresh_window_seconds: u64,
    /// Clock skew accepted on `exp`, `nbf` and `iat` (`CLOCK_LEEWAY_SECONDS`).
    pub leeway_seconds: u64,
    /// The `iss` claim signed into and required of every token (`ISSUER`).
    pub issuer: String,
    /// The `aud` claim, when configured (`AUDIENCE`).
    pub audience: Option<String>,
    /// Live sessions a key may hold at once (`MAX_SESSIONS_PER_KEY`).
    pub max_sessions_per_key: u64,
    /// How long verify may reuse a key and session state it read, the
    /// revocation delay (`VERIFY_CACHE_SECONDS`, 0 to 10); 0 reads every time.
    pub verify_cache_seconds: u64,
}

impl TokenPolicy {
    /// The default token rules (2 h tokens, 5 min refresh window, 30 s leeway, 1000 sessions a key) for a given issuer.
    pub fn with_issuer(issuer: impl Into<String>) -> Self {
        Self {
            ttl_seconds: 7200,
            refresh_window_seconds: 300,
            leeway_seconds: 30,
            issuer: issuer.into(),
            audience: None,
            max_sessions_per_key: 1000,
            verify_cache_seconds: 0,
        }
    }
}

/// Configuration of a Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The DynamoDB table holding keys and sessions (`TABLE_NAME`).
    pub table_name: String,
    /// Copies of each key item in the table, the primary among them
    /// (`KEY_REPLICAS`): see [`key_replicas`].
    pub key_replicas: u8,
    /// The Secrets Manager secret holding the signing key (`SIGNING_SECRET_ARN`).
    pub signing_secret_arn: String,
    /// How long signing keys are cached (`SIGNING_KEY_CACHE_SECONDS`).
    pub signing_key_cache: Duration,
    /// Token rules.
    pub tokens: TokenPolicy,
    /// The management API's, the audit trail's and the console's rules.
    pub admin: AdminPolicy,
}

/// The rules of the management API, its audit trail, the customer portal and
/// the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPolicy {
    /// Days an audit event is kept (`AUDIT_RETENTION_DAYS`).
    pub audit_retention_days: u64,
    /// Live keys a portal customer may hold at once (`PORTAL_MAX_KEYS`).
    pub portal_max_keys: u64,
    /// Seconds a portal link's code works (`PORTAL_LINK_SECONDS`).
    pub portal_link_seconds: u64,
    /// Origins a portal link's `return_url` may point to
    /// (`PORTAL_RETURN_ORIGINS`, comma-separated), each as `scheme://host[:port]`.
    pub portal_return_origins: Vec<String>,
    /// Who may frame the console, the CSP `frame-ancestors` sources
    /// (`CONSOLE_FRAME_ANCESTORS`).
    pub console_frame_ancestors: String,
}

impl Default for AdminPolicy {
    fn default() -> Self {
        Self {
            audit_retention_days: 400,
            portal_max_keys: 20,
            portal_link_seconds: 300,
            portal_return_origins: Vec::new(),
            console_frame_ancestors: "'none'".into(),
        }
    }
}

impl AdminPolicy {
    /// Reads the admin settings through `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let defaults = Self::default();
        let portal_return_origins = match env.optional("PORTAL_RETURN_ORIGINS") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(origin_of)
                .collect::<Result<_, _>>()?,
        };
        let console_frame_ancestors = env
            .optional("CONSOLE_FRAME_ANCESTORS")
            .map_or(defaults.console_frame_ancestors, |v| v.trim().to_owned());
        // The value goes into a response header: a character that would end
        // or split the CSP directive is refused at start.
        if console_frame_ancestors
            .chars()
            .any(|c| c == ';' || c == ',' || c.is_control())
        {
            return Err(ConfigError::Invalid {
                name: "CONSOLE_FRAME_ANCESTORS",
                reason: "must be CSP sources separated by spaces".into(),
            });
        }
        Ok(Self {
            audit_retention_days: env.number("AUDIT_RETENTION_DAYS", 400, 1..=3650)?,
            portal_max_keys: env.number("PORTAL_MAX_KEYS", 20, 1..=1000)?,
            portal_link_seconds: env.number("PORTAL_LINK_SECONDS", 300, 1..=3600)?,
            portal_return_origins,
            console_frame_ancestors,
        })
    }
}

/// `raw` as the origin it names (`https://app.example.com`), refused when it
/// is not an http(s) origin alone (no path, query or credentials).
fn origin_of(raw: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::Invalid {
        name: "PORTAL_RETURN_ORIGINS",
        reason: "each entry must be an origin such as https://app.example.com".into(),
    };
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare {
        return Err(invalid());
    }
    Ok(url.origin().ascii_serialization())
}

/// A setting that is missing or does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it (never its value: it may be a secret ARN or worse).
        reason: String,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            key_replicas: key_replicas(&lookup)?,
            signing_secret_arn: env.required("SIGNING_SECRET_ARN")?,
            signing_key_cache: signing_key_cache(&lookup, 300)?,
            tokens: TokenPolicy::from_lookup(&lookup)?,
            admin: AdminPolicy::from_lookup(&lookup)?,
        })
    }
}

/// How long signing keys are cached (`SIGNING_KEY_CACHE_SECONDS`, up to a
/// day), `default` seconds when unset: every app reads it through here.
pub fn signing_key_cache(
    lookup: &dyn Fn(&str) -> Option<String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let seconds = Env(lookup).number("SIGNING_KEY_CACHE_SECONDS", default, 0..=86_400)?;
    Ok(Duration::from_secs(seconds))
}

/// `KEY_REPLICAS` when unset: eight copies carry 8 × 3,000 strongly
/// consistent reads a second of one key.
pub const DEFAULT_KEY_REPLICAS: u8 = 8;

/// The most `KEY_REPLICAS` may be; every key write clears the copies above
/// its own count up to this one.
pub const MAX_KEY_REPLICAS: u8 = 16;

/// How many copies of each key item the DynamoDB table keeps, the primary
/// among them (`KEY_REPLICAS`, 1 to [`MAX_KEY_REPLICAS`]): each on its own
/// partition, so a busy key's verifies spread over them. Every app that
/// reads or writes keys on DynamoDB reads it through here.
pub fn key_replicas(lookup: &dyn Fn(&str) -> Option<String>) -> Result<u8, ConfigError> {
    let copies = Env(lookup).number(
        "KEY_REPLICAS",
        DEFAULT_KEY_REPLICAS.into(),
        1..=MAX_KEY_REPLICAS.into(),
    )?;
    // In range, so it fits.
    Ok(u8::try_from(copies).unwrap_or(MAX_KEY_REPLICAS))
}

impl TokenPolicy {
    /// Reads the token settings through `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let ttl_seconds = env.number("TOKEN_TTL_SECONDS", 7200, 60..=86_400)?;
        let refresh_window_seconds = env.number("REFRESH_WINDOW_SECONDS", 300, 0..=86_400)?;
        // A session keeps one predecessor. With a window over half the
        // lifetime, a second refresh would drop a predecessor that is still
        // live, breaking rule 3 (the predecessor verifies until its expiry).
        if refresh_window_seconds > ttl_seconds / 2 {
            return Err(ConfigError::Invalid {
                name: "REFRESH_WINDOW_SECONDS",
                reason: "must be at most half of TOKEN_TTL_SECONDS".into(),
            });
        }
        Ok(Self {
            ttl_seconds,
            refresh_window_seconds,
            leeway_seconds: env.number("CLOCK_LEEWAY_SECONDS", 30, 0..=300)?,
            issuer: env.required("ISSUER")?,
            audience: env.optional("AUDIENCE"),
            max_sessions_per_key: env.number("MAX_SESSIONS_PER_KEY", 1000, 1..=10_000_000)?,
            verify_cache_seconds: env.number(
                "VERIFY_CACHE_SECONDS",
                0,
                0..=crate::domain::verify_cache::MAX_SECONDS,
            )?,
        })
    }
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    fn number(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        let value: u64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: "must be a whole number".into(),
        })?;
        if !range.contains(&value) {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("must be between {} and {}", range.start(), range.end()),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("TABLE_NAME", "auth"),
        (
            "SIGNING_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:1:secret:s",
        ),
        ("ISSUER", "https://auth.example.com"),
    ];

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.tokens.ttl_seconds, 7200);
        assert_eq!(c.tokens.refresh_window_seconds, 300);
        assert_eq!(c.tokens.leeway_seconds, 30);
        assert_eq!(c.signing_key_cache, Duration::from_secs(300));
        assert_eq!(c.tokens.audience, None);
        assert_eq!(c.tokens.max_sessions_per_key, 1000);
        assert_eq!(c.tokens.verify_cache_seconds, 0, "strict by default");
        assert_eq!(c.admin, AdminPolicy::default());
        assert_eq!(c.admin.audit_retention_days, 400);
        assert_eq!(c.admin.portal_max_keys, 20);
        assert_eq!(c.key_replicas, 8);
    }

    #[test]
    fn key_replicas_are_range_checked() {
        for (value, ok) in [("1", true), ("16", true), ("0", false), ("17", false)] {
            let mut vars = BASE.to_vec();
            vars.push(("KEY_REPLICAS", value));
            assert_eq!(config(&vars).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn portal_return_origins_are_origins_alone() {
        let with = |value: &str| {
            let mut vars = BASE.to_vec();
            vars.push(("PORTAL_RETURN_ORIGINS", value));
            config(&vars).map(|c| c.admin.portal_return_origins)
        };
        assert_eq!(
            with(" https://app.example.com , http://localhost:3000/").unwrap(),
            ["https://app.example.com", "http://localhost:3000"]
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/billing",
            "https://app.example.com?x=1",
            "https://u:p@app.example.com",
            "javascript:alert(1)",
            "ftp://app.example.com",
        ] {
            let err = with(bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("PORTAL_RETURN_ORIGINS is invalid"),
                "{bad}"
            );
        }
    }

    #[test]
    fn frame_ancestors_cannot_break_out_of_their_directive() {
        let with = |value: &str| {
            let mut vars = BASE.to_vec();
            vars.push(("CONSOLE_FRAME_ANCESTORS", value));
            config(&vars).map(|c| c.admin.console_frame_ancestors)
        };
        assert_eq!(
            with("'self' https://admin.example.com").unwrap(),
            "'self' https://admin.example.com"
        );
        assert!(with("'self'; script-src *").is_err());
        assert!(with("'self'\r\nSet-Cookie: x").is_err());
    }

    #[test]
    fn audit_retention_the_portal_cap_and_the_verify_cache_are_range_checked() {
        for (name, value, ok) in [
            ("AUDIT_RETENTION_DAYS", "1", true),
            ("AUDIT_RETENTION_DAYS", "0", false),
            ("AUDIT_RETENTION_DAYS", "3651", false),
            ("PORTAL_MAX_KEYS", "1000", true),
            ("PORTAL_MAX_KEYS", "0", false),
            ("VERIFY_CACHE_SECONDS", "10", true),
            ("VERIFY_CACHE_SECONDS", "11", false),
        ] {
            let mut vars = BASE.to_vec();
            vars.push((name, value));
            assert_eq!(config(&vars).is_ok(), ok, "{name}={value}");
        }
    }

    #[test]
    fn the_session_cap_is_range_checked() {
        for (value, ok) in [
            ("1", true),
            ("10000000", true),
            ("0", false),
            ("10000001", false),
        ] {
            let mut vars = BASE.to_vec();
            vars.push(("MAX_SESSIONS_PER_KEY", value));
            assert_eq!(config(&vars).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = config(&BASE[..2]).unwrap_err();
        assert_eq!(err, ConfigError::Missing("ISSUER"));
        assert_eq!(err.to_string(), "ISSUER is required but not set");
    }

    #[test]
    fn a_malformed_number_is_named() {
        let mut vars = BASE.to_vec();
        vars.push(("TOKEN_TTL_SECONDS", "2h"));
        let err = config(&vars).unwrap_err();
        assert!(err.to_string().starts_with("TOKEN_TTL_SECONDS is invalid"));
    }

    #[test]
    fn a_refresh_window_over_half_the_token_lifetime_is_rejected() {
        let mut vars = BASE.to_vec();
        vars.push(("TOKEN_TTL_SECONDS", "600"));
        vars.push(("REFRESH_WINDOW_SECONDS", "300"));
        assert!(config(&vars).is_ok());
        vars.pop();
        vars.push(("REFRESH_WINDOW_SECONDS", "301"));
        let err = config(&vars).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REFRESH_WINDOW_SECONDS is invalid")
        );
    }
}
