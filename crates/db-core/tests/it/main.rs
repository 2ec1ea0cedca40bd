//! db-core against the real PostgreSQL and Redis. One binary (one link) for every module;
//! each test gets a database of its own, so they run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod characters;
mod edits;
mod explain;
mod fixtures;
mod instrumentation;
mod migrations;
mod pool;
mod queries;
mod redis;
mod replies;
mod schema;
mod seed;
