//! A commit's pages reach SQLite's log in one write (its own test binary: the count is the
//! process's).

use sqlx::{AnyConnection, Connection, Executor};

#[tokio::test]
async fn a_commit_of_many_pages_is_one_write_to_the_log() {
    till_sqlite::install_drivers();
    let path = std::env::temp_dir().join(format!("till-sqlite-writes-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    conn.execute("PRAGMA journal_mode = WAL").await.unwrap();
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
        .await
        .unwrap();
    conn.execute("CREATE INDEX t_data ON t (data)")
        .await
        .unwrap();
    for round in 0..3 {
        let before = till_sqlite::log_writes();
        let mut tx = conn.begin().await.unwrap();
        for n in 0..200 {
            let id = round * 1000 + n;
            sqlx::query(&format!(
                "INSERT INTO t (id, data) VALUES ({id}, randomblob(100))"
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, (round + 1) * 200);
        // 20 kB of rows and as much of index, some dozen pages each, every page once in
        // the log: one write, where SQLite alone writes two a page.
        assert_eq!(till_sqlite::log_writes() - before, 1, "round {round}");
    }
}
