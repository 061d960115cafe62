//! Bailian's image editing on the wire (DashScope's documentation of `wanx2.1-imageedit` and
//! `qwen-image-edit`): wanx2.1-imageedit's asynchronous tasks (submit with `X-DashScope-Async:
//! enable`, poll `tasks/{id}`), the synchronous qwen-image-edit, and the download of results from
//! the provider's short-lived URLs. One call per method: the worker decides when to call again.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};

use super::call::{self, Api, CallError, transport_error};

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

impl EditProvider {
    pub fn new(settings: EditProviderSettings) -> Result<Self, reqwest::Error> {
        let http = call::http_client(Duration::from_secs(3))?;
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
    ) -> Result<String, CallError> {
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
            .ok_or_else(|| CallError::InvalidAnswer("no output.task_id".into()))
    }

    /// Asks where a task stands.
    pub async fn poll(&self, provider_task_id: &str) -> Result<TaskPoll, CallError> {
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
                return Err(CallError::InvalidAnswer(format!(
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
    ) -> Result<Vec<String>, CallError> {
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
            return Err(CallError::InvalidAnswer("no image in the answer".into()));
        }
        Ok(urls)
    }

    /// Downloads one result from the provider's URL (valid for 24 h), within the size cap.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, CallError> {
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
                CallError::Server { status }
            } else {
                CallError::Rejected {
                    status,
                    code: "result_unavailable".into(),
                    message: "the result URL did not answer the image".into(),
                }
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if bytes.len() + chunk.len() > self.settings.max_result_bytes {
                return Err(CallError::InvalidAnswer(format!(
                    "a result is larger than {} bytes",
                    self.settings.max_result_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let answer = call::send(request, &self.settings.api_key).await?;
        if answer.status == 200 {
            return serde_json::from_slice(&answer.body)
                .map_err(|err| CallError::InvalidAnswer(format!("not JSON: {err}")));
        }
        Err(call::refused(Api::Native, &answer))
    }
}
