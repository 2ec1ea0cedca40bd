//! The route table: built from the operations the services declare in their OpenAPI documents
//! (the same declarations that build their routers), so the gateway forwards exactly what the
//! API has and nothing else. A request path is checked and decoded first ([`RequestPath`]),
//! matched by method and template on the decoded segments, and forwarded as the raw bytes that
//! were checked.

use std::time::Duration;

use actix_web::http::Method;
use utoipa::openapi::OpenApi;

/// How long a forwarded request may take unless its operation says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The OpenAPI extension an operation sets to take longer (a streamed reply).
pub const TIMEOUT_EXTENSION: &str = "x-dream-timeout-seconds";
/// The OpenAPI extension an operation sets to accept a larger body than `MAX_BODY_BYTES` (an
/// image upload).
pub const BODY_LIMIT_EXTENSION: &str = "x-dream-max-body-bytes";

/// One operation a service declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub service: &'static str,
    pub method: Method,
    /// The path template, e.g. `/api/v1/conversations/{character_id}/messages`.
    pub template: String,
    pub operation_id: String,
    /// Reachable without an access token (the operation declares no security, or an empty
    /// requirement `{}` among its requirements: the token is optional).
    pub public: bool,
    /// Public, but a token may be sent (and is then checked like anywhere else).
    pub optional_token: bool,
    pub timeout: Duration,
    /// The largest body this operation takes, when it declares one.
    pub max_body: Option<usize>,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param,
}

fn parse_template(template: &str) -> Option<Vec<Segment>> {
    template
        .strip_prefix('/')?
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Some(Segment::Param)
            } else if s.is_empty() || s.contains(['{', '}']) {
                None
            } else {
                Some(Segment::Literal(s.to_owned()))
            }
        })
        .collect()
}

/// Why a request path is refused before any route is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Dot segments, encoded slashes or backslashes, control characters, bad percent-encoding:
    /// things that mean different paths to different parsers (400).
    Ambiguous(&'static str),
    /// Empty segments, trailing slashes: no route has them (404).
    NoRoute,
}

/// A request path that means one thing to everyone: its raw form (what is forwarded) and its
/// decoded segments (what is matched).
#[derive(Debug)]
pub struct RequestPath<'a> {
    pub raw: &'a str,
    /// Borrowed from `raw` where there was nothing to decode (most paths, most segments).
    segments: Vec<std::borrow::Cow<'a, str>>,
}

impl<'a> RequestPath<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, PathError> {
        let rest = raw.strip_prefix('/').ok_or(PathError::NoRoute)?;
        if raw.contains('\\') {
            return Err(PathError::Ambiguous("backslash in path"));
        }
        let mut segments = Vec::with_capacity(8);
        for s in rest.split('/') {
            if s.is_empty() {
                return Err(PathError::NoRoute);
            }
            let decoded = percent_decode(s)?;
            if decoded == "." || decoded == ".." {
                return Err(PathError::Ambiguous("dot segment in path"));
            }
            if decoded.contains(['/', '\\']) {
                return Err(PathError::Ambiguous("encoded slash in path"));
            }
            if decoded.chars().any(char::is_control) {
                return Err(PathError::Ambiguous("control character in path"));
            }
            segments.push(decoded);
        }
        Ok(Self { raw, segments })
    }
}

