//! The request id: taken from `x-request-id` (or the trace id of `traceparent`) when the caller
//! sent a well-formed one, made up otherwise; echoed in the response, the logs and every
//! problem document. Well-formed means 16–64 letters, digits and `-` (a UUID, a trace id): a
//! client cannot put anything else into our logs or bodies through it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The id a request is known by: its caller's well-formed one, else its trace id, else a new one.
pub(crate) fn from_request(req: &ServiceRequest) -> String {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(id) = header(HEADER).filter(|id| well_formed(id)) {
        return id;
    }
    // With tracing on, the request id is the trace id: a problem document leads to its trace.
    if let Some(trace_id) = crate::telemetry::current_trace_id() {
        return trace_id;
    }
    if let Some(trace_id) =
        header("traceparent").and_then(|tp| tp.split('-').nth(1).map(str::to_owned))
        && trace_id.len() == 32
        && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return trace_id;
    }
    // Encoded in place rather than through the formatting machinery (`to_string`).
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// 16–64 ASCII letters, digits or `-`.
pub fn well_formed(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Runs `fut` as the request `id` ([`current`] answers it inside).
pub(crate) async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// Echoes the request id in the response.
pub(crate) fn stamp<B>(res: &mut ServiceResponse<B>, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        const NAME: HeaderName = HeaderName::from_static(HEADER);
        res.headers_mut().insert(NAME, value);
    }
}

/// The request id as a middleware of its own (the admin listener's; the public listener's
/// requests get theirs in [`crate::server`]'s one layer).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = from_request(&req);
    let mut res = scope(id.clone(), next.call(req)).await?;
    stamp(&mut res, &id);
    Ok(res)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_well_formed_ids_are_taken() {
        use super::well_formed;
        assert!(well_formed("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(well_formed("2f1c5d3e-9a0b-4c1d-8e2f-3a4b5c6d7e8f"));
        for bad in [
            "",
            "short",
            "a b c d e f g h i j",
            "<script>alert(1)</script>",
            "x\nInjected: yes...",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        assert!(!well_formed(&"a".repeat(65)));
    }
}
