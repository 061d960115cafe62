//! The OpenAPI document, generated from the handlers.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{auth, location, member, payment, photos};

#[derive(OpenApi)]
#[openapi(
    info(title = "Xintu gateway", description = "REST API of the 芯图相册 backend"),
    paths(
        auth::create_qrcode,
        auth::binding_status,
        auth::unbind,
        location::locate,
        location::locate_batch,
        member::authorize,
        member::callback,
        member::profile,
        payment::create_order,
        payment::get_order,
        photos::classify,
        photos::classify_batch,
        photos::lookup,
        photos::edit::submit,
        photos::edit::get,
        photos::edit::result
    ),
    components(schemas(
        auth::QrCodeIn,
        auth::QrCodeOut,
        auth::BindingOut,
        auth::UnbindOut,
        location::PointIn,
        location::BatchIn,
        location::LocationOut,
        location::BatchOut,
        member::ProfileOut,
        member::PricesOut,
        payment::CreateOrderIn,
        payment::CreateOrderOut,
        payment::OrderOut,
        payment::PayParamsOut,
        photos::ClassifyForm,
        photos::ClassifyBatchForm,
        photos::LookupIn,
        photos::ClassificationOut,
        photos::ScoredLabelOut,
        photos::CloudSkippedOut,
        photos::BatchOut,
        photos::BatchItemOut,
        photos::ItemErrorOut,
        photos::LookupOut,
        photos::LookupItemOut,
        photos::EditForm,
        photos::EditTaskOut,
        photos::EditResultOut,
        photos::EditErrorOut
    )),
    modifiers(&ClientTokenScheme)
)]
pub struct ApiDoc;

struct ClientTokenScheme;

impl utoipa::Modify for ClientTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
