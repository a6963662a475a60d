//! The PostgreSQL store: one record per app and environment in three tables (the
//! record's version and lockfile, its journal, its lease), made on first use and
//! versioned in `grattr_schema`. Readers lock nothing (one snapshot). Every record write
//! is one statement that locks the lease row FOR SHARE and checks the writer's fencing
//! token against it, so a writer whose lease lapsed writes nothing; the row locks it
//! takes last only as long as that statement. Bytes are stored as given: the layer
//! above verifies lockfile and journal as it verifies files.

// `StateError::Held` carries its holder inline, as the shared type defines it; the
// errors are rare, and a large `Err` costs nothing next to a round trip to the server.
#![allow(clippy::result_large_err)]

pub mod config;
mod tls;

pub use config::{Config, DEFAULT_TIMEOUT, Host, RootCert, SslMode};

use super::{Acquired, Key, LeaseInfo, LeaseName, StateError, Stored};
use crate::lockfile::Holder;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::{Client, IsolationLevel, Statement};

/// The schema this grattr makes and reads; a database holding a newer one is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// The steps from one schema version to the next: `MIGRATIONS[n]` takes version `n` to
/// `n + 1` (version 0 is an empty database). A later grattr appends steps, never edits one.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = ["
    CREATE TABLE grattr_record (
        sdkappid bigint NOT NULL,
        environment text NOT NULL,
        version bigint NOT NULL DEFAULT 0,
        lockfile bytea,
        PRIMARY KEY (sdkappid, environment)
    );
    CREATE TABLE grattr_journal (
        seq bigserial PRIMARY KEY,
        sdkappid bigint NOT NULL,
        environment text NOT NULL,
        line bytea NOT NULL
    );
    CREATE INDEX grattr_journal_record ON grattr_journal (sdkappid, environment, seq);
    CREATE TABLE grattr_lease (
        sdkappid bigint NOT NULL,
        environment text NOT NULL,
        name text NOT NULL,
        token bigint NOT NULL,
        holder jsonb,
        expires timestamptz,
        PRIMARY KEY (sdkappid, environment, name),
        CHECK ((holder IS NULL) = (expires IS NULL))
    );
"];

/// The advisory lock that serialises making and migrating the tables ("grattr" and 1):
/// two first runs at once would otherwise both try to create them, and one would fail.
const SCHEMA_LOCK: i64 = 0x6772_6174_7472_0001;

/// The lease as read: token, holder (JSON text), expiry in microseconds since the epoch.
const LEASE: &str = "SELECT token, holder::text, (extract(epoch FROM expires) * 1000000)::bigint
    FROM grattr_lease WHERE sdkappid = $1 AND environment = $2 AND name = $3 AND holder IS NOT NULL";

/// The record's version.
const VERSION: &str = "SELECT version FROM grattr_record WHERE sdkappid = $1 AND environment = $2";

/// Takes the lease when it is free, released or expired, in one statement: racing
/// writers meet on the row's lock and the loser re-reads the winner's row.
const ACQUIRE: &str = "INSERT INTO grattr_lease AS l (sdkappid, environment, name, token, holder, expires)
    VALUES ($1, $2, $5, 1, $3::text::jsonb, now() + $4::bigint * interval '1 microsecond')
    ON CONFLICT (sdkappid, environment, name) DO UPDATE
        SET token = l.token + 1, holder = excluded.holder, expires = excluded.expires
        WHERE l.holder IS NULL OR l.expires <= now()
    RETURNING token";

const RENEW: &str = "UPDATE grattr_lease SET expires = now() + $4::bigint * interval '1 microsecond'
    WHERE sdkappid = $1 AND environment = $2 AND token = $3 AND name = $5 AND holder IS NOT NULL AND expires > now()";

const RELEASE: &str = "UPDATE grattr_lease SET holder = NULL, expires = NULL
    WHERE sdkappid = $1 AND environment = $2 AND token = $3 AND name = $4 AND holder IS NOT NULL";

