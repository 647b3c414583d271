//! One SQLite connection, driven through SQLite's C API on the thread that calls it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;
use sqlx_core::any::{
    AnyColumn, AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};
use sqlx_core::ext::ustr::UStr;
use sqlx_core::{Either, Error};

use crate::checkpoint::{self, Checkpointer};
use crate::error::SqliteError;

/// Query texts kept prepared per connection, the least recently used dropped first: more
/// than the distinct statements Till runs, so none is prepared twice in steady use.
const CACHE_CAPACITY: usize = 512;

/// How long a statement waits for another process's write lock (another `till` command on
/// the same file) before it fails with SQLite's `SQLITE_BUSY`, as `busy_timeout` would.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The first and the longest pause between two tries of a statement another process holds
/// the lock for.
const BUSY_PAUSE_FIRST: Duration = Duration::from_millis(1);
const BUSY_PAUSE_MAX: Duration = Duration::from_millis(20);

/// What a query answers: each statement's rows, then its result.
pub(crate) type Answers = Vec<Either<AnyQueryResult, AnyRow>>;

struct Handle(NonNull<ffi::sqlite3>);

// SAFETY: SQLite is built thread-safe (sqlx's bundled build), so a connection may move
// between threads. It is used by one caller at a time: every call that reaches SQLite comes
// from a method of its one owner (`run` takes `&mut self`), so no two threads use it at once.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

/// A statement's result columns: each name's position, and the names in order.
type Names = (Arc<sqlx_core::HashMap<UStr, usize>>, Vec<UStr>);

/// A prepared statement, with its column names once it has returned a row.
struct Prepared {
    stmt: NonNull<ffi::sqlite3_stmt>,
    names: Option<Names>,
    /// Which value each of its parameters takes, read from their names once, when prepared
    /// (SQLite finds a parameter's name by walking the list of them, so naming each one at
    /// every run cost a multi-row statement time in the square of its parameters).
    params: Params,
}

/// A statement's parameters, in order: `Some(n)` takes the query's `n`th value (`$n`),
/// `None` the next of the unnumbered (`?`); or the first name the driver cannot bind.
type Params = Result<Vec<Option<usize>>, String>;

/// The parameters of `stmt`, from their names.
fn params_of(stmt: NonNull<ffi::sqlite3_stmt>) -> Params {
    // SAFETY: a statement just prepared; a name SQLite returns lives as long as it.
    unsafe {
        let count = ffi::sqlite3_bind_parameter_count(stmt.as_ptr());
        (1..=count)
            .map(|i| {
                let name = ffi::sqlite3_bind_parameter_name(stmt.as_ptr(), i);
                if name.is_null() {
                    return Ok(None);
                }
                let name = CStr::from_ptr(name).to_string_lossy();
                name.get(1..)
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| name.into_owned())
            })
            .collect()
    }
}

// SAFETY: as for `Handle`: owned by one connection, used by one caller at a time.
unsafe impl Send for Prepared {}
unsafe impl Sync for Prepared {}

impl Prepared {
    fn ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.stmt.as_ptr()
    }

    /// Ready for the next run: stepped back and its values unbound.
    fn reset(&self) {
        // SAFETY: a statement this connection prepared and has not finalized.
        unsafe {
            ffi::sqlite3_reset(self.ptr());
            ffi::sqlite3_clear_bindings(self.ptr());
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: finalized once, here, before its connection closes: a statement is kept in
        // its connection's cache or by a call that holds the connection.
        unsafe {
            ffi::sqlite3_finalize(self.ptr());
        }
    }
}

/// How a connection opens its file.
#[derive(Clone, Debug)]
pub struct Target {
    /// The file, or `:memory:`.
    pub(crate) path: String,
    pub(crate) flags: c_int,
}

