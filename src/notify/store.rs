//! The event store: every statement on `events` and `sink_cursors`.
//!
//! On PostgreSQL writers insert events in their own transactions with no position, so they
//! never wait on one another. `sequence` then numbers the committed ones, one sequencer at a
//! time (it holds the `events` counter row): an event whose transaction commits late is
//! simply numbered in a later round. Readers see numbered events only, and page by number.
//!
//! On SQLite the one writer commits transactions in the order they run, so an event takes
//! its position from the counter as it is inserted, in the inserting transaction: no later
//! commit can hold a lower one. Its row is written once instead of again by the sequencer
//! (the biggest share of a checkout's pages in the log, `bench/wal.sh`). The sequencer
//! still numbers any event without a position (written before the counter row existed).

use sqlx::AnyConnection;

use crate::db::{Bind, Kind, Script};
use crate::error::Result;
use crate::multirow;

/// Where an event stands in the stream: 1, 2, 3… in the order events were sequenced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub i64);

/// An event as stored: its type and object are the writer's, checked by the caller.
pub struct Row {
    pub position: Position,
    pub id: String,
    pub kind: String,
    pub data: String,
    pub created_at: i64,
}

type RowTuple = (i64, String, String, String, i64);

fn row((position, id, kind, data, created_at): RowTuple) -> Row {
    Row {
        position: Position(position),
        id,
        kind,
        data,
        created_at,
    }
}

/// Writes an event in the caller's transaction: it exists if and only if that commits.
pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    event_type: &str,
    data: &str,
    now: i64,
) -> Result<()> {
    Script::of(|s| insert_all_into(s, &[(id, event_type, data)], now))
        .run(conn)
        .await?;
    Ok(())
}

/// The `events` counter as a statement reads it, on SQLite: the last position given.
const LAST_POSITION: &str = "(SELECT value FROM counters WHERE name = 'events')";

/// Adds to `script`, for the caller to run in its transaction, the statements writing events
/// (id, type, data), one per run of them (`multirow::runs`), in the order given: their
/// serial keys, which the sequencer numbers them by, follow that order. On SQLite each also
/// takes its position, the counter's next, and moves the counter past them.
pub fn insert_all_into(script: &mut Script, events: &[(&str, &str, &str)], now: i64) {
    for run in multirow::runs(events.len()) {
        let rows = run.len();
        let sql = format!(
            "INSERT INTO events (id, type, data, created_at) VALUES {}",
            multirow::values("(?, ?, ?, $1)", rows, 2)
        );
        // Each row's position is the counter's next plus its place in the run.
        let numbered: Vec<String> = (0..rows)
            .map(|i| {
                let row = format!("(?, ?, ?, $1, {LAST_POSITION} + {})", i + 1);
                multirow::values(&row, 1, 2 + 3 * i)
            })
            .collect();
        let on_sqlite = format!(
            "INSERT INTO events (id, type, data, created_at, position) VALUES {};\n\
             UPDATE counters SET value = value + {rows} WHERE name = 'events'",
            numbered.join(", ")
        );
        let mut binds = Vec::with_capacity(1 + 3 * rows);
        binds.push(Bind::from(now));
        for (id, kind, data) in &events[run] {
            binds.extend([Bind::from(*id), Bind::from(*kind), Bind::from(*data)]);
        }
        script.push_or_on_sqlite(sql, on_sqlite, binds);
    }
}

/// Whether a committed event waits for its position (a read of the partial index).
pub async fn unsequenced(conn: &mut AnyConnection) -> Result<bool> {
    let waiting: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM events WHERE position IS NULL LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(waiting.is_some())
}

/// Numbers up to `limit` committed events that have no position yet, in insertion order,
/// after the highest position given so far; returns how many. In the caller's transaction.
pub async fn sequence(tx: &mut AnyConnection, kind: Kind, limit: i64) -> Result<u64> {
    // The counter row (made by migration 0018) is the sequencer's lock: a second sequencer
    // waits here, and then sees (statement by statement) what the first numbered.
    let last: i64 = sqlx::query_scalar(&format!(
        "SELECT value FROM counters WHERE name = 'events'{}",
        kind.for_update()
    ))
    .fetch_one(&mut *tx)
    .await?;
    let numbered = sqlx::query(
        "UPDATE events SET position = $1 + n.rank FROM \
         (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) AS rank FROM \
           (SELECT seq FROM events WHERE position IS NULL ORDER BY seq LIMIT $2) AS waiting) AS n \
         WHERE events.seq = n.seq",
    )
    .bind(last)
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if numbered > 0 {
        sqlx::query("UPDATE counters SET value = $1 WHERE name = 'events'")
            .bind(last + numbered as i64)
            .execute(&mut *tx)
            .await?;
    }
    Ok(numbered)
}

