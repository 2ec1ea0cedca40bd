//! PostgreSQL connection pools: diesel-async connections over bb8, with an optional read replica.

use std::sync::Arc;

use diesel::ConnectionError;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;
use serde::Serialize;

use crate::config::{PgConfig, SlowQueryConfig};
use crate::instrumentation::{PING_SQL, QueryInstrumentation};
use crate::per_thread::{PerThread, Share};

type Manager = AsyncDieselConnectionManager<AsyncPgConnection>;

/// A connection checked out of a pool; derefs to [`AsyncPgConnection`] and goes back on drop.
pub type PgConn = bb8::PooledConnection<'static, Manager>;

/// Why no connection could be had. Services answer both with 503 and `Retry-After`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not hand out a connection in time: every connection is busy.
    #[error("no database connection became free within {0:?}")]
    PoolTimeout(std::time::Duration),
    /// A new connection could not be opened: the server is down or refusing us.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl DbError {
    /// True when the database is unavailable rather than the request being wrong: no
    /// connection to be had, or the one in hand lost under the query (a restart).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::PoolTimeout(_) | DbError::Unreachable(_) => true,
            DbError::Query(e) => server_went_away(e),
        }
    }
}

/// A query failed because of the server, not the query: the connection closed under it, or
/// PostgreSQL ended or cancelled it (SQLSTATE class 57: a shutdown or restart terminating the
/// session, a statement timeout). The caller may retry; with a client id a retried send is
/// still stored once.
fn server_went_away(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        Error::DatabaseError(Kind::UnableToSendCommand | Kind::ClosedConnection, _) => true,
        // diesel-async reports class 57 as `Unknown`; its message is all there is to go by.
        Error::DatabaseError(Kind::Unknown, info) => {
            let m = info.message();
            m.starts_with("terminating connection")
                || m.starts_with("canceling statement due to")
                || m.starts_with("the database system is")
        }
        Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit { commit_error, .. } => server_went_away(commit_error),
        _ => false,
    }
}

/// The connections to one server: a bb8 pool per thread that uses them (see
/// `per_thread.rs`), `max_size` shared out among `threads`.
#[derive(Clone)]
pub struct PgPool {
    inner: Arc<PerThread<Manager>>,
    config: Arc<PgConfig>,
    role: &'static str,
    connect_failures: Arc<ConnectFailures>,
}

/// bb8 opens connections in the background and does not tell a waiting `get` that opening one
/// failed: the waiter would sit out the whole acquire timeout while the database is down.
/// This sink hears the failure and wakes the waiters, who then answer "unreachable" at once.
#[derive(Default)]
struct ConnectFailures {
    notify: tokio::sync::Notify,
    last: std::sync::Mutex<Option<String>>,
}

#[derive(Clone)]
struct FailureSink(Arc<ConnectFailures>);

impl std::fmt::Debug for FailureSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailureSink")
    }
}

impl bb8::ErrorSink<PoolError> for FailureSink {
    fn sink(&self, error: PoolError) {
        if let PoolError::ConnectionError(e) = &error {
            tracing::warn!(error = %e, "cannot open a database connection");
            if let Ok(mut last) = self.0.last.lock() {
                *last = Some(e.to_string());
            }
            self.0.notify.notify_waiters();
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<PoolError>> {
        Box::new(self.clone())
    }
}

/// What a pool looks like now, for `/metrics` and the monitoring dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Connections open (idle + in use).
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Connections open beyond the warm `min_idle` set (opened under load, closed when idle).
    pub overflow: u32,
    pub min_idle: u32,
    pub max_size: u32,
    /// Requests waiting for a connection right now.
    pub waiters: u64,
    pub connections_created: u64,
    pub connections_closed: u64,
    /// Checkouts that gave up after the acquire timeout.
    pub timeouts: u64,
    /// Checkouts that had to wait, and the total time they waited.
    pub waited: u64,
    pub wait_time_ms: u64,
}

impl PgPool {
    /// Builds the pool without waiting for a connection: a service starts even while the
    /// database is down, and reports itself unready until it is back.
    pub fn new(config: &PgConfig, url: &str, role: &'static str, slow: SlowQueryConfig) -> Self {
        let setup = ConnectionSetup {
            application_name: format!(
                "{}{}",
                config.application_name,
                if role == "replica" { "-ro" } else { "" }
            ),
            statement_timeout_ms: config.statement_timeout.as_millis() as u64,
            read_only: role == "replica",
            session_settings: config.session_settings,
            slow,
        };
        let url = url.to_owned();
        let connect_failures = Arc::new(ConnectFailures::default());
        let sink = FailureSink(connect_failures.clone());
        let settings = config.clone();
        let build = move |share: Share| {
            let manager = Manager::new_with_config(url.clone(), manager_config(&settings, &setup));
            bb8::Pool::builder()
                .error_sink(Box::new(sink.clone()))
                .max_size(share.max_size)
                .min_idle(Some(share.min_idle))
                .connection_timeout(settings.acquire_timeout)
                .max_lifetime(Some(settings.max_lifetime))
                .idle_timeout(Some(settings.idle_timeout))
                .test_on_check_out(settings.test_on_checkout)
                // A failed connect is reported (see `ConnectFailures`) instead of retried until
                // the acquire timeout: a dead database answers 503 quickly, not after 30 s.
                .retry_connection(false)
                .build_unchecked(manager)
        };
        let inner = Arc::new(PerThread::new(
            Share::of(config.min_idle, config.max_size, config.threads),
            Box::new(build),
        ));
        Self {
            inner,
            config: Arc::new(config.clone()),
            role,
            connect_failures,
        }
    }

