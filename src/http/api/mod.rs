//! REST API v1 (`/api/v1`): JSON, bearer tokens with roles.

use axum::Router;
use axum::routing::get;

use super::AppState;

pub mod payments;

pub fn router() -> Router<AppState> {
    Router::new().route("/payments/{order_id}", get(payments::payment_of_order))
}
