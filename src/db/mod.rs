//! The database handle: one pool over SQLite or PostgreSQL, the dialect switch, and migrations.
//!
//! Both backends run the same SQL (`$1` placeholders, `RETURNING`, `ON CONFLICT`); the few
//! places that differ ask `Db::kind`. Every module takes a `&mut AnyConnection` for its
//! queries so a caller can group them into one transaction.

mod script;
mod write;

pub use script::{Bind, Script};
pub use write::Writer;

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// The schema, in the order it was introduced. A version is applied once, in a transaction;
/// only its number is recorded (no checksum), so a database that applied a version stays as
/// it is when the version's file changes.
///
/// The gateway simulator's tables (`sim_*`) are no longer Till's: they were created by
/// versions 1, 2, 3 and 7, and have been taken out of them (3 and 7 held nothing else and are
/// gone). The simulator creates them with its own migrations (`till_gateway_sim::migrate`),
/// which recognise the tables an earlier Till made, so an existing database keeps its
/// records and a new one gets them only where the simulator runs.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema.sql")),
    (2, include_str!("0002_authorize_capture.sql")),
    (4, include_str!("0004_idempotency_resource.sql")),
    (5, include_str!("0005_attempt_fate.sql")),
    (6, include_str!("0006_pending_per_customer.sql")),
    (8, include_str!("0008_one_in_flight.sql")),
    (9, include_str!("0009_idempotency_resource_kind.sql")),
    (10, include_str!("0010_pricing.sql")),
    (11, include_str!("0011_events.sql")),
    (12, include_str!("0012_documents.sql")),
    (13, include_str!("0013_timeline.sql")),
    (14, include_str!("0014_webhook_endpoints.sql")),
    (15, include_str!("0015_mail.sql")),
    (16, include_str!("0016_sink_lease.sql")),
    (17, include_str!("0017_admin_sessions.sql")),
    (18, include_str!("0018_events_counter.sql")),
    (19, include_str!("0019_sweep_indexes.sql")),
];

/// SQLite allows one writer at a time; one pooled connection serializes writers inside this
/// process instead of letting them fail with `SQLITE_BUSY` under a flash sale.
const SQLITE_MAX_CONNECTIONS: u32 = 1;

/// SQLite's reading connections beside the writer (`Db::reads`): reads that need not wait
/// for the writer's queue run beside it, on another worker thread (WAL).
const SQLITE_READERS: u32 = 4;

/// How long a request waits for SQLite's one connection before it is answered 503: long
/// enough for a 2,000-buyer flash-sale queue to drain through the single writer.
const SQLITE_ACQUIRE_TIMEOUT_SECS: u64 = 30;

/// How long a request waits for a PostgreSQL connection (or a new one to be opened) before
/// it is answered 503: a pool of 16 drains thousands of millisecond transactions in this
/// time, and a database that is away is reported quickly instead of hanging clients.
const PG_ACQUIRE_TIMEOUT_SECS: u64 = 5;

/// A pooled PostgreSQL connection idle for this long is asked whether its server is still
/// there before it is handed out (one round trip); one given back more recently was asked
/// as it was given back. Under load a connection is reused within milliseconds, so the
/// acquires of a checkout cost no round trip of their own (nine fewer a checkout, counted
/// with `strace`); a restart of the server
/// that ends a connection in between costs the request using it a 503, as one during the
/// request would.
const PG_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// `/readyz` reports the database down when a trivial query takes longer than this.
const PING_TIMEOUT_MS: u64 = 2_000;

/// A PostgreSQL statement that runs longer than this is cancelled by the server: no checkout
/// statement should take more than milliseconds, so this only catches a stuck lock queue.
const PG_STATEMENT_TIMEOUT_MS: u64 = 20_000;

/// Lock id for `pg_advisory_lock` so two instances starting together migrate one at a time.
const PG_MIGRATION_LOCK_ID: i64 = 0x7117_0001;

/// The file behind a `sqlite://PATH[?…]` URL; `None` for PostgreSQL or a database in memory.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path.is_empty() || path == ":memory:" || params.contains("mode=memory");
    (!in_memory).then_some(path)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    /// A row lock for a `SELECT` that is followed by an update of the same row (PostgreSQL;
    /// on SQLite the single writer already serializes).
    pub fn for_update(self) -> &'static str {
        match self {
            Kind::Postgres => " FOR UPDATE",
            Kind::Sqlite => "",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    /// For reads outside any transaction that may see anything committed (a cart's prices,
    /// an order's head before its transaction re-checks it under the row lock): on SQLite,
    /// connections of their own that do not queue behind the writer; on PostgreSQL, `pool`.
    pub reads: AnyPool,
    pub kind: Kind,
    /// SQLite's writer, on which `write`'s transactions group (`write.rs`).
    group: Option<Arc<write::Group>>,
}

