//! HTTP routes, one module per area. Handlers adapt HTTP to gRPC and nothing more.

pub mod auth;
pub mod health;
pub mod location;
pub mod openapi;
pub mod wechat;
