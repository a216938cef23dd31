//! Signing keys from AWS Secrets Manager.
//!
//! The secret's value is `{"key": "<at least 32 characters>"}` and its version
//! id is the `kid`. AWSCURRENT signs; AWSCURRENT and AWSPREVIOUS verify.
//! AWSCURRENT can be loaded alone: see [`crate::domain::keyring`] for when.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::keyring::{KeySet, KeySource, KeySourceError, SigningKey};

/// The staging label of the key that signs.
pub const CURRENT: &str = "AWSCURRENT";
/// The staging label of the key replaced by the last rotation.
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// Loads the signing keys of one secret.
pub struct SecretsManagerKeySource {
    client: Client,
    secret_id: String,
}

/// The secret's JSON value.
#[derive(Deserialize)]
pub struct SigningSecret {
    /// The HMAC key.
    pub key: SecretString,
}

impl SigningSecret {
    /// Parses a secret value; `None` unless it is a JSON object with a `key` string.
    pub fn parse(value: &str) -> Option<Self> {
        // A derived struct would also accept a JSON array (`["..."]`) as its
        // fields in order: only an object is the documented shape.
        match serde_json::from_str(value).ok()? {
            object @ serde_json::Value::Object(_) => serde_json::from_value(object).ok(),
            _ => None,
        }
    }
}

impl SecretsManagerKeySource {
    /// A source for `secret_id` (ARN or name).
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// The key at `stage`, or `None` when the secret has no version there.
    async fn stage(&self, stage: &str) -> Result<Option<SigningKey>, KeySourceError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let missing = matches!(
                    e.as_service_error(),
                    Some(GetSecretValueError::ResourceNotFoundException(_))
                );
                // A secret that was never rotated has no AWSPREVIOUS: not an error.
                if missing && stage == PREVIOUS {
                    return Ok(None);
                }
                return Err(KeySourceError::Unavailable(Box::new(e)));
            }
        };
        let kid = out
            .version_id()
            .ok_or_else(|| KeySourceError::Invalid(format!("{stage} has no version id")))?;
        let value: SigningSecret = out
            .secret_string()
            .and_then(SigningSecret::parse)
            .ok_or_else(|| {
                KeySourceError::Invalid(format!(
                    "{stage} is not a JSON object with a \"key\" string"
                ))
            })?;
        SigningKey::new(kid, &value.key).map(Some)
    }
}

#[async_trait]
impl KeySource for SecretsManagerKeySource {
    async fn load(&self) -> Result<KeySet, KeySourceError> {
        let (current, previous) = tokio::join!(self.current(), self.stage(PREVIOUS));
        Ok(KeySet {
            current: current?,
            previous: previous?.map(Arc::new),
        })
    }

    async fn load_current(&self) -> Result<KeySet, KeySourceError> {
        Ok(KeySet {
            current: self.current().await?,
            previous: None,
        })
    }
}

impl SecretsManagerKeySource {
    /// The key at AWSCURRENT, which every secret must have.
    async fn current(&self) -> Result<Arc<SigningKey>, KeySourceError> {
        self.stage(CURRENT)
            .await?
            .map(Arc::new)
            .ok_or_else(|| KeySourceError::Invalid(format!("no {CURRENT} version")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn only_an_object_with_a_key_string_is_a_signing_secret() {
        let key = "k".repeat(32);
        let parsed = SigningSecret::parse(&serde_json::json!({ "key": key }).to_string());
        assert_eq!(
            parsed.map(|s| s.key.expose_secret().to_owned()),
            Some(key.clone())
        );
        for bad in [
            serde_json::json!([key]).to_string(),
            serde_json::json!({ "password": key }).to_string(),
            serde_json::json!({ "key": 7 }).to_string(),
            key,
        ] {
            assert!(SigningSecret::parse(&bad).is_none(), "{bad}");
        }
    }
}
