//! The shared store: PostgreSQL, for teams whose Terraform runs on many machines.
//!
//! Same tables and the same [`Tx`] primitives as the SQLite backend; the IPAM rules stay in
//! `ops`. Locking (see ARCHITECTURE.md): transactions run at READ COMMITTED, and every
//! operation that reads-then-writes a subnet first takes a transaction-scoped advisory lock
//! on that subnet (`lock_subnet`), or on the vCenter for subnet range changes
//! (`lock_vcenter`). Allocations in different subnets run in parallel; two in the same subnet
//! queue on the lock, and each statement after it sees what the previous holder committed.
//!
//! The client is tokio-postgres. Store operations are sync (they run on the blocking threads
//! of `Store::blocking`), so the backend keeps the runtime's [`Handle`] and drives each query
//! with `Handle::block_on` from that thread, while every connection's I/O task runs on the
//! runtime itself. Without a multi-threaded runtime around (sync tests, benches) it owns a
//! small one. Connections come from a pool (deadpool); one found closed is dropped there.
//!
//! Which failures are run again (ARCHITECTURE.md, "PostgreSQL"):
//! - a deadlock or serialization failure: the server rolled the transaction back;
//! - the server went away (shutdown 57P01/57P02, starting up 57P03, connection closed or
//!   reset) before COMMIT was sent: the server rolled it back too; the transaction runs again
//!   on a fresh connection, for up to [`RECONNECT_FOR`] while the server comes back;
//! - the answer to COMMIT was lost: the outcome is not assumed but asked for on a fresh
//!   connection (`txid_status` of the transaction id taken just before COMMIT): committed is
//!   success, aborted runs it again.
//!
//! No wait on the server is unbounded (a plan's readers all wait on the store): a statement
//! and a connection attempt each end after the answer timeout ([`answer_timeout`],
//! `VSPHEREIPAM_ANSWER_TIMEOUT` as for vCenter), the wait for a pooled connection (which may
//! include an attempt) after twice that. A statement left
//! unanswered that long gets its connection closed and fails with an error that says so; it
//! is not run again (a server silent for minutes is not about to answer), except that a
//! silent COMMIT is asked about like a lost one.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use ipnet::IpNet;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Row};

use super::pgconn::{self, ConnInfo, SslMode};
use super::{
    ip_column, ip_of_column, key_column, key_of_column, AddressRecord, Backend, OwnerKind, Result,
    StoreError, SubnetRecord, Tx, WireLink,
};
use crate::ipam::ranges::{Key, Range};
use crate::ipam::subnet::{Policy, SubnetSpec};

/// Schema versions, applied in order; never edit a released one, add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE subnets (
    id          TEXT PRIMARY KEY,
    vcenter     TEXT NOT NULL,
    name        TEXT NOT NULL,
    wire_id     TEXT NOT NULL,
    cidr        TEXT NOT NULL,
    start_ip    BIGINT NOT NULL,
    end_ip      BIGINT NOT NULL,
    gateway     BIGINT,
    dns_servers TEXT NOT NULL,
    domain      TEXT,
    vlan_id     INTEGER,
    policy      TEXT NOT NULL,
    reserved    TEXT NOT NULL
);
CREATE INDEX subnets_vcenter ON subnets (vcenter);
CREATE TABLE subnet_wires (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    wire_id   TEXT NOT NULL,
    detected  BOOLEAN NOT NULL,
    attached  BOOLEAN NOT NULL,
    PRIMARY KEY (subnet_id, wire_id)
);
CREATE TABLE addresses (
    subnet_id  TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    ip         BIGINT NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    vm_uuid    TEXT,
    mac        TEXT,
    wire_id    TEXT,
    pending    BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX addresses_owner ON addresses (owner_kind, owner_id);
CREATE TABLE held_runs (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    start_ip  BIGINT NOT NULL,
    end_ip    BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, start_ip)
);
"#,
    r#"
CREATE INDEX addresses_vm ON addresses (vm_uuid);
CREATE INDEX addresses_kind ON addresses (subnet_id, owner_kind);
"#,
    r#"
ALTER TABLE addresses ADD COLUMN description TEXT;
"#,
    // Addresses of either family: every address column becomes the 16 bytes of its number
    // (`super::key_column`; IPv4 as ::ffff:a.b.c.d), in place (the keys' indexes are rebuilt).
    r#"
ALTER TABLE subnets
    ALTER COLUMN start_ip TYPE BYTEA
        USING decode('00000000000000000000ffff' || lpad(to_hex(start_ip), 8, '0'), 'hex'),
    ALTER COLUMN end_ip TYPE BYTEA
        USING decode('00000000000000000000ffff' || lpad(to_hex(end_ip), 8, '0'), 'hex'),
    ALTER COLUMN gateway TYPE BYTEA
        USING decode('00000000000000000000ffff' || lpad(to_hex(gateway), 8, '0'), 'hex');
