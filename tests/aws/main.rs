//! The AWS layer of the integration tests: what needs AWS behaviour, on
//! DynamoDB and Secrets Manager served by moto (see
//! `auth_tests::aws::AwsTestApp`): outages, call budgets, conditional
//! writes, rotation in Secrets Manager, the DynamoDB rows of the store
//! contract. Built only with `--features moto`; `scripts/test` starts moto
//! and runs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod authorizer;
mod calls;
mod iam;
mod login;
mod outages;
mod rotation;
mod scale;
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

/// The store the shared tests run on here: DynamoDB, a fresh table in moto.
mod backend {
    use std::sync::Arc;

    use auth_shared::aws::dynamodb::{DynamoDbStore, create_table};
    use auth_shared::config::TokenPolicy;
    use auth_shared::domain::store::Store;
    use auth_tests::aws::moto;
    use auth_tests::unique;

    /// The service the shared tests drive.
    pub type Service = auth_tests::aws::AwsTestApp;

    /// A service with `policy`.
    pub async fn app(policy: TokenPolicy) -> Service {
        Service::spawn_with(policy).await
    }

    /// Each store of this layer as a named service.
    pub async fn apps(policy: TokenPolicy) -> Vec<(&'static str, Service)> {
        vec![("dynamodb", app(policy).await)]
    }

    /// Each store of this layer, fresh and empty.
    pub async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
        let sdk = moto().await;
        let table = unique("contract");
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        create_table(&client, &table).await.unwrap();
        vec![(
            "dynamodb",
            Arc::new(DynamoDbStore::new(client, table)),
            None,
        )]
    }
}
