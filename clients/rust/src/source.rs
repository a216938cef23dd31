//! The token source: its builder, the cached token, and single flight.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::error::{Action, Error};
use crate::login::Service;
use crate::schedule::{Granted, Schedule};
use crate::token::AccessToken;

/// The outcome of one login, shared by every caller that waited for it.
type Outcome = Option<Result<AccessToken, Error>>;

/// Which endpoint a source logs in at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// `POST /auth/login` with a JSON body (the default).
    #[default]
    AuthLogin,
    /// `POST /oauth2/token`, client credentials (`client_secret_post`).
    OAuth2Token,
}

impl TokenEndpoint {
    fn path(self) -> &'static str {
        match self {
            TokenEndpoint::AuthLogin => "/auth/login",
            TokenEndpoint::OAuth2Token => "/oauth2/token",
        }
    }
}

/// Trades an API key for bearer tokens and keeps the current one; see the
/// [crate docs](crate) for when it refreshes. A cheap `Clone` (an `Arc`
/// inside), `Send` and `Sync`: share one per process.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    service: Service,
    clock: Clock,
    state: Mutex<State>,
}

struct State {
    schedule: Schedule,
    /// The login in flight, if any.
    flight: Option<watch::Receiver<Outcome>>,
}

impl TokenSource {
    /// A builder for a source on the service at `base_url` (everything
    /// before `/auth/login`) with `api_key`.
    pub fn builder(base_url: impl Into<String>, api_key: impl Into<String>) -> Builder {
        Builder {
            base_url: base_url.into(),
            api_key: SecretString::from(api_key.into()),
            session_id: None,
            scope: None,
            refresh_window: Duration::from_secs(300),
            endpoint: TokenEndpoint::AuthLogin,
            timeout: Duration::from_secs(10),
            clock: Clock::default(),
        }
    }

    /// The current token: the cached one while it has more than the refresh
    /// margin left; inside the margin the cached one too while a refresh
    /// runs in the background; with no valid token, the result of a login
    /// that every caller without one shares.
    ///
    /// # Errors
    ///
    /// Only when no valid token is held and the login fails: the server's
    /// reason (`invalid_client`, `too_many_sessions`, ...) or `unreachable`.
    /// The next call tries again.
    pub async fn token(&self) -> Result<AccessToken, Error> {
        let mut flight = {
            let mut state = self.inner.lock();
            let now = self.inner.clock.now();
            if let Some(held) = state.schedule.valid(now) {
                let token = held.token.clone();
                if now >= held.refresh_at && !state.flying() {
                    state.flight = Some(self.inner.start());
                }
                return Ok(token);
            }
            match state.flight.as_ref().filter(|_| state.flying()) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = self.inner.start();
                    state.flight = Some(flight.clone());
                    flight
                }
            }
        };
        match flight.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(cancelled())),
            Err(_) => Err(cancelled()),
        }
    }

    /// Drops the cached token if it is still `token`, so that the next
    /// [`token`](Self::token) logs in again: for a token an API answered 401.
    pub fn invalidate(&self, token: &AccessToken) {
        self.inner.lock().schedule.invalidate(token);
    }

    /// Ends the session (`POST /auth/revoke` with the cached token). The
    /// cached token is dropped whatever happens; without one this does
    /// nothing. The source logs in again on the next [`token`](Self::token).
    ///
    /// # Errors
    ///
    /// The revoke request failed (the token is dropped all the same).
    pub async fn revoke(&self) -> Result<(), Error> {
        let Some(token) = self.inner.lock().schedule.take() else {
            return Ok(());
        };
        self.inner.service.revoke(&token).await
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it, and the state stays consistent at
        // every step anyway: a poisoned lock is still a usable one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a login on its own task, so that it completes (and settles the
    /// state) even if the caller that started it is dropped.
    fn start(self: &Arc<Self>) -> watch::Receiver<Outcome> {
        let (sender, receiver) = watch::channel(None);
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let sent_at = inner.clock.now();
            let granted = inner.service.login().await;
            let outcome = inner.settle(granted, sent_at);
            sender.send_replace(Some(outcome));
        });
        receiver
    }

    fn settle(
        &self,
        granted: Result<Granted, Error>,
        sent_at: std::time::Instant,
    ) -> Result<AccessToken, Error> {
        let mut state = self.lock();
        state.flight = None;
        let now = self.clock.now();
        let session_id = self.service.session_id.as_str();
        match granted {
            Ok(granted) => {
                let expires_in = granted.expires_in.as_secs();
                tracing::debug!(session_id, expires_in, "logged in");
                Ok(state
                    .schedule
                    .granted(granted, sent_at, now, rand::random()))
            }
            Err(error) => {
                state.schedule.failed(now);
                let reason = error.reason();
                if state.schedule.valid(now).is_some() {
                    tracing::warn!(
                        session_id,
                        reason,
                        "token refresh failed; keeping the current token"
                    );
                } else {
                    tracing::warn!(session_id, reason, "login failed");
                }
                Err(error)
            }
        }
    }
}

