//! A user's personal data: the export of everything this service holds about them, and its
//! erasure. Erasure keeps the financial records (orders, refunds, ledger rows) under a random
//! pseudonym and deletes or clears the rest; an `erasures` row tells the other services'
//! follow-ups what to forget, and is cleared in turn when they are confirmed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Acquire;

use platform::db::freshness::Freshness;
use platform::db::{Pools, last_gtid};

use crate::admin::OPERATOR_VIEWS;
use crate::binding::Bindings;
use crate::error::MembershipError;
use crate::orders::user_subject;
use crate::retry;
use crate::store::personal_data as held;
use crate::store::{self, erasure, ledger};

/// Who may be named as an erasure's actor when the user asked themselves.
pub const MEMBER_ACTOR: &str = "member";

#[derive(Clone)]
pub struct PersonalData {
    pools: Pools,
    freshness: Freshness,
    bindings: Bindings,
}

/// The export document (field names are the JSON the user downloads).
#[derive(Serialize)]
struct Export {
    exported_at: DateTime<Utc>,
    user: held::UserData,
    devices: Vec<held::DeviceData>,
    orders: Vec<held::OrderData>,
    refunds: Vec<held::RefundData>,
    credit_ledger: Vec<held::LedgerData>,
    official_account_events: Vec<held::EventData>,
}

/// The export document, and who it is about for the services that hold the rest.
pub struct Exported {
    pub json: Vec<u8>,
    pub user_id: i64,
    pub client_ids: Vec<String>,
}

/// An erasure as written: the follow-ups still to run elsewhere, and what it forfeited.
pub struct ErasureDone {
    pub id: i64,
    pub user_id: i64,
    pub pseudonym: String,
    pub openid: String,
    pub client_ids: Vec<String>,
    pub credits_forfeited: i64,
}

/// The welcome bonus's ledger reference once the openid is erased: the same WeChat account
/// following again is recognised (no second bonus) without the openid being kept.
pub fn erased_follow_bonus_reference(openid: &str) -> String {
    format!("erased:{}", hex::encode(Sha256::digest(openid.as_bytes())))
}

impl PersonalData {
    pub fn new(pools: Pools, freshness: Freshness, bindings: Bindings) -> Self {
        Self {
            pools,
            freshness,
            bindings,
        }
    }

    /// Everything held about `openid`, as JSON.
    pub async fn export(&self, openid: &str) -> Result<Exported, MembershipError> {
        let pool = &self.pools.primary;
        let user = held::user(pool, openid)
            .await?
            .ok_or(MembershipError::NotFound("user"))?;
        let export = Export {
            exported_at: Utc::now(),
            devices: held::devices(pool, user.id).await?,
            orders: held::orders(pool, user.id).await?,
            refunds: held::refunds(pool, user.id).await?,
            credit_ledger: held::ledger(pool, user.id).await?,
            official_account_events: held::events(pool, openid).await?,
            user,
        };
        Ok(Exported {
            // Compact: the gateway joins it with the other services' parts and pretty-prints.
            json: serde_json::to_vec(&export)?,
            user_id: export.user.id,
            client_ids: export.devices.into_iter().map(|d| d.client_id).collect(),
        })
    }

