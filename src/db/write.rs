//! Write transactions, and on SQLite their group commit.
//!
//! `Db::write` begins a transaction for a request's writes. On PostgreSQL it is a
//! transaction of its own on a pooled connection. On SQLite, whose one writer runs one
//! transaction at a time anyway, the transactions of requests that arrive together share one
//! SQLite transaction and one `COMMIT`: a commit costs as much as the pages it appends to the
//! WAL, most of a checkout's time in SQLite, and the pages that concurrent checkouts touch in
//! common (an index's, a table's last) are appended once per group instead of once each.
//!
//! A group is open while the writer's connection is taken out of the pool for it. Each of its
//! members runs in a savepoint of its own, one at a time: a member that fails or is dropped
//! rolls back to its savepoint, and takes nothing of the others with it. A member that
//! commits releases its savepoint, hands the writer to the next member waiting, and waits for
//! the group's `COMMIT`: its commit returns only once its writes are committed, as a
//! transaction's own would, so nothing it answers or does next rests on writes a crash could
//! still take back. The member that finds nobody waiting (or the group full) commits the
//! group; a failed `COMMIT` fails every member (nothing of theirs was written), and so does
//! a transaction SQLite ended of its own accord (the driver reports it on the next savepoint
//! or release). The writer waits a moment for the next group before it goes back to the
//! pool (at most `IN_A_ROW_MAX` groups in a row), where writes outside `Db::write` take it
//! between groups.
//!
//! Members see the writes of the members before them in their group, which commit with
//! theirs or not at all; readers on other connections see a group's writes once it commits.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sqlx::any::AnyTransactionManager;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction, TransactionManager};
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

/// The most transactions one `COMMIT` takes: enough that a crowd of checkouts shares a few
/// commits, few enough that a write outside the groups waits at most this many for the
/// writer (times `IN_A_ROW_MAX`).
const GROUP_MAX: usize = 32;

/// The most groups begun in a row on a writer kept between them; then it goes back to the
/// pool, where a write outside the groups waiting for it takes it first.
const IN_A_ROW_MAX: usize = 4;

/// How long an ended group's writer waits for the next group when nobody has asked yet,
/// before it goes back to the pool.
const IDLE_GRACE: std::time::Duration = std::time::Duration::from_millis(1);

