pub mod characters;
pub mod conversations;
pub mod matches;
pub mod memories;
pub mod messages;
pub mod search;

pub use service_kit::checks::{cursor, require_match, valid_text};
