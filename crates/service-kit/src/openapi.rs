//! A service's API, declared once. Each handler carries `#[utoipa::path]` over actix's method
//! macro (`#[get("/matches")]`), and the route table registers it with `service(..)`: that one
//! declaration is the service's router, its OpenAPI document, and (through the document) the
//! gateway's route table. [`finish`] adds what every operation shares: the error responses
//! (as `application/problem+json`), descriptions, the bearer scheme.

use actix_web::App;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use utoipa_actix_web::AppExt;

use crate::checks::FIELD_FORMATS;
use crate::error::Problem;

/// What a route table registers handlers on.
pub type ApiConfig<'a> = utoipa_actix_web::service_config::ServiceConfig<'a>;

/// A service's API: its route table and the title of its document.
#[derive(Clone, Copy)]
pub struct Api {
    pub title: &'static str,
    pub description: &'static str,
    pub routes: fn(&mut ApiConfig),
}

impl Api {
    /// The OpenAPI document of the route table, finished.
    pub fn document(&self) -> OpenApi {
        let base = utoipa::openapi::OpenApiBuilder::new()
            .info(
                utoipa::openapi::InfoBuilder::new()
                    .title(self.title)
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(self.description))
                    .build(),
            )
            .build();
        let (_, doc) = App::new()
            .into_utoipa_app()
            .openapi(base)
            .configure(self.routes)
            .split_for_parts();
        finish(doc)
    }
}

/// The media type of every error.
pub const PROBLEM_JSON: &str = "application/problem+json";

fn problem(description: &str) -> RefOr<Response> {
    let mut r = Response::new(description);
    r.content.insert(
        PROBLEM_JSON.to_owned(),
        RefOr::T(Content::new(Some(RefOr::Ref(Ref::from_schema_name(
            Problem::name(),
        ))))),
    );
    RefOr::T(r)
}

/// The description a response gets when its handler gave none.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "Done; no content",
        "304" => "Not modified",
        "400" => "Malformed request",
        "401" => "No valid access token",
        "403" => "Forbidden",
        "404" => "Not found: absent, or not the caller's (the two are never told apart)",
        "409" => "Conflict with the current state (the problem's `code` says which)",
        "413" => "The request body is too large",
        "422" => "Invalid input (the problem's `field` names it)",
        "429" => "Too many requests",
        "503" => "Temporarily unavailable",
        _ => "See the problem document",
    }
}

/// Adds what every operation shares. Idempotent.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    // The format of each named field, declared once (checks::FIELD_FORMATS).
    for schema in components.schemas.values_mut() {
        if let RefOr::T(Schema::Object(o)) = schema {
            for (name, property) in o.properties.iter_mut() {
                if let Some((_, pattern)) = FIELD_FORMATS.iter().find(|(n, _)| n == name) {
                    set_pattern(property, pattern);
                }
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            finish_operation(op);
        }
    }
    doc
}

/// Gives a string schema (or the string branch of an optional one) its pattern.
fn set_pattern(schema: &mut RefOr<Schema>, pattern: &str) {
    match schema {
        RefOr::T(Schema::Object(o)) => o.pattern = Some(pattern.to_owned()),
        RefOr::T(Schema::OneOf(one)) => one.items.iter_mut().for_each(|s| set_pattern(s, pattern)),
        _ => {}
    }
}

fn finish_operation(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p
            && let Some((_, pattern)) = FIELD_FORMATS.iter().find(|(n, _)| *n == p.name)
            && let Some(schema) = p.schema.as_mut()
        {
            set_pattern(schema, pattern);
        }
    }
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_input =
        op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let responses = &mut op.responses.responses;
    for (status, response) in responses.iter_mut() {
        let RefOr::T(r) = response else { continue };
        if r.description.trim().is_empty() {
            r.description = default_description(status).to_owned();
        }
        // Errors are problem documents, whatever the handler's annotation said.
        if status.starts_with('4') || status.starts_with('5') {
            if let Some(content) = r.content.shift_remove("application/json") {
                r.content.insert(PROBLEM_JSON.to_owned(), content);
            } else if r.content.is_empty() {
                *response = problem(&r.description);
            }
        }
    }
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    add(
        "400",
        "Malformed request: unreadable JSON or query string, or a path the API does not accept",
    );
    if secured {
        add(
            "401",
            "No access token, or one that is invalid, expired or revoked",
        );
    }
    if has_input {
        add("422", "Invalid input (the problem's `field` names it)");
    }
    add(
        "429",
        "Too many requests: retry after the `Retry-After` header's seconds",
    );
    add(
        "503",
        "Temporarily unavailable (overloaded, or the database is down): retry after `Retry-After` seconds",
    );
    add("default", "Any other error, as a problem document");
}

/// Every `$ref` of a document that names a schema the document does not define.
pub fn dangling_refs(doc: &OpenApi) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let json = serde_json::to_value(doc).unwrap_or_default();
    let mut refs = Vec::new();
    walk(&json, &mut refs);
    refs.into_iter()
        .filter(|r| {
            let name = r.trim_start_matches("#/components/schemas/");
            json["components"]["schemas"].get(name).is_none()
        })
        .collect()
}

/// Operation ids that appear more than once across `docs`.
pub fn duplicate_operation_ids<'a>(docs: impl IntoIterator<Item = &'a OpenApi>) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for doc in docs {
        for item in doc.paths.paths.values() {
            for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                if let Some(id) = &op.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect()
}
