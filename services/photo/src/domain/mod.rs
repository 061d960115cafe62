//! The photo service's rules, free of transport and storage.

pub mod classification;
pub mod edit;
pub mod location;