/// SQLite's writer, shared by the transactions that group on it.
pub struct Group {
    pool: AnyPool,
    slot: Arc<Mutex<Slot>>,
    /// Tasks waiting for the slot: a member that commits while one waits leaves the group
    /// open for it.
    queued: AtomicUsize,
    /// Groups begun, and transactions that ran in them: `/metrics` shows both.
    pub groups: AtomicU64,
    pub members: AtomicU64,
    /// Microseconds the writer was held for the groups (`Held`), their `COMMIT`s included:
    /// every write transaction waits its turn for it, so the checkouts a second can go
    /// through it are at most the checkouts run over this time (`/metrics`).
    pub busy_micros: Arc<AtomicU64>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

/// The open group, if any: the writer's connection in its transaction (out of the pool),
/// and the members that committed into it, waiting for its `COMMIT`. Between two groups
/// back to back, the writer waits here for the next (`idle`) rather than going back to the
/// pool and being asked for again.
#[derive(Default)]
struct Slot {
    conn: Option<PoolConnection<Any>>,
    committed: Vec<oneshot::Sender<Result<(), String>>>,
    idle: Option<PoolConnection<Any>>,
    /// Groups begun in a row on a writer kept between them.
    in_a_row: usize,
}

/// A write transaction (`Db::write`): its statements run on `&mut *writer`; `commit`
/// returns once they are committed. Dropped unfinished, it rolls back.
pub struct Writer {
    inner: Option<Inner>,
}

enum Inner {
    /// PostgreSQL: a transaction of its own.
    Own(Transaction<'static, Any>),
    /// SQLite: a savepoint in the open group.
    Member(Member),
}

struct Member {
    group: Arc<Group>,
    slot: Held,
    conn: PoolConnection<Any>,
}

/// The slot held: the writer is this task's until it is dropped, and the time it was held
/// is added to `Group::busy_micros` then.
struct Held {
    slot: OwnedMutexGuard<Slot>,
    since: Instant,
    busy: Arc<AtomicU64>,
}

impl Held {
    async fn take(group: &Group) -> Held {
        let slot = group.slot.clone().lock_owned().await;
        Held {
            slot,
            since: Instant::now(),
            busy: group.busy_micros.clone(),
        }
    }
}

impl Deref for Held {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        &self.slot
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Slot {
        &mut self.slot
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let micros = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.busy.fetch_add(micros, Ordering::Relaxed);
    }
}

impl Group {
    pub(super) fn new(pool: AnyPool) -> Group {
        Group {
            pool,
            slot: Arc::new(Mutex::new(Slot::default())),
            queued: AtomicUsize::new(0),
            groups: AtomicU64::new(0),
            members: AtomicU64::new(0),
            busy_micros: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Joins the open group, or opens one, and begins the member's savepoint.
    pub(super) async fn join(self: &Arc<Group>) -> Result<Writer, sqlx::Error> {
        let queued = Queued::new(self);
        let mut slot = Held::take(self).await;
        queued.served();
        let mut conn = match slot.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = match slot.idle.take() {
                    Some(conn) => conn,
                    None => {
                        slot.in_a_row = 0;
                        self.pool.acquire().await?
                    }
                };
                AnyTransactionManager::begin(&mut conn, None).await?;
                self.groups.fetch_add(1, Ordering::Relaxed);
                conn
            }
        };
        if let Err(err) = AnyTransactionManager::begin(&mut conn, None).await {
            // The group's transaction has ended under it: its members' writes are gone.
            end(self, slot, conn, Err(err.to_string())).await;
            return Err(err);
        }
        self.members.fetch_add(1, Ordering::Relaxed);
        Ok(Writer {
            inner: Some(Inner::Member(Member {
                group: self.clone(),
                slot,
                conn,
            })),
        })
    }
}

impl Member {
    async fn commit(mut self) -> Result<(), sqlx::Error> {
        if let Err(err) = AnyTransactionManager::commit(&mut self.conn).await {
            let _ = AnyTransactionManager::rollback(&mut self.conn).await;
            self.leave().await;
            return Err(err);
        }
        let (done, committed) = oneshot::channel();
        self.slot.committed.push(done);
        self.leave().await;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(group_failed(why)),
            Err(_) => Err(group_failed("the group ended without committing".into())),
        }
    }

    async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let rolled_back = AnyTransactionManager::rollback(&mut self.conn).await;
        self.leave().await;
        rolled_back
    }

    /// After the member's savepoint ended: leaves the group open for the next member
    /// waiting, or ends it (see `hand_on`). The end runs as a task of its own, so a request
    /// that stops waiting (its client gone) cannot leave the writer half-committed.
    async fn leave(self) {
        let Member { group, slot, conn } = self;
        if let Some((slot, conn)) = hand_on(&group, slot, conn) {
            let _ = tokio::spawn(async move { end(&group, slot, conn, Ok(())).await }).await;
        }
    }
}

/// Leaves the group open for the next member waiting (`None`), or returns it to be ended:
/// nobody waits, it is full, or its transaction is gone.
fn hand_on(
    group: &Group,
    mut slot: Held,
    conn: PoolConnection<Any>,
) -> Option<(Held, PoolConnection<Any>)> {
    let open = AnyTransactionManager::get_transaction_depth(&conn) == 1;
    if open && group.queued.load(Ordering::SeqCst) > 0 && slot.committed.len() < GROUP_MAX {
        slot.conn = Some(conn);
        None
    } else {
        Some((slot, conn))
    }
}

