//! SQLite for sqlx's `Any` pools, run on the thread that asks.
//!
//! sqlx's own SQLite driver gives each connection a thread and hands it every statement,
//! `BEGIN` and `COMMIT` over a channel, then wakes the asking task with the answer: two
//! thread wake-ups per statement, tens of microseconds each on a virtual machine, while the
//! statement itself takes a few. Till's one SQLite writer serializes every write
//! transaction, so those wake-ups, not SQLite, set how many checkouts a second it takes.
//!
//! This driver runs each statement through SQLite's C API where it is called, inside the
//! task, and answers at once: a transaction holds the writer only as long as its
//! statements take. It serves `sqlite:` URLs for `AnyPool`s once `install_drivers` has put
//! it in place of sqlx's (PostgreSQL keeps sqlx's). What it does differently:
//! - an outermost transaction is `BEGIN IMMEDIATE` (the write lock at once), `BEGIN` on a
//!   query-only connection;
//! - another process holding the write lock is waited for, up to five seconds, by pausing
//!   the task (not the thread) and trying again, outside a transaction or at `COMMIT`;
//! - a transaction dropped unfinished is rolled back at once;
//! - each query is logged at `debug` under the target `till_sqlite::query` (its text, rows
//!   returned and changed, and time), whatever sqlx's statement-logging settings say.
//!
//! A statement blocks its thread while it runs, as any synchronous work does: Till's are
//! single-row reads and writes of microseconds.

mod checkpoint;
mod connection;
mod error;
mod types;
mod vfs;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Once;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx_core::any::driver::AnyDriver;
use sqlx_core::any::{
    Any, AnyArguments, AnyConnectOptions, AnyConnectionBackend, AnyQueryResult, AnyRow,
    AnyStatement, AnyTypeInfo,
};
use sqlx_core::connection::ConnectOptions;
use sqlx_core::database::Database;
use sqlx_core::describe::Describe;
use sqlx_core::transaction::Transaction;
use sqlx_core::{Either, Error, Url};

pub use connection::Connection;
use connection::Target;
pub use error::SqliteError;
pub use types::{Arguments, Column, Row, Statement, Transactions, Value, ValueRef};
pub use vfs::log_writes;

/// SQLite, run in the calling thread (see the crate's doc).
#[derive(Debug)]
pub struct Sqlite;

impl Database for Sqlite {
    type Connection = Connection;
    type TransactionManager = Transactions;
    type Row = Row;
    type QueryResult = AnyQueryResult;
    type Column = Column;
    type TypeInfo = AnyTypeInfo;
    type Value = Value;
    type ValueRef<'r> = ValueRef<'r>;
    type Arguments<'q> = Arguments<'q>;
    type ArgumentBuffer<'q> = sqlx_core::any::AnyArgumentBuffer<'q>;
    type Statement<'q> = Statement<'q>;
    const NAME: &'static str = "SQLite";
    const URL_SCHEMES: &'static [&'static str] = &["sqlite"];
}

/// The `Any` driver for `sqlite:` URLs.
pub const DRIVER: AnyDriver = AnyDriver::without_migrate::<Sqlite>();

/// Installs this driver for `sqlite:` and sqlx's for `postgres:`, once per process, in
/// place of `sqlx::any::install_default_drivers` (which must then not be called).
pub fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        sqlx_core::any::driver::install_drivers(&[sqlx::postgres::any::DRIVER, DRIVER])
            .expect("other sqlx drivers were installed first");
    });
}

/// Where and how a connection opens its file.
#[derive(Clone, Debug)]
pub struct Options(Target);

impl FromStr for Options {
    type Err = Error;

    fn from_str(url: &str) -> Result<Options, Error> {
        Target::parse(url).map(Options)
    }
}

impl<'a> TryFrom<&'a AnyConnectOptions> for Options {
    type Error = Error;

    fn try_from(options: &'a AnyConnectOptions) -> Result<Options, Error> {
        options.database_url.as_str().parse()
    }
}

impl ConnectOptions for Options {
    type Connection = Connection;

    fn from_url(url: &Url) -> Result<Options, Error> {
        url.as_str().parse()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Connection, Error>> {
        let opened = Connection::open(&self.0);
        Box::pin(async move { opened })
    }

    // Queries are logged under their own target (see the crate's doc).
    fn log_statements(self, _level: log::LevelFilter) -> Options {
        self
    }

    fn log_slow_statements(
        self,
        _level: log::LevelFilter,
        _duration: std::time::Duration,
    ) -> Options {
        self
    }
}

impl sqlx_core::connection::Connection for Connection {
    type Database = Sqlite;
    type Options = Options;

