//! The one error type at Till's boundary, and its mapping to HTTP statuses and the API error codes (docs/api.md).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not enough stock")]
    OutOfStock(Vec<String>),
    #[error("{0}")]
    NotPayable(String),
    /// The payment method is turned off: left on the simulator beside a real gateway.
    #[error("{0}")]
    MethodUnavailable(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("a request with this idempotency key is still running")]
    IdempotencyKeyInUse,
    #[error("this idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("{0}")]
    AmountMismatch(String),
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("too many requests; slow down")]
    RateLimited,
    #[error("the request was not received in time")]
    RequestTimeout,
    /// A coupon that does not apply to this order; `reason` says why (docs/api.md).
    #[error("coupon {code} cannot be used: {reason}")]
    CouponInvalid { code: String, reason: &'static str },
    /// A tax document asked for before it exists: an order not confirmed yet, a refund
    /// without a credit note.
    #[error("{0}")]
    InvoiceNotIssued(&'static str),
    #[error("coupon {0} has no use left")]
    CouponExhausted(String),
    #[error("this customer already has {0} pending orders; pay for or cancel one first")]
    TooManyPendingOrders(u32),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request URI is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("the request headers are larger than {0}")]
    HeadersTooLarge(&'static str),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Error {
        if database_unavailable(&err) {
            Error::Unavailable(err)
        } else {
            Error::Internal(anyhow::Error::new(err))
        }
    }
}

/// Errors that mean the database is away or going away (so the request may be retried), as
/// opposed to a bug: no connection, a cut connection, or PostgreSQL's SQLSTATE classes 08
/// (connection exception), 53 (insufficient resources) and 57 (operator intervention, e.g. a
/// restart terminating sessions); SQLite's busy and locked.
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        // The TLS handshake (`sslmode=prefer` tries it first) cut short by a vanishing server.
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // A connection closed before it answered whether it speaks TLS: no server behind it.
        sqlx::Error::Protocol(message) => message.contains("SSLRequest"),
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            ["08", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class))
                || code == "5"
                || code == "6"
        }),
        _ => false,
    }
}

/// A value read back from the database that Till does not know (a status, a method): the
/// data decides money, so it is an error, never quietly taken for a default.
pub fn corrupt(column: &str, value: &str) -> Error {
    Error::Internal(anyhow::anyhow!(
        "stored {column} {value:?} is not a value Till knows"
    ))
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest(_) | Error::MethodUnavailable(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::OutOfStock(_)
            | Error::NotPayable(_)
            | Error::Conflict { .. }
            | Error::IdempotencyKeyInUse
            | Error::AmountMismatch(_) => StatusCode::CONFLICT,
            Error::IdempotencyKeyReused | Error::CouponInvalid { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::CouponExhausted(_) | Error::InvoiceNotIssued(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::RateLimited | Error::TooManyPendingOrders(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::Unauthorized => "unauthorized",
            Error::NotFound(_) => "not_found",
            Error::OutOfStock(_) => "out_of_stock",
            Error::NotPayable(_) => "order_not_payable",
            Error::MethodUnavailable(_) => "payment_method_unavailable",
            Error::Conflict { code, .. } => code,
            Error::IdempotencyKeyInUse => "idempotency_key_in_use",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::AmountMismatch(_) => "amount_mismatch",
            Error::CouponInvalid { .. } => "coupon_invalid",
            Error::CouponExhausted(_) => "coupon_exhausted",
            Error::InvoiceNotIssued(_) => "invoice_not_issued",
            Error::PayloadTooLarge => "payload_too_large",
            Error::RateLimited => "rate_limited",
            Error::RequestTimeout => "request_timeout",
            Error::TooManyPendingOrders(_) => "too_many_pending_orders",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::UriTooLong(_) => "uri_too_long",
            Error::HeadersTooLarge(_) => "headers_too_large",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    /// The `{"error": {...}}` body. 5xx details stay in the log, never in the response.
    pub fn answer(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        if let Error::OutOfStock(skus) = self {
            body.error.skus = Some(skus.clone());
        }
        if let Error::CouponInvalid { reason, .. } = self {
            body.error.reason = Some(reason);
        }
        body
    }

    /// The `{"error": {...}}` body as the JSON an idempotent answer stores.
    pub fn body(&self) -> serde_json::Value {
        // A struct of strings always serializes; `Null` would only mean a serde bug.
        serde_json::to_value(self.answer()).unwrap_or_default()
    }
}

/// Every error answer's body: `{"error": {"code", "message", …details}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The API error code (docs/api.md), e.g. `invalid_request`; each operation lists its own.
    pub code: &'static str,
    /// For people; lowercase, no trailing period. 5xx details stay in the log.
    pub message: String,
    /// `out_of_stock`: the SKUs short of stock.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub skus: Option<Vec<String>>,
    /// `coupon_invalid`: why the coupon does not apply (`unknown`, `inactive`,
    /// `not_started`, `ended`, `below_min_subtotal`, `covers_no_line`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<&'static str>,
}

impl ErrorBody {
    pub fn new(code: &'static str, message: String) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code,
                message,
                skus: None,
                reason: None,
            },
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        (status, axum::Json(self.answer())).into_response()
    }
}
