//! Image edits: which functions exist, which model does each, what a valid request is, and how a
//! task's state is shown. Everything here is checked before any credit moves.

mod request;
mod token;

pub use request::{
    EditRequest, ImageInfo, MAX_SIDE, Parameters, ValidEdit, check_max_side, validate,
};
pub use token::{ResultToken, TokenError, UrlSigner};

use serde::{Deserialize, Serialize};

/// The wanx2.1-imageedit model (asynchronous task at the provider).
pub const WANX_MODEL: &str = "wanx2.1-imageedit";

/// What the user asks for: a wanx2.1-imageedit function, or a free-text edit by qwen-image-edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditFunction {
    StylizationAll,
    StylizationLocal,
    DescriptionEdit,
    DescriptionEditWithMask,
    RemoveWatermark,
    Expand,
    SuperResolution,
    Colorization,
    Doodle,
    ControlCartoonFeature,
    /// Any instruction in words ("将背景更改为海滩"), done by qwen-image-edit.
    FreeText,
}

impl EditFunction {
    pub const ALL: [Self; 11] = [
        Self::StylizationAll,
        Self::StylizationLocal,
        Self::DescriptionEdit,
        Self::DescriptionEditWithMask,
        Self::RemoveWatermark,
        Self::Expand,
        Self::SuperResolution,
        Self::Colorization,
        Self::Doodle,
        Self::ControlCartoonFeature,
        Self::FreeText,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StylizationAll => "stylization_all",
            Self::StylizationLocal => "stylization_local",
            Self::DescriptionEdit => "description_edit",
            Self::DescriptionEditWithMask => "description_edit_with_mask",
            Self::RemoveWatermark => "remove_watermark",
            Self::Expand => "expand",
            Self::SuperResolution => "super_resolution",
            Self::Colorization => "colorization",
            Self::Doodle => "doodle",
            Self::ControlCartoonFeature => "control_cartoon_feature",
            Self::FreeText => "free_text",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Free text goes to the synchronous qwen-image-edit; the rest to wanx's async tasks.
    pub fn is_async(self) -> bool {
        self != Self::FreeText
    }

    /// The prompt used when the user gives none, for the functions whose intent is plain
    /// (the provider requires a prompt); None where the user must say what they want.
    pub fn default_prompt(self) -> Option<&'static str> {
        match self {
            Self::SuperResolution => Some("图像超分"),
            Self::Colorization => Some("为黑白照片自然上色"),
            Self::RemoveWatermark => Some("去除图像中的文字和水印"),
            Self::Expand => Some("扩展图像，保持风格一致"),
            _ => None,
        }
    }

    pub fn takes_mask(self) -> bool {
        self == Self::DescriptionEditWithMask
    }
}

/// A task's state in our table (`edit_tasks.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum TaskState {
    New,
    Queued,
    Submitting,
    Running,
    Settling,
    Succeeded,
    Failed,
}

platform::stored_enum!(TaskState);

impl TaskState {
    /// What the client sees.
    pub fn public(self) -> PublicStatus {
        match self {
            Self::New | Self::Queued => PublicStatus::Pending,
            Self::Submitting | Self::Running | Self::Settling => PublicStatus::Running,
            Self::Succeeded => PublicStatus::Succeeded,
            Self::Failed => PublicStatus::Failed,
        }
    }

    /// The task has ended and its credits are settled (charged or released): no worker step
    /// will touch it again. Before that a step may still need its stored input, and the credit
    /// hold is not yet committed or freed.
    pub fn has_ended(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PublicStatus {
    /// As the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// Why a task failed (stable codes for clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCode {
    /// The deadline passed before the provider finished.
    Timeout,
    /// The provider's content moderation refused the image or prompt.
    ModerationRejected,
    /// The provider refused the request (parameters it would not take).
    ProviderRejected,
    /// The provider failed the task (an internal error on its side).
    ProviderFailed,
    /// The task was lost at the provider (UNKNOWN or CANCELED).
    ProviderLost,
    /// The credits could not be taken when the result was ready (the hold had expired).
    PaymentFailed,
    /// The instance that accepted the request stopped before the credits were held.
    Abandoned,
    /// Not enough credits for the outputs asked for.
    InsufficientCredits,
    /// The membership service could not be asked.
    CreditsUnavailable,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ModerationRejected => "moderation_rejected",
            Self::ProviderRejected => "provider_rejected",
            Self::ProviderFailed => "provider_failed",
            Self::ProviderLost => "provider_lost",
            Self::PaymentFailed => "payment_failed",
            Self::Abandoned => "abandoned",
            Self::InsufficientCredits => "insufficient_credits",
            Self::CreditsUnavailable => "credits_unavailable",
        }
    }
}

/// The credit reference of a task: one hold, committed or released once.
pub fn credit_reference(task_id: &str) -> String {
    format!("edit:{task_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_round_trip() {
        for function in EditFunction::ALL {
            assert_eq!(EditFunction::parse(function.as_str()), Some(function));
        }
        assert_eq!(EditFunction::parse("make_it_pretty"), None);
        assert!(!EditFunction::FreeText.is_async());
        assert!(EditFunction::Expand.is_async());
    }

    #[test]
    fn internal_states_collapse_to_four_public_ones() {
        assert_eq!(TaskState::New.public(), PublicStatus::Pending);
        assert_eq!(TaskState::Settling.public(), PublicStatus::Running);
        assert_eq!(
            TaskState::try_from("failed".to_owned()),
            Ok(TaskState::Failed)
        );
        assert_eq!(TaskState::Settling.as_str(), "settling");
        assert!(TaskState::try_from("other".to_owned()).is_err());
    }

    #[test]
    fn only_succeeded_and_failed_tasks_have_ended() {
        let ended: Vec<TaskState> = [
            TaskState::New,
            TaskState::Queued,
            TaskState::Submitting,
            TaskState::Running,
            TaskState::Settling,
            TaskState::Succeeded,
            TaskState::Failed,
        ]
        .into_iter()
        .filter(|state| state.has_ended())
        .collect();
        assert_eq!(ended, [TaskState::Succeeded, TaskState::Failed]);
    }
}
