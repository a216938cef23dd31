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
//!   With a [`Trail`], then record the `signing_key.rotated` event, also
//!   when the version is current already: a finish that died between the
//!   two, retried, writes the event it missed, and the event's id, made
//!   from the new kid and its version's creation time, lets no retry write
//!   a second one.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;

use crate::aws::dynamodb::DynamoDbStore;
use crate::aws::secrets::{CURRENT, PREVIOUS, SigningSecret};
use crate::config::{AdminPolicy, ConfigError, TokenPolicy};
use crate::domain::audit::{Actor, AuditEvent, Origin, Stamp};
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::keyring::SigningKey;
use crate::domain::rotation::{Pace, Rotated, Spacing, TooSoon};
use crate::domain::store::{Store, StoreError};
use crate::domain::token::{self, Claims};

/// The staging label of a version being rotated in.
pub const PENDING: &str = "AWSPENDING";

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
    /// The new key is current, but its audit event was not written.
    #[error(
        "signing key {kid} is current, but its signing_key.rotated event was not written \
         (a retried finishSecret writes it)"
    )]
    Unrecorded {
        /// The new key's id.
        kid: String,
        /// Why the store refused.
        #[source]
        source: StoreError,
    },
}

/// Where a [`Rotator`] records each rotation it finishes: the audit trail's
/// store, who rotates, and for how many days the event is kept.
#[derive(Clone)]
pub struct Trail {
    /// The store the events go to.
    pub store: Arc<dyn Store>,
    /// Who rotates: the rotation function, or the operator running `authctl`.
    pub actor: Actor,
    /// `AUDIT_RETENTION_DAYS`.
    pub retention_days: u64,
}

impl Trail {
    /// The rotation function's trail: the table `TABLE_NAME` through
    /// `dynamodb`, the system actor named after the function
    /// (`AWS_LAMBDA_FUNCTION_NAME`, `rotation` outside Lambda), events kept
    /// `AUDIT_RETENTION_DAYS`; settings read through `lookup`.
    pub fn of_function(
        dynamodb: aws_sdk_dynamodb::Client,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let set = |name| lookup(name).filter(|v| !v.trim().is_empty());
        let table = set("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let name = set("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "rotation".to_owned());
        Ok(Self {
            store: Arc::new(DynamoDbStore::new(dynamodb, table)),
            actor: Actor::system(name),
            retention_days: AdminPolicy::from_lookup(lookup)?.audit_retention_days,
        })
    }
}

/// Runs the rotation steps against one Secrets Manager client.
pub struct Rotator {
    client: Client,
    spacing: Spacing,
    clock: Arc<dyn Clock>,
    trail: Option<Trail>,
}

impl Rotator {
    /// A rotator using `client` that keeps rotations `spacing` apart, on the system clock.
    pub fn new(client: Client, spacing: Spacing) -> Self {
        Self {
            client,
            spacing,
            clock: Arc::new(SystemClock),
            trail: None,
        }
    }

    /// The same rotator recording each rotation it finishes in `trail`.
    pub fn with_trail(self, trail: Trail) -> Self {
        Self {
            trail: Some(trail),
            ..self
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
            // Already finished: every step is then a no-op, but for the
            // event of a finish that died before writing it.
            return match step {
                Step::Finish => {
                    self.record(secret_id, token, labelled(&stages, PREVIOUS))
                        .await
                }
                _ => Ok(()),
            };
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
            Step::Finish => {
                let replaced = self.finish(secret_id, token, &stages).await?;
                self.record(secret_id, token, Some(replaced)).await
            }
        }
    }

    /// Runs all four steps with a fresh token, as Secrets Manager would.
    pub async fn rotate(&self, secret_id: &str, pace: Pace) -> Result<Rotated, RotationError> {
        let stages = self.stages(secret_id).await?;
        let token = uuid::Uuid::new_v4().to_string();
        for step in Step::ALL {
            self.step(step, secret_id, &token, pace).await?;
        }
        Ok(Rotated {
            kid: token,
            replaced: labelled(&stages, CURRENT),
            dropped: labelled(&stages, PREVIOUS),
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
        let made = current.created_ms.map(|ms| ms / 1000).ok_or_else(|| {
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

    /// Moves AWSCURRENT to `token`; the version it was on.
    async fn finish(
        &self,
        secret_id: &str,
        token: &str,
        stages: &HashMap<String, Vec<String>>,
    ) -> Result<String, RotationError> {
        let current = labelled(stages, CURRENT)
            .ok_or_else(|| RotationError::State(format!("no version is {CURRENT}")))?;
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(CURRENT)
            .move_to_version_id(token)
            .remove_from_version_id(&current)
            .send()
            .await
            .map_err(|e| RotationError::Backend(Box::new(e)))?;
        Ok(current)
    }

    /// Writes the event of the rotation from `replaced` to the current
    /// version `token`, if this rotator has a trail. A failed write fails
    /// the finishSecret step although AWSCURRENT has moved: Secrets Manager
    /// then retries the step, which finds the version current and writes
    /// the event again, and the event's fixed id makes that safe.
    async fn record(
        &self,
        secret_id: &str,
        token: &str,
        replaced: Option<String>,
    ) -> Result<(), RotationError> {
        let Some(trail) = &self.trail else {
            return Ok(());
        };
        // The event's time is when the new version was made: every retry
        // reads the same one, where the clock would give each its own id.
        let made_ms = self
            .value(secret_id, Some(token), CURRENT)
            .await?
            .and_then(|v| v.created_ms)
            .ok_or_else(|| {
                RotationError::State(format!("version {token} has no creation date since 1970"))
            })?;
        let stamp = Stamp {
            origin: Origin::of(trail.actor.clone()),
            now_ms: made_ms,
            retention_days: trail.retention_days,
        };
        let event = AuditEvent::of_signing_key_rotation(replaced.as_deref(), token, &stamp);
        trail
            .store
            .record_event(&event)
            .await
            .map_err(|source| RotationError::Unrecorded {
                kid: token.to_owned(),
                source,
            })
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
                    created_ms: out.created_date().and_then(|d| {
                        let secs = u64::try_from(d.secs()).ok()?;
                        secs.checked_mul(1000)?
                            .checked_add(u64::from(d.subsec_nanos() / 1_000_000))
                    }),
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

/// A version's key and when it was made (Unix milliseconds).
struct Version {
    key: SecretString,
    created_ms: Option<u64>,
}

/// The version holding `label`, if any.
fn labelled(stages: &HashMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(version, _)| version.clone())
}