ALTER TABLE addresses
    ALTER COLUMN ip TYPE BYTEA
        USING decode('00000000000000000000ffff' || lpad(to_hex(ip), 8, '0'), 'hex');
ALTER TABLE held_runs
    ALTER COLUMN start_ip TYPE BYTEA
        USING decode('00000000000000000000ffff' || lpad(to_hex(start_ip), 8, '0'), 'hex'),
    ALTER COLUMN end_ip TYPE BYTEA
        USING decode('00000000000000000000ffff' || lpad(to_hex(end_ip), 8, '0'), 'hex');
"#,
];

/// Advisory lock key that serializes migrations of one database.
const MIGRATION_LOCK: i64 = 0x7653_7068_6970_616d; // "vsphipam"

/// How often a transaction the server aborted (deadlock, serialization) is run again.
const RETRIES: usize = 5;

/// How long a transaction is retried while the server is away (a restart takes seconds).
pub const RECONNECT_FOR: Duration = Duration::from_secs(15);

/// How long the server may leave a statement, a connection attempt or the wait for a pooled
/// connection unanswered, by default: as long as vCenter (`client::DEFAULT_ANSWER_TIMEOUT`).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The answer timeout: `VSPHEREIPAM_ANSWER_TIMEOUT` (e.g. `90s`, `5m`) or the default. The
/// vCenter client reads the same setting and warns about a value it cannot parse.
pub fn answer_timeout() -> Duration {
    std::env::var("VSPHEREIPAM_ANSWER_TIMEOUT")
        .ok()
        .and_then(|raw| humantime::parse_duration(raw.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_ANSWER_TIMEOUT)
}

/// Connections one process keeps: Terraform runs up to 10 operations at once, and six
/// processes sharing a server stay well inside its default of 100 connections.
const POOL_SIZE: usize = 4;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A database error with the server's own message, never the connection string.
fn pg_error(e: &tokio_postgres::Error) -> StoreError {
    unavailable(pg_message(e))
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("PostgreSQL: {} ({})", d.message(), d.code().code()),
        None => {
            // tokio-postgres' own text names only the kind ("error connecting to server");
            // the cause says what happened.
            let causes: Vec<String> = pgconn::chain(e).map(|c| c.to_string()).collect();
            let mut text = causes[0].clone();
            for cause in &causes[1..] {
                if !text.contains(cause.as_str()) {
                    text = format!("{text}: {cause}");
                }
            }
            format!("PostgreSQL: {text}")
        }
    }
}

/// What a statement the server left unanswered for `answer` fails with.
fn silence(answer: Duration) -> StoreError {
    unavailable(format!(
        "PostgreSQL: no answer from the server within {}; the connection was closed and \
         nothing of the transaction was committed. Check the server and the network to it \
         (VSPHEREIPAM_ANSWER_TIMEOUT sets how long to wait)",
        humantime::format_duration(answer)
    ))
}

/// The error of a failed exchange on `conn`: [`silence`] when that is why it failed.
fn silence_or(conn: &Conn, answer: Duration, e: &tokio_postgres::Error) -> StoreError {
    if conn.silent.load(Ordering::SeqCst) {
        silence(answer)
    } else {
        pg_error(e)
    }
}

/// The server aborted the transaction to resolve a conflict: running it again is safe.
fn conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

/// The server went away or is coming back: a fresh connection may succeed soon.
fn gone(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
            || code.code().starts_with("08");
    }
    pgconn::chain(e).any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            use std::io::ErrorKind as K;
            matches!(
                io.kind(),
                K::ConnectionReset
                    | K::ConnectionAborted
                    | K::ConnectionRefused
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::NotConnected
            )
        })
    })
}

/// The server cannot be reached at all: trying another TLS mode would not help.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    pgconn::chain(e).any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            use std::io::ErrorKind as K;
            matches!(
                io.kind(),
                K::ConnectionRefused | K::TimedOut | K::NotFound | K::AddrNotAvailable
            )
        })
    })
}

/// A failed connection attempt, said so the user knows which setting to change.
#[derive(Debug)]
pub struct ConnectError {
    message: String,
    /// The server is away or starting: worth retrying.
    gone: bool,
}

impl ConnectError {
    fn of(e: &tokio_postgres::Error, info: &ConnInfo) -> Self {
        let mut message = format!("cannot connect: {}", pg_message(e));
        if let Some(hint) = pgconn::tls_hint(e, info) {
            message = format!("{message}. {hint}");
        } else if message.contains("server does not support TLS") {
            message = format!(
                "{message}. sslmode={} needs TLS: enable ssl on the server, or set sslmode=prefer \
                 (TLS when the server offers it)",
                info.sslmode.as_str()
            );
        }
        ConnectError {
            message,
            gone: gone(e),
        }
    }

