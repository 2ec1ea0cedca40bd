pub mod create_match;
pub mod delete_match;
pub mod list_matches;
