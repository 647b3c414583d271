//! The driver as Till uses it: through sqlx's `Any` API, on a real SQLite file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

/// A fresh database file's URL.
fn fresh_url() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "till-sqlite-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The file path of a `sqlite://…?…` URL.
fn path_of(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .unwrap()
}

async fn connect(url: &str) -> AnyConnection {
    till_sqlite::install_drivers();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    conn.execute("PRAGMA journal_mode = WAL").await.unwrap();
    conn
}

async fn with_table() -> (String, AnyConnection) {
    let url = fresh_url();
    let mut conn = connect(&url).await;
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
        .await
        .unwrap();
    (url, conn)
}

/// Runs `sql`, which must succeed; returns the rows it changed.
async fn run(conn: &mut AnyConnection, sql: &str) -> u64 {
    let done = sqlx::query(sql).execute(&mut *conn).await.unwrap();
    done.rows_affected()
}

async fn count(conn: &mut AnyConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_script_binds_each_statement_to_the_values_it_numbers() {
    let (_, mut conn) = with_table().await;
    let done = sqlx::query(
        "INSERT INTO t (id, name) VALUES ($1, $2); INSERT INTO t (id, name) VALUES ($3, $2)",
    )
    .bind(1_i64)
    .bind("same")
    .bind(2_i64)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 2);
    let names: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM t ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(names, vec![(1, "same".into()), (2, "same".into())]);
    // The same text again runs from the statements kept prepared.
    sqlx::query(
        "INSERT INTO t (id, name) VALUES ($1, $2); INSERT INTO t (id, name) VALUES ($3, $2)",
    )
    .bind(3_i64)
    .bind("again")
    .bind(4_i64)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(count(&mut conn).await, 4);
}

#[tokio::test]
async fn values_read_back_as_they_were_stored() {
    let (_, mut conn) = with_table().await;
    sqlx::query(
        "INSERT INTO t (id, name, score, data) VALUES ($1, $2, $3, $4), ($5, NULL, NULL, NULL)",
    )
    .bind(i64::MAX)
    .bind("Ünïcode ✓")
    .bind(0.5_f64)
    .bind(vec![0_u8, 1, 255])
    .bind(7_i64)
    .execute(&mut conn)
    .await
    .unwrap();
    let row = sqlx::query("SELECT id, name, score, data FROM t WHERE id = $1")
        .bind(i64::MAX)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("id"), i64::MAX);
    assert_eq!(row.get::<String, _>(1), "Ünïcode ✓");
    assert_eq!(row.get::<f64, _>("score"), 0.5);
    assert_eq!(row.get::<Vec<u8>, _>("data"), vec![0, 1, 255]);
    let empty = sqlx::query("SELECT name, score FROM t WHERE id = 7")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(empty.get::<Option<String>, _>("name"), None);
    assert_eq!(empty.get::<Option<f64>, _>("score"), None);
    let missing: Option<i64> = sqlx::query_scalar("SELECT id FROM t WHERE id = 8")
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[tokio::test]
async fn a_write_reports_its_rows_and_a_read_none() {
    let (_, mut conn) = with_table().await;
    run(&mut conn, "INSERT INTO t (id) VALUES (1), (2), (3)").await;
    let updated = sqlx::query("UPDATE t SET name = 'x' WHERE id >= $1")
        .bind(2_i64)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 2);
    let read = run(&mut conn, "SELECT id FROM t").await;
    assert_eq!(read, 0);
    let returned: Vec<i64> =
        sqlx::query_scalar("UPDATE t SET name = 'y' WHERE id < $1 RETURNING id")
            .bind(3_i64)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(returned.len(), 2);
}

#[tokio::test]
async fn errors_are_answers_not_panics() {
    let (_, mut conn) = with_table().await;
    run(&mut conn, "INSERT INTO t (id) VALUES (1)").await;
    let duplicate = sqlx::query("INSERT INTO t (id) VALUES ($1)")
        .bind(1_i64)
        .execute(&mut conn)
        .await
        .unwrap_err();
    let sqlx::Error::Database(db) = &duplicate else {
        panic!("not a database error: {duplicate}");
    };
    assert!(db.is_unique_violation(), "{duplicate}");
    assert_eq!(db.code().as_deref(), Some("1555"));
    let unbound = sqlx::query("SELECT $2")
        .bind(1_i64)
        .fetch_one(&mut conn)
        .await;
    assert!(unbound.is_err());
    // Parameters are numbered: a named one is refused, each time its statement runs.
    for _ in 0..2 {
        let named = sqlx::query("SELECT :name")
            .bind(1_i64)
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(named.to_string().contains("use $N"), "{named}");
    }
    let bad = sqlx::query("SELEC 1").execute(&mut conn).await.unwrap_err();
    assert!(bad.to_string().contains("syntax error"), "{bad}");
    // A kept statement that fails runs again afterwards.
    for (id, fails) in [(2_i64, false), (2, true), (3, false)] {
        let inserted = sqlx::query("INSERT INTO t (id) VALUES ($1)")
            .bind(id)
            .execute(&mut conn)
            .await;
        assert_eq!(inserted.is_err(), fails, "{inserted:?}");
    }
    // The connection goes on.
    assert_eq!(count(&mut conn).await, 3);
}

