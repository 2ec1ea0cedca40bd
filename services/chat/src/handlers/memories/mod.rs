pub mod create;
pub mod delete;
pub mod list;
pub mod update;

pub const MAX_MEMORY_CHARS: usize = 2000;
