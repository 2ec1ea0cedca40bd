//! Forwarding: check the token and the rate limits, pick a replica, send the request over a
//! pooled keep-alive connection, and stream the answer back as it comes (SSE included).

use std::net::IpAddr;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use db_core::cache::limits::RateLimit;
use futures_util::StreamExt;
use service_kit::{ApiError, request_id};

use crate::{Gateway, routes};

/// Headers that belong to one hop, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    // Replaced by the gateway's own span context below.
    "traceparent",
    "tracestate",
];

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip())
        .map_or_else(|| "unknown".to_owned(), |ip: IpAddr| ip.to_string())
}

fn with_limit_headers(mut res: HttpResponse, rl: Option<RateLimit>) -> HttpResponse {
    if let Some(rl) = rl {
        let h = res.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", rl.limit),
            ("ratelimit-remaining", rl.remaining),
            ("ratelimit-reset", rl.reset_after),
        ] {
            h.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    res
}

/// The tightest of the limits that apply (the one with the fewest requests left).
fn tighter(a: Option<RateLimit>, b: Option<RateLimit>) -> Option<RateLimit> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
        (a, b) => a.or(b),
    }
}

async fn read_body(mut payload: web::Payload, max: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > max {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    gw: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    let route = routes::resolve(req.method(), req.path()).ok_or(ApiError::NotFound)?;
    let Ok(_slot) = gw.in_flight.try_acquire() else {
        // Counted, not logged: under overload a log line per refusal would add to it.
        metrics::counter!("gateway_shed_total").increment(1);
        return Ok(ApiError::Unavailable { retry_after: 1 }.problem());
    };
    // The token first (a cached verification costs a lookup), then every Redis check of the
    // request in one round trip: the IP's and the user's rate limits and the logout list.
    let claims = if route.public {
        None
    } else {
        Some(
            req.headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthorized)
                .and_then(|token| gw.keys.verify(token.trim())),
        )
    };
    let caller = match &claims {
        Some(Ok(c)) => Some((c.sub, c.sid)),
        _ => None,
    };
    let gate = gw
        .cache
        .gate(
            &client_ip(&req),
            caller,
            60,
            gw.config.ip_limit_per_min,
            gw.config.user_limit_per_min,
        )
        .await;
    for limit in [gate.ip, gate.user].into_iter().flatten() {
        if limit.exceeded {
            return Ok(with_limit_headers(
                ApiError::RateLimited {
                    retry_after: limit.reset_after,
                }
                .error_response(),
                Some(limit),
            ));
        }
    }
    if let Some(Err(e)) = claims {
        return Err(e);
    }
    if gate.revoked == Some(true) {
        return Err(ApiError::InvalidToken);
    }
    let rl = tighter(gate.ip, gate.user);
    if req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0)
        > gw.config.max_body_bytes
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = read_body(payload, gw.config.max_body_bytes).await?;
    let service = gw
        .upstreams
        .get(route.service)
        .ok_or(ApiError::BadGateway(route.service))?;
    // Retried only when idempotent, and only when the connection itself failed.
    let tries = if idempotent(req.method()) { 2 } else { 1 };
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let request_id = request_id::current().unwrap_or_default();
    for replica in service.pick(tries) {
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(ApiError::internal)?;
        let mut out = gw
            .client
            .request(method, format!("{}{path}", replica.url))
            .timeout(route.timeout)
            .body(body.clone());
        for (name, value) in req.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        out = out
            .header(request_id::HEADER, &request_id)
            .header("x-forwarded-for", client_ip(&req));
        // The service's span continues the gateway's: one trace per request.
        if let Some(tp) = service_kit::telemetry::traceparent() {
            out = out.header("traceparent", tp);
        } else if let Some(tp) = req.headers().get("traceparent") {
            out = out.header("traceparent", tp.as_bytes());
        }
        match out.send().await {
            Ok(res) => {
                replica.breaker.success();
                return Ok(with_limit_headers(stream_back(res), rl));
            }
            Err(e) if e.is_connect() => {
                tracing::warn!(service = service.name, replica = %replica.url, error = %e, "upstream refused; trying another");
                metrics::counter!("gateway_upstream_failures_total", "service" => service.name)
                    .increment(1);
                replica.breaker.failure(&e);
            }
            Err(e) if e.is_timeout() => return Err(ApiError::GatewayTimeout(service.name)),
            Err(e) => {
                replica.breaker.failure(&e);
                return Err(ApiError::BadGateway(service.name));
            }
        }
    }
    Err(ApiError::BadGateway(service.name))
}

/// The upstream's status, headers and body, streamed chunk by chunk as they arrive.
fn stream_back(res: reqwest::Response) -> HttpResponse {
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    for (name, value) in res.headers() {
        if HOP_BY_HOP.contains(&name.as_str()) || name.as_str() == request_id::HEADER {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append_header((n, v));
        }
    }
    out.streaming(res.bytes_stream())
}
