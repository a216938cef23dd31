//! The embedded backends of `authctl serve`: the SQLite store and the
//! signing-key file. No AWS, no emulator.

pub mod keys;
mod session_counts;
pub mod sqlite;

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not: every value kept behind one here is
/// changed in single steps (and SQLite rolls back a transaction on drop), so
/// a panic while holding the lock leaves nothing torn.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