impl Target {
    /// `sqlite://PATH[?mode=ro|rw|rwc]`, `sqlite:PATH`, `sqlite::memory:`. Without `mode`
    /// the file must exist (as with sqlx's own driver); other parameters are refused.
    pub fn parse(url: &str) -> Result<Target, Error> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| Error::Configuration(format!("not a sqlite URL: {url}").into()))?;
        let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
        let path = sqlx_core::percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|e| Error::Configuration(e.into()))?
            .into_owned();
        let mut flags = ffi::SQLITE_OPEN_READWRITE;
        for param in params.split('&').filter(|p| !p.is_empty()) {
            flags = match param.split_once('=') {
                Some(("mode", "ro")) => ffi::SQLITE_OPEN_READONLY,
                Some(("mode", "rw")) => ffi::SQLITE_OPEN_READWRITE,
                Some(("mode", "rwc")) => ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                Some(("mode", "memory")) => {
                    ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_MEMORY
                }
                _ => {
                    return Err(Error::Configuration(
                        format!("unsupported SQLite URL parameter `{param}`").into(),
                    ))
                }
            };
        }
        if path.is_empty() || path == ":memory:" {
            return Ok(Target {
                path: ":memory:".into(),
                flags: ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
            });
        }
        Ok(Target { path, flags })
    }
}

/// An open connection: its handle, its prepared statements and its transaction depth.
pub struct Connection {
    /// Each kept query text's statements, with when the text last ran (`runs`).
    cache: HashMap<String, (u64, Vec<Prepared>)>,
    runs: u64,
    depth: usize,
    /// Levels of a transaction SQLite ended under this connection, not yet told (`ended`).
    lost: usize,
    handle: Handle,
    /// The file's background checkpoints (`checkpoint.rs`), for a file opened for writing.
    _checkpoints: Option<Arc<Checkpointer>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("depth", &self.depth)
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.cache.clear();
        // SAFETY: the handle is closed once, here, after its cached statements.
        unsafe {
            ffi::sqlite3_close(self.db());
        }
    }
}

