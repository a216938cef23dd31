//! The embedded backend: one SQLite file, for `authctl serve` and local use.
//!
//! WAL mode and a busy timeout let several processes share the file (the
//! server and `authctl keys ...` at once). Every compare-and-set is one
//! statement, which SQLite runs atomically under its write lock across
//! processes, as DynamoDB runs a conditional write. Reads are quick local
//! operations, run synchronously under a reader connection's mutex: a thread
//! hop would cost more than the query. Writes go to a thread of their own
//! (see [`SqliteStore`]).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, TryLockError};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::domain::api_key::{KeyId, KeyRecord};
use crate::domain::audit::AuditEvent;
use crate::domain::owner::Owner;
use crate::domain::portal::PortalLink;
use crate::domain::session_id::SessionId;
use crate::domain::store::{
    KeyAndSession, KeyPosition, LiveSessions, SessionRecord, SessionTimes, Store, StoreError,
};
use crate::local::lock;
use crate::local::session_counts::SessionCounts;

/// The schema, one step per `PRAGMA user_version`: step `i` takes a file at
/// version `i` to `i + 1`. Files made before versions existed are at 0 with
/// the first step's tables already there, which `IF NOT EXISTS` allows.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS keys (
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
    ) WITHOUT ROWID;",
    // Versioned key writes and revoke-all; session times as columns, so the
    // session cap and the sweep of expired sessions need not decode records.
    "ALTER TABLE keys ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE keys ADD COLUMN sessions_revoked_before INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN exp INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN minted_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE sessions SET
        exp = coalesce(json_extract(record, '$.current.claims.exp'), 0),
        minted_ms = coalesce(json_extract(record, '$.current.minted_ms'), 0);
    CREATE INDEX sessions_by_ttl ON sessions (ttl);",
    // A key is its serde record (the form a DynamoDB item has) plus the
    // columns queries name: adding a field to a key needs no migration.
    // json_patch drops the members that are NULL, as the record leaves out
    // what it does not hold.
    "ALTER TABLE keys ADD COLUMN record TEXT NOT NULL DEFAULT '{}';
    UPDATE keys SET record = json_patch('{}', json_object(
        'id', id, 'name', name, 'scopes', scopes, 'status', status,
        'created_at', created_at, 'expires_at', expires_at,
        'secret_hash', secret_hash, 'prev_secret_hash', prev_secret_hash,
        'prev_secret_until', prev_secret_until,
        'sessions_revoked_before', nullif(sessions_revoked_before, 0),
        'version', version));
    ALTER TABLE keys DROP COLUMN name;
    ALTER TABLE keys DROP COLUMN scopes;
    ALTER TABLE keys DROP COLUMN status;
    ALTER TABLE keys DROP COLUMN expires_at;
    ALTER TABLE keys DROP COLUMN secret_hash;
    ALTER TABLE keys DROP COLUMN prev_secret_hash;
    ALTER TABLE keys DROP COLUMN prev_secret_until;
    ALTER TABLE keys DROP COLUMN sessions_revoked_before;",
    // A session record in the flat form DynamoDB items have (`prev_*` for
    // the predecessor), no longer nested.
    "UPDATE sessions SET record = json_patch('{}', json_object(
        'sub', json_extract(record, '$.current.claims.sub'),
        'sid', json_extract(record, '$.current.claims.sid'),
        'jti', json_extract(record, '$.current.claims.jti'),
        'iat', json_extract(record, '$.current.claims.iat'),
        'exp', json_extract(record, '$.current.claims.exp'),
        'kid', json_extract(record, '$.current.kid'),
        'minted_ms', json_extract(record, '$.current.minted_ms'),
        'scope', json_extract(record, '$.current.claims.scope'),
        'iss', json_extract(record, '$.current.claims.iss'),
        'aud', json_extract(record, '$.current.claims.aud'),
        'prev_jti', json_extract(record, '$.previous.claims.jti'),
        'prev_iat', json_extract(record, '$.previous.claims.iat'),
        'prev_exp', json_extract(record, '$.previous.claims.exp'),
        'prev_kid', json_extract(record, '$.previous.kid'),
        'prev_minted_ms', json_extract(record, '$.previous.minted_ms'),
        'prev_scope', json_extract(record, '$.previous.claims.scope'),
        'prev_iss', json_extract(record, '$.previous.claims.iss'),
        'prev_aud', json_extract(record, '$.previous.claims.aud'),
        'ttl', json_extract(record, '$.ttl')))
    WHERE json_extract(record, '$.current') IS NOT NULL;",
    // The audit trail: one row per event, written in the transaction of the
    // key change it records, listed newest first per key.
    "CREATE TABLE events (
        key_id TEXT NOT NULL,
        id TEXT NOT NULL,
        ttl INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (key_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_ttl ON events (ttl);",
    // Paged listing of keys, newest first, of one owner or of all.
    "ALTER TABLE keys ADD COLUMN owner TEXT;
    UPDATE keys SET owner = json_extract(record, '$.owner');
    CREATE INDEX keys_by_owner ON keys (owner, created_at, id);
    CREATE INDEX keys_by_creation ON keys (created_at, id);",
    // Paged listing of events, newest first, of one owner or of all.
    "ALTER TABLE events ADD COLUMN owner TEXT;
    UPDATE events SET owner = json_extract(record, '$.owner');
    CREATE INDEX events_by_owner ON events (owner, id);
    CREATE INDEX events_by_id ON events (id);",
    // Customer portal links and the sessions they open.
    "CREATE TABLE portal_links (
        id TEXT PRIMARY KEY,
        ttl INTEGER NOT NULL,
        record TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX portal_links_by_ttl ON portal_links (ttl);",
    // The session cap (MAX_SESSIONS_PER_KEY) reads the times of every live
    // session of a key on each login that opens one: from this index alone,
    // not the rows with their JSON records, up to 1000 of them a login.
    "CREATE INDEX sessions_live_times ON sessions (key_id, exp, minted_ms);",
    // Session records move to a table of their own, appended in the order
    // they are written, and sessions keep only the columns queries name.
    // A login that opens a session then dirties one page at random (its
    // key's place among the sessions) instead of three (that place, a split
    // of rows ten times the size, and the index the cap counted from): new
    // sessions a second were bound by WAL pages written and copied. The cap
    // counts from the sessions themselves, now small. Triggers drop a
    // record with its session, on every path that deletes or replaces one.
    "CREATE TABLE session_records (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE sessions_by_key (
        key_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        prev_jti TEXT,
        ttl INTEGER NOT NULL,
        exp INTEGER NOT NULL,
        minted_ms INTEGER NOT NULL,
        record_id INTEGER NOT NULL,
        PRIMARY KEY (key_id, session_id)
    ) WITHOUT ROWID;
    INSERT INTO session_records (id, record)
        SELECT row_number() OVER (ORDER BY key_id, session_id), record FROM sessions;
    INSERT INTO sessions_by_key
        SELECT key_id, session_id, jti, prev_jti, ttl, exp, minted_ms,
            row_number() OVER (ORDER BY key_id, session_id)
        FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_by_key RENAME TO sessions;
    CREATE INDEX sessions_by_ttl ON sessions (ttl);
    CREATE TRIGGER sessions_delete_record AFTER DELETE ON sessions BEGIN
        DELETE FROM session_records WHERE id = old.record_id;
    END;
    CREATE TRIGGER sessions_replace_record AFTER UPDATE OF record_id ON sessions
    WHEN old.record_id IS NOT new.record_id BEGIN
        DELETE FROM session_records WHERE id = old.record_id;
    END;",
    // The sweep's index in the order sessions are written: the sessions of
    // one TTL (a second's logins) sorted by key landed at random among that
    // second's pages, a page per login; by record, each group commit's land
    // together on the index's last page.
    "DROP INDEX sessions_by_ttl;
    CREATE INDEX sessions_by_ttl ON sessions (ttl, record_id);",
];

