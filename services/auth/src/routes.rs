//! The whole route table of the auth service.

use actix_web::web;

use crate::handlers::{auth, leaderboard, users};

pub fn configure(cfg: &mut web::ServiceConfig) {
    service_kit::openapi::route(cfg, crate::openapi::document);
    cfg.service(
        web::scope("/api/v1")
            .route("/auth/register", web::post().to(auth::register::handle))
            .route("/auth/login", web::post().to(auth::login::handle))
            .route("/auth/refresh", web::post().to(auth::refresh::handle))
            .route("/auth/logout", web::post().to(auth::logout::handle))
            .route("/users/me", web::get().to(users::get_me::handle))
            .route("/users/me", web::patch().to(users::update_me::handle))
            .route("/users/me/stats", web::get().to(users::get_stats::handle))
            .route("/leaderboard", web::get().to(leaderboard::handle)),
    );
}
