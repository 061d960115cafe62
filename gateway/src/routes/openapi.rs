//! The OpenAPI document, generated from the handlers.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};

use super::{
    account, admin, auth, devices, health, location, member, payment, personal_data, photos, wechat,
};

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
        member::set_reminders,
        devices::list,
        devices::sign_out,
        personal_data::export,
        personal_data::erase,
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
        admin::lists::users,
        admin::lists::orders,
        admin::lists::bindings,
        admin::lists::audit,
        admin::adjust_credits,
        admin::lists::refunds,
        admin::refund_order,
        admin::lists::bills,
        admin::bills::report,
        admin::bills::check,
        admin::personal_data::export,
        admin::personal_data::erase,
        wechat::verify_url,
        wechat::receive_push,
        payment::notify,
        payment::refund_notify,
        payment::v3_notify,
        health::healthz,
        health::readyz,
        document
    ),
    components(schemas(
        account::AccountOut,
        auth::QrCodeIn,
        auth::QrCodeOut,
        auth::BindingOut,
        auth::UnbindOut,
        location::PointIn,
        location::LocationBatchIn,
        location::LocationOut,
        location::LocationBatchOut,
        member::ProfileOut,
        member::RemindersIn,
        devices::DeviceOut,
        devices::DevicesOut,
        devices::DeviceSignedOutOut,
        personal_data::EraseIn,
        personal_data::ErasedOut,
        admin::personal_data::EraseUserIn,
        member::PricesOut,
        payment::CreateOrderIn,
        payment::CreateOrderOut,
        payment::OrderOut,
        admin::RefundIn,
        payment::PayParamsOut,
        payment::V3NotifyRefusal,
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
        admin::AdjustOut,
        crate::error::ErrorBody<'_>,
        crate::error::ErrorDetail<'_>
    )),
    modifiers(&SecuritySchemes, &ErrorResponses)
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

/// Every 4xx and 5xx answer of the JSON API has the same body; the handlers name the status and
/// the code, this gives each such response without a body of its own the `ErrorBody` schema.
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error_body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let is_error = status.starts_with('4') || status.starts_with('5');
                    if let (true, RefOr::T(response)) = (is_error, response)
                        && response.content.is_empty()
                    {
                        response
                            .content
                            .insert("application/json".to_owned(), error_body.clone());
                    }
                }
            }
        }
    }
}

/// The document as the committed `clients/openapi.json` holds it: pretty JSON, keys in the
/// order the document declares them.
pub fn pretty_document() -> serde_json::Result<String> {
    serde_json::to_string_pretty(&ApiDoc::openapi())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi_document", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use utoipa::OpenApi;
    use utoipa::openapi::path::ParameterIn;

    use super::ApiDoc;

    /// Generated clients name one function per operation id: two alike cannot both exist.
    #[test]
    fn every_operation_has_its_own_id() {
        let mut seen: HashMap<String, String> = HashMap::new();
        for (path, item) in ApiDoc::openapi().paths.paths {
            let operations = [item.get, item.post, item.put, item.delete, item.patch];
            for operation in operations.into_iter().flatten() {
                let id = operation.operation_id.unwrap_or_default();
                let first = seen.insert(id.clone(), path.clone());
                assert!(
                    first.is_none(),
                    "operation id {id:?} names both {first:?} and {path}"
                );
            }
        }
    }

    /// A parameter said to be in the path is one of the path's `{name}` segments; a query
    /// parameter declared as a path one sends clients to the wrong URL.
    #[test]
    fn path_parameters_are_in_the_path() {
        for (path, item) in ApiDoc::openapi().paths.paths {
            let operations = [item.get, item.post, item.put, item.delete, item.patch];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.unwrap_or_default() {
                    if parameter.parameter_in == ParameterIn::Path {
                        assert!(
                            path.contains(&format!("{{{}}}", parameter.name)),
                            "{path}: {:?} is declared in the path but is not in it",
                            parameter.name
                        );
                    }
                }
            }
        }
    }

    /// The document names each schema by its type's name alone, and a second type of the same
    /// name silently replaces the first: the location batch's answer was once documented as the
    /// classification batch's (both `BatchOut`), so a typed client could not read it. Every
    /// `ToSchema` type of the gateway must have its own name.
    #[test]
    fn every_schema_type_has_its_own_name() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut seen: HashMap<String, String> = HashMap::new();
        for file in rust_files(&source) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for name in schema_type_names(&text) {
                let here = file.display().to_string();
                let first = seen.insert(name.clone(), here.clone());
                assert!(
                    first.is_none(),
                    "two schema types are named {name}: in {first:?} and in {here}"
                );
            }
        }
        assert!(
            seen.contains_key("LocationOut"),
            "the scan found the schemas"
        );
    }

    fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
        files
    }

    /// The names of the types a file derives `ToSchema` for (the next `struct` or `enum` after
    /// the derive), or the name an `as = …` attribute gives them.
    fn schema_type_names(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut pending = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[derive(") && line.contains("ToSchema") {
                pending = true;
            } else if pending && let Some(renamed) = line.split("schema(as = ").nth(1) {
                names.push(renamed.trim_end_matches(")]").trim().to_owned());
                pending = false;
            } else if pending && (line.contains("struct ") || line.contains("enum ")) {
                let name = line
                    .split_whitespace()
                    .skip_while(|word| *word != "struct" && *word != "enum")
                    .nth(1)
                    .unwrap_or_default();
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
                pending = false;
            }
        }
        names
    }

    /// The typed clients are generated from the committed copy; a gateway change that the copy
    /// (and so the clients) does not follow fails here.
    #[test]
    fn the_clients_are_generated_from_the_current_document() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/openapi.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let current = super::pretty_document().unwrap_or_default();
        assert!(
            committed.trim_end() == current,
            "{} is not the gateway's document: run `cargo run -p gateway -- openapi > \
             clients/openapi.json`, then `npm run generate` in clients/typescript",
            path.display()
        );
    }
}
