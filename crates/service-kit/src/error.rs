//! One error type for every service, rendered as `application/problem+json` (RFC 9457) with a
//! stable snake_case code, an explicit status per variant and the request id. 5xx bodies say
//! nothing about the cause; the cause goes to the log.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use db_core::DbError;
use serde::Serialize;

use crate::request_id;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: unreadable JSON, a wrong type, a bad query string.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid input.
    #[error("{field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    #[error("authentication required")]
    Unauthorized,
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Absent, or not the caller's: the two are never told apart.
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not (`allow` lists the ones that do).
    #[error("this path takes {allow}")]
    MethodNotAllowed { allow: String },
    /// The request conflicts with the current state; which conflict, the code says.
    #[error("{0}")]
    Conflict(Conflict),
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// A body in a form the API does not take (a compressed one: decompressing it would cost
    /// far more than it took to send).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client did not send its body in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("temporarily unavailable; retry in {retry_after} s")]
    Unavailable { retry_after: u64 },
    /// The gateway could not reach a healthy replica of the service.
    #[error("the {0} service cannot be reached")]
    BadGateway(&'static str),
    /// The service did not answer in time.
    #[error("the {0} service did not answer in time")]
    GatewayTimeout(&'static str),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Every code a client can see, for docs and for the test that reaches each one.
    pub const CODES: [&'static str; 23] = [
        "bad_request",
        "validation_failed",
        "unauthorized",
        "invalid_token",
        "invalid_credentials",
        "not_found",
        "method_not_allowed",
        "email_taken",
        "client_id_reused",
        "too_many_photo_jobs",
        "generation_in_progress",
        "nothing_to_answer",
        "too_many_characters",
        "nothing_to_continue",
        "characters_message",
        "rate_limited",
        "payload_too_large",
        "unsupported_media_type",
        "request_timeout",
        "service_unavailable",
        "upstream_unavailable",
        "upstream_timeout",
        "internal",
    ];

    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field,
            message: message.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidToken => "invalid_token",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(c) => c.code(),
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Unavailable { .. } => "service_unavailable",
            ApiError::BadGateway(_) => "upstream_unavailable",
            ApiError::GatewayTimeout(_) => "upstream_timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "Bad request",
            ApiError::Validation { .. } => "Invalid input",
            ApiError::Unauthorized | ApiError::InvalidToken | ApiError::InvalidCredentials => {
                "Unauthorized"
            }
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::PayloadTooLarge => "Payload too large",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::RequestTimeout => "Request timeout",
            ApiError::Unavailable { .. } => "Service unavailable",
            ApiError::BadGateway(_) => "Bad gateway",
            ApiError::GatewayTimeout(_) => "Gateway timeout",
            ApiError::Internal(_) => "Internal error",
        }
    }
}

/// The conflicts a client can run into, each with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this client_id was already used for another conversation")]
    ClientIdReused,
    #[error("at most {max} photos can be on their way at once; wait for one to arrive")]
    TooManyPhotoJobs { max: i64 },
    #[error("a reply is being written in this conversation; try again in a moment")]
    GenerationInProgress,
    #[error("there is nothing to answer: the user has not written yet")]
    NothingToAnswer,
    #[error("at most {max} characters of one's own; delete one first")]
    TooManyCharacters { max: i64 },
    #[error("there is nothing to continue: the user's latest message has no reply yet")]
    NothingToContinue,
    #[error(
        "the character wrote this message: a reply changes by regenerating it, continuing it or picking one of its alternatives"
    )]
    CharactersMessage,
}

impl Conflict {
    pub fn code(&self) -> &'static str {
        match self {
            Conflict::EmailTaken => "email_taken",
            Conflict::ClientIdReused => "client_id_reused",
            Conflict::TooManyPhotoJobs { .. } => "too_many_photo_jobs",
            Conflict::GenerationInProgress => "generation_in_progress",
            Conflict::NothingToAnswer => "nothing_to_answer",
            Conflict::TooManyCharacters { .. } => "too_many_characters",
            Conflict::NothingToContinue => "nothing_to_continue",
            Conflict::CharactersMessage => "characters_message",
        }
    }
}

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub request_id: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized | ApiError::InvalidToken | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            let request_id = request_id::current().unwrap_or_default();
            // The cause chain, without a backtrace (`RUST_BACKTRACE` would put one in every line).
            let error = match self {
                ApiError::Internal(e) => format!("{e:#}"),
                other => other.to_string(),
            };
            tracing::error!(code = self.code(), %request_id, %error, "request failed");
        }
        self.problem()
    }
}

