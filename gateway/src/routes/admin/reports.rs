//! The admin API's reports: overview and time series (stats service, plus revenue and members
//! from the membership service). Each needs the admin session.

use axum::Json;
use axum::extract::{Query, State};
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use proto::membership::v1 as membership;
use proto::stats::v1 as stats;

use crate::AppState;
use crate::admin::AdminSession;
use crate::error::ApiError;

/// A time range; RFC 3339 or unix milliseconds; the last 24 hours by default.
#[derive(Deserialize, IntoParams)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Time series only: `hour` (default) or `day`.
    pub bucket: Option<String>,
}

fn parse_time(raw: &str, field: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(ms) = raw.parse::<i64>() {
        return chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidArgument, format!("{field} is not a time"))
        });
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidArgument,
                format!("{field} is not RFC 3339 or unix ms"),
            )
        })
}

fn range(query: &RangeQuery) -> Result<(i64, i64), ApiError> {
    let to = match &query.to {
        Some(raw) => parse_time(raw, "to")?,
        None => chrono::Utc::now(),
    };
    let from = match &query.from {
        Some(raw) => parse_time(raw, "from")?,
        None => to - chrono::Duration::hours(24),
    };
    Ok((from.timestamp_millis(), to.timestamp_millis()))
}

fn time_range((from, to): (i64, i64)) -> stats::TimeRange {
    stats::TimeRange {
        from_unix_ms: from,
        to_unix_ms: to,
    }
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.to_rfc3339())
        .unwrap_or_default()
}

/// One endpoint's HTTP requests in the range.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    endpoint: String,
    requests: u64,
    errors: u64,
    p50_ms: f64,
    p95_ms: f64,
}

/// One model's calls in the range (`source`: local or cloud).
#[derive(Serialize, ToSchema)]
pub struct ModelCallsOut {
    model: String,
    source: String,
    calls: u64,
    errors: u64,
    tokens: u64,
    p50_ms: f64,
    p95_ms: f64,
}

/// How classifications were answered: from the cache, the local model or the cloud model.
#[derive(Serialize, ToSchema)]
pub struct ClassificationMixOut {
    cache: u64,
    local: u64,
    model: u64,
    cache_hit_rate: f64,
}

/// The overview of a time range: usage from the statistics, business from membership.
#[derive(Serialize, ToSchema)]
pub struct OverviewOut {
    /// RFC 3339.
    from: String,
    /// RFC 3339.
    to: String,
    requests: u64,
    active_clients: u64,
    server_errors: u64,
    client_errors: u64,
    endpoints: Vec<EndpointOut>,
    classification: ClassificationMixOut,
    model_calls: Vec<ModelCallsOut>,
    model_tokens: u64,
    model_cost_fen: i64,
    revenue_fen: i64,
    refunded_fen: i64,
    refunds: u64,
    paid_orders: u64,
    member_orders: u64,
    credit_orders: u64,
    new_followers: u64,
    active_members: u64,
    total_users: u64,
}

/// One bucket of a time series.
#[derive(Serialize, ToSchema)]
pub struct TimePointOut {
    /// The bucket's start, RFC 3339.
    at: String,
    requests: u64,
    errors: u64,
    active_clients: u64,
    model_calls: u64,
}

#[derive(Serialize, ToSchema)]
pub struct TimeSeriesOut {
    /// `hour` or `day`.
    bucket: String,
    points: Vec<TimePointOut>,
}

/// The overview: `requests`, the errors, `endpoints` and `classification` count HTTP requests;
/// `model_calls` (per model), `model_tokens` and `model_cost_fen` count model calls.
#[utoipa::path(get, path = "/api/v1/admin/overview", operation_id = "admin_overview", params(RangeQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "requests, errors, endpoints, classification mix, model calls and cost, revenue and refunds, orders, followers, members", body = OverviewOut),
        (status = 400), (status = 401), (status = 503)))]
pub async fn overview(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<RangeQuery>,
) -> Result<Json<OverviewOut>, ApiError> {
    let window = range(&query)?;
    let mut stats_client = state.clients.stats.clone();
    let mut admin_client = state.clients.admin.clone();
    let (usage, business) = tokio::join!(
        stats_client.overview(stats::OverviewRequest {
            range: Some(time_range(window))
        }),
        admin_client.summary(membership::SummaryRequest {
            from_unix_ms: window.0,
            to_unix_ms: window.1
        }),
    );
    let usage = usage?.into_inner();
    let business = business?.into_inner();
    let endpoints: Vec<EndpointOut> = usage
        .endpoints
        .into_iter()
        .map(|e| EndpointOut {
            endpoint: e.endpoint,
            requests: e.requests,
            errors: e.errors,
            p50_ms: e.p50_ms,
            p95_ms: e.p95_ms,
        })
        .collect();
    let model_calls: Vec<ModelCallsOut> = usage
        .model_calls
        .into_iter()
        .map(|m| ModelCallsOut {
            model: m.model,
            source: m.source,
            calls: m.calls,
            errors: m.errors,
            tokens: m.tokens,
            p50_ms: m.p50_ms,
            p95_ms: m.p95_ms,
        })
        .collect();
    Ok(Json(OverviewOut {
        from: rfc3339_ms(window.0),
        to: rfc3339_ms(window.1),
        requests: usage.requests,
        active_clients: usage.active_clients,
        server_errors: usage.server_errors,
        client_errors: usage.client_errors,
        endpoints,
        classification: ClassificationMixOut {
            cache: usage.classified_cache,
            local: usage.classified_local,
            model: usage.classified_model,
            cache_hit_rate: usage.cache_hit_rate,
        },
        model_calls,
        model_tokens: usage.model_tokens,
        model_cost_fen: usage.model_cost_fen,
        revenue_fen: business.revenue_fen,
        refunded_fen: business.refunded_fen,
        refunds: business.refunds,
        paid_orders: business.paid_orders,
        member_orders: business.member_orders,
        credit_orders: business.credit_orders,
        new_followers: business.new_followers,
        active_members: business.active_members,
        total_users: business.total_users,
    }))
}

/// Requests, errors, active clients and model calls per hour or day.
#[utoipa::path(get, path = "/api/v1/admin/timeseries", operation_id = "admin_timeseries", params(RangeQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "requests, errors, active clients and model calls per bucket", body = TimeSeriesOut),
        (status = 400), (status = 401), (status = 503)))]
pub async fn timeseries(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<RangeQuery>,
) -> Result<Json<TimeSeriesOut>, ApiError> {
    let window = range(&query)?;
    let bucket = match query.bucket.as_deref() {
        None | Some("hour") => stats::Bucket::Hour,
        Some("day") => stats::Bucket::Day,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "bucket must be hour or day",
            ));
        }
    };
    let mut client = state.clients.stats.clone();
    let series = client
        .time_series(stats::TimeSeriesRequest {
            range: Some(time_range(window)),
            bucket: bucket.into(),
        })
        .await?
        .into_inner();
    let points = series
        .points
        .into_iter()
        .map(|p| TimePointOut {
            at: rfc3339_ms(p.at_unix_ms),
            requests: p.requests,
            errors: p.errors,
            active_clients: p.active_clients,
            model_calls: p.model_calls,
        })
        .collect();
    Ok(Json(TimeSeriesOut {
        bucket: query.bucket.as_deref().unwrap_or("hour").to_owned(),
        points,
    }))
}