/// Opens a pool with each connection set up for Till: SQLite in WAL with foreign keys (a
/// reader refusing writes), PostgreSQL with the statement timeout.
async fn open(
    options: &AnyConnectOptions,
    kind: Kind,
    max: u32,
    acquire_timeout_secs: u64,
    read_only: bool,
) -> anyhow::Result<AnyPool> {
    let mut pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(acquire_timeout_secs))
        // A SQLite connection is a file in this process: nothing can break it between uses,
        // so it is never asked whether it is alive. A PostgreSQL one may have lost its server
        // while it sat in the pool; the pool already asks it (one round trip) every time it
        // is given back, so it is asked again on its way out only if it has been idle since
        // for long enough that its server may have gone meanwhile.
        .test_before_acquire(false);
    if kind == Kind::Postgres {
        pool = pool.before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PG_PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    }
    pool.after_connect(move |conn, _meta| {
        Box::pin(async move {
            let setup: &[&str] = match kind {
                Kind::Sqlite => &[
                    // Set before the first table of a new file (fixed from then on): a
                    // checkout's commits append every page they touch to the WAL, and its
                    // rows are small, so half-size pages write less per commit.
                    "PRAGMA page_size = 2048",
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    // A checkpoint copies the WAL's pages into the file and syncs both,
                    // on the writer, in the commit that fills the log: at SQLite's 1,000
                    // pages, every few dozen checkouts. At 16,000 (32 MB of log) there are
                    // a sixteenth as many, and a page written by many commits between
                    // them (a stock row's, an index's) is copied once.
                    "PRAGMA wal_autocheckpoint = 16000",
                    // A savepoint keeps each page it changes as it was, to roll back to;
                    // past 64 KiB SQLite spills them to a temporary file, a write per
                    // page. A group commit's members each run in a savepoint, and a
                    // group changes a few hundred KiB: kept in memory instead.
                    "PRAGMA temp_store = MEMORY",
                    "PRAGMA foreign_keys = ON",
                ],
                Kind::Postgres => &[],
            };
            for statement in setup {
                conn.execute(*statement).await?;
            }
            if read_only {
                conn.execute("PRAGMA query_only = ON").await?;
            }
            if kind == Kind::Postgres {
                conn.execute(format!("SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}").as_str())
                    .await?;
            }
            Ok(())
        })
    })
    .connect_with(options.clone())
    .await
    .context("connect to the database")
}