impl ApiError {
    /// The problem+json answer, without logging: for refusals that are expected and counted
    /// elsewhere (load shedding), where a log line per request would add to the overload.
    pub fn problem(&self) -> HttpResponse {
        let body = self.document(request_id::current().unwrap_or_default());
        self.head()
            .body(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The answer of a saturated server (503, `Retry-After: 1`, no request id: none was
    /// given), its document written once: under overload a refusal clones a pointer instead
    /// of writing a document.
    pub fn shed() -> HttpResponse {
        static BODY: std::sync::OnceLock<actix_web::web::Bytes> = std::sync::OnceLock::new();
        let refusal = ApiError::Unavailable { retry_after: 1 };
        let body = BODY.get_or_init(|| {
            serde_json::to_vec(&refusal.document(String::new()))
                .unwrap_or_default()
                .into()
        });
        refusal.head().body(body.clone())
    }

    /// The status and headers of this error's answer.
    fn head(&self) -> actix_web::HttpResponseBuilder {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            ApiError::RateLimited { retry_after } | ApiError::Unavailable { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Unauthorized | ApiError::InvalidToken => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        response
    }

    /// The problem document of this error.
    fn document(&self, request_id: String) -> Problem {
        let status = self.status_code();
        let detail = if status.is_server_error() {
            match self {
                ApiError::Unavailable { .. }
                | ApiError::BadGateway(_)
                | ApiError::GatewayTimeout(_) => self.to_string(),
                _ => "Something went wrong on our side. The request id identifies it in our logs."
                    .to_owned(),
            }
        } else {
            self.to_string()
        };
        Problem {
            kind: format!("https://dream.invalid/problems/{}", self.code()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail,
            code: self.code().to_owned(),
            field: match self {
                ApiError::Validation { field, .. } => Some((*field).to_owned()),
                _ => None,
            },
            request_id,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable { retry_after: 1 }
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<db_core::MatchError> for ApiError {
    fn from(e: db_core::MatchError) -> Self {
        match e {
            db_core::MatchError::UnknownCharacter => ApiError::NotFound,
            db_core::MatchError::Db(e) => e.into(),
        }
    }
}

impl From<db_core::SendError> for ApiError {
    fn from(e: db_core::SendError) -> Self {
        match e {
            db_core::SendError::NoMatch => ApiError::NotFound,
            db_core::SendError::Db(e) => e.into(),
        }
    }
}

impl From<db_core::CreateUserError> for ApiError {
    fn from(e: db_core::CreateUserError) -> Self {
        match e {
            db_core::CreateUserError::EmailTaken => ApiError::Conflict(Conflict::EmailTaken),
            db_core::CreateUserError::Db(e) => e.into(),
        }
    }
}

impl From<db_core::QueryError> for ApiError {
    fn from(e: db_core::QueryError) -> Self {
        DbError::Query(e).into()
    }
}

/// Handlers return this.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn render(e: ApiError) -> (StatusCode, Problem, actix_web::http::header::HeaderMap) {
        let res = e.error_response();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().try_into_bytes().unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}")),
            headers,
        )
    }

    #[test]
    fn every_variant_renders_a_problem_with_its_code() {
        let all = [
            ApiError::BadRequest("x".into()),
            ApiError::validation("email", "bad"),
            ApiError::Unauthorized,
            ApiError::InvalidToken,
            ApiError::InvalidCredentials,
            ApiError::NotFound,
            ApiError::MethodNotAllowed {
                allow: "GET".into(),
            },
            ApiError::Conflict(Conflict::EmailTaken),
            ApiError::Conflict(Conflict::ClientIdReused),
            ApiError::Conflict(Conflict::TooManyPhotoJobs { max: 5 }),
            ApiError::Conflict(Conflict::GenerationInProgress),
            ApiError::Conflict(Conflict::NothingToAnswer),
            ApiError::Conflict(Conflict::TooManyCharacters { max: 200 }),
            ApiError::Conflict(Conflict::NothingToContinue),
            ApiError::Conflict(Conflict::CharactersMessage),
            ApiError::RateLimited { retry_after: 7 },
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType("gzip".into()),
            ApiError::RequestTimeout,
            ApiError::Unavailable { retry_after: 1 },
            ApiError::BadGateway("chat"),
            ApiError::GatewayTimeout("chat"),
            ApiError::internal(anyhow::anyhow!("secret cause: password=hunter2")),
        ];
        let codes: Vec<&str> = all.iter().map(ApiError::code).collect();
        assert_eq!(codes, ApiError::CODES);
        for e in all {
            let code = e.code();
            let (status, problem, headers) = render(e);
            assert_eq!(
                headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/problem+json")
            );
            assert_eq!(
                (problem.code.as_str(), problem.status),
                (code, status.as_u16())
            );
            assert!(status.is_client_error() || status.is_server_error());
            if code == "internal" {
                assert!(!problem.detail.contains("hunter2"), "5xx bodies are opaque");
            }
            if matches!(code, "rate_limited" | "service_unavailable") {
                assert!(headers.contains_key("retry-after"), "{code}");
            }
        }
    }

    #[test]
    fn an_unavailable_database_is_a_503() {
        let e: ApiError = DbError::PoolTimeout(std::time::Duration::from_secs(1)).into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let e: ApiError = DbError::Query(db_core::QueryError::NotFound).into();
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        // The connection lost under a transaction (a PostgreSQL restart), raw or wrapped.
        let lost = || db_core::QueryError::BrokenTransactionManager;
        let e: ApiError = DbError::Query(lost()).into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let e: ApiError = lost().into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
