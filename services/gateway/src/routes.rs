//! Which service serves which path, which paths are public, and how long each may take.

use std::time::Duration;

pub struct Route {
    pub service: &'static str,
    /// Reachable without an access token.
    pub public: bool,
    pub timeout: Duration,
}

/// The route table: the longest matching prefix wins.
pub fn resolve(method: &actix_web::http::Method, path: &str) -> Option<Route> {
    let p = path.strip_prefix("/api/v1/")?;
    let normal = Duration::from_secs(15);
    let route = |service, public| {
        Some(Route {
            service,
            public,
            timeout: normal,
        })
    };
    let get = method == actix_web::http::Method::GET;
    match p.split('/').next()? {
        "auth" => route(
            "auth",
            matches!(
                p,
                "auth/register" | "auth/login" | "auth/refresh" | "auth/logout"
            ),
        ),
        "users" | "leaderboard" => route("auth", false),
        "characters" => route("chat", get),
        "matches" | "search" | "memories" => route("chat", false),
        "conversations" if p.ends_with("/reply") => Some(Route {
            service: "ai",
            public: false,
            timeout: Duration::from_secs(180),
        }),
        "conversations" => route("chat", false),
        "photos" | "media" => route("media", false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::*;

    #[test]
    fn paths_map_to_services_and_publicity() {
        let r = |m: &Method, p| resolve(m, p).map(|r| (r.service, r.public));
        assert_eq!(r(&Method::POST, "/api/v1/auth/login"), Some(("auth", true)));
        assert_eq!(r(&Method::GET, "/api/v1/users/me"), Some(("auth", false)));
        assert_eq!(r(&Method::GET, "/api/v1/characters"), Some(("chat", true)));
        assert_eq!(
            r(&Method::POST, "/api/v1/characters"),
            Some(("chat", false))
        );
        assert_eq!(
            r(&Method::GET, "/api/v1/conversations/sophia/messages"),
            Some(("chat", false))
        );
        assert_eq!(
            r(&Method::POST, "/api/v1/conversations/sophia/reply"),
            Some(("ai", false))
        );
        assert_eq!(
            r(&Method::GET, "/api/v1/photos/sophia"),
            Some(("media", false))
        );
        assert_eq!(r(&Method::GET, "/api/v2/anything"), None);
        assert_eq!(r(&Method::GET, "/api/v1/unknown"), None);
    }
}
