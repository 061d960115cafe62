//! A TCP proxy on loopback that a test can cut: the service behind it becomes unreachable
//! (connections dropped, new ones refused) without stopping the real server that other tests
//! share.

#![allow(clippy::expect_used)] // test support

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct CuttableProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    changes: watch::Sender<u64>,
}

impl CuttableProxy {
    /// Forwards a new loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (changes, _) = watch::channel(0);
        let proxy = Self {
            addr,
            up: Arc::new(AtomicBool::new(true)),
            generation: Arc::new(AtomicU64::new(0)),
            changes,
        };
        let accepting = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accepting.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accepting.changes.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.changes.send_replace(generation);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