/// The most each connection caches, in KiB (SQLite's negative form): enough
/// for the pages a few hundred thousand sessions touch. Only what is used is
/// allocated.
const CACHE_KIB: i64 = 64 << 10;

/// [`Store`] on a SQLite file.
///
/// Writes go through one connection on a thread of its own, so this
/// process's writers queue there rather than in SQLite's busy handler.
/// Session writes commit in groups: the writer runs every one queued while
/// it was busy in one transaction. A commit (WAL frames, locks) costs far
/// more than one conditional insert, and logins that open sessions all
/// queue here, so under load one commit serves many. Reads go through a few
/// more connections, one per CPU: on a single shared connection, concurrent
/// verifies would queue on one lock and put their worker threads to sleep.
/// WAL mode lets those readers work beside the writer, and every read
/// transaction starts after the writes that returned before it, so a revoke
/// shows on the very next verify.
///
/// Durability: a session write is durable against a process crash
/// (`synchronous=NORMAL` in WAL mode); a key write or a session delete (every
/// revoke) also against power loss (`synchronous=FULL` for that commit).
///
/// Checkpoints run beside the writer: each `CHECKPOINT_PAGES` (1 MiB) of
/// WAL, the writer hands one (PASSIVE) to a thread of its own, whose
/// `fsync` calls (one of the WAL, one of the file, a millisecond or more
/// each) then hold no commit up. Such a checkpoint cannot start the WAL over,
/// since the writer adds to it meanwhile, so once the WAL holds
/// `RESTART_PAGES` (16 MiB) the writer checkpoints itself, right after a
/// commit's callers have their answers (and after the checkpointer's, if
/// one is under way): it copies only the frames written since the last
/// checkpoint, and its next write starts the WAL over. Should
/// a reader of another process still starve it past [`Options::wal_limit`],
/// the writer runs a TRUNCATE checkpoint before its next write; dropping the
/// store truncates it too.
///
/// Every write runs on one thread of its own, fed by a queue: a commit, a
/// WAL truncation or a sweep can take milliseconds, and on a runtime worker
/// it would stall every request queued on that worker, verifies included.
/// Session writes waiting in the queue together commit as one transaction.
pub struct SqliteStore {
    /// The writer thread's queue; `None` once closing.
    writes: Option<std::sync::mpsc::Sender<Job>>,
    /// Joined on drop, so the store is closed when drop returns.
    writer: Option<std::thread::JoinHandle<()>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Bounds on each key's live sessions, for the session cap; the writer
    /// adds every session it commits.
    session_counts: Arc<SessionCounts>,
}

/// Tuning of a [`SqliteStore`]; the defaults suit `authctl serve`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// WAL size in bytes past which the writer truncates it.
    pub wal_limit: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wal_limit: 32 << 20,
        }
    }
}

