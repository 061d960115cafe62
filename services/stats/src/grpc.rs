//! `stats.v1.StatsService`.

use chrono::{DateTime, Utc};
use proto::stats::v1 as pb;
use tonic::{Request, Response, Status};

use crate::erasure::Caller;
use crate::error::StatsError;
use crate::stats::Stats;
use crate::store::{Kind, MODEL_CALL_ENDPOINT_PREFIX, MODEL_CALL_METHOD, NewLog};

pub struct StatsGrpc {
    stats: Stats,
}

impl StatsGrpc {
    pub fn new(stats: Stats) -> Self {
        Self { stats }
    }
}

fn range(range: Option<pb::TimeRange>) -> Result<(DateTime<Utc>, DateTime<Utc>), StatsError> {
    let range = range.ok_or_else(|| StatsError::invalid("range", "missing"))?;
    let at = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| StatsError::invalid("range", "not a time"))
    };
    Ok((at(range.from_unix_ms)?, at(range.to_unix_ms)?))
}

/// Keeps a text field within its column; longer values are cut, not refused (logs are best effort).
fn clip(value: String, max: usize) -> String {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// `request_logs.endpoint` is a VARCHAR(96); clipping to as many bytes keeps within it.
const ENDPOINT_MAX: usize = 96;

/// The row a record becomes; None for a record without a kind or a time, which a sender that
/// knows this API never sends.
fn new_log(record: pb::RequestRecord) -> Option<NewLog> {
    let (kind, endpoint, method) = match record.kind() {
        pb::RecordKind::Http => (
            Kind::Http,
            clip(record.endpoint, ENDPOINT_MAX),
            clip(record.method, 8),
        ),
        pb::RecordKind::ModelCall => (
            Kind::ModelCall,
            format!(
                "{MODEL_CALL_ENDPOINT_PREFIX}{}",
                clip(
                    record.endpoint,
                    ENDPOINT_MAX - MODEL_CALL_ENDPOINT_PREFIX.len()
                )
            ),
            MODEL_CALL_METHOD.to_owned(),
        ),
        pb::RecordKind::Unspecified => return None,
    };
    Some(NewLog {
        at: DateTime::from_timestamp_millis(record.at_unix_ms)?,
        kind,
        endpoint,
        method,
        status: u16::try_from(record.status).unwrap_or(u16::MAX),
        latency_ms: record.latency_ms,
        client_id: clip(record.client_id, 64),
        openid: clip(record.openid, 64),
        source: clip(record.source, 8),
        model_tokens: record.model_tokens,
        error_code: clip(record.error_code, 48),
        request_id: clip(record.request_id, 64),
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[tonic::async_trait]
impl pb::stats_service_server::StatsService for StatsGrpc {
    async fn record_requests(
        &self,
        request: Request<pb::RecordRequestsRequest>,
    ) -> Result<Response<pb::RecordRequestsResponse>, Status> {
        let request = request.into_inner();
        let sent = request.records.len();
        let logs: Vec<NewLog> = request.records.into_iter().filter_map(new_log).collect();
        if logs.len() < sent {
            tracing::warn!(
                refused = sent - logs.len(),
                "request records without a kind or a time are not stored"
            );
        }
        let stored = self.stats.record(&request.batch_id, &logs).await?;
        Ok(Response::new(pb::RecordRequestsResponse {
            stored: u32::try_from(stored).unwrap_or(u32::MAX),
        }))
    }

    async fn forget_caller(
        &self,
        request: Request<pb::ForgetCallerRequest>,
    ) -> Result<Response<pb::ForgetCallerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::new(request.openid, request.client_ids)?;
        let request_logs = self.stats.forget_caller(&caller).await?;
        Ok(Response::new(pb::ForgetCallerResponse { request_logs }))
    }

    async fn export_caller(
        &self,
        request: Request<pb::ExportCallerRequest>,
    ) -> Result<Response<pb::CallerDataDocument>, Status> {
        let request = request.into_inner();
        let caller = Caller::new(request.openid, request.client_ids)?;
        let json = self.stats.export_caller(&caller).await?;
        Ok(Response::new(pb::CallerDataDocument { json }))
    }

    async fn overview(
        &self,
        request: Request<pb::OverviewRequest>,
    ) -> Result<Response<pb::OverviewResponse>, Status> {
        let (from, to) = range(request.into_inner().range)?;
        let overview = self.stats.overview(from, to).await?;
        let t = &overview.totals;
        let classified = t.classified_cache + t.classified_local + t.classified_model;
        Ok(Response::new(pb::OverviewResponse {
            requests: count(t.requests),
            active_clients: count(overview.active_clients),
            server_errors: count(t.server_errors),
            client_errors: count(t.client_errors),
            endpoints: overview
                .endpoints
                .into_iter()
                .map(|e| pb::EndpointLatency {
                    endpoint: e.endpoint,
                    requests: count(e.requests),
                    errors: count(e.errors),
                    p50_ms: e.p50,
                    p95_ms: e.p95,
                })
                .collect(),
            classified_cache: count(t.classified_cache),
            classified_local: count(t.classified_local),
            classified_model: count(t.classified_model),
            cache_hit_rate: if classified > 0 {
                t.classified_cache as f64 / classified as f64
            } else {
                0.0
            },
            model_tokens: count(t.model_tokens),
            model_cost_fen: overview.model_cost_fen,
            model_calls: overview
                .model_calls
                .into_iter()
                .map(|m| pb::ModelCallStats {
                    model: m.model,
                    source: if m.cloud { "model" } else { "local" }.to_owned(),
                    calls: count(m.calls),
                    errors: count(m.errors),
                    tokens: count(m.tokens),
                    p50_ms: m.p50,
                    p95_ms: m.p95,
                })
                .collect(),
        }))
    }

    async fn time_series(
        &self,
        request: Request<pb::TimeSeriesRequest>,
    ) -> Result<Response<pb::TimeSeriesResponse>, Status> {
        let request = request.into_inner();
        let bucket_secs = match pb::Bucket::try_from(request.bucket) {
            Ok(pb::Bucket::Day) => 86_400,
            Ok(pb::Bucket::Hour) => 3_600,
            _ => return Err(StatsError::invalid("bucket", "hour or day").into()),
        };
        let (from, to) = range(request.range)?;
        let rows = self.stats.series(from, to, bucket_secs).await?;
        Ok(Response::new(pb::TimeSeriesResponse {
            points: rows
                .into_iter()
                .map(|r| pb::TimeSeriesPoint {
                    at_unix_ms: r.bucket_start * 1000,
                    requests: count(r.requests),
                    errors: count(r.errors),
                    active_clients: count(r.active_clients),
                    model_calls: count(r.model_calls),
                })
                .collect(),
        }))
    }
}
