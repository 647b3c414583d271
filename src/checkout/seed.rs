//! The seed design's three calls, kept working as it wrote them (docs/api.md, "The seed's
//! endpoints"): client-chosen order ids, decimal amounts in major units, and idempotency by
//! order id or body key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::recover::{claim_payment, recheck_payment};
use super::routes::{check_text, parse_items, parse_method, ItemBody};
use super::{create_order, start_payment, OrderInput, OrderView, PaymentInput};
use crate::error::{Error, Result};
use crate::http::extract::{not_null, objects, parse_json, Caller, RawBody};
use crate::http::idempotency::{self, IdempotencyKey};
use crate::ids::{check_client_id, OrderId, PaymentId};
use crate::orders::{self, Status as OrderStatus};
use crate::payments;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inventory/lock", post(lock))
        .route("/payment/initiate", post(initiate))
        .route("/checkout/confirm", post(confirm))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockBody {
    /// Client-chosen: 1-64 of `A-Z a-z 0-9 - _`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "O123")]
    order_id: String,
    #[serde(deserialize_with = "objects")]
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<ItemBody>,
    /// The shopper the lock is for: the order's `customer.id`, so the pending-order limit
    /// applies. Absent (a merchant's server locking for many shoppers), no limit.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    user_id: Option<String>,
}

async fn lock(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    idempotency::run(
        &state,
        &caller,
        key.as_deref(),
        ("POST", "/inventory/lock", &body),
        |key_ref| {
            let (state, caller, body) = (&state, &caller, &body);
            async move {
                caller.require_merchant()?;
                let body: LockBody = parse_json(body)?;
                check_client_id("order_id", &body.order_id).map_err(Error::InvalidRequest)?;
                check_text(&[("user_id", body.user_id.as_ref())])?;
                let customer = body.user_id.map(|id| serde_json::json!({ "id": id }));
                let items = parse_items(body.items)?;
                let input = OrderInput::new(Some(body.order_id), items, customer, None)?;
                Ok((
                    StatusCode::CREATED,
                    create_order(state, input, key_ref.as_ref()).await?,
                ))
            }
        },
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiateBody {
    #[serde(rename = "orderId")]
    #[schema(example = "O123")]
    order_id: String,
    /// Decimal in major units, read as its JSON text so no float ever holds it.
    #[schema(schema_with = decimal_major)]
    amount: Box<RawValue>,
    #[schema(pattern = "^(card|upi|wallet)$", example = "card")]
    payment_method: String,
    /// As the `Idempotency-Key` header (which wins when both are sent).
    #[schema(min_length = 1, max_length = 255, example = "3f1c9b2e")]
    idempotency_key: String,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(schema_with = super::routes::payment_source)]
    source: Option<String>,
}

/// The seed's decimal amount: a JSON number in major units, read exactly from its text
/// (never through a float), with at most the currency's decimals.
fn decimal_major() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Number)
        .description(Some(
            "decimal in major units (998.0 is 99800 minor units), read exactly from its JSON text",
        ))
        .examples([serde_json::json!(998.0)])
        .build()
}

async fn initiate(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(header): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let parsed: InitiateBody = match parse_json(&body) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    // The body's key is the seed's way; an `Idempotency-Key` header, when sent, wins.
    let key = header.unwrap_or_else(|| parsed.idempotency_key.clone());
    idempotency::run(
        &state,
        &caller,
        Some(&key),
        ("POST", "/payment/initiate", &body),
        |key_ref| async {
            caller.check_order(&parsed.order_id)?;
            let method = parse_method(&parsed.payment_method)?;
            let head = {
                let mut conn = state.db.pool.acquire().await?;
                orders::store::head(&mut conn, &OrderId::from(parsed.order_id.as_str()))
                    .await?
                    .ok_or(Error::NotFound("order"))?
            };
            let currency = head.total.currency;
            let text = parsed.amount.get();
            if text.starts_with('"') {
                return Err(Error::invalid("amount must be a number"));
            }
            let amount = currency.parse_major(text).map_err(Error::InvalidRequest)?;
            let source = parsed
                .source
                .clone()
                .unwrap_or_else(|| default_source(method).to_string());
            let input = PaymentInput {
                key: key_ref,
                order_id: head.id,
                method,
                source,
                expected_amount_minor: Some(amount),
            };
            Ok((StatusCode::CREATED, start_payment(&state, input).await?))
        },
    )
    .await
}

fn default_source(method: payments::Method) -> &'static str {
    match method {
        payments::Method::Card => "pm_card_visa",
        payments::Method::Upi => "success@razorpay",
        payments::Method::Wallet => "paytm",
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    #[schema(example = "O123")]
    order_id: String,
}

/// Confirms an order whose payment has succeeded; a no-op when it is already confirmed. A
/// payment still in flight is asked about first, so a lost webhook does not block it.
async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let request = ("POST", "/checkout/confirm", &body[..]);
    idempotency::run(&state, &caller, key.as_deref(), request, |_| async {
        Ok((StatusCode::OK, confirm_order(&state, &caller, &body).await?))
    })
    .await
}

async fn confirm_order(state: &AppState, caller: &Caller, body: &[u8]) -> Result<OrderView> {
    let body: ConfirmBody = parse_json(body)?;
    caller.check_order(&body.order_id)?;
    let mut head = read_head(state, &body.order_id).await?;
    if head.status == OrderStatus::Pending {
        let in_flight: Vec<PaymentId> = {
            let mut conn = state.db.pool.acquire().await?;
            payments::store::for_order(&mut conn, &head.id)
                .await?
                .into_iter()
                .filter(|p| p.status.in_flight())
                .map(|p| p.id)
                .collect()
        };
        for payment_id in in_flight {
            if claim_payment(state, &payment_id).await? {
                recheck_payment(state, &payment_id).await?;
            }
        }
        head = read_head(state, &body.order_id).await?;
    }
    match head.status {
        OrderStatus::Confirmed | OrderStatus::Refunded | OrderStatus::PartiallyRefunded => {
            let mut conn = state.db.pool.acquire().await?;
            super::order_view(&mut conn, head.id.as_str())
                .await?
                .ok_or(Error::NotFound("order"))
        }
        OrderStatus::Pending => Err(Error::NotPayable(
            "the order's payment has not succeeded".into(),
        )),
        OrderStatus::Cancelled | OrderStatus::Expired => Err(Error::NotPayable(format!(
            "order is {}",
            head.status.as_str()
        ))),
    }
}

async fn read_head(state: &AppState, id: &str) -> Result<orders::OrderHead> {
    let mut conn = state.db.pool.acquire().await?;
    orders::store::head(&mut conn, &OrderId::from(id))
        .await?
        .ok_or(Error::NotFound("order"))
}
