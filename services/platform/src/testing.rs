//! Test support (feature `testing`): a fresh database per test on the real primary + replica pair
//! started by `deploy/local/xintu`, and a random Redis key prefix per test.
//!
//! The environment comes from `deploy/local/xintu env`:
//! `XINTU_TEST_MYSQL_PRIMARY`, `XINTU_TEST_MYSQL_REPLICA`, `XINTU_TEST_MYSQL_LAGGING_REPLICA`,
//! `XINTU_TEST_MYSQL_LAGGING_CONTROL`, `XINTU_TEST_REDIS_URL` (server URLs without a database).

#![allow(clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::time::Duration;

use secrecy::SecretString;
use sqlx::mysql::MySqlPool;

use sqlx::migrate::Migrator;

use crate::db::{PoolSettings, Pools};

/// Which replica a test database is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replica {
    /// The shared replica; never stopped by tests.
    Shared,
    /// A second replica that tests may pause ([`TestDatabase::pause_replica`]); tests that use it
    /// run one at a time (nextest group `lagging-replica`).
    Lagging,
    /// An address where no server listens: the replica is down for the whole test.
    Unreachable,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `deploy/local/xintu test`")
    })
}

/// Returns the Redis URL of the test server.
pub fn redis_url() -> SecretString {
    SecretString::from(env("XINTU_TEST_REDIS_URL"))
}

/// Returns a fresh, random service token: the system under test shares it, and nothing else
/// knows it.
pub fn service_token() -> crate::grpc::ServiceToken {
    crate::grpc::ServiceToken::parse(&format!(
        "test-service-token-{}",
        uuid::Uuid::new_v4().simple()
    ))
    .expect("a service token")
}

/// Returns a fresh, unique Redis key prefix.
pub fn redis_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// A database made for one test on the primary, replicated to the chosen replica.
pub struct TestDatabase {
    pub name: String,
    pub primary_url: SecretString,
    pub replica_url: SecretString,
    admin: MySqlPool,
    replica: Replica,
}

impl TestDatabase {
    /// Creates `t_<label>_<random>` on the primary and waits until the replica has it.
    pub async fn create(label: &str, replica: Replica) -> Self {
        let primary_base = env("XINTU_TEST_MYSQL_PRIMARY");
        let replica_base = replica_base(replica);
        let name = format!(
            "t_{label}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = MySqlPool::connect(&primary_base)
            .await
            .expect("connect to the test primary");
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&admin)
            .await
            .expect("create the test database");
        let db = Self {
            primary_url: SecretString::from(format!("{primary_base}/{name}")),
            replica_url: SecretString::from(format!("{replica_base}/{name}")),
            name,
            admin,
            replica,
        };
        db.wait_for_replica().await;
        db
    }

    /// Creates the database, runs a service's migrations on it (as its owner would) and waits
    /// until the replica has the tables: what a test of that service starts from.
    pub async fn migrated(label: &str, replica: Replica, migrator: &Migrator) -> Self {
        let db = Self::create(label, replica).await;
        let primary = db.primary().await;
        migrator
            .run(&primary)
            .await
            .unwrap_or_else(|err| panic!("migrate the {label} test database: {err}"));
        primary.close().await;
        db.wait_for_replica().await;
        db
    }

    /// Pools on this database, with the replica pool read-only as in production.
    pub fn pools(&self) -> Pools {
        self.pools_with_primary(&self.primary_url)
    }

    /// The same, reaching the primary at `primary_url` (a proxy in front of it).
    pub fn pools_with_primary(&self, primary_url: &SecretString) -> Pools {
        let settings = PoolSettings {
            max_connections: 5,
            acquire_timeout: Duration::from_secs(5),
        };
        Pools::connect_lazy(primary_url, Some(&self.replica_url), &settings)
            .expect("test database URLs parse")
    }

    /// Waits until the replica has applied everything the primary has committed so far (at
    /// once for an unreachable one).
    pub async fn wait_for_replica(&self) {
        self.wait_for_replica_within(30).await;
    }

