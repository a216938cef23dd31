//! Signing-key rotation: the four steps of a Secrets Manager rotation.
//!
//! Secrets Manager calls the rotation Lambda once per step with the same
//! `ClientRequestToken`, which becomes the new version's id and so the new
//! `kid`. Every step may be retried and is idempotent; a failing step leaves
//! `AWSCURRENT` where it was, so signing and verifying go on undisturbed.
//!
//! - `createSecret`: a new random key (256 bits) as `AWSPENDING`, unless that
//!   version already holds one. Refused sooner than the [`Spacing`] after the
//!   previous rotation: only AWSCURRENT and AWSPREVIOUS verify, so a second
//!   rotation within a token's lifetime would drop a key live tokens need.
//! - `setSecret`: nothing. The key is shared with no other system: only our
//!   own functions sign and verify with it, and they read it from this secret.
//! - `testSecret`: sign and verify a probe token with the pending key.
//! - `finishSecret`: move `AWSCURRENT` to the new version; Secrets Manager
//!   moves `AWSPREVIOUS` to the old one, which keeps verifying live tokens.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, TokenPolicy};
use crate::keyring::SigningKey;
use crate::secrets::{CURRENT, PREVIOUS, SigningSecret};
use crate::token::{self, Claims};

/// The staging label of a version being rotated in.
pub const PENDING: &str = "AWSPENDING";

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
    i64::try_from(unix)
        .ok()
        .and_then(|secs| DateTime::from_secs(secs).fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| format!("{unix} s after 1970"))
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The new current key's id.
    pub kid: String,
    /// The key that no longer verifies (the previous previous one), if any.
    pub dropped: Option<String>,
}

/// One step of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Step {
    /// Create the pending version.
    #[serde(rename = "createSecret")]
    Create,
    /// Install the pending value in the system that uses it (nothing here).
    #[serde(rename = "setSecret")]
    Set,
    /// Check the pending value works.
    #[serde(rename = "testSecret")]
    Test,
    /// Make the pending version current.
    #[serde(rename = "finishSecret")]
    Finish,
}

impl Step {
    /// The steps in the order Secrets Manager runs them.
    pub const ALL: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];
}

/// The event Secrets Manager sends the rotation Lambda.
#[derive(Debug, Clone, Deserialize)]
pub struct RotationEvent {
    /// Which step.
    #[serde(rename = "Step")]
    pub step: Step,
    /// The secret's ARN.
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    /// The new version's id.
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
}

/// Why a step failed. The secret is left as it was.
#[derive(Debug, Error)]
pub enum RotationError {
    /// Secrets Manager failed or refused.
    #[error("secrets manager call failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The secret's versions are not in a state this step can work from.
    #[error("{0}")]
    State(String),
    /// The pending key does not sign and verify.
    #[error("pending key failed its test: {0}")]
    Test(String),
    /// The OS random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// Too soon after the previous rotation.
    #[error(transparent)]
    TooSoon(#[from] TooSoon),
}

/// Runs the rotation steps against one Secrets Manager client.
pub struct Rotator {
    client: Client,
    spacing: Spacing,
    clock: Arc<dyn Clock>,
}

impl Rotator {
    /// A rotator using `client` that keeps rotations `spacing` apart, on the system clock.
    pub fn new(client: Client, spacing: Spacing) -> Self {
        Self {
            client,
            spacing,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same rotator reading time from `clock`.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The rotation Lambda's handler: runs the event's step and logs one line
    /// (step, secret, version, outcome; never a key).
    pub async fn handle(&self, event: RotationEvent) -> Result<(), RotationError> {
        let result = self.run(event.step, &event.secret_id, &event.token).await;
        match &result {
            Ok(()) => {
                tracing::info!(step = ?event.step, secret_id = %event.secret_id, version = %event.token, outcome = "ok", "rotation")
            }
            Err(e) => {
                tracing::error!(step = ?event.step, secret_id = %event.secret_id, version = %event.token, outcome = "error", error = %e, "rotation")
            }
        }
        result
    }

    /// Runs one step for the version `token` of `secret_id`, as Secrets
    /// Manager asks: `createSecret` keeps to the spacing.
    pub async fn run(&self, step: Step, secret_id: &str, token: &str) -> Result<(), RotationError> {
        self.step(step, secret_id, token, Pace::Spaced).await
    }

    async fn step(
        &self,
        step: Step,
        secret_id: &str,
        token: &str,
        pace: Pace,
    ) -> Result<(), RotationError> {
        if !token::is_valid_kid(token) {
            return Err(RotationError::State(
                "the ClientRequestToken is not a valid key id".into(),
            ));
        }
        let stages = self.stages(secret_id).await?;
        let of_token = stages.get(token).map(Vec::as_slice).unwrap_or_default();
        if of_token.iter().any(|s| s == CURRENT) {
            // Already finished: every step is then a no-op.
            return Ok(());
        }
        if step != Step::Create && !of_token.iter().any(|s| s == PENDING) {
            return Err(RotationError::State(format!(
                "version {token} is not {PENDING}; run createSecret first"
            )));
        }
        match step {
            Step::Create => self.create(secret_id, token, &stages, pace).await,
            Step::Set => Ok(()),
            Step::Test => self.test(secret_id, token).await,
            Step::Finish => self.finish(secret_id, token, &stages).await,
        }
    }

    /// Runs all four steps with a fresh token, as Secrets Manager would.
    pub async fn rotate(&self, secret_id: &str, pace: Pace) -> Result<Rotated, RotationError> {
        let dropped = labelled(&self.stages(secret_id).await?, PREVIOUS);
        let token = uuid::Uuid::new_v4().to_string();
        for step in Step::ALL {
            self.step(step, secret_id, &token, pace).await?;
        }
        Ok(Rotated {
            kid: token,
            dropped,
        })
    }

    async fn stages(&self, secret_id: &str) -> Result<HashMap<String, Vec<String>>, RotationError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| RotationError::Backend(Box::new(e)))?;
        Ok(out.version_ids_to_stages.unwrap_or_default())
    }

