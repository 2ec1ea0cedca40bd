//! The web app (`web/`, built into `web/dist`), served from memory at `/`. `WEB_DIR` names the
//! built directory; it is read once at start (unset: no web app, every path is the API's).
//!
//! - Hashed assets (`/assets/…`, named by their content) are cached for a year, `immutable`;
//!   `index.html` is `no-cache` (revalidated by its ETag), so a new release is picked up at once.
//! - A browser navigation (`Accept: text/html`) to any other path outside `/api/` gets
//!   `index.html`: the app routes it. Anything else gets the API's own answers (a 404 problem),
//!   so the API's paths and refusals are exactly what they are without the app.
//! - Every answer carries a strict Content-Security-Policy (no inline script, nothing from
//!   elsewhere), `nosniff`, no framing, no referrer.
//! - Files are gzipped once at start when that makes them smaller.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

/// What a page of the app may do: its own scripts, styles, images and API, nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
const SHORT: &str = "public, max-age=3600";

#[derive(Debug)]
struct File {
    body: web::Bytes,
    gzip: Option<web::Bytes>,
    content_type: HeaderValue,
    cache_control: &'static str,
    etag: String,
}

/// The built app, in memory.
#[derive(Debug)]
pub struct WebApp {
    files: HashMap<String, File>,
}

impl WebApp {
    /// Reads every file under `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut paths = Vec::new();
        walk(dir, &mut paths)?;
        let mut files = HashMap::new();
        for path in paths {
            let rel = path
                .strip_prefix(dir)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let body = std::fs::read(&path)?;
            let content_type = mime_guess::from_path(&path)
                .first_raw()
                .map(|m| match m {
                    "text/html"
                    | "text/css"
                    | "text/javascript"
                    | "application/javascript"
                    | "image/svg+xml"
                    | "application/json"
                    | "text/plain" => {
                        format!("{m}; charset=utf-8")
                    }
                    _ => m.to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let cache_control = if rel == "index.html" {
                REVALIDATE
            } else if rel.starts_with("assets/") {
                IMMUTABLE
            } else {
                SHORT
            };
            let compressible = content_type.starts_with("text/")
                || content_type.starts_with("application/javascript")
                || content_type.starts_with("application/json")
                || content_type.starts_with("image/svg+xml")
                || content_type.starts_with("application/manifest+json");
            let gzip = if compressible && body.len() > 256 {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(&body)?;
                let z = enc.finish()?;
                (z.len() < body.len()).then(|| web::Bytes::from(z))
            } else {
                None
            };
            let etag = format!("\"{:016x}\"", fnv1a(&body));
            files.insert(
                format!("/{rel}"),
                File {
                    body: web::Bytes::from(body),
                    gzip,
                    content_type: HeaderValue::from_str(&content_type)?,
                    cache_control,
                    etag,
                },
            );
        }
        anyhow::ensure!(
            files.contains_key("/index.html"),
            "WEB_DIR={}: no index.html there (run `make web`)",
            dir.display()
        );
        tracing::info!(dir = %dir.display(), files = files.len(), "web app loaded");
        Ok(Self { files })
    }

    /// The app's answer to `req`, or `None` when it is not the app's to give (the API's then).
    pub fn serve(&self, req: &HttpRequest) -> Option<HttpResponse> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let path = req.path();
        if path == "/api" || path.starts_with("/api/") {
            return None;
        }
        let file = match self.files.get(path) {
            Some(f) if path != "/index.html" => f,
            _ if path == "/" || path == "/index.html" || is_navigation(req, path) => {
                self.files.get("/index.html")?
            }
            _ => return None,
        };
        Some(respond(req, file))
    }
}

/// A browser asking for a page (not a script, image or API client) at a path of the app's.
fn is_navigation(req: &HttpRequest, path: &str) -> bool {
    let accepts_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    // A missing file (`/assets/gone.js`, `/favicon.ico`) stays a 404 rather than a page.
    let last = path.rsplit('/').next().unwrap_or_default();
    accepts_html && !last.contains('.') && !path.starts_with("/assets/")
}

