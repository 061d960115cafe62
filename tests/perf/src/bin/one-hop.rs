//! The one-hop baseline of `compare`: axum answering the binding poll's question (the client's
//! binding, by primary key, on the read replica, its token checked) with nothing else on the
//! path: no second service, no Redis, no tracing, no request records. What the gateway's
//! authenticated calls are measured against.
//!
//!   DATABASE_URL=mysql://… one-hop 127.0.0.1:18090

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::mysql::MySqlPoolOptions;

#[derive(Deserialize)]
struct BindingQuery {
    client_id: String,
}

async fn binding(
    State(pool): State<sqlx::MySqlPool>,
    headers: HeaderMap,
    Query(query): Query<BindingQuery>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let row: Option<(Vec<u8>, String, Option<String>)> = sqlx::query_as(
        "SELECT client_token_hash, CAST(status AS CHAR), openid FROM client_bindings \
         WHERE client_id = ?",
    )
    .bind(&query.client_id)
    .fetch_optional(&pool)
    .await
    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let (hash, status, openid) = row.ok_or(StatusCode::UNAUTHORIZED)?;
    if hash != Sha256::digest(token.as_bytes()).as_slice() {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(Json(serde_json::json!({
        "client_id": query.client_id,
        "status": status,
        "openid": openid,
    })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let url = std::env::var("DATABASE_URL")?;
    let pool = MySqlPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await?;
    let app = Router::new()
        .route("/api/v1/auth/wechat/binding", get(binding))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
