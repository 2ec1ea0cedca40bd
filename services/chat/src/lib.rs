//! The chat service. Every path acts on the caller's own data only: another user's
//! conversation, match or memory is a 404, never their data.

pub mod handlers;
pub mod openapi;
pub mod routes;
