//! Integration tests: one binary, one module per concern. Each test spawns its
//! own table and secret in moto, so they run in parallel and in any order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod authorizer;
mod calls;
mod cli;
mod errors;
mod events;
mod hostile;
mod iam;
mod login;
mod logs;
mod oauth;
mod openapi;
mod outages;
mod revoke;
mod rotation;
mod smoke;
mod sticky;
mod store_contract;
mod verify;
