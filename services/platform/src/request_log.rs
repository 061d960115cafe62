//! Request recording for the stats service: callers hand records to a bounded channel and never
//! wait; a background task batches them and sends them over gRPC. When stats is down the batch is
//! kept and retried, within a bound; past it records are dropped and counted (never unbounded
//! memory, never a slower or failed user request). A batch keeps its id and its records across
//! retries, so one that was stored although its answer came too late is not stored twice.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proto::stats::v1::RequestRecord;
use proto::stats::v1::stats_service_client::StatsServiceClient;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

use crate::grpc::{PropagateContext, ServiceChannel};

pub type StatsClient = StatsServiceClient<InterceptedService<ServiceChannel, PropagateContext>>;

#[derive(Clone, Copy, Debug)]
pub struct RecorderSettings {
    /// Records waiting to be sent, at most (channel plus unsent batch).
    pub capacity: usize,
    /// Records per gRPC call.
    pub batch: usize,
    /// A partial batch is sent after this long.
    pub flush_interval: Duration,
    /// How long one send may take before it is tried again.
    pub send_timeout: Duration,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 500,
            flush_interval: Duration::from_millis(500),
            send_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed_sends: AtomicU64,
}

/// What the recorder has done, for health output and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderStats {
    pub sent: u64,
    pub dropped: u64,
    pub failed_sends: u64,
}

/// The records on their way to the sending task. The task is not woken per record (a wake-up per
/// request costs more than building the record): it takes what has queued on its flush tick, or
/// earlier when a whole batch is waiting.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<RequestRecord>,
    batch_ready: Arc<Notify>,
    batch: usize,
}

/// A cheap handle; clone it into every request.
#[derive(Clone)]
pub struct Recorder {
    queue: Option<Queue>,
    counters: Arc<Counters>,
    /// Cancelled when the sending task has ended (after its last flush).
    finished: CancellationToken,
}

impl Recorder {
    /// A recorder that records nothing (recording switched off).
    pub fn disabled() -> Self {
        let finished = CancellationToken::new();
        finished.cancel();
        Self {
            queue: None,
            counters: Arc::default(),
            finished,
        }
    }

    /// Starts the sending task; it flushes what it holds when `shutdown` is cancelled.
    pub fn start(
        client: StatsClient,
        settings: RecorderSettings,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let batch_ready = Arc::new(Notify::new());
        let loop_batch_ready = Arc::clone(&batch_ready);
        let counters = Arc::new(Counters::default());
        let finished = CancellationToken::new();
        let done = finished.clone().drop_guard();
        let loop_counters = Arc::clone(&counters);
        tokio::spawn(async move {
            send_loop(
                client,
                rx,
                loop_batch_ready,
                settings,
                loop_counters,
                shutdown,
            )
            .await;
            drop(done);
        });
        Self {
            queue: Some(Queue {
                tx,
                batch_ready,
                batch: settings.batch.max(1),
            }),
            counters,
            finished,
        }
    }

    /// Resolves once the sending task has ended: after `shutdown` was cancelled and what it held
    /// was sent (or dropped and counted, when stats was unreachable). A process that exits right
    /// after its server stopped awaits this so that the last records are not lost.
    pub async fn stopped(&self) {
        self.finished.cancelled().await;
    }

    /// [`Recorder::stopped`] within `limit`; true when it stopped in time.
    pub async fn finished(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.stopped()).await.is_ok()
    }

    /// Queues a record without waiting; a full queue drops it (counted).
    pub fn record(&self, record: RequestRecord) {
        let Some(queue) = &self.queue else {
            return;
        };
        if queue.tx.try_send(record).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        } else if queue.tx.max_capacity() - queue.tx.capacity() >= queue.batch {
            queue.batch_ready.notify_one();
        }
    }

    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed_sends: self.counters.failed_sends.load(Ordering::Relaxed),
        }
    }
}

