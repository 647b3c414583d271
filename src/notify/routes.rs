//! `GET /v1/events` (API key): the event stream, oldest first, paged with `after`.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{EventView, Position, Type};
use crate::error::{Error, Result};
use crate::http::extract::Caller;
use crate::state::AppState;

/// Events per page when `limit` is not given, and the most one page holds.
const LIMIT_DEFAULT: i64 = 100;
const LIMIT_MAX: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<String>,
}

/// One page of events.
#[derive(Serialize, ToSchema)]
pub struct EventPage<'a> {
    #[schema(value_type = Vec<EventView>)]
    pub data: Vec<EventView<'a>>,
    /// Whether events after the last of this page are already there.
    pub has_more: bool,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller.require_merchant()?;
    let query: ListQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| Error::InvalidRequest(format!("query: {e}")))?;
    let limit = match &query.limit {
        None => LIMIT_DEFAULT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                Error::InvalidRequest(format!("limit must be an integer from 1 to {LIMIT_MAX}"))
            })?,
    };
    let kind = match &query.kind {
        None => None,
        Some(name) => Some(Type::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Type::ALL.iter().map(|t| t.as_str()).collect();
            Error::InvalidRequest(format!("type must be one of {}", known.join(", ")))
        })?),
    };
    let mut conn = state.db.reads.acquire().await?;
    let after = match &query.after {
        None => Position::default(),
        Some(id) => {
            super::get(&mut conn, id)
                .await?
                .ok_or_else(|| Error::InvalidRequest(format!("after: no event {id}")))?
                .position
        }
    };
    drop(conn);
    let mut events = super::after(&state.db, after, kind, limit + 1).await?;
    let has_more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let page = EventPage {
        data: events.iter().map(super::Event::view).collect(),
        has_more,
    };
    Ok(Json(page).into_response())
}
