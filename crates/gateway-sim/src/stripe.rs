//! The simulator's Stripe PaymentIntents: create (with or without a payment method, with
//! `confirm` or not), confirm, retrieve, list, capture (whole or `amount_to_capture`) and
//! cancel, with Stripe's paths, form parameters, statuses, objects and error shapes. Every
//! change queues the event Stripe would send, carrying the object as it stood then.
//! Served under `/sim/stripe` (and at the root of `till gateway-sim`, where the Node SDK
//! looks for it); refunds live in `stripe_refunds.rs`, the objects' rendering in
//! `stripe_objects.rs`, what all endpoints share in `stripe_api.rs`. Over 400 lines: the
//! PaymentIntent's moves (create, confirm, capture, cancel) read best side by side.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::stripe_api::{
    error, form_post, invalid, list_page, missing, query_get, unknown_route, version_header,
    wrong_method, Params, Reply,
};
pub(super) use super::stripe_objects::{
    charge, charge_id_of, intent, intent_id_of, load, render, Intent, INTENT_COLUMNS,
};
use super::{plan, stripe_refunds, Plan, Simulator};
use crate::support::new_id;
use crate::support::Method as PaymentMethod;

/// The Stripe API, paths relative to its base (`/v1/...`), with Stripe's answers for
/// unknown paths and methods.
pub fn router() -> Router<Simulator> {
    Router::new()
        .route("/v1/payment_intents", post(create).get(list))
        .route("/v1/payment_intents/{id}", get(retrieve))
        .route("/v1/payment_intents/{id}/{action}", post(act))
        .merge(stripe_refunds::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(version_header))
}

/// Statuses a PaymentIntent can be cancelled from.
const CANCELABLE: &[&str] = &[
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
];

/// The Stripe status a confirmed PaymentIntent takes for a test PaymentMethod.
fn confirmed_status(plan: &Plan, manual: bool) -> (&'static str, Option<&'static str>) {
    match plan {
        Plan::SucceedNow if manual => ("requires_capture", None),
        Plan::SucceedNow => ("succeeded", None),
        Plan::FailNow(code) => ("requires_payment_method", Some(*code)),
        Plan::ThreeDSecure => ("requires_action", None),
        Plan::Later { .. } => ("processing", None),
    }
}

/// Stripe's event type for a PaymentIntent that reached `status`.
pub(super) fn event_type(status: &str) -> &'static str {
    match status {
        "requires_capture" => "payment_intent.amount_capturable_updated",
        "succeeded" => "payment_intent.succeeded",
        "requires_payment_method" => "payment_intent.payment_failed",
        "canceled" => "payment_intent.canceled",
        "requires_action" => "payment_intent.requires_action",
        _ => "payment_intent.processing",
    }
}