fn respond(req: &HttpRequest, file: &File) -> HttpResponse {
    let mut res = HttpResponse::build(StatusCode::OK);
    secure_headers(&mut res);
    res.insert_header((header::CACHE_CONTROL, file.cache_control))
        .insert_header((header::ETAG, file.etag.as_str()))
        .insert_header((header::VARY, "Accept-Encoding"));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == file.etag || t.trim() == "*")
        });
    if fresh {
        return res.status(StatusCode::NOT_MODIFIED).finish();
    }
    res.insert_header((header::CONTENT_TYPE, file.content_type.clone()));
    let gzip_ok = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let body = match &file.gzip {
        Some(z) if gzip_ok => {
            res.insert_header((header::CONTENT_ENCODING, "gzip"));
            z.clone()
        }
        _ => file.body.clone(),
    };
    if req.method() == Method::HEAD {
        return res.no_chunking(body.len() as u64).finish();
    }
    res.body(body)
}

/// The headers every page and file of the app carries.
fn secure_headers(res: &mut actix_web::HttpResponseBuilder) {
    res.insert_header(("content-security-policy", CONTENT_SECURITY_POLICY))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cross-origin-opener-policy", "same-origin"))
        .insert_header((
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ));
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("WEB_DIR={}: {e}", dir.display()))?
    {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// A content hash for ETags (not a security boundary: it only tells copies apart).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn app() -> (tempfile::TempDir, WebApp) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |rel: &str, body: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, body).unwrap_or_else(|e| panic!("{e}"));
        };
        write(
            "index.html",
            &"<!doctype html><title>Dream</title>".repeat(20),
        );
        write("assets/index-abc123.js", &"console.log(1);".repeat(100));
        write("favicon.svg", "<svg/>");
        let app = WebApp::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        (dir, app)
    }

    fn header(res: &HttpResponse, name: &str) -> String {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn assets_are_immutable_and_the_page_revalidates() {
        let (_d, app) = app();
        let js = app
            .serve(
                &TestRequest::get()
                    .uri("/assets/index-abc123.js")
                    .to_http_request(),
            )
            .unwrap_or_else(|| panic!("no asset"));
        assert_eq!(header(&js, "cache-control"), IMMUTABLE);
        assert!(header(&js, "content-type").starts_with("text/javascript"));
        let page = app
            .serve(&TestRequest::get().uri("/").to_http_request())
            .unwrap_or_else(|| panic!("no page"));
        assert_eq!(header(&page, "cache-control"), REVALIDATE);
        assert_eq!(
            header(&page, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        let etag = header(&page, "etag");
        let again = app
            .serve(
                &TestRequest::get()
                    .uri("/")
                    .insert_header(("if-none-match", etag))
                    .to_http_request(),
            )
            .unwrap_or_else(|| panic!("no page"));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let zipped = app
            .serve(
                &TestRequest::get()
                    .uri("/assets/index-abc123.js")
                    .insert_header(("accept-encoding", "gzip, br"))
                    .to_http_request(),
            )
            .unwrap_or_else(|| panic!("no asset"));
        assert_eq!(header(&zipped, "content-encoding"), "gzip");
    }

    #[test]
    fn navigations_get_the_page_and_everything_else_is_the_apis() {
        let (_d, app) = app();
        let nav = |path: &str| {
            app.serve(
                &TestRequest::get()
                    .uri(path)
                    .insert_header(("accept", "text/html,application/xhtml+xml"))
                    .to_http_request(),
            )
            .map(|r| r.status())
        };
        assert_eq!(nav("/chat/sophia"), Some(StatusCode::OK));
        assert_eq!(nav("/discover"), Some(StatusCode::OK));
        // The API's paths, missing files and non-navigations are not the app's.
        assert_eq!(nav("/api/v1/nothing"), None);
        assert_eq!(nav("/assets/gone.js"), None);
        assert_eq!(nav("/favicon.ico"), None);
        let plain = |path: &str| app.serve(&TestRequest::get().uri(path).to_http_request());
        assert!(plain("/metrics").is_none());
        assert!(plain("/chat/sophia").is_none());
        let post = app.serve(
            &TestRequest::post()
                .uri("/")
                .insert_header(("accept", "text/html"))
                .to_http_request(),
        );
        assert!(post.is_none());
    }
}