impl Connection {
    pub(crate) fn open(target: &Target) -> Result<Connection, Error> {
        let path = CString::new(target.path.as_str())
            .map_err(|_| Error::Configuration("a NUL byte in the SQLite path".into()))?;
        let mut db = ptr::null_mut();
        // SAFETY: a NUL-terminated path and an out pointer SQLite fills.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                target.flags | ffi::SQLITE_OPEN_NOMUTEX,
                crate::vfs::for_open(),
            )
        };
        let Some(db) = NonNull::new(db) else {
            return Err(Error::Io(std::io::Error::other(
                "SQLite could not allocate a connection",
            )));
        };
        let mut connection = Connection {
            cache: HashMap::new(),
            runs: 0,
            depth: 0,
            lost: 0,
            handle: Handle(db),
            _checkpoints: None,
        };
        if rc != ffi::SQLITE_OK {
            return Err(connection.error(rc));
        }
        let in_memory = target.path == ":memory:" || target.flags & ffi::SQLITE_OPEN_MEMORY != 0;
        if !in_memory && target.flags & ffi::SQLITE_OPEN_READWRITE != 0 {
            connection._checkpoints = checkpoint::for_file(&target.path);
        }
        // SAFETY: an open handle.
        unsafe {
            ffi::sqlite3_extended_result_codes(connection.db(), 1);
        }
        Ok(connection)
    }

    fn db(&self) -> *mut ffi::sqlite3 {
        self.handle.0.as_ptr()
    }

    /// The connection's last error, as sqlx reports a database's.
    fn error(&self, rc: c_int) -> Error {
        // SAFETY: an open handle; the message is copied before anything else runs on it.
        let (code, message) = unsafe {
            let code = ffi::sqlite3_extended_errcode(self.db());
            let message = ffi::sqlite3_errmsg(self.db());
            let message = if message.is_null() {
                CStr::from_ptr(ffi::sqlite3_errstr(rc))
            } else {
                CStr::from_ptr(message)
            };
            (code, message.to_string_lossy().into_owned())
        };
        Error::Database(Box::new(SqliteError { code, message }))
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn clear_cache(&mut self) {
        self.cache.clear();
    }

    /// Runs `sql` — one statement or several, each bound to the values its `$N` names (a
    /// bare `?` takes the next) — and returns each statement's rows, then its result. With
    /// `limit`, stops after that many rows. `persistent` keeps the statements prepared for
    /// the next run of the same text.
    ///
    /// Another process holding the write lock is waited for (`BUSY_WAIT`) by pausing this
    /// task and trying again, where that is safe: outside a transaction, and for `COMMIT`.
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        args: &[AnyValueKind<'_>],
        persistent: bool,
        limit: Option<usize>,
    ) -> Result<Answers, Error> {
        if !tracing::enabled!(target: "till_sqlite::query", tracing::Level::DEBUG) {
            return self.run_quietly(sql, args, persistent, limit).await;
        }
        let started = Instant::now();
        let answers = self.run_quietly(sql, args, persistent, limit).await;
        let (returned, changed) = answers.as_ref().map_or((0, 0), |answers| {
            answers
                .iter()
                .fold((0, 0), |(rows, changed), answer| match answer {
                    Either::Left(done) => (rows, changed + done.rows_affected),
                    Either::Right(_) => (rows + 1, changed),
                })
        });
        tracing::debug!(
            target: "till_sqlite::query",
            sql,
            returned,
            changed,
            micros = started.elapsed().as_micros() as u64,
            failed = answers.is_err(),
        );
        answers
    }

    async fn run_quietly(
        &mut self,
        sql: &str,
        args: &[AnyValueKind<'_>],
        persistent: bool,
        limit: Option<usize>,
    ) -> Result<Answers, Error> {
        let cached = if persistent {
            self.take_kept(sql)
        } else {
            None
        };
        let from_cache = cached.is_some();
        let mut statements = cached.unwrap_or_default();
        let mut rest = sql.as_bytes();
        let mut answers = Vec::new();
        let mut unnamed = 0;
        let mut index = 0;
        loop {
            if !from_cache {
                match self.prepare_next(&mut rest, persistent)? {
                    Some(prepared) => statements.push(prepared),
                    None => break,
                }
            }
            let Some(prepared) = statements.get_mut(index) else {
                break;
            };
            index += 1;
            let ran = match bind(prepared, args, &mut unnamed) {
                Ok(()) => self.step(prepared, &mut answers, limit).await,
                Err(err) => Err(err),
            };
            prepared.reset();
            ran?;
            if limit.is_some_and(|limit| rows(&answers) >= limit) {
                break;
            }
        }
        if persistent && (from_cache || rest.is_empty()) {
            self.keep(sql, statements);
        }
        Ok(answers)
    }

    /// Runs one statement that answers nothing, now, without waiting on another process:
    /// the rollback of a transaction dropped unfinished, which cannot wait.
    pub(crate) fn run_now(&mut self, sql: &str) -> Result<(), Error> {
        let mut rest = sql.as_bytes();
        while let Some(prepared) = self.prepare_next(&mut rest, false)? {
            // SAFETY: a statement just prepared on this connection.
            let rc = unsafe { ffi::sqlite3_step(prepared.ptr()) };
            if rc != ffi::SQLITE_DONE && rc != ffi::SQLITE_ROW {
                return Err(self.error(rc));
            }
        }
        Ok(())
    }

    /// The statements kept for `sql`, taken out for a run (`keep` puts them back); `None`
    /// when none are, or a run that failed left none.
    fn take_kept(&mut self, sql: &str) -> Option<Vec<Prepared>> {
        let statements = std::mem::take(&mut self.cache.get_mut(sql)?.1);
        (!statements.is_empty()).then_some(statements)
    }

    /// Keeps `statements` for `sql`, dropping the least recently run text when full.
    fn keep(&mut self, sql: &str, statements: Vec<Prepared>) {
        self.runs += 1;
        if let Some(kept) = self.cache.get_mut(sql) {
            *kept = (self.runs, statements);
            return;
        }
        if self.cache.len() >= CACHE_CAPACITY {
            let oldest = self
                .cache
                .iter()
                .min_by_key(|(_, (ran, _))| *ran)
                .map(|(text, _)| text.clone());
            if let Some(oldest) = oldest {
                self.cache.remove(&oldest);
            }
        }
        self.cache.insert(sql.to_string(), (self.runs, statements));
    }

    /// Prepares the next statement of `rest` and moves `rest` past it; `None` when only
    /// blanks or comments are left.
    fn prepare_next(&self, rest: &mut &[u8], persistent: bool) -> Result<Option<Prepared>, Error> {
        let flags = if persistent {
            ffi::SQLITE_PREPARE_PERSISTENT
        } else {
            0
        };
        while !rest.is_empty() {
            let mut stmt = ptr::null_mut();
            let mut tail: *const c_char = ptr::null();
            let len = c_int::try_from(rest.len())
                .map_err(|_| Error::Protocol("an SQL text over 2 GiB".into()))?;
            // SAFETY: `rest` is valid for `len` bytes; SQLite points `tail` into it.
            let rc = unsafe {
                ffi::sqlite3_prepare_v3(
                    self.db(),
                    rest.as_ptr().cast(),
                    len,
                    flags,
                    &mut stmt,
                    &mut tail,
                )
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.error(rc));
            }
            let used = if tail.is_null() {
                rest.len()
            } else {
                tail as usize - rest.as_ptr() as usize
            };
            *rest = &rest[used..];
            if let Some(stmt) = NonNull::new(stmt) {
                return Ok(Some(Prepared {
                    stmt,
                    names: None,
                    params: params_of(stmt),
                }));
            }
            if used == 0 {
                break;
            }
        }
        Ok(None)
    }

    /// Steps `prepared` to its end (or `limit` rows in all), adding its rows and its result
    /// to `answers`.
    async fn step(
        &self,
        prepared: &mut Prepared,
        answers: &mut Answers,
        limit: Option<usize>,
    ) -> Result<(), Error> {
        let mut waiting: Option<(Instant, Duration)> = None;
        let mut returned = 0;
        loop {
            // SAFETY: a bound statement of this connection.
            let rc = unsafe { ffi::sqlite3_step(prepared.ptr()) };
            match rc {
                ffi::SQLITE_ROW => {
                    answers.push(Either::Right(row(prepared)?));
                    returned += 1;
                    if limit.is_some_and(|limit| rows(answers) >= limit) {
                        return Ok(());
                    }
                }
                ffi::SQLITE_DONE => {
                    // SAFETY: as above; a read-only statement leaves the count of the last
                    // write, which is not its own.
                    let rows_affected = unsafe {
                        if ffi::sqlite3_stmt_readonly(prepared.ptr()) != 0 {
                            0
                        } else {
                            ffi::sqlite3_changes64(self.db()) as u64
                        }
                    };
                    answers.push(Either::Left(AnyQueryResult {
                        rows_affected,
                        last_insert_id: None,
                    }));
                    return Ok(());
                }
                _ if rc & 0xff == ffi::SQLITE_BUSY && returned == 0 && self.may_retry(prepared) => {
                    let (deadline, pause) = waiting
                        .get_or_insert_with(|| (Instant::now() + BUSY_WAIT, BUSY_PAUSE_FIRST));
                    if Instant::now() >= *deadline {
                        return Err(self.error(rc));
                    }
                    // SAFETY: as above; stepped again after the pause.
                    unsafe {
                        ffi::sqlite3_reset(prepared.ptr());
                    }
                    tokio::time::sleep(*pause).await;
                    *pause = (*pause * 2).min(BUSY_PAUSE_MAX);
                }
                _ => return Err(self.error(rc)),
            }
        }
    }

    /// Whether a statement refused for another process's lock may simply run again: nothing
    /// of a transaction is lost outside one, and a `COMMIT` refused leaves its open.
    fn may_retry(&self, prepared: &Prepared) -> bool {
        // SAFETY: an open handle and one of its statements.
        unsafe {
            if ffi::sqlite3_get_autocommit(self.db()) != 0 {
                return true;
            }
            let sql = ffi::sqlite3_sql(prepared.ptr());
            !sql.is_null()
                && CStr::from_ptr(sql)
                    .to_bytes()
                    .get(..6)
                    .is_some_and(|head| head.eq_ignore_ascii_case(b"COMMIT"))
        }
    }

    /// Starts a transaction, or a savepoint inside one. The outermost is `BEGIN IMMEDIATE`
    /// (it takes the write lock at once, so a later write never finds another process
    /// holding it mid-transaction); a query-only connection, which SQLite refuses that
    /// (`SQLITE_READONLY`), begins a plain `BEGIN` instead.
    pub(crate) async fn begin(
        &mut self,
        statement: Option<Cow<'static, str>>,
    ) -> Result<(), Error> {
        if self.ended() {
            return Err(ended());
        }
        match (statement, self.depth) {
            (Some(statement), 0) => self.run(&statement, &[], true, None).await.map(drop)?,
            (Some(_), _) => return Err(Error::InvalidSavePointStatement),
            (None, 0) => match self.run("BEGIN IMMEDIATE", &[], true, None).await {
                Err(err) if read_only(&err) => {
                    self.run("BEGIN", &[], true, None).await.map(drop)?
                }
                begun => begun.map(drop)?,
            },
            (None, depth) => {
                let savepoint = format!("SAVEPOINT till_{depth}");
                self.run(&savepoint, &[], true, None).await.map(drop)?
            }
        }
        self.depth += 1;
        Ok(())
    }

    pub(crate) async fn commit(&mut self) -> Result<(), Error> {
        // Not counted as told: the failed commit is followed by a rollback or a drop.
        if self.ended() {
            return Err(ended());
        }
        let sql: Cow<'static, str> = match self.depth {
            0 => return Ok(()),
            1 => "COMMIT".into(),
            depth => format!("RELEASE SAVEPOINT till_{}", depth - 1).into(),
        };
        self.run(&sql, &[], true, None).await?;
        self.depth -= 1;
        Ok(())
    }

    pub(crate) async fn rollback(&mut self) -> Result<(), Error> {
        if self.ended() {
            self.lost -= 1;
            return Ok(());
        }
        let sql = self.rollback_sql();
        if let Some(sql) = sql {
            self.run(&sql, &[], true, None).await?;
            self.depth -= 1;
        }
        Ok(())
    }

    /// The rollback of a transaction dropped unfinished, done at once.
    pub(crate) fn start_rollback(&mut self) {
        if self.ended() {
            self.lost -= 1;
            return;
        }
        if let Some(sql) = self.rollback_sql() {
            // A failed rollback leaves SQLite to roll back when the connection closes; the
            // depth is forgotten either way, as the transaction is.
            let _ = self.run_now(&sql);
            self.depth -= 1;
        }
    }

    /// Whether the transaction this connection began has ended under it: SQLite ends one of
    /// its own accord on some errors (a full disk, an I/O error, `SQLITE_NOMEM`), and a
    /// `ROLLBACK` run as a statement ends it too. Its changes are gone, so each of its levels
    /// still open (`lost`) is told so: a commit fails, a rollback has nothing to do, and
    /// a savepoint (which would begin a transaction of its own) is refused.
    /// Each level ends in a rollback or a drop (`start_rollback`), which counts it told.
    fn ended(&mut self) -> bool {
        // SAFETY: an open handle.
        if self.depth > 0 && unsafe { ffi::sqlite3_get_autocommit(self.db()) != 0 } {
            self.lost = self.depth;
            self.depth = 0;
        }
        self.lost > 0
    }

    fn rollback_sql(&self) -> Option<String> {
        match self.depth {
            0 => None,
            1 => Some("ROLLBACK".into()),
            depth => Some(format!(
                "ROLLBACK TO SAVEPOINT till_{d}; RELEASE SAVEPOINT till_{d}",
                d = depth - 1
            )),
        }
    }

    /// The first statement of `sql`'s parameters and columns, as declared.
    pub(crate) fn shape(&self, sql: &str) -> Result<(usize, Vec<AnyColumn>), Error> {
        let mut rest = sql.as_bytes();
        let Some(prepared) = self.prepare_next(&mut rest, false)? else {
            return Ok((0, Vec::new()));
        };
        // SAFETY: a statement just prepared on this connection.
        unsafe {
            let parameters = ffi::sqlite3_bind_parameter_count(prepared.ptr()) as usize;
            let count = ffi::sqlite3_column_count(prepared.ptr());
            let columns = (0..count)
                .map(|i| AnyColumn {
                    ordinal: i as usize,
                    name: UStr::new(&column_name(&prepared, i)),
                    type_info: AnyTypeInfo {
                        kind: declared_kind(ffi::sqlite3_column_decltype(prepared.ptr(), i)),
                    },
                })
                .collect();
            Ok((parameters, columns))
        }
    }
}

