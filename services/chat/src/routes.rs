//! The whole route table of the chat service.

use actix_web::web;

use crate::handlers::{characters, conversations, matches, memories, search};

pub fn configure(cfg: &mut web::ServiceConfig) {
    service_kit::openapi::route(cfg, crate::openapi::document);
    cfg.service(
        web::scope("/api/v1")
            .route("/characters", web::get().to(characters::list::handle))
            .route("/characters/{id}", web::get().to(characters::get::handle))
            .route("/matches", web::post().to(matches::create::handle))
            .route("/matches", web::get().to(matches::list::handle))
            .route(
                "/conversations/{character_id}/messages",
                web::get().to(conversations::list_messages::handle),
            )
            .route(
                "/conversations/{character_id}/messages",
                web::post().to(conversations::send_message::handle),
            )
            .route(
                "/conversations/{character_id}/read",
                web::post().to(conversations::mark_read::handle),
            )
            .route(
                "/conversations/{character_id}/typing",
                web::put().to(conversations::typing::set),
            )
            .route(
                "/conversations/{character_id}/typing",
                web::get().to(conversations::typing::get),
            )
            .route("/search/messages", web::get().to(search::messages::handle))
            .route("/memories", web::get().to(memories::list::handle))
            .route("/memories", web::post().to(memories::create::handle))
            .route("/memories/{id}", web::patch().to(memories::update::handle))
            .route("/memories/{id}", web::delete().to(memories::delete::handle)),
    );
}