fn percent_decode(s: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if !s.contains('%') {
        return Ok(s.into());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::Ambiguous("bad percent-encoding in path"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Into::into)
        .map_err(|_| PathError::Ambiguous("path is not UTF-8"))
}

/// Every route the services declared.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The table of `docs` (service name, its document). Fails if two services declare the same
    /// method and template, or a template cannot be parsed.
    pub fn from_documents<'d>(
        docs: impl IntoIterator<Item = (&'static str, &'d OpenApi)>,
    ) -> Result<Self, String> {
        let mut routes: Vec<Route> = Vec::new();
        for (service, doc) in docs {
            for (template, item) in &doc.paths.paths {
                let segments = parse_template(template)
                    .ok_or_else(|| format!("{service}: cannot route {template:?}"))?;
                for (method, op) in [
                    (Method::GET, &item.get),
                    (Method::POST, &item.post),
                    (Method::PUT, &item.put),
                    (Method::PATCH, &item.patch),
                    (Method::DELETE, &item.delete),
                ] {
                    let Some(op) = op else { continue };
                    if let Some(other) = routes
                        .iter()
                        .find(|r| r.method == method && r.template == *template)
                    {
                        return Err(format!(
                            "{method} {template} is declared by both {} and {service}",
                            other.service
                        ));
                    }
                    let timeout = op
                        .extensions
                        .as_ref()
                        .and_then(|e| e.get(TIMEOUT_EXTENSION))
                        .and_then(serde_json::Value::as_u64)
                        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
                    let max_body = op
                        .extensions
                        .as_ref()
                        .and_then(|e| e.get(BODY_LIMIT_EXTENSION))
                        .and_then(serde_json::Value::as_u64)
                        .map(|n| n as usize);
                    let requirements = op.security.as_deref().unwrap_or_default();
                    let optional = requirements.iter().any(|r| {
                        serde_json::to_value(r)
                            .is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
                    });
                    routes.push(Route {
                        service,
                        method: method.clone(),
                        template: template.clone(),
                        operation_id: op.operation_id.clone().unwrap_or_default(),
                        public: requirements.is_empty() || optional,
                        optional_token: optional && requirements.len() > 1,
                        timeout,
                        max_body,
                        segments: segments.clone(),
                    });
                }
            }
        }
        Ok(Self { routes })
    }

    /// The methods declared for `path` (for `405`'s `Allow`), sorted, without repeats.
    pub fn allowed(&self, path: &RequestPath<'_>) -> Vec<Method> {
        let mut methods: Vec<Method> = self.matching(path).map(|r| r.method.clone()).collect();
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods.dedup();
        methods
    }

    fn matching<'s, 'p>(
        &'s self,
        path: &'p RequestPath<'_>,
    ) -> impl Iterator<Item = &'s Route> + use<'s, 'p> {
        self.routes.iter().filter(move |r| {
            r.segments.len() == path.segments.len()
                && r.segments.iter().zip(&path.segments).all(|(t, s)| match t {
                    Segment::Literal(l) => l == s,
                    Segment::Param => true,
                })
        })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path`. Where several templates match, the one with a literal
    /// earliest wins (`/photos/jobs/{id}` before `/photos/{character_id}/...`).
    pub fn resolve(&self, method: &Method, path: &RequestPath<'_>) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.method == *method && r.segments.len() == path.segments.len())
            .filter(|r| {
                r.segments.iter().zip(&path.segments).all(|(t, s)| match t {
                    Segment::Literal(l) => l == s,
                    Segment::Param => true,
                })
            })
            .max_by_key(|r| {
                // Literal positions as a bitmask, most significant first: earlier literals win.
                r.segments.iter().fold(0u64, |acc, s| {
                    (acc << 1) | u64::from(matches!(s, Segment::Literal(_)))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::security::SecurityRequirement;

    fn doc(paths: &[(&str, HttpMethod, &str, bool)]) -> OpenApi {
        let mut builder = PathsBuilder::new();
        for (template, method, id, secured) in paths {
            let mut op = OperationBuilder::new().operation_id(Some(*id));
            if *secured {
                op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
            }
            builder = builder.path(*template, PathItem::new(method.clone(), op.build()));
        }
        utoipa::openapi::OpenApiBuilder::new()
            .paths(builder.build())
            .build()
    }

    fn table() -> RouteTable {
        let chat = doc(&[
            (
                "/api/v1/characters",
                HttpMethod::Get,
                "list_characters",
                false,
            ),
            (
                "/api/v1/characters/{id}",
                HttpMethod::Get,
                "get_character",
                false,
            ),
            ("/api/v1/matches", HttpMethod::Get, "list_matches", true),
            (
                "/api/v1/conversations/{character_id}/messages",
                HttpMethod::Post,
                "send_message",
                true,
            ),
        ]);
        let media = doc(&[
            (
                "/api/v1/photos/jobs/{id}",
                HttpMethod::Get,
                "get_photo_job",
                true,
            ),
            (
                "/api/v1/photos/{character_id}",
                HttpMethod::Get,
                "list_photos",
                true,
            ),
        ]);
        RouteTable::from_documents([("chat", &chat), ("media", &media)]).unwrap_or_default()
    }

    fn resolve(m: Method, p: &str) -> Result<Option<(&'static str, String, bool)>, PathError> {
        let t = table();
        let path = RequestPath::parse(p)?;
        Ok(t.resolve(&m, &path)
            .map(|r| (r.service, r.operation_id.clone(), r.public)))
    }

    #[test]
    fn declared_operations_resolve_with_their_service_and_publicity() {
        assert_eq!(
            resolve(Method::GET, "/api/v1/characters"),
            Ok(Some(("chat", "list_characters".into(), true)))
        );
        assert_eq!(
            resolve(Method::GET, "/api/v1/matches"),
            Ok(Some(("chat", "list_matches".into(), false)))
        );
        assert_eq!(
            resolve(Method::GET, "/api/v1/photos/jobs/7"),
            Ok(Some(("media", "get_photo_job".into(), false))),
            "a literal beats a parameter"
        );
        assert_eq!(
            resolve(Method::GET, "/api/v1/photos/sophia"),
            Ok(Some(("media", "list_photos".into(), false)))
        );
    }

    #[test]
    fn a_declared_path_lists_its_methods() {
        let t = table();
        let path = RequestPath::parse("/api/v1/characters").unwrap_or_else(|_| unreachable!());
        assert_eq!(t.allowed(&path), vec![Method::GET]);
        let nowhere = RequestPath::parse("/api/v1/nowhere").unwrap_or_else(|_| unreachable!());
        assert!(t.allowed(&nowhere).is_empty());
    }

    #[test]
    fn anything_undeclared_is_not_routed() {
        for (m, p) in [
            (Method::DELETE, "/api/v1/characters"),
            (Method::GET, "/api/v1/characters/"),
            (Method::GET, "/API/v1/characters"),
            (Method::GET, "/api/v1/Characters"),
            (Method::GET, "/metrics"),
            (Method::GET, "/api/v1/characters/sophia/extra"),
            (Method::GET, "/api/v2/characters"),
        ] {
            assert_eq!(resolve(m.clone(), p).ok().flatten(), None, "{m} {p}");
        }
        assert_eq!(
            resolve(Method::GET, "/api//v1/characters"),
            Err(PathError::NoRoute)
        );
    }

    #[test]
    fn paths_that_parsers_read_differently_are_refused() {
        for p in [
            "/api/v1/characters/%2E%2E/%2E%2E/%2E%2E/metrics",
            "/api/v1/characters/../matches",
            "/api/v1/characters/%2e%2e",
            "/api/v1/characters/.",
            "/api/v1/characters/%2fmetrics",
            "/api/v1/characters/a%2Fb",
            "/api/v1/characters/a%5cb",
            "/api/v1/characters\\..\\metrics",
            "/api/v1/characters/sophia%00",
            "/api/v1/characters/%zz",
            "/api/v1/characters/%ff",
        ] {
            assert!(
                matches!(RequestPath::parse(p), Err(PathError::Ambiguous(_))),
                "{p}"
            );
        }
        // Not a dot segment once decoded once: an id like any other, checked by the service.
        assert_eq!(
            resolve(Method::GET, "/api/v1/characters/%252e%252e"),
            Ok(Some(("chat", "get_character".into(), true)))
        );
        assert_eq!(
            resolve(Method::GET, "/api/v1/characters/..;"),
            Ok(Some(("chat", "get_character".into(), true)))
        );
    }

    #[test]
    fn two_services_cannot_claim_one_route() {
        let a = doc(&[("/api/v1/x", HttpMethod::Get, "x", false)]);
        let b = doc(&[("/api/v1/x", HttpMethod::Get, "y", false)]);
        assert!(RouteTable::from_documents([("a", &a), ("b", &b)]).is_err());
    }
}

#[cfg(test)]
mod timeouts {
    use super::*;

    #[test]
    fn an_operation_declares_its_own_timeout() {
        let doc: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "0" },
            "paths": {
                "/api/v1/slow": { "post": {
                    "operationId": "slow", "responses": {},
                    "x-dream-timeout-seconds": 180
                } },
                "/api/v1/fast": { "get": { "operationId": "fast", "responses": {} } }
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let t = RouteTable::from_documents([("ai", &doc)]).unwrap_or_default();
        let timeout = |m: Method, p: &str| {
            RequestPath::parse(p)
                .ok()
                .and_then(|path| t.resolve(&m, &path).map(|r| r.timeout))
        };
        assert_eq!(
            timeout(Method::POST, "/api/v1/slow"),
            Some(Duration::from_secs(180))
        );
        assert_eq!(timeout(Method::GET, "/api/v1/fast"), Some(DEFAULT_TIMEOUT));
    }
}

#[cfg(test)]
mod declared_limits {
    use super::*;

    #[test]
    fn an_operation_declares_its_body_limit_and_an_optional_token() {
        let doc: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "0" },
            "paths": {
                "/api/v1/upload": { "put": {
                    "operationId": "upload", "responses": {},
                    "security": [{ "bearer": [] }],
                    "x-dream-max-body-bytes": 8388608
                } },
                "/api/v1/list": { "get": {
                    "operationId": "list", "responses": {},
                    "security": [{}, { "bearer": [] }]
                } },
                "/api/v1/open": { "get": { "operationId": "open", "responses": {} } }
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let t = RouteTable::from_documents([("media", &doc)]).unwrap_or_default();
        let route = |m: Method, p: &str| {
            RequestPath::parse(p).ok().and_then(|path| {
                t.resolve(&m, &path)
                    .map(|r| (r.public, r.optional_token, r.max_body))
            })
        };
        assert_eq!(
            route(Method::PUT, "/api/v1/upload"),
            Some((false, false, Some(8_388_608)))
        );
        assert_eq!(route(Method::GET, "/api/v1/list"), Some((true, true, None)));
        assert_eq!(
            route(Method::GET, "/api/v1/open"),
            Some((true, false, None))
        );
    }
}