const BREAK: &str = "WITH old AS MATERIALIZED (
        SELECT token, holder, expires FROM grattr_lease
        WHERE sdkappid = $1 AND environment = $2 AND name = $3 AND holder IS NOT NULL FOR UPDATE)
    UPDATE grattr_lease l SET holder = NULL, expires = NULL FROM old
    WHERE l.sdkappid = $1 AND l.environment = $2 AND l.name = $3
    RETURNING old.token, old.holder::text, (extract(epoch FROM old.expires) * 1000000)::bigint";

/// The fence every record write starts with: our token still holds an unexpired lease,
/// and the row stays so (FOR SHARE) until the write commits.
macro_rules! fenced {
    ($write:literal) => {
        concat!(
            "WITH fence AS MATERIALIZED (
                SELECT token FROM grattr_lease
                WHERE sdkappid = $1 AND environment = $2 AND name = 'writer' AND token = $3
                    AND holder IS NOT NULL AND expires > now()
                FOR SHARE), ",
            $write
        )
    };
}

/// Appends lines in the order given (the sequence follows the ordinality) and bumps the version.
const APPEND: &str = fenced!(
    "lines AS (
        INSERT INTO grattr_journal (sdkappid, environment, line)
        SELECT $1, $2, t.line FROM fence, unnest($4::bytea[]) WITH ORDINALITY AS t(line, n) ORDER BY t.n)
    UPDATE grattr_record SET version = version + 1
    WHERE sdkappid = $1 AND environment = $2 AND EXISTS (SELECT 1 FROM fence)
    RETURNING version"
);

/// Replaces the lockfile, drops the journal lines it folded, and bumps the version.
const CHECKPOINT: &str = fenced!(
    "folded AS (
        DELETE FROM grattr_journal
        WHERE sdkappid = $1 AND environment = $2 AND seq <= $5 AND EXISTS (SELECT 1 FROM fence))
    UPDATE grattr_record SET version = version + 1, lockfile = $4
    WHERE sdkappid = $1 AND environment = $2 AND EXISTS (SELECT 1 FROM fence)
    RETURNING version"
);

/// One record (app + environment) in one database.
pub struct Postgres {
    config: Config,
    tls: tls::MakeTls,
    sdkappid: i64,
    environment: String,
    label: String,
    /// The connection, made again on the next call after it broke; calls take turns.
    session: Mutex<Option<Session>>,
}

/// A connection and the statements prepared on it.
struct Session {
    client: Client,
    /// Set when a call gave up on it (a timeout, a broken stream): made anew next time.
    broken: bool,
    prepared: Vec<(&'static str, Statement)>,
    connection: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("label", &self.label).finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A connection given up on (a timeout) may still wait on a silent server.
        self.connection.abort();
    }
}

impl Session {
    /// `sql` prepared once per connection: a call is then one round trip.
    async fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some((_, statement)) = self.prepared.iter().find(|(text, _)| *text == sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.prepared.push((sql, statement.clone()));
        Ok(statement)
    }
}

/// Why a call failed: the database, or a verdict of ours that must stay as it is.
enum Failure {
    Db(tokio_postgres::Error),
    State(StateError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        Failure::Db(error)
    }
}

impl Postgres {
    /// Connects; creates the tables on first use inside a transaction serialised by
    /// pg_advisory_xact_lock (two first runs at once must not fail), versioned in a
    /// `grattr_schema` table so a later grattr can migrate; refuses a newer schema (StateError::Schema).
    pub async fn connect(config: &Config, key: Key) -> Result<Postgres, StateError> {
        let label = format!("{} ({key})", config.label());
        let tls = tls::MakeTls::new(config).map_err(|message| StateError::Url { url: config.label(), message })?;
        let sdkappid = i64::try_from(key.sdkappid).map_err(|_| StateError::Unreachable {
            store: label.clone(),
            message: "the sdkappid does not fit a bigint".into(),
        })?;
        let store = Postgres {
            config: config.clone(),
            tls,
            sdkappid,
            environment: key.environment,
            label,
            session: Mutex::new(None),
        };
        let mut session = store.connected().await?;
        let outcome = store.bounded(store.ensure_schema(&mut session)).await;
        store.settle(&mut session, outcome)?;
        drop(session);
        Ok(store)
    }

