//! Credits for the other services: balance, reserve → commit / release, charge, grant, and the
//! janitor that frees the holds of work that died. Every change is guarded in SQL and idempotent
//! by its reference; every balance change has its ledger row in the same transaction.

use chrono::{Duration, Utc};
use sqlx::Acquire;

use platform::db::Pools;

use crate::domain::hold::HoldStatus;
use crate::error::MembershipError;
use crate::metrics::{CreditMetrics, CreditOperation};
use crate::retry;
use crate::store::{self, holds::HoldRow, ledger, users::UserRow};

/// Who asks for a grant and why: kept in the audit row the grant leaves.
pub struct GrantAudit<'a> {
    pub actor: &'a str,
    pub note: &'a str,
}

impl GrantAudit<'_> {
    fn check(&self) -> Result<(), MembershipError> {
        if !(1..=64).contains(&self.actor.chars().count()) {
            return Err(MembershipError::invalid(
                "actor",
                "must be 1 to 64 characters",
            ));
        }
        if self.note.trim().is_empty() || self.note.chars().count() > 255 {
            return Err(MembershipError::invalid(
                "note",
                "must be 1 to 255 characters",
            ));
        }
        Ok(())
    }
}

/// What a guarded change did: applied now, or found already applied under its reference (a
/// repeat changes nothing and answers as the first call did).
enum Outcome<T> {
    Applied(T),
    Repeated(T),
}

#[derive(Clone)]
pub struct Credits {
    pools: Pools,
    default_hold_ttl_secs: u32,
    metrics: CreditMetrics,
}

/// A hold and the balance after the call.
pub struct HoldView {
    pub hold: HoldRow,
    pub balance: UserRow,
}

fn check_reference(reference: &str) -> Result<(), MembershipError> {
    if reference.is_empty() || reference.len() > 128 {
        return Err(MembershipError::invalid(
            "reference",
            "must be 1 to 128 characters",
        ));
    }
    Ok(())
}

fn check_amount(amount: i64) -> Result<(), MembershipError> {
    if !(1..=1_000_000).contains(&amount) {
        return Err(MembershipError::invalid(
            "amount",
            "must be within 1..=1000000",
        ));
    }
    Ok(())
}

impl Credits {
    pub fn new(pools: Pools, default_hold_ttl_secs: u32) -> Self {
        Self {
            pools,
            default_hold_ttl_secs,
            metrics: CreditMetrics::new(),
        }
    }

    /// The balance that decides spending: read from the primary.
    pub async fn balance(&self, user_id: i64) -> Result<UserRow, MembershipError> {
        store::users::find_by_id(&self.pools.primary, user_id)
            .await?
            .ok_or(MembershipError::NotFound("user"))
    }

    /// Holds `amount` under `reference`. Repeating the same reservation returns the same hold.
    pub async fn reserve(
        &self,
        user_id: i64,
        amount: i64,
        reference: &str,
        ttl_secs: u32,
    ) -> Result<HoldView, MembershipError> {
        let change = self.reserve_inner(user_id, amount, reference, ttl_secs);
        self.counted(CreditOperation::Reserve, |_| amount, change)
            .await
    }