    /// Both attempts of `allow` / `prefer` failed.
    fn both(first: ConnectError, second: ConnectError, first_was_tls: bool) -> Self {
        let (tls, plain) = if first_was_tls {
            (&first, &second)
        } else {
            (&second, &first)
        };
        ConnectError {
            message: format!("with TLS: {}; without TLS: {}", tls.message, plain.message),
            gone: first.gone && second.gone,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Makes connections the way libpq's sslmode says (see `pgconn`).
struct Connector {
    info: ConnInfo,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    handle: Handle,
    /// How long a connection attempt may go unanswered.
    answer: Duration,
}

/// A pooled connection: the client and the I/O task that serves it.
struct Conn {
    client: Client,
    io: tokio::task::AbortHandle,
    /// Set when the server left a statement unanswered for the answer timeout and the
    /// connection was closed for it.
    silent: AtomicBool,
}

impl Connector {
    /// One connection attempt in tokio-postgres' TLS `mode`; its I/O task goes to the runtime.
    async fn attempt(
        &self,
        mode: tokio_postgres::config::SslMode,
    ) -> Result<Conn, tokio_postgres::Error> {
        let mut config = self.info.config.clone();
        config.ssl_mode(mode);
        let (client, connection) = config.connect(self.tls.clone()).await?;
        let io = self.handle.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {}", pg_message(&e));
            }
        });
        Ok(Conn {
            client,
            io: io.abort_handle(),
            silent: AtomicBool::new(false),
        })
    }

    /// Connects, or fails once the server has left the attempt unanswered for the answer
    /// timeout (a server that accepts the TCP connection and then says nothing).
    async fn connect(&self) -> Result<Conn, ConnectError> {
        match tokio::time::timeout(self.answer, self.connect_in_mode()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ConnectError {
                message: format!(
                    "cannot connect: no answer from the server within {}",
                    humantime::format_duration(self.answer)
                ),
                gone: false,
            }),
        }
    }

    async fn connect_in_mode(&self) -> Result<Conn, ConnectError> {
        use tokio_postgres::config::SslMode as Wire;
        let (first, fallback) = match self.info.sslmode {
            // libpq uses no TLS on Unix-domain sockets, whatever sslmode says.
            _ if self.info.local_only() => (Wire::Disable, None),
            SslMode::Disable => (Wire::Disable, None),
            SslMode::Allow => (Wire::Disable, Some(Wire::Require)),
            // tokio-postgres' prefer already goes on in plain text when the server has no TLS;
            // libpq also tries plain text when the TLS attempt failed.
            SslMode::Prefer => (Wire::Prefer, Some(Wire::Disable)),
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => (Wire::Require, None),
        };
        let error = match self.attempt(first).await {
            Ok(client) => return Ok(client),
            Err(e) => e,
        };
        match fallback {
            Some(second) if !unreachable(&error) => match self.attempt(second).await {
                Ok(client) => Ok(client),
                Err(e2) => Err(ConnectError::both(
                    ConnectError::of(&error, &self.info),
                    ConnectError::of(&e2, &self.info),
                    first != Wire::Disable,
                )),
            },
            _ => Err(ConnectError::of(&error, &self.info)),
        }
    }
}

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = ConnectError;

    async fn create(&self) -> Result<Conn, ConnectError> {
        self.connect().await
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<ConnectError> {
        if conn.client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        Ok(())
    }
}

type Pool = managed::Pool<Connector>;
type Pooled = managed::Object<Connector>;

/// The runtime the backend drives its futures on: the caller's, or one of its own.
struct Driver {
    handle: Handle,
    _own: Option<OwnRuntime>,
    /// How long the server may leave a statement unanswered.
    answer: Duration,
}

/// Shut down without waiting, so dropping the store is safe anywhere, even inside a runtime.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Driver {
    fn new(answer: Duration) -> Result<Self> {
        if let Ok(handle) = Handle::try_current() {
            if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
                return Ok(Driver {
                    handle,
                    _own: None,
                    answer,
                });
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vsphereipam-postgres")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the PostgreSQL client: {e}")))?;
        Ok(Driver {
            handle: runtime.handle().clone(),
            _own: Some(OwnRuntime(Some(runtime))),
            answer,
        })
    }

    /// Runs `f` to completion on this (blocking, non-runtime) thread.
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    /// Runs one exchange with the server on `conn` (this thread, as [`block_on`]). When the
    /// server leaves it unanswered for the answer timeout, the connection is closed: the
    /// exchange then fails as on a lost connection, and `conn.silent` says why.
    fn exchange<T, E>(
        &self,
        conn: &Conn,
        f: impl Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        self.handle.block_on(async {
            let mut f = std::pin::pin!(f);
            tokio::select! {
                out = &mut f => out,
                () = tokio::time::sleep(self.answer) => {
                    tracing::warn!(
                        "PostgreSQL left a statement unanswered for {}: closing the connection",
                        humantime::format_duration(self.answer)
                    );
                    conn.silent.store(true, Ordering::SeqCst);
                    // Dropping the I/O task ends every request on the connection with a
                    // "connection closed" error.
                    conn.io.abort();
                    f.await
                }
            }
        })
    }
}

