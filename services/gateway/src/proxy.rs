//! Forwarding. In order, each cheaper than the next: the client's share of the gateway, the
//! path (checked, decoded, matched against the declared routes), the token, the rate limits and
//! revocations, the body (whole, within a deadline), a slot among the requests waiting on an
//! upstream; then the request goes to a replica over a pooled keep-alive connection, to exactly
//! the path that was checked, and the answer streams back as it comes (SSE included).

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use db_core::cache::limits::RateLimit;
use futures_util::StreamExt;
use service_kit::{ApiError, request_id};

use crate::Gateway;
use crate::routes::{PathError, RequestPath};
use crate::upstream::BaseUrl;

/// Headers that belong to one hop, never forwarded either way.
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
    // Replaced by the gateway's own span context.
    "traceparent",
    "tracestate",
];

/// What a client may claim about where a request comes from, or what the gateway sets itself:
/// dropped from every request, so that services read only what the gateway established.
const SET_BY_GATEWAY: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    request_id::HEADER,
];

/// The rate-limit headers' names, checked once at compile time rather than at every answer.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn with_limit_headers(mut res: HttpResponse, rl: Option<RateLimit>) -> HttpResponse {
    if let Some(rl) = rl {
        let h = res.headers_mut();
        for (name, value) in [
            (RATELIMIT_LIMIT, rl.limit),
            (RATELIMIT_REMAINING, rl.remaining),
            (RATELIMIT_RESET, rl.reset_after),
        ] {
            h.insert(name, HeaderValue::from(value));
        }
    }
    res
}

fn limited(limit: RateLimit) -> HttpResponse {
    with_limit_headers(
        ApiError::RateLimited {
            retry_after: limit.reset_after.max(1),
        }
        .error_response(),
        Some(limit),
    )
}

/// The tightest of the limits that apply (the one with the fewest requests left).
fn tighter(a: RateLimit, b: Option<RateLimit>) -> RateLimit {
    match b {
        Some(b) if b.remaining < a.remaining => b,
        _ => a,
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

/// The URI of `path` on `base`, refused unless it keeps the path and the query byte for byte
/// (so the service is asked for exactly what was authorized).
pub fn upstream_uri(
    base: &BaseUrl,
    path: &RequestPath<'_>,
    query: Option<&str>,
) -> Result<hyper::Uri, ApiError> {
    let mut full =
        String::with_capacity(base.path.len() + path.raw.len() + query.map_or(0, |q| q.len() + 1));
    full.push_str(&base.path);
    full.push_str(path.raw);
    if let Some(q) = query {
        full.push('?');
        full.push_str(q);
    }
    let not_canonical = || ApiError::BadRequest("the path is not in canonical form".into());
    let mut parts = hyper::http::uri::Parts::default();
    parts.scheme = Some(base.scheme.clone());
    parts.authority = Some(base.authority.clone());
    parts.path_and_query = Some(
        hyper::http::uri::PathAndQuery::from_maybe_shared(web::Bytes::from(full))
            .map_err(|_| not_canonical())?,
    );
    let uri = hyper::Uri::from_parts(parts).map_err(|_| not_canonical())?;
    // The URI parser ends a path at a `#` (a fragment): cut, it is refused.
    if uri.path().strip_prefix(base.path.as_str()) != Some(path.raw) || uri.query() != query {
        return Err(not_canonical());
    }
    Ok(uri)
}

/// The client the gateway forwards with: hyper's pooled HTTP/1.1 client (reqwest is built on
/// it), plain HTTP or TLS as the replica's URL says. Not reqwest: the hop is the gateway's
/// whole job, and reqwest spent an eighth of the gateway's CPU on it (the URL parsed twice
/// more per request, its redirect and retry layers, a copy of the headers kept for a retry).
pub type Forwarder = hyper_util::client::legacy::Client<
    ConnectWithin<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>>,
    http_body_util::Full<web::Bytes>,
>;

/// How long a new upstream connection may take, name lookup, TCP and TLS together. Past it the
/// attempt counts as a refused connection: the replica's breaker hears of it and another
/// replica is asked, whatever the method.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A forwarding client (one per worker thread: see [`Gateway::forwarder`]): idle connections
/// kept 60 s (under the services' 75 s keep-alive), 64 per replica, TCP_NODELAY and keep-alive
/// probes (a replica gone silently is noticed in about a minute, not at the route's deadline),
/// connecting within [`CONNECT_TIMEOUT`]. It ignores `HTTP_PROXY` and the like: the replicas
/// are asked directly, as the background work asks them.
pub fn forwarder(tls: rustls::ClientConfig) -> Forwarder {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use std::time::Duration;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(15)));
    http.set_keepalive_interval(Some(Duration::from_secs(15)));
    http.set_keepalive_retries(Some(3));
    // `https://` replicas go through the TLS layer around it.
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .pool_timer(TokioTimer::new())
        .build(ConnectWithin(connector, CONNECT_TIMEOUT))
}

