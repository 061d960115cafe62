//! ImageEditService's use cases: accept an edit (validate everything, hold the credits, queue
//! it), show a task, and read a stored result by its signed URL token. The provider work is done
//! by the [`worker`] on every instance, from the tasks in MySQL.

pub mod domain;
mod erasure;
mod export;
mod grpc;
mod settings;
mod steps;
pub mod storage;
pub mod store;
mod upright;
mod view;
pub mod worker;

use proto::ErrorCode;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

use photo_model::{DecodeLimits, PhotoFormat};
use platform::db::Pools;

use crate::credits::{CreditGate, HoldError};
use crate::dashscope::image_edit::EditProvider;
use crate::decode_budget::{DecodeBudget, Decoding};
use crate::edit::domain::{EditRequest, ImageInfo, Parameters, TaskState, UrlSigner, ValidEdit};
use crate::edit::storage::{ObjectChunks, SharedStore, StorageError};
use crate::edit::store::{NewTask, TaskRow};
use crate::error::PhotoError;
use crate::model_calls::{CallOrigin, ModelCallRecorder};
use crate::owners::ClientOwners;

pub use erasure::Forgotten;
pub use grpc::ImageEditGrpc;
pub use settings::EditSettings;
pub use view::{ResultView, TaskView};

/// An edit as the gateway sends it.
pub struct SubmitInput {
    pub user_id: i64,
    /// Who asked (client, openid, the gateway's request id), for the model-call records.
    pub origin: CallOrigin,
    pub image: Vec<u8>,
    pub mask: Option<Vec<u8>>,
    pub function: String,
    pub prompt: String,
    pub outputs: u32,
    pub parameters: Parameters,
    /// The client's idempotency key, if it sent one.
    pub request_key: Option<String>,
}

/// Whom a task belongs to: the WeChat user, on the app client it asked from.
pub struct Owner<'a> {
    pub user_id: i64,
    pub client_id: &'a str,
}

impl Owner<'_> {
    /// An erased task is nobody's: its owner asked to be forgotten, and it is only a credit
    /// record now.
    fn owns(&self, row: &TaskRow) -> bool {
        !row.erased && row.user_id == self.user_id && row.client_id == self.client_id
    }
}

/// One stored result, as kept in the task's `results` column.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredResult {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub content_type: String,
}

pub struct EditService {
    pub(crate) pools: Pools,
    pub(crate) storage: SharedStore,
    pub(crate) provider: Option<Arc<EditProvider>>,
    pub(crate) credits: CreditGate,
    /// Whom a task's client belongs to now: results are served only to that user.
    pub(crate) owners: ClientOwners,
    /// Records every provider call made for a task, as a model call for the admin statistics.
    pub(crate) recorder: ModelCallRecorder,
    pub(crate) signer: UrlSigner,
    pub(crate) settings: EditSettings,
    /// The largest image or mask taken.
    pub(crate) max_image_bytes: usize,
    /// The memory every image decode of this instance shares (classification too).
    pub(crate) decode_budget: DecodeBudget,
    /// Wakes this instance's worker when a task is queued.
    pub(crate) wake: Notify,
    /// This instance's name on the leases it takes.
    pub(crate) instance_id: String,
}

/// Longest idempotency key a client may send.
const MAX_REQUEST_KEY: usize = 128;
/// How long a submission whose credits are held waits for an unreachable primary to queue its
/// task: a short outage (a failover, a restart) passes within it, and the gateway's deadline
/// for the call (10 s by default) is longer.
const QUEUEING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
/// Tasks whose results are deleted per retention round.
const PURGE_BATCH: u32 = 100;

