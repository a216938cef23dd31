//! The domain: API keys, scopes, sessions, tokens, signing keys, the store
//! port and one module per use case. It knows no AWS SDK, `lambda_http`,
//! hyper or rusqlite (`shared/tests/layers.rs` holds it to that); the adapters in
//! [`crate::http`], [`crate::authorizer`], [`crate::aws`] and [`crate::local`]
//! depend on it, never the other way.

pub mod admin;
pub mod api_key;
pub mod app;
pub mod audit;
pub mod authenticate;
pub mod clock;
pub mod error;
pub mod introspect;
pub mod keyring;
pub mod login;
pub mod manage;
pub mod owner;
pub mod portal;
pub mod revoke;
pub mod rotation;
pub mod scope;
pub mod session_id;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;
pub mod token;
pub mod usage;
pub mod verify;
pub mod verify_cache;

pub use app::App;
pub use error::Error;
