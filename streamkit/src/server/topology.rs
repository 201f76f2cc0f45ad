//! `GET /topology`: `describe()` output, or the topology as a Mermaid or Graphviz diagram.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ServerContext, error};

#[derive(Deserialize)]
pub(crate) struct Format {
    format: Option<String>,
}

/// `?format=text` (default: Kafka Streams' describe format), `mermaid` or `dot`.
pub(crate) async fn topology(
    State(ctx): State<Arc<ServerContext>>,
    Query(f): Query<Format>,
) -> Response {
    let d = ctx.topology.describe();
    let body = match f.format.as_deref().unwrap_or("text") {
        "text" => d.to_string(),
        "mermaid" => d.to_mermaid(),
        "dot" => d.to_dot(),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?}; use text, mermaid or dot"),
            );
        }
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