impl State {
    /// Whether a login is in flight. One whose task ended without an
    /// outcome (its runtime shut down) does not count: a new one starts.
    fn flying(&self) -> bool {
        self.flight
            .as_ref()
            .is_some_and(|f| f.has_changed().is_ok())
    }
}

/// The error of a login whose task ended without an outcome.
fn cancelled() -> Error {
    Error::new(
        Action::Login,
        Error::UNREACHABLE,
        "the login was cancelled (its runtime shut down)",
    )
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = &self.inner.service;
        f.debug_struct("TokenSource")
            .field("login_url", &service.login_url.as_str())
            .field("session_id", &service.session_id)
            .field("scope", &service.scope)
            .field("api_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenSource`]; from [`TokenSource::builder`].
#[must_use]
pub struct Builder {
    base_url: String,
    api_key: SecretString,
    session_id: Option<String>,
    scope: Option<String>,
    refresh_window: Duration,
    endpoint: TokenEndpoint,
    timeout: Duration,
    clock: Clock,
}

impl Builder {
    /// The session to log in to; by default a random one per source, so
    /// that each process has its own.
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// The scopes to ask for, space-separated; by default all of the key's.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The server's `REFRESH_WINDOW_SECONDS` (default 300 s): how long
    /// before expiry to refresh, capped at half the token's lifetime.
    pub fn refresh_window(mut self, refresh_window: Duration) -> Self {
        self.refresh_window = refresh_window;
        self
    }

    /// Where to log in (default `/auth/login`).
    pub fn token_endpoint(mut self, endpoint: TokenEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// How long a login or revoke may take, end to end (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reads the time from `clock` (tests only).
    #[cfg(feature = "test-clock")]
    #[doc(hidden)]
    pub fn test_clock(mut self, clock: crate::testing::TestClock) -> Self {
        self.clock = Clock::Test(clock);
        self
    }

    /// The source. No request is made until the first [`TokenSource::token`].
    ///
    /// # Errors
    ///
    /// `invalid_configuration`: the base URL is not an http(s) URL, or the
    /// HTTP client could not be set up.
    pub fn build(self) -> Result<TokenSource, Error> {
        let base = self.base_url.trim_end_matches('/');
        let url = |path: &str| {
            Url::parse(&format!("{base}{path}"))
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| Error::configuration("the base URL is not an http(s) URL"))
        };
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            // A 307 or 308 would send the key in the body on to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| Error::configuration("the HTTP client could not be set up"))?;
        let service = Service {
            http,
            login_url: url(self.endpoint.path())?,
            revoke_url: url("/auth/revoke")?,
            oauth2: self.endpoint == TokenEndpoint::OAuth2Token,
            api_key: self.api_key,
            session_id: self
                .session_id
                .unwrap_or_else(|| format!("rust-{:016x}", rand::random::<u64>())),
            scope: self.scope,
        };
        Ok(TokenSource {
            inner: Arc::new(Inner {
                service,
                clock: self.clock,
                state: Mutex::new(State {
                    schedule: Schedule::new(self.refresh_window),
                    flight: None,
                }),
            }),
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("base_url", &self.base_url)
            .field("session_id", &self.session_id)
            .field("scope", &self.scope)
            .field("refresh_window", &self.refresh_window)
            .field("token_endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("api_key", &"[redacted]")
            .finish()
    }
}
