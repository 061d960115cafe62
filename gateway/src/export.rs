//! A user's copy of their personal data, gathered from every service that holds some: the
//! membership document (profile, apps, orders, refunds, ledger, official account events), the
//! photo service's edit tasks and the stats service's request log rows, as one JSON document. A
//! service that cannot answer fails the whole copy: a part missing without a word would pass for
//! "we hold nothing more".

use proto::ErrorCode;
use proto::membership::v1 as membership;
use proto::photo::v1 as photo;
use proto::stats::v1 as stats;
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::ApiError;

/// The whole copy of `openid`'s personal data, as pretty JSON.
pub async fn personal_data(state: &AppState, openid: String) -> Result<Vec<u8>, ApiError> {
    let mut personal_data = state.clients.personal_data.clone();
    let held = personal_data
        .export_personal_data(membership::ExportPersonalDataRequest {
            openid: openid.clone(),
        })
        .await?
        .into_inner();
    let mut edits = state.clients.edit.clone();
    let mut stats_client = state.clients.stats.clone();
    let (edit_tasks, request_log) = tokio::join!(
        edits.export_user(photo::ExportUserRequest {
            user_id: held.user_id,
        }),
        stats_client.export_caller(stats::ExportCallerRequest {
            openid,
            client_ids: held.client_ids,
        }),
    );
    let mut document = object(&held.json)?;
    document.extend(object(&edit_tasks?.into_inner().json)?);
    document.extend(object(&request_log?.into_inner().json)?);
    serde_json::to_vec_pretty(&document).map_err(unreadable)
}

/// A service's part: a JSON object whose fields join the document.
fn object(json: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(json).map_err(unreadable)? {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::new(
            ErrorCode::Internal,
            "a service's part of the personal data is not a JSON object",
        )),
    }
}

fn unreadable(err: serde_json::Error) -> ApiError {
    tracing::error!(error = %err, "a part of a personal data copy is not JSON");
    ApiError::new(ErrorCode::Internal, "internal error")
}