/// A connector whose every connection is made within a time (the inner connector's own
/// timeout covers TCP alone, not the name lookup or the TLS handshake). A connection that takes
/// longer fails as a connection error. Not tower's `Timeout`: its future is not `Unpin`, which
/// hyper's client asks of a connector's.
#[derive(Clone)]
pub struct ConnectWithin<C>(C, std::time::Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<hyper::Uri> for ConnectWithin<C>
where
    C: tower_service::Service<hyper::Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        let within = self.1;
        Box::pin(async move {
            match tokio::time::timeout(within, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upstream connection was not made in time",
                )
                .into()),
            }
        })
    }
}

/// The headers a request goes upstream with: the client's, less what belongs to one hop or is
/// the gateway's to set; the token of the media cookie; the request id, the client's address,
/// the trace context.
fn upstream_headers(
    req: &HttpRequest,
    from_cookie: Option<&str>,
    request_id: &str,
    client: &crate::clients::Client,
) -> Result<hyper::HeaderMap, ApiError> {
    let mut headers = hyper::HeaderMap::with_capacity(req.headers().len() + 4);
    for (name, value) in req.headers() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || SET_BY_GATEWAY.contains(&n) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            hyper::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    if let Some(token) = from_cookie {
        let value = hyper::header::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| ApiError::InvalidToken)?;
        headers.insert(hyper::header::AUTHORIZATION, value);
    }
    let own = |v: &str| hyper::header::HeaderValue::try_from(v).map_err(ApiError::internal);
    headers.insert(request_id::HEADER, own(request_id)?);
    headers.insert(
        service_kit::client::FORWARDED_FOR,
        client.forwarded_for.clone(),
    );
    // The service's span continues the gateway's: one trace per request (with tracing off,
    // the caller's own trace context goes on as it came).
    match service_kit::telemetry::traceparent() {
        Some(tp) => {
            headers.insert("traceparent", own(&tp)?);
        }
        None => {
            if let Some(tp) = req.headers().get("traceparent")
                && let Ok(tp) = hyper::header::HeaderValue::from_bytes(tp.as_bytes())
            {
                headers.insert("traceparent", tp);
            }
        }
    }
    Ok(headers)
}

