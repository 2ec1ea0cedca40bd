//! Sessions held by a browser. A page asks for them with `X-Dream-Session: cookie` on sign-up,
//! sign-in, refresh and sign-out; the refresh token then lives only in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to the refresh path (page scripts never see it), and the
//! access token, which the page keeps in memory, is also set in a second `HttpOnly` cookie
//! scoped to the media path, so that `<img>` can load a photo without a token in its URL. Both
//! cookies are refused cross-site (`SameSite=Strict`); a refresh or sign-out by cookie needs the
//! custom header too, which a cross-site form cannot send and which CORS does not allow.
//! API clients that send no such header get their tokens in the JSON body, as before.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};

use crate::ApiError;

/// The header a page sends to hold its session in cookies.
pub const MODE_HEADER: &str = "x-dream-session";
/// Its one value.
pub const COOKIE_MODE: &str = "cookie";
/// The refresh token's cookie, sent only to `/api/v1/auth/*`.
pub const REFRESH_COOKIE: &str = "dream_refresh";
pub const REFRESH_PATH: &str = "/api/v1/auth";
/// A copy of the access token, sent only to `/api/v1/media/*` (image downloads).
pub const MEDIA_COOKIE: &str = "dream_media";
pub const MEDIA_PATH: &str = "/api/v1/media";

/// Whether this request asks for its session in cookies.
pub fn wants_cookies(req: &HttpRequest) -> bool {
    req.headers()
        .get(MODE_HEADER)
        .is_some_and(|v| v.as_bytes() == COOKIE_MODE.as_bytes())
}

/// The header checked as declared: absent, or exactly `cookie` (anything else is a 422, so a
/// typo cannot silently put the refresh token in a page's reach).
pub fn mode(req: &HttpRequest) -> Result<bool, ApiError> {
    match req.headers().get(MODE_HEADER) {
        None => Ok(false),
        Some(v) if v.as_bytes() == COOKIE_MODE.as_bytes() => Ok(true),
        Some(_) => Err(ApiError::validation(
            "X-Dream-Session",
            "the only value is `cookie`",
        )),
    }
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: Duration,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// The refresh token's cookie. `secure` is false only in development over plain HTTP.
pub fn refresh_cookie(token: String, max_age: Duration, secure: bool) -> Cookie<'static> {
    cookie(REFRESH_COOKIE, token, REFRESH_PATH, max_age, secure)
}

/// The access token's cookie for image downloads; it lives as long as the token.
pub fn media_cookie(token: String, max_age: Duration, secure: bool) -> Cookie<'static> {
    cookie(MEDIA_COOKIE, token, MEDIA_PATH, max_age, secure)
}

/// The cookies that end a browser session (both, expired).
pub fn removals(secure: bool) -> [Cookie<'static>; 2] {
    [
        cookie(
            REFRESH_COOKIE,
            String::new(),
            REFRESH_PATH,
            Duration::ZERO,
            secure,
        ),
        cookie(
            MEDIA_COOKIE,
            String::new(),
            MEDIA_PATH,
            Duration::ZERO,
            secure,
        ),
    ]
}

/// The refresh token a page's cookie holds, if the request asked for cookie sessions (the
/// header is what makes it safe from cross-site requests).
pub fn refresh_token_of(req: &HttpRequest) -> Option<String> {
    if !wants_cookies(req) {
        return None;
    }
    req.cookie(REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_strict_and_scoped() {
        let c = refresh_cookie("t".into(), Duration::from_secs(60), true).to_string();
        for part in [
            "dream_refresh=t",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/api/v1/auth",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        let m = media_cookie("a".into(), Duration::from_secs(900), false).to_string();
        assert!(
            m.contains("Path=/api/v1/media") && !m.contains("Secure"),
            "{m}"
        );
        let [r, _] = removals(true);
        assert!(r.to_string().contains("Max-Age=0"));
    }

    #[test]
    fn the_cookie_counts_only_with_the_header() {
        let plain = actix_web::test::TestRequest::default()
            .insert_header(("cookie", "dream_refresh=abc"))
            .to_http_request();
        assert_eq!(refresh_token_of(&plain), None);
        let page = actix_web::test::TestRequest::default()
            .insert_header(("cookie", "dream_refresh=abc"))
            .insert_header((MODE_HEADER, "cookie"))
            .to_http_request();
        assert_eq!(refresh_token_of(&page).as_deref(), Some("abc"));
        assert!(mode(&page).is_ok_and(|m| m) && mode(&plain).is_ok_and(|m| !m));
        let odd = actix_web::test::TestRequest::default()
            .insert_header((MODE_HEADER, "Cookie "))
            .to_http_request();
        assert!(mode(&odd).is_err());
        let empty = actix_web::test::TestRequest::default()
            .insert_header((MODE_HEADER, ""))
            .to_http_request();
        assert!(mode(&empty).is_err());
    }
}