/// How often expired sessions are swept, at most.
const SWEEP_EVERY_SECONDS: u64 = 1;
/// Sessions one sweep deletes at most: a sweep holds the writer, so it is
/// kept short; a full batch sweeps again on the next write.
const SWEEP_BATCH: i64 = 2000;
/// The sweep's delete: up to `?2` sessions whose TTL is before `?1`.
const SWEEP_SESSIONS: &str = "DELETE FROM sessions WHERE (key_id, session_id) IN
    (SELECT key_id, session_id FROM sessions WHERE ttl < ?1 LIMIT ?2)";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with default options.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open_with(path: &Path, options: Options) -> Result<Self, StoreError> {
        let writer = connect(path)?;
        // WAL lets readers and one writer work at once across processes; it is
        // a property of the file, so the writer sets it once.
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        // In place of SQLite's auto-checkpoint, which runs inside the commit
        // that passes the mark, before that commit's logins are answered.
        writer.wal_hook(Some(note_wal_pages));
        writer
            .pragma_update(None, "journal_size_limit", to_i64(options.wal_limit)?)
            .map_err(unavailable)?;
        migrate(&writer)?;
        let readers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, MAX_READERS);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let readers = (0..readers)
            .map(|_| connect(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        let (writes, jobs) = std::sync::mpsc::channel();
        let session_counts = Arc::new(SessionCounts::default());
        let writer = Writer {
            conn: writer,
            session_counts: Arc::clone(&session_counts),
            wal: PathBuf::from(wal),
            options,
            next_sweep: 0,
            checkpointer: Some(Checkpointer::start(path)?),
            handed_off: 0,
        };
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(&jobs))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self {
            writes: Some(writes),
            writer: Some(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            session_counts,
        })
    }

    /// Runs `write` on the writer thread, after every write queued before it,
    /// and answers what it returned.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.enqueue(Job::Run(Box::new(move |conn| {
            // A caller that went away needs no answer.
            reply.send(write(conn)).ok();
        })))?;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Runs `write` as [`Self::write`] does, as one durable commit ([`durably`]).
    async fn write_durably<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write(move |conn| durably(conn, write)).await
    }

    fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        self.writes
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(job)
            .map_err(|_| writer_gone())
    }

    /// A free reader, or (all busy) the next one in turn.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Ok(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let turn = self.next_reader.fetch_add(1, Ordering::Relaxed);
        self.readers
            .iter()
            .cycle()
            .nth(turn % MAX_READERS)
            .map(lock)
            .ok_or_else(|| StoreError::Internal("the store has no readers".into()))
    }
}

impl Drop for SqliteStore {
    /// Leaves no WAL behind: the writer commits what is queued, copies the
    /// WAL into the file and truncates it, and drop waits for it.
    fn drop(&mut self) {
        drop(self.writes.take());
        join(self.writer.take(), "writer");
    }
}

/// A write for the writer thread.
enum Job {
    /// A session write, committed with those queued beside it.
    Put(QueuedPut),
    /// Any other write, run on its own, after the puts queued before it.
    Run(Box<dyn FnOnce(&Connection) + Send>),
}

/// Jobs one round takes off the queue at most, so the WAL bound and the
/// sweep still run between rounds under a flood of writes.
const ROUND: usize = 1024;

/// The writer thread's state: the one connection that writes, and its housekeeping.
struct Writer {
    conn: Connection,
    session_counts: Arc<SessionCounts>,
    wal: PathBuf,
    options: Options,
    /// Unix seconds of the next sweep of expired sessions.
    next_sweep: u64,
    /// Runs checkpoints beside the writer; `None` once closing.
    checkpointer: Option<Checkpointer>,
    /// The WAL's size in `CHECKPOINT_PAGES` when the last checkpoint was
    /// handed off: the next one is due a step further.
    handed_off: i32,
}

