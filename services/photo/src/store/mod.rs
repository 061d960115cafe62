//! SQL of the photo service's own schema, one file per table.

pub mod classification_cache;
pub mod edit_tasks;