pub async fn forward(
    req: HttpRequest,
    mut payload: web::Payload,
    gw: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    // Saturated: refuse before spending anything (no token check, no Redis round trip), so that
    // a refusal costs microseconds and an overload does not feed itself.
    if gw.in_flight.available_permits() == 0 {
        metrics::counter!("gateway_shed_total").increment(1);
        service_kit::server::drain_small_body(req.headers(), &mut payload).await;
        return Ok(ApiError::shed());
    }
    let client = gw.config.trusted_proxies.client_of(&req);
    let Some(_place) = gw.occupancy.enter(&client.key) else {
        metrics::counter!("gateway_client_cap_total").increment(1);
        return Err(ApiError::RateLimited { retry_after: 1 });
    };
    let path = RequestPath::parse(req.path()).map_err(|e| match e {
        PathError::Ambiguous(why) => ApiError::BadRequest(why.to_owned()),
        PathError::NoRoute => ApiError::NotFound,
    })?;
    let snapshot = gw.directory.snapshot();
    let Some(route) = snapshot.table.resolve(req.method(), &path) else {
        let allowed = snapshot.table.allowed(&path);
        return Err(if allowed.is_empty() {
            ApiError::NotFound
        } else {
            ApiError::MethodNotAllowed {
                allow: allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        });
    };
    // A cached verification costs a lookup; the limits are counted here and shared in the
    // background: no round trip.
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let from_cookie = match bearer {
        None if !route.public => media_cookie(&req, &path),
        _ => None,
    };
    let claims = if route.public
        && !(route.optional_token
            && req
                .headers()
                .contains_key(actix_web::http::header::AUTHORIZATION))
    {
        None
    } else {
        Some(
            bearer
                .as_deref()
                .or(from_cookie.as_deref())
                .ok_or(ApiError::Unauthorized)
                .and_then(|token| gw.keys.verify(token.trim())),
        )
    };
    // A logged-out (or deleted) session's requests count against its address only: they
    // leave nothing keyed by a user who may no longer exist.
    let user = match &claims {
        Some(Ok(c)) if !gw.revocations.is_revoked(c.sid) => Some(c.sub),
        _ => None,
    };
    let gate = gw.limits.gate(
        &client.key,
        user,
        60,
        gw.config.ip_limit_per_min,
        gw.config.user_limit_per_min,
    );
    for limit in std::iter::once(gate.ip).chain(gate.user) {
        if limit.exceeded {
            return Ok(limited(limit));
        }
    }
    match &claims {
        Some(Err(e)) => return Err(clone_auth_error(e)),
        Some(Ok(c)) if gw.revocations.is_revoked(c.sid) => return Err(ApiError::InvalidToken),
        _ => {}
    }
    let rl = tighter(gate.ip, gate.user);
    let max_body = route.max_body.unwrap_or(gw.config.max_body_bytes);
    if req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0)
        > max_body
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = tokio::time::timeout(gw.config.body_timeout, read_body(payload, max_body))
        .await
        .map_err(|_| {
            metrics::counter!("gateway_body_timeouts_total").increment(1);
            ApiError::RequestTimeout
        })??;
    // Only now, with everything in hand, a slot among the requests waiting on an upstream
    // (operations that may take minutes have slots of their own).
    let slots = if route.timeout > crate::routes::DEFAULT_TIMEOUT {
        &gw.long_in_flight
    } else {
        &gw.in_flight
    };
    let Ok(_slot) = slots.try_acquire() else {
        // Counted, not logged: under overload a log line per refusal would add to it.
        metrics::counter!("gateway_shed_total").increment(1);
        return Ok(ApiError::shed());
    };
    let service = gw
        .upstreams
        .get(route.service)
        .ok_or(ApiError::BadGateway(route.service))?;
    let request_id = request_id::current().unwrap_or_default();
    let method =
        hyper::Method::from_bytes(req.method().as_str().as_bytes()).map_err(ApiError::internal)?;
    // The headers, built for the first replica asked (again only for a second one).
    let mut headers = Some(upstream_headers(
        &req,
        from_cookie.as_deref(),
        &request_id,
        &client,
    )?);
    // A refused connection means the request never reached that replica: another one may be
    // asked, whatever the method. A read whose replica went away under it (a crash, a kill:
    // the connection closed before any answer) is asked of another one too; a write is not,
    // since it may have been done.
    let safe = method == hyper::Method::GET || method == hyper::Method::HEAD;
    // One deadline for the request, however many replicas are asked, its answer's body
    // included: one timer.
    let mut deadline = Box::pin(tokio::time::sleep(route.timeout));
    for replica in service.pick(2) {
        let base = replica
            .base
            .as_ref()
            .ok_or(ApiError::BadGateway(service.name))?;
        let mut out = hyper::Request::new(http_body_util::Full::new(body.clone()));
        *out.method_mut() = method.clone();
        *out.uri_mut() = upstream_uri(base, &path, req.uri().query())?;
        *out.headers_mut() = match headers.take() {
            Some(h) => h,
            None => upstream_headers(&req, from_cookie.as_deref(), &request_id, &client)?,
        };
        out.headers_mut()
            .insert(hyper::header::HOST, base.host.clone());
        let answer = tokio::select! {
            biased;
            answer = gw.forwarder().request(out) => answer,
            () = &mut deadline => return Err(ApiError::GatewayTimeout(service.name)),
        };
        match answer {
            Ok(res) => {
                replica.breaker.success();
                return Ok(with_limit_headers(stream_back(res, deadline), Some(rl)));
            }
            // Refused (whatever the method), or a read's connection closed before any answer.
            Err(e) if e.is_connect() || safe => {
                tracing::warn!(service = service.name, replica = %replica.url, error = %e, "upstream failed before answering; trying another");
                metrics::counter!("gateway_upstream_failures_total", "service" => service.name)
                    .increment(1);
                replica.breaker.failure(&e);
            }
            Err(e) => {
                replica.breaker.failure(&e);
                return Err(ApiError::BadGateway(service.name));
            }
        }
    }
    Err(ApiError::BadGateway(service.name))
}

