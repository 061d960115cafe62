//! Bailian's image editing on the wire (DashScope's documentation of `wanx2.1-imageedit` and
//! `qwen-image-edit`): wanx2.1-imageedit's asynchronous tasks (submit with `X-DashScope-Async:
//! enable`, poll `tasks/{id}`), the synchronous qwen-image-edit, and the download of results from
//! the provider's short-lived URLs. One call per method: the worker decides when to call again.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// How the client reaches the provider.
#[derive(Clone, Debug)]
pub struct EditProviderSettings {
    pub base_url: String,
    pub api_key: SecretString,
    /// Timeout of a submit, a poll or a download.
    pub call_timeout: Duration,
    /// Timeout of a synchronous edit (qwen-image-edit works for up to a minute or two).
    pub sync_timeout: Duration,
    /// Largest result file accepted, bytes.
    pub max_result_bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditProviderError {
    /// 429: the account's limits; try again later (not the user's fault).
    #[error("rate limited ({code})")]
    RateLimited { code: String },
    #[error("provider error {status}")]
    Server { status: u16 },
    #[error("the call timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("content moderation refused the request: {0}")]
    ModerationRejected(String),
    #[error("request refused ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl EditProviderError {
    /// The HTTP-like status of a call that ended with this error, for its record.
    pub fn status(&self) -> u16 {
        match self {
            Self::RateLimited { .. } => 429,
            Self::Server { status } => *status,
            Self::Timeout => 504,
            Self::Connect(_) | Self::Protocol(_) => 502,
            Self::ModerationRejected(_) => 400,
            Self::Rejected { status, .. } => *status,
        }
    }

    /// A stable snake_case code, for the call's record.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "provider_server_error",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect_failed",
            Self::Protocol(_) => "invalid_answer",
            Self::ModerationRejected(_) => "moderation_rejected",
            Self::Rejected { .. } => "provider_rejected",
        }
    }

    /// Worth calling again later: the provider was busy, slow or down, not refusing this edit.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Timeout | Self::Connect(_)
        )
    }
}

/// Where an asynchronous task stands at the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskPoll {
    Pending,
    Running,
    /// Result URLs of the images made (some of `n` may have failed).
    Succeeded {
        urls: Vec<String>,
    },
    Failed {
        code: String,
        message: String,
    },
    /// CANCELED, or UNKNOWN (the provider forgot the task: after 24 h, or never had it).
    Lost {
        status: String,
    },
}

pub struct EditProvider {
    http: reqwest::Client,
    settings: EditProviderSettings,
}

