//! The ai service: the characters' replies, streamed, written exactly once.

pub mod generate;
pub mod handlers;
pub mod openai;
pub mod openapi;
pub mod photos;
pub mod provider;
pub mod routes;