/// An image download (`GET /api/v1/media/…`) from a page may carry its access token in the
/// media cookie instead of a header (`<img>` sends no headers): see [`service_kit::session`].
/// Only there, and only for reads; the cookie is `HttpOnly`, `SameSite=Strict` and lives as
/// long as the token in it.
fn media_cookie(req: &HttpRequest, path: &RequestPath<'_>) -> Option<String> {
    use service_kit::session::{MEDIA_COOKIE, MEDIA_PATH};
    let under_media = path
        .raw
        .strip_prefix(MEDIA_PATH)
        .is_some_and(|rest| rest.starts_with('/'));
    if req.method() != actix_web::http::Method::GET || !under_media {
        return None;
    }
    req.cookie(MEDIA_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The token errors the gateway answers with.
fn clone_auth_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::Unauthorized => ApiError::Unauthorized,
        _ => ApiError::InvalidToken,
    }
}

/// `GET /api/v1/openapi.json`: the merged document, from memory (rate-limited like the rest).
pub async fn openapi(req: HttpRequest, gw: web::Data<Gateway>) -> Result<HttpResponse, ApiError> {
    let client = gw.config.trusted_proxies.client_of(&req);
    let gate = gw.limits.gate(
        &client.key,
        None,
        60,
        gw.config.ip_limit_per_min,
        gw.config.user_limit_per_min,
    );
    if gate.ip.exceeded {
        return Ok(limited(gate.ip));
    }
    let snapshot = gw.directory.snapshot();
    if snapshot.document.is_empty() {
        return Err(ApiError::Unavailable { retry_after: 1 });
    }
    let mut res = HttpResponse::Ok();
    if !snapshot.missing.is_empty() {
        res.insert_header(("x-dream-missing-services", snapshot.missing.join(",")));
    }
    Ok(res
        .content_type("application/json")
        .body(snapshot.document.clone()))
}

/// The upstream's status, headers and body, streamed chunk by chunk as they arrive, until the
/// request's deadline. A body of known length keeps it (HTTP/1.0 clients cannot take a
/// chunked one); an event stream cut by the upstream (or the deadline) ends with an `error`
/// event, never a silent end.
fn stream_back(
    res: hyper::Response<hyper::body::Incoming>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
) -> HttpResponse {
    use http_body_util::BodyExt;
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    for (name, value) in res.headers() {
        // Nor the service's `Date`: the gateway's server writes its own, as nginx does.
        if HOP_BY_HOP.contains(&name.as_str())
            || name.as_str() == request_id::HEADER
            || name == hyper::header::DATE
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append_header((n, v));
        }
    }
    let events = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let len = hyper::body::Body::size_hint(res.body()).exact();
    let body = until(deadline, res.into_body().into_data_stream());
    if events && len.is_none() {
        let body = body.scan(false, |cut, chunk| {
            let item = match chunk {
                _ if *cut => None,
                Ok(bytes) => Some(Ok::<_, actix_web::Error>(bytes)),
                Err(e) => {
                    *cut = true;
                    tracing::warn!(error = %e, "upstream event stream cut");
                    Some(Ok(web::Bytes::from_static(UPSTREAM_CUT_EVENT)))
                }
            };
            std::future::ready(item)
        });
        return out.streaming(body);
    }
    let body = if service_kit::server::crowded() {
        futures_util::future::Either::Left(in_pieces(body))
    } else {
        futures_util::future::Either::Right(body)
    };
    match len {
        Some(len) => out.body(actix_web::body::SizedStream::new(len, body)),
        None => out.streaming(body),
    }
}

