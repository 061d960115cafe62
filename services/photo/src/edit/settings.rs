//! `[edits]` of the photo config: how edits are run, read straight from the settings that
//! each field's `rename` names (documented in `config.default.toml`).

use std::path::PathBuf;
use std::time::Duration;

use platform::config::duration::{millis, secs, secs_or_never};
use secrecy::SecretString;
use serde::Deserialize;

use crate::edit::store::ProviderLimits;

#[derive(Clone, Debug, Deserialize)]
pub struct EditSettings {
    /// Where inputs and results are kept; None: `$XINTU_DATA_DIR/edits` ([`Self::storage_dir`]).
    #[serde(rename = "edit_storage_dir")]
    storage_dir: Option<PathBuf>,
    /// Signs the result URLs handed out.
    #[serde(rename = "edit_url_secret")]
    pub url_secret: SecretString,
    #[serde(rename = "edit_free_text_model")]
    pub free_text_model: String,
    /// A task not finished by then fails (and its credits are released).
    #[serde(rename = "edit_deadline_secs", deserialize_with = "secs")]
    pub deadline: Duration,
    /// Credits are held this much longer than the deadline, so a slow commit still finds them.
    #[serde(rename = "edit_hold_margin_secs", deserialize_with = "secs")]
    pub hold_margin: Duration,
    /// A task left in `new` this long belonged to an instance that stopped mid-request.
    #[serde(rename = "edit_abandon_after_secs", deserialize_with = "secs")]
    pub abandon_after: Duration,
    /// Lease of one worker step (submit, poll, download and settle).
    #[serde(rename = "edit_lease_secs", deserialize_with = "secs")]
    pub lease: Duration,
    /// Timeout of a synchronous (free-text) edit; its step's lease is that much longer.
    #[serde(rename = "edit_sync_timeout_ms", deserialize_with = "millis")]
    pub sync_timeout: Duration,
    /// Timeout of a task submission (and of each poll); a submit step's lease is that much
    /// longer.
    #[serde(rename = "edit_call_timeout_ms", deserialize_with = "millis")]
    pub call_timeout: Duration,
    #[serde(rename = "edit_wanx_max_in_flight")]
    pub wanx_max_in_flight: u32,
    #[serde(rename = "edit_wanx_submits_per_window")]
    pub wanx_submits_per_window: u32,
    #[serde(rename = "edit_free_text_max_in_flight")]
    pub free_text_max_in_flight: u32,
    #[serde(rename = "edit_free_text_submits_per_window")]
    pub free_text_submits_per_window: u32,
    /// The window both models' submissions are counted in, milliseconds.
    #[serde(rename = "edit_submit_window_ms")]
    pub submit_window_ms: u64,
    /// The first poll comes this long after the submit; polls slow down after 30 s.
    #[serde(rename = "edit_poll_initial_ms", deserialize_with = "millis")]
    pub poll_initial: Duration,
    #[serde(rename = "edit_poll_max_ms", deserialize_with = "millis")]
    pub poll_max: Duration,
    /// First pause after a busy provider (429) or a failed call; doubles per attempt.
    #[serde(rename = "edit_retry_base_ms", deserialize_with = "millis")]
    pub retry_base: Duration,
    #[serde(rename = "edit_retry_max_ms", deserialize_with = "millis")]
    pub retry_max: Duration,
    /// How often the worker looks for work when nothing wakes it.
    #[serde(rename = "edit_worker_tick_ms", deserialize_with = "millis")]
    pub tick: Duration,
    /// Largest result file taken from the provider, bytes.
    #[serde(rename = "edit_max_result_bytes")]
    pub max_result_bytes: usize,
    /// Result URLs work this long after they are handed out.
    #[serde(rename = "edit_result_url_ttl_secs", deserialize_with = "secs")]
    pub result_url_ttl: Duration,
    /// Stored results are deleted this long after their task succeeded (None: kept).
    #[serde(
        rename = "edit_result_retention_secs",
        deserialize_with = "secs_or_never"
    )]
    pub result_retention: Option<Duration>,
    /// How often the worker looks for results past their retention.
    #[serde(rename = "edit_retention_interval_ms", deserialize_with = "millis")]
    pub retention_interval: Duration,
}

impl EditSettings {
    /// The configured storage directory, else `$XINTU_DATA_DIR/edits`.
    pub fn storage_dir(&self) -> PathBuf {
        self.storage_dir
            .clone()
            .unwrap_or_else(|| photo_model::data_dir::data_dir().join("edits"))
    }

    /// Sets where inputs and results are kept (tests give each run its own).
    pub fn set_storage_dir(&mut self, dir: PathBuf) {
        self.storage_dir = Some(dir);
    }

    /// wanx2.1-imageedit's limits, for the whole account.
    pub fn wanx_limits(&self) -> ProviderLimits {
        ProviderLimits {
            max_in_flight: self.wanx_max_in_flight,
            submits_per_window: self.wanx_submits_per_window,
            window_ms: self.submit_window_ms,
        }
    }

    /// The free-text model's limits, for the whole account.
    pub fn free_text_limits(&self) -> ProviderLimits {
        ProviderLimits {
            max_in_flight: self.free_text_max_in_flight,
            submits_per_window: self.free_text_submits_per_window,
            window_ms: self.submit_window_ms,
        }
    }
}
