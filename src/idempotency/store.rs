//! The idempotency store: every statement on `idempotency_keys`. A key is claimed
//! (`running`) with a fingerprint of its request, may record the resource its request
//! created, and is completed (`done`) with its answer.

use sqlx::AnyConnection;

use crate::db::Script;
use crate::error::{corrupt, Result};

/// A key's record, as a retry of its request finds it.
pub struct Record {
    pub fingerprint: String,
    pub running: bool,
    /// The stored answer of a `done` key: its status code and (sealed) body.
    pub answer: Option<(i64, String)>,
    pub created_at: i64,
    /// The resource an interrupted request created, and its kind (`None` for records made
    /// before kinds were kept).
    pub resource: Option<(String, Option<String>)>,
}

/// Claims the key as `running`, with the resource (`kind`, `id`) the request creates when
/// it claims in the transaction that creates it; false if the key is already taken (the
/// insert waits for a transaction that took it and has not ended).
pub async fn insert_claim(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    fingerprint: &str,
    resource: Option<(&str, &str)>,
    now: i64,
) -> Result<bool> {
    let (kind, id) = resource.unzip();
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, created_at, resource_id, resource_kind)
         VALUES ($1, $2, $3, 'running', $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .bind(id)
    .bind(kind)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn get(conn: &mut AnyConnection, scope: &str, key: &str) -> Result<Option<Record>> {
    type Row = (
        String,
        String,
        Option<i64>,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT fingerprint, state, status_code, body, created_at, resource_id, resource_kind
         FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((fingerprint, state, status_code, body, created_at, resource_id, resource_kind)) = row
    else {
        return Ok(None);
    };
    let running = match state.as_str() {
        "running" => true,
        "done" => false,
        other => return Err(corrupt("idempotency_keys.state", other)),
    };
    let answer = match (running, status_code, body) {
        (true, _, _) => None,
        (false, Some(code), Some(body)) => Some((code, body)),
        (false, _, _) => return Err(corrupt("idempotency_keys.body", "(missing)")),
    };
    Ok(Some(Record {
        fingerprint,
        running,
        answer,
        created_at,
        resource: resource_id.map(|id| (id, resource_kind)),
    }))
}

/// Takes over a claim whose request died: only if it is still the claim read at
/// `created_at` and older than `stale_before`. Returns whether it was taken.
pub async fn take_over_stale(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    created_at: i64,
    stale_before: i64,
    now: i64,
) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET created_at = $1 WHERE scope = $2 AND idem_key = $3 AND state = 'running' AND created_at = $4 AND created_at <= $5",
    )
    .bind(now)
    .bind(scope)
    .bind(key)
    .bind(created_at)
    .bind(stale_before)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Records the resource (`kind`, `id`) the request under the key created.
pub async fn set_resource(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    kind: &str,
    id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET resource_id = $1, resource_kind = $2 WHERE scope = $3 AND idem_key = $4",
    )
    .bind(id)
    .bind(kind)
    .bind(scope)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Completes a running key with its answer (already sealed by the caller); a key already
/// answered keeps its first answer.
pub async fn set_answer(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    status_code: u16,
    body: &str,
) -> Result<()> {
    Ok(
        Script::of(|s| set_answer_into(s, scope, key, status_code, body))
            .run(conn)
            .await?,
    )
}

/// `set_answer`'s statement, added to `script` for the caller to run with its other writes.
pub fn set_answer_into(script: &mut Script, scope: &str, key: &str, status_code: u16, body: &str) {
    script.push(
        "UPDATE idempotency_keys SET state = 'done', status_code = $1, body = $2 WHERE scope = $3 AND idem_key = $4 AND state = 'running'",
        vec![
            i64::from(status_code).into(),
            body.into(),
            scope.into(),
            key.into(),
        ],
    );
}

/// Forgets a claim whose request ended without an answer worth keeping (a 5xx).
pub async fn delete_running(conn: &mut AnyConnection, scope: &str, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND state = 'running'",
    )
    .bind(scope)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `purge_done_before`'s statement: the oldest answered keys created before `$1`, at most
/// `$2` of them, found through `idempotency_keys_by_age` rather than by reading every key.
pub const PURGE_DONE_BEFORE: &str = "DELETE FROM idempotency_keys WHERE (scope, idem_key) IN (
       SELECT scope, idem_key FROM idempotency_keys
       WHERE created_at < $1 AND state = 'done' ORDER BY created_at LIMIT $2)";

/// Forgets at most `limit` answered keys created before `before`, oldest first; returns how
/// many. A caller with more to forget calls again, so no one statement holds the table (on
/// SQLite, the one writer) for long.
pub async fn purge_done_before(conn: &mut AnyConnection, before: i64, limit: i64) -> Result<u64> {
    Ok(sqlx::query(PURGE_DONE_BEFORE)
        .bind(before)
        .bind(limit)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}
