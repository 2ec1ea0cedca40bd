//! One message at a time: the user's own messages are edited and deleted here; a character's
//! reply keeps every version a swipe or a continuation wrote (its alternatives), and the user
//! picks which one the conversation reads.

pub mod delete_message;
pub mod edit_message;
pub mod list_alternatives;
pub mod pick_alternative;

/// `{id}` of a message.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessageId {
    /// The message's id.
    #[param(minimum = 1)]
    id: i64,
}