#[tokio::test]
async fn the_statements_kept_are_bounded() {
    let (_, mut conn) = with_table().await;
    for n in 0..600_i64 {
        let sum: i64 = sqlx::query_scalar(&format!("SELECT $1 + {n}"))
            .bind(1_i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(sum, n + 1);
    }
    let kept = conn.cached_statements_size();
    assert!((500..=512).contains(&kept), "{kept} texts kept");
}

#[tokio::test]
async fn a_transaction_dropped_unfinished_is_rolled_back_at_once() {
    let (_, mut conn) = with_table().await;
    {
        let mut tx = conn.begin().await.unwrap();
        run(&mut tx, "INSERT INTO t (id) VALUES (1)").await;
    }
    assert_eq!(count(&mut conn).await, 0);
    let mut tx = conn.begin().await.unwrap();
    run(&mut tx, "INSERT INTO t (id) VALUES (2)").await;
    tx.commit().await.unwrap();
    assert_eq!(count(&mut conn).await, 1);
}

#[tokio::test]
async fn savepoints_nest_inside_a_transaction() {
    let (_, mut conn) = with_table().await;
    let mut tx = conn.begin().await.unwrap();
    run(&mut tx, "INSERT INTO t (id) VALUES (1)").await;
    {
        let mut inner = tx.begin().await.unwrap();
        run(&mut inner, "INSERT INTO t (id) VALUES (2)").await;
        inner.rollback().await.unwrap();
    }
    {
        let mut inner = tx.begin().await.unwrap();
        run(&mut inner, "INSERT INTO t (id) VALUES (3)").await;
        inner.commit().await.unwrap();
    }
    tx.commit().await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM t ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 3]);
}

#[tokio::test]
async fn a_transaction_sqlite_ended_is_never_reported_committed() {
    let (_, mut conn) = with_table().await;
    {
        let mut tx = conn.begin().await.unwrap();
        let mut inner = tx.begin().await.unwrap();
        run(&mut inner, "INSERT INTO t (id) VALUES (1)").await;
        // SQLite ends a transaction of its own accord on a full disk or an I/O error; a
        // `ROLLBACK` run as a statement ends it the same way, under the driver's feet.
        run(&mut inner, "ROLLBACK").await;
        assert!(
            inner.commit().await.is_err(),
            "a savepoint released after its end"
        );
        assert!(
            tx.commit().await.is_err(),
            "a transaction committed after its end"
        );
    }
    assert_eq!(count(&mut conn).await, 0);
    // The connection begins afresh; a savepoint is not taken for a transaction.
    let mut tx = conn.begin().await.unwrap();
    run(&mut tx, "INSERT INTO t (id) VALUES (2)").await;
    run(&mut tx, "ROLLBACK").await;
    assert!(tx.begin().await.is_err(), "a savepoint begun after its end");
    drop(tx);
    let mut tx = conn.begin().await.unwrap();
    run(&mut tx, "INSERT INTO t (id) VALUES (3)").await;
    tx.commit().await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM t")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![3]);
}

#[tokio::test]
async fn a_write_waits_for_another_connections_transaction() {
    let (url, mut holder) = with_table().await;
    let mut other = connect(&url).await;
    let mut tx = holder.begin().await.unwrap();
    run(&mut tx, "INSERT INTO t (id) VALUES (1)").await;
    let started = Instant::now();
    let (written, ()) = tokio::join!(
        sqlx::query("INSERT INTO t (id) VALUES (2)").execute(&mut other),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.commit().await.unwrap();
        }
    );
    written.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(90));
    assert_eq!(count(&mut holder).await, 2);
    // And a transaction of its own, begun while the lock is held, waits the same way.
    let tx = holder.begin().await.unwrap();
    let (begun, ()) = tokio::join!(
        async {
            let mut theirs = other.begin().await?;
            sqlx::query("INSERT INTO t (id) VALUES (3)")
                .execute(&mut *theirs)
                .await?;
            theirs.commit().await
        },
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.rollback().await.unwrap();
        }
    );
    begun.unwrap();
    assert_eq!(count(&mut holder).await, 3);
}

#[tokio::test]
async fn a_query_only_connection_reads_in_a_transaction_beside_the_writer() {
    let (url, mut writer) = with_table().await;
    run(&mut writer, "INSERT INTO t (id) VALUES (1)").await;
    let mut reader = connect(&url).await;
    reader.execute("PRAGMA query_only = ON").await.unwrap();
    let mut read = reader.begin().await.unwrap();
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut *read)
        .await
        .unwrap();
    assert_eq!(before, 1);
    // The writer is not kept waiting by the reader's transaction (WAL).
    let mut write = writer.begin().await.unwrap();
    run(&mut write, "INSERT INTO t (id) VALUES (2)").await;
    write.commit().await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut *read)
        .await
        .unwrap();
    assert_eq!(seen, 1, "the reader's snapshot is from before the write");
    read.commit().await.unwrap();
    assert!(sqlx::query("INSERT INTO t (id) VALUES (3)")
        .execute(&mut reader)
        .await
        .is_err());
}

