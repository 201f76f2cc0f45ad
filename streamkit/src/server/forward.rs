//! Queries for keys another instance owns: which partition a key is in (Kafka's default
//! partitioner), and proxying or redirecting the query to the owner.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{ServerContext, error};
use crate::config::QueryForwarding;

/// Set on a forwarded query (to the forwarding instance's address): the owner answers it
/// itself or fails, and never forwards it again.
pub(crate) const FORWARDED_BY: &str = "x-streamkit-forwarded-by";
/// Set on every store answer: the instance that read its store.
pub(crate) const SERVED_BY: &str = "x-streamkit-served-by";

const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client queries are proxied with.
pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

/// Pooled connections are dropped after 5 s idle, before a server's header-read timeout
/// (10 s, `http_thread.rs`) closes them under a request being sent.
pub(crate) fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http()
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), which the Java
/// clients' default partitioner and librdkafka's `murmur2_random` partitioner use.
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a record with these key bytes was produced to.
pub(crate) fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The instances' own credential on a forwarded request. The client's `Authorization` is
/// never passed on: the host comes from the `<application-id>-instances` topic.
fn with_peer_credential(
    ctx: &ServerContext,
    request: axum::http::request::Builder,
) -> axum::http::request::Builder {
    match ctx
        .peer_token
        .as_ref()
        .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
    {
        Some(auth) => request.header(header::AUTHORIZATION, auth),
        None => request,
    }
}

/// Answers a query for a partition `owner` holds: proxies it, or redirects to it.
pub(crate) async fn to_owner(ctx: &Arc<ServerContext>, owner: &str, uri: &Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("http://{owner}{path}");
    if ctx.forwarding == QueryForwarding::Redirect {
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response();
    }
    let mut request = Request::get(&target);
    request = with_peer_credential(ctx, request);
    if let Ok(me) = HeaderValue::from_str(&ctx.endpoint) {
        request = request.header(FORWARDED_BY, me);
    }
    let request = match request.body(Body::empty()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot forward: {e}")),
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, ctx.client.request(request)).await {
        Ok(Ok(response)) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(e)) => error(
            StatusCode::BAD_GATEWAY,
            format!("owner {owner} did not answer: {e}"),
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("owner {owner} did not answer within {FORWARD_TIMEOUT:?}"),
        ),
    }
}

/// Most bytes of one instance's part of an application-wide range page.
const MAX_PART_BYTES: usize = 64 << 20;

/// `GET http://{instance}{path}` as a forwarded query, its body parsed as JSON.
pub(crate) async fn fetch_json(
    ctx: &Arc<ServerContext>,
    instance: &str,
    path: &str,
) -> Result<serde_json::Value, String> {
    let mut request = Request::get(format!("http://{instance}{path}"));
    request = with_peer_credential(ctx, request);
    if let Ok(me) = HeaderValue::from_str(&ctx.endpoint) {
        request = request.header(FORWARDED_BY, me);
    }
    let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(FORWARD_TIMEOUT, ctx.client.request(request))
        .await
        .map_err(|_| format!("no answer within {FORWARD_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_PART_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own test vectors (`UtilsTest.testMurmur2`).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{:?}", std::str::from_utf8(data));
        }
        assert!((0..3).contains(&partition_of(b"foobar", 3)));
    }
}
