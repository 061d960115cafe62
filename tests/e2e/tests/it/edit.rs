//! Image edits through the gateway (docs/architecture.md, "Image edits"): the sandbox plays
//! Bailian's wanx2.1-imageedit tasks and qwen-image-edit; credits are held through membership,
//! charged for the images produced and released otherwise; results are served from our storage.

mod bad_input;
mod failures;
mod flows;
mod limits;
mod owner;
mod recording;
pub(crate) mod support;