/// Whether SQLite refused a write because the connection may not write (query-only, or
/// opened read-only).
fn read_only(err: &Error) -> bool {
    matches!(err, Error::Database(db) if db.code().is_some_and(|code| {
        code.parse::<c_int>().is_ok_and(|code| code & 0xff == ffi::SQLITE_READONLY)
    }))
}

/// How many rows `answers` holds.
fn rows(answers: &Answers) -> usize {
    answers.iter().filter(|a| a.is_right()).count()
}

/// Binds each parameter of `prepared` to the value it names.
fn bind(prepared: &Prepared, args: &[AnyValueKind<'_>], unnamed: &mut usize) -> Result<(), Error> {
    let stmt = prepared.ptr();
    // SAFETY: a statement of this connection; text and blobs are copied by SQLite
    // (`SQLITE_TRANSIENT`) before the call returns.
    unsafe {
        let params = prepared.params.as_ref().map_err(|name| {
            Error::Protocol(format!("unsupported SQL parameter `{name}`: use $N"))
        })?;
        for (i, param) in (1..).zip(params) {
            let position = match param {
                Some(n) => *n,
                None => {
                    *unnamed += 1;
                    *unnamed
                }
            };
            let value = args.get(position - 1).ok_or_else(|| {
                Error::Protocol(format!(
                    "the query names ${position} but has {} values",
                    args.len()
                ))
            })?;
            let rc = match value {
                AnyValueKind::Null(_) => ffi::sqlite3_bind_null(stmt, i),
                AnyValueKind::Bool(b) => ffi::sqlite3_bind_int(stmt, i, c_int::from(*b)),
                AnyValueKind::SmallInt(n) => ffi::sqlite3_bind_int(stmt, i, c_int::from(*n)),
                AnyValueKind::Integer(n) => ffi::sqlite3_bind_int(stmt, i, *n),
                AnyValueKind::BigInt(n) => ffi::sqlite3_bind_int64(stmt, i, *n),
                AnyValueKind::Real(x) => ffi::sqlite3_bind_double(stmt, i, f64::from(*x)),
                AnyValueKind::Double(x) => ffi::sqlite3_bind_double(stmt, i, *x),
                AnyValueKind::Text(text) => ffi::sqlite3_bind_text64(
                    stmt,
                    i,
                    text.as_ptr().cast(),
                    text.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                AnyValueKind::Blob(bytes) => ffi::sqlite3_bind_blob64(
                    stmt,
                    i,
                    bytes.as_ptr().cast(),
                    bytes.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                ),
                other => {
                    return Err(Error::Protocol(format!(
                        "a value SQLite cannot store: {other:?}"
                    )))
                }
            };
            if rc != ffi::SQLITE_OK {
                let db = ffi::sqlite3_db_handle(stmt);
                return Err(Error::Database(Box::new(SqliteError {
                    code: ffi::sqlite3_extended_errcode(db),
                    message: CStr::from_ptr(ffi::sqlite3_errmsg(db))
                        .to_string_lossy()
                        .into_owned(),
                })));
            }
        }
    }
    Ok(())
}

/// The row `prepared` stands on, each value as SQLite stores it.
fn row(prepared: &mut Prepared) -> Result<AnyRow, Error> {
    let stmt = prepared.ptr();
    // SAFETY: a statement that has just returned a row; each value is copied out before the
    // next call on it.
    unsafe {
        let count = ffi::sqlite3_column_count(stmt);
        if prepared
            .names
            .as_ref()
            .is_none_or(|(_, names)| names.len() != count as usize)
        {
            let names: Vec<UStr> = (0..count)
                .map(|i| UStr::new(&column_name(prepared, i)))
                .collect();
            let index = names
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect();
            prepared.names = Some((Arc::new(index), names));
        }
        let Some((index, names)) = prepared.names.as_ref() else {
            return Err(Error::Protocol("a row without its column names".into()));
        };
        let mut columns = Vec::with_capacity(count as usize);
        let mut values = Vec::with_capacity(count as usize);
        for i in 0..count {
            let kind = match ffi::sqlite3_column_type(stmt, i) {
                ffi::SQLITE_INTEGER => AnyValueKind::BigInt(ffi::sqlite3_column_int64(stmt, i)),
                ffi::SQLITE_FLOAT => AnyValueKind::Double(ffi::sqlite3_column_double(stmt, i)),
                ffi::SQLITE_TEXT => {
                    let text = ffi::sqlite3_column_text(stmt, i);
                    let len = ffi::sqlite3_column_bytes(stmt, i) as usize;
                    let bytes = if text.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(text, len)
                    };
                    let text =
                        String::from_utf8(bytes.to_vec()).map_err(|e| Error::ColumnDecode {
                            index: names[i as usize].to_string(),
                            source: e.into(),
                        })?;
                    AnyValueKind::Text(Cow::Owned(text))
                }
                ffi::SQLITE_BLOB => {
                    let blob = ffi::sqlite3_column_blob(stmt, i);
                    let len = ffi::sqlite3_column_bytes(stmt, i) as usize;
                    let bytes = if blob.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(blob.cast::<u8>(), len).to_vec()
                    };
                    AnyValueKind::Blob(Cow::Owned(bytes))
                }
                _ => AnyValueKind::Null(AnyTypeInfoKind::Null),
            };
            columns.push(AnyColumn {
                ordinal: i as usize,
                name: names[i as usize].clone(),
                type_info: AnyTypeInfo {
                    kind: kind_of(&kind),
                },
            });
            values.push(AnyValue { kind });
        }
        Ok(AnyRow {
            column_names: Arc::clone(index),
            columns,
            values,
        })
    }
}