    /// "postgres://USER@HOST:PORT/DB (sdkappid N, environment E)" for messages.
    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// The record in one consistent snapshot (REPEATABLE READ): version, lockfile bytes, journal lines in order.
    pub async fn read(&self) -> Result<Stored, StateError> {
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let transaction = session
                    .client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let record = transaction
                    .query_opt(
                        "SELECT version, lockfile FROM grattr_record WHERE sdkappid = $1 AND environment = $2",
                        &[&self.sdkappid, &self.environment],
                    )
                    .await?;
                let journal = transaction
                    .query(
                        "SELECT seq, line FROM grattr_journal WHERE sdkappid = $1 AND environment = $2 ORDER BY seq",
                        &[&self.sdkappid, &self.environment],
                    )
                    .await?;
                transaction.commit().await?;
                let mut stored = Stored::default();
                if let Some(row) = record {
                    stored.version = row.try_get::<_, i64>(0)?.unsigned_abs();
                    stored.lockfile = row.try_get(1)?;
                }
                stored.journal =
                    journal.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect::<Result<_, Failure>>()?;
                Ok(stored)
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// The record's version: it grows with every write, so that a reader that knows the
    /// version it read can tell in one round trip whether another writer wrote since.
    pub async fn version(&self) -> Result<u64, StateError> {
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let statement = session.statement(VERSION).await?;
                let row = session.client.query_opt(&statement, &[&self.sdkappid, &self.environment]).await?;
                Ok(match row {
                    Some(row) => row.try_get::<_, i64>(0)?.unsigned_abs(),
                    None => 0,
                })
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// The lease row, live or expired (`expires` tells); None if never taken or released.
    pub async fn lease(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        let mut session = self.connected().await?;
        let outcome = self.bounded(self.read_lease(&mut session, name)).await;
        self.settle(&mut session, outcome)
    }

    /// Takes the lease if free, released or expired (by the DATABASE's clock, `now()`): the token
    /// grows by one with every lease ever taken on this record (never reused, survives release);
    /// expires = now() + ttl. Otherwise `Acquired::Held(who holds it)`. One statement or one transaction:
    /// N processes racing get exactly one `Taken`.
    pub async fn acquire(&self, name: LeaseName, holder: &Holder, ttl: Duration) -> Result<Acquired, StateError> {
        let lease = name.as_str();
        let holder = serde_json::to_string(holder).map_err(|error| self.unreachable(error.to_string()))?;
        let ttl = micros(ttl);
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                // A holder that releases between our two statements leaves the lease free: try again.
                loop {
                    let statement = session.statement(ACQUIRE).await?;
                    let taken = session
                        .client
                        .query_opt(&statement, &[&self.sdkappid, &self.environment, &holder, &ttl, &lease])
                        .await?;
                    if let Some(row) = taken {
                        return Ok(Acquired::Taken(row.try_get::<_, i64>(0)?.unsigned_abs()));
                    }
                    if let Some(held) = self.read_lease(&mut session, name).await? {
                        return Ok(Acquired::Held(held));
                    }
                }
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// Extends our lease to now() + ttl, only if `token` still holds it and it has not expired;
    /// otherwise StateError::Lapsed.
    pub async fn renew(&self, name: LeaseName, token: u64, ttl: Duration) -> Result<(), StateError> {
        let params = (token_param(token), micros(ttl), name.as_str());
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let statement = session.statement(RENEW).await?;
                match session
                    .client
                    .execute(&statement, &[&self.sdkappid, &self.environment, &params.0, &params.1, &params.2])
                    .await?
                {
                    0 => Err(Failure::State(self.lapsed())),
                    _ => Ok(()),
                }
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// Releases our lease (only if `token` still holds it; otherwise a no-op).
    pub async fn release(&self, name: LeaseName, token: u64) -> Result<(), StateError> {
        let (token, name) = (token_param(token), name.as_str());
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let statement = session.statement(RELEASE).await?;
                session.client.execute(&statement, &[&self.sdkappid, &self.environment, &token, &name]).await?;
                Ok(())
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// Clears whatever lease is held (`state unlock --force`) and returns who held it.
    pub async fn break_lease(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        let name = name.as_str();
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let row = session.client.query_opt(BREAK, &[&self.sdkappid, &self.environment, &name]).await?;
                row.map(|row| self.lease_info(&row)).transpose()
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// Appends journal lines, FENCED: in one transaction that locks the lease row (FOR SHARE or
    /// FOR UPDATE) and checks token == ours and expires > now(); else StateError::Lapsed and nothing
    /// written. Commits durably (synchronous_commit on for this transaction even if the server
    /// default is off). Bumps the record's version. Returns the new version.
    pub async fn append(&self, token: u64, lines: &[Vec<u8>]) -> Result<u64, StateError> {
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let token = token_param(token);
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let statement = session.statement(APPEND).await?;
                let row =
                    session.client.query_opt(&statement, &[&self.sdkappid, &self.environment, &token, &lines]).await?;
                self.written(row)
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// FENCED as append: replaces the lockfile bytes and deletes the journal lines with seq <= through,
    /// in one transaction; bumps the version; returns it.
    pub async fn checkpoint(&self, token: u64, lockfile: &[u8], through: i64) -> Result<u64, StateError> {
        let token = token_param(token);
        let mut session = self.connected().await?;
        let outcome = self
            .bounded(async {
                let statement = session.statement(CHECKPOINT).await?;
                let row = session
                    .client
                    .query_opt(&statement, &[&self.sdkappid, &self.environment, &token, &lockfile, &through])
                    .await?;
                self.written(row)
            })
            .await;
        self.settle(&mut session, outcome)
    }

    /// The connection (made when there is none, or the last one broke); calls take turns on it.
    async fn connected(&self) -> Result<MappedMutexGuard<'_, Session>, StateError> {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|session| session.broken || session.client.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.open().await?);
        }
        MutexGuard::try_map(slot, Option::as_mut).map_err(|_| self.unreachable("no connection".into()))
    }

    /// `work` within the call's time.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<Result<T, Failure>, tokio::time::error::Elapsed> {
        tokio::time::timeout(self.config.timeout, work).await
    }

    /// What a call's outcome means for the caller, and for the connection: one that
    /// broke or timed out is made anew on the next call. `Lapsed` stays `Lapsed`.
    fn settle<T>(
        &self,
        session: &mut Session,
        outcome: Result<Result<T, Failure>, tokio::time::error::Elapsed>,
    ) -> Result<T, StateError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Failure::State(error))) => Err(error),
            Ok(Err(Failure::Db(error))) => {
                // A server's error leaves the connection usable; anything else may not have.
                if error.as_db_error().is_none() || session.client.is_closed() {
                    session.broken = true;
                }
                Err(self.unreachable(self.describe(&error)))
            }
            Err(_) => {
                session.broken = true;
                Err(self.unreachable(format!("no answer within {}", humantime::format_duration(self.config.timeout))))
            }
        }
    }

