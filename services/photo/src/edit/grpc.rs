//! `photo.v1.ImageEditService`.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use proto::photo::v1 as pb;
use tonic::{Request, Response, Status};

use crate::edit::domain::{Parameters, PublicStatus};
use crate::edit::{EditService, Owner, SubmitInput, TaskView};
use crate::error::PhotoError;
use crate::model_calls::CallOrigin;

pub struct ImageEditGrpc {
    edits: Arc<EditService>,
}

impl ImageEditGrpc {
    pub fn new(edits: Arc<EditService>) -> Self {
        Self { edits }
    }
}

fn caller(caller: Option<&pb::Caller>) -> Result<(i64, String), PhotoError> {
    let caller = caller
        .filter(|c| c.user_id > 0 && !c.client_id.is_empty())
        .ok_or_else(|| PhotoError::invalid("caller", "a bound user and its client are required"))?;
    Ok((caller.user_id, caller.client_id.clone()))
}

#[tonic::async_trait]
impl pb::image_edit_service_server::ImageEditService for ImageEditGrpc {
    type StreamEditResultStream = BoxStream<'static, Result<pb::EditResultChunk, Status>>;

    #[tracing::instrument(skip_all, fields(function = %request.get_ref().function))]
    async fn submit_edit(
        &self,
        request: Request<pb::SubmitEditRequest>,
    ) -> Result<Response<pb::EditTask>, Status> {
        let origin = CallOrigin::of(request.metadata(), request.get_ref().caller.as_ref());
        let request = request.into_inner();
        let (user_id, _) = caller(request.caller.as_ref())?;
        let given = request.parameters.unwrap_or_default();
        let task = self
            .edits
            .submit(SubmitInput {
                user_id,
                origin,
                image: request.image,
                mask: (!request.mask.is_empty()).then_some(request.mask),
                function: request.function,
                prompt: request.prompt,
                outputs: request.outputs,
                parameters: Parameters {
                    strength: given.strength,
                    upscale_factor: given.upscale_factor,
                    top_scale: given.top_scale,
                    bottom_scale: given.bottom_scale,
                    left_scale: given.left_scale,
                    right_scale: given.right_scale,
                    is_sketch: given.is_sketch,
                    seed: given.seed,
                    negative_prompt: given.negative_prompt,
                },
                request_key: (!request.request_key.is_empty()).then_some(request.request_key),
            })
            .await?;
        Ok(Response::new(to_pb(task)))
    }

    async fn get_edit(
        &self,
        request: Request<pb::GetEditRequest>,
    ) -> Result<Response<pb::EditTask>, Status> {
        let request = request.into_inner();
        let (user_id, client_id) = caller(request.caller.as_ref())?;
        let owner = Owner {
            user_id,
            client_id: &client_id,
        };
        let task = self.edits.get(&owner, &request.task_id).await?;
        Ok(Response::new(to_pb(task)))
    }

    async fn read_edit_result(
        &self,
        request: Request<pb::ReadEditResultRequest>,
    ) -> Result<Response<pb::EditResultFile>, Status> {
        let (content, content_type) = self.edits.read_result(&request.get_ref().token).await?;
        Ok(Response::new(pb::EditResultFile {
            content,
            content_type,
        }))
    }

    async fn stream_edit_result(
        &self,
        request: Request<pb::ReadEditResultRequest>,
    ) -> Result<Response<Self::StreamEditResultStream>, Status> {
        let (object, content_type) = self
            .edits
            .read_result_chunks(&request.get_ref().token)
            .await?;
        let header = pb::EditResultChunk {
            data: Vec::new(),
            content_type,
            total_bytes: object.len,
        };
        let data = object.chunks.map(|chunk| match chunk {
            Ok(data) => Ok(pb::EditResultChunk {
                data,
                ..Default::default()
            }),
            Err(err) => Err(Status::from(PhotoError::Storage(err))),
        });
        Ok(Response::new(Box::pin(
            futures::stream::once(async { Ok(header) }).chain(data),
        )))
    }

    #[tracing::instrument(skip_all, fields(user_id = request.get_ref().user_id))]
    async fn forget_user(
        &self,
        request: Request<pb::ForgetUserRequest>,
    ) -> Result<Response<pb::ForgetUserResponse>, Status> {
        let forgotten = self.edits.forget_user(request.get_ref().user_id).await?;
        Ok(Response::new(pb::ForgetUserResponse {
            edit_tasks: forgotten.edit_tasks,
            stored_objects: forgotten.stored_objects,
        }))
    }

    #[tracing::instrument(skip_all, fields(user_id = request.get_ref().user_id))]
    async fn export_user(
        &self,
        request: Request<pb::ExportUserRequest>,
    ) -> Result<Response<pb::UserDataDocument>, Status> {
        let json = self.edits.export_user(request.get_ref().user_id).await?;
        Ok(Response::new(pb::UserDataDocument { json }))
    }
}

fn to_pb(task: TaskView) -> pb::EditTask {
    let status = match task.status {
        PublicStatus::Pending => pb::EditStatus::Pending,
        PublicStatus::Running => pb::EditStatus::Running,
        PublicStatus::Succeeded => pb::EditStatus::Succeeded,
        PublicStatus::Failed => pb::EditStatus::Failed,
    };
    pb::EditTask {
        task_id: task.task_id,
        status: status.into(),
        function: task.function,
        model: task.model,
        outputs: task.outputs,
        results: task
            .results
            .into_iter()
            .map(|r| pb::EditResult {
                token: r.token,
                width: r.width,
                height: r.height,
                bytes: r.bytes,
                content_type: r.content_type,
            })
            .collect(),
        credits_reserved: task.credits_reserved,
        credits_charged: task.credits_charged,
        error_code: task.error_code,
        error_message: task.error_message,
        created_at_unix_ms: task.created_at_unix_ms,
        finished_at_unix_ms: task.finished_at_unix_ms,
        results_expire_at_unix: task.results_expire_at_unix,
        results_purged: task.results_purged,
        created: task.created,
    }
}
