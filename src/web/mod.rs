//! The browser pages Till serves: the operations console at `/admin`.

pub mod admin;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().merge(admin::router())
}
