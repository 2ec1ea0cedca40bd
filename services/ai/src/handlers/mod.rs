pub mod reply;
pub mod write_first;
