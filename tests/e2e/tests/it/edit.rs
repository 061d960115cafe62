//! Image edits through the gateway (SYSTEM.md §3–§5, issue 5): the sandbox plays Bailian's
//! wanx2.1-imageedit tasks and qwen-image-edit; credits are held through membership, charged for
//! the images produced and released otherwise; results are served from our storage.

mod bad_input;
mod failures;
mod flows;
mod limits;
mod owner;
mod recording;
pub(crate) mod support;
