//! The simulator's database: opening it, and taking over the records an earlier Till kept
//! for its embedded simulator in the shop's own SQLite file.
//!
//! A gateway's books are its own. Embedded in Till on SQLite, the simulator keeps them in a
//! file of its own beside the shop's, so its writes never queue behind the shop's one
//! writer (nor the shop's behind them). Till once kept them in the shop's file; the first
//! start on the separate file copies them across (`take_over_records`).

use std::time::Duration;

use anyhow::Context;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// Connections to its own database: webhook delivery and a few concurrent API calls.
const DB_MAX_CONNECTIONS: u32 = 4;

/// SQLite allows one writer; one pooled connection queues writers instead of failing busy.
const SQLITE_MAX_CONNECTIONS: u32 = 1;

/// How long a call waits for a database connection before it fails.
const DB_ACQUIRE_TIMEOUT_SECS: u64 = 30;

/// Every table holding records (not the migration bookkeeping), in an order where nothing
/// refers to a table copied after it.
const RECORD_TABLES: &[&str] = &[
    "sim_rzp_orders",
    "sim_payments",
    "sim_refunds",
    "sim_events",
    "sim_stripe_requests",
];

/// Opens the simulator's database: `sqlite://PATH` (created if missing, WAL) or PostgreSQL.
pub async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    till_sqlite::install_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    };
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(if sqlite {
            SQLITE_MAX_CONNECTIONS
        } else {
            DB_MAX_CONNECTIONS
        })
        .acquire_timeout(Duration::from_secs(DB_ACQUIRE_TIMEOUT_SECS))
        // A SQLite connection (a file in this process) cannot break between uses, so it is
        // not asked on every acquire.
        .test_before_acquire(!sqlite)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if sqlite {
                    // As the shop's own file: 2 KB pages for a new file (fixed once its
                    // first table is made; a payment's rows are small and a commit writes
                    // every page it touched to the log), and an application crash loses
                    // nothing committed.
                    conn.execute("PRAGMA page_size = 2048").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // Each payment is a few commits of a few pages: at SQLite's 1,000-page
                    // log a checkpoint (a copy into the file and two syncs, on the one
                    // connection every call waits for) came every few dozen payments. At
                    // 16,000 pages a sixteenth as often, and a page many commits wrote (an
                    // index's last) is copied once.
                    conn.execute("PRAGMA wal_autocheckpoint = 16000").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| "connect to the simulator's database".to_string())?;
    Ok(pool)
}

/// Copies the records an earlier Till's embedded simulator kept in the SQLite file at
/// `earlier` into this (SQLite, migrated) database, once: only while this one holds no
/// records at all, in one transaction, so a start that dies part-way copies again next
/// time. Columns are matched by name. Returns how many rows were copied. The earlier
/// tables are left where they were, unread from then on.
pub async fn take_over_records(pool: &AnyPool, earlier: &str) -> anyhow::Result<u64> {
    let mut conn = pool
        .acquire()
        .await
        .context("acquire a connection to take over earlier records")?;
    sqlx::query("ATTACH DATABASE $1 AS earlier")
        .bind(earlier)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("open {earlier} to take over its gateway records"))?;
    let copied = copy_records(&mut conn).await;
    let detached = sqlx::query("DETACH DATABASE earlier")
        .execute(&mut *conn)
        .await;
    let copied = copied?;
    detached?;
    if copied > 0 {
        tracing::info!(
            copied,
            from = earlier,
            "took over the gateway simulator's records"
        );
    }
    Ok(copied)
}

