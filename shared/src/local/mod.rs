//! The embedded backends of `authctl serve`: the SQLite store and the
//! signing-key file. No AWS, no emulator.

pub mod keys;
pub mod sqlite;
