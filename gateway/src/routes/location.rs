//! Photo location: WGS-84 GPS coordinates to Chinese place names, offline, no external API
//! (docs/architecture.md, "Offline location"), for bound clients, within a per-client allowance
//! (each point of a batch counts).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use proto::photo::v1 as pb;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, AuthenticatedClient};

#[derive(Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct PointIn {
    /// WGS-84 latitude (EXIF GPSLatitude), -90..=90.
    pub lat: f64,
    /// WGS-84 longitude (EXIF GPSLongitude), -180..=180.
    pub lng: f64,
}

#[derive(Deserialize, ToSchema)]
pub struct LocationBatchIn {
    /// 1 to `location_batch_max` points (100 by default); answered in the same order.
    pub points: Vec<PointIn>,
}

#[derive(Serialize, ToSchema)]
pub struct LocationOut {
    pub lat: f64,
    pub lng: f64,
    /// False at sea, far from any place: every name is null and `display` is empty.
    pub found: bool,
    /// How the point was placed: `china_region` (China's county polygons), `city` (abroad: the
    /// city the point belongs to), `nearest_place` (off China's coast: the nearest place's
    /// region), `country` (a country and its division, no city near), `none`.
    pub source: &'static str,
    /// "中国", "日本", ...
    pub country: Option<String>,
    /// "浙江省"; abroad the first-level division ("纽约州", "巴伐利亚州").
    pub province: Option<String>,
    /// "杭州市" in China, "台北市" in Taiwan; abroad the city the point belongs to ("东京").
    pub city: Option<String>,
    /// "西湖区", "中西区"; null abroad.
    pub district: Option<String>,
    /// The caption to show: "浙江省 杭州市 西湖区", "北京市 东城区", "日本 东京".
    pub display: String,
    /// The levels (`province`, `city`) shown by their local name because no zh-CN name exists
    /// ("Hallstatt"); empty when every name is Chinese.
    pub untranslated: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct LocationBatchOut {
    pub results: Vec<LocationOut>,
}

/// Names the place of one WGS-84 coordinate in Chinese.
#[utoipa::path(get, path = "/api/v1/location", params(PointIn),
    security(("client_token" = [])),
    responses((status = 200, body = LocationOut), (status = 400), (status = 401),
        (status = 403, description = "the client is not bound to WeChat"),
        (status = 429, description = "over the client's allowance of place names"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn locate(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    query: Result<Query<PointIn>, QueryRejection>,
) -> Result<Json<LocationOut>, ApiError> {
    caller.bound_user()?;
    let Query(point) =
        query.map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))?;
    state.limits.check_locations(&caller.client_id, 1).await?;
    let mut client = state.clients.location.clone();
    let answer = client
        .locate(pb::LocateRequest {
            lat: point.lat,
            lng: point.lng,
        })
        .await?
        .into_inner();
    Ok(Json(location_out(&point, answer)))
}

/// Names the places of 1 to `location_batch_max` (100 by default) WGS-84 coordinates; one
/// invalid point fails the request.
#[utoipa::path(post, path = "/api/v1/location/batch", request_body = LocationBatchIn,
    security(("client_token" = [])),
    responses((status = 200, body = LocationBatchOut), (status = 400), (status = 401),
        (status = 403, description = "the client is not bound to WeChat"),
        (status = 429, description = "over the client's allowance of place names"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn locate_batch(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    ApiJson(input): ApiJson<LocationBatchIn>,
) -> Result<Json<LocationBatchOut>, ApiError> {
    caller.bound_user()?;
    let most = state.cfg.photo_limits.location_batch_max;
    if input.points.is_empty() || input.points.len() > most {
        return Err(ApiError::new(
            ErrorCode::InvalidBatchSize,
            format!("send 1 to {most} points, not {}", input.points.len()),
        ));
    }
    state
        .limits
        .check_locations(&caller.client_id, input.points.len())
        .await?;
    let mut client = state.clients.location.clone();
    let answer = client
        .locate_batch(pb::LocateBatchRequest {
            points: input
                .points
                .iter()
                .map(|point| pb::LocateRequest {
                    lat: point.lat,
                    lng: point.lng,
                })
                .collect(),
        })
        .await?
        .into_inner();
    if answer.results.len() != input.points.len() {
        tracing::error!(
            sent = input.points.len(),
            received = answer.results.len(),
            "photo service answered a batch short"
        );
        return Err(ApiError::from(tonic::Status::internal("short batch")));
    }
    let results = input
        .points
        .iter()
        .zip(answer.results)
        .map(|(point, answer)| location_out(point, answer))
        .collect();
    Ok(Json(LocationBatchOut { results }))
}

fn location_out(point: &PointIn, answer: pb::LocateResponse) -> LocationOut {
    let source = match pb::LocationSource::try_from(answer.source) {
        Ok(pb::LocationSource::ChinaRegion) => "china_region",
        Ok(pb::LocationSource::NearestPlace) => "nearest_place",
        Ok(pb::LocationSource::City) => "city",
        Ok(pb::LocationSource::Country) => "country",
        _ => "none",
    };
    let untranslated = [
        ("province", answer.province_untranslated),
        ("city", answer.city_untranslated),
    ]
    .into_iter()
    .filter_map(|(level, untranslated)| untranslated.then_some(level))
    .collect();
    LocationOut {
        lat: point.lat,
        lng: point.lng,
        found: source != "none",
        source,
        country: super::text_if_set(answer.country),
        province: super::text_if_set(answer.province),
        city: super::text_if_set(answer.city),
        district: super::text_if_set(answer.district),
        display: answer.display,
        untranslated,
    }
}
