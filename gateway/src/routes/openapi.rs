//! The OpenAPI document, generated from the handlers.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{account, admin, auth, devices, location, member, payment, photos};

#[derive(OpenApi)]
#[openapi(
    info(title = "Xintu gateway", description = "REST API of the 芯图相册 backend"),
    paths(
        account::account,
        auth::create_qrcode,
        auth::binding_status,
        auth::unbind,
        location::locate,
        location::locate_batch,
        member::authorize,
        member::callback,
        member::profile,
        devices::list,
        devices::sign_out,
        payment::create_order,
        payment::get_order,
        photos::classify,
        photos::classify_batch,
        photos::lookup,
        photos::edit::submit,
        photos::edit::get,
        photos::edit::result,
        admin::login,
        admin::logout,
        admin::me,
        admin::reports::overview,
        admin::reports::timeseries,
        admin::reports::users,
        admin::reports::orders,
        admin::reports::bindings,
        admin::adjust_credits
    ),
    components(schemas(
        account::AccountOut,
        auth::QrCodeIn,
        auth::QrCodeOut,
        auth::BindingOut,
        auth::UnbindOut,
        location::PointIn,
        location::BatchIn,
        location::LocationOut,
        location::BatchOut,
        member::ProfileOut,
        devices::DeviceOut,
        devices::DevicesOut,
        devices::DeviceSignedOutOut,
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
        photos::EditErrorOut,
        admin::LoginIn,
        admin::AdminOut,
        admin::SignedOutOut,
        admin::AdjustIn,
        admin::AdjustOut
    )),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The security schemes: the apps' client token and the admin session cookie.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The admin site's session (POST /api/v1/admin/login sets it).
        components.add_security_scheme(
            "admin_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::admin::ADMIN_COOKIE))),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
