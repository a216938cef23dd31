//! Signing-key rotation rules: how far apart two rotations must be, and
//! what a rotation did. The embedded key file and the Secrets Manager
//! rotation both keep to them.

use std::time::{Duration, UNIX_EPOCH};

use thiserror::Error;

use crate::config::{Config, ConfigError};

/// The least time between two rotations: `TOKEN_TTL_SECONDS +
/// SIGNING_KEY_CACHE_SECONDS + CLOCK_LEEWAY_SECONDS`. The key a rotation makes
/// previous signs until every environment's cache has seen the rotation, and
/// its last tokens live a lifetime plus leeway after that; only then may the
/// next rotation drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spacing {
    seconds: u64,
}

impl Spacing {
    /// The spacing for these lifetimes, in seconds.
    pub const fn new(token_ttl: u64, key_cache: u64, leeway: u64) -> Self {
        Self {
            seconds: token_ttl.saturating_add(key_cache).saturating_add(leeway),
        }
    }

    /// The spacing the functions configured by `config` need.
    pub fn of(config: &Config) -> Self {
        Self::new(
            config.tokens.ttl_seconds,
            config.signing_key_cache.as_secs(),
            config.tokens.leeway_seconds,
        )
    }

    /// Reads the three settings from the process environment, with the
    /// functions' defaults and ranges.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the three settings through `lookup`. Errors name the variable.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // The lifetimes are parsed exactly as the functions parse them; the
        // names a rotation does not use get placeholders rather than a
        // second copy of the rules.
        let config = Config::from_lookup(|name| match name {
            "TABLE_NAME" | "SIGNING_SECRET_ARN" | "ISSUER" => Some("unused".to_owned()),
            _ => lookup(name),
        })?;
        Ok(Self::of(&config))
    }

    /// The spacing in seconds.
    pub const fn seconds(self) -> u64 {
        self.seconds
    }

    /// Whether a rotation at `now` may go ahead. `last` is when the current
    /// key was made, if a rotation made it (a secret never rotated has no
    /// previous key to drop, so its first rotation is always allowed).
    pub fn check(self, pace: Pace, last: Option<u64>, now: u64) -> Result<(), TooSoon> {
        match (pace, last) {
            (Pace::Forced, _) | (Pace::Spaced, None) => Ok(()),
            (Pace::Spaced, Some(last)) => {
                let allowed_from = last.saturating_add(self.seconds);
                if now >= allowed_from {
                    Ok(())
                } else {
                    Err(TooSoon {
                        last,
                        allowed_from,
                        spacing: self.seconds,
                    })
                }
            }
        }
    }
}

/// Whether a rotation keeps to the [`Spacing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Refused sooner than the spacing after the previous rotation.
    Spaced,
    /// At once, for a leaked key: tokens signed by the key that drops out
    /// (the previous one) stop verifying.
    Forced,
}

/// A rotation refused by the [`Spacing`] rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the signing key was rotated at {}; the next rotation may run from {} \
     ({spacing} s later: TOKEN_TTL_SECONDS + SIGNING_KEY_CACHE_SECONDS + CLOCK_LEEWAY_SECONDS), \
     when no live token needs the previous key any more",
    rfc3339(*last),
    rfc3339(*allowed_from)
)]
pub struct TooSoon {
    /// When the current key was made (Unix seconds).
    pub last: u64,
    /// The first second a rotation is allowed.
    pub allowed_from: u64,
    /// The spacing in seconds.
    pub spacing: u64,
}

/// A Unix time as RFC 3339 (`2030-01-02T03:04:05Z`), for messages; a time
/// past year 9999 in seconds.
pub fn rfc3339(unix: u64) -> String {
    // humantime writes four-digit years only: later times get the fallback.
    const YEAR_10000: u64 = 253_402_300_800;
    match UNIX_EPOCH.checked_add(Duration::from_secs(unix)) {
        Some(time) if unix < YEAR_10000 => humantime::format_rfc3339_seconds(time).to_string(),
        _ => format!("{unix} s after 1970"),
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The new current key's id.
    pub kid: String,
    /// The key that was current and now only verifies, if any.
    pub replaced: Option<String>,
    /// The key that no longer verifies (the previous previous one), if any.
    pub dropped: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Spacing = Spacing { seconds: 7530 };
    const LAST: u64 = 1_700_000_000;

    #[test]
    fn the_spacing_is_a_token_lifetime_plus_the_key_cache_plus_the_leeway() {
        assert_eq!(Spacing::new(7200, 300, 30), SPACING);
        assert_eq!(Spacing::new(u64::MAX, 300, 30).seconds(), u64::MAX);
    }

    #[test]
    fn a_rotation_exactly_one_spacing_after_the_last_is_allowed() {
        assert_eq!(SPACING.check(Pace::Spaced, Some(LAST), LAST + 7530), Ok(()));
        assert_eq!(
            SPACING.check(Pace::Spaced, Some(LAST), LAST + 90_000),
            Ok(())
        );
    }

    #[test]
    fn a_rotation_one_second_sooner_is_refused_and_says_when_it_may_run() {
        let err = SPACING
            .check(Pace::Spaced, Some(LAST), LAST + 7529)
            .unwrap_err();
        assert_eq!(
            err,
            TooSoon {
                last: LAST,
                allowed_from: LAST + 7530,
                spacing: 7530
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("rotated at 2023-11-14T22:13:20Z"),
            "{message}"
        );
        assert!(
            message.contains("may run from 2023-11-15T00:18:50Z (7530 s later"),
            "{message}"
        );
    }

    #[test]
    fn a_forced_rotation_is_allowed_at_once() {
        assert_eq!(SPACING.check(Pace::Forced, Some(LAST), LAST), Ok(()));
    }

    #[test]
    fn the_first_rotation_of_a_secret_drops_no_key_and_is_allowed_at_once() {
        assert_eq!(SPACING.check(Pace::Spaced, None, 0), Ok(()));
    }

    #[test]
    fn a_last_rotation_in_the_far_future_refuses_without_overflow() {
        let err = SPACING
            .check(Pace::Spaced, Some(u64::MAX - 1), 0)
            .unwrap_err();
        assert_eq!(err.allowed_from, u64::MAX);
        assert!(err.to_string().contains(" s after 1970"), "{err}");
    }

    #[test]
    fn the_settings_are_read_with_the_functions_defaults_and_ranges() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(Spacing::from_lookup(&env(&[])), Ok(SPACING));
        assert_eq!(
            Spacing::from_lookup(&env(&[
                ("TOKEN_TTL_SECONDS", "600"),
                ("SIGNING_KEY_CACHE_SECONDS", "0"),
                ("CLOCK_LEEWAY_SECONDS", "5"),
            ]))
            .map(Spacing::seconds),
            Ok(605)
        );
        let err = Spacing::from_lookup(&env(&[("CLOCK_LEEWAY_SECONDS", "301")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CLOCK_LEEWAY_SECONDS is invalid"),
            "{err}"
        );
    }
}