async fn send_loop(
    mut client: StatsClient,
    mut rx: mpsc::Receiver<RequestRecord>,
    batch_ready: Arc<Notify>,
    settings: RecorderSettings,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    // Unsent records, oldest first; bounded by `capacity` together with the channel.
    let mut pending: VecDeque<RequestRecord> = VecDeque::new();
    // The batch being sent, the same (id and records) on every retry until stats takes it.
    let mut in_flight: Option<proto::stats::v1::RecordRequestsRequest> = None;
    let mut backoff = Duration::from_millis(100);
    let mut tick = tokio::time::interval(settings.flush_interval);
    loop {
        let mut closing = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = batch_ready.notified() => false,
            _ = tick.tick() => false,
        };
        loop {
            match rx.try_recv() {
                Ok(record) => push_bounded(&mut pending, record, settings.capacity, &counters),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
            }
        }
        while in_flight.is_some() || !pending.is_empty() {
            let batch = in_flight.get_or_insert_with(|| {
                let take = pending.len().min(settings.batch);
                proto::stats::v1::RecordRequestsRequest {
                    records: pending.drain(..take).collect(),
                    batch_id: uuid::Uuid::new_v4().simple().to_string(),
                }
            });
            let sent =
                tokio::time::timeout(settings.send_timeout, client.record_requests(batch.clone()))
                    .await;
            match sent {
                Ok(Ok(_)) => {
                    let stored = in_flight.take().map_or(0, |batch| batch.records.len());
                    counters.sent.fetch_add(stored as u64, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                }
                _ => {
                    counters.failed_sends.fetch_add(1, Ordering::Relaxed);
                    if closing {
                        let lost = (pending.len() + batch.records.len()) as u64;
                        counters.dropped.fetch_add(lost, Ordering::Relaxed);
                        tracing::warn!(lost, "stats unreachable at shutdown; records dropped");
                        return;
                    }
                    // Keep them and try again later; meanwhile new records keep arriving.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
            }
        }
        if closing {
            return;
        }
    }
}

fn push_bounded(
    pending: &mut VecDeque<RequestRecord>,
    record: RequestRecord,
    capacity: usize,
    counters: &Counters,
) {
    if pending.len() >= capacity {
        pending.pop_front();
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
    pending.push_back(record);
}

#[cfg(test)]
mod tests {
    use proto::stats::v1 as pb;
    use tonic::{Request, Response, Status};

    use super::*;

    /// A stats service that stores each batch at once and answers after `delay` (only the first
    /// call when `only_first`). It keeps (batch id, records) of every call.
    #[derive(Clone, Default)]
    struct FakeStats {
        delay: Duration,
        only_first: bool,
        calls: Arc<std::sync::Mutex<Vec<(String, usize)>>>,
    }

    impl FakeStats {
        fn calls(&self) -> Vec<(String, usize)> {
            self.calls.lock().expect("calls").clone()
        }

        fn stored(&self) -> usize {
            self.calls().iter().map(|(_, records)| records).sum()
        }
    }

    #[tonic::async_trait]
    impl pb::stats_service_server::StatsService for FakeStats {
        async fn record_requests(
            &self,
            request: Request<pb::RecordRequestsRequest>,
        ) -> Result<Response<pb::RecordRequestsResponse>, Status> {
            let request = request.into_inner();
            let first = {
                let mut calls = self.calls.lock().expect("calls");
                calls.push((request.batch_id, request.records.len()));
                calls.len() == 1
            };
            if first || !self.only_first {
                tokio::time::sleep(self.delay).await;
            }
            Ok(Response::new(pb::RecordRequestsResponse {
                stored: request.records.len() as u32,
            }))
        }

        async fn overview(
            &self,
            _: Request<pb::OverviewRequest>,
        ) -> Result<Response<pb::OverviewResponse>, Status> {
            Err(Status::unimplemented("not here"))
        }

        async fn time_series(
            &self,
            _: Request<pb::TimeSeriesRequest>,
        ) -> Result<Response<pb::TimeSeriesResponse>, Status> {
            Err(Status::unimplemented("not here"))
        }

        async fn forget_caller(
            &self,
            _: Request<pb::ForgetCallerRequest>,
        ) -> Result<Response<pb::ForgetCallerResponse>, Status> {
            Ok(Response::new(pb::ForgetCallerResponse::default()))
        }

        async fn export_caller(
            &self,
            _: Request<pb::ExportCallerRequest>,
        ) -> Result<Response<pb::CallerDataDocument>, Status> {
            Ok(Response::new(pb::CallerDataDocument::default()))
        }
    }

    /// Serves `service` on a loopback port; returns a client of it.
    async fn serve<S>(service: S) -> StatsClient
    where
        S: pb::stats_service_server::StatsService,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(pb::stats_service_server::StatsServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("url")
            .connect_lazy();
        let token = crate::grpc::ServiceToken::parse("test-service-token").expect("token");
        StatsServiceClient::with_interceptor(token.attach(channel), PropagateContext)
    }

    #[tokio::test]
    async fn a_batch_answered_too_late_is_sent_again_whole_under_its_id() {
        // The first batch is stored, but its answer comes after the recorder gave up on it. The
        // retry, answered at once, has a whole second (the machine may be busy with other work).
        let stats = FakeStats {
            delay: Duration::from_secs(3),
            only_first: true,
            ..FakeStats::default()
        };
        let shutdown = CancellationToken::new();
        let recorder = Recorder::start(
            serve(stats.clone()).await,
            RecorderSettings {
                flush_interval: Duration::from_millis(20),
                send_timeout: Duration::from_secs(1),
                ..RecorderSettings::default()
            },
            shutdown.clone(),
        );
        for _ in 0..3 {
            recorder.record(RequestRecord::default());
        }
        // Records arriving while the first batch waits for its answer go in a later batch.
        while stats.calls().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        recorder.record(RequestRecord::default());
        shutdown.cancel();
        assert!(recorder.finished(Duration::from_secs(10)).await);

        let calls = stats.calls();
        assert!(
            calls.len() >= 3,
            "the late batch, its retry, the next: {calls:?}"
        );
        let (first_id, first_records) = &calls[0];
        assert_eq!(first_id.len(), 32);
        assert_eq!(*first_records, 3);
        assert_eq!(calls[1], calls[0], "the retry is the same batch");
        let last = calls.last().expect("a call");
        assert_ne!(&last.0, first_id);
        assert_eq!(last.1, 1);
        let stats = recorder.stats();
        assert_eq!((stats.sent, stats.dropped), (4, 0));
        assert!(stats.failed_sends >= 1);
    }

    #[tokio::test]
    async fn a_full_batch_is_sent_before_the_flush_tick() {
        let stats = FakeStats::default();
        let shutdown = CancellationToken::new();
        let recorder = Recorder::start(
            serve(stats.clone()).await,
            RecorderSettings {
                batch: 10,
                flush_interval: Duration::from_secs(600),
                ..RecorderSettings::default()
            },
            shutdown.clone(),
        );
        // The interval's first tick is at once; records queued after it wait for a full batch.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..25 {
            recorder.record(RequestRecord::default());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while stats.stored() < 20 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            stats.stored() >= 20,
            "full batches went out: {:?}",
            stats.calls()
        );
        assert!(stats.calls().iter().all(|(_, records)| *records <= 10));
        shutdown.cancel();
        assert!(recorder.finished(Duration::from_secs(10)).await);
        assert_eq!(stats.stored(), 25, "the partial batch at the stop");
    }

    #[tokio::test]
    async fn finished_waits_for_the_last_flush() {
        let stats = FakeStats {
            delay: Duration::from_millis(300),
            ..FakeStats::default()
        };
        let shutdown = CancellationToken::new();
        // Nothing is sent before the stop: the batch is not full and the interval is long.
        let recorder = Recorder::start(
            serve(stats.clone()).await,
            RecorderSettings {
                flush_interval: Duration::from_secs(600),
                ..RecorderSettings::default()
            },
            shutdown.clone(),
        );
        for _ in 0..3 {
            recorder.record(RequestRecord::default());
        }
        assert!(!recorder.finished(Duration::from_millis(50)).await);
        shutdown.cancel();
        assert!(recorder.finished(Duration::from_secs(10)).await);
        assert_eq!(stats.stored(), 3, "flushed before finished");
        assert_eq!(recorder.stats().sent, 3);
        assert!(
            Recorder::disabled()
                .finished(Duration::from_millis(1))
                .await
        );
    }
}
