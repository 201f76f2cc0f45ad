//! `GET /metrics` (Prometheus text format) and `GET /health`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ServerContext;
use crate::runtime::State as AppState;

/// Every metric of the instance, gauges read from stores refreshed first.
pub(crate) async fn metrics(State(ctx): State<Arc<ServerContext>>) -> Response {
    let text = ctx.metrics.encode_text();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The instance's state: `200` while it is starting, rebalancing or running, `503` once it is
/// shutting down, stopped or failed.
pub(crate) async fn health(State(ctx): State<Arc<ServerContext>>) -> Response {
    let state = (ctx.state)();
    let healthy = matches!(
        state,
        AppState::Created | AppState::Rebalancing | AppState::Running
    );
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let (_, stores) = ctx.registry.assignment();
    (
        status,
        Json(serde_json::json!({
            "state": format!("{state:?}"),
            "application_id": ctx.app_id,
            "application_server": ctx.endpoint,
            "stores": stores,
        })),
    )
        .into_response()
}