impl Writer {
    /// Runs jobs in the order they were queued until every sender is gone,
    /// then truncates the WAL. Session writes queued back to back commit
    /// together; any other job first commits the ones before it, so a write
    /// made after a login's (a revoke, say) lands after it.
    fn run(mut self, jobs: &std::sync::mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut puts = Vec::new();
            let round = std::iter::once(first).chain(std::iter::from_fn(|| jobs.try_recv().ok()));
            for job in round.take(ROUND) {
                match job {
                    Job::Put(put) => puts.push(put),
                    Job::Run(write) => {
                        self.commit(std::mem::take(&mut puts));
                        // A bug in one write must not stop every later one:
                        // its transaction rolls back as it unwinds, and its
                        // caller, whose reply was dropped, gets an error.
                        let conn = &self.conn;
                        if std::panic::catch_unwind(AssertUnwindSafe(|| write(conn))).is_err() {
                            tracing::error!("a SQLite write panicked");
                        }
                    }
                }
            }
            self.commit(puts);
        }
        // Its checkpoint done first: the truncation would wait on it.
        drop(self.checkpointer.take());
        if let Err(e) = truncate_wal(&self.conn) {
            tracing::warn!(error = %e, "WAL not truncated on close");
        }
    }

    /// Commits `puts` as one transaction, then does the housekeeping due:
    /// it runs between writes, never inside one, and sweeps no write that
    /// follows it.
    fn commit(&mut self, puts: Vec<QueuedPut>) {
        if !puts.is_empty() {
            commit_puts(&self.conn, &self.session_counts, puts);
        }
        self.checkpoint_due();
        self.bound_wal();
        self.sweep();
    }

    /// Hands a checkpoint to the checkpointer each `CHECKPOINT_PAGES` of
    /// WAL, and runs one itself past `RESTART_PAGES`, so that the next write
    /// starts the WAL over. One that the checkpointer or a reader kept from
    /// finishing is tried again after the next commit, which the hook
    /// reports.
    fn checkpoint_due(&mut self) {
        let pages = WAL_PAGES.get();
        if pages >= RESTART_PAGES {
            WAL_PAGES.set(0);
            self.handed_off = 0;
            let _alone = self.checkpointer.as_ref().map(Checkpointer::hold);
            checkpoint(&self.conn);
            return;
        }
        // A smaller step: the WAL started over.
        let step = pages / CHECKPOINT_PAGES;
        if step > self.handed_off
            && let Some(checkpointer) = &self.checkpointer
        {
            checkpointer.nudge();
        }
        self.handed_off = step;
    }

    /// Truncates the WAL once it has grown past the limit.
    fn bound_wal(&self) {
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size > self.options.wal_limit {
            let _alone = self.checkpointer.as_ref().map(Checkpointer::hold);
            // Still busy (a reader of another process holding an old
            // snapshot past the busy timeout): the next write tries again.
            if let Err(e) = truncate_wal(&self.conn) {
                tracing::debug!(error = %e, size, "WAL truncation deferred");
            }
        }
    }

    /// Deletes a batch of sessions (and one of events) whose TTL has passed, at most once per
    /// [`SWEEP_EVERY_SECONDS`] unless the last batch was full. DynamoDB does
    /// the same by TTL; readers never rely on either.
    fn sweep(&mut self) {
        let Ok(now) = crate::domain::clock::Clock::now(&crate::domain::clock::SystemClock) else {
            return;
        };
        if now < self.next_sweep {
            return;
        }
        let swept = to_i64(now).map_err(|e| e.to_string()).and_then(|now| {
            let conn = &self.conn;
            conn.prepare_cached(SWEEP_SESSIONS)
                .and_then(|mut s| s.execute(params![now, SWEEP_BATCH]))
                .and_then(|sessions| {
                    // Events past their retention go the same way, in batches too.
                    let events = conn
                        .prepare_cached(
                            "DELETE FROM events WHERE (key_id, id) IN
                         (SELECT key_id, id FROM events WHERE ttl < ?1 LIMIT ?2)",
                        )?
                        .execute(params![now, SWEEP_BATCH])?;
                    let links = conn
                        .prepare_cached(
                            "DELETE FROM portal_links WHERE id IN
                         (SELECT id FROM portal_links WHERE ttl < ?1 LIMIT ?2)",
                        )?
                        .execute(params![now, SWEEP_BATCH])?;
                    Ok(sessions.max(events).max(links))
                })
                .map_err(|e| e.to_string())
        });
        let again = match swept {
            Ok(n) if n as i64 >= SWEEP_BATCH => now,
            Ok(_) => now.saturating_add(SWEEP_EVERY_SECONDS),
            Err(e) => {
                tracing::warn!(error = %e, "sweep of expired sessions failed; retrying");
                now.saturating_add(SWEEP_EVERY_SECONDS)
            }
        };
        self.next_sweep = again;
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

/// Applies the [`MIGRATIONS`] a file lacks, all in one transaction, so two
/// processes opening one file at once migrate it once.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(unavailable)?;
    let known = MIGRATIONS.len();
    let at = usize::try_from(version).unwrap_or(usize::MAX);
    if at > known {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {at}; this build knows {known}: upgrade authctl"
        )));
    }
    for step in MIGRATIONS.iter().skip(at) {
        tx.execute_batch(step).map_err(unavailable)?;
    }
    tx.pragma_update(None, "user_version", known as i64)
        .map_err(unavailable)?;
    tx.commit().map_err(unavailable)
}

thread_local! {
    /// Pages in the WAL after the last commit of this thread's connection:
    /// set by the writer's WAL hook, read between rounds.
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The writer's WAL hook: notes the WAL's size after each commit.
fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    Ok(())
}

/// The thread that runs the checkpoints the writer hands it, on a
/// connection of its own; it stops when dropped, once its checkpoint is done.
struct Checkpointer {
    /// Holds one checkpoint at most: one asked for while another waits
    /// would copy nothing more.
    nudges: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Held while a checkpoint runs. SQLite runs one checkpoint at a time
    /// and fails any other at once, so the writer takes it before its own.
    running: Arc<Mutex<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        let (nudges, wake) = std::sync::mpsc::sync_channel(1);
        let running = Arc::new(Mutex::new(()));
        let held = Arc::clone(&running);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || {
                while wake.recv().is_ok() {
                    let _running = lock(&held);
                    checkpoint(&conn);
                }
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self {
            nudges: Some(nudges),
            thread: Some(thread),
            running,
        })
    }

    /// Waits for the checkpoint under way, if any, and keeps the next from
    /// starting while the guard lives.
    fn hold(&self) -> MutexGuard<'_, ()> {
        lock(&self.running)
    }

    /// Asks for a checkpoint, unless one is already waiting.
    fn nudge(&self) {
        if let Some(nudges) = &self.nudges {
            nudges.try_send(()).ok();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.nudges.take());
        join(self.thread.take(), "checkpointer");
    }
}

/// A PASSIVE checkpoint: it copies what no reader still needs and never
/// waits on one; what it left is copied by a later one.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "WAL checkpoint deferred");
    }
}

/// Waits for one of the store's threads, whose queue its caller has closed.
fn join(thread: Option<std::thread::JoinHandle<()>>, name: &str) {
    if let Some(thread) = thread
        && thread.join().is_err()
    {
        tracing::warn!(thread = name, "a SQLite thread panicked");
    }
}

/// A TRUNCATE checkpoint: the WAL copied into the file and cut to nothing.
fn truncate_wal(conn: &Connection) -> Result<(), String> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    match busy {
        0 => Ok(()),
        _ => Err("readers or another checkpoint in the way".into()),
    }
}

