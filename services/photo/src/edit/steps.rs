//! The steps of a task, each run by the worker under the task's lease: submit to the provider,
//! poll it, copy the results into our storage and take the credits, or fail and free them.
//! The order is what keeps the money right: results are stored before the credits are taken,
//! the task becomes `settling` (no deadline fails it any more) before they are taken, and a task
//! is shown as succeeded only after they were.

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng as _;

use crate::credits::CaptureError;
use crate::edit::domain::{self, FailureCode, TaskState};
use crate::edit::store::{self, TaskRow};
use crate::model_calls::{CallOrigin, ModelCall, ModelSource};

use super::{EditService, StoredResult};
use crate::dashscope::CallError;
use crate::dashscope::image_edit::TaskPoll;

/// Polls come at the first interval for this long, then slow down.
const FAST_POLLING: Duration = Duration::from_secs(30);
/// Downloads of one result tried this many times within a step.
const DOWNLOAD_ATTEMPTS: u32 = 3;

impl EditService {
    fn owner(&self) -> &str {
        &self.instance_id
    }

    /// Records one provider call made for `task`, as a model call for the admin statistics: a wanx
    /// task from its submission to its end at the provider, a refused submission, or a synchronous
    /// edit. Polls are not model calls. Images are billed per image, not by tokens.
    fn record_call(&self, task: &TaskRow, latency: Duration, outcome: Result<(), (u16, &str)>) {
        let (status, error_code) = match outcome {
            Ok(()) => (200, String::new()),
            Err((status, code)) => (status, code.to_owned()),
        };
        self.recorder.record(ModelCall {
            model: task.model.clone(),
            source: ModelSource::Cloud,
            at: std::time::SystemTime::now(),
            latency,
            status,
            tokens: 0,
            error_code,
            origin: CallOrigin {
                client_id: task.client_id.clone(),
                openid: task.openid.clone(),
                request_id: task.request_id.clone(),
            },
        });
    }

    /// A pause that doubles per attempt, with jitter, within the configured bounds.
    fn backoff(&self, attempt: u32) -> u64 {
        let base = self.settings.retry_base.as_millis() as u64;
        let max = self.settings.retry_max.as_millis() as u64;
        let pause = base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(max);
        pause / 2 + rand::rng().random_range(0..=pause / 2)
    }

    fn next_poll(&self, since_submit_ms: i64) -> u64 {
        let initial = self.settings.poll_initial.as_millis() as u64;
        if since_submit_ms < FAST_POLLING.as_millis() as i64 {
            initial
        } else {
            (initial * 2)
                .min(self.settings.poll_max.as_millis() as u64)
                .max(initial)
        }
    }

