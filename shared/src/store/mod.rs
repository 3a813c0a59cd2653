//! The database: one pool, queries scoped to one tenant, migrations.
//!
//! Every query runs unnamed (`persistent(false)` and no statement cache), because Supabase's
//! transaction-mode pooler (PgBouncer/Supavisor) hands each transaction to any server
//! connection, where a named prepared statement from another transaction does not exist.
//!
//! Tenant-scoped work runs in a transaction opened by [`Store::begin_for_tenant`], which
//! switches to the `alphadome_app` role (no BYPASSRLS) and records the tenant for the
//! row-level-security policies, in the same round trip as `BEGIN`.

mod coalesce;
mod context;
mod flags;
mod knowledge;
pub mod literal;
mod pipeline;
mod tenants;
mod usage;

pub use context::*;
pub use flags::*;
pub use knowledge::*;
pub use pipeline::*;
pub use tenants::*;
pub use usage::*;

use anyhow::Context as _;
use coalesce::Durability;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::domain::TenantId;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Errors a store caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the text says which, in the operator's words.
    #[error("{0}")]
    Conflict(String),
    /// The thing asked for does not exist (or is not visible to this tenant).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Connection options that work directly against Postgres and through a transaction-mode
/// pooler alike.
pub fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    use sqlx::ConnectOptions;
    Ok(PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?
        .statement_cache_capacity(0)
        .application_name("alphadome")
        // Statements carry customers' words and numbers (the hot path passes them as
        // literals): sqlx must never log them, not even the slow ones.
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(1)))
}

/// The database handle shared by every part of a process.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// The pipeline's calls, several tenants' to a round trip ([`coalesce`]).
    calls: std::sync::Arc<coalesce::Coalescer>,
}

impl Store {
    /// Connects lazily-checked: fails fast with a one-line reason when the server is unreachable.
    pub async fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<Self> {
        let opts = connect_options(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(describe_connect_error)?;
        Ok(Self::from_pool(pool))
    }

    /// A pool that connects on first use: a Lambda's init phase then costs no network round
    /// trip (a bad URL still fails here, at start).
    pub fn connect_lazy(url: &SecretString, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(connect_options(url)?);
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Self {
        // Half the pool for combined calls (each carries any number of tenants' calls); the
        // rest stays free for the context loads and owner reads that run beside them.
        let in_flight = (pool.options().get_max_connections() as usize / 2).max(1);
        Self {
            calls: std::sync::Arc::new(coalesce::Coalescer::new(pool.clone(), in_flight)),
            pool,
        }
    }

    /// Runs a statement made by [`literal::json_select`] in a transaction of its own, in one
    /// round trip shared with the other calls made at the same time (see [`coalesce`]).
    pub(crate) async fn fetch_doc(&self, sql: String) -> anyhow::Result<Option<serde_json::Value>> {
        self.fetch_doc_as(sql, Durability::Durable).await
    }

    /// [`Self::fetch_doc`] with the durability the call needs: a [`Durability::Lazy`] call's
    /// function commits asynchronously on its own, so it needs no flush from the round trip.
    pub(crate) async fn fetch_doc_as(
        &self,
        sql: String,
        durability: Durability,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        self.calls.fetch_json(sql, durability).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction that acts for `tenant` only, in one round trip.
    pub async fn begin_for_tenant(
        &self,
        tenant: TenantId,
    ) -> anyhow::Result<Transaction<'static, Postgres>> {
        // The id is a parsed UUID, so formatting it into the statement cannot inject SQL.
        let begin = format!(
            "BEGIN; SET LOCAL ROLE alphadome_app; SELECT alphadome.act_for_tenant('{}'::uuid)",
            tenant.0
        );
        self.pool
            .begin_with(begin)
            .await
            .context("opening a tenant transaction")
    }
}

/// Creates the database if it does not exist, then applies pending migrations.
pub async fn migrate(url: &SecretString) -> anyhow::Result<()> {
    let opts = connect_options(url)?;
    let raw = url.expose_secret();
    if !Postgres::database_exists(raw)
        .await
        .map_err(describe_connect_error)?
    {
        Postgres::create_database(raw)
            .await
            .context("creating the database")?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(describe_connect_error)?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    pool.close().await;
    Ok(())
}

/// Turns a connection failure into one line that does not echo the URL (it holds a password).
fn describe_connect_error(err: sqlx::Error) -> anyhow::Error {
    let reason = match &err {
        sqlx::Error::Io(e) => format!("cannot reach the database server ({})", e.kind()),
        sqlx::Error::Tls(_) => "TLS handshake with the database failed".to_owned(),
        sqlx::Error::PoolTimedOut => "timed out connecting to the database".to_owned(),
        sqlx::Error::Database(db) => {
            format!("the database refused the connection: {}", db.message())
        }
        sqlx::Error::Configuration(_) => "DATABASE_URL is not a valid PostgreSQL URL".to_owned(),
        other => format!("database connection failed: {other}"),
    };
    anyhow::anyhow!(reason)
}

/// Maps a unique violation to a readable conflict, keeping other errors as they are.
pub(crate) fn conflict_or(
    err: sqlx::Error,
    describe: impl Fn(&str) -> Option<String>,
) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            if let Some(text) = db.constraint().and_then(&describe) {
                return StoreError::Conflict(text);
            }
        }
    }
    StoreError::Unexpected(anyhow::Error::new(err))
}