/// Runs `write` as one commit synced to disk (`synchronous=FULL`), for what
/// must survive power loss: a revoke, a key change.
fn durably<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(unavailable)?;
    let written = write(conn);
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(unavailable)?;
    written
}

/// Readers at most, whatever the CPU count.
const MAX_READERS: usize = 8;

/// WAL pages (4 KiB each) after which the writer hands a checkpoint to the
/// checkpointer: 1 MiB. Reads stall while a checkpoint copies pages (so do
/// the runtime workers they run on), for a time that grows with the pages
/// copied: at 16 MiB a checkpoint took 12 to 16 ms and the mixed load's p99
/// was 10 ms; at 1 MiB the p99 is 3.6 to 4.6 ms (BENCHMARKS.md).
const CHECKPOINT_PAGES: i32 = 250;

/// WAL pages (16 MiB) after which the writer checkpoints itself, so that
/// its next write starts the WAL over: the checkpointer has copied all but
/// the last frames by then, so this one copies few, but its two `fsync`
/// calls hold the writer up, a sixteenth as often as a checkpoint of its
/// own each 1 MiB did.
const RESTART_PAGES: i32 = 4096;

/// A connection with the settings every one of ours has.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    // A connection that meets a lock waits (another process's writer, or a
    // checkpoint meeting a reader) instead of failing.
    conn.busy_handler(Some(retry_soon)).map_err(unavailable)?;
    // Pages come from SQLite's own cache, not a memory map: a reader drops
    // its map (munmap, then page faults to map it again) every time another
    // connection commits, which made a login that opens a session spend a
    // fifth of its time in mmap and munmap.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(unavailable)?;
    Ok(conn)
}

/// The busy handler: tries again after 25 µs for the first 5 ms, then every
/// millisecond, and gives up after 5 s. SQLite's own handler sleeps 1, 2, 5,
/// 10, 15, 20... ms between tries, so a WAL truncation that met a reader for
/// a few microseconds waited 20 to 40 ms, and every login queued behind it.
fn retry_soon(tries: i32) -> bool {
    const QUICK: i32 = 200;
    const GIVE_UP: i32 = QUICK + 4995;
    let pause = match tries {
        ..QUICK => std::time::Duration::from_micros(25),
        QUICK..GIVE_UP => std::time::Duration::from_millis(1),
        _ => return false,
    };
    std::thread::sleep(pause);
    true
}

#[async_trait]
impl Store for SqliteStore {
    async fn key_and_session(
        &self,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<KeyAndSession, StoreError> {
        Ok(read_state(&*self.reader()?, None, key, session)?.1)
    }

    async fn caller_key_and_session(
        &self,
        caller: &KeyId,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError> {
        read_state(&*self.reader()?, Some(caller), key, session)
    }

    async fn put_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError> {
        let record =
            serde_json::to_string(session).map_err(|e| StoreError::Internal(e.to_string()))?;
        let current = &session.current;
        let (reply, written) = tokio::sync::oneshot::channel();
        self.enqueue(Job::Put(QueuedPut {
            key_id: session.key_id().to_owned(),
            session_id: session.session_id().to_owned(),
            jti: current.claims.jti.clone(),
            prev_jti: session.previous.as_ref().map(|p| p.claims.jti.clone()),
            ttl: to_i64(session.ttl)?,
            exp: to_i64(current.claims.exp)?,
            minted_ms: to_i64(current.minted_ms)?,
            record,
            replaces: replaces.map(str::to_owned),
            reply,
        }))?;
        written.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn delete_session(
        &self,
        key: &KeyId,
        session: &SessionId,
        holding: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let (key, session) = (key.clone(), session.clone());
        let (holding, event) = (holding.map(str::to_owned), event.clone());
        self.write_durably(move |conn| {
            logged(conn, &event, |tx| {
                tx.execute(
                    "DELETE FROM sessions WHERE key_id = ?1 AND session_id = ?2
                     AND (?3 IS NULL OR jti = ?3 OR prev_jti = ?3)",
                    params![key.as_str(), session.as_str(), holding],
                )
                .map_err(unavailable)
            })
        })
        .await
    }

    async fn list_sessions(&self, key: &KeyId) -> Result<Vec<SessionRecord>, StoreError> {
        records(
            &*self.reader()?,
            "SELECT r.record FROM sessions AS s JOIN session_records AS r ON r.id = s.record_id
             WHERE s.key_id = ?1 ORDER BY s.session_id",
            params![key.as_str()],
            decode_session,
        )
    }

    async fn unexpired_sessions(
        &self,
        key: &KeyId,
        now: u64,
    ) -> Result<Vec<SessionTimes>, StoreError> {
        let conn = self.reader()?;
        let mut statement = conn
            .prepare_cached("SELECT exp, minted_ms FROM sessions WHERE key_id = ?1 AND exp > ?2")
            .map_err(unavailable)?;
        let rows = statement
            .query_map(params![key.as_str(), to_i64(now)?], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|(exp, minted_ms)| {
                let time = |v: i64| {
                    u64::try_from(v)
                        .map_err(|_| StoreError::Internal("corrupt session row: time".into()))
                };
                Ok(SessionTimes {
                    exp: time(exp)?,
                    minted_ms: time(minted_ms)?,
                })
            })
            .collect()
    }

    async fn live_sessions(
        &self,
        key: &KeyId,
        now: u64,
        cut_off_ms: u64,
    ) -> Result<LiveSessions, StoreError> {
        // Counted inside SQLite from the key's session rows, small since
        // their records live apart: no row crosses into Rust, however many
        // sessions the key holds.
        let conn = self.reader()?;
        let mut statement = conn
            .prepare_cached(
                "SELECT count(*), min(exp) FROM sessions \
                 WHERE key_id = ?1 AND exp > ?2 AND (?3 = 0 OR minted_ms > ?3)",
            )
            .map_err(unavailable)?;
        let (count, earliest) = statement
            .query_row(
                params![key.as_str(), to_i64(now)?, to_i64(cut_off_ms)?],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?)),
            )
            .map_err(unavailable)?;
        let corrupt = || StoreError::Internal("corrupt session row: time".into());
        Ok(LiveSessions {
            count: u64::try_from(count).map_err(|_| corrupt())?,
            earliest_exp: earliest
                .map(|e| u64::try_from(e).map_err(|_| corrupt()))
                .transpose()?,
        })
    }

    async fn session_room(
        &self,
        key: &KeyId,
        now: u64,
        cut_off_ms: u64,
        cap: u64,
    ) -> Result<Option<LiveSessions>, StoreError> {
        let counts = &self.session_counts;
        if counts
            .bound(key.as_str(), now, cut_off_ms)
            .is_some_and(|bound| bound < cap)
        {
            return Ok(None);
        }
        let ticket = counts.before_count(key.as_str());
        // Each statement reads in a transaction of its own, begun after the
        // ticket: a session committed before it is in this count.
        let live = self.live_sessions(key, now, cut_off_ms).await?;
        counts.counted(key.as_str(), ticket, now, cut_off_ms, live.count);
        Ok((live.count >= cap).then_some(live))
    }

    async fn key(&self, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        read_key(&*self.reader()?, key)
    }

    async fn create_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        let sql = "INSERT OR IGNORE INTO keys (id, created_at, version, record, owner)
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        let (record, event) = (record.clone(), event.clone());
        self.write_durably(move |conn| logged(conn, &event, |tx| execute_key(tx, sql, &record)))
            .await
    }

