//! HTTP routes of the checkout: create and read an order, pay, cancel, refund, and the order's
//! timeline.
//!
//! Just over 400 lines: one route per operation of `/v1/orders`, each with its request type
//! and the checks docs/api.md states for it; split by route they would repeat the same imports
//! and extractors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    cancel_order, create_order, quote, refund_order, start_payment, OrderInput, PaymentInput,
    QuoteView,
};
use crate::error::{Error, Result};
use crate::http::extract::{
    not_null, not_null_object, objects, parse_json, parse_json_or_default, Caller, RawBody,
};
use crate::http::idempotency::{self, IdempotencyKey};
use crate::ids::OrderId;
use crate::ids::Sku;
use crate::payments::Method;
use crate::pricing;
use crate::state::AppState;
use crate::timeline::{self, EntryView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(post_order))
        .route("/v1/quotes", post(post_quote))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/payments", post(post_payment))
        .route("/v1/orders/{id}/cancel", post(post_cancel))
        .route("/v1/orders/{id}/refunds", post(post_refund))
        .route("/v1/orders/{id}/timeline", get(get_timeline))
}

/// `GET /v1/orders/{id}` (API key or the order's client secret).
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
) -> Result<axum::Json<super::OrderView>> {
    caller.check_order(id.as_str())?;
    let mut conn = state.db.pool.acquire().await?;
    super::order_view(&mut conn, id.as_str())
        .await?
        .map(axum::Json)
        .ok_or(Error::NotFound("order"))
}

/// `GET /v1/orders/{id}/timeline` (API key): every step of the order's checkout, oldest first.
async fn get_timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
) -> Result<axum::Json<Vec<EntryView>>> {
    caller.require_merchant()?;
    ensure_order_exists(&state, &id).await?;
    let mut conn = state.db.pool.acquire().await?;
    let entries = timeline::store::for_order(&mut conn, &id).await?;
    Ok(axum::Json(
        entries.into_iter().map(EntryView::from).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// 1-64 of `A-Z a-z 0-9 - _ .`
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "TEE-1")]
    pub sku: String,
    /// Units, 1-1000 (a SKU given twice is merged).
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    pub qty: i64,
}

#[derive(Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    /// A business buyer's GSTIN, for its tax invoice (checked, stored upper case).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, example = "27AAPFU0939F1ZV")]
    #[serde(skip_serializing_if = "Option::is_none")]
    gstin: Option<String>,
}

#[derive(Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    country: String,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    postal_code: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    line1: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    #[serde(default, deserialize_with = "not_null_object")]
    #[schema(nullable = false)]
    customer: Option<CustomerBody>,
    #[serde(deserialize_with = "objects")]
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<ItemBody>,
    #[serde(default, deserialize_with = "not_null_object")]
    #[schema(nullable = false)]
    ship_to: Option<AddressBody>,
    /// A coupon code, case-insensitive.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, example = "SAVE10")]
    coupon: Option<String>,
}

/// A checkout request, checked (shared by orders and quotes).
fn order_input(mut body: OrderBody) -> Result<OrderInput> {
    if let Some(gstin) = body.customer.as_mut().and_then(|c| c.gstin.as_mut()) {
        *gstin = gstin.to_ascii_uppercase();
        pricing::gstin::check(gstin).map_err(|e| Error::invalid(format!("customer.{e}")))?;
    }
    if let Some(c) = &body.customer {
        check_text(&[
            ("customer.id", c.id.as_ref()),
            ("customer.email", c.email.as_ref()),
            ("customer.name", c.name.as_ref()),
            ("customer.phone", c.phone.as_ref()),
        ])?;
        if c.email.as_ref().is_some_and(|e| !e.contains('@')) {
            return Err(Error::invalid("customer.email is not an email address"));
        }
    }
    if let Some(a) = &body.ship_to {
        check_text(&[
            ("ship_to.country", Some(&a.country)),
            ("ship_to.region", a.region.as_ref()),
            ("ship_to.postal_code", a.postal_code.as_ref()),
            ("ship_to.city", a.city.as_ref()),
            ("ship_to.line1", a.line1.as_ref()),
            ("ship_to.line2", a.line2.as_ref()),
        ])?;
    }
    let customer = body
        .customer
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(anyhow::Error::from)?;
    let ship_to = body
        .ship_to
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(anyhow::Error::from)?;
    OrderInput::new(None, parse_items(body.items)?, customer, ship_to)?.with_coupon(body.coupon)
}

