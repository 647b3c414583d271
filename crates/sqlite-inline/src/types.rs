//! The types sqlx asks a database to have. Till reaches this driver only through `Any`,
//! whose rows, values and arguments these wrap; they also serve a typed `Sqlite` query.

use std::borrow::Cow;

use futures_core::future::BoxFuture;
use sqlx_core::any::{AnyArgumentBuffer, AnyTypeInfo, AnyValue};
use sqlx_core::column::ColumnIndex;
use sqlx_core::encode::Encode;
use sqlx_core::error::BoxDynError;
use sqlx_core::ext::ustr::UStr;
use sqlx_core::transaction::TransactionManager;
use sqlx_core::types::Type;
use sqlx_core::{Either, Error};

use crate::{Connection, Sqlite};

/// A result column.
#[derive(Clone, Debug)]
pub struct Column {
    ordinal: usize,
    name: UStr,
    type_info: AnyTypeInfo,
}

impl sqlx_core::column::Column for Column {
    type Database = Sqlite;

    fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn type_info(&self) -> &AnyTypeInfo {
        &self.type_info
    }
}

/// A row: its columns and values.
pub struct Row {
    columns: Vec<Column>,
    values: Vec<AnyValue>,
}

impl From<sqlx_core::any::AnyRow> for Row {
    fn from(row: sqlx_core::any::AnyRow) -> Row {
        Row {
            columns: row
                .columns
                .into_iter()
                .map(|c| Column {
                    ordinal: c.ordinal,
                    name: c.name,
                    type_info: c.type_info,
                })
                .collect(),
            values: row.values,
        }
    }
}

impl sqlx_core::row::Row for Row {
    type Database = Sqlite;

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn try_get_raw<I: ColumnIndex<Self>>(&self, index: I) -> Result<ValueRef<'_>, Error> {
        let index = index.index(self)?;
        Ok(ValueRef(&self.values[index]))
    }
}

sqlx_core::impl_column_index_for_row!(Row);

impl ColumnIndex<Row> for &'_ str {
    fn index(&self, row: &Row) -> Result<usize, Error> {
        row.columns
            .iter()
            .position(|c| &*c.name == *self)
            .ok_or_else(|| Error::ColumnNotFound(self.to_string()))
    }
}

/// A value read from a row.
#[derive(Clone, Debug)]
pub struct Value(AnyValue);

impl sqlx_core::value::Value for Value {
    type Database = Sqlite;

    fn as_ref(&self) -> ValueRef<'_> {
        ValueRef(&self.0)
    }

    fn type_info(&self) -> Cow<'_, AnyTypeInfo> {
        sqlx_core::value::Value::type_info(&self.0)
    }

    fn is_null(&self) -> bool {
        sqlx_core::value::Value::is_null(&self.0)
    }
}

/// A value of a row, borrowed.
pub struct ValueRef<'r>(&'r AnyValue);

impl<'r> sqlx_core::value::ValueRef<'r> for ValueRef<'r> {
    type Database = Sqlite;

    fn to_owned(&self) -> Value {
        Value(self.0.clone())
    }

    fn type_info(&self) -> Cow<'_, AnyTypeInfo> {
        sqlx_core::value::Value::type_info(self.0)
    }

    fn is_null(&self) -> bool {
        sqlx_core::value::Value::is_null(self.0)
    }
}

/// A query's values, in `$N` order.
pub struct Arguments<'q> {
    values: AnyArgumentBuffer<'q>,
}

impl Default for Arguments<'_> {
    fn default() -> Self {
        Arguments {
            values: AnyArgumentBuffer(Vec::new()),
        }
    }
}

impl<'q> sqlx_core::arguments::Arguments<'q> for Arguments<'q> {
    type Database = Sqlite;

    fn reserve(&mut self, additional: usize, _size: usize) {
        self.values.0.reserve(additional);
    }

    fn add<T>(&mut self, value: T) -> Result<(), BoxDynError>
    where
        T: Encode<'q, Sqlite> + Type<Sqlite>,
    {
        let _ = value.encode(&mut self.values)?;
        Ok(())
    }

    fn len(&self) -> usize {
        self.values.0.len()
    }
}

sqlx_core::impl_into_arguments_for_arguments!(Arguments<'q>);

/// A prepared statement's text, parameters and columns.
#[derive(Clone)]
pub struct Statement<'q> {
    sql: Cow<'q, str>,
    parameters: usize,
    columns: Vec<Column>,
}

impl<'q> sqlx_core::statement::Statement<'q> for Statement<'q> {
    type Database = Sqlite;

    fn to_owned(&self) -> Statement<'static> {
        Statement {
            sql: Cow::Owned(self.sql.to_string()),
            parameters: self.parameters,
            columns: self.columns.clone(),
        }
    }

    fn sql(&self) -> &str {
        &self.sql
    }

    fn parameters(&self) -> Option<Either<&[AnyTypeInfo], usize>> {
        Some(Either::Right(self.parameters))
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    sqlx_core::impl_statement_query!(Arguments<'_>);
}

sqlx_core::impl_column_index_for_statement!(Statement);

impl ColumnIndex<Statement<'_>> for &'_ str {
    fn index(&self, statement: &Statement<'_>) -> Result<usize, Error> {
        statement
            .columns
            .iter()
            .position(|c| &*c.name == *self)
            .ok_or_else(|| Error::ColumnNotFound(self.to_string()))
    }
}

/// Transactions and savepoints (see `Connection::begin`).
pub struct Transactions;

impl TransactionManager for Transactions {
    type Database = Sqlite;

    fn begin<'conn>(
        conn: &'conn mut Connection,
        statement: Option<Cow<'static, str>>,
    ) -> BoxFuture<'conn, Result<(), Error>> {
        Box::pin(conn.begin(statement))
    }

    fn commit(conn: &mut Connection) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(conn.commit())
    }

    fn rollback(conn: &mut Connection) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(conn.rollback())
    }

    fn start_rollback(conn: &mut Connection) {
        conn.start_rollback()
    }

    fn get_transaction_depth(conn: &Connection) -> usize {
        conn.depth()
    }
}