/// An answer's body until the request's deadline: past it, an error (the client's connection
/// is cut, or an event stream gets its `error` event) instead of waiting on the upstream.
fn until<S>(
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    body: S,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>>
where
    S: futures_util::Stream<Item = Result<web::Bytes, hyper::Error>> + Unpin,
{
    futures_util::stream::unfold(Some((body, deadline)), |state| async move {
        let (mut body, mut deadline) = state?;
        tokio::select! {
            biased;
            chunk = body.next() => {
                chunk.map(|c| (c.map_err(std::io::Error::other), Some((body, deadline))))
            }
            () = &mut deadline => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upstream's answer outlasted the route's timeout",
                )),
                None,
            )),
        }
    })
}

/// The upstream's chunks (as large as its connection's read buffer: 16 KiB and more) cut
/// without copying into pieces the client connection's write buffer takes whole (see
/// [`service_kit::server::RESPONSE_PIECE`]): what a connection keeps between requests stays the
/// same whatever it forwarded. For crowded gateways.
fn in_pieces<E>(
    body: impl futures_util::Stream<Item = Result<web::Bytes, E>>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, E>> {
    body.flat_map(|chunk| futures_util::stream::iter(Pieces(Some(chunk))))
}

/// One upstream chunk, handed out [`service_kit::server::RESPONSE_PIECE`] bytes at a time.
struct Pieces<E>(Option<Result<web::Bytes, E>>);

impl<E> Iterator for Pieces<E> {
    type Item = Result<web::Bytes, E>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.0.take()? {
            Ok(mut rest) if rest.len() > service_kit::server::RESPONSE_PIECE => {
                let piece = rest.split_to(service_kit::server::RESPONSE_PIECE);
                self.0 = Some(Ok(rest));
                Some(Ok(piece))
            }
            last => Some(last),
        }
    }
}

