//! The simulator's Stripe refunds: create by `payment_intent` or `charge`, for an `amount`
//! or (without one) the rest of what was captured, retrieve and list, with Stripe's error
//! codes (`charge_already_refunded`, `amount_too_large`, `charge_not_refundable`, …) and
//! the `refund.created` and `charge.refunded` events.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

use super::stripe::{charge, charge_id_of, contended, intent_id_of, load, queue_event, Intent};
use super::stripe_api::{form_post, invalid, list_page, missing, query_get, Params, Reply};
use super::Simulator;
use crate::support::{new_id, sha256_hex};

pub(super) fn router() -> Router<Simulator> {
    Router::new()
        .route("/v1/refunds", post(create).get(list))
        .route("/v1/refunds/{id}", get(retrieve))
}

/// The reasons Stripe accepts for a refund.
const REASONS: &[&str] = &["duplicate", "fraudulent", "requested_by_customer"];

/// Refund rows with their payment's currency and method. Refunds recorded before refunds had
/// ids of their own get one derived from their idempotency key.
const REFUND_SELECT: &str =
    "SELECT r.idem_key, r.refund_id, r.amount, r.reason, r.notes, r.created_at,
    p.id AS intent_id, p.currency, p.source
    FROM sim_refunds r JOIN sim_payments p ON p.idem_key = r.payment_id AND p.protocol = 'stripe'";

/// A Refund with every field Stripe's OpenAPI marks required.
fn render(r: &sqlx::any::AnyRow) -> Value {
    let id = r.get::<Option<String>, _>("refund_id").unwrap_or_else(|| {
        format!(
            "re_{}",
            &sha256_hex(r.get::<String, _>("idem_key").as_bytes())[..24]
        )
    });
    let intent_id: String = r.get("intent_id");
    json!({
        "id": id, "object": "refund", "amount": r.get::<i64, _>("amount"),
        "balance_transaction": format!("txn_{}", &id[3..]),
        "charge": charge_id_of(&intent_id), "created": r.get::<i64, _>("created_at") / 1000,
        "currency": r.get::<String, _>("currency").to_lowercase(),
        "customer": null, "customer_account": null,
        "destination_details": {"type": "card", "card": {"reference_status": "available", "reference_type": "acquirer_reference_number", "type": "refund"}},
        "metadata": r.get::<Option<String>, _>("notes").and_then(|n| serde_json::from_str::<Value>(&n).ok()).unwrap_or(json!({})),
        "payment_intent": intent_id,
        "payment_method": Some(r.get::<String, _>("source")).filter(|s| !s.is_empty()),
        "reason": r.get::<Option<String>, _>("reason"), "receipt_number": null,
        "source_transfer_reversal": null, "status": "succeeded", "transfer_reversal": null,
    })
}

async fn create(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    form_post!(sim, headers, "POST /v1/refunds", body, |tx, params| {
        create_in(&sim, &mut tx, &params).await?
    })
}

/// The intent a refund names, by `payment_intent` or by `charge`.
async fn target(
    tx: &mut AnyConnection,
    params: &Params,
) -> Result<Result<Intent, Reply>, sqlx::Error> {
    let (kind, given, intent_id) = match (params.get("payment_intent"), params.get("charge")) {
        (Some(pi), _) => ("payment_intent", pi, Some(pi.to_string())),
        (None, Some(ch)) => ("charge", ch, intent_id_of(ch)),
        (None, None) => {
            return Ok(Err(invalid(
                "parameter_missing",
                "One of the following params should be provided for this request: payment_intent or charge.",
            )))
        }
    };
    let found = match intent_id {
        Some(id) => load(tx, &id).await?,
        None => None,
    };
    // A charge exists only once its intent was confirmed.
    let found = found.filter(|pi| kind == "payment_intent" || pi.charge_id().is_some());
    Ok(found.ok_or_else(|| missing(kind, given)))
}

async fn create_in(
    sim: &Simulator,
    tx: &mut AnyConnection,
    params: &Params,
) -> Result<Reply, sqlx::Error> {
    let pi = match target(tx, params).await? {
        Ok(pi) => pi,
        Err(err) => return Ok(err),
    };
    let charge_id = charge_id_of(&pi.id);
    if pi.status != "succeeded" {
        return Ok(invalid(
            "charge_not_refundable",
            &format!(
                "This PaymentIntent ({}) does not have a successful charge to refund.",
                pi.id
            ),
        ));
    }
    let remaining = pi.received() - pi.refunded;
    if remaining <= 0 {
        return Ok(invalid(
            "charge_already_refunded",
            &format!("Charge {charge_id} has already been refunded."),
        ));
    }
    let amount = match params.integer("amount") {
        Ok(amount) => amount.unwrap_or(remaining),
        Err(err) => return Ok(err),
    };
    if amount < 1 {
        return Ok(invalid(
            "amount_too_small",
            "Refund amount must be at least 1.",
        ));
    }
    if amount > remaining {
        return Ok(invalid(
            "amount_too_large",
            &format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."),
        ));
    }
    let reason = params.get("reason");
    if reason.is_some_and(|r| !REASONS.contains(&r)) {
        return Ok(invalid(
            "parameter_invalid",
            "reason must be duplicate, fraudulent or requested_by_customer",
        ));
    }
    let now = sim.inner.clock.now_ms();
    let moved = sqlx::query(
        "UPDATE sim_payments SET refunded = refunded + $1, updated_at = $2 WHERE id = $3 AND refunded = $4",
    )
    .bind(amount)
    .bind(now)
    .bind(&pi.id)
    .bind(pi.refunded)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(contended());
    }
    let id = new_id("re");
    sqlx::query(
        "INSERT INTO sim_refunds (idem_key, payment_id, amount, created_at, refund_id, protocol, reason, notes)
         VALUES ($1, $2, $3, $4, $1, 'stripe', $5, $6)",
    )
    .bind(&id)
    .bind(&pi.id)
    .bind(amount)
    .bind(now)
    .bind(reason)
    .bind(params.metadata().to_string())
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(&format!("{REFUND_SELECT} WHERE r.refund_id = $1"))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    let refund = render(&row);
    queue_event(sim, tx, &pi.id, "refund.created", &refund, "refunded").await?;
    let after = load(tx, &pi.id).await?.expect("the intent was just read");
    queue_event(
        sim,
        tx,
        &pi.id,
        "charge.refunded",
        &charge(&after),
        "refunded",
    )
    .await?;
    Ok((StatusCode::OK, refund))
}

async fn retrieve(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    query_get!(sim, headers, query, |tx, _params| {
        let row = sqlx::query(&format!(
            "{REFUND_SELECT} WHERE r.refund_id = $1 AND r.protocol = 'stripe'"
        ))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => (StatusCode::OK, render(&row)),
            None => missing("refund", &id),
        }
    })
}

/// `GET /v1/refunds`: newest first, optionally of one `payment_intent` or `charge`.
async fn list(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    query_get!(sim, headers, query, |tx, params| {
        let intent = params
            .get("payment_intent")
            .map(str::to_string)
            .or_else(|| params.get("charge").and_then(intent_id_of));
        let rows = sqlx::query(&format!(
            "{REFUND_SELECT} WHERE ($1 IS NULL OR p.id = $1) ORDER BY r.created_at DESC, r.idem_key DESC"
        ))
        .bind(&intent)
        .fetch_all(&mut *tx)
        .await?;
        list_page(&params, rows.iter().map(render).collect(), "/v1/refunds")
    })
}