    async fn reserve_inner(
        &self,
        user_id: i64,
        amount: i64,
        reference: &str,
        ttl_secs: u32,
    ) -> Result<Outcome<HoldView>, MembershipError> {
        check_reference(reference)?;
        check_amount(amount)?;
        let ttl = if ttl_secs == 0 {
            self.default_hold_ttl_secs
        } else {
            ttl_secs.min(86_400)
        };
        retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            store::users::lock(&mut tx, user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let expires_at = Utc::now() + Duration::seconds(i64::from(ttl));
            match store::holds::insert(&mut tx, reference, user_id, amount, expires_at).await {
                Ok(()) => {}
                Err(err) if platform::db::is_unique_violation(&err) => {
                    let hold = store::holds::find(&mut *tx, reference)
                        .await?
                        .ok_or(MembershipError::NotFound("hold"))?;
                    if hold.user_id != user_id || hold.amount != amount {
                        return Err(MembershipError::ReferenceConflict(reference.to_owned()));
                    }
                    let balance = store::users::lock(&mut tx, user_id)
                        .await?
                        .ok_or(MembershipError::NotFound("user"))?;
                    return Ok(Outcome::Repeated(HoldView { hold, balance }));
                }
                Err(err) => return Err(err.into()),
            }
            if !store::holds::hold_on_user(&mut tx, user_id, amount).await? {
                return Err(MembershipError::InsufficientCredits);
            }
            let view = self.view(&mut tx, reference, user_id).await?;
            tx.commit().await?;
            Ok(Outcome::Applied(view))
        })
        .await
    }

    /// Spends `used` of the hold (up to its amount) and frees the rest, once.
    pub async fn commit(&self, reference: &str, used: i64) -> Result<HoldView, MembershipError> {
        let change = self.commit_inner(reference, used);
        self.counted(CreditOperation::Commit, |_| used, change)
            .await
    }

    async fn commit_inner(
        &self,
        reference: &str,
        used: i64,
    ) -> Result<Outcome<HoldView>, MembershipError> {
        check_reference(reference)?;
        retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            let hold = store::holds::lock(&mut tx, reference)
                .await?
                .ok_or(MembershipError::NotFound("hold"))?;
            if !(0..=hold.amount).contains(&used) {
                return Err(MembershipError::invalid(
                    "used",
                    "must be within 0..=held amount",
                ));
            }
            match hold.status {
                HoldStatus::Held => {}
                HoldStatus::Captured if hold.captured == used => {
                    let view = self.view(&mut tx, reference, hold.user_id).await?;
                    return Ok(Outcome::Repeated(view));
                }
                status => {
                    return Err(MembershipError::HoldSettled {
                        reference: reference.to_owned(),
                        status: status.as_str().to_owned(),
                    });
                }
            }
            store::users::lock(&mut tx, hold.user_id).await?;
            store::holds::settle(&mut tx, reference, HoldStatus::Captured, used).await?;
            // The hold guarantees the credits; a refusal here means the books are wrong.
            if !ledger::spend(&mut tx, hold.user_id, used, hold.amount, reference).await? {
                tracing::error!(reference, "held credits could not be spent");
                return Err(MembershipError::InsufficientCredits);
            }
            let view = self.view(&mut tx, reference, hold.user_id).await?;
            tx.commit().await?;
            Ok(Outcome::Applied(view))
        })
        .await
    }

    /// Frees the hold, once; a settled hold is returned as it is.
    pub async fn release(&self, reference: &str) -> Result<HoldView, MembershipError> {
        self.release_counted(reference, CreditOperation::Release)
            .await
    }

    async fn release_counted(
        &self,
        reference: &str,
        operation: CreditOperation,
    ) -> Result<HoldView, MembershipError> {
        let change = self.release_inner(reference);
        self.counted(operation, |view: &HoldView| view.hold.amount, change)
            .await
    }

    async fn release_inner(&self, reference: &str) -> Result<Outcome<HoldView>, MembershipError> {
        check_reference(reference)?;
        retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            let hold = store::holds::lock(&mut tx, reference)
                .await?
                .ok_or(MembershipError::NotFound("hold"))?;
            let applied = hold.status == HoldStatus::Held;
            if applied {
                store::users::lock(&mut tx, hold.user_id).await?;
                store::holds::settle(&mut tx, reference, HoldStatus::Released, 0).await?;
                store::holds::unhold_on_user(&mut tx, hold.user_id, hold.amount).await?;
            }
            let view = self.view(&mut tx, reference, hold.user_id).await?;
            tx.commit().await?;
            Ok(if applied {
                Outcome::Applied(view)
            } else {
                Outcome::Repeated(view)
            })
        })
        .await
    }

    /// Spends `amount` at once. The same reference charges once; a repeat returns the balance.
    pub async fn charge(
        &self,
        user_id: i64,
        amount: i64,
        reference: &str,
    ) -> Result<UserRow, MembershipError> {
        let change = self.charge_inner(user_id, amount, reference);
        self.counted(CreditOperation::Charge, |_| amount, change)
            .await
    }

    async fn charge_inner(
        &self,
        user_id: i64,
        amount: i64,
        reference: &str,
    ) -> Result<Outcome<UserRow>, MembershipError> {
        check_reference(reference)?;
        check_amount(amount)?;
        retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            match ledger::spend(&mut tx, user_id, amount, 0, reference).await {
                Ok(true) => {}
                Ok(false) => return Err(MembershipError::InsufficientCredits),
                Err(err) if platform::db::is_unique_violation(&err) => {
                    // Charged before: the rollback undoes this attempt's balance change. Only
                    // the same charge (user and amount) is a repeat; another under the same
                    // reference is refused, so no caller learns "charged" for someone else's.
                    tx.rollback().await?;
                    let earlier =
                        ledger::find_change(&mut conn, ledger::Reason::Charge, reference).await?;
                    if earlier != Some((user_id, -amount)) {
                        return Err(MembershipError::ReferenceConflict(reference.to_owned()));
                    }
                    return self.balance(user_id).await.map(Outcome::Repeated);
                }
                Err(err) => return Err(err.into()),
            }
            let balance = store::users::lock(&mut tx, user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            tx.commit().await?;
            Ok(Outcome::Applied(balance))
        })
        .await
    }

    /// Adds credits once per (reason, reference), with an audit row saying who asked and why.
    /// Repeating the same grant changes nothing; another grant under a used reference is refused.
    pub async fn grant(
        &self,
        user_id: i64,
        amount: i64,
        reason: ledger::Reason,
        reference: &str,
        audit: &GrantAudit<'_>,
    ) -> Result<UserRow, MembershipError> {
        let change = self.grant_inner(user_id, amount, reason, reference, audit);
        self.counted(CreditOperation::Grant, |_| amount, change)
            .await
    }

    async fn grant_inner(
        &self,
        user_id: i64,
        amount: i64,
        reason: ledger::Reason,
        reference: &str,
        audit: &GrantAudit<'_>,
    ) -> Result<Outcome<UserRow>, MembershipError> {
        check_reference(reference)?;
        check_amount(amount)?;
        audit.check()?;
        retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            store::users::lock(&mut tx, user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let applied = ledger::grant_once(&mut tx, user_id, amount, reason, reference).await?;
            if applied {
                store::admin::audit_referenced(
                    &mut tx,
                    &store::admin::ReferencedAuditRow {
                        action: "grant",
                        actor: audit.actor,
                        user_id,
                        delta: amount,
                        note: audit.note,
                        reference,
                    },
                )
                .await?;
            } else {
                let earlier = ledger::find_change(&mut tx, reason, reference).await?;
                if earlier != Some((user_id, amount)) {
                    return Err(MembershipError::ReferenceConflict(reference.to_owned()));
                }
            }
            let balance = store::users::lock(&mut tx, user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            tx.commit().await?;
            Ok(if applied {
                Outcome::Applied(balance)
            } else {
                Outcome::Repeated(balance)
            })
        })
        .await
    }

    /// Releases holds past their expiry; returns how many this call released. Safe to run on
    /// every instance at once: each release is the guarded, idempotent one above.
    pub async fn release_expired(&self) -> Result<usize, MembershipError> {
        let expired = store::holds::expired(&self.pools.primary, 100).await?;
        let mut released = 0;
        for reference in expired {
            let view = self
                .release_counted(&reference, CreditOperation::Expire)
                .await?;
            if view.hold.status == HoldStatus::Released {
                released += 1;
                tracing::info!(reference, "expired hold released");
            }
        }
        Ok(released)
    }

    /// Runs one change and counts it: by its error, as `duplicate` when it had been applied
    /// before under its reference, else as `ok` with the credits it moved.
    async fn counted<T>(
        &self,
        operation: CreditOperation,
        credits: impl FnOnce(&T) -> i64,
        change: impl std::future::Future<Output = Result<Outcome<T>, MembershipError>>,
    ) -> Result<T, MembershipError> {
        match change.await {
            Ok(Outcome::Applied(value)) => {
                self.metrics.record(operation, "ok", credits(&value));
                Ok(value)
            }
            Ok(Outcome::Repeated(value)) => {
                self.metrics.record(operation, "duplicate", 0);
                Ok(value)
            }
            Err(err) => {
                self.metrics.record(operation, err.outcome(), 0);
                Err(err)
            }
        }
    }

    async fn view(
        &self,
        conn: &mut sqlx::MySqlConnection,
        reference: &str,
        user_id: i64,
    ) -> Result<HoldView, MembershipError> {
        let hold = store::holds::find(&mut *conn, reference)
            .await?
            .ok_or(MembershipError::NotFound("hold"))?;
        let balance = store::users::find_by_id(&mut *conn, user_id)
            .await?
            .ok_or(MembershipError::NotFound("user"))?;
        Ok(HoldView { hold, balance })
    }
}