/// Ends the group: commits it (`Ok`) unless its transaction failed or is gone (`Err`),
/// tells every member that committed into it, and keeps the writer for the next group or
/// gives it back to the pool.
async fn end(
    group: &Group,
    mut slot: Held,
    mut conn: PoolConnection<Any>,
    outcome: Result<(), String>,
) {
    let outcome = match outcome {
        Ok(()) => AnyTransactionManager::commit(&mut conn)
            .await
            .map_err(|err| err.to_string()),
        failed => failed,
    };
    if let Err(why) = &outcome {
        tracing::error!(error = %why, members = slot.committed.len(), "a group's commit failed; nothing of it was written");
        // Rolls back what is left of the transaction (or clears the driver's account of one
        // SQLite ended); a writer that cannot is closed rather than pooled mid-transaction.
        if AnyTransactionManager::rollback(&mut conn).await.is_err()
            || AnyTransactionManager::get_transaction_depth(&conn) > 0
        {
            conn.close_on_drop();
        }
    }
    for member in slot.committed.drain(..) {
        let _ = member.send(outcome.clone());
    }
    // The next group begins on this writer: at once when a member already waits for it,
    // within `IDLE_GRACE` otherwise (or the writer goes back to the pool then). Taking it
    // from the pool again would wait for its return there, a task of the pool's.
    let reusable = outcome.is_ok() && AnyTransactionManager::get_transaction_depth(&conn) == 0;
    if reusable && slot.in_a_row < IN_A_ROW_MAX {
        slot.in_a_row += 1;
        slot.idle = Some(conn);
        if group.queued.load(Ordering::SeqCst) == 0 {
            let slot = group.slot.clone();
            tokio::spawn(async move {
                tokio::time::sleep(IDLE_GRACE).await;
                slot.lock().await.idle = None;
            });
        }
    }
}

/// A member's commit after its group's failed: answered 503, as a database that refused the
/// writes (none of them was written).
fn group_failed(why: String) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the group commit failed, nothing was written: {why}"
    )))
}

/// Ends an open group nobody is left to end (the last task waiting for it gave up).
async fn flush(group: Arc<Group>) {
    let mut slot = Held::take(&group).await;
    if let Some(conn) = slot.conn.take() {
        end(&group, slot, conn, Ok(())).await;
    } else {
        // A writer kept for the next group nobody came for goes back to the pool.
        slot.idle = None;
    }
}

/// Runs a group's end from a `drop`: as a task, on the runtime the drop happens in. A drop
/// outside any (the process ending) leaves SQLite to roll the open transaction back when
/// its connection closes.
fn spawn_from_drop(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// A task counted in `Group::queued` until it holds the slot; one that gives up waiting
/// (its request dropped) and was the last ends the open group, which its members left open
/// for it.
struct Queued<'a> {
    group: &'a Arc<Group>,
    waiting: bool,
}

impl<'a> Queued<'a> {
    fn new(group: &'a Arc<Group>) -> Queued<'a> {
        group.queued.fetch_add(1, Ordering::SeqCst);
        Queued {
            group,
            waiting: true,
        }
    }

    fn served(mut self) {
        self.group.queued.fetch_sub(1, Ordering::SeqCst);
        self.waiting = false;
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.waiting && self.group.queued.fetch_sub(1, Ordering::SeqCst) == 1 {
            spawn_from_drop(flush(self.group.clone()));
        }
    }
}

impl Writer {
    /// A transaction of its own (PostgreSQL).
    pub(super) fn own(tx: Transaction<'static, Any>) -> Writer {
        Writer {
            inner: Some(Inner::Own(tx)),
        }
    }