/// DashScope's native error body.
#[derive(Deserialize, Default)]
struct NativeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl EditProvider {
    pub fn new(settings: EditProviderSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { http, settings })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url.trim_end_matches('/'))
    }

    /// Submits a wanx2.1-imageedit task; returns the provider's task id.
    pub async fn submit(
        &self,
        function: &str,
        prompt: &str,
        image_data_uri: &str,
        mask_data_uri: Option<&str>,
        parameters: &Value,
    ) -> Result<String, EditProviderError> {
        let mut input = json!({
            "function": function,
            "prompt": prompt,
            "base_image_url": image_data_uri,
        });
        if let Some(mask) = mask_data_uri {
            input["mask_image_url"] = json!(mask);
        }
        let body = json!({
            "model": crate::edit::domain::WANX_MODEL,
            "input": input,
            "parameters": parameters,
        });
        let request = self
            .http
            .post(self.url("/api/v1/services/aigc/image2image/image-synthesis"))
            .header("X-DashScope-Async", "enable")
            .json(&body)
            .timeout(self.settings.call_timeout);
        let answer = self.exchange(request).await?;
        answer["output"]["task_id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| EditProviderError::Protocol("no output.task_id".into()))
    }

    /// Asks where a task stands.
    pub async fn poll(&self, provider_task_id: &str) -> Result<TaskPoll, EditProviderError> {
        let request = self
            .http
            .get(self.url(&format!("/api/v1/tasks/{provider_task_id}")))
            .timeout(self.settings.call_timeout);
        let answer = self.exchange(request).await?;
        let output = &answer["output"];
        let status = output["task_status"].as_str().unwrap_or_default();
        Ok(match status {
            "PENDING" => TaskPoll::Pending,
            "RUNNING" => TaskPoll::Running,
            "SUCCEEDED" => TaskPoll::Succeeded {
                // A failed image among several has a code instead of a url.
                urls: output["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|result| result["url"].as_str())
                    .map(str::to_owned)
                    .collect(),
            },
            "FAILED" => TaskPoll::Failed {
                code: output["code"]
                    .as_str()
                    .unwrap_or("InternalError")
                    .to_owned(),
                message: output["message"].as_str().unwrap_or_default().to_owned(),
            },
            "CANCELED" | "UNKNOWN" => TaskPoll::Lost {
                status: status.to_owned(),
            },
            other => {
                return Err(EditProviderError::Protocol(format!(
                    "unknown task_status {other:?}"
                )));
            }
        })
    }

    /// A free-text edit with qwen-image-edit (synchronous); returns the result URLs.
    pub async fn edit_now(
        &self,
        model: &str,
        prompt: &str,
        image_data_uri: &str,
        parameters: &Value,
    ) -> Result<Vec<String>, EditProviderError> {
        let body = json!({
            "model": model,
            "input": { "messages": [{
                "role": "user",
                "content": [{ "image": image_data_uri }, { "text": prompt }],
            }]},
            "parameters": parameters,
        });
        let request = self
            .http
            .post(self.url("/api/v1/services/aigc/multimodal-generation/generation"))
            .json(&body)
            .timeout(self.settings.sync_timeout);
        let answer = self.exchange(request).await?;
        let urls: Vec<String> = answer["output"]["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|choice| choice["message"]["content"].as_array())
            .flatten()
            .filter_map(|part| part["image"].as_str())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err(EditProviderError::Protocol("no image in the answer".into()));
        }
        Ok(urls)
    }

    /// Downloads one result from the provider's URL (valid for 24 h), within the size cap.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, EditProviderError> {
        let mut response = self
            .http
            .get(url)
            .timeout(self.settings.call_timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(if status >= 500 {
                EditProviderError::Server { status }
            } else {
                EditProviderError::Rejected {
                    status,
                    code: "result_unavailable".into(),
                    message: "the result URL did not answer the image".into(),
                }
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if bytes.len() + chunk.len() > self.settings.max_result_bytes {
                return Err(EditProviderError::Protocol(format!(
                    "a result is larger than {} bytes",
                    self.settings.max_result_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Value, EditProviderError> {
        let response = request
            .bearer_auth(self.settings.api_key.expose_secret())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport_error)?;
        if status == 200 {
            return serde_json::from_slice(&body)
                .map_err(|err| EditProviderError::Protocol(format!("not JSON: {err}")));
        }
        let error: NativeError = serde_json::from_slice(&body).unwrap_or_default();
        Err(sort_error(status, error))
    }
}

fn sort_error(status: u16, error: NativeError) -> EditProviderError {
    if status == 429 || error.code.starts_with("Throttling") {
        return EditProviderError::RateLimited { code: error.code };
    }
    if error.code == "DataInspectionFailed" || error.code == "data_inspection_failed" {
        return EditProviderError::ModerationRejected(error.message);
    }
    if status >= 500 {
        return EditProviderError::Server { status };
    }
    if matches!(status, 401 | 403) {
        tracing::error!(status, code = %error.code, "dashscope refused our credentials or call; check DASHSCOPE_API_KEY");
    }
    EditProviderError::Rejected {
        status,
        code: error.code,
        message: error.message,
    }
}

fn transport_error(err: reqwest::Error) -> EditProviderError {
    if err.is_timeout() {
        EditProviderError::Timeout
    } else {
        EditProviderError::Connect(err.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(code: &str) -> NativeError {
        NativeError {
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn errors_are_sorted_into_what_to_do() {
        assert!(sort_error(429, native("Throttling.RateQuota")).is_transient());
        assert!(sort_error(500, native("InternalError")).is_transient());
        assert_eq!(
            sort_error(400, native("DataInspectionFailed")),
            EditProviderError::ModerationRejected("m".into())
        );
        let refused = sort_error(400, native("InvalidParameter"));
        assert!(!refused.is_transient());
        assert!(matches!(
            refused,
            EditProviderError::Rejected { status: 400, .. }
        ));
    }
}
