//! Optional bearer-token protection of the query server.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ServerContext, error};

/// Lets a request through when no token is configured or it carries
/// `Authorization: Bearer <token>` with the query server's token or the instances' own
/// ([`StreamsConfig::inter_instance_token`](crate::config::StreamsConfig::inter_instance_token));
/// answers `401` otherwise.
pub(crate) async fn require_token(
    State(ctx): State<Arc<ServerContext>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &ctx.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g)
            if constant_time_eq(g.as_bytes(), token.as_bytes())
                || ctx
                    .peer_token
                    .as_ref()
                    .is_some_and(|p| constant_time_eq(g.as_bytes(), p.as_bytes())) =>
        {
            next.run(request).await
        }
        _ => {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r.into_response()
        }
    }
}

/// Compares without returning early, so response times do not reveal the token's prefix.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_whole_tokens() {
        assert!(super::constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!super::constant_time_eq(b"s3cret", b"s3cres"));
        assert!(!super::constant_time_eq(b"s3cret", b"s3cre"));
    }
}
