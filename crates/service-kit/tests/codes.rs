//! Every error code a client can see is produced somewhere: each code's constructor appears in
//! the code of the services or the kit, outside `error.rs` itself. A code nobody can reach is
//! dead documentation; a code missing here fails the first assertion.

use std::path::{Path, PathBuf};

use service_kit::ApiError;

/// Each code, and what produces it.
const PRODUCERS: &[(&str, &[&str])] = &[
    ("bad_request", &["ApiError::BadRequest("]),
    ("validation_failed", &["ApiError::validation("]),
    ("unauthorized", &["ApiError::Unauthorized"]),
    ("invalid_token", &["ApiError::InvalidToken"]),
    ("invalid_credentials", &["ApiError::InvalidCredentials"]),
    ("not_found", &["ApiError::NotFound"]),
    ("method_not_allowed", &["ApiError::MethodNotAllowed"]),
    // A sign-up whose email is registered: the domain error, mapped once.
    (
        "email_taken",
        &["CreateUserError::EmailTaken => ApiError::Conflict(Conflict::EmailTaken)"],
    ),
    ("client_id_reused", &["Conflict::ClientIdReused"]),
    ("too_many_photo_jobs", &["Conflict::TooManyPhotoJobs"]),
    (
        "generation_in_progress",
        &["Conflict::GenerationInProgress"],
    ),
    ("nothing_to_answer", &["Conflict::NothingToAnswer"]),
    ("too_many_characters", &["Conflict::TooManyCharacters"]),
    ("nothing_to_continue", &["Conflict::NothingToContinue"]),
    ("characters_message", &["Conflict::CharactersMessage"]),
    ("rate_limited", &["ApiError::RateLimited"]),
    ("payload_too_large", &["ApiError::PayloadTooLarge"]),
    (
        "unsupported_media_type",
        &["ApiError::UnsupportedMediaType("],
    ),
    ("request_timeout", &["ApiError::RequestTimeout"]),
    ("service_unavailable", &["ApiError::Unavailable"]),
    ("upstream_unavailable", &["ApiError::BadGateway("]),
    ("upstream_timeout", &["ApiError::GatewayTimeout("]),
    ("internal", &["ApiError::internal(", "ApiError::Internal("]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_code_is_produced_somewhere() {
    let codes: Vec<&str> = PRODUCERS.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        ApiError::CODES,
        "a code and what produces it, for every code"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["services", "crates/service-kit/src"] {
        sources(&root.join(dir), &mut files);
    }
    // error.rs counts for its conversions of domain errors, not for its own declarations: only
    // the `From` impls are kept.
    let code: String = files
        .iter()
        .filter(|p| !p.to_string_lossy().contains("/tests/"))
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            if p.ends_with("service-kit/src/error.rs") {
                text.split("\nimpl From<")
                    .skip(1)
                    .map(|impl_| impl_.split("\n}\n").next().unwrap_or_default().to_owned())
                    .collect()
            } else {
                text
            }
        })
        .collect();
    assert!(code.len() > 10_000, "the sources were found");
    for (c, producers) in PRODUCERS {
        assert!(
            producers.iter().any(|p| code.contains(p)),
            "nothing produces {c} (looked for {producers:?})"
        );
    }
}
