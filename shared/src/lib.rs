//! The common crate of the bearer-token service, in folders by layer; a
//! module's folder says what it may import.
//!
//! - [`domain`]: API keys, scopes, sessions, tokens, signing keys, the
//!   [`domain::store::Store`] port, the domain error and one module per use
//!   case (login, verify, revoke, introspect, authenticate, admin). No AWS
//!   SDK, `lambda_http`, hyper or rusqlite.
//! - [`http`]: `lambda_http` requests in, JSON out: routes, the HTTP error
//!   (which alone maps domain errors to statuses), bodies, credentials.
//! - [`authorizer`]: the API Gateway Lambda authorizer: event shapes, route
//!   map, IAM policies, handler.
//! - [`aws`]: everything that names an AWS SDK type: client wiring and call
//!   counters, the DynamoDB store, the Secrets Manager key source and the
//!   signing-key rotation.
//! - [`local`]: the embedded backends of `authctl serve`: SQLite store and
//!   signing-key file.
//! - [`config`] and [`telemetry`]: settings and the log, for every layer.
//!
//! The Lambda binaries and `authctl` only wire these together.

pub mod authorizer;
pub mod aws;
pub mod config;
pub mod domain;
pub mod http;
pub mod local;
pub mod telemetry;

pub use config::Config;
pub use domain::App;