    async fn save_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        let sql = "UPDATE keys SET created_at = ?2, version = ?3, record = ?4, owner = ?5
                   WHERE id = ?1 AND version = ?3 - 1";
        let (record, event) = (record.clone(), event.clone());
        self.write_durably(move |conn| logged(conn, &event, |tx| execute_key(tx, sql, &record)))
            .await
    }

    async fn create_portal_link(
        &self,
        link: &PortalLink,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let record = encode(link)?;
        let (id, ttl, event) = (link.id.clone(), to_i64(link.ttl())?, event.clone());
        let written = self
            .write_durably(move |conn| {
                logged(conn, &event, |tx| {
                    tx.execute(
                        "INSERT OR IGNORE INTO portal_links (id, ttl, record) VALUES (?1, ?2, ?3)",
                        params![id, ttl, record],
                    )
                    .map_err(unavailable)
                })
            })
            .await?;
        if written {
            Ok(())
        } else {
            Err(StoreError::Internal("portal link id collision".into()))
        }
    }

    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.write_durably(move |conn| insert_event(conn, &event, Conflict::Keep))
            .await
    }

    async fn redeem_portal_link(
        &self,
        id: &str,
        now: u64,
        until: u64,
    ) -> Result<Option<PortalLink>, StoreError> {
        let id = id.to_owned();
        let (now, until) = (to_i64(now)?, to_i64(until)?);
        // One statement: the first of two exchanges at once sets the
        // session, the second finds it set and changes nothing.
        self.write_durably(move |conn| {
            conn.prepare_cached(
                "UPDATE portal_links SET record = json_set(record, '$.session_until', ?3)
                 WHERE id = ?1 AND json_extract(record, '$.session_until') IS NULL
                 AND json_extract(record, '$.expires_at') > ?2
                 RETURNING record",
            )
            .map_err(unavailable)?
            .query_row(params![id, now, until], |row| row.get::<_, String>(0))
            .optional()
            .map_err(unavailable)?
            .as_deref()
            .map(decode_link)
            .transpose()
        })
        .await
    }

    async fn portal_link(&self, id: &str) -> Result<Option<PortalLink>, StoreError> {
        self.reader()?
            .prepare_cached("SELECT record FROM portal_links WHERE id = ?1")
            .map_err(unavailable)?
            .query_row(params![id], |row| row.get::<_, String>(0))
            .optional()
            .map_err(unavailable)?
            .as_deref()
            .map(decode_link)
            .transpose()
    }

    async fn end_portal_session(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let ended = self
            .write_durably(move |conn| {
                conn.execute(
                    "DELETE FROM portal_links WHERE id = ?1
                     AND json_extract(record, '$.session_until') IS NOT NULL",
                    params![id],
                )
                .map_err(unavailable)
            })
            .await?;
        Ok(ended == 1)
    }

    async fn touch_key(&self, key: &KeyId, at: u64, stale_before: u64) -> Result<bool, StoreError> {
        // Not durably: a last use lost to a power cut is written again.
        let (key, at, stale_before) = (key.clone(), to_i64(at)?, to_i64(stale_before)?);
        let changed = self
            .write(move |conn| {
                conn.execute(
                    "UPDATE keys SET record = json_set(record, '$.last_used_at', ?2)
                     WHERE id = ?1 AND coalesce(json_extract(record, '$.last_used_at'), 0) < ?3",
                    params![key.as_str(), at, stale_before],
                )
                .map_err(unavailable)
            })
            .await?;
        Ok(changed == 1)
    }

    async fn keys_page(
        &self,
        owner: Option<&Owner>,
        after: Option<&KeyPosition>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let created = after.map(|a| to_i64(a.created_at)).transpose()?;
        records(
            &*self.reader()?,
            "SELECT record FROM keys
             WHERE (?1 IS NULL OR owner = ?1)
             AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
             ORDER BY created_at DESC, id DESC LIMIT ?4",
            params![
                owner.map(Owner::as_str),
                created,
                after.map(|a| a.id.as_str()),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            decode_key,
        )
    }

    async fn events_page(
        &self,
        owner: Option<&Owner>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        records(
            &*self.reader()?,
            "SELECT record FROM events WHERE (?1 IS NULL OR owner = ?1)
             AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
            params![
                owner.map(Owner::as_str),
                before,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            decode_event,
        )
    }

    async fn key_events(
        &self,
        key: &KeyId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        records(
            &*self.reader()?,
            "SELECT record FROM events WHERE key_id = ?1 AND (?2 IS NULL OR id < ?2)
             ORDER BY id DESC LIMIT ?3",
            params![
                key.as_str(),
                before,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            decode_event,
        )
    }
}

/// A conditional session write waiting for the next group commit.
struct QueuedPut {
    key_id: String,
    session_id: String,
    jti: String,
    prev_jti: Option<String>,
    ttl: i64,
    exp: i64,
    minted_ms: i64,
    record: String,
    /// The stored jti it replaces; `None`: only if there is no session.
    replaces: Option<String>,
    reply: tokio::sync::oneshot::Sender<Result<bool, StoreError>>,
}

/// Runs `puts` in one immediate transaction and tells each caller whether
/// its condition held, once `counts` holds every session it wrote. Any
/// failure rolls the whole group back and fails every write in it: nothing
/// is half-written.
fn commit_puts(conn: &Connection, counts: &SessionCounts, puts: Vec<QueuedPut>) {
    let outcome = (|| {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let written = puts
            .iter()
            .map(|put| put_one(&tx, put))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok::<_, rusqlite::Error>(written)
    })();
    match outcome {
        Ok(written) => {
            // Counted here, not by the caller: one that went away before its
            // answer came would leave the bound short.
            for (put, _) in puts.iter().zip(&written).filter(|(_, w)| **w) {
                counts.opened(&put.key_id);
            }
            for (put, written) in puts.into_iter().zip(written) {
                // A caller that went away needs no answer.
                put.reply.send(Ok(written)).ok();
            }
        }
        Err(e) => {
            let e = std::sync::Arc::new(e);
            for put in puts {
                put.reply.send(Err(unavailable_shared(&e))).ok();
            }
        }
    }
}

/// One conditional write, as DynamoDB's conditional PutItem: insert only if
/// absent, or replace only the jti the caller read. The record goes in
/// first, at the end of its table; a write whose condition fails takes it
/// out again, inside the same transaction.
fn put_one(conn: &Connection, put: &QueuedPut) -> rusqlite::Result<bool> {
    conn.prepare_cached("INSERT INTO session_records (record) VALUES (?1)")?
        .execute(params![put.record])?;
    let record_id = conn.last_insert_rowid();
    let changed = match &put.replaces {
        None => conn
            .prepare_cached(
                "INSERT INTO sessions (key_id, session_id, jti, prev_jti, ttl, exp, minted_ms, record_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (key_id, session_id) DO NOTHING",
            )?
            .execute(params![
                put.key_id,
                put.session_id,
                put.jti,
                put.prev_jti,
                put.ttl,
                put.exp,
                put.minted_ms,
                record_id,
            ])?,
        Some(jti) => conn
            .prepare_cached(
                "UPDATE sessions SET jti = ?3, prev_jti = ?4, ttl = ?5, exp = ?6,
                 minted_ms = ?7, record_id = ?8
                 WHERE key_id = ?1 AND session_id = ?2 AND jti = ?9",
            )?
            .execute(params![
                put.key_id,
                put.session_id,
                put.jti,
                put.prev_jti,
                put.ttl,
                put.exp,
                put.minted_ms,
                record_id,
                jti,
            ])?,
    };
    if changed != 1 {
        conn.prepare_cached("DELETE FROM session_records WHERE id = ?1")?
            .execute(params![record_id])?;
    }
    Ok(changed == 1)
}

fn read_key(conn: &Connection, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT record FROM keys WHERE id = ?1")
        .map_err(unavailable)?;
    statement
        .query_row(params![key.as_str()], |row| row.get::<_, String>(0))
        .optional()
        .map_err(unavailable)?
        .as_deref()
        .map(decode_key)
        .transpose()
}

/// [`read_state`]'s statements: the key and the session record, then (in
/// the second only) the caller's key. A verify, the hottest read, skips the
/// caller's join altogether.
static READ_STATE: LazyLock<[String; 2]> = LazyLock::new(|| {
    let joins = "FROM (SELECT 1)
         LEFT JOIN keys AS k ON k.id = ?1
         LEFT JOIN sessions AS s ON s.key_id = ?1 AND s.session_id = ?2
         LEFT JOIN session_records AS r ON r.id = s.record_id";
    [
        format!("SELECT k.record, r.record {joins}"),
        format!("SELECT k.record, r.record, c.record {joins} LEFT JOIN keys AS c ON c.id = ?3"),
    ]
});

/// A key, one of its sessions and, when asked, a caller's key, in one
/// statement: all the rows come from one snapshot (even while another
/// process writes) without a BEGIN and COMMIT of their own.
fn read_state(
    conn: &Connection,
    caller: Option<&KeyId>,
    key: &KeyId,
    session: &SessionId,
) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError> {
    let [alone, with_caller] = &*READ_STATE;
    let columns = |row: &Row<'_>| {
        Ok((
            row.get::<_, Option<String>>(0)?,
            row.get::<_, Option<String>>(1)?,
            match caller {
                Some(_) => row.get::<_, Option<String>>(2)?,
                None => None,
            },
        ))
    };
    let (key, session, caller) = match caller {
        None => conn
            .prepare_cached(alone)
            .and_then(|mut s| s.query_row(params![key.as_str(), session.as_str()], columns)),
        Some(caller) => conn.prepare_cached(with_caller).and_then(|mut s| {
            s.query_row(
                params![key.as_str(), session.as_str(), caller.as_str()],
                columns,
            )
        }),
    }
    .map_err(unavailable)?;
    Ok((
        caller.as_deref().map(decode_key).transpose()?,
        (
            key.as_deref().map(decode_key).transpose()?,
            session.as_deref().map(decode_session).transpose()?,
        ),
    ))
}

fn decode_session(record: &str) -> Result<SessionRecord, StoreError> {
    serde_json::from_str(record)
        .map_err(|e| StoreError::Internal(format!("corrupt session row: {e}")))
}

/// Runs `write` (one row changed, or none) and, when it changed its row,
/// stores `event` in the same transaction: both or neither.
fn logged(
    conn: &Connection,
    event: &AuditEvent,
    write: impl FnOnce(&Connection) -> Result<usize, StoreError>,
) -> Result<bool, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    if write(&tx)? != 1 {
        return Ok(false);
    }
    insert_event(&tx, event, Conflict::Fail)?;
    tx.commit().map_err(unavailable)?;
    Ok(true)
}

