//! `photo.v1.LocationService`.

use std::sync::Arc;

use proto::photo::v1 as pb;
use tonic::{Request, Response, Status};

use crate::error::PhotoError;
use crate::location::Locator;
use crate::location::coordinate::Wgs84;
use crate::location::place::{Location, Source};

pub struct LocationGrpc {
    locator: Arc<Locator>,
    batch_max: usize,
}

impl LocationGrpc {
    pub fn new(locator: Arc<Locator>, batch_max: usize) -> Self {
        Self { locator, batch_max }
    }
}

#[tonic::async_trait]
impl pb::location_service_server::LocationService for LocationGrpc {
    // A lookup takes microseconds, so it runs inline rather than on a blocking thread.
    #[tracing::instrument(skip_all)]
    async fn locate(
        &self,
        request: Request<pb::LocateRequest>,
    ) -> Result<Response<pb::LocateResponse>, Status> {
        let point = parse_point(request.get_ref(), None)?;
        Ok(Response::new(answer(self.locator.locate(point))))
    }

    #[tracing::instrument(skip_all, fields(points = request.get_ref().points.len()))]
    async fn locate_batch(
        &self,
        request: Request<pb::LocateBatchRequest>,
    ) -> Result<Response<pb::LocateBatchResponse>, Status> {
        let points = &request.get_ref().points;
        if points.is_empty() || points.len() > self.batch_max {
            return Err(PhotoError::invalid(
                "points",
                format!("send 1 to {} points, not {}", self.batch_max, points.len()),
            )
            .into());
        }
        // Every point is checked before any lookup: one bad point fails the call as a whole.
        let points = points
            .iter()
            .enumerate()
            .map(|(index, point)| parse_point(point, Some(index)))
            .collect::<Result<Vec<_>, _>>()?;
        let results = points
            .into_iter()
            .map(|point| answer(self.locator.locate(point)))
            .collect();
        Ok(Response::new(pb::LocateBatchResponse { results }))
    }
}

fn parse_point(point: &pb::LocateRequest, index: Option<usize>) -> Result<Wgs84, PhotoError> {
    Wgs84::parse(point.lat, point.lng).map_err(|err| PhotoError::InvalidCoordinate {
        at: index
            .map(|i| format!(" at points[{i}]"))
            .unwrap_or_default(),
        reason: err.to_string(),
    })
}

fn answer(location: Option<Location>) -> pb::LocateResponse {
    let Some(location) = location else {
        return pb::LocateResponse {
            source: pb::LocationSource::None.into(),
            ..pb::LocateResponse::default()
        };
    };
    let source = match location.source {
        Source::ChinaRegion => pb::LocationSource::ChinaRegion,
        Source::NearestPlace => pb::LocationSource::NearestPlace,
        Source::City => pb::LocationSource::City,
        Source::Country => pb::LocationSource::Country,
    };
    let display = location.place.display();
    let place = location.place;
    pb::LocateResponse {
        country: place.country,
        province: place.province,
        city: place.city,
        district: place.district,
        display,
        source: source.into(),
        province_untranslated: place.province_untranslated,
        city_untranslated: place.city_untranslated,
    }
}
