//! The embedded backend: one SQLite file, for `authctl serve` and local use.
//!
//! WAL mode and a busy timeout let several processes share the file (the
//! server and `authctl keys ...` at once). Every compare-and-set runs in an
//! immediate transaction, so it is atomic across processes as DynamoDB's
//! conditional writes are. Calls are quick local operations, run
//! synchronously under a connection's mutex: a thread hop would cost more
//! than the query.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{SessionRecord, Store, StoreError};
use crate::api_key::{KeyId, KeyRecord, KeyStatus, SecretHash};
use crate::scope::Scopes;
use crate::session_id::SessionId;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    secret_hash TEXT NOT NULL,
    prev_secret_hash TEXT,
    prev_secret_until INTEGER
);
CREATE TABLE IF NOT EXISTS sessions (
    key_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    prev_jti TEXT,
    ttl INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (key_id, session_id)
);
";

/// How much of the database file is read through a memory map.
const MMAP_BYTES: i64 = 256 << 20;

const KEY_COLUMNS: &str = "id, name, scopes, status, created_at, expires_at, secret_hash, prev_secret_hash, prev_secret_until";

/// [`Store`] on a SQLite file.
///
/// Writes go through one connection, so this process's writers queue on its
/// mutex rather than in SQLite's busy handler (which sleeps). Reads go
/// through a few more, one per CPU: on a single shared connection, concurrent
/// verifies would queue on one lock and put their worker threads to sleep.
/// WAL mode lets those readers work beside the writer, and every read
/// transaction starts after the writes that returned before it, so a revoke
/// shows on the very next verify.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = connect(path)?;
        // WAL lets readers and one writer work at once across processes; it is
        // a property of the file, so the writer sets it once.
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        writer.execute_batch(SCHEMA).map_err(unavailable)?;
        let readers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, MAX_READERS);
        Ok(Self {
            writer: Mutex::new(writer),
            readers: (0..readers)
                .map(|_| connect(path).map(Mutex::new))
                .collect::<Result<_, _>>()?,
            next_reader: AtomicUsize::new(0),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// A free reader, or (all busy) the next one in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }
}

/// Readers at most, whatever the CPU count.
const MAX_READERS: usize = 8;

/// A connection with the settings every one of ours has.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    // The busy timeout makes a second writer (another process) wait instead of failing.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(unavailable)?;
    // Reads through a memory map instead of read() into SQLite's 2 MiB
    // page cache: once the sessions outgrow that cache, every verify
    // would otherwise pay page-sized read() system calls.
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(unavailable)?;
    Ok(conn)
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite half-written
    // (transactions roll back on drop), so a poisoned lock is still usable.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Store for SqliteStore {
    async fn key_and_session(
        &self,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<(Option<KeyRecord>, Option<SessionRecord>), StoreError> {
        let mut conn = self.reader();
        // One read transaction: both rows from the same snapshot, even while
        // another process writes.
        let tx = conn.transaction().map_err(unavailable)?;
        let found = (
            read_key(&tx, key)?,
            read_session(&tx, key.as_str(), session.as_str())?,
        );
        tx.finish().map_err(unavailable)?;
        Ok(found)
    }

    async fn put_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError> {
        let record =
            serde_json::to_string(session).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let stored: Option<String> = tx
            .prepare_cached("SELECT jti FROM sessions WHERE key_id = ?1 AND session_id = ?2")
            .map_err(unavailable)?
            .query_row(params![session.key_id(), session.session_id()], |row| {
                row.get(0)
            })
            .optional()
            .map_err(unavailable)?;
        if stored.as_deref() != replaces {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO sessions (key_id, session_id, jti, prev_jti, ttl, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(unavailable)?
        .execute(params![
            session.key_id(),
            session.session_id(),
            session.current.claims.jti,
            session.previous.as_ref().map(|p| p.claims.jti.as_str()),
            to_i64(session.ttl)?,
            record,
        ])
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(true)
    }

    async fn delete_session(
        &self,
        key: &KeyId,
        session: &SessionId,
        holding: Option<&str>,
    ) -> Result<bool, StoreError> {
        let deleted = self
            .writer()
            .execute(
                "DELETE FROM sessions WHERE key_id = ?1 AND session_id = ?2
                 AND (?3 IS NULL OR jti = ?3 OR prev_jti = ?3)",
                params![key.as_str(), session.as_str(), holding],
            )
            .map_err(unavailable)?;
        Ok(deleted > 0)
    }

    async fn delete_sessions(&self, key: &KeyId) -> Result<u64, StoreError> {
        let deleted = self
            .writer()
            .execute(
                "DELETE FROM sessions WHERE key_id = ?1",
                params![key.as_str()],
            )
            .map_err(unavailable)?;
        Ok(deleted as u64)
    }

    async fn list_sessions(&self, key: &KeyId) -> Result<Vec<SessionRecord>, StoreError> {
        let conn = self.reader();
        let mut statement = conn
            .prepare_cached("SELECT record FROM sessions WHERE key_id = ?1 ORDER BY session_id")
            .map_err(unavailable)?;
        let records = statement
            .query_map(params![key.as_str()], |row| row.get::<_, String>(0))
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        records.iter().map(|r| decode_session(r)).collect()
    }

    async fn key(&self, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        read_key(&self.reader(), key)
    }

    async fn create_key(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let conn = self.writer();
        let sql = format!(
            "INSERT OR IGNORE INTO keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        );
        let inserted = execute_key(&conn, &sql, record)?;
        Ok(inserted == 1)
    }

    async fn save_key(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let conn = self.writer();
        let sql =
            "UPDATE keys SET name = ?2, scopes = ?3, status = ?4, created_at = ?5, expires_at = ?6,
                   secret_hash = ?7, prev_secret_hash = ?8, prev_secret_until = ?9 WHERE id = ?1";
        Ok(execute_key(&conn, sql, record)? == 1)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let conn = self.reader();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at, id"
            ))
            .map_err(unavailable)?;
        let rows = statement
            .query_map([], raw_key)
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        rows.into_iter().map(RawKey::decode).collect()
    }
}

fn read_key(conn: &Connection, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1"))
        .map_err(unavailable)?;
    statement
        .query_row(params![key.as_str()], raw_key)
        .optional()
        .map_err(unavailable)?
        .map(RawKey::decode)
        .transpose()
}

fn read_session(
    conn: &Connection,
    key: &str,
    session: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT record FROM sessions WHERE key_id = ?1 AND session_id = ?2")
        .map_err(unavailable)?;
    let record: Option<String> = statement
        .query_row(params![key, session], |row| row.get(0))
        .optional()
        .map_err(unavailable)?;
    record.as_deref().map(decode_session).transpose()
}

fn decode_session(record: &str) -> Result<SessionRecord, StoreError> {
    serde_json::from_str(record)
        .map_err(|e| StoreError::Internal(format!("corrupt session row: {e}")))
}

fn execute_key(conn: &Connection, sql: &str, r: &KeyRecord) -> Result<usize, StoreError> {
    let previous = r.previous_secret.as_ref();
    conn.execute(
        sql,
        params![
            r.id.as_str(),
            r.name,
            r.scopes.to_string(),
            r.status.as_str(),
            to_i64(r.created_at)?,
            r.expires_at.map(to_i64).transpose()?,
            r.secret_hash.0,
            previous.map(|(hash, _)| hash.0.as_str()),
            previous.map(|(_, until)| to_i64(*until)).transpose()?,
        ],
    )
    .map_err(unavailable)
}

/// A `keys` row as SQLite gives it, decoded outside the row callback so
/// that a bad value is a [`StoreError`], not a rusqlite error.
struct RawKey {
    id: String,
    name: String,
    scopes: String,
    status: String,
    created_at: i64,
    expires_at: Option<i64>,
    secret_hash: String,
    prev_secret_hash: Option<String>,
    prev_secret_until: Option<i64>,
}

fn raw_key(row: &Row<'_>) -> rusqlite::Result<RawKey> {
    Ok(RawKey {
        id: row.get(0)?,
        name: row.get(1)?,
        scopes: row.get(2)?,
        status: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        secret_hash: row.get(6)?,
        prev_secret_hash: row.get(7)?,
        prev_secret_until: row.get(8)?,
    })
}

impl RawKey {
    fn decode(self) -> Result<KeyRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("corrupt key row: {what}"));
        let time = |v: i64| u64::try_from(v).map_err(|_| corrupt("negative time"));
        Ok(KeyRecord {
            id: KeyId::parse(&self.id).ok_or_else(|| corrupt("id"))?,
            name: self.name,
            scopes: Scopes::parse(&self.scopes).map_err(|_| corrupt("scopes"))?,
            status: KeyStatus::from_stored(&self.status),
            created_at: time(self.created_at)?,
            expires_at: self.expires_at.map(time).transpose()?,
            secret_hash: SecretHash(self.secret_hash),
            previous_secret: match (self.prev_secret_hash, self.prev_secret_until) {
                (Some(hash), Some(until)) => Some((SecretHash(hash), time(until)?)),
                _ => None,
            },
        })
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Internal("time out of range".into()))
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}