    /// Same, with a limit in seconds (bulk loads take longer to replicate).
    pub async fn wait_for_replica_within(&self, seconds: u32) {
        if self.replica == Replica::Unreachable {
            return;
        }
        let position: String = sqlx::query_scalar("SELECT @@gtid_binlog_pos")
            .fetch_one(&self.admin)
            .await
            .expect("read the primary's GTID position");
        let replica = MySqlPool::connect(&replica_base(self.replica))
            .await
            .expect("connect to the test replica");
        let reached: Option<i64> = sqlx::query_scalar("SELECT MASTER_GTID_WAIT(?, ?)")
            .bind(&position)
            .bind(seconds)
            .fetch_one(&replica)
            .await
            .expect("wait for the replica");
        assert_eq!(reached, Some(0), "replica did not reach {position}");
        replica.close().await;
    }

    /// Stops the lagging replica's SQL thread: it keeps serving reads, ever staler.
    pub async fn pause_replica(&self) {
        self.replica_control(&["STOP SLAVE SQL_THREAD".to_owned()])
            .await;
    }

    /// Restarts the lagging replica's SQL thread; it catches up by itself.
    pub async fn resume_replica(&self) {
        self.replica_control(&["START SLAVE SQL_THREAD".to_owned()])
            .await;
    }

    /// Makes the lagging replica apply each change `seconds` after the primary committed it
    /// (`MASTER_DELAY`), until the returned guard is dropped.
    pub async fn delay_replica(&self, seconds: u32) -> ReplicaDelay {
        self.replica_control(&set_delay(seconds)).await;
        ReplicaDelay
    }

    async fn replica_control(&self, statements: &[String]) {
        assert_eq!(
            self.replica,
            Replica::Lagging,
            "only the lagging replica may be paused"
        );
        control_lagging_replica(statements).await;
    }

    /// Connects to this database on the primary, for assertions on what was written.
    pub async fn primary(&self) -> MySqlPool {
        use secrecy::ExposeSecret;
        MySqlPool::connect(self.primary_url.expose_secret())
            .await
            .expect("connect to the test database")
    }

    /// Drops the database (best effort: the whole server is thrown away after the run anyway).
    pub async fn drop_database(self) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .execute(&self.admin)
            .await;
        self.admin.close().await;
    }
}

/// The server URL (no database) of `replica`.
fn replica_base(replica: Replica) -> String {
    match replica {
        Replica::Shared => env("XINTU_TEST_MYSQL_REPLICA"),
        Replica::Lagging => env("XINTU_TEST_MYSQL_LAGGING_REPLICA"),
        Replica::Unreachable => {
            // The port of a listener just closed: connections are refused at once.
            let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            let port = closed.local_addr().expect("its address").port();
            format!("mysql://tester:testerpass@127.0.0.1:{port}")
        }
    }
}

/// Runs `statements`, in order, on the lagging replica as its controller.
async fn control_lagging_replica(statements: &[String]) {
    let control = MySqlPool::connect(&env("XINTU_TEST_MYSQL_LAGGING_CONTROL"))
        .await
        .expect("connect to the lagging replica as its controller");
    for statement in statements {
        sqlx::query(statement)
            .execute(&control)
            .await
            .expect("control the lagging replica");
    }
    control.close().await;
}

fn set_delay(seconds: u32) -> [String; 3] {
    [
        "STOP SLAVE".to_owned(),
        format!("CHANGE MASTER TO MASTER_DELAY = {seconds}"),
        "START SLAVE".to_owned(),
    ]
}

/// Takes the lagging replica's delay away when dropped, also when the test fails: the tests
/// after it need a replica that keeps up.
#[must_use = "the delay ends when this is dropped"]
pub struct ReplicaDelay;

impl Drop for ReplicaDelay {
    fn drop(&mut self) {
        // Drop cannot await; a thread with its own runtime can, inside or outside a runtime.
        let undone = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to undo the replica delay")
                .block_on(control_lagging_replica(&set_delay(0)));
        })
        .join();
        if undone.is_err() && !std::thread::panicking() {
            panic!("could not take the lagging replica's delay away");
        }
    }
}