async fn copy_records(conn: &mut AnyConnection) -> anyhow::Result<u64> {
    let mut tx = conn.begin().await?;
    for table in RECORD_TABLES {
        let held: i64 = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM main.{table})"))
            .fetch_one(&mut *tx)
            .await?;
        if held != 0 {
            return Ok(0);
        }
    }
    let mut copied = 0;
    for table in RECORD_TABLES {
        let columns = |schema: &'static str| {
            sqlx::query_scalar::<_, String>("SELECT name FROM pragma_table_info($1, $2)")
                .bind(*table)
                .bind(schema)
        };
        let theirs = columns("earlier").fetch_all(&mut *tx).await?;
        let shared: Vec<String> = columns("main")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .filter(|column| theirs.contains(column))
            .map(|column| format!("\"{column}\""))
            .collect();
        if shared.is_empty() {
            // The earlier Till had not reached the version that made this table.
            continue;
        }
        let list = shared.join(", ");
        copied += sqlx::query(&format!(
            "INSERT INTO main.{table} ({list}) SELECT {list} FROM earlier.{table}"
        ))
        .execute(&mut *tx)
        .await
        .with_context(|| format!("copy {table}"))?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("till-sim-db-{}", crate::random_token(10)));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name).display().to_string()
    }

    /// A shop file as an earlier Till left it: the simulator's first three versions, one
    /// payment with its refund and event, and a Razorpay order.
    async fn earlier_shop_file() -> String {
        let path = temp_file("shop.db");
        let pool = connect(&format!("sqlite://{path}")).await.unwrap();
        sqlx::raw_sql(include_str!("../migrations/0001_records.sql"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../migrations/0002_stripe.sql"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../migrations/0003_razorpay.sql"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE orders (id TEXT PRIMARY KEY);
             INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, refunded, created_at, updated_at, protocol, order_ref)
               VALUES ('simpay_1', 'pay_1', 49900, 'INR', 'card', 'pm_card_visa', 'succeeded', 900, 1, 2, 'razorpay', 'order_rzp_1');
             INSERT INTO sim_refunds (idem_key, payment_id, amount, created_at) VALUES ('ref_1', 'simpay_1', 900, 3);
             INSERT INTO sim_events (id, payment_id, outcome, deliver_at) VALUES ('evt_1', 'simpay_1', 'succeeded', 2);
             INSERT INTO sim_rzp_orders (id, receipt, amount, currency, created_at) VALUES ('order_rzp_1', 'ord_1', 49900, 'INR', 1);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        path
    }

    async fn count(pool: &AnyPool, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn records_an_earlier_till_kept_are_copied_once() {
        let shop = earlier_shop_file().await;
        let own = connect(&format!("sqlite://{}", temp_file("gateway.db")))
            .await
            .unwrap();
        crate::migrate(&own).await.unwrap();
        assert_eq!(take_over_records(&own, &shop).await.unwrap(), 4);
        let (amount, refunded, order_ref): (i64, i64, String) = sqlx::query_as(
            "SELECT amount, refunded, order_ref FROM sim_payments WHERE idem_key = 'pay_1'",
        )
        .fetch_one(&own)
        .await
        .unwrap();
        assert_eq!(
            (amount, refunded, order_ref.as_str()),
            (49900, 900, "order_rzp_1")
        );
        for table in ["sim_refunds", "sim_events", "sim_rzp_orders"] {
            assert_eq!(count(&own, table).await, 1, "{table}");
        }
        assert_eq!(count(&own, "sim_stripe_requests").await, 0);
        // Started again: nothing is copied twice, and the shop file is free again.
        assert_eq!(take_over_records(&own, &shop).await.unwrap(), 0);
        assert_eq!(count(&own, "sim_payments").await, 1);
        let attached: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_database_list")
            .fetch_one(&own)
            .await
            .unwrap();
        assert_eq!(attached, 1, "the shop file is detached");
    }

    #[tokio::test]
    async fn a_shop_file_without_simulator_tables_gives_nothing() {
        let shop = temp_file("new-shop.db");
        let pool = connect(&format!("sqlite://{shop}")).await.unwrap();
        sqlx::raw_sql("CREATE TABLE orders (id TEXT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let own = connect(&format!("sqlite://{}", temp_file("gateway.db")))
            .await
            .unwrap();
        crate::migrate(&own).await.unwrap();
        assert_eq!(take_over_records(&own, &shop).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_new_file_has_half_size_pages_and_an_earlier_one_keeps_its_own() {
        let page_size = |pool: AnyPool| async move {
            sqlx::query_scalar::<_, i64>("PRAGMA page_size")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        let fresh = connect(&format!("sqlite://{}", temp_file("fresh.db")))
            .await
            .unwrap();
        crate::migrate(&fresh).await.unwrap();
        assert_eq!(page_size(fresh).await, 2048);
        // A file an earlier simulator made, with SQLite's 4 KB pages: WAL mode fixes them.
        let earlier = temp_file("earlier-pages.db");
        let mut made = AnyConnection::connect(&format!("sqlite://{earlier}?mode=rwc"))
            .await
            .unwrap();
        made.execute("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        made.close().await.unwrap();
        let reopened = connect(&format!("sqlite://{earlier}")).await.unwrap();
        crate::migrate(&reopened).await.unwrap();
        assert_eq!(page_size(reopened).await, 4096);
    }
}