    /// Erases `openid`'s personal data here (see the module); `actor` is [`MEMBER_ACTOR`] or the
    /// operator's name.
    pub async fn erase(
        &self,
        openid: &str,
        actor: &str,
        reason: &str,
    ) -> Result<ErasureDone, MembershipError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(MembershipError::invalid(
                "reason",
                "a reason of 1 to 200 characters is required",
            ));
        }
        if actor.is_empty() || actor.len() > 64 {
            return Err(MembershipError::invalid("actor", "1 to 64 characters"));
        }
        let pseudonym = format!("erased:{}", hex::encode(rand::random::<[u8; 12]>()));
        let follow_bonus = erased_follow_bonus_reference(openid);
        let (done, clients, gtid) = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = (&mut *conn).begin().await?;
            let user_id = store::admin::user_id(&mut *tx, openid)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let user = store::users::lock(&mut tx, user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let blockers = erasure::blockers(&mut tx, user_id).await?;
            if blockers.unpaid_orders > 0 {
                return Err(MembershipError::ErasureBlocked(
                    "an order may still be paid",
                ));
            }
            if blockers.open_refunds > 0 {
                return Err(MembershipError::ErasureBlocked("a refund is on its way"));
            }
            if user.held_credits > 0 {
                return Err(MembershipError::ErasureBlocked("an edit is using credits"));
            }
            let clients = erasure::delete_bindings(&mut tx, user_id, openid).await?;
            erasure::delete_traces(&mut tx, user_id, openid).await?;
            let forfeited = user.remaining_credits;
            if forfeited > 0 {
                ledger::adjust(
                    &mut tx,
                    user_id,
                    -forfeited,
                    ledger::Reason::Erasure,
                    &format!("erasure:{pseudonym}"),
                )
                .await?
                .ok_or(MembershipError::InsufficientCredits)?;
            }
            erasure::pseudonymise(&mut tx, user_id, &pseudonym, &follow_bonus).await?;
            store::admin::audit_referenced(
                &mut tx,
                &store::admin::ReferencedAuditRow {
                    action: "erase",
                    actor,
                    user_id,
                    delta: -forfeited,
                    note: reason,
                    reference: &pseudonym,
                },
            )
            .await?;
            let client_ids: Vec<String> = clients.iter().map(|c| c.client_id.clone()).collect();
            let client_ids_json = serde_json::to_string(&client_ids)?;
            let id = erasure::insert(
                &mut tx,
                &erasure::NewErasure {
                    user_id,
                    pseudonym: &pseudonym,
                    openid,
                    client_ids_json: &client_ids_json,
                    actor,
                    credits_forfeited: forfeited,
                },
            )
            .await?;
            tx.commit().await?;
            let gtid = last_gtid(&mut conn).await;
            let done = ErasureDone {
                id: i64::try_from(id).unwrap_or(i64::MAX),
                user_id,
                pseudonym: pseudonym.clone(),
                openid: openid.to_owned(),
                client_ids,
                credits_forfeited: forfeited,
            };
            Ok((done, clients, gtid))
        })
        .await?;
        self.freshness
            .wrote(&user_subject(openid), gtid.as_deref())
            .await;
        self.freshness.wrote(OPERATOR_VIEWS, gtid.as_deref()).await;
        for client in &clients {
            self.bindings
                .signed_out(
                    &client.client_id,
                    &client.client_token_hash,
                    &[],
                    gtid.as_deref(),
                )
                .await;
        }
        tracing::info!(
            user_id = done.user_id,
            erasure = done.id,
            actor,
            clients = done.client_ids.len(),
            credits_forfeited = done.credits_forfeited,
            "personal data erased"
        );
        Ok(done)
    }

    /// Erasures older than `older_than` whose follow-ups are not confirmed, oldest first.
    pub async fn pending(
        &self,
        older_than: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<ErasureDone>, MembershipError> {
        let rows = erasure::pending(
            &self.pools.primary,
            Utc::now() - older_than,
            limit.clamp(1, 100),
        )
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(ErasureDone {
                    id: row.id,
                    user_id: row.user_id,
                    pseudonym: row.pseudonym,
                    openid: row.openid.unwrap_or_default(),
                    client_ids: match row.client_ids {
                        Some(json) => serde_json::from_str(&json)?,
                        None => Vec::new(),
                    },
                    credits_forfeited: row.credits_forfeited,
                })
            })
            .collect()
    }

    /// Confirms the follow-ups of erasure `id`; false when confirmed before.
    pub async fn complete(&self, id: i64) -> Result<bool, MembershipError> {
        let completed = erasure::complete(&self.pools.primary, id).await?;
        if completed {
            tracing::info!(erasure = id, "erasure follow-ups confirmed");
        }
        Ok(completed)
    }
}
