//! The request id: taken from `x-request-id` (or the trace id of `traceparent`) when the caller
//! sent one, made up otherwise; echoed in the response and in every problem document.

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

fn from_request(req: &ServiceRequest) -> String {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(id) = header(HEADER).filter(|id| !id.is_empty() && id.len() <= 128 && id.is_ascii())
    {
        return id;
    }
    // With tracing on, the request id is the trace id: a problem document leads to its trace.
    if let Some(trace_id) = crate::telemetry::current_trace_id() {
        return trace_id;
    }
    if let Some(trace_id) =
        header("traceparent").and_then(|tp| tp.split('-').nth(1).map(str::to_owned))
        && trace_id.len() == 32
    {
        return trace_id;
    }
    uuid::Uuid::new_v4().simple().to_string()
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = from_request(&req);
    let mut res = CURRENT.scope(id.clone(), next.call(req)).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}
