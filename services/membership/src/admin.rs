//! The admin site's use cases: read models from the replica (as of the operators' own last
//! change), and audited credit adjustments.

use chrono::{DateTime, Utc};
use sqlx::Acquire;

use platform::db::freshness::Freshness;
use platform::db::{Pools, last_gtid};

use crate::domain::order::OrderStatus;
use crate::error::MembershipError;
use crate::metrics::{CreditMetrics, CreditOperation};
use crate::retry;
use crate::store::{self, admin, ledger};

/// The subject of everything operators change and read back in the admin lists (see
/// [`Freshness`]): one for all operators, since each reads what the others did too.
pub const OPERATOR_VIEWS: &str = "operator_views";

#[derive(Clone)]
pub struct Admin {
    pools: Pools,
    freshness: Freshness,
    metrics: CreditMetrics,
}

pub struct Summary {
    pub orders: admin::OrderTotals,
    pub refunds: admin::RefundTotals,
    pub users: admin::UserTotals,
}

/// Pages are capped so one request cannot ask for the whole table.
pub fn page_bounds(offset: u32, limit: u32) -> (u32, u32) {
    (offset, limit.clamp(1, 200))
}

impl Admin {
    pub fn new(pools: Pools, freshness: Freshness) -> Self {
        Self {
            pools,
            freshness,
            metrics: CreditMetrics::new(),
        }
    }

    /// Runs a list or report query on the replica once it shows the operators' last change
    /// (else on the primary): an operator who has just adjusted or refunded sees it listed.
    async fn read<'a, T, F, Fut>(&'a self, query: F) -> Result<T, sqlx::Error>
    where
        F: Fn(&'a sqlx::MySqlPool) -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.freshness
            .read(&self.pools, OPERATOR_VIEWS, query)
            .await
    }

    /// Reports read the replica: seconds of staleness are fine for dashboards, but not after
    /// the operator's own change.
    pub async fn summary(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Summary, MembershipError> {
        if from >= to {
            return Err(MembershipError::invalid("range", "from must be before to"));
        }
        Ok(Summary {
            orders: self
                .read(|pool| admin::order_totals(pool, from, to))
                .await?,
            refunds: self
                .read(|pool| admin::refund_totals(pool, from, to))
                .await?,
            users: self.read(|pool| admin::user_totals(pool, from, to)).await?,
        })
    }

    pub async fn users(
        &self,
        prefix: &str,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<admin::UserListRow>, i64), MembershipError> {
        let (offset, limit) = page_bounds(offset, limit);
        Ok(self
            .read(|pool| admin::list_users(pool, prefix, offset, limit))
            .await?)
    }

    pub async fn orders(
        &self,
        status: Option<&str>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<admin::OrderListRow>, i64), MembershipError> {
        let status = status
            .map(str::parse::<OrderStatus>)
            .transpose()
            .map_err(|_| MembershipError::invalid("status", "unknown order status"))?;
        let (offset, limit) = page_bounds(offset, limit);
        Ok(self
            .read(|pool| admin::list_orders(pool, status, offset, limit))
            .await?)
    }

    pub async fn bindings(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<admin::BindingListRow>, i64), MembershipError> {
        let (offset, limit) = page_bounds(offset, limit);
        Ok(self
            .read(|pool| admin::list_bindings(pool, offset, limit))
            .await?)
    }

    pub async fn audit(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<admin::AuditListRow>, i64), MembershipError> {
        let (offset, limit) = page_bounds(offset, limit);
        Ok(self
            .read(|pool| admin::list_audit(pool, offset, limit))
            .await?)
    }

    pub async fn refunds(
        &self,
        out_trade_no: Option<&str>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<store::refunds::RefundListRow>, i64), MembershipError> {
        let (offset, limit) = page_bounds(offset, limit);
        Ok(self
            .read(|pool| store::refunds::list(pool, out_trade_no, offset, limit))
            .await?)
    }

    /// One audited ledger row `admin_adjust`, referenced by the audit id; never below zero.
    pub async fn adjust_credits(
        &self,
        openid: &str,
        delta: i64,
        reason: &str,
        admin_name: &str,
    ) -> Result<(i64, i64), MembershipError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(MembershipError::invalid(
                "reason",
                "a reason of 1 to 200 characters is required",
            ));
        }
        if delta == 0 || delta.abs() > 100_000 {
            return Err(MembershipError::invalid(
                "delta",
                "must be non-zero and within ±100000",
            ));
        }
        if admin_name.is_empty() {
            return Err(MembershipError::invalid("admin", "missing"));
        }
        let result = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            let user_id = admin::user_id(&mut *tx, openid)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            store::users::lock(&mut tx, user_id).await?;
            let audit_id = admin::audit(
                &mut tx,
                admin_name,
                "adjust_credits",
                user_id,
                delta,
                reason,
            )
            .await?;
            let balance = ledger::adjust(
                &mut tx,
                user_id,
                delta,
                ledger::Reason::AdminAdjust,
                &format!("audit:{audit_id}"),
            )
            .await?
            .ok_or(MembershipError::InsufficientCredits)?;
            tx.commit().await?;
            let gtid = last_gtid(&mut conn).await;
            self.freshness.wrote(OPERATOR_VIEWS, gtid.as_deref()).await;
            tracing::info!(
                admin = admin_name,
                user_id,
                delta,
                audit_id,
                "credits adjusted by an operator"
            );
            Ok((audit_id, balance))
        })
        .await;
        self.metrics
            .result(CreditOperation::Adjust, &result, delta.abs());
        result
    }
}