impl EditService {
    #[allow(clippy::too_many_arguments)] // the service's parts, wired once at start
    pub fn new(
        pools: Pools,
        storage: SharedStore,
        provider: Option<Arc<EditProvider>>,
        credits: CreditGate,
        owners: ClientOwners,
        recorder: ModelCallRecorder,
        signer: UrlSigner,
        settings: EditSettings,
        max_image_bytes: usize,
        decode_budget: DecodeBudget,
    ) -> Arc<Self> {
        Arc::new(Self {
            pools,
            storage,
            provider,
            credits,
            owners,
            recorder,
            signer,
            settings,
            max_image_bytes,
            decode_budget,
            wake: Notify::new(),
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// Accepts an edit: validated in full, credits held for every output, queued. The same
    /// request again returns the first task (`created: false`) and holds nothing more.
    pub async fn submit(&self, mut input: SubmitInput) -> Result<TaskView, PhotoError> {
        if self.provider.is_none() {
            return Err(PhotoError::EditsNotConfigured);
        }
        let request_key = request_key(&input)?;
        let (image, mask) = self.inspect_images(&mut input).await?;
        let valid = domain::validate(
            &EditRequest {
                function: &input.function,
                prompt: &input.prompt,
                outputs: input.outputs,
                parameters: &input.parameters,
                image: image.info,
                mask: mask.as_ref().map(|m| m.info),
            },
            &self.settings.free_text_model,
        )
        .map_err(|invalid| PhotoError::Edit {
            code: invalid.code,
            message: invalid.message,
        })?;
        let owner = Owner {
            user_id: input.user_id,
            client_id: &input.origin.client_id,
        };
        if let Some(existing) = self.existing(&owner, &request_key).await? {
            return Ok(self.view(existing, false));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let input_key = format!("edits/{id}/input.{}", image.extension);
        let mask_key = mask
            .as_ref()
            .map(|m| format!("edits/{id}/mask.{}", m.extension));
        self.storage.put(&input_key, input.image).await?;
        if let (Some(key), Some(bytes)) = (&mask_key, input.mask) {
            self.storage.put(key, bytes).await?;
        }
        let inserted = self
            .insert(
                &id,
                &input.origin,
                input.user_id,
                &request_key,
                &valid,
                &image,
                mask.as_ref(),
                &input_key,
                mask_key.as_deref(),
            )
            .await;
        match inserted {
            Ok(()) => {}
            Err(err) if platform::db::is_unique_violation(&err) => {
                // The same request raced this one and won: its task is the answer.
                self.delete_objects(&[Some(input_key), mask_key]).await;
                return match self.existing(&owner, &request_key).await? {
                    Some(existing) => Ok(self.view(existing, false)),
                    None => Err(PhotoError::Internal("an edit task vanished".into())),
                };
            }
            Err(err) => {
                self.delete_objects(&[Some(input_key), mask_key]).await;
                return Err(err.into());
            }
        }
        self.hold_credits(
            &id,
            input.user_id,
            valid.outputs,
            &[Some(input_key), mask_key],
        )
        .await?;
        let row = self.queue(&id).await?;
        if row.status == TaskState::Failed {
            // The abandoned-request sweep failed the task while its credits were being held
            // (membership answered after minutes): give the hold back too.
            self.credits.release(&domain::credit_reference(&id)).await;
            return Err(PhotoError::CreditsUnavailable);
        }
        self.wake.notify_one();
        tracing::info!(task = %id, function = valid.function.as_str(), outputs = valid.outputs, "edit queued");
        Ok(self.view(row, true))
    }

    /// A task of this user on this client; the same NotFound for an unknown task and for one of
    /// another client or another user (a client re-bound to another user shows that user none of
    /// the first one's tasks).
    pub async fn get(&self, owner: &Owner<'_>, task_id: &str) -> Result<TaskView, PhotoError> {
        let not_found = PhotoError::NotFound {
            code: ErrorCode::EditNotFound,
            what: "edit task",
        };
        if task_id.len() != 32 || !task_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found);
        }
        // The primary: a client polls right after submitting.
        match store::find(&self.pools.primary, &task_id.to_ascii_lowercase()).await? {
            Some(row) if owner.owns(&row) => Ok(self.view(row, false)),
            _ => Err(not_found),
        }
    }

    /// The bytes of one result by the token of its URL, while the task's client is still bound
    /// to the task's user (re-bound or signed out, its URLs are nothing).
    pub async fn read_result(&self, token: &str) -> Result<(Vec<u8>, String), PhotoError> {
        let result = self.find_result(token).await?;
        let bytes = self
            .storage
            .get(&result.key)
            .await?
            .ok_or_else(result_not_found)?;
        Ok((bytes, result.content_type))
    }

    /// One result by the token of its URL, in chunks read as they are sent: a download never
    /// holds a whole result in memory.
    pub async fn read_result_chunks(
        &self,
        token: &str,
    ) -> Result<(ObjectChunks, String), PhotoError> {
        let result = self.find_result(token).await?;
        let chunks = self
            .storage
            .read_chunks(&result.key)
            .await?
            .ok_or_else(result_not_found)?;
        Ok((chunks, result.content_type))
    }

    /// The stored result a URL token names, if its task succeeded and still has it.
    async fn find_result(&self, token: &str) -> Result<StoredResult, PhotoError> {
        let named = self
            .signer
            .verify(token, chrono::Utc::now().timestamp())
            .map_err(|err| {
                tracing::info!(error = %err, "edit result token refused");
                result_not_found()
            })?;
        // The primary: a result is read right after its task succeeded.
        let row = store::find(&self.pools.primary, &named.task_id)
            .await?
            .ok_or_else(result_not_found)?;
        // An erased task has no results, and no client left to ask membership about.
        if row.status != TaskState::Succeeded || row.erased {
            return Err(result_not_found());
        }
        if self.owners.current_user(&row.client_id).await? != Some(row.user_id) {
            tracing::info!(task = %row.id, "edit result refused: its client is no longer its user's");
            return Err(result_not_found());
        }
        view::stored_results(&row)
            .into_iter()
            .nth(named.index as usize)
            .ok_or_else(result_not_found)
    }

    /// The task an earlier identical request of this user on this client made (a key is the
    /// user's own: another user on the same client gets a task of their own).
    async fn existing(
        &self,
        owner: &Owner<'_>,
        request_key: &str,
    ) -> Result<Option<TaskRow>, PhotoError> {
        Ok(store::find_by_request(
            &self.pools.primary,
            owner.client_id,
            owner.user_id,
            request_key,
        )
        .await?)
    }

    #[allow(clippy::too_many_arguments)] // one row's worth of columns
    async fn insert(
        &self,
        id: &str,
        origin: &CallOrigin,
        user_id: i64,
        request_key: &str,
        valid: &ValidEdit,
        image: &Inspected,
        mask: Option<&Inspected>,
        input_key: &str,
        mask_key: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let parameters = valid.provider_parameters.to_string();
        store::insert(
            &self.pools.primary,
            &NewTask {
                id,
                user_id,
                client_id: &origin.client_id,
                openid: &origin.openid,
                request_id: &origin.request_id,
                request_key,
                function_name: valid.function.as_str(),
                model: &valid.model,
                prompt: &valid.prompt,
                parameters: &parameters,
                outputs: valid.outputs,
                input_key,
                input_content_type: image.content_type,
                mask_key,
                mask_content_type: mask.map(|m| m.content_type),
                width: image.info.width,
                height: image.info.height,
                deadline_secs: self.settings.deadline.as_secs(),
            },
        )
        .await
    }

    /// Queues a task whose credits are held, and reads it back in the same transaction: the
    /// answer is the task as accepted, since a worker cannot take it before the commit. The
    /// credits are held already, so a primary out of reach is waited for a while
    /// ([`QUEUEING_PATIENCE`]) rather than leaving the task and its hold to the abandoned-request
    /// sweep. A task no longer new was queued by an attempt whose commit's answer was lost, or
    /// failed by that sweep: the row says which.
    async fn queue(&self, id: &str) -> Result<TaskRow, PhotoError> {
        let until = std::time::Instant::now() + QUEUEING_PATIENCE;
        let row = platform::db::retry_while_unavailable(until, || async {
            let mut queueing = self.pools.primary.begin().await?;
            store::mark_queued(&mut *queueing, id).await?;
            let row = store::find(&mut *queueing, id).await?;
            queueing.commit().await?;
            Ok(row)
        })
        .await?;
        row.ok_or_else(|| PhotoError::Internal("an edit task vanished".into()))
    }

    /// Holds one credit per output under the task's reference. On refusal the task fails at
    /// once (nothing was held) and its stored input is removed.
    async fn hold_credits(
        &self,
        id: &str,
        user_id: i64,
        outputs: u32,
        objects: &[Option<String>],
    ) -> Result<(), PhotoError> {
        let ttl = (self.settings.deadline + self.settings.hold_margin).as_secs();
        let reference = domain::credit_reference(id);
        let held = self
            .credits
            .hold(
                user_id,
                i64::from(outputs),
                &reference,
                u32::try_from(ttl).unwrap_or(u32::MAX),
            )
            .await;
        let (code, err) = match held {
            Ok(_) => return Ok(()),
            Err(HoldError::Insufficient) => (
                domain::FailureCode::InsufficientCredits,
                PhotoError::InsufficientCredits {
                    needed: i64::from(outputs),
                },
            ),
            Err(HoldError::Unavailable(why)) => {
                tracing::warn!(task = id, error = %why, "credits could not be held");
                // The reserve may have gone through before the failure: free it.
                self.credits.release(&reference).await;
                (
                    domain::FailureCode::CreditsUnavailable,
                    PhotoError::CreditsUnavailable,
                )
            }
        };
        store::fail(
            &self.pools.primary,
            id,
            None,
            code.as_str(),
            &err.to_string(),
        )
        .await?;
        self.delete_objects(objects).await;
        Err(err)
    }

    /// Decodes the image and mask within the limits (refusing bombs and broken files) to learn
    /// their real sizes, one after the other, each within the decode budget.
    async fn inspect_images(
        &self,
        input: &mut SubmitInput,
    ) -> Result<(Inspected, Option<Inspected>), PhotoError> {
        let max_bytes = self.max_image_bytes;
        let budget = &self.decode_budget;
        // The bytes travel to the decoding thread and back: an upload is never copied.
        let (image, bytes) =
            inspect(std::mem::take(&mut input.image), max_bytes, "image", budget).await?;
        input.image = bytes;
        let mask = match input.mask.take() {
            Some(mask) => {
                let (inspected, bytes) = inspect(mask, max_bytes, "mask", budget).await?;
                input.mask = Some(bytes);
                Some(inspected)
            }
            None => None,
        };
        Ok((image, mask))
    }

    /// Deletes the stored results of tasks past their retention, a batch per call; returns how
    /// many tasks lost theirs. Each task is taken by one guarded UPDATE before its files are
    /// deleted, so instances sharing the volume never do it twice and no URL is handed out for a
    /// file about to go.
    pub(crate) async fn purge_old_results(&self) -> Result<u64, sqlx::Error> {
        let Some(retention) = self.settings.result_retention else {
            return Ok(0);
        };
        let pool = &self.pools.primary;
        let mut purged = 0;
        for (id, results) in
            store::results_past_retention(pool, retention.as_secs(), PURGE_BATCH).await?
        {
            if !store::purge_results(pool, &id).await? {
                continue;
            }
            let stored: Vec<StoredResult> = serde_json::from_str(&results).unwrap_or_default();
            self.delete_results(&stored).await;
            purged += 1;
        }
        Ok(purged)
    }

    /// Deletes stored objects, every key tried even after one failed. A failure is logged and
    /// reported, not raised: cleaning up after a task, a file left behind costs only space, while
    /// erasure must not forget a key whose object may still be there.
    pub(crate) async fn delete_objects(&self, keys: &[Option<String>]) -> Deletion {
        let mut deletion = Deletion::default();
        for key in keys.iter().flatten() {
            match self.storage.delete(key).await {
                Ok(true) => deletion.deleted += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(key, error = %err, "could not delete a stored edit object");
                    if deletion.failure.is_none() {
                        deletion.failure = Some(err);
                    }
                }
            }
        }
        deletion
    }

    fn view(&self, row: TaskRow, created: bool) -> TaskView {
        view::task_view(&row, created, &self.signer, self.settings.result_url_ttl)
    }
}

/// What deleting stored objects did.
#[derive(Debug, Default)]
pub(crate) struct Deletion {
    /// Objects that were there and are gone (a missing one is not counted).
    pub deleted: u32,
    /// The first failure, if any object could not be deleted.
    pub failure: Option<StorageError>,
}

fn result_not_found() -> PhotoError {
    PhotoError::NotFound {
        code: ErrorCode::EditResultNotFound,
        what: "edit result",
    }
}

/// What the decoder learnt of an upload.
struct Inspected {
    info: ImageInfo,
    content_type: &'static str,
    extension: &'static str,
}

/// The size of the check decode: only the size and soundness matter, so a tiny working copy.
const INSPECT_SIDE: u32 = 64;

/// Reads the header (refusing what no edit model takes before any pixel is decoded), reserves
/// the decode's memory, then decodes and, if the photo is to be turned, turns it upright.
async fn inspect(
    bytes: Vec<u8>,
    max_bytes: usize,
    what: &'static str,
    budget: &DecodeBudget,
) -> Result<(Inspected, Vec<u8>), PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Edit {
            code: if what == "mask" {
                ErrorCode::EmptyMask
            } else {
                ErrorCode::EmptyImage
            },
            message: format!("the {what} is empty"),
        });
    }
    let limits = DecodeLimits {
        max_bytes,
        working_max_side: INSPECT_SIDE,
        ..DecodeLimits::default()
    };
    let (probe, bytes) = on_blocking_thread(bytes, limits.clone(), |bytes, limits| {
        photo_model::probe(bytes, limits).map_err(PhotoError::from_decode)
    })
    .await?;
    if probe.format == PhotoFormat::Gif {
        return Err(not_for_edits(what));
    }
    let (width, height) = probe.upright_size();
    domain::check_max_side(what, ImageInfo { width, height }).map_err(|invalid| {
        PhotoError::Edit {
            code: invalid.code,
            message: invalid.message,
        }
    })?;
    let memory = budget
        .reserve(
            upright::peak_bytes(&probe, INSPECT_SIDE, &limits),
            &Decoding {
                what,
                width: probe.width,
                height: probe.height,
            },
            None,
        )
        .await?;
    // The reservation goes with the decode: a request that stops waiting does not stop it.
    let ((meta, format), bytes) = on_blocking_thread(bytes, limits, move |bytes, limits| {
        let meta = photo_model::decode(bytes, limits)
            .map_err(PhotoError::from_decode)?
            .metadata;
        let turned = upright::upright(bytes, &meta, limits)?;
        drop(memory);
        Ok((meta, turned))
    })
    .await
    .map(|((meta, turned), bytes)| match turned {
        Some((turned, format)) => ((meta, format), turned),
        None => {
            let format = meta.format;
            ((meta, format), bytes)
        }
    })?;
    let (content_type, extension) = match format {
        PhotoFormat::Jpeg => ("image/jpeg", "jpg"),
        PhotoFormat::Png => ("image/png", "png"),
        PhotoFormat::WebP => ("image/webp", "webp"),
        PhotoFormat::Gif => return Err(not_for_edits(what)),
    };
    let inspected = Inspected {
        info: ImageInfo {
            width: meta.width,
            height: meta.height,
        },
        content_type,
        extension,
    };
    Ok((inspected, bytes))
}

