#![doc = include_str!("../README.md")]

pub mod cache;
pub mod config;
pub mod explain;
pub mod instrumentation;
pub mod maintenance;
pub mod migrate;
pub mod models;
pub mod pagination;
mod per_thread;
pub mod pool;
/// Every SQL statement: private to db-core (services reach data through [`Store`]'s domains);
/// the `testing` feature opens it to db-core's own tests and the tools that build datasets.
#[cfg(feature = "testing")]
pub mod queries;
#[cfg(not(feature = "testing"))]
pub(crate) mod queries;
pub mod quiet_hours;
pub mod redis_pool;
pub mod revocations;
pub mod schema;
pub mod seed;
pub mod store;

pub use cache::Cache;
pub use config::{Environment, PgConfig, RedisConfig, SlowQueryConfig};
pub use diesel::QueryResult;
pub use diesel::result::Error as QueryError;
pub use diesel_async::AsyncPgConnection;
pub use pool::{Db, DbError, PgConn, PgPool, PoolStats};
pub use queries::messages::MAX_SEARCH_RESULTS;
pub use redis_pool::{RedisError, RedisPool, RedisPoolStats};
pub use revocations::Revocations;
pub use store::{
    Account, Catalogue, Conversations, CreateUserError, Generations, Inserted, Leaderboard, Limits,
    MatchError, Matches, Memories, PhotoJobs, Photos, SendError, Sessions, Store, SyncedLimits,
    Users,
};