/// Start-up tests: every string setting of a service's defaults document set to an all-digit
/// value as long as its default (an id, key, token, password or name can be all digits in real
/// life), as `(VARIABLE, value)` pairs. `structured` keys (addresses, URLs, paths, choices among
/// words) are left out for the test to set to working values.
pub fn all_digit_string_settings(defaults: &str, structured: &[&str]) -> Vec<(String, String)> {
    crate::config::string_settings(defaults)
        .into_iter()
        .filter(|(key, _)| !structured.contains(&key.as_str()))
        .map(|(key, example)| {
            let digits: String = "1900009191"
                .chars()
                .cycle()
                .take(example.chars().count().max(8))
                .collect();
            (key.to_ascii_uppercase(), digits)
        })
        .collect()
}

/// Runs a service binary to its end with `env` added; returns its exit code and its stderr.
pub fn run_binary(bin: &str, args: &[&str], env: &[(String, String)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        // A backtrace would show if the binary panicked or returned the error from main.
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the service binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A bad value for `variable` stops the binary with exit status 2 and one line that names the
/// variable (in any case), before it connects to anything.
pub fn assert_refused_in_one_line(bin: &str, args: &[&str], variable: &str, value: &str) {
    let (code, stderr) = run_binary(bin, args, &[(variable.to_owned(), value.to_owned())]);
    assert_eq!(code, Some(2), "{variable}={value}: {stderr}");
    let line = stderr.trim_end();
    assert!(!line.contains('\n'), "{variable}={value}: {stderr}");
    assert!(
        line.starts_with("configuration error: ") && line.to_ascii_uppercase().contains(variable),
        "{variable}={value}: {stderr}"
    );
}

/// A URL on the test primary for one of the real per-service users that `deploy/mysql/init`
/// creates (with their local default passwords), on `schema`.
pub fn service_user_url(user: &str, password: &str, schema: &str) -> SecretString {
    let base = env("XINTU_TEST_MYSQL_PRIMARY");
    let host = base
        .rsplit_once('@')
        .map_or(base.as_str(), |(_, host)| host);
    SecretString::from(format!("mysql://{user}:{password}@{host}/{schema}"))
}

/// Connects as one of the real per-service users of `deploy/mysql/init` to `schema`.
pub async fn connect_as(user: &str, password: &str, schema: &str) -> MySqlPool {
    use secrecy::ExposeSecret;
    let url = service_user_url(user, password, schema);
    MySqlPool::connect(url.expose_secret())
        .await
        .unwrap_or_else(|err| panic!("connect as {user} to {schema}: {err}"))
}

/// Checks a service's runtime user with its real credentials (each service's database user has
/// rights on its own schema only: docs/architecture.md, "Each service owns its tables"): it reads
/// `own_table` of its own schema, cannot change that schema, and is refused every table of
/// `others` (tables of other services' schemas, `schema.table`).
pub async fn assert_runtime_user_rights(runtime: &MySqlPool, own_table: &str, others: &[&str]) {
    sqlx::query(&format!("SELECT COUNT(*) FROM {own_table}"))
        .fetch_one(runtime)
        .await
        .unwrap_or_else(|err| panic!("the runtime user cannot read {own_table}: {err}"));
    let ddl = [
        format!("ALTER TABLE {own_table} ADD COLUMN scratch INT"),
        format!("DROP TABLE {own_table}"),
        format!("TRUNCATE TABLE {own_table}"),
        "CREATE TABLE scratch (id INT)".to_owned(),
    ];
    let reads = others
        .iter()
        .map(|table| format!("SELECT COUNT(*) FROM {table}"));
    for sql in ddl.into_iter().chain(reads) {
        match sqlx::raw_sql(&sql).execute(runtime).await {
            Ok(_) => panic!("{sql} was allowed"),
            Err(err) => assert!(err.to_string().contains("denied"), "{sql}: {err}"),
        }
    }
}
