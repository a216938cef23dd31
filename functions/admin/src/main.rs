//! The `admin` Lambda: serves the management API under `/admin/v1`.

use auth_shared::http::{self, Route};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    auth_shared::telemetry::init();
    auth_shared::telemetry::install_panic_hook();
    let app = auth_shared::aws::from_env().await?;
    app.warm_up().await;
    let app = &app;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, Error>(http::handle(app, "admin", Route::ADMIN, request).await)
    }))
    .await
}