    /// Checks out a connection, or says why none could be had within the acquire timeout.
    pub async fn get(&self) -> Result<PgConn, DbError> {
        self.get_from(self.inner.get()).await
    }

    /// A connection for a check made now and then (readiness): on a thread that does not
    /// query otherwise (the admin listener's), one connection at most and none kept warm.
    pub async fn get_for_check(&self) -> Result<PgConn, DbError> {
        self.get_from(self.inner.get_with(Share::CHECK)).await
    }

    async fn get_from(&self, pool: bb8::Pool<Manager>) -> Result<PgConn, DbError> {
        let failed = self.connect_failures.notify.notified();
        let got = tokio::select! {
            got = pool.get_owned() => got,
            () = failed => {
                let why = self.connect_failures.last.lock().ok().and_then(|l| l.clone());
                return Err(DbError::Unreachable(why.unwrap_or_else(|| "connection failed".into())));
            }
        };
        got.map_err(|e| match e {
            bb8::RunError::TimedOut => DbError::PoolTimeout(self.config.acquire_timeout),
            bb8::RunError::User(PoolError::ConnectionError(e)) => {
                DbError::Unreachable(e.to_string())
            }
            bb8::RunError::User(PoolError::QueryError(e)) => DbError::Unreachable(e.to_string()),
        })
    }

    /// Every thread's pool, added up.
    pub fn stats(&self) -> PoolStats {
        let mut t = PoolStats {
            size: 0,
            idle: 0,
            in_use: 0,
            overflow: 0,
            min_idle: self.config.min_idle,
            max_size: self.config.max_size,
            waiters: 0,
            connections_created: 0,
            connections_closed: 0,
            timeouts: 0,
            waited: 0,
            wait_time_ms: 0,
        };
        let mut warm = 0;
        for (share, pool) in self.inner.each() {
            let state = pool.state();
            let s = &state.statistics;
            t.size += state.connections;
            t.idle += state.idle_connections;
            t.in_use += state.connections.saturating_sub(state.idle_connections);
            t.waiters += s.pending_gets();
            t.connections_created += s.connections_created;
            t.connections_closed += s.connections_closed_broken
                + s.connections_closed_invalid
                + s.connections_closed_max_lifetime
                + s.connections_closed_idle_timeout;
            t.timeouts += s.get_timed_out;
            t.waited += s.get_waited;
            t.wait_time_ms += s.get_wait_time.as_millis() as u64;
            warm += share.min_idle;
        }
        t.overflow = t.size.saturating_sub(warm);
        t
    }

    pub fn role(&self) -> &'static str {
        self.role
    }
}

/// How a thread's pool checks and opens its connections.
fn manager_config(config: &PgConfig, setup: &ConnectionSetup) -> ManagerConfig<AsyncPgConnection> {
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.recycling_method = if config.ping_on_checkout {
        RecyclingMethod::CustomQuery(PING_SQL.into())
    } else if config.test_on_checkout {
        // Measured: the ping was one statement in two PostgreSQL ran under a send, parsed
        // anew each time; this check catches what the ping caught on one machine (a
        // server that closed the connection) without it.
        RecyclingMethod::CustomFunction(Box::new(|conn| {
            use diesel_async::pooled_connection::PoolableConnection;
            let broken = conn.is_broken();
            async move {
                if broken {
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::ClosedConnection,
                        Box::new("the connection was closed".to_owned()),
                    ))
                } else {
                    Ok(())
                }
            }
            .boxed()
        }))
    } else {
        RecyclingMethod::Fast
    };
    let setup = setup.clone();
    manager_config.custom_setup =
        Box::new(move |url| setup.clone().connect(url.to_owned()).boxed());
    manager_config
}

