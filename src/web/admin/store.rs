//! Console sessions (`admin_sessions`): the SHA-256 of each session's token, the hash of the
//! API key it was opened with, and when it expires. The token itself is never stored.

use sqlx::AnyConnection;

use crate::error::Result;

/// Opens a session; also forgets every session that has expired by `now`.
pub async fn open_session(
    conn: &mut AnyConnection,
    token_hash: &str,
    key_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO admin_sessions (token_hash, key_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(key_hash)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The API key hash of a session that is still open at `now`, if there is one.
pub async fn session_key(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT key_hash FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Ends a session (signing out); whether there was one.
pub async fn close_session(conn: &mut AnyConnection, token_hash: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
