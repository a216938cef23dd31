//! The common crate of the bearer-token service.
//!
//! Everything the `login`, `verify` and `revoke` Lambdas share lives here; the
//! binaries only wire it to the Lambda runtime. The logic modules ([`login`],
//! [`verify`], [`revoke`]) know nothing of Lambda or HTTP: [`http`] adapts them.

pub mod admin;
pub mod api_key;
pub mod app;
pub mod authorizer;
pub mod calls;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod keyring;
pub mod local_keys;
pub mod login;
pub mod request;
pub mod revoke;
pub mod rotation;
pub mod scope;
pub mod secrets;
pub mod session_id;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod verify;

pub use app::App;
pub use config::Config;
pub use error::ApiError;