/// `POST /v1/quotes`: the figures an order of this body would have, locking and writing
/// nothing.
async fn post_quote(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let request = ("POST", "/v1/quotes", &body[..]);
    idempotency::run(&state, &caller, key.as_deref(), request, |_| async {
        caller.require_merchant()?;
        let input = order_input(parse_json(&body)?)?;
        let priced: QuoteView = quote(&state, &input).await?;
        Ok((StatusCode::OK, priced))
    })
    .await
}

/// Free-text fields are short; this bounds what one order stores.
const TEXT_FIELD_MAX: usize = 200;

pub fn check_text(fields: &[(&str, Option<&String>)]) -> Result<()> {
    for (name, value) in fields {
        if value.is_some_and(|v| v.is_empty() || v.chars().count() > TEXT_FIELD_MAX) {
            return Err(Error::invalid(format!(
                "{name} must be 1-{TEXT_FIELD_MAX} characters"
            )));
        }
    }
    Ok(())
}

/// Parses and checks the items of a checkout request (shared with the seed's lock call).
pub fn parse_items(items: Vec<ItemBody>) -> Result<Vec<(Sku, i64)>> {
    items
        .into_iter()
        .map(|item| {
            Ok((
                Sku::try_from(item.sku.as_str()).map_err(Error::InvalidRequest)?,
                item.qty,
            ))
        })
        .collect()
}

async fn post_order(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    idempotency::run(
        &state,
        &caller,
        key.as_deref(),
        ("POST", "/v1/orders", &body),
        |key_ref| {
            let (state, caller, body) = (&state, &caller, &body);
            async move {
                caller.require_merchant()?;
                let input = order_input(parse_json(body)?)?;
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
pub struct PaymentBody {
    #[schema(pattern = "^(card|upi|wallet)$", example = "card")]
    method: String,
    #[schema(schema_with = payment_source)]
    source: String,
}

/// A payment's source: what its gateway takes, e.g. the simulator's table in docs/api.md (a
/// source the gateway does not know is a 400 before anything is written).
pub fn payment_source() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    let simulator = [
        "pm_card_visa",
        "pm_card_mastercard",
        "pm_card_chargeDeclined",
        "pm_card_chargeDeclinedInsufficientFunds",
        "pm_card_authenticationRequired",
        "success@razorpay",
        "failure@razorpay",
        "paytm",
        "phonepe",
        "amazonpay",
        "wallet_declined",
    ];
    let any = AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(simulator)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "a card payment method, UPI VPA or wallet its gateway knows (docs/api.md)",
        ))
        .examples(["pm_card_visa"])
        .build();
    utoipa::openapi::Schema::AnyOf(any)
}

/// Parses a payment method name into the enum, or a 400.
pub fn parse_method(method: &str) -> Result<Method> {
    Method::parse(method).ok_or_else(|| Error::invalid("method must be one of card, upi, wallet"))
}

async fn post_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let Some(key) = key else {
        return Error::invalid("Idempotency-Key header is required").into_response();
    };
    let path = format!("/v1/orders/{id}/payments");
    idempotency::run_claiming_in_effect(
        &state,
        &caller,
        &key,
        ("POST", &path, &body),
        |key_ref| async {
            caller.check_order(id.as_str())?;
            let body: PaymentBody = parse_json(&body)?;
            let input = PaymentInput {
                key: key_ref,
                order_id: id.clone(),
                method: parse_method(&body.method)?,
                source: body.source,
                expected_amount_minor: None,
            };
            Ok((StatusCode::CREATED, start_payment(&state, input).await?))
        },
    )
    .await
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {}

async fn post_cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let path = format!("/v1/orders/{id}/cancel");
    idempotency::run(
        &state,
        &caller,
        key.as_deref(),
        ("POST", &path, &body),
        |_| async {
            caller.check_order(id.as_str())?;
            let _: CancelBody = parse_json_or_default(&body)?;
            ensure_order_exists(&state, &id).await?;
            Ok((StatusCode::OK, cancel_order(&state, &id).await?))
        },
    )
    .await
}

async fn ensure_order_exists(state: &AppState, id: &OrderId) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    crate::orders::store::head(&mut conn, id)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("order"))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    amount: Option<i64>,
}

async fn post_refund(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let path = format!("/v1/orders/{id}/refunds");
    idempotency::run(
        &state,
        &caller,
        key.as_deref(),
        ("POST", &path, &body),
        |key_ref| async {
            let key_ref = key_ref;
            caller.require_merchant()?;
            let body: RefundBody = parse_json_or_default(&body)?;
            ensure_order_exists(&state, &id).await?;
            let refund = refund_order(&state, &id, body.amount, key_ref.as_ref()).await?;
            Ok((StatusCode::CREATED, refund))
        },
    )
    .await
}
