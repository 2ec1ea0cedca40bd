pub mod search_memories;
pub mod search_messages;