#[tokio::test]
async fn a_pool_serves_sqlite_urls_and_refuses_unknown_parameters() {
    till_sqlite::install_drivers();
    let url = fresh_url();
    let pool: AnyPool = AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(pool.acquire().await.unwrap().backend_name(), "SQLite");
    let refused = AnyConnection::connect(&format!("{url}&cache=shared")).await;
    assert!(refused.is_err());
    let missing = AnyConnection::connect("sqlite:///nonexistent-dir/x.db").await;
    assert!(missing.is_err());
    let memory = AnyConnection::connect("sqlite::memory:").await;
    assert!(memory.is_ok());
}

/// The rows of `t` in a copy of the database file alone, without its log: what checkpoints
/// have copied into the file so far (none while `t` itself is only in the log).
async fn rows_in_file_alone(url: &str) -> i64 {
    let copy = fresh_url();
    std::fs::copy(path_of(url), path_of(&copy)).unwrap();
    let mut conn = connect(&copy).await;
    sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn the_log_is_copied_into_the_file_beside_the_writer() {
    let (url, mut writer) = with_table().await;
    // SQLite's own checkpoints off: only the driver's background ones copy the log.
    writer
        .execute("PRAGMA wal_autocheckpoint = 0")
        .await
        .unwrap();
    let mut tx = writer.begin().await.unwrap();
    for id in 1..=100 {
        run(&mut tx, &format!("INSERT INTO t (id) VALUES ({id})")).await;
    }
    tx.commit().await.unwrap();
    let started = Instant::now();
    let mut in_file = rows_in_file_alone(&url).await;
    while in_file < 100 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        in_file = rows_in_file_alone(&url).await;
    }
    assert_eq!(in_file, 100, "the committed rows reached the database file");
    // The writer goes on, and reads what it wrote, whatever was copied beside it.
    run(&mut writer, "INSERT INTO t (id) VALUES (101)").await;
    assert_eq!(count(&mut writer).await, 101);
}

#[tokio::test]
async fn a_file_put_in_wal_mode_later_is_checkpointed_too() {
    till_sqlite::install_drivers();
    let url = fresh_url();
    // A rollback-journal file for a while: the background checkpoints see no log yet.
    let mut writer = AnyConnection::connect(&url).await.unwrap();
    writer
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.execute("PRAGMA journal_mode = WAL").await.unwrap();
    writer
        .execute("PRAGMA wal_autocheckpoint = 0")
        .await
        .unwrap();
    run(&mut writer, "INSERT INTO t (id) VALUES (1), (2), (3)").await;
    let started = Instant::now();
    let mut in_file = rows_in_file_alone(&url).await;
    while in_file < 3 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        in_file = rows_in_file_alone(&url).await;
    }
    assert_eq!(
        in_file, 3,
        "the rows written in WAL mode reached the database file"
    );
}

#[tokio::test]
async fn sqlite_is_built_with_a_page_cache_per_connection_and_no_allocation_statistics() {
    let (_, mut conn) = with_table().await;
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    // `.cargo/config.toml` (LIBSQLITE3_FLAGS): one shared page cache would put every
    // connection's page reads behind one lock.
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
}

/// The rows of `t` and the bytes of their `data`, in a copy of the database file and its
/// log as they are on disk now, without the shared index: what a process killed at this
/// moment would leave for the next to open.
async fn rows_on_disk(url: &str) -> (i64, i64) {
    let copy = fresh_url();
    std::fs::copy(path_of(url), path_of(&copy)).unwrap();
    std::fs::copy(
        format!("{}-wal", path_of(url)),
        format!("{}-wal", path_of(&copy)),
    )
    .unwrap();
    let mut conn = connect(&copy).await;
    let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn every_commit_is_in_the_log_on_disk_when_it_returns() {
    let (url, mut writer) = with_table().await;
    let (mut rows, mut bytes) = (0, 0);
    // One row; a few hundred rows over many pages; rows of 3 MB in all, more than the
    // driver gathers before writing; a transaction rolled back between them.
    for (n, size) in [(1, 10), (300, 600), (12, 256 * 1024), (2, 100)] {
        let mut tx = writer.begin().await.unwrap();
        for _ in 0..n {
            rows += 1;
            bytes += size;
            run(
                &mut tx,
                &format!("INSERT INTO t (id, data) VALUES ({rows}, zeroblob({size}))"),
            )
            .await;
        }
        tx.commit().await.unwrap();
        assert_eq!(rows_on_disk(&url).await, (rows, bytes));
        let mut tx = writer.begin().await.unwrap();
        run(
            &mut tx,
            "INSERT INTO t (id, data) VALUES (-1, zeroblob(100000))",
        )
        .await;
        run(&mut tx, "UPDATE t SET data = zeroblob(7) WHERE id = 1").await;
        tx.rollback().await.unwrap();
    }
    assert_eq!(rows_on_disk(&url).await, (rows, bytes));
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut writer)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}