    /// Commits; returns once the writes are committed (on SQLite, with their group).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        match self.inner.take() {
            Some(Inner::Own(tx)) => tx.commit().await,
            Some(Inner::Member(member)) => member.commit().await,
            None => Ok(()),
        }
    }

    /// Rolls back what this transaction wrote (on SQLite, its savepoint; the group goes on).
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        match self.inner.take() {
            Some(Inner::Own(tx)) => tx.rollback().await,
            Some(Inner::Member(member)) => member.rollback().await,
            None => Ok(()),
        }
    }

    fn conn(&self) -> &AnyConnection {
        match &self.inner {
            Some(Inner::Own(tx)) => tx,
            Some(Inner::Member(member)) => &member.conn,
            None => unreachable!("a writer is used only until it commits or rolls back"),
        }
    }
}

impl Deref for Writer {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn()
    }
}

impl DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Some(Inner::Own(tx)) => tx,
            Some(Inner::Member(member)) => &mut member.conn,
            None => unreachable!("a writer is used only until it commits or rolls back"),
        }
    }
}

impl Drop for Writer {
    /// Dropped unfinished: the transaction rolls back (the driver does a savepoint's at
    /// once), and a group nobody waits for is ended by a task of its own.
    fn drop(&mut self) {
        if let Some(Inner::Member(member)) = self.inner.take() {
            let Member {
                group,
                slot,
                mut conn,
            } = member;
            AnyTransactionManager::start_rollback(&mut conn);
            if let Some((slot, conn)) = hand_on(&group, slot, conn) {
                spawn_from_drop(async move { end(&group, slot, conn, Ok(())).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::db::Db;

    async fn fresh() -> Db {
        let path = std::env::temp_dir().join(format!(
            "till-write-{}-{}.db",
            std::process::id(),
            crate::ids::random_token(8)
        ));
        let db = Db::connect(&format!("sqlite://{}", path.display()), 4)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&db.pool)
            .await
            .unwrap();
        db
    }

    async fn insert(writer: &mut Writer, id: i64) {
        sqlx::query("INSERT INTO t (id) VALUES ($1)")
            .bind(id)
            .execute(&mut **writer)
            .await
            .unwrap();
    }

    /// The ids committed, as a reader on another connection sees them.
    async fn committed(db: &Db) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(&db.reads)
            .await
            .unwrap()
    }

    /// Waits until `n` tasks wait for the writer's group.
    async fn queued(db: &Db, n: usize) {
        let group = db.group.as_ref().unwrap();
        while group.queued.load(Ordering::SeqCst) != n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The writer kept between groups goes back to the pool: a write outside the groups
    /// gets it while groups keep arriving, and once they stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_outside_the_groups_is_not_kept_waiting() {
        let db = fresh().await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // More than a group takes: each group ends full with writers still waiting.
        let writers: Vec<_> = (0..GROUP_MAX as i64 + 8)
            .map(|n| {
                let (db, stop) = (db.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut id = n * 1_000_000;
                    while !stop.load(Ordering::SeqCst) {
                        let mut writer = db.write().await.unwrap();
                        insert(&mut writer, id).await;
                        // Held long enough that the others always wait for the group.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        writer.commit().await.unwrap();
                        id += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for outside in 0..5 {
            let mut conn = tokio::time::timeout(Duration::from_secs(5), db.pool.acquire())
                .await
                .expect("a write outside the groups waited 5 s for the writer")
                .unwrap();
            sqlx::query("INSERT INTO t (id) VALUES ($1)")
                .bind(-1 - outside)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.unwrap();
        }
        let groups = db.write_groups().unwrap().0;
        assert!(groups > 1, "the groups did not go on");
        // Nobody asks for the next group: the writer is back in the pool soon after.
        tokio::time::timeout(Duration::from_secs(5), db.pool.acquire())
            .await
            .expect("the writer kept for a next group never went back to the pool")
            .unwrap();
        let outside: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE id < 0")
            .fetch_one(&db.reads)
            .await
            .unwrap();
        assert_eq!(outside, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_that_arrive_together_share_commits() {
        let db = fresh().await;
        let tasks: Vec<_> = (0..64)
            .map(|id| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut writer = db.write().await.unwrap();
                    insert(&mut writer, id).await;
                    writer.commit().await.unwrap();
                    // Committed when the commit returns: a reader sees it.
                    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE id = $1")
                        .bind(id)
                        .fetch_one(&db.reads)
                        .await
                        .unwrap();
                    assert_eq!(seen, 1, "{id} not committed when its commit returned");
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(committed(&db).await, (0..64).collect::<Vec<_>>());
        let (groups, members) = db.write_groups().unwrap();
        assert_eq!(members, 64);
        assert!(
            groups < 64,
            "{groups} groups for 64 writers: none shared a commit"
        );
    }

    #[tokio::test]
    async fn a_member_waits_for_its_group_and_rolls_back_alone() {
        let db = fresh().await;
        let mut first = db.write().await.unwrap();
        insert(&mut first, 1).await;
        let spawn_writer = |id: i64, keep: bool, hold: u64| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut writer = db.write().await.unwrap();
                insert(&mut writer, id).await;
                tokio::time::sleep(Duration::from_millis(hold)).await;
                if keep {
                    writer.commit().await.unwrap();
                } else {
                    drop(writer);
                }
            })
        };
        let second = spawn_writer(2, false, 0);
        queued(&db, 1).await;
        let third = spawn_writer(3, true, 300);
        queued(&db, 2).await;
        // The first commits into the group and waits: the second and third are queued.
        let first = tokio::spawn(async move { first.commit().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !first.is_finished(),
            "a member's commit returned before its group's"
        );
        assert_eq!(committed(&db).await, Vec::<i64>::new());
        first.await.unwrap().unwrap();
        second.await.unwrap();
        third.await.unwrap();
        assert_eq!(committed(&db).await, vec![1, 3]);
        assert_eq!(db.write_groups(), Some((1, 3)));
        // The writer is back in the pool: a write outside the groups goes through.
        sqlx::query("INSERT INTO t (id) VALUES (4)")
            .execute(&db.pool)
            .await
            .unwrap();
    }

    /// The time the writer is held is counted from a member's turn to its group's end,
    /// whether it commits or rolls back, and not while nobody holds it.
    #[tokio::test]
    async fn the_writer_held_is_timed() {
        let db = fresh().await;
        assert_eq!(db.writer_busy_micros(), Some(0));
        let mut writer = db.write().await.unwrap();
        insert(&mut writer, 1).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        writer.commit().await.unwrap();
        let once = db.writer_busy_micros().unwrap();
        assert!(
            (60_000..1_000_000).contains(&once),
            "held 60 ms, counted {once} µs"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(db.writer_busy_micros(), Some(once), "counted while idle");
        let writer = db.write().await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        drop(writer);
        // A dropped member's group is ended by a task of its own.
        for _ in 0..100 {
            if db.writer_busy_micros().unwrap() >= once + 40_000 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("a rolled-back member's hold was not counted");
    }

    #[tokio::test]
    async fn a_group_whose_transaction_ended_fails_every_member() {
        let db = fresh().await;
        let mut first = db.write().await.unwrap();
        insert(&mut first, 1).await;
        let db2 = db.clone();
        let second = tokio::spawn(async move {
            let mut writer = db2.write().await.unwrap();
            insert(&mut writer, 2).await;
            // As SQLite does of its own accord on a full disk or an I/O error.
            sqlx::query("ROLLBACK").execute(&mut *writer).await.unwrap();
            writer.commit().await
        });
        queued(&db, 1).await;
        let first = first.commit().await;
        assert!(
            first.is_err(),
            "a member told its writes committed that are gone"
        );
        assert!(second.await.unwrap().is_err());
        assert_eq!(committed(&db).await, Vec::<i64>::new());
        // The next group starts afresh.
        let mut next = db.write().await.unwrap();
        insert(&mut next, 3).await;
        next.commit().await.unwrap();
        assert_eq!(committed(&db).await, vec![3]);
    }
}