    /// A new connection, with the call's bounds set on the server's side too.
    async fn open(&self) -> Result<Session, StateError> {
        let mut pg = tokio_postgres::Config::new();
        let sslmode = match (&self.config.host, self.config.sslmode) {
            // As libpq: no TLS on a unix socket, whatever sslmode says.
            (Host::Socket(_), _) | (_, SslMode::Disable) => tokio_postgres::config::SslMode::Disable,
            (_, SslMode::Prefer) => tokio_postgres::config::SslMode::Prefer,
            (_, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => tokio_postgres::config::SslMode::Require,
        };
        match &self.config.host {
            Host::Tcp(name) => {
                pg.host(name);
            }
            #[cfg(unix)]
            Host::Socket(dir) => {
                pg.host_path(dir);
            }
            #[cfg(not(unix))]
            Host::Socket(_) => return Err(self.unreachable("unix sockets exist only on Unix".into())),
        }
        pg.port(self.config.port)
            .user(&self.config.user)
            .dbname(&self.config.dbname)
            .application_name(&self.config.application_name)
            .ssl_mode(sslmode)
            .connect_timeout(self.config.connect_timeout());
        if let Some(password) = self.config.password() {
            pg.password(password);
        }
        let timeout = self.config.timeout.as_millis().max(1);
        // Durable commits whatever the server's default, and no statement or idle
        // transaction of ours outlives the call that gave up on it.
        pg.options(format!(
            "-c synchronous_commit=on -c statement_timeout={timeout} -c idle_in_transaction_session_timeout={timeout}"
        ));
        let connecting = tokio::time::timeout(self.config.connect_timeout(), pg.connect(self.tls.clone())).await;
        let (client, connection) = match connecting {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => return Err(self.unreachable(self.describe(&error))),
            Err(_) => {
                return Err(self.unreachable(format!(
                    "no connection within {}",
                    humantime::format_duration(self.config.connect_timeout())
                )));
            }
        };
        let label = self.label.clone();
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(store = %label, %error, "PostgreSQL connection closed");
            }
        });
        Ok(Session { client, broken: false, prepared: Vec::new(), connection })
    }

    /// Makes or migrates the tables, under the advisory lock, and this record's row.
    async fn ensure_schema(&self, session: &mut Session) -> Result<(), Failure> {
        // Most runs find the tables current and the record's row made: then nothing is
        // written, so that a role that may only read the record (a pull request's `plan`)
        // can open it.
        let tables = session
            .client
            .query_one(
                "SELECT to_regclass('grattr_schema') IS NOT NULL AND to_regclass('grattr_record') IS NOT NULL",
                &[],
            )
            .await?
            .try_get::<_, bool>(0)?;
        let (mut version, mut row) = (None, false);
        if tables {
            let current = session
                .client
                .query_one(
                    "SELECT (SELECT version FROM grattr_schema WHERE id = 1),
                            EXISTS (SELECT 1 FROM grattr_record WHERE sdkappid = $1 AND environment = $2)",
                    &[&self.sdkappid, &self.environment],
                )
                .await?;
            version = current.try_get::<_, Option<i32>>(0)?.map(i32::unsigned_abs);
            row = current.try_get::<_, bool>(1)?;
        }
        if let Some(found) = version.filter(|found| *found > SCHEMA_VERSION) {
            return Err(Failure::State(StateError::Schema {
                store: self.label.clone(),
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        if version == Some(SCHEMA_VERSION) && row {
            return Ok(());
        }
        match self.make_schema(session).await {
            // A reader of a record no writer has written yet: it reads an empty record.
            Err(Failure::Db(e))
                if version == Some(SCHEMA_VERSION)
                    && e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Makes or migrates the tables, and the record's row, under the advisory lock.
    async fn make_schema(&self, session: &mut Session) -> Result<(), Failure> {
        let transaction = session.client.transaction().await?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS grattr_schema (
                    id integer PRIMARY KEY CHECK (id = 1),
                    version integer NOT NULL)",
            )
            .await?;
        let found = match transaction.query_opt("SELECT version FROM grattr_schema WHERE id = 1", &[]).await? {
            Some(row) => row.try_get::<_, i32>(0)?.unsigned_abs(),
            None => 0,
        };
        if found > SCHEMA_VERSION {
            return Err(Failure::State(StateError::Schema {
                store: self.label.clone(),
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        if found < SCHEMA_VERSION {
            for step in &MIGRATIONS[found as usize..] {
                transaction.batch_execute(step).await?;
            }
            let version = SCHEMA_VERSION.cast_signed();
            transaction
                .execute(
                    "INSERT INTO grattr_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                    &[&version],
                )
                .await?;
        }
        transaction
            .execute(
                "INSERT INTO grattr_record (sdkappid, environment) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&self.sdkappid, &self.environment],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn read_lease(&self, session: &mut Session, name: LeaseName) -> Result<Option<LeaseInfo>, Failure> {
        let statement = session.statement(LEASE).await?;
        let row = session.client.query_opt(&statement, &[&self.sdkappid, &self.environment, &name.as_str()]).await?;
        row.map(|row| self.lease_info(&row)).transpose()
    }

    /// A lease from a row of (token, holder as JSON text, expiry in microseconds).
    fn lease_info(&self, row: &tokio_postgres::Row) -> Result<LeaseInfo, Failure> {
        let token: i64 = row.try_get(0)?;
        let holder: String = row.try_get(1)?;
        let expires: i64 = row.try_get(2)?;
        let holder = serde_json::from_str(&holder)
            .map_err(|error| Failure::State(self.unreachable(format!("the lease's holder cannot be read: {error}"))))?;
        let expires = match u64::try_from(expires) {
            Ok(after) => UNIX_EPOCH + Duration::from_micros(after),
            Err(_) => UNIX_EPOCH - Duration::from_micros(expires.unsigned_abs()),
        };
        Ok(LeaseInfo { holder, token: token.unsigned_abs(), expires })
    }

    /// The version a fenced write returned, or Lapsed when the fence stopped it.
    fn written(&self, row: Option<tokio_postgres::Row>) -> Result<u64, Failure> {
        match row {
            Some(row) => Ok(row.try_get::<_, i64>(0)?.unsigned_abs()),
            None => Err(Failure::State(self.lapsed())),
        }
    }

    fn lapsed(&self) -> StateError {
        StateError::Lapsed { store: self.label.clone() }
    }

    fn unreachable(&self, message: String) -> StateError {
        StateError::Unreachable { store: self.label.clone(), message }
    }

    /// The server's message (or the client's), never the password, safe for a terminal.
    fn describe(&self, error: &tokio_postgres::Error) -> String {
        let text = match error.as_db_error() {
            Some(db) => match db.detail() {
                Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
                None => format!("{}: {}", db.severity(), db.message()),
            },
            None => {
                // The client's errors name their kind only; the cause says what happened.
                let mut text = error.to_string();
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    text.push_str(&format!(": {inner}"));
                    cause = inner.source();
                }
                text
            }
        };
        // The server never echoes a password, but a message is no place to find out.
        let text = match self.config.password().filter(|password| !password.is_empty()) {
            Some(password) => mask(&text, password),
            None => text,
        };
        crate::escape::text(&text).into_owned()
    }
}

/// `text` with `password` masked. A password shorter than 6 characters is masked only
/// where it stands as a word of its own: masked inside words, a password `p` would turn
/// "permission denied for schema public" into "***ermission denied for schema ***ublic".
fn mask(text: &str, password: &str) -> String {
    if password.chars().count() >= 6 {
        return text.replace(password, "***");
    }
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(password) {
        let (before, after) = (rest[..at].chars().next_back(), rest[at + password.len()..].chars().next());
        out.push_str(&rest[..at]);
        match word(before) || word(after) {
            true => out.push_str(password),
            false => out.push_str("***"),
        }
        rest = &rest[at + password.len()..];
    }
    out.push_str(rest);
    out
}

/// A duration as the bigint microseconds the queries add to `now()`.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A token as the bigint column holds it (tokens count leases: never near 2^63).
fn token_param(token: u64) -> i64 {
    i64::try_from(token).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod mask_tests {
    use super::mask;

    #[test]
    fn a_short_password_is_masked_as_a_word_and_a_long_one_everywhere() {
        assert_eq!(mask("permission denied for schema public", "p"), "permission denied for schema public");
        assert_eq!(mask("password p was wrong: p", "p"), "password *** was wrong: ***");
        assert_eq!(mask("hunter2hunter2 hunter2", "hunter2"), "****** ***");
    }
}