impl Db {
    /// Opens the pool; `sqlite://PATH` creates the file if it is missing.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        till_sqlite::install_drivers();
        let (kind, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Kind::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Kind::Postgres, url.to_string())
        } else {
            anyhow::bail!("unsupported database url (use sqlite://PATH or postgres://...)");
        };
        let options = AnyConnectOptions::from_str(&url).context("parse database url")?;
        let (max, acquire_timeout_secs) = match kind {
            Kind::Sqlite => (SQLITE_MAX_CONNECTIONS, SQLITE_ACQUIRE_TIMEOUT_SECS),
            Kind::Postgres => (max_connections.max(1), PG_ACQUIRE_TIMEOUT_SECS),
        };
        let pool = open(&options, kind, max, acquire_timeout_secs, false).await?;
        // SQLite's readers beside its one writer (WAL lets them read what has committed
        // while it writes); an in-memory database is one connection's own, so it has none.
        let reads = if kind == Kind::Sqlite && sqlite_file(&url).is_some() {
            open(&options, kind, SQLITE_READERS, acquire_timeout_secs, true).await?
        } else {
            pool.clone()
        };
        let group = (kind == Kind::Sqlite).then(|| Arc::new(write::Group::new(pool.clone())));
        Ok(Db {
            pool,
            reads,
            kind,
            group,
        })
    }

    /// Begins a write transaction: on SQLite a member of the writer's group, whose commit
    /// returns once the group has committed it; on PostgreSQL one of its own.
    pub async fn write(&self) -> Result<Writer, sqlx::Error> {
        match &self.group {
            Some(group) => group.join().await,
            None => Ok(Writer::own(self.pool.begin().await?)),
        }
    }

    /// SQLite's group commits so far: groups committed, and the transactions in them.
    pub fn write_groups(&self) -> Option<(u64, u64)> {
        self.group.as_ref().map(|group| {
            (
                group.groups.load(Ordering::Relaxed),
                group.members.load(Ordering::Relaxed),
            )
        })
    }

    /// How long SQLite's writer has been held for groups so far, in microseconds (`None` on
    /// PostgreSQL).
    pub fn writer_busy_micros(&self) -> Option<u64> {
        self.group
            .as_ref()
            .map(|group| group.busy_micros.load(Ordering::Relaxed))
    }

    /// Applies every migration not yet applied.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquire a connection to migrate")?;
        if self.kind == Kind::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(PG_MIGRATION_LOCK_ID)
                .execute(&mut *conn)
                .await?;
        }
        let result = apply_migrations(&mut conn, self.kind).await;
        if self.kind == Kind::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(PG_MIGRATION_LOCK_ID)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    /// Closes the connections, the readers' too.
    pub async fn close(&self) {
        self.pool.close().await;
        self.reads.close().await;
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_millis(PING_TIMEOUT_MS), ping).await,
            Ok(Ok(_))
        )
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has it, so several workers share due rows.
    /// SQLite has one writer, so the clause is simply dropped there.
    pub fn skip_locked(&self) -> &'static str {
        match self.kind {
            Kind::Postgres => " FOR UPDATE SKIP LOCKED",
            Kind::Sqlite => "",
        }
    }
}

/// Leases up to `limit` rows of `table` matching `due` that nobody touched since
/// `untouched_since`, by touching them now, and returns their ids: another instance (or the
/// next tick) leaves them alone until the lease runs out. On PostgreSQL rows another
/// instance is leasing are skipped, not waited for. `table` and `due` are the stores' own
/// fixed text, never input.
pub async fn lease_due(
    db: &Db,
    table: &str,
    due: &str,
    untouched_since: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&lease_due_sql(db, table, due))
        .bind(now)
        .bind(untouched_since)
        .bind(limit)
        .fetch_all(&db.pool)
        .await
}

/// `lease_due`'s statement: `$1` now, `$2` untouched since, `$3` the limit. Every tick runs
/// it, so `due` is meant to be served by an index on `updated_at` (or a partial one holding
/// only the due rows), not by reading the whole table.
pub fn lease_due_sql(db: &Db, table: &str, due: &str) -> String {
    format!(
        "UPDATE {table} SET updated_at = $1 WHERE id IN (
           SELECT id FROM {table} WHERE {due} AND updated_at <= $2 ORDER BY updated_at LIMIT $3{skip}
         ) RETURNING id",
        skip = db.skip_locked()
    )
}

async fn apply_migrations(conn: &mut AnyConnection, kind: Kind) -> anyhow::Result<()> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .execute(&mut *conn)
        .await?;
    let serial_pk = match kind {
        Kind::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Kind::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    for (version, sql) in MIGRATIONS {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *conn)
                .await?;
        if applied.is_some() {
            continue;
        }
        let sql = sql.replace("{serial_pk}", serial_pk);
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {version}"))?;
        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(*version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

/// A value kept in the `settings` table.
pub async fn setting(conn: &mut AnyConnection, name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
}

/// The next number of a series (`invoice/2026-27`, `credit_note/2026-27`), starting at 1.
/// Taken inside the transaction that issues the numbered thing: the counter row stays locked
/// to its end, so numbers are consecutive — a rolled-back transaction gives its number back
/// — and never repeat.
pub async fn next_in_series(conn: &mut AnyConnection, series: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO counters (name, value) VALUES ($1, 1)
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .bind(series)
    .fetch_one(&mut *conn)
    .await
}

/// Keeps `value` under `name` unless a value is there already; returns the value kept.
pub async fn setting_or_insert(
    conn: &mut AnyConnection,
    name: &str,
    value: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}

pub async fn set_setting(
    conn: &mut AnyConnection,
    name: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True when the error is a unique-constraint violation (a lost race on an insert).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// True when the error is a CHECK-constraint violation: the database refused to break an
/// invariant the application should already have guarded.
pub fn is_check_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_check_violation(),
        _ => false,
    }
}
