pub mod list_messages;
pub mod mark_all_read;
pub mod mark_read;
pub mod send_message;
pub mod typing;