/// Queues the event Stripe sends for a change, with its object as it stands now (held back
/// further when a fault knob says so; `fault_outcome` is what the knobs look at).
pub(super) async fn queue_event(
    sim: &Simulator,
    conn: &mut AnyConnection,
    intent_id: &str,
    kind: &str,
    object: &Value,
    fault_outcome: &str,
) -> Result<(), sqlx::Error> {
    let now = sim.inner.clock.now_ms();
    let deliver_at = now
        + sim
            .inner
            .faults
            .event_delay_ms(fault_outcome, sim.inner.delay_ms);
    sqlx::query(
        "INSERT INTO sim_events (id, payment_id, outcome, deliver_at, object) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id("evt"))
    .bind(intent_id)
    .bind(kind)
    .bind(deliver_at)
    .bind(object.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Queues the PaymentIntent event for the status it just reached.
async fn queue_intent_event(
    sim: &Simulator,
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(), sqlx::Error> {
    let Some(pi) = load(conn, id).await? else {
        return Ok(());
    };
    let object = render(sim, &pi, false);
    queue_event(sim, conn, id, event_type(&pi.status), &object, &pi.status).await
}

/// After a guarded update: the event for the status reached and the intent as it now is,
/// or the 409 when another request changed the intent first (`updated` is 0).
async fn moved(
    sim: &Simulator,
    tx: &mut AnyConnection,
    id: &str,
    updated: u64,
) -> Result<Result<Intent, Reply>, sqlx::Error> {
    if updated == 0 {
        return Ok(Err(contended()));
    }
    queue_intent_event(sim, tx, id).await?;
    Ok(Ok(load(tx, id).await?.expect("the row was just updated")))
}

/// Another request moved the intent between our read and our guarded update (PostgreSQL):
/// nothing happened, and a retry under the same key reads the new state.
pub(super) fn contended() -> Reply {
    error(
        StatusCode::CONFLICT,
        "invalid_request_error",
        "lock_timeout",
        "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.",
    )
}

fn unexpected_state(sim: &Simulator, pi: &Intent, action: &str) -> Reply {
    let mut err = invalid(
        "payment_intent_unexpected_state",
        &format!(
            "You cannot {action} this PaymentIntent because it has a status of {}.",
            pi.status
        ),
    );
    err.1["error"]["payment_intent"] = render(sim, pi, false);
    err
}

async fn create(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    form_post!(
        sim,
        headers,
        "POST /v1/payment_intents",
        body,
        |tx, params| { create_in(&sim, &mut tx, &params).await? }
    )
}

/// What a create asks for, checked before anything is written.
struct NewIntent {
    amount: i64,
    currency: String,
    manual: bool,
    payment_method: Option<String>,
}

fn new_intent(params: &Params) -> Result<NewIntent, Reply> {
    let amount = params
        .integer("amount")?
        .ok_or_else(|| invalid("parameter_missing", "Missing required param: amount."))?;
    if amount < 1 {
        return Err(invalid("amount_too_small", "Amount must be at least 1."));
    }
    let currency = params
        .get("currency")
        .ok_or_else(|| invalid("parameter_missing", "Missing required param: currency."))?;
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid(
            "parameter_invalid",
            &format!("Invalid currency: {currency}."),
        ));
    }
    let manual = match params.get("capture_method") {
        None | Some("automatic") | Some("automatic_async") => false,
        Some("manual") => true,
        Some(other) => {
            return Err(invalid(
                "parameter_invalid",
                &format!("Invalid capture_method: {other}"),
            ))
        }
    };
    let payment_method = params.get("payment_method").map(str::to_string);
    if let Some(pm) = &payment_method {
        plan(PaymentMethod::Card, pm).ok_or_else(|| no_such_method(pm))?;
    }
    Ok(NewIntent {
        amount,
        currency: currency.to_lowercase(),
        manual,
        payment_method,
    })
}

fn no_such_method(pm: &str) -> Reply {
    let mut err = missing("PaymentMethod", pm);
    err.1["error"]["param"] = json!("payment_method");
    err
}

async fn create_in(
    sim: &Simulator,
    tx: &mut AnyConnection,
    params: &Params,
) -> Result<Reply, sqlx::Error> {
    let new = match new_intent(params) {
        Ok(new) => new,
        Err(err) => return Ok(err),
    };
    let confirm = params.boolean("confirm");
    if confirm && new.payment_method.is_none() {
        return Ok(invalid(
            "payment_intent_unexpected_state",
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
        ));
    }
    let status = match new.payment_method {
        Some(_) => "requires_confirmation",
        None => "requires_payment_method",
    };
    let id = new_id("pi");
    let now = sim.inner.clock.now_ms();
    sqlx::query(
        "INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, created_at, updated_at,
           protocol, capture_manual, metadata, return_url)
         VALUES ($1, $1, $2, $3, 'card', $4, $5, $6, $6, 'stripe', $7, $8, $9)",
    )
    .bind(&id)
    .bind(new.amount)
    .bind(&new.currency)
    .bind(new.payment_method.clone().unwrap_or_default())
    .bind(status)
    .bind(now)
    .bind(i64::from(new.manual))
    .bind(params.metadata().to_string())
    .bind(params.get("return_url"))
    .execute(&mut *tx)
    .await?;
    let pi = load(tx, &id).await?.expect("the row was just written");
    queue_event(
        sim,
        tx,
        &id,
        "payment_intent.created",
        &render(sim, &pi, false),
        status,
    )
    .await?;
    if confirm {
        return confirm_in(sim, tx, &id, params).await;
    }
    Ok((
        StatusCode::OK,
        render(sim, &pi, params.expands("latest_charge")),
    ))
}

/// `POST /v1/payment_intents/{id}/confirm`, `…/capture` and `…/cancel`.
async fn act(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    if !matches!(action.as_str(), "confirm" | "capture" | "cancel") {
        return unknown_route(Method::POST, uri).await;
    }
    let target = format!("POST /v1/payment_intents/{id}/{action}");
    form_post!(
        sim,
        headers,
        &target,
        body,
        |tx, params| match action.as_str() {
            "confirm" => confirm_in(&sim, &mut tx, &id, &params).await?,
            "capture" => capture_in(&sim, &mut tx, &id, &params).await?,
            _ => cancel_in(&sim, &mut tx, &id).await?,
        }
    )
}

/// Confirms an intent with its payment method (or the one `params` name): the card's
/// outcome decides the status; a decline answers 402 with the intent, as Stripe does.
async fn confirm_in(
    sim: &Simulator,
    tx: &mut AnyConnection,
    id: &str,
    params: &Params,
) -> Result<Reply, sqlx::Error> {
    let Some(pi) = load(tx, id).await? else {
        return Ok(missing("payment_intent", id));
    };
    if !matches!(
        pi.status.as_str(),
        "requires_payment_method" | "requires_confirmation"
    ) {
        return Ok(unexpected_state(sim, &pi, "confirm"));
    }
    let Some(pm) = params
        .get("payment_method")
        .map(str::to_string)
        .or(pi.payment_method.clone())
    else {
        return Ok(invalid(
            "payment_intent_unexpected_state",
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
        ));
    };
    let Some(plan) = plan(PaymentMethod::Card, &pm) else {
        return Ok(no_such_method(&pm));
    };
    let (status, failure) = confirmed_status(&plan, pi.manual);
    let updated = sqlx::query(
        "UPDATE sim_payments SET status = $1, failure_code = $2, source = $3,
           return_url = COALESCE($4, return_url), updated_at = $5 WHERE id = $6 AND status = $7",
    )
    .bind(status)
    .bind(failure)
    .bind(&pm)
    .bind(params.get("return_url"))
    .bind(sim.inner.clock.now_ms())
    .bind(id)
    .bind(&pi.status)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let pi = match moved(sim, tx, id, updated).await? {
        Ok(pi) => pi,
        Err(err) => return Ok(err),
    };
    let rendered = render(sim, &pi, params.expands("latest_charge"));
    if failure.is_none() {
        return Ok((StatusCode::OK, rendered));
    }
    let mut err = error(
        StatusCode::PAYMENT_REQUIRED,
        "card_error",
        "card_declined",
        "Your card was declined.",
    );
    err.1["error"]["decline_code"] = rendered["last_payment_error"]["decline_code"].clone();
    err.1["error"]["charge"] = json!(charge_id_of(id));
    err.1["error"]["payment_intent"] = rendered;
    Ok(err)
}

async fn retrieve(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    query_get!(
        sim,
        headers,
        query,
        |tx, params| match load(&mut tx, &id).await? {
            Some(pi) => (
                StatusCode::OK,
                render(&sim, &pi, params.expands("latest_charge"))
            ),
            None => missing("payment_intent", &id),
        }
    )
}

/// `GET /v1/payment_intents`: newest first, `limit` (1–100) a page, `starting_after` the
/// last id of the previous page; `expand[]=data.latest_charge` inlines the charges.
async fn list(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    query_get!(sim, headers, query, |tx, params| {
        let rows = sqlx::query(&format!(
            "SELECT {INTENT_COLUMNS} FROM sim_payments WHERE protocol = 'stripe' ORDER BY created_at DESC, id DESC"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let expand = params.expands("data.latest_charge");
        let intents = rows
            .iter()
            .map(|r| render(&sim, &Intent::from_row(r), expand))
            .collect();
        list_page(&params, intents, "/v1/payment_intents")
    })
}

/// Takes the whole authorization or `amount_to_capture` of it; Stripe releases the rest.
async fn capture_in(
    sim: &Simulator,
    tx: &mut AnyConnection,
    id: &str,
    params: &Params,
) -> Result<Reply, sqlx::Error> {
    let Some(pi) = load(tx, id).await? else {
        return Ok(missing("payment_intent", id));
    };
    if pi.status != "requires_capture" {
        return Ok(unexpected_state(sim, &pi, "capture"));
    }
    let amount = match params.integer("amount_to_capture") {
        Ok(amount) => amount.unwrap_or(pi.amount),
        Err(err) => return Ok(err),
    };
    if amount > pi.amount {
        return Ok(invalid(
            "amount_too_large",
            &format!(
                "The amount_to_capture ({amount}) is greater than the amount capturable ({}).",
                pi.amount
            ),
        ));
    }
    if amount < 1 {
        return Ok(invalid(
            "amount_too_small",
            "amount_to_capture must be at least 1.",
        ));
    }
    let updated = sqlx::query(
        "UPDATE sim_payments SET status = 'succeeded', amount_captured = $1, updated_at = $2
         WHERE id = $3 AND status = 'requires_capture'",
    )
    .bind(amount)
    .bind(sim.inner.clock.now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let pi = match moved(sim, tx, id, updated).await? {
        Ok(pi) => pi,
        Err(err) => return Ok(err),
    };
    Ok((
        StatusCode::OK,
        render(sim, &pi, params.expands("latest_charge")),
    ))
}

async fn cancel_in(
    sim: &Simulator,
    tx: &mut AnyConnection,
    id: &str,
) -> Result<Reply, sqlx::Error> {
    let Some(pi) = load(tx, id).await? else {
        return Ok(missing("payment_intent", id));
    };
    if !CANCELABLE.contains(&pi.status.as_str()) {
        return Ok(unexpected_state(sim, &pi, "cancel"));
    }
    let updated = sqlx::query(
        "UPDATE sim_payments SET status = 'canceled', updated_at = $1 WHERE id = $2 AND status = $3",
    )
    .bind(sim.inner.clock.now_ms())
    .bind(id)
    .bind(&pi.status)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let pi = match moved(sim, tx, id, updated).await? {
        Ok(pi) => pi,
        Err(err) => return Ok(err),
    };
    Ok((StatusCode::OK, render(sim, &pi, false)))
}
