//! Client-side discovery for [`super::channel`]: the instances of a service are whatever its
//! configured entries resolve to right now. Each entry (`http://photo:50052`, or a static address)
//! is resolved again every [`REFRESH`], so `docker compose --scale` and a Kubernetes headless
//! Service add and remove instances without a restart of the client; every resolved address is
//! also probed with a TCP connect, so an instance that stopped (still in DNS for a while, or in a
//! static list) leaves the balancer until it accepts connections again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::sync::mpsc::Sender;
use tonic::transport::Endpoint;
use tonic::transport::channel::Change;

/// How often the entries are resolved and probed again: at most how long a new instance waits
/// for its first call, and a stopped one keeps being offered calls.
pub(super) const REFRESH: Duration = Duration::from_secs(2);
/// The shortest time between the starts of two rounds when failing calls ask for early ones (a
/// service down everywhere fails every call).
const EARLY_ROUND_GAP: Duration = Duration::from_millis(200);
/// A TCP connect slower than this counts as down for one round.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// One configured instance entry: where to resolve it and the settings of its endpoints.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    scheme: String,
    host: String,
    port: u16,
    origin: tonic::transport::Uri,
    timeout: Duration,
}

impl Entry {
    /// `None` when the URL names no host.
    pub(super) fn new(endpoint: &Endpoint, timeout: Duration) -> Option<Self> {
        let uri = endpoint.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some(Self {
            scheme,
            host,
            port,
            origin: uri.clone(),
            timeout,
        })
    }

    /// The entry's settings aimed at one resolved address. The origin keeps the configured
    /// authority (the service name) in the HTTP/2 `:authority` header.
    fn endpoint(&self, addr: SocketAddr) -> Option<Endpoint> {
        let endpoint = Endpoint::from_shared(format!("{}://{addr}", self.scheme)).ok()?;
        Some(
            endpoint
                .origin(self.origin.clone())
                .connect_timeout(Duration::from_secs(2))
                .timeout(self.timeout)
                .tcp_nodelay(true),
        )
    }

    async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect())
    }
}

/// Keeps the balancer behind `changes` in step with `entries` until the channel is dropped: a
/// round every [`REFRESH`], and one as soon as `call_failed` says a call failed in transport (at
/// most one per [`EARLY_ROUND_GAP`]).
pub(super) async fn run(
    entries: Vec<Entry>,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    call_failed: Arc<Notify>,
) {
    let mut current: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    loop {
        let started = tokio::time::Instant::now();
        let wanted = round(&entries, &current).await;
        for (addr, endpoint) in &wanted {
            if !current.contains_key(addr) {
                tracing::info!(%addr, service = %entries_label(&entries), "gRPC instance added");
                if changes
                    .send(Change::Insert(*addr, endpoint.clone()))
                    .await
                    .is_err()
                {
                    return; // every clone of the channel is gone
                }
            }
        }
        for addr in current.keys().filter(|addr| !wanted.contains_key(addr)) {
            tracing::info!(%addr, service = %entries_label(&entries), "gRPC instance removed");
            if changes.send(Change::Remove(*addr)).await.is_err() {
                return;
            }
        }
        current = wanted;
        tokio::select! {
            () = tokio::time::sleep(REFRESH) => {}
            () = call_failed.notified() => {
                tokio::time::sleep_until(started + EARLY_ROUND_GAP).await;
            }
            () = changes.closed() => return,
        }
    }
}

/// The addresses the balancer should hold after this round.
async fn round(
    entries: &[Entry],
    current: &BTreeMap<SocketAddr, Endpoint>,
) -> BTreeMap<SocketAddr, Endpoint> {
    let mut resolved: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    let mut failed_lookup = false;
    for entry in entries {
        match entry.resolve().await {
            Ok(addrs) => {
                for addr in addrs {
                    if let Some(endpoint) = entry.endpoint(addr) {
                        resolved.entry(addr).or_insert(endpoint);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(host = %entry.host, error = %err, "resolving a gRPC service failed");
                failed_lookup = true;
            }
        }
    }
    let mut probes = tokio::task::JoinSet::new();
    for addr in resolved.keys().copied() {
        probes.spawn(async move {
            let up = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await,
                Ok(Ok(_))
            );
            (addr, up)
        });
    }
    let mut up = BTreeSet::new();
    while let Some(probe) = probes.join_next().await {
        if let Ok((addr, true)) = probe {
            up.insert(addr);
        }
    }
    if resolved.is_empty() && failed_lookup {
        // A DNS hiccup must not empty the balancer: keep what we had.
        return current.clone();
    }
    if up.is_empty() {
        // Nothing answers: keep every address, so calls fail fast with the connection error
        // instead of waiting for an instance until their deadline.
        return resolved;
    }
    resolved.retain(|addr, _| up.contains(addr));
    resolved
}

fn entries_label(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}:{}", e.host, e.port))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str) -> Entry {
        let endpoint = Endpoint::from_shared(url.to_owned()).unwrap();
        Entry::new(&endpoint, Duration::from_secs(1)).unwrap()
    }

    #[tokio::test]
    async fn a_round_keeps_listening_instances_and_drops_stopped_ones() {
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (up_addr, down_addr) = (up.local_addr().unwrap(), down.local_addr().unwrap());
        drop(down);
        let entries = [
            entry(&format!("http://{up_addr}")),
            entry(&format!("http://{down_addr}")),
        ];
        let wanted = round(&entries, &BTreeMap::new()).await;
        assert_eq!(wanted.keys().copied().collect::<Vec<_>>(), vec![up_addr]);
    }

    #[tokio::test]
    async fn a_hostname_resolves_to_its_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wanted = round(
            &[entry(&format!("http://localhost:{port}"))],
            &BTreeMap::new(),
        )
        .await;
        assert!(
            wanted.contains_key(&SocketAddr::from(([127, 0, 0, 1], port))),
            "{wanted:?}"
        );
        let endpoint = &wanted[&SocketAddr::from(([127, 0, 0, 1], port))];
        assert_eq!(
            endpoint.uri().to_string(),
            format!("http://127.0.0.1:{port}/")
        );
    }

    #[tokio::test]
    async fn when_nothing_answers_every_address_stays_so_calls_fail_fast() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let wanted = round(&[entry(&format!("http://{addr}"))], &BTreeMap::new()).await;
        assert_eq!(wanted.keys().copied().collect::<Vec<_>>(), vec![addr]);
    }

    /// A failed call asks for a round at once: a stopped instance leaves the balancer long before
    /// the next regular round.
    #[tokio::test]
    async fn a_failed_call_brings_the_next_round_forward() {
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (up_addr, down_addr) = (up.local_addr().unwrap(), down.local_addr().unwrap());
        let entries = vec![
            entry(&format!("http://{up_addr}")),
            entry(&format!("http://{down_addr}")),
        ];
        let (changes, mut seen) = tokio::sync::mpsc::channel(8);
        let call_failed = Arc::new(Notify::new());
        tokio::spawn(run(entries, changes, call_failed.clone()));
        for _ in 0..2 {
            assert!(matches!(seen.recv().await, Some(Change::Insert(..))));
        }
        drop(down);
        // Past the early rounds' minimum gap, well inside the regular period.
        tokio::time::sleep(EARLY_ROUND_GAP).await;
        call_failed.notify_one();
        let removed = tokio::time::timeout(REFRESH / 4, seen.recv()).await;
        assert!(
            matches!(removed, Ok(Some(Change::Remove(addr))) if addr == down_addr),
            "{removed:?}"
        );
    }
}