/// A result column's name.
///
/// # Safety
/// `prepared` is a live statement and `i` one of its columns.
unsafe fn column_name(prepared: &Prepared, i: c_int) -> String {
    let name = ffi::sqlite3_column_name(prepared.ptr(), i);
    if name.is_null() {
        String::new()
    } else {
        CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

/// The type a value reads as.
fn kind_of(kind: &AnyValueKind<'_>) -> AnyTypeInfoKind {
    match kind {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

/// The type a column's declared type gives it, by SQLite's affinity rules.
///
/// # Safety
/// `declared` is null or a NUL-terminated string.
unsafe fn declared_kind(declared: *const c_char) -> AnyTypeInfoKind {
    if declared.is_null() {
        return AnyTypeInfoKind::Null;
    }
    let declared = CStr::from_ptr(declared)
        .to_string_lossy()
        .to_ascii_uppercase();
    if declared.contains("INT") {
        AnyTypeInfoKind::BigInt
    } else if ["CHAR", "CLOB", "TEXT"]
        .iter()
        .any(|t| declared.contains(t))
    {
        AnyTypeInfoKind::Text
    } else if declared.contains("BLOB") {
        AnyTypeInfoKind::Blob
    } else if ["REAL", "FLOA", "DOUB"]
        .iter()
        .any(|t| declared.contains(t))
    {
        AnyTypeInfoKind::Double
    } else {
        AnyTypeInfoKind::Null
    }
}

/// A commit, or a savepoint, asked of a transaction SQLite has already ended.
fn ended() -> Error {
    Error::Protocol("SQLite ended the transaction (rolled back): its changes are gone".into())
}