/// What [`insert_event`] does with an event whose id is stored already.
#[derive(Clone, Copy)]
enum Conflict {
    /// Fails: the id was meant to be new.
    Fail,
    /// Keeps the stored one: a retry recording the same event.
    Keep,
}

fn insert_event(
    conn: &Connection,
    event: &AuditEvent,
    conflict: Conflict,
) -> Result<(), StoreError> {
    let record = serde_json::to_string(event).map_err(|e| StoreError::Internal(e.to_string()))?;
    let sql = match conflict {
        Conflict::Fail => {
            "INSERT INTO events (key_id, id, ttl, record, owner) VALUES (?1, ?2, ?3, ?4, ?5)"
        }
        Conflict::Keep => {
            "INSERT OR IGNORE INTO events (key_id, id, ttl, record, owner) VALUES (?1, ?2, ?3, ?4, ?5)"
        }
    };
    conn.execute(
        sql,
        params![
            // An event of no key sits under the empty id, which no key has.
            event.key_id.as_ref().map_or("", KeyId::as_str),
            event.id,
            to_i64(event.ttl)?,
            record,
            event.owner.as_ref().map(Owner::as_str)
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// The `record` column of every row `sql` selects with `params`, decoded by `decode`.
fn records<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: fn(&str) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = statement
        .query_map(params, |row| row.get::<_, String>(0))
        .map_err(unavailable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    rows.iter().map(|r| decode(r)).collect()
}

fn decode_event(record: &str) -> Result<AuditEvent, StoreError> {
    serde_json::from_str(record)
        .map_err(|e| StoreError::Internal(format!("corrupt event row: {e}")))
}

fn decode_link(record: &str) -> Result<PortalLink, StoreError> {
    serde_json::from_str(record)
        .map_err(|e| StoreError::Internal(format!("corrupt portal link row: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))
}

fn decode_key(record: &str) -> Result<KeyRecord, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Internal(format!("corrupt key row: {e}")))
}

/// Runs a key write with `?1` the id, `?2` the creation time (the listing's
/// order), `?3` the version written, `?4` the record at that version and
/// `?5` the owner (the listing's filter).
fn execute_key(conn: &Connection, sql: &str, r: &KeyRecord) -> Result<usize, StoreError> {
    let stored = r
        .as_written()
        .ok_or_else(|| StoreError::Internal("key version overflow".into()))?;
    let record = serde_json::to_string(&stored).map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.execute(
        sql,
        params![
            r.id.as_str(),
            to_i64(r.created_at)?,
            to_i64(stored.version)?,
            record,
            r.owner.as_ref().map(Owner::as_str)
        ],
    )
    .map_err(unavailable)
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Internal("time out of range".into()))
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// One failed group commit, as the error of each write in it.
fn unavailable_shared(e: &std::sync::Arc<rusqlite::Error>) -> StoreError {
    StoreError::Unavailable(Box::new(SharedError(e.clone())))
}

/// An error several callers share.
#[derive(Debug)]
struct SharedError(std::sync::Arc<rusqlite::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{Actor, Origin, Stamp};

    #[tokio::test]
    async fn a_recorded_event_is_kept_once_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.db");
        let stamp = Stamp {
            origin: Origin::of(Actor::system("rotation")),
            now_ms: 5_000,
            retention_days: 400,
        };
        let event = AuditEvent::of_signing_key_rotation(None, "k1", &stamp);
        {
            let store = SqliteStore::open(&path).unwrap();
            store.record_event(&event).await.unwrap();
            store.record_event(&event).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        store.record_event(&event).await.unwrap();
        assert_eq!(store.events_page(None, None, 10).await.unwrap(), [event]);
    }

    /// The sweep finds expired sessions through its index alone: it never
    /// scans the sessions.
    #[test]
    fn the_sweep_finds_expired_sessions_through_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SWEEP_SESSIONS}"))
            .unwrap()
            .query_map(params![5, SWEEP_BATCH], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step == "SEARCH sessions USING COVERING INDEX sessions_by_ttl (ttl<?)"),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }
}
