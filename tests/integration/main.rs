//! The fast layer of the integration tests: one binary, one module per
//! concern, each test on its own app on the embedded SQLite store (see
//! `auth_tests::TestApp`), so nothing needs to be running and plain
//! `cargo test` runs them. What needs AWS behaviour is in the AWS layer
//! (`tests/aws`, behind the `moto` feature).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod authorizer;
mod errors;
mod events;
mod hostile;
mod login;
mod logs;
mod metrics;
mod oauth;
mod openapi;
mod owner;
mod revoke;
mod smoke;
mod sqlite;
mod template;
mod verify;

// Run by both layers, each on its own backend.
#[path = "../common/admin.rs"]
mod admin;
#[path = "../common/corrupt.rs"]
mod corrupt;
#[path = "../common/emf.rs"]
mod emf;
#[path = "../common/portal.rs"]
mod portal;
#[path = "../common/sticky.rs"]
mod sticky;
#[path = "../common/store_contract.rs"]
mod store_contract;
#[path = "../common/verify_cache.rs"]
mod verify_cache;

/// The store the shared tests run on here: SQLite in a temporary directory.
mod backend {
    use std::sync::Arc;

    use auth_shared::config::TokenPolicy;
    use auth_shared::domain::store::Store;
    use auth_shared::local::sqlite::SqliteStore;

    /// The service the shared tests drive.
    pub type Service = auth_tests::TestApp;

    /// A service with `policy`.
    pub async fn app(policy: TokenPolicy) -> Service {
        Service::spawn_with(policy).await
    }

    /// Each store of this layer as a named service.
    pub async fn apps(policy: TokenPolicy) -> Vec<(&'static str, Service)> {
        vec![("sqlite", app(policy).await)]
    }

    /// Each store of this layer, fresh and empty; the temp dir lives as long as the store.
    pub async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("auth.db")).unwrap();
        vec![("sqlite", Arc::new(sqlite), Some(dir))]
    }
}
