pub mod create_memory;
pub mod delete_memory;
pub mod list_memories;
pub mod update_memory;

pub const MAX_MEMORY_CHARS: usize = 2000;

/// `{id}` of a memory.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemoryId {
    /// The memory's id.
    #[param(minimum = 1)]
    id: i64,
}
