//! The simulator's schema and its own migration bookkeeping (`sim_schema_migrations`, not
//! the shop's): a server of its own migrates only these tables, and inside Till they sit
//! beside Till's in Till's database.
//!
//! Till's migrations created these tables before the simulator had migrations of its own, so
//! a database made by an earlier Till may already hold some of them. Each step therefore
//! says how to see that its change is already there (a column it adds); such a step is
//! recorded as applied without being run. Tables are created `IF NOT EXISTS` for the same
//! reason.

use anyhow::Context;
use sqlx::{AnyConnection, AnyPool, Connection};

/// One step of the schema: its version, a query that succeeds only once its change is in
/// place, and its SQL.
struct Step {
    version: i64,
    present: &'static str,
    sql: &'static str,
}

/// The schema, in the order it was introduced (the same order Till's migrations once added
/// it in, so a database an earlier Till left at any version is recognised).
const STEPS: &[Step] = &[
    Step {
        version: 1,
        present: "SELECT id FROM sim_payments WHERE 1 = 0",
        sql: include_str!("../migrations/0001_records.sql"),
    },
    Step {
        version: 2,
        present: "SELECT first_response FROM sim_payments WHERE 1 = 0",
        sql: include_str!("../migrations/0002_stripe.sql"),
    },
    Step {
        version: 3,
        present: "SELECT order_ref FROM sim_payments WHERE 1 = 0",
        sql: include_str!("../migrations/0003_razorpay.sql"),
    },
    Step {
        version: 4,
        present: "SELECT object FROM sim_events WHERE 1 = 0",
        sql: include_str!("../migrations/0004_sdk.sql"),
    },
];

/// Lock id for `pg_advisory_lock`, distinct from Till's, so two processes starting together
/// migrate the simulator one at a time.
const PG_MIGRATION_LOCK_ID: i64 = 0x7117_5100;

/// Applies every step not yet applied (SQLite or PostgreSQL).
pub async fn migrate(pool: &AnyPool) -> anyhow::Result<()> {
    let mut conn = pool
        .acquire()
        .await
        .context("acquire a connection to migrate the simulator")?;
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");
    if postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_MIGRATION_LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(&mut conn).await;
    if postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_MIGRATION_LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(conn: &mut AnyConnection) -> anyhow::Result<()> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS sim_schema_migrations (version BIGINT PRIMARY KEY)")
        .execute(&mut *conn)
        .await?;
    for step in STEPS {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM sim_schema_migrations WHERE version = $1")
                .bind(step.version)
                .fetch_optional(&mut *conn)
                .await?;
        if applied.is_some() {
            continue;
        }
        // Outside a transaction: a failed query would abort one on PostgreSQL.
        let present = sqlx::query(step.present).execute(&mut *conn).await.is_ok();
        let mut tx = conn.begin().await?;
        if !present {
            sqlx::raw_sql(step.sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("simulator migration {}", step.version))?;
        }
        sqlx::query("INSERT INTO sim_schema_migrations (version) VALUES ($1)")
            .bind(step.version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = step.version,
            adopted = present,
            "applied simulator migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::any::AnyPoolOptions;
    use sqlx::Row;

    async fn memory() -> AnyPool {
        till_sqlite::install_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("an in-memory SQLite database")
    }

    async fn versions(pool: &AnyPool) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM sim_schema_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_fresh_database_gets_every_step_once() {
        let pool = memory().await;
        migrate(&pool).await.unwrap();
        migrate(&pool).await.unwrap();
        assert_eq!(versions(&pool).await, [1, 2, 3, 4]);
        for step in STEPS {
            sqlx::query(step.present).execute(&pool).await.unwrap();
        }
    }

    /// A database an earlier Till made holds the tables its migrations created, up to the
    /// version it had reached, and no bookkeeping of the simulator's: every step already
    /// there is adopted, the rest applied, and the records stay.
    #[tokio::test]
    async fn tables_an_earlier_till_made_are_adopted_at_any_version() {
        for reached in 1..=STEPS.len() {
            let pool = memory().await;
            for step in &STEPS[..reached] {
                sqlx::raw_sql(step.sql).execute(&pool).await.unwrap();
            }
            sqlx::query(
                "INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, created_at, updated_at)
                 VALUES ('simpay_1', 'pay_1', 49900, 'INR', 'card', 'pm_card_visa', 'succeeded', 1, 1)",
            )
            .execute(&pool)
            .await
            .unwrap();
            migrate(&pool).await.unwrap();
            assert_eq!(versions(&pool).await, [1, 2, 3, 4], "reached {reached}");
            let row = sqlx::query("SELECT amount, object FROM sim_payments p LEFT JOIN sim_events e ON e.payment_id = p.id")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(row.get::<i64, _>("amount"), 49900);
        }
    }
}