    fn close(self) -> BoxFuture<'static, Result<(), Error>> {
        drop(self);
        Box::pin(async { Ok(()) })
    }

    fn close_hard(self) -> BoxFuture<'static, Result<(), Error>> {
        drop(self);
        Box::pin(async { Ok(()) })
    }

    /// Nothing to ask: the connection is a handle in this process, which nothing can break
    /// between uses, and it has no rollback pending (a dropped transaction's runs at once).
    /// sqlx pings a connection each time it goes back to its pool.
    fn ping(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn begin(&mut self) -> BoxFuture<'_, Result<Transaction<'_, Sqlite>, Error>> {
        Transaction::begin(self, None)
    }

    fn shrink_buffers(&mut self) {}

    fn flush(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn should_flush(&self) -> bool {
        false
    }
}

impl AnyConnectionBackend for Connection {
    fn name(&self) -> &str {
        Sqlite::NAME
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        sqlx_core::connection::Connection::close(*self)
    }

    fn close_hard(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        sqlx_core::connection::Connection::close_hard(*self)
    }

    fn ping(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        sqlx_core::connection::Connection::ping(self)
    }

    fn begin(&mut self, statement: Option<Cow<'static, str>>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(Connection::begin(self, statement))
    }

    fn commit(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(Connection::commit(self))
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(Connection::rollback(self))
    }

    fn start_rollback(&mut self) {
        Connection::start_rollback(self)
    }

    fn get_transaction_depth(&self) -> usize {
        self.depth()
    }

    fn cached_statements_size(&self) -> usize {
        self.cached()
    }

    fn clear_cached_statements(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        self.clear_cache();
        Box::pin(async { Ok(()) })
    }

    // Nothing is buffered between calls.
    fn shrink_buffers(&mut self) {}

    fn flush(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn should_flush(&self) -> bool {
        false
    }

    fn fetch_many<'q>(
        &'q mut self,
        query: &'q str,
        persistent: bool,
        arguments: Option<AnyArguments<'q>>,
    ) -> BoxStream<'q, Result<Either<AnyQueryResult, AnyRow>, Error>> {
        // As sqlx's driver: a text without values (`raw_sql`) is not kept prepared.
        let persistent = persistent && arguments.is_some();
        let values = arguments.map(|a| a.values.0).unwrap_or_default();
        async move { self.run(query, &values, persistent, None).await }
            .into_stream()
            .flat_map(|answers| {
                let answers: Vec<_> = match answers {
                    Ok(answers) => answers.into_iter().map(Ok).collect(),
                    Err(err) => vec![Err(err)],
                };
                futures_util::stream::iter(answers)
            })
            .boxed()
    }

    fn fetch_optional<'q>(
        &'q mut self,
        query: &'q str,
        persistent: bool,
        arguments: Option<AnyArguments<'q>>,
    ) -> BoxFuture<'q, Result<Option<AnyRow>, Error>> {
        let persistent = persistent && arguments.is_some();
        let values = arguments.map(|a| a.values.0).unwrap_or_default();
        Box::pin(async move {
            let answers = self.run(query, &values, persistent, Some(1)).await?;
            Ok(answers.into_iter().find_map(Either::right))
        })
    }

    fn prepare_with<'c, 'q: 'c>(
        &'c mut self,
        sql: &'q str,
        _parameters: &[AnyTypeInfo],
    ) -> BoxFuture<'c, Result<AnyStatement<'q>, Error>> {
        let described = self.shape(sql);
        Box::pin(async move {
            let (parameters, columns) = described?;
            let column_names = columns
                .iter()
                .map(|c| (c.name.clone(), c.ordinal))
                .collect::<sqlx_core::HashMap<_, _>>();
            Ok(AnyStatement {
                sql: Cow::Borrowed(sql),
                parameters: Some(Either::Right(parameters)),
                column_names: column_names.into(),
                columns,
            })
        })
    }

    fn describe<'q>(&'q mut self, sql: &'q str) -> BoxFuture<'q, Result<Describe<Any>, Error>> {
        let described = self.shape(sql);
        Box::pin(async move {
            let (parameters, columns) = described?;
            Ok(Describe {
                nullable: vec![None; columns.len()],
                columns,
                parameters: Some(Either::Right(parameters)),
            })
        })
    }
}