    async fn create(
        &self,
        secret_id: &str,
        token: &str,
        stages: &HashMap<String, Vec<String>>,
        pace: Pace,
    ) -> Result<(), RotationError> {
        // The current version must be readable: rotating a broken secret would hide it.
        let current = self
            .value(secret_id, None, CURRENT)
            .await?
            .ok_or_else(|| RotationError::State(format!("no version is {CURRENT}")))?;
        if self.pending(secret_id, token).await?.is_some() {
            // A retry: this rotation was allowed when the key was made.
            return Ok(());
        }
        // ListSecretVersionIds would do, but GetSecretValue's CreatedDate is
        // the one emulators fill in too.
        let made = current.created.ok_or_else(|| {
            RotationError::State(format!("{CURRENT} has no creation date since 1970"))
        })?;
        let last = labelled(stages, PREVIOUS).map(|_| made);
        let now = self
            .clock
            .now()
            .map_err(|e| RotationError::State(e.to_string()))?;
        self.spacing.check(pace, last, now)?;
        let mut bytes = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| RotationError::Random(e.to_string()))?;
        let value = serde_json::json!({ "key": hex::encode(bytes) }).to_string();
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages(PENDING)
            .send()
            .await
            .map_err(|e| RotationError::Backend(Box::new(e)))?;
        Ok(())
    }

    async fn test(&self, secret_id: &str, token: &str) -> Result<(), RotationError> {
        let key = self
            .pending(secret_id, token)
            .await?
            .ok_or_else(|| RotationError::State(format!("version {token} holds no value")))?;
        let key = SigningKey::new(token, &key).map_err(|e| RotationError::Test(e.to_string()))?;
        let probe = Claims {
            iss: "rotation-test".into(),
            aud: None,
            sub: "0000000000000000".into(),
            sid: "rotation-test".into(),
            jti: token.to_owned(),
            iat: 0,
            nbf: None,
            exp: u64::MAX,
            scope: "test".into(),
        };
        let signed = token::sign(&probe, &key).map_err(|e| RotationError::Test(e.to_string()))?;
        let unverified = token::inspect(&signed).map_err(|e| RotationError::Test(e.to_string()))?;
        let claims = token::verify_signature(&unverified, &key)
            .map_err(|e| RotationError::Test(e.to_string()))?;
        let policy = TokenPolicy::with_issuer("rotation-test");
        token::check_claims(&claims, &policy, 0).map_err(|e| RotationError::Test(e.to_string()))?;
        if claims != probe || unverified.kid() != token {
            return Err(RotationError::Test("probe token did not round-trip".into()));
        }
        Ok(())
    }

    async fn finish(
        &self,
        secret_id: &str,
        token: &str,
        stages: &HashMap<String, Vec<String>>,
    ) -> Result<(), RotationError> {
        let current = labelled(stages, CURRENT)
            .ok_or_else(|| RotationError::State(format!("no version is {CURRENT}")))?;
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(CURRENT)
            .move_to_version_id(token)
            .remove_from_version_id(current)
            .send()
            .await
            .map_err(|e| RotationError::Backend(Box::new(e)))?;
        Ok(())
    }

    /// The pending key of version `token`, or `None` when it holds no value yet.
    async fn pending(
        &self,
        secret_id: &str,
        token: &str,
    ) -> Result<Option<SecretString>, RotationError> {
        Ok(self
            .value(secret_id, Some(token), PENDING)
            .await?
            .map(|v| v.key))
    }

    async fn value(
        &self,
        secret_id: &str,
        version: Option<&str>,
        stage: &str,
    ) -> Result<Option<Version>, RotationError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version.map(str::to_owned))
            .version_stage(stage)
            .send()
            .await;
        match out {
            Ok(out) => {
                let value: SigningSecret = out
                    .secret_string()
                    .and_then(SigningSecret::parse)
                    .ok_or_else(|| {
                        RotationError::State(format!(
                            "{stage} is not a JSON object with a \"key\" string"
                        ))
                    })?;
                Ok(Some(Version {
                    key: value.key,
                    created: out
                        .created_date()
                        .and_then(|d| u64::try_from(d.secs()).ok()),
                }))
            }
            Err(e)
                if version.is_some()
                    && matches!(
                        e.as_service_error(),
                        Some(GetSecretValueError::ResourceNotFoundException(_))
                    ) =>
            {
                Ok(None)
            }
            Err(e) => Err(RotationError::Backend(Box::new(e))),
        }
    }
}

/// A version's key and when it was made (Unix seconds).
struct Version {
    key: SecretString,
    created: Option<u64>,
}

/// The version holding `label`, if any.
fn labelled(stages: &HashMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(version, _)| version.clone())
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