/// What a client of an event stream gets when the service writing it goes away mid-stream.
pub const UPSTREAM_CUT_EVENT: &[u8] =
    b"event: error\ndata: {\"code\":\"upstream_failed\",\"detail\":\"the stream was cut; ask again to resume\"}\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> BaseUrl {
        BaseUrl::parse(url).unwrap_or_else(|| panic!("{url} parses"))
    }

    #[actix_web::test]
    async fn a_body_in_pieces_is_the_body_and_each_piece_fits_the_write_buffer() {
        use service_kit::server::RESPONSE_PIECE;
        let chunk = |n: usize, at: u8| -> Result<web::Bytes, &'static str> {
            Ok((0..n)
                .map(|i| at.wrapping_add(i as u8))
                .collect::<Vec<u8>>()
                .into())
        };
        for sizes in [
            vec![0],
            vec![1],
            vec![RESPONSE_PIECE],
            vec![RESPONSE_PIECE + 1],
            vec![22_000],
            vec![16_384, 5_616, 3 * RESPONSE_PIECE],
            vec![16_384, 16_384, 22_000],
            vec![1_000, 7_000, 100, 9_000],
        ] {
            let upstream: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| chunk(n, i as u8))
                .collect();
            let whole: Vec<u8> = upstream
                .iter()
                .flat_map(|c| c.clone().unwrap_or_default())
                .collect();
            let pieces: Vec<_> = in_pieces(futures_util::stream::iter(upstream))
                .collect()
                .await;
            assert!(
                pieces
                    .iter()
                    .all(|p| p.as_ref().is_ok_and(|p| p.len() <= RESPONSE_PIECE)),
                "{sizes:?}"
            );
            // actix's write loop: a response head, then pieces appended while the buffer holds
            // less than the flush size; flushed (emptied) once it holds that much. The buffer
            // never needs more than it starts with.
            use service_kit::server::WRITE_BUFFER;
            for head in [200, 600, RESPONSE_PIECE - 1] {
                let mut held = head;
                for p in pieces.iter().flatten() {
                    if held >= RESPONSE_PIECE {
                        held = 0;
                    }
                    held += p.len();
                    assert!(
                        held <= WRITE_BUFFER,
                        "{sizes:?}, head {head}: {held} bytes held"
                    );
                }
            }
            let joined: Vec<u8> = pieces
                .into_iter()
                .flat_map(|p| p.unwrap_or_default())
                .collect();
            assert_eq!(joined, whole, "{sizes:?}");
        }
        // An upstream error goes on as it came, after the pieces before it.
        let cut: Vec<_> = in_pieces(futures_util::stream::iter([chunk(20_000, 0), Err("cut")]))
            .collect()
            .await;
        assert_eq!(cut.len(), 20_000_usize.div_ceil(RESPONSE_PIECE) + 1);
        assert_eq!(cut.last(), Some(&Err("cut")));
    }

    #[tokio::test]
    async fn a_connection_not_made_in_time_is_a_connection_error() {
        use rustls_platform_verifier::ConfigVerifierExt;
        service_kit::testing::install_crypto();
        // A replica that takes the TCP connection and never answers the TLS handshake.
        let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = stalled.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = stalled.accept().await {
                open.push(conn);
            }
        });
        let client = forwarder(rustls::ClientConfig::with_platform_verifier().unwrap());
        let mut request = hyper::Request::new(http_body_util::Full::new(web::Bytes::new()));
        *request.uri_mut() = format!("https://{addr}/health").parse().unwrap();
        let started = std::time::Instant::now();
        let asked =
            tokio::time::timeout(std::time::Duration::from_secs(10), client.request(request))
                .await
                .expect("refused within the connect timeout, not left waiting");
        assert!(asked.as_ref().is_err_and(|e| e.is_connect()), "{asked:?}");
        assert!(started.elapsed() >= CONNECT_TIMEOUT);
        held.abort();
    }

    /// The `Host` made once per replica is the one hyper's client would have written: the
    /// authority, without a default port.
    #[test]
    fn a_replica_is_asked_for_by_its_authority() {
        for (url, host) in [
            ("http://127.0.0.1:8082", "127.0.0.1:8082"),
            ("http://chat", "chat"),
            ("http://chat:80/prefix/", "chat"),
            ("https://chat.internal:443", "chat.internal"),
            ("https://chat.internal:8443", "chat.internal:8443"),
            ("http://[::1]:8082", "[::1]:8082"),
        ] {
            assert_eq!(base(url).host, host, "{url}");
        }
    }

    #[test]
    fn the_forwarded_uri_keeps_the_checked_path() {
        let forwarded = |base_url: &str, p: &str, query: Option<&str>| {
            RequestPath::parse(p).ok().map(|p| {
                upstream_uri(&base(base_url), &p, query)
                    .map(|u| u.to_string())
                    .map_err(|e| e.to_string())
            })
        };
        assert_eq!(
            forwarded(
                "http://127.0.0.1:8082",
                "/api/v1/characters/sophia",
                Some("q=l'amour&x=1")
            ),
            Some(Ok(
                "http://127.0.0.1:8082/api/v1/characters/sophia?q=l'amour&x=1".to_owned()
            ))
        );
        // A base with a prefix keeps it in front.
        assert_eq!(
            forwarded("http://10.0.0.1/chat/", "/api/v1/characters/sophia", None),
            Some(Ok(
                "http://10.0.0.1/chat/api/v1/characters/sophia".to_owned()
            ))
        );
        // What the URI keeps, it keeps byte for byte (no re-encoding on the way)...
        assert_eq!(
            forwarded("http://127.0.0.1:8082", "/api/v1/characters/a\"b%20c", None),
            Some(Ok(
                "http://127.0.0.1:8082/api/v1/characters/a\"b%20c".to_owned()
            ))
        );
        // ...and what it would cut (a fragment) is refused rather than changed.
        assert!(
            forwarded("http://127.0.0.1:8082", "/api/v1/characters/a#b", None)
                .is_some_and(|r| r.is_err())
        );
        assert!(
            forwarded(
                "http://127.0.0.1:8082",
                "/api/v1/characters/a",
                Some("x=1#y")
            )
            .is_some_and(|r| r.is_err())
        );
    }
}
