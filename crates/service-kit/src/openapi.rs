//! OpenAPI pieces every service's document shares. Each service generates its document from
//! its handlers' annotations and serves it at `/openapi.json`; the gateway merges them.

use actix_web::{HttpResponse, web};
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Declares the `bearer` scheme (an EdDSA-signed JWT access token).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut OpenApi) {
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
    }
}

/// Adds `GET /openapi.json` serving `document`.
pub fn route(cfg: &mut web::ServiceConfig, document: fn() -> OpenApi) {
    cfg.route(
        "/openapi.json",
        web::get().to(move || async move { HttpResponse::Ok().json(document()) }),
    );
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
