//! `classification_cache`: the durable copy of classification results (Redis holds the hot one).

use sqlx::{FromRow, MySqlExecutor, QueryBuilder};

use crate::classify::domain::{
    AlbumCategory, CacheKey, CachedEntry, Digest, ModelResult, Producer, ScoredLabel, TokenUsage,
};

#[derive(FromRow)]
struct Row {
    sha256: Vec<u8>,
    model_version: String,
    prompt_version: String,
    category: String,
    labels: String,
    confidence: f64,
    sure: bool,
    source: String,
    outcome: String,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// A stored row with its key.
pub struct StoredRow {
    pub key: CacheKey,
    pub entry: CachedEntry,
}

/// Reads every stored result of `digests` (all model and prompt versions; the caller picks).
/// A row that no longer parses (a category since removed) is skipped, as a miss.
#[tracing::instrument(name = "classification_cache.find", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find(
    executor: impl MySqlExecutor<'_>,
    digests: &[Digest],
) -> Result<Vec<StoredRow>, sqlx::Error> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new(
        "SELECT sha256, model_version, prompt_version, category, CAST(labels AS CHAR) AS labels, \
         confidence, sure, CAST(source AS CHAR) AS source, CAST(outcome AS CHAR) AS outcome, \
         prompt_tokens, completion_tokens FROM classification_cache WHERE sha256 IN (",
    );
    let mut list = query.separated(", ");
    for digest in digests {
        list.push_bind(digest.as_bytes().as_slice());
    }
    query.push(")");
    let rows: Vec<Row> = query.build_query_as().fetch_all(executor).await?;
    Ok(rows.into_iter().filter_map(parse_row).collect())
}

fn parse_row(row: Row) -> Option<StoredRow> {
    let key = CacheKey {
        digest: Digest::from_bytes(&row.sha256).ok()?,
        model_version: row.model_version,
        prompt_version: row.prompt_version,
    };
    if row.outcome == "moderation_rejected" {
        let entry = CachedEntry::ModerationRejected {
            model: key.model_version.clone(),
        };
        return Some(StoredRow { key, entry });
    }
    let parsed = (|| {
        let category: AlbumCategory = row.category.parse().ok()?;
        let labels: Vec<ScoredLabel> = serde_json::from_str(&row.labels).ok()?;
        let producer = match row.source.as_str() {
            "local" => Producer::Local,
            "model" => Producer::Model,
            _ => return None,
        };
        Some(ModelResult {
            category,
            labels,
            confidence: row.confidence as f32,
            sure: row.sure,
            producer,
            model: key.model_version.clone(),
            usage: row.prompt_tokens.zip(row.completion_tokens).map(
                |(prompt_tokens, completion_tokens)| TokenUsage {
                    prompt_tokens,
                    completion_tokens,
                },
            ),
        })
    })();
    match parsed {
        Some(result) => Some(StoredRow {
            key,
            entry: CachedEntry::Classified(result),
        }),
        None => {
            tracing::warn!(sha256 = %key.digest, model = %key.model_version, "unreadable cached classification skipped");
            None
        }
    }
}

/// Stores a result once: the first answer for a key stays (a repeat is a no-op, not an error).
#[tracing::instrument(name = "classification_cache.insert", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn insert(
    executor: impl MySqlExecutor<'_>,
    key: &CacheKey,
    entry: &CachedEntry,
) -> Result<(), sqlx::Error> {
    let (category, labels, confidence, sure, source, outcome, usage) = match entry {
        CachedEntry::Classified(result) => (
            result.category.code(),
            serde_json::to_string(&result.labels).unwrap_or_else(|_| "[]".into()),
            f64::from(result.confidence.clamp(0.0, 1.0)),
            result.sure,
            result.producer.as_str(),
            "classified",
            result.usage,
        ),
        CachedEntry::ModerationRejected { .. } => (
            AlbumCategory::Other.code(),
            "[]".to_owned(),
            0.0,
            false,
            Producer::Model.as_str(),
            "moderation_rejected",
            None,
        ),
    };
    sqlx::query(
        "INSERT INTO classification_cache (sha256, model_version, prompt_version, category, \
         labels, confidence, sure, source, outcome, prompt_tokens, completion_tokens) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE sha256 = sha256",
    )
    .bind(key.digest.as_bytes().as_slice())
    .bind(&key.model_version)
    .bind(&key.prompt_version)
    .bind(category)
    .bind(labels)
    .bind(confidence)
    .bind(sure)
    .bind(source)
    .bind(outcome)
    .bind(usage.map(|u| u.prompt_tokens))
    .bind(usage.map(|u| u.completion_tokens))
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes at most `batch` results stored before `before`; returns how many.
#[tracing::instrument(name = "classification_cache.delete_before", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn delete_stored_before(
    executor: impl MySqlExecutor<'_>,
    before: chrono::DateTime<chrono::Utc>,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM classification_cache WHERE created_at < ? LIMIT ?")
        .bind(before)
        .bind(batch)
        .execute(executor)
        .await?;
    Ok(done.rows_affected())
}
