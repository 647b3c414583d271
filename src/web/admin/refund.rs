//! `POST /admin/orders/{id}/refund`: `checkout::refund_order`, as the API's refund route,
//! and as idempotent as the API's with an `Idempotency-Key`: each rendering of the form
//! carries a key of its own, so a double click or a resent form issues one refund.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::orders::{back, not_found, refusal};
use super::session::Console;
use super::Form;
use crate::checkout;
use crate::error::Result;
use crate::idempotency::{self, seal, Claim, KeyRef};
use crate::ids::OrderId;
use crate::state::AppState;

/// The idempotency scope of the console's forms (the API's are `merchant` and `order:…`).
const SCOPE: &str = "console";

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    csrf: String,
    /// The form's own idempotency key.
    #[serde(default)]
    key: String,
    /// Major units (`12.50`); empty: the rest of the payment.
    #[serde(default)]
    amount: String,
}

pub async fn refund(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<OrderId>,
    Form(form): Form<RefundForm>,
) -> Result<Response> {
    if let Err(refused) = console.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    let mut conn = state.db.pool.acquire().await?;
    let Some(head) = crate::orders::store::head(&mut conn, &id).await? else {
        return Ok(not_found());
    };
    drop(conn);
    let amount = match form.amount.trim() {
        "" => None,
        text => match head.total.currency.parse_major(text) {
            Ok(minor) => Some(minor),
            Err(problem) => return Ok(back(&id, Err(format!("Refund amount: {problem}")))),
        },
    };
    if let Err(err) = idempotency::check_key(&form.key) {
        return Ok(back(&id, Err(refusal(err)?)));
    }
    let path = format!("/admin/orders/{id}/refund");
    let fingerprint = idempotency::fingerprint("POST", &path, form.amount.trim().as_bytes());
    // The refund's view holds no secret; the seal key only has to be the same each time.
    let seal_key = seal::credential_key(SCOPE);
    match idempotency::claim(&state, SCOPE, &form.key, &fingerprint, &seal_key).await {
        Ok(Claim::Won) => {}
        Ok(Claim::Replay(status, body)) => {
            let outcome = match status.is_success() {
                true => Ok("refund issued (the form was sent more than once)".to_string()),
                false => Err(body["error"]["message"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_string()),
            };
            return Ok(back(&id, outcome));
        }
        Err(err) => return Ok(back(&id, Err(refusal(err)?))),
    }
    let key = KeyRef::claimed(SCOPE, &form.key, &seal_key);
    let result = checkout::refund_order(&state, &id, amount, Some(&key))
        .await
        .and_then(|view| Ok((StatusCode::CREATED, idempotency::to_value(view)?)));
    if let Err(err) = idempotency::finish(&state, SCOPE, &form.key, &seal_key, &result).await {
        tracing::error!(error = %err, "could not keep the console refund's answer");
    }
    Ok(match result {
        Ok(_) => back(&id, Ok("refund issued".into())),
        Err(err) => back(&id, Err(refusal(err)?)),
    })
}
