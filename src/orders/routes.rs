//! HTTP routes to read orders (API key or the order's client secret).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::extract::Caller;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/orders/{id}", get(get_order))
}

async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    caller.check_order(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    super::view(&mut conn, &id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("order"))
}