fn not_for_edits(what: &str) -> PhotoError {
    PhotoError::Image {
        code: ErrorCode::UnsupportedImageFormat,
        message: format!("the {what} is a GIF; edits take JPEG, PNG or WebP"),
    }
}

/// Runs `work` on the upload on a blocking thread and hands the upload back with its answer.
async fn on_blocking_thread<T, F>(
    bytes: Vec<u8>,
    limits: DecodeLimits,
    work: F,
) -> Result<(T, Vec<u8>), PhotoError>
where
    F: FnOnce(&[u8], &DecodeLimits) -> Result<T, PhotoError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || work(&bytes, &limits).map(|answer| (answer, bytes)))
        .await
        .map_err(|err| PhotoError::Internal(format!("decode task failed: {err}")))?
}

/// The task's idempotency key: the client's, or a digest of everything the request asks for
/// (an identical request is a retry; a variant differs in prompt, parameters or seed).
fn request_key(input: &SubmitInput) -> Result<String, PhotoError> {
    if let Some(key) = input.request_key.as_deref().filter(|k| !k.is_empty()) {
        if key.len() > MAX_REQUEST_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PhotoError::Edit {
                code: ErrorCode::InvalidIdempotencyKey,
                message: format!(
                    "an idempotency key is 1 to {MAX_REQUEST_KEY} printable ASCII characters"
                ),
            });
        }
        return Ok(format!("key:{key}"));
    }
    let mut hasher = Sha256::new();
    let parameters = &input.parameters;
    let fields = format!(
        "{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}",
        input.function, input.prompt, input.outputs, parameters
    );
    hasher.update(fields.as_bytes());
    hasher.update((input.image.len() as u64).to_le_bytes());
    hasher.update(&input.image);
    if let Some(mask) = &input.mask {
        hasher.update(mask);
    }
    Ok(format!("sha:{}", hex::encode(hasher.finalize())))
}