pub struct PostgresBackend {
    described: String,
    pool: Pool,
    // Declared last: dropped after the pool and its connections.
    driver: Driver,
}

/// How one run of a transaction ended.
enum Attempt {
    Done(Result<()>),
    /// Rolled back by the server to resolve a conflict.
    Conflict(StoreError),
    /// The connection died before COMMIT was sent: the server rolled back.
    Gone(StoreError),
    /// The answer to COMMIT of transaction `xid` was lost.
    CommitUnknown {
        xid: i64,
        error: StoreError,
    },
}

enum Outcome {
    Committed,
    Aborted,
}

impl PostgresBackend {
    /// Connects to a libpq connection string (URL or key=value) and applies the migrations.
    pub fn open(conninfo: &str) -> Result<Self> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let info = pgconn::parse(conninfo, home.as_deref()).map_err(unavailable)?;
        let described = info.describe();
        let located = |reason: String| unavailable(format!("{described}: {reason}"));
        let tls = info.tls().map_err(&located)?;
        let answer = answer_timeout();
        let driver = Driver::new(answer)?;
        let connector = Connector {
            info,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            handle: driver.handle.clone(),
            answer,
        };
        let pool = Pool::builder(connector)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| located(e.to_string()))?;
        let backend = PostgresBackend {
            described,
            pool,
            driver,
        };
        backend.migrate().map_err(|e| backend.located(e))?;
        Ok(backend)
    }

    /// Names the store (without its password) in an unavailability error.
    fn located(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("{}: {reason}", self.described))
            }
            other => other,
        }
    }

    /// A pooled connection; `Err(gone, error)`. Waiting for one is bounded too: a connection
    /// attempt ends after the answer timeout, the whole wait (a busy pool freeing one, then
    /// perhaps an attempt) after twice that.
    fn connection(&self) -> std::result::Result<Pooled, (bool, StoreError)> {
        let waited = self.driver.block_on(async {
            // A connection attempt inside the wait has its own bound, reported first.
            tokio::time::timeout(self.driver.answer * 2, self.pool.get()).await
        });
        match waited {
            Ok(got) => got.map_err(|e| match e {
                managed::PoolError::Backend(e) => (e.gone, unavailable(e.message)),
                other => (
                    false,
                    unavailable(format!("PostgreSQL connection pool: {other}")),
                ),
            }),
            Err(_) => Err((
                false,
                unavailable(format!(
                    "no PostgreSQL connection of this process came free within {} ({} in use)",
                    humantime::format_duration(self.driver.answer * 2),
                    self.pool.status().size
                )),
            )),
        }
    }

    /// The error of a failed exchange on `conn`, saying so when the server went silent.
    fn failure(&self, conn: &Conn, e: &tokio_postgres::Error) -> StoreError {
        silence_or(conn, self.driver.answer, e)
    }

    /// While the server is away: waits a little and says whether to try again.
    fn wait_for_server(since: &mut Option<Instant>) -> bool {
        let since = *since.get_or_insert_with(Instant::now);
        let waited = since.elapsed();
        if waited >= RECONNECT_FOR {
            return false;
        }
        std::thread::sleep((waited / 2).clamp(Duration::from_millis(50), Duration::from_secs(1)));
        true
    }

    fn migrate(&self) -> Result<()> {
        let mut away = None;
        let client = loop {
            match self.connection() {
                Ok(c) => break c,
                // A server still starting up (57P03) is waited for; others fail at once, so a
                // wrong setting is reported without delay.
                Err((true, e)) if e.to_string().contains("57P03") => {
                    if !Self::wait_for_server(&mut away) {
                        return Err(e);
                    }
                }
                Err((_, e)) => return Err(e),
            }
        };
        let conn: &Conn = &client;
        let outcome = self.driver.exchange(conn, async {
            let client: &Client = &conn.client;
            let db = |e: tokio_postgres::Error| pg_error(&e);
            client.batch_execute("BEGIN").await.map_err(db)?;
            // Several processes may start on a new database at once: one migrates, the others
            // wait here and then find nothing left to do.
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(db)?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                )
                .await
                .map_err(db)?;
            let current: i32 = client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
                .await
                .map_err(db)?
                .get(0);
            if current as usize > MIGRATIONS.len() {
                return Err(unavailable(format!(
                    "the database has schema version {current}, newer than this provider knows \
                     ({}); upgrade the provider",
                    MIGRATIONS.len()
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                client.batch_execute(sql).await.map_err(db)?;
                client
                    .execute(
                        "INSERT INTO schema_version (version) VALUES ($1)",
                        &[&(i as i32 + 1)],
                    )
                    .await
                    .map_err(db)?;
            }
            client.batch_execute("COMMIT").await.map_err(db)
        });
        let outcome = outcome.map_err(|e| {
            if conn.silent.load(Ordering::SeqCst) {
                silence(self.driver.answer)
            } else {
                e
            }
        });
        if outcome.is_err() {
            // Its transaction may still be open: the connection goes, and the server rolls back.
            drop(managed::Object::take(client));
        }
        outcome
    }

    /// Runs `f` once in a transaction on `conn`.
    fn attempt(
        &self,
        conn: &Conn,
        commit: bool,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Attempt {
        let client = &conn.client;
        let silent = || conn.silent.load(Ordering::SeqCst);
        if let Err(e) = self.driver.exchange(conn, client.batch_execute("BEGIN")) {
            return if gone(&e) && !silent() {
                Attempt::Gone(pg_error(&e))
            } else {
                Attempt::Done(Err(self.failure(conn, &e)))
            };
        }
        let mut tx = PgTx {
            conn,
            driver: &self.driver,
            aborted: None,
            wrote: false,
        };
        let result = f(&mut tx);
        let (aborted, wrote) = (tx.aborted.take(), tx.wrote);
        match (result, aborted) {
            // A server silent for the answer timeout is not about to answer: no rerun (the
            // connection is closed, so nothing of the transaction commits).
            (Err(e), Some(_)) if silent() => Attempt::Done(Err(e)),
            (Err(e), Some(cause)) if conflict(&cause) => Attempt::Conflict(e),
            (Err(e), Some(cause)) if gone(&cause) => Attempt::Gone(e),
            (Err(e), cause) => {
                let _ = self.driver.exchange(conn, client.batch_execute("ROLLBACK"));
                // A statement or a row this code cannot take: the schema may have changed.
                let shaped = cause.is_some() || matches!(e, StoreError::Corrupt(_));
                match shaped.then(|| self.newer_schema(conn)).flatten() {
                    Some(newer) => Attempt::Done(Err(newer)),
                    None => Attempt::Done(Err(e)),
                }
            }
            // A dry run, or a transaction that read only: what it read stands whatever
            // becomes of the ROLLBACK / COMMIT.
            (Ok(()), _) if !commit => {
                let _ = self.driver.exchange(conn, client.batch_execute("ROLLBACK"));
                Attempt::Done(Ok(()))
            }
            (Ok(()), _) if !wrote => {
                let _ = self.driver.exchange(conn, client.batch_execute("COMMIT"));
                Attempt::Done(Ok(()))
            }
            (Ok(()), _) => {
                // The id the outcome can be asked by, should COMMIT's answer be lost.
                let xid: i64 = match self.driver.exchange(
                    conn,
                    client.query_one("SELECT txid_current_if_assigned()", &[]),
                ) {
                    Ok(row) => match row.get::<_, Option<i64>>(0) {
                        Some(xid) => xid,
                        None => {
                            let _ = self.driver.exchange(conn, client.batch_execute("COMMIT"));
                            return Attempt::Done(Ok(()));
                        }
                    },
                    Err(e) if silent() => return Attempt::Done(Err(self.failure(conn, &e))),
                    Err(e) if gone(&e) => return Attempt::Gone(pg_error(&e)),
                    Err(e) => {
                        let _ = self.driver.exchange(conn, client.batch_execute("ROLLBACK"));
                        return Attempt::Done(Err(pg_error(&e)));
                    }
                };
                match self.driver.exchange(conn, client.batch_execute("COMMIT")) {
                    Ok(()) => Attempt::Done(Ok(())),
                    Err(e) if conflict(&e) => Attempt::Conflict(pg_error(&e)),
                    // Sent and unanswered, silent or cut: the outcome is asked for.
                    Err(e) if gone(&e) => Attempt::CommitUnknown {
                        xid,
                        error: self.failure(conn, &e),
                    },
                    Err(e) => Attempt::Done(Err(pg_error(&e))),
                }
            }
        }
    }

    /// The error to give when a newer release migrated the store while this process was
    /// connected (its statements and rows no longer fit the tables): `None` when the schema is
    /// one this code knows, or cannot be read.
    fn newer_schema(&self, conn: &Conn) -> Option<StoreError> {
        let row = self
            .driver
            .exchange(
                conn,
                conn.client
                    .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[]),
            )
            .ok()?;
        let version: i32 = row.try_get(0).ok()?;
        (usize::try_from(version).is_ok_and(|v| v > MIGRATIONS.len()))
            .then(|| super::upgraded_meanwhile(version.into(), MIGRATIONS.len()))
    }

    /// Asks a fresh connection what became of transaction `xid`, waiting for the server.
    fn outcome_of(&self, xid: i64, away: &mut Option<Instant>) -> Result<Outcome> {
        loop {
            let asked = match self.connection() {
                Ok(conn) => {
                    let asked = self.driver.exchange(
                        &conn,
                        conn.client.query_one("SELECT txid_status($1)", &[&xid]),
                    );
                    let asked = asked.map_err(|e| {
                        let silent = conn.silent.load(Ordering::SeqCst);
                        (gone(&e) && !silent, self.failure(&conn, &e))
                    });
                    if asked.is_err() {
                        drop(managed::Object::take(conn));
                    }
                    asked
                }
                Err(e) => Err(e),
            };
            match asked.map(|row| row.get::<_, Option<String>>(0)) {
                Ok(Some(status)) if status == "committed" => return Ok(Outcome::Committed),
                Ok(Some(status)) if status == "aborted" => return Ok(Outcome::Aborted),
                // Still in progress (the old backend is finishing), or the server is away.
                Ok(Some(_)) | Err((true, _)) if Self::wait_for_server(away) => continue,
                Ok(status) => {
                    return Err(unavailable(format!(
                        "the answer to COMMIT was lost and the server reports transaction {xid} \
                         as {}; check the store's records before retrying",
                        status.as_deref().unwrap_or("unknown")
                    )))
                }
                Err((_, e)) => {
                    return Err(unavailable(format!(
                        "the answer to COMMIT was lost and the server cannot be asked about it \
                         ({e}); check the store's records before retrying"
                    )))
                }
            }
        }
    }
}

impl Backend for PostgresBackend {
    fn with_tx(&self, commit: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conflicts = 0;
        let mut away: Option<Instant> = None;
        loop {
            let client = match self.connection() {
                Ok(c) => c,
                Err((true, e)) if Self::wait_for_server(&mut away) => {
                    tracing::debug!("PostgreSQL unavailable, retrying: {e}");
                    continue;
                }
                Err((_, e)) => return Err(self.located(e)),
            };
            match self.attempt(&client, commit, f) {
                Attempt::Done(result) => return result.map_err(|e| self.located(e)),
                Attempt::Conflict(e) => {
                    conflicts += 1;
                    if conflicts >= RETRIES {
                        return Err(self.located(e));
                    }
                }
                Attempt::Gone(e) => {
                    drop(managed::Object::take(client));
                    tracing::info!(
                        "PostgreSQL connection lost in a transaction, running it again: {e}"
                    );
                    if !Self::wait_for_server(&mut away) {
                        return Err(self.located(e));
                    }
                }
                Attempt::CommitUnknown { xid, error } => {
                    drop(managed::Object::take(client));
                    tracing::info!(
                        xid,
                        "the answer to COMMIT was lost, asking the server: {error}"
                    );
                    match self.outcome_of(xid, &mut away) {
                        Ok(Outcome::Committed) => return Ok(()),
                        Ok(Outcome::Aborted) => continue,
                        Err(e) => return Err(self.located(e)),
                    }
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

struct PgTx<'a> {
    conn: &'a Conn,
    driver: &'a Driver,
    /// The server error that failed the transaction, kept to decide on a retry.
    aborted: Option<tokio_postgres::Error>,
    /// A statement changed something: the COMMIT's outcome matters.
    wrote: bool,
}

const SUBNET_COLUMNS: &str =
    "id, vcenter, name, wire_id, cidr, start_ip, end_ip, gateway, dns_servers, domain, vlan_id, policy, reserved";
const ADDRESS_COLUMNS: &str =
    "subnet_id, ip, owner_kind, owner_id, vm_uuid, mac, wire_id, pending, created_at, description";

/// A 16-byte address column as tokio-postgres binds a `bytea`.
fn pg_bytes(column: [u8; 16]) -> Vec<u8> {
    column.to_vec()
}

fn ip_of(bytes: &[u8]) -> Result<IpAddr> {
    ip_of_column(bytes, "an address column")
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|s| !s.is_empty())
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Column `i` of `row`: a column of another type than this code reads (a newer release changed
/// it) is an error, never a panic.
fn col<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| {
        let name = row.columns().get(i).map_or("?", |c| c.name());
        StoreError::Corrupt(format!("column {name:?}: {e}"))
    })
}

fn subnet_from_row(row: &Row) -> Result<SubnetRecord> {
    let bad = |what: &str| StoreError::Corrupt(format!("subnet column {what}"));
    let cidr: String = col(row, 4)?;
    let dns: String = col(row, 8)?;
    let policy: String = col(row, 11)?;
    let reserved: String = col(row, 12)?;
    Ok(SubnetRecord {
        id: col(row, 0)?,
        vcenter: col(row, 1)?,
        name: col(row, 2)?,
        wire_id: col(row, 3)?,
        domain: col(row, 9)?,
        spec: SubnetSpec {
            cidr: cidr.parse::<IpNet>().map_err(|_| bad("cidr"))?,
            start: ip_of(col(row, 5)?)?,
            end: ip_of(col(row, 6)?)?,
            gateway: col::<Option<&[u8]>>(row, 7)?.map(ip_of).transpose()?,
            dns_servers: split(&dns)
                .map(|s| s.parse().map_err(|_| bad("dns_servers")))
                .collect::<Result<_>>()?,
            vlan_id: col::<Option<i32>>(row, 10)?.map(|v| v as u16),
            policy: policy.parse::<Policy>().map_err(|_| bad("policy"))?,
            reserved: split(&reserved)
                .map(|s| s.parse().map_err(|_| bad("reserved")))
                .collect::<Result<_>>()?,
        },
    })
}

fn address_from_row(row: &Row) -> Result<AddressRecord> {
    let kind: String = col(row, 2)?;
    Ok(AddressRecord {
        subnet_id: col(row, 0)?,
        ip: ip_of(col(row, 1)?)?,
        owner_kind: kind.parse::<OwnerKind>()?,
        owner_id: col(row, 3)?,
        vm_uuid: col(row, 4)?,
        mac: col(row, 5)?,
        wire_id: col(row, 6)?,
        pending: col(row, 7)?,
        created_at: col(row, 8)?,
        description: col(row, 9)?,
    })
}

type Params<'p> = [&'p (dyn tokio_postgres::types::ToSql + Sync)];

impl PgTx<'_> {
    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        self.driver
            .exchange(self.conn, self.conn.client.query(sql, params))
            .map_err(|e| self.abort(e))
    }

    /// A statement that changes data.
    fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<()> {
        self.wrote = true;
        self.driver
            .exchange(self.conn, self.conn.client.execute(sql, params))
            .map(drop)
            .map_err(|e| self.abort(e))
    }

    /// The error for the caller; the original is kept for the retry decision.
    fn abort(&mut self, e: tokio_postgres::Error) -> StoreError {
        let out = silence_or(self.conn, self.driver.answer, &e);
        self.aborted = Some(e);
        out
    }

    fn subnet_query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<SubnetRecord>> {
        self.query(sql, params)?
            .iter()
            .map(subnet_from_row)
            .collect()
    }

    fn address_query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<AddressRecord>> {
        self.query(sql, params)?
            .iter()
            .map(address_from_row)
            .collect()
    }

    fn advisory_lock(&mut self, scope: &str, key: &str) -> Result<()> {
        let key = format!("vsphereipam/{scope}/{key}");
        self.query(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .map(drop)
    }
}

impl Tx for PgTx<'_> {
    fn subnets(&mut self, vcenter: Option<&str>) -> Result<Vec<SubnetRecord>> {
        match vcenter {
            Some(vc) => self.subnet_query(
                &format!(
                    "SELECT {SUBNET_COLUMNS} FROM subnets WHERE vcenter = $1 ORDER BY start_ip"
                ),
                &[&vc],
            ),
            None => self.subnet_query(
                &format!("SELECT {SUBNET_COLUMNS} FROM subnets ORDER BY start_ip"),
                &[],
            ),
        }
    }

    fn subnet(&mut self, id: &str) -> Result<Option<SubnetRecord>> {
        Ok(self
            .subnet_query(
                &format!("SELECT {SUBNET_COLUMNS} FROM subnets WHERE id = $1"),
                &[&id],
            )?
            .pop())
    }

    fn lock_subnet(&mut self, id: &str) -> Result<()> {
        self.advisory_lock("subnet", id)
    }

    fn lock_vcenter(&mut self, vcenter: &str) -> Result<()> {
        self.advisory_lock("vcenter", vcenter)
    }

    fn put_subnet(&mut self, s: &SubnetRecord) -> Result<()> {
        let spec = &s.spec;
        self.execute(
            &format!(
                "INSERT INTO subnets ({SUBNET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (id) DO UPDATE SET vcenter = excluded.vcenter, name = excluded.name,
                 wire_id = excluded.wire_id, cidr = excluded.cidr, start_ip = excluded.start_ip,
                 end_ip = excluded.end_ip, gateway = excluded.gateway, dns_servers = excluded.dns_servers,
                 domain = excluded.domain, vlan_id = excluded.vlan_id, policy = excluded.policy,
                 reserved = excluded.reserved"
            ),
            &[
                &s.id,
                &s.vcenter,
                &s.name,
                &s.wire_id,
                &spec.cidr.to_string(),
                &pg_bytes(ip_column(spec.start)),
                &pg_bytes(ip_column(spec.end)),
                &spec.gateway.map(|g| pg_bytes(ip_column(g))),
                &join(&spec.dns_servers),
                &s.domain,
                &spec.vlan_id.map(i32::from),
                &spec.policy.as_str(),
                &join(&spec.reserved),
            ],
        )
    }

    fn delete_subnet(&mut self, id: &str) -> Result<()> {
        self.execute("DELETE FROM subnets WHERE id = $1", &[&id])
    }

    fn wire_links(&mut self, subnet_id: &str) -> Result<Vec<WireLink>> {
        self.query(
            "SELECT wire_id, detected, attached FROM subnet_wires WHERE subnet_id = $1 ORDER BY wire_id",
            &[&subnet_id],
        )?
        .iter()
        .map(|r| {
            Ok(WireLink {
                wire_id: col(r, 0)?,
                detected: col(r, 1)?,
                attached: col(r, 2)?,
            })
        })
        .collect()
    }

    fn wire_links_in_vcenter(&mut self, vcenter: &str) -> Result<Vec<(String, WireLink)>> {
        Ok(self
            .query(
                "SELECT subnet_id, wire_id, detected, attached FROM subnet_wires
                 WHERE subnet_id IN (SELECT id FROM subnets WHERE vcenter = $1)
                 ORDER BY subnet_id, wire_id",
                &[&vcenter],
            )?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    WireLink {
                        wire_id: r.get(1),
                        detected: r.get(2),
                        attached: r.get(3),
                    },
                )
            })
            .collect())
    }

    fn put_wire_link(&mut self, subnet_id: &str, link: &WireLink) -> Result<()> {
        self.execute(
            "INSERT INTO subnet_wires (subnet_id, wire_id, detected, attached) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subnet_id, wire_id) DO UPDATE SET detected = excluded.detected, attached = excluded.attached",
            &[&subnet_id, &link.wire_id, &link.detected, &link.attached],
        )
    }

    fn delete_wire_link(&mut self, subnet_id: &str, wire_id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM subnet_wires WHERE subnet_id = $1 AND wire_id = $2",
            &[&subnet_id, &wire_id],
        )
    }

    fn addresses(&mut self, subnet_id: &str) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = $1 ORDER BY ip"),
            &[&subnet_id],
        )
    }

    fn address(&mut self, subnet_id: &str, ip: IpAddr) -> Result<Option<AddressRecord>> {
        Ok(self
            .address_query(
                &format!(
                    "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = $1 AND ip = $2"
                ),
                &[&subnet_id, &pg_bytes(ip_column(ip))],
            )?
            .pop())
    }

    fn addresses_of_owner(
        &mut self,
        kind: OwnerKind,
        owner_id: &str,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE owner_kind = $1 AND owner_id = $2 ORDER BY subnet_id, ip"),
            &[&kind.as_str(), &owner_id],
        )
    }

    fn addresses_of_kind(
        &mut self,
        subnet_id: &str,
        kind: OwnerKind,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = $1 AND owner_kind = $2 ORDER BY ip"),
            &[&subnet_id, &kind.as_str()],
        )
    }

    fn addresses_of_kind_in_vcenter(
        &mut self,
        vcenter: &str,
        kind: OwnerKind,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses
                 WHERE subnet_id IN (SELECT id FROM subnets WHERE vcenter = $1) AND owner_kind = $2
                 ORDER BY subnet_id, ip"
            ),
            &[&vcenter, &kind.as_str()],
        )
    }

    fn addresses_of_vm(&mut self, vm_uuid: &str) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE vm_uuid = $1 ORDER BY subnet_id, ip"
            ),
            &[&vm_uuid],
        )
    }

    fn insert_address(&mut self, a: &AddressRecord) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO addresses ({ADDRESS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &a.subnet_id,
                &pg_bytes(ip_column(a.ip)),
                &a.owner_kind.as_str(),
                &a.owner_id,
                &a.vm_uuid,
                &a.mac,
                &a.wire_id,
                &a.pending,
                &a.created_at,
                &a.description,
            ],
        )
    }

    fn delete_address(&mut self, subnet_id: &str, ip: IpAddr) -> Result<()> {
        self.execute(
            "DELETE FROM addresses WHERE subnet_id = $1 AND ip = $2",
            &[&subnet_id, &pg_bytes(ip_column(ip))],
        )
    }

    fn set_description(
        &mut self,
        subnet_id: &str,
        ip: IpAddr,
        description: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "UPDATE addresses SET description = $3 WHERE subnet_id = $1 AND ip = $2",
            &[&subnet_id, &pg_bytes(ip_column(ip)), &description],
        )
    }

    fn run_covering(&mut self, subnet_id: &str, ip: Key) -> Result<Option<Range>> {
        let rows = self.query(
            "SELECT start_ip, end_ip FROM held_runs WHERE subnet_id = $1 AND start_ip <= $2 ORDER BY start_ip DESC LIMIT 1",
            &[&subnet_id, &pg_bytes(key_column(ip))],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let run = Range {
            start: key_of_column(col(row, 0)?, "held_runs.start_ip")?,
            end: key_of_column(col(row, 1)?, "held_runs.end_ip")?,
        };
        Ok(Some(run).filter(|r| r.end >= ip))
    }

    fn insert_run(&mut self, subnet_id: &str, run: Range) -> Result<()> {
        self.execute(
            "INSERT INTO held_runs (subnet_id, start_ip, end_ip) VALUES ($1, $2, $3)",
            &[
                &subnet_id,
                &pg_bytes(key_column(run.start)),
                &pg_bytes(key_column(run.end)),
            ],
        )
    }

    fn delete_run(&mut self, subnet_id: &str, start: Key) -> Result<()> {
        self.execute(
            "DELETE FROM held_runs WHERE subnet_id = $1 AND start_ip = $2",
            &[&subnet_id, &pg_bytes(key_column(start))],
        )
    }
}
