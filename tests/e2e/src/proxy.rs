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

/// What a [`FaultyProvider`] does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderBehaviour {
    /// Passes them to the provider.
    Forward,
    /// Closes its port: connecting is refused, as with a provider that is down.
    Refuse,
    /// Accepts them and never answers, as with a provider that hangs (callers time out).
    Stall,
}

/// A provider's address that a test can make fail the ways real providers do. A change of
/// behaviour drops every open connection, so pooled keep-alive connections meet it too.
pub struct FaultyProvider {
    pub addr: SocketAddr,
    behaviour: watch::Sender<ProviderBehaviour>,
}

impl FaultyProvider {
    /// Forwards a new loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("provider proxy addr");
        let (behaviour, changes) = watch::channel(ProviderBehaviour::Forward);
        tokio::spawn(serve_provider(Some(listener), addr, target, changes));
        Self { addr, behaviour }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, behaviour: ProviderBehaviour) {
        self.behaviour.send_replace(behaviour);
    }
}

async fn serve_provider(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    target: SocketAddr,
    mut changes: watch::Receiver<ProviderBehaviour>,
) {
    loop {
        let behaviour = *changes.borrow_and_update();
        if behaviour == ProviderBehaviour::Refuse {
            listener = None;
        } else if listener.is_none() {
            // The same port again (tokio binds with SO_REUSEADDR), so callers keep their address.
            listener = TcpListener::bind(addr).await.ok();
        }
        let accepted = match &listener {
            None => {
                if changes.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Some(listener) => tokio::select! {
                accepted = listener.accept() => accepted,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        let Ok((client, _)) = accepted else { continue };
        let mut changed = changes.clone();
        tokio::spawn(async move {
            let mut client = client;
            match behaviour {
                ProviderBehaviour::Forward => {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = changed.changed() => {}
                    }
                }
                // Held open, unanswered, until the behaviour changes.
                _ => {
                    let _ = changed.changed().await;
                }
            }
        });
    }
}
