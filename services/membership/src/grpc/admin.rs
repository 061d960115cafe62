//! `membership.v1.AdminService`.

use chrono::{DateTime, Utc};
use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::admin::Admin;
use crate::domain::binding::BindingState;
use crate::error::MembershipError;
use crate::orders::{Orders, RefundOrder};
use crate::store::bills::{BillCheckRow, DifferenceRow};
use crate::store::refunds::RefundListRow;

pub struct AdminGrpc {
    admin: Admin,
    /// Refunds go through the orders' WeChat Pay client.
    orders: Orders,
}

impl AdminGrpc {
    pub fn new(admin: Admin, orders: Orders) -> Self {
        Self { admin, orders }
    }
}

fn bill_date(text: &str) -> Result<chrono::NaiveDate, MembershipError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| MembershipError::invalid("bill_date", "a day as YYYY-MM-DD"))
}

fn bill_check_message(check: BillCheckRow) -> pb::BillCheck {
    pb::BillCheck {
        bill_date: check.bill_date.format("%Y-%m-%d").to_string(),
        status: check.status,
        wechat_payments: u32::try_from(check.wechat_payments).unwrap_or(0),
        wechat_payment_fen: check.wechat_payment_fen,
        wechat_refunds: u32::try_from(check.wechat_refunds).unwrap_or(0),
        wechat_refund_fen: check.wechat_refund_fen,
        differences: u32::try_from(check.differences).unwrap_or(0),
        failure: check.failure,
        checked_at_unix: check.checked_at.timestamp(),
    }
}

fn bill_report_message(check: BillCheckRow, differences: Vec<DifferenceRow>) -> pb::BillReport {
    pb::BillReport {
        check: Some(bill_check_message(check)),
        differences: differences
            .into_iter()
            .map(|d| pb::BillDifference {
                kind: d.kind.as_str().to_owned(),
                order_no: d.out_trade_no,
                refund_no: d.out_refund_no.unwrap_or_default(),
                wechat_fee: d.wechat_fee.unwrap_or(-1),
                our_fee: d.our_fee.unwrap_or(-1),
            })
            .collect(),
    }
}

fn refund_message(row: RefundListRow) -> pb::Refund {
    let refund = row.refund;
    pb::Refund {
        refund_no: refund.out_refund_no,
        order_no: refund.out_trade_no,
        openid: row.openid.unwrap_or_default(),
        refund_fee: refund.refund_fee,
        credits_taken: refund.credits_taken,
        membership_days: u32::try_from(refund.membership_days).unwrap_or(0),
        status: refund.status.as_str().to_owned(),
        refund_id: refund.refund_id.unwrap_or_default(),
        reason: refund.reason,
        admin: refund.admin,
        failure: refund.failure,
        created_at_unix: refund.created_at.timestamp(),
        settled_at_unix: unix(refund.settled_at),
    }
}

fn time(unix_ms: i64, field: &'static str) -> Result<DateTime<Utc>, MembershipError> {
    DateTime::from_timestamp_millis(unix_ms)
        .ok_or_else(|| MembershipError::invalid(field, "not a time"))
}

fn unix(at: Option<DateTime<Utc>>) -> i64 {
    at.map_or(0, |at| at.timestamp())
}