    async fn stored_as_data_uri(&self, key: &str, content_type: &str) -> Option<String> {
        match self.storage.get(key).await {
            Ok(Some(bytes)) => {
                let mut uri = format!("data:{content_type};base64,");
                base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut uri);
                Some(uri)
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(key, error = %err, "stored edit input unreadable");
                None
            }
        }
    }

    /// Sends a claimed task to the provider: wanx gets a task to poll; a free-text edit is done
    /// in this call.
    pub(crate) async fn submit_step(&self, task: TaskRow) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        let image = self
            .stored_as_data_uri(&task.input_key, &task.input_content_type)
            .await;
        let mask = match (&task.mask_key, &task.mask_content_type) {
            (Some(key), Some(content_type)) => self.stored_as_data_uri(key, content_type).await,
            _ => None,
        };
        let Some(image) = image.filter(|_| task.mask_key.is_none() || mask.is_some()) else {
            self.fail_task(
                &task,
                FailureCode::ProviderRejected,
                "the stored input image is gone",
            )
            .await;
            return;
        };
        let parameters: serde_json::Value =
            serde_json::from_str(&task.parameters).unwrap_or_else(|_| serde_json::json!({}));
        let function = domain::EditFunction::parse(&task.function_name);
        let started = std::time::Instant::now();
        let answer = if function.is_some_and(domain::EditFunction::is_async) {
            provider
                .submit(
                    &task.function_name,
                    &task.prompt,
                    &image,
                    mask.as_deref(),
                    &parameters,
                )
                .await
                .map(Submitted::Task)
        } else {
            provider
                .edit_now(&task.model, &task.prompt, &image, &parameters)
                .await
                .map(Submitted::Results)
        };
        drop(image);
        match &answer {
            // A wanx task is recorded when it ends at the provider.
            Ok(Submitted::Task(_)) => {}
            Ok(Submitted::Results(_)) => self.record_call(&task, started.elapsed(), Ok(())),
            Err(err) => self.record_call(&task, started.elapsed(), Err((err.status(), err.code()))),
        }
        match answer {
            Ok(Submitted::Task(provider_task_id)) => {
                let delay = self.settings.poll_initial.as_millis() as u64;
                self.update_or_warn(&task, || {
                    store::mark_running(
                        &self.pools.primary,
                        &task.id,
                        self.owner(),
                        &provider_task_id,
                        delay,
                    )
                })
                .await;
                tracing::info!(task = %task.id, provider_task = %provider_task_id, "edit submitted");
            }
            Ok(Submitted::Results(urls)) => self.finish(&task, &urls).await,
            Err(err) if err.is_transient() => {
                let delay = self.backoff(task.attempts);
                tracing::info!(task = %task.id, error = %err, delay_ms = delay, "provider busy; edit queued again");
                self.requeue(&task, delay).await;
            }
            Err(err) => self.fail_for(&task, &err).await,
        }
    }

    /// Asks the provider where a task stands and acts on the answer.
    pub(crate) async fn poll_step(&self, task: TaskRow) {
        let (Some(provider), Some(provider_task_id)) =
            (self.provider.clone(), task.provider_task_id.clone())
        else {
            return;
        };
        let polled = provider.poll(&provider_task_id).await;
        let at_provider = Duration::from_millis(task.since_submit_ms.max(0) as u64);
        match &polled {
            Ok(TaskPoll::Succeeded { .. }) => self.record_call(&task, at_provider, Ok(())),
            Ok(TaskPoll::Failed { code, .. }) if code == "DataInspectionFailed" => {
                self.record_call(&task, at_provider, Err((400, "moderation_rejected")));
            }
            Ok(TaskPoll::Failed { .. }) => {
                self.record_call(&task, at_provider, Err((500, "provider_failed")))
            }
            Ok(TaskPoll::Lost { .. }) => {
                self.record_call(&task, at_provider, Err((410, "provider_lost")))
            }
            _ => {}
        }
        match polled {
            Ok(TaskPoll::Pending | TaskPoll::Running) => {
                let delay = self.next_poll(task.since_submit_ms);
                self.later(&task, TaskState::Running, delay, true).await;
            }
            Ok(TaskPoll::Succeeded { urls }) if !urls.is_empty() => self.finish(&task, &urls).await,
            Ok(TaskPoll::Succeeded { .. }) => {
                self.fail_task(
                    &task,
                    FailureCode::ProviderFailed,
                    "the provider made no image",
                )
                .await;
            }
            Ok(TaskPoll::Failed { code, message }) => {
                let failure = if code == "DataInspectionFailed" {
                    FailureCode::ModerationRejected
                } else {
                    FailureCode::ProviderFailed
                };
                self.fail_task(&task, failure, &format!("{code}: {message}"))
                    .await;
            }
            Ok(TaskPoll::Lost { status }) => {
                self.fail_task(
                    &task,
                    FailureCode::ProviderLost,
                    &format!("the provider reports the task {status}"),
                )
                .await;
            }
            Err(err) => {
                let delay = self.backoff(task.polls.max(1));
                tracing::info!(task = %task.id, error = %err, "poll failed; trying again");
                self.later(&task, TaskState::Running, delay, true).await;
            }
        }
    }

    /// Copies the results into our storage, then settles.
    async fn finish(&self, task: &TaskRow, urls: &[String]) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        let mut stored = Vec::with_capacity(urls.len());
        for (index, url) in urls.iter().enumerate() {
            let mut attempt = 0;
            let bytes = loop {
                attempt += 1;
                match provider.download(url).await {
                    Ok(bytes) => break Ok(bytes),
                    Err(err) if err.is_transient() && attempt < DOWNLOAD_ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(self.backoff(attempt))).await;
                    }
                    Err(err) => break Err(err),
                }
            };
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::warn!(task = %task.id, error = %err, "result download failed");
                    // The provider's URL is gone or broken: nothing to deliver, nothing to charge.
                    self.delete_results(&stored).await;
                    self.fail_task(
                        task,
                        FailureCode::ProviderFailed,
                        "the result could not be fetched",
                    )
                    .await;
                    return;
                }
            };
            let Some(result) = describe_result(&task.id, index, &bytes) else {
                self.delete_results(&stored).await;
                self.fail_task(
                    task,
                    FailureCode::ProviderFailed,
                    "the provider's result is not an image",
                )
                .await;
                return;
            };
            if let Err(err) = self.storage.put(&result.key, bytes).await {
                tracing::error!(task = %task.id, error = %err, "result not stored; trying again later");
                self.delete_results(&stored).await;
                if task.status == TaskState::Submitting {
                    self.requeue(task, self.backoff(1)).await;
                } else {
                    self.later(task, TaskState::Running, self.backoff(1), false)
                        .await;
                }
                return;
            }
            stored.push(result);
        }
        let json = serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into());
        let marked = self
            .update_task(task, || {
                store::mark_settling(&self.pools.primary, &task.id, self.owner(), &json)
            })
            .await;
        match marked {
            Ok(true) => {}
            Ok(false) => {
                // Our lease ran out and another instance has the task now.
                tracing::warn!(task = %task.id, "lost the edit task before settling");
                return;
            }
            Err(err) => {
                tracing::warn!(task = %task.id, error = %err, "could not mark the edit settling");
                return;
            }
        }
        let mut settled = task.clone();
        settled.status = TaskState::Settling;
        settled.results = Some(json);
        self.settle_step(settled).await;
    }

    /// Takes the credits for the stored results and marks the task succeeded; fails it when
    /// the hold is gone (never deliver what was not paid).
    pub(crate) async fn settle_step(&self, task: TaskRow) {
        let results = super::view::stored_results(&task);
        let used = results.len().min(task.credits_reserved as usize) as i64;
        let reference = domain::credit_reference(&task.id);
        match self.credits.capture(&reference, used).await {
            Ok(_) => {
                let marked = self
                    .update_task(&task, || {
                        store::mark_succeeded(
                            &self.pools.primary,
                            &task.id,
                            self.owner(),
                            used as u32,
                        )
                    })
                    .await;
                match marked {
                    Ok(true) => {
                        tracing::info!(task = %task.id, charged = used, "edit succeeded");
                        self.delete_inputs(&task).await;
                    }
                    Ok(false) => {
                        tracing::warn!(task = %task.id, "edit settled by another instance")
                    }
                    Err(err) => {
                        // The credits are taken (idempotently); the next settle step finishes.
                        tracing::warn!(task = %task.id, error = %err, "could not mark the edit succeeded");
                    }
                }
            }
            Err(CaptureError::Settled) => {
                self.delete_results(&results).await;
                self.fail_task(
                    &task,
                    FailureCode::PaymentFailed,
                    "the credits held for this edit had expired",
                )
                .await;
            }
            Err(CaptureError::Unavailable(why)) => {
                let delay = self.backoff(2);
                tracing::warn!(task = %task.id, error = %why, delay_ms = delay, "credits not taken yet; trying again");
                self.later(&task, TaskState::Settling, delay, false).await;
            }
        }
    }

    /// Fails a task past its deadline (or abandoned before its credits were held).
    pub(crate) async fn expire(&self, task: TaskRow) {
        if task.status == TaskState::New {
            self.fail_task(
                &task,
                FailureCode::Abandoned,
                "the request was not completed",
            )
            .await;
        } else {
            self.fail_task(
                &task,
                FailureCode::Timeout,
                "the edit did not finish in time",
            )
            .await;
        }
    }

    async fn fail_for(&self, task: &TaskRow, err: &CallError) {
        let code = match err {
            CallError::ModerationRejected(_) => FailureCode::ModerationRejected,
            _ => FailureCode::ProviderRejected,
        };
        self.fail_task(task, code, &err.to_string()).await;
    }

    /// Ends a task with nothing delivered: its credits are released first, so that a client
    /// who sees `failed` also sees its balance whole (if the release fails, the hold expires by
    /// itself), then the task is marked failed under our lease, then its stored objects go. A
    /// task released but not marked (a crash in between) can never be charged: its commit
    /// would find no hold.
    pub(crate) async fn fail_task(&self, task: &TaskRow, code: FailureCode, message: &str) {
        self.credits
            .release(&domain::credit_reference(&task.id))
            .await;
        let failed = self
            .update_task(task, || {
                store::fail(
                    &self.pools.primary,
                    &task.id,
                    Some(self.owner()),
                    code.as_str(),
                    message,
                )
            })
            .await;
        match failed {
            Ok(true) => {
                tracing::info!(task = %task.id, code = code.as_str(), message, "edit failed; credits released");
                self.delete_inputs(task).await;
            }
            Ok(false) => tracing::warn!(task = %task.id, "edit moved on before it could be failed"),
            Err(err) => {
                tracing::warn!(task = %task.id, error = %err, "could not fail the edit; its lease will run out");
            }
        }
    }

    async fn delete_inputs(&self, task: &TaskRow) {
        self.delete_objects(&[Some(task.input_key.clone()), task.mask_key.clone()])
            .await;
    }

    pub(super) async fn delete_results(&self, results: &[StoredResult]) {
        let keys: Vec<Option<String>> = results.iter().map(|r| Some(r.key.clone())).collect();
        self.delete_objects(&keys).await;
    }

    /// The step on `task` (in `status`) is done; the next is due after `delay_ms`.
    async fn later(&self, task: &TaskRow, status: TaskState, delay_ms: u64, polled: bool) {
        self.update_or_warn(task, || {
            store::reschedule(
                &self.pools.primary,
                &task.id,
                status,
                self.owner(),
                delay_ms,
                polled,
            )
        })
        .await;
    }

    /// The submission is to be made again after `delay_ms`: `task` goes back to the queue.
    async fn requeue(&self, task: &TaskRow, delay_ms: u64) {
        self.update_or_warn(task, || {
            store::requeue(&self.pools.primary, &task.id, self.owner(), delay_ms)
        })
        .await;
    }

    /// Runs a guarded update of `task` (one this step holds the lease of), again while the
    /// primary is unreachable and the lease lasts. Given up at once, the update would leave the
    /// task to its lease: the edit would wait that long after the primary is back, and a
    /// submission the provider took would be taken as lost and sent (and billed) again. Past
    /// the lease another instance may hold the task, and the guard would change nothing anyway.
    async fn update_task<F, Fut>(&self, task: &TaskRow, update: F) -> Result<bool, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, sqlx::Error>>,
    {
        let until = task.lease_ends.unwrap_or_else(Instant::now);
        platform::db::retry_while_unavailable(until, update).await
    }

    /// [`Self::update_task`], where an update that did not happen is only worth a warning.
    async fn update_or_warn<F, Fut>(&self, task: &TaskRow, update: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, sqlx::Error>>,
    {
        match self.update_task(task, update).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("an edit task moved on under another lease"),
            Err(err) => {
                tracing::warn!(error = %err, "edit task not updated; its lease will run out")
            }
        }
    }
}

enum Submitted {
    Task(String),
    Results(Vec<String>),
}

/// Checks a downloaded result is an image we can name, and where it goes.
fn describe_result(task_id: &str, index: usize, bytes: &[u8]) -> Option<StoredResult> {
    let format = image::guess_format(bytes).ok()?;
    let (content_type, extension) = match format {
        image::ImageFormat::Png => ("image/png", "png"),
        image::ImageFormat::Jpeg => ("image/jpeg", "jpg"),
        image::ImageFormat::WebP => ("image/webp", "webp"),
        _ => return None,
    };
    let (width, height) = image::ImageReader::with_format(std::io::Cursor::new(bytes), format)
        .into_dimensions()
        .ok()?;
    Some(StoredResult {
        key: format!("edits/{task_id}/result-{index}.{extension}"),
        width,
        height,
        bytes: bytes.len() as u64,
        content_type: content_type.to_owned(),
    })
}
