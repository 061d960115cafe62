//! A request cancelled while its transaction's BEGIN is in flight (a client's deadline, a dropped
//! connection) must leave no transaction open on the connection it gives back to the pool.
//!
//! sqlx counts a transaction only once the server has answered BEGIN. Cancelled after sending it
//! and before the answer, the connection goes back to the pool with the server inside a
//! transaction that no one will end: every statement the next user runs on it as a statement of
//! its own is then never committed, and every row it writes stays locked. In the soak, orders
//! created just as a frozen primary came back could not be claimed by any reconciler for minutes
//! (each claim waited out InnoDB's 50 s lock wait), so a payment whose notify was lost was never
//! applied.
#![allow(clippy::expect_used)] // a test binary: failing loudly is the point

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform::db::{PoolSettings, Pools};
use platform::testing::{Replica, TestDatabase};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, Executor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of `server` whose answers wait while `held` is set: a BEGIN sent through
/// it is on the server while its answer is not yet back, the moment a cancellation must not
/// break.
async fn holding_proxy(server: SocketAddr, held: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(server).await.expect("connect upstream");
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let held = held.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(read) = server_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    while held.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if client_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// `url`'s parts around its server's address: (`mysql://user:password`, `host:port`, `database`).
fn url_parts(url: &SecretString) -> (&str, &str, &str) {
    let (scheme_and_user, rest) = url
        .expose_secret()
        .rsplit_once('@')
        .expect("user@host in the URL");
    let (address, database) = rest.split_once('/').expect("a database in the URL");
    (scheme_and_user, address, database)
}

#[tokio::test]
async fn a_begin_cancelled_in_flight_leaves_no_transaction_behind() {
    let db = TestDatabase::create("cancelled_begin", Replica::Shared).await;
    let (scheme_and_user, server, database) = url_parts(&db.primary_url);
    let server = tokio::net::lookup_host(server)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let held = Arc::new(AtomicBool::new(false));
    let proxy = holding_proxy(server, held.clone()).await;
    // One connection, so the next acquire gets the one the cancelled BEGIN went out on.
    let settings = PoolSettings {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
    };
    let through_proxy = SecretString::from(format!("{scheme_and_user}@{proxy}/{database}"));
    let pools = Pools::connect_lazy(&through_proxy, None, &settings).expect("pools");
    pools
        .primary
        .execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
        .await
        .expect("create table");
    pools
        .primary
        .execute("INSERT INTO counters VALUES (1, 0)")
        .await
        .expect("insert");

    // BEGIN reaches the server, its answer waits in the proxy, and the request is cancelled (its
    // future dropped, as a client's deadline drops it); then the answers flow again.
    let mut conn = pools.primary.acquire().await.expect("acquire");
    held.store(true, Ordering::SeqCst);
    let begun = tokio::time::timeout(Duration::from_millis(300), conn.begin())
        .await
        .is_ok();
    assert!(!begun, "BEGIN was answered through a holding proxy");
    drop(conn);
    held.store(false, Ordering::SeqCst);

    let mut conn = pools.primary.acquire().await.expect("acquire again");
    let in_transaction: u64 = sqlx::query_scalar("SELECT @@in_transaction")
        .fetch_one(&mut *conn)
        .await
        .expect("read @@in_transaction");
    // A statement of its own, as the services run them outside transactions.
    conn.execute("UPDATE counters SET n = 1 WHERE id = 1")
        .await
        .expect("update");
    drop(conn);

    // Another session sees the update, and may lock the row at once.
    let mut other = sqlx::MySqlConnection::connect(db.primary_url.expose_secret())
        .await
        .expect("connect");
    other
        .execute("SET SESSION innodb_lock_wait_timeout = 2")
        .await
        .expect("set lock wait");
    let seen: Result<i32, _> = sqlx::query_scalar("SELECT n FROM counters WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut other)
        .await;
    assert_eq!(
        in_transaction, 0,
        "the pool handed out a connection inside a transaction"
    );
    assert_eq!(
        seen.expect("the row is not locked by a transaction left open"),
        1,
        "the update was committed"
    );
}