fn page(page: Option<pb::Page>) -> (u32, u32) {
    let page = page.unwrap_or(pb::Page {
        offset: 0,
        limit: 50,
    });
    (page.offset, if page.limit == 0 { 50 } else { page.limit })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminGrpc {
    async fn summary(
        &self,
        request: Request<pb::SummaryRequest>,
    ) -> Result<Response<pb::SummaryResponse>, Status> {
        let r = request.into_inner();
        let summary = self
            .admin
            .summary(time(r.from_unix_ms, "from")?, time(r.to_unix_ms, "to")?)
            .await?;
        Ok(Response::new(pb::SummaryResponse {
            revenue_fen: summary.orders.revenue_fen,
            paid_orders: count(summary.orders.paid_orders),
            member_orders: count(summary.orders.member_orders),
            credit_orders: count(summary.orders.credit_orders),
            new_followers: count(summary.users.new_followers),
            active_members: count(summary.users.active_members),
            total_users: count(summary.users.total_users),
            refunded_fen: summary.refunds.refunded_fen,
            refunds: count(summary.refunds.refunds),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let r = request.into_inner();
        let (offset, limit) = page(r.page);
        let (rows, total) = self.admin.users(&r.openid_prefix, offset, limit).await?;
        let now = Utc::now();
        let users = rows
            .into_iter()
            .map(|u| pb::UserSummary {
                user_id: u.id,
                is_member: u.is_member && u.member_expire_at.is_some_and(|until| until > now),
                member_expire_at_unix: unix(u.member_expire_at.filter(|_| u.is_member)),
                openid: u.openid,
                following: u.subscribed,
                remaining_credits: u.remaining_credits,
                held_credits: u.held_credits,
                total_credits: u.total_credits,
                created_at_unix: u.created_at.timestamp(),
                last_active_at_unix: u.last_active_at.timestamp(),
            })
            .collect();
        Ok(Response::new(pb::ListUsersResponse {
            users,
            total: count(total),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let r = request.into_inner();
        let (offset, limit) = page(r.page);
        let status = Some(r.status.as_str()).filter(|s| !s.is_empty());
        let (rows, total) = self.admin.orders(status, offset, limit).await?;
        let orders = rows
            .into_iter()
            .map(|o| pb::AdminOrder {
                order_no: o.out_trade_no,
                openid: o.openid,
                order_type: o.order_type.as_str().to_owned(),
                total_fee: o.total_fee,
                status: o.status.as_str().to_owned(),
                credits_amount: u32::try_from(o.credits_amount).unwrap_or(0),
                created_at_unix: o.created_at.timestamp(),
                paid_at_unix: unix(o.paid_at),
                transaction_id: o.transaction_id.unwrap_or_default(),
                refunded_fee: o.refunded_fee,
            })
            .collect();
        Ok(Response::new(pb::ListOrdersResponse {
            orders,
            total: count(total),
        }))
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsResponse>, Status> {
        let (offset, limit) = page(request.into_inner().page);
        let (rows, total) = self.admin.bindings(offset, limit).await?;
        let bindings = rows
            .into_iter()
            .map(|b| pb::AdminBinding {
                scene_id: b.id,
                client_id: b.client_id,
                status: BindingState::derive(b.status, b.expire_at)
                    .as_str()
                    .to_owned(),
                openid: b.openid.unwrap_or_default(),
                created_at_unix: b.created_at.timestamp(),
                completed_at_unix: unix(b.completed_at),
                expire_at_unix: b.expire_at.timestamp(),
            })
            .collect();
        Ok(Response::new(pb::ListBindingsResponse {
            bindings,
            total: count(total),
        }))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let (offset, limit) = page(request.into_inner().page);
        let (rows, total) = self.admin.audit(offset, limit).await?;
        let entries = rows
            .into_iter()
            .map(|a| pb::AuditEntry {
                id: a.id,
                actor: a.admin,
                action: a.action,
                openid: a.openid.unwrap_or_default(),
                delta: a.delta,
                reason: a.reason,
                // An adjustment's ledger reference is its audit id.
                reference: a.reference.unwrap_or_else(|| format!("audit:{}", a.id)),
                created_at_unix: a.created_at.timestamp(),
            })
            .collect();
        Ok(Response::new(pb::ListAuditResponse {
            entries,
            total: count(total),
        }))
    }

    #[tracing::instrument(skip_all, fields(admin = %request.get_ref().admin))]
    async fn adjust_credits(
        &self,
        request: Request<pb::AdjustCreditsRequest>,
    ) -> Result<Response<pb::AdjustCreditsResponse>, Status> {
        let r = request.into_inner();
        let (audit_id, remaining) = self
            .admin
            .adjust_credits(&r.openid, r.delta, &r.reason, &r.admin)
            .await?;
        Ok(Response::new(pb::AdjustCreditsResponse {
            audit_id,
            remaining_credits: remaining,
        }))
    }

    async fn refund_order(
        &self,
        request: Request<pb::RefundOrderRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let r = request.into_inner();
        let refund = self
            .orders
            .refund(&RefundOrder {
                out_trade_no: &r.order_no,
                refund_fee: r.refund_fee,
                reason: &r.reason,
                admin: &r.admin,
            })
            .await?;
        Ok(Response::new(refund_message(refund)))
    }

    async fn list_refunds(
        &self,
        request: Request<pb::ListRefundsRequest>,
    ) -> Result<Response<pb::ListRefundsResponse>, Status> {
        let r = request.into_inner();
        let (offset, limit) = page(r.page);
        let order = Some(r.order_no.as_str()).filter(|no| !no.is_empty());
        let (rows, total) = self.admin.refunds(order, offset, limit).await?;
        Ok(Response::new(pb::ListRefundsResponse {
            refunds: rows.into_iter().map(refund_message).collect(),
            total: count(total),
        }))
    }

    async fn check_bill(
        &self,
        request: Request<pb::BillDateRequest>,
    ) -> Result<Response<pb::BillReport>, Status> {
        let day = bill_date(&request.get_ref().bill_date)?;
        self.orders.check_bill(day, true).await?;
        let (check, differences) = self.orders.bill_report(day).await?;
        Ok(Response::new(bill_report_message(check, differences)))
    }

    async fn get_bill_report(
        &self,
        request: Request<pb::BillDateRequest>,
    ) -> Result<Response<pb::BillReport>, Status> {
        let day = bill_date(&request.get_ref().bill_date)?;
        let (check, differences) = self.orders.bill_report(day).await?;
        Ok(Response::new(bill_report_message(check, differences)))
    }

    async fn list_bill_checks(
        &self,
        request: Request<pb::ListBillChecksRequest>,
    ) -> Result<Response<pb::ListBillChecksResponse>, Status> {
        let (offset, limit) = page(request.into_inner().page);
        let (rows, total) = self.orders.bill_checks(offset, limit).await?;
        Ok(Response::new(pb::ListBillChecksResponse {
            checks: rows.into_iter().map(bill_check_message).collect(),
            total: count(total),
        }))
    }
}
