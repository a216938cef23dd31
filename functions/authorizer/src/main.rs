//! The authorizer Lambda: API Gateway calls it before a protected route, as an
//! HTTP API REQUEST authorizer (payload 2.0 or 1.0) or a REST API TOKEN or
//! REQUEST authorizer (see `auth_shared::authorizer`).

use auth_shared::authorizer::{Authorizer, AuthorizerConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    auth_shared::telemetry::init();
    auth_shared::telemetry::install_panic_hook();
    let config = AuthorizerConfig::from_env()?;
    let app = auth_shared::aws::from_env().await?;
    app.warm_up().await;
    let authorizer = Authorizer::with_config(app, config);
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        authorizer
            .handle(event.payload, &event.context.request_id)
            .await
    }))
    .await
}
