//! A client for the bearer-auth service that refreshes tokens right.
//!
//! A [`TokenSource`] trades an API key for bearer tokens and keeps the
//! current one:
//!
//! - [`TokenSource::token`] returns the cached token while it has more than
//!   the refresh margin left: the server's refresh window (default 300 s),
//!   capped at half the token's lifetime, less a jitter of up to 10 % drawn
//!   once per token, so a fleet does not refresh in the same second.
//! - One login at a time, whatever the number of callers: those holding a
//!   valid token get it at once while the refresh runs in the background;
//!   those with none wait for that one login and share its result.
//! - A failed refresh keeps the valid token and tries again after 1 s,
//!   doubling to 30 s. Only with no valid token left does `token` fail, with
//!   an [`Error`] whose [`reason`](Error::reason) says why (`unreachable`,
//!   `invalid_client`, `too_many_sessions`, ...). The next call tries again:
//!   a failure never poisons or deadlocks the source.
//! - [`TokenSource::invalidate`] drops a token an API answered 401 to;
//!   [`TokenSource::revoke`] ends the session.
//! - The API key and tokens never appear in `Debug` output, logs or errors.
//!
//! With the `reqwest` feature (on by default), [`BearerAuth`] is a
//! `reqwest-middleware` middleware that sets `Authorization` and retries a
//! request once, with a fresh token, after a 401.
//!
//! Make one source per process and share it (it is a cheap `Clone`): each
//! source logs in to a session of its own. It needs a tokio runtime.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_auth_client::TokenSource;
//!
//! let source = TokenSource::builder("https://auth.example.com", "bauth_...").build()?;
//! let token = source.token().await?;
//! let answer = reqwest::Client::new()
//!     .get("https://api.example.com/documents")
//!     .bearer_auth(token.as_str())
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```

mod clock;
mod error;
mod login;
#[cfg(feature = "reqwest")]
mod middleware;
mod schedule;
mod source;
mod token;

pub use error::Error;
#[cfg(feature = "reqwest")]
pub use middleware::BearerAuth;
pub use source::{Builder, TokenEndpoint, TokenSource};
pub use token::AccessToken;

/// A clock the tests move forward, so that they need not wait for a token
/// to age. Behind the `test-clock` feature; not part of the API.
#[cfg(feature = "test-clock")]
#[doc(hidden)]
pub mod testing {
    pub use crate::clock::TestClock;
}
