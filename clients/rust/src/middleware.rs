//! `reqwest-middleware` integration: `Authorization` on every request, and
//! one retry with a fresh token after a 401.

use http::Extensions;
use reqwest::header::AUTHORIZATION;
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use crate::login::bearer;
use crate::source::TokenSource;

/// Sets `Authorization: Bearer <token>` from a [`TokenSource`]. After a 401
/// it invalidates that token and sends the request once more with a fresh
/// one (if the request can be cloned: not a streaming body); a second 401
/// is returned as it is. A login that fails is the request's error: a
/// [`reqwest_middleware::Error::Middleware`] holding a [`crate::Error`].
///
/// ```no_run
/// # async fn example(source: bearer_auth_client::TokenSource) -> reqwest_middleware::Result<()> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(bearer_auth_client::BearerAuth::new(source))
///     .build();
/// let answer = client.get("https://api.example.com/documents").send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BearerAuth {
    source: TokenSource,
}

impl BearerAuth {
    /// The middleware for `source`.
    pub fn new(source: TokenSource) -> Self {
        Self { source }
    }

    async fn send(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<(Response, crate::AccessToken)> {
        let token = self
            .source
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let value = bearer(&token).map_err(reqwest_middleware::Error::middleware)?;
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok((next.run(request, extensions).await?, token))
    }
}

#[async_trait::async_trait]
impl Middleware for BearerAuth {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let again = request.try_clone();
        let (response, token) = self.send(request, extensions, next.clone()).await?;
        let Some(again) = again.filter(|_| response.status() == StatusCode::UNAUTHORIZED) else {
            return Ok(response);
        };
        self.source.invalidate(&token);
        drop(response);
        let (response, _) = self.send(again, extensions, next).await?;
        Ok(response)
    }
}
