//! The client against the real `authctl serve` (60 s tokens, a 30 s refresh
//! window), one server per test, logins counted in the server's own request
//! log. Time the client sees is moved forward by its test clock where a
//! test needs a token to age; the server's clock is never touched.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod support;

mod endpoints;
mod integration;
mod outage;
mod refresh;
mod revoke;
mod secrets;
mod single_flight;
