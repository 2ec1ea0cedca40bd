//! The auth service: accounts (Argon2id), rotating refresh sessions, EdDSA access tokens,
//! profiles, XP stats and the leaderboard. `main.rs` only starts it.

pub mod handlers;
pub mod openapi;
pub mod passwords;
pub mod routes;
pub mod sessions;
