//! The typed Rust client of the Xintu gateway's REST API, for tools.
//!
//! Every JSON operation of the gateway's OpenAPI document (`clients/openapi.json`) is generated
//! at build time by [progenitor](https://github.com/oxidecomputer/progenitor), one builder per
//! operation named by its operation id:
//!
//! ```no_run
//! # async fn account() -> Result<(), Box<dyn std::error::Error>> {
//! let api = xintu_client::Client::new("https://api.aifuture.net.cn").with_client_token("token")?;
//! let account = api.get_account().send().await?.into_inner();
//! println!("{} credits", account.available_credits);
//! # Ok(())
//! # }
//! ```
//!
//! The uploads (classify, classify a batch, edit) are `multipart/form-data`, which the generator
//! does not write: [`Client::classify`], [`Client::classify_batch`] and [`Client::submit_edit`]
//! are written here, with the same answer and error types. An error answer is
//! `Error::ErrorResponse` holding the gateway's [`types::ErrorBody`], whose `code` is stable.

mod generated {
    #![allow(
        clippy::all,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::uninlined_format_args,
        clippy::redundant_clone,
        rust_2018_idioms,
        missing_docs,
        unused_imports
    )]
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}
mod upload;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

// The generated module re-exports progenitor's `ByteStream`, `Error` and `ResponseValue`.
pub use generated::*;
pub use upload::{EditRequest, Photo};

impl Client {
    /// The same API, sending the app's client token (from `create_qrcode`) as
    /// `Authorization: Bearer` with every request.
    pub fn with_client_token(&self, client_token: &str) -> Result<Client, ClientSetupError> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {client_token}"))
            .map_err(|_| ClientSetupError::InvalidToken)?;
        bearer.set_sensitive(true);
        // The connect timeout of `Client::new`, but no timeout on the whole request: an app's
        // binding long poll (`binding_status().wait(25)`) answers after up to 25 s.
        let http = reqwest::Client::builder()
            .default_headers(HeaderMap::from_iter([(AUTHORIZATION, bearer)]))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(ClientSetupError::Http)?;
        Ok(Client::new_with_client(self.baseurl(), http))
    }
}

/// Why [`Client::with_client_token`] could not make a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// The token holds characters no HTTP header may carry: it is not one the gateway issued.
    #[error("the client token is not a valid header value")]
    InvalidToken,
    /// The HTTP client could not start (its TLS roots, say).
    #[error("the HTTP client could not start: {0}")]
    Http(#[source] reqwest::Error),
}

/// Lower-case hex SHA-256 of a photo's bytes: the key `POST /api/v1/photos/lookup` takes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