#[derive(Clone)]
struct ConnectionSetup {
    application_name: String,
    statement_timeout_ms: u64,
    read_only: bool,
    session_settings: bool,
    slow: SlowQueryConfig,
}

impl ConnectionSetup {
    async fn connect(self, url: String) -> Result<AsyncPgConnection, ConnectionError> {
        let mut conn = AsyncPgConnection::establish(&url).await?;
        if !self.session_settings {
            conn.set_instrumentation(QueryInstrumentation::new(self.slow));
            return Ok(conn);
        }
        // Quoted as a SQL literal; the name comes from our own config, never from a request.
        let name = self.application_name.replace('\'', "''");
        let mut setup = format!(
            "SET application_name = '{name}'; SET statement_timeout = {}",
            self.statement_timeout_ms
        );
        if self.read_only {
            setup.push_str("; SET default_transaction_read_only = on");
        }
        conn.batch_execute(&setup)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        // Installed after the set-up statements, so they are neither timed nor counted.
        conn.set_instrumentation(QueryInstrumentation::new(self.slow));
        Ok(conn)
    }
}

/// The pools a service uses: the primary for writes, and reads on the replica when there is one.
#[derive(Clone)]
pub struct Db {
    primary: PgPool,
    replica: Option<PgPool>,
}

impl Db {
    pub fn new(config: &PgConfig, slow: SlowQueryConfig) -> Self {
        let primary = PgPool::new(config, &config.url, "primary", slow);
        let replica = config
            .replica_url
            .as_deref()
            .map(|url| PgPool::new(config, url, "replica", slow));
        Self { primary, replica }
    }

    /// A connection for writes, and for reads that must see the caller's own last write.
    pub async fn write(&self) -> Result<PgConn, DbError> {
        self.primary.get().await
    }

    /// A connection for read-only queries: the replica when configured, else the primary.
    pub async fn read(&self) -> Result<PgConn, DbError> {
        self.replica.as_ref().unwrap_or(&self.primary).get().await
    }

    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    pub fn replica(&self) -> Option<&PgPool> {
        self.replica.as_ref()
    }

    /// Statistics of every pool, labelled by role.
    pub fn stats(&self) -> Vec<(&'static str, PoolStats)> {
        std::iter::once(&self.primary)
            .chain(self.replica.as_ref())
            .map(|p| (p.role(), p.stats()))
            .collect()
    }

    /// Readiness: can the primary run a query right now?
    pub async fn ping(&self) -> Result<(), DbError> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.primary.get_for_check().await?;
        diesel::sql_query(PING_SQL).execute(&mut *conn).await?;
        Ok(())
    }
}

/// A connection outside any pool and without a statement timeout, for operator work
/// (migrations, seeding, EXPLAIN). Still instrumented.
pub async fn connect_unpooled(
    url: &str,
    application_name: &str,
) -> Result<AsyncPgConnection, ConnectionError> {
    let setup = ConnectionSetup {
        application_name: application_name.to_owned(),
        statement_timeout_ms: 0,
        read_only: false,
        session_settings: true,
        slow: SlowQueryConfig::default(),
    };
    setup.connect(url.to_owned()).await
}

/// Runs SQL with no result (several statements allowed), for tools and the test harness.
pub async fn batch_execute(conn: &mut AsyncPgConnection, sql: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(sql).await
}

/// Whether a database exists and is marked as a template (`None` if it does not exist).
pub async fn database_is_template(admin_url: &str, name: &str) -> Result<Option<bool>, DbError> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        datistemplate: bool,
    }
    let mut conn = connect_unpooled(admin_url, "db-test-admin")
        .await
        .map_err(|e| DbError::Unreachable(e.to_string()))?;
    let row: Option<Row> =
        diesel::sql_query("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await
            .optional()?;
    Ok(row.map(|r| r.datistemplate))
}

/// Creates the database `url` names, through the server's `postgres` database, unless it
/// exists. Returns whether it created it.
pub async fn create_database_if_missing(url: &str) -> Result<bool, DbError> {
    let (server, rest) = url
        .rsplit_once('/')
        .ok_or_else(|| DbError::Unreachable(format!("no database name in {url}")))?;
    let (name, query) = match rest.split_once('?') {
        Some((n, q)) => (n, format!("?{q}")),
        None => (rest, String::new()),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(DbError::Unreachable(format!(
            "unusable database name {name:?}"
        )));
    }
    let admin = format!("{server}/postgres{query}");
    if database_is_template(&admin, name).await?.is_some() {
        return Ok(false);
    }
    let mut conn = connect_unpooled(&admin, "dreamctl")
        .await
        .map_err(|e| DbError::Unreachable(e.to_string()))?;
    conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    Ok(true)
}
