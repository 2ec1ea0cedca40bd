//! The whole route table of the chat service: each handler declares its method, path and
//! document once, beside its code.

use service_kit::ApiConfig;
use utoipa_actix_web::scope;

use crate::handlers::characters::{get_character::get_character, list_characters::list_characters};
use crate::handlers::conversations::{
    list_messages::list_messages, mark_all_read::mark_all_read, mark_read::mark_read,
    send_message::send_message, typing::get_typing, typing::set_typing,
};
use crate::handlers::matches::{
    create_match::create_match, delete_match::delete_match, list_matches::list_matches,
};
use crate::handlers::memories::{
    create_memory::create_memory, delete_memory::delete_memory, list_memories::list_memories,
    update_memory::update_memory,
};
use crate::handlers::messages::{
    delete_message::delete_message, edit_message::edit_message,
    list_alternatives::list_alternatives, pick_alternative::pick_alternative,
};
use crate::handlers::search::{search_memories::search_memories, search_messages::search_messages};

pub fn configure(cfg: &mut ApiConfig) {
    cfg.service(
        scope("/api/v1")
            .service(list_characters)
            .service(get_character)
            .service(create_match)
            .service(list_matches)
            .service(delete_match)
            .service(list_messages)
            .service(send_message)
            .service(mark_read)
            .service(mark_all_read)
            .service(set_typing)
            .service(get_typing)
            .service(search_messages)
            .service(search_memories)
            .service(list_memories)
            .service(create_memory)
            .service(update_memory)
            .service(delete_memory)
            .service(edit_message)
            .service(delete_message)
            .service(list_alternatives)
            .service(pick_alternative),
    );
}