/// Up to `limit` sequenced events after `after`, oldest first, of `event_type` when given.
pub async fn after(
    conn: &mut AnyConnection,
    after: Position,
    event_type: Option<&str>,
    limit: i64,
) -> Result<Vec<Row>> {
    let rows: Vec<RowTuple> = sqlx::query_as(
        "SELECT position, id, type, data, created_at FROM events \
         WHERE position > $1 AND ($2 = '' OR type = $2) ORDER BY position LIMIT $3",
    )
    .bind(after.0)
    .bind(event_type.unwrap_or(""))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(row).collect())
}

/// Whether a sequenced event follows `after`.
pub async fn any_after(conn: &mut AnyConnection, after: Position) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT position FROM events WHERE position > $1 LIMIT 1")
            .bind(after.0)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// One sequenced event by id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Row>> {
    let found: Option<RowTuple> = sqlx::query_as(
        "SELECT position, id, type, data, created_at FROM events \
         WHERE id = $1 AND position IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.map(row))
}

/// Where `sink` stands, if it has a cursor yet.
pub async fn cursor(conn: &mut AnyConnection, sink: &str) -> Result<Option<Position>> {
    let at: Option<i64> = sqlx::query_scalar("SELECT position FROM sink_cursors WHERE sink = $1")
        .bind(sink)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(at.map(Position))
}

/// Gives a sink seen for the first time its cursor, before the first event; where it stands.
pub async fn start_cursor(conn: &mut AnyConnection, sink: &str, now: i64) -> Result<Position> {
    sqlx::query(
        "INSERT INTO sink_cursors (sink, position, updated_at) VALUES ($1, 0, $2) \
         ON CONFLICT (sink) DO NOTHING",
    )
    .bind(sink)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    cursor(conn, sink)
        .await?
        .ok_or_else(|| crate::error::Error::Internal(anyhow::anyhow!("no cursor for sink {sink}")))
}

/// Moves `sink` from `from` to `to`; false if another relay moved it first (then what this
/// one did is done twice, never lost — consumers dedupe by event id).
pub async fn advance(
    conn: &mut AnyConnection,
    sink: &str,
    from: Position,
    to: Position,
    now: i64,
) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE sink_cursors SET position = $1, updated_at = $2 WHERE sink = $3 AND position = $4",
    )
    .bind(to.0)
    .bind(now)
    .bind(sink)
    .bind(from.0)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Takes `sink` for `owner` until `until` unless another relay holds it (its lease not run
/// out); true if `owner` holds it now. The sink's cursor row must exist (`cursor`).
pub async fn take(
    conn: &mut AnyConnection,
    sink: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE sink_cursors SET leased_by = $1, leased_until = $2 \
         WHERE sink = $3 AND (leased_until <= $4 OR leased_by = $1)",
    )
    .bind(owner)
    .bind(until)
    .bind(sink)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Lets go of `sink` if `owner` still holds it.
pub async fn release(conn: &mut AnyConnection, sink: &str, owner: &str) -> Result<()> {
    sqlx::query(
        "UPDATE sink_cursors SET leased_by = NULL, leased_until = 0 \
         WHERE sink = $1 AND leased_by = $2",
    )
    .bind(sink)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every sink with the number of events it has not taken (sequenced or not yet) and the age
/// (ms, at `now`) of the oldest of them (0 when none wait).
pub async fn lags(conn: &mut AnyConnection, now: i64) -> Result<Vec<(String, i64, i64)>> {
    let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT c.sink, COUNT(e.seq), MIN(e.created_at) FROM sink_cursors c \
         LEFT JOIN events e ON e.position IS NULL OR e.position > c.position \
         GROUP BY c.sink ORDER BY c.sink",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sink, waiting, oldest)| (sink, waiting, oldest.map_or(0, |t| (now - t).max(0))))
        .collect())
}
