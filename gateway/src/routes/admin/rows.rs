//! What the admin API shows of users, orders, bindings, audit entries, refunds and bill checks:
//! one type each, read from membership's answers, so that the API document describes exactly
//! what is sent (in the lists' JSON pages, their CSV files and the single answers).

use serde::Serialize;
use utoipa::ToSchema;

use proto::membership::v1 as membership;

use crate::routes::{rfc3339_if_set, text_if_set};

/// A WeChat user with their credits and membership. Times are RFC 3339.
#[derive(Serialize, ToSchema, Default)]
pub struct AdminUserOut {
    pub user_id: i64,
    pub openid: String,
    pub following: bool,
    pub remaining_credits: i64,
    pub held_credits: i64,
    pub total_credits: i64,
    pub is_member: bool,
    pub member_expire_at: Option<String>,
    pub created_at: Option<String>,
    pub last_active_at: Option<String>,
}

impl From<membership::UserSummary> for AdminUserOut {
    fn from(u: membership::UserSummary) -> Self {
        Self {
            user_id: u.user_id,
            openid: u.openid,
            following: u.following,
            remaining_credits: u.remaining_credits,
            held_credits: u.held_credits,
            total_credits: u.total_credits,
            is_member: u.is_member,
            member_expire_at: rfc3339_if_set(u.member_expire_at_unix),
            created_at: rfc3339_if_set(u.created_at_unix),
            last_active_at: rfc3339_if_set(u.last_active_at_unix),
        }
    }
}

/// A payment order. Amounts in fen; times RFC 3339.
#[derive(Serialize, ToSchema, Default)]
pub struct AdminOrderOut {
    pub order_no: String,
    pub openid: String,
    /// `member` or `credits`.
    pub order_type: String,
    pub total_fee: i64,
    /// `notpay`, `paid`, `closed` or `failed`.
    pub status: String,
    pub credits_amount: u32,
    pub created_at: Option<String>,
    pub paid_at: Option<String>,
    pub transaction_id: String,
    pub refunded_fee: i64,
}

impl From<membership::AdminOrder> for AdminOrderOut {
    fn from(o: membership::AdminOrder) -> Self {
        Self {
            order_no: o.order_no,
            openid: o.openid,
            order_type: o.order_type,
            total_fee: o.total_fee,
            status: o.status,
            credits_amount: o.credits_amount,
            created_at: rfc3339_if_set(o.created_at_unix),
            paid_at: rfc3339_if_set(o.paid_at_unix),
            transaction_id: o.transaction_id,
            refunded_fee: o.refunded_fee,
        }
    }
}

/// An app client's QR binding; `openid` once a WeChat user bound it.
#[derive(Serialize, ToSchema, Default)]
pub struct AdminBindingOut {
    pub scene_id: u32,
    pub client_id: String,
    pub status: String,
    pub openid: Option<String>,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
    pub expire_at: Option<String>,
}

impl From<membership::AdminBinding> for AdminBindingOut {
    fn from(b: membership::AdminBinding) -> Self {
        Self {
            scene_id: b.scene_id,
            client_id: b.client_id,
            status: b.status,
            openid: text_if_set(b.openid),
            created_at: rfc3339_if_set(b.created_at_unix),
            completed_at: rfc3339_if_set(b.completed_at_unix),
            expire_at: rfc3339_if_set(b.expire_at_unix),
        }
    }
}

/// A credit adjustment by an operator or a grant by a service, with the ledger reference of
/// what it changed.
#[derive(Serialize, ToSchema, Default)]
pub struct AuditEntryOut {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub openid: Option<String>,
    pub delta: i64,
    pub reason: String,
    pub reference: String,
    pub created_at: Option<String>,
}

impl From<membership::AuditEntry> for AuditEntryOut {
    fn from(a: membership::AuditEntry) -> Self {
        Self {
            id: a.id,
            actor: a.actor,
            action: a.action,
            openid: text_if_set(a.openid),
            delta: a.delta,
            reason: a.reason,
            reference: a.reference,
            created_at: rfc3339_if_set(a.created_at_unix),
        }
    }
}

/// A refund, what it took back, and how it stands at WeChat Pay (`status`: pending,
/// processing, success, failed...).
#[derive(Serialize, ToSchema, Default)]
pub struct AdminRefundOut {
    pub refund_no: String,
    pub order_no: String,
    pub openid: Option<String>,
    pub refund_fee: i64,
    pub credits_taken: i64,
    pub membership_days: u32,
    pub status: String,
    pub refund_id: Option<String>,
    pub reason: String,
    pub admin: String,
    pub failure: Option<String>,
    pub created_at: Option<String>,
    pub settled_at: Option<String>,
}

impl From<membership::Refund> for AdminRefundOut {
    fn from(r: membership::Refund) -> Self {
        Self {
            refund_no: r.refund_no,
            order_no: r.order_no,
            openid: text_if_set(r.openid),
            refund_fee: r.refund_fee,
            credits_taken: r.credits_taken,
            membership_days: r.membership_days,
            status: r.status,
            refund_id: text_if_set(r.refund_id),
            reason: r.reason,
            admin: r.admin,
            failure: text_if_set(r.failure),
            created_at: rfc3339_if_set(r.created_at_unix),
            settled_at: rfc3339_if_set(r.settled_at_unix),
        }
    }
}

/// A checked bill day: the bill's totals and how many differences it found.
#[derive(Serialize, ToSchema, Default)]
pub struct BillCheckOut {
    /// China time, YYYY-MM-DD.
    pub bill_date: String,
    pub status: String,
    pub wechat_payments: u32,
    pub wechat_payment_fen: i64,
    pub wechat_refunds: u32,
    pub wechat_refund_fen: i64,
    pub differences: u32,
    pub failure: Option<String>,
    pub checked_at: Option<String>,
}

impl From<membership::BillCheck> for BillCheckOut {
    fn from(c: membership::BillCheck) -> Self {
        Self {
            bill_date: c.bill_date,
            status: c.status,
            wechat_payments: c.wechat_payments,
            wechat_payment_fen: c.wechat_payment_fen,
            wechat_refunds: c.wechat_refunds,
            wechat_refund_fen: c.wechat_refund_fen,
            differences: c.differences,
            failure: text_if_set(c.failure),
            checked_at: rfc3339_if_set(c.checked_at_unix),
        }
    }
}

/// One difference between WeChat Pay's bill and our orders and refunds; an amount is null
/// where that side has no record.
#[derive(Serialize, ToSchema)]
pub struct BillDifferenceOut {
    pub kind: String,
    pub order_no: Option<String>,
    pub refund_no: Option<String>,
    pub wechat_fee: Option<i64>,
    pub our_fee: Option<i64>,
}

impl From<membership::BillDifference> for BillDifferenceOut {
    fn from(d: membership::BillDifference) -> Self {
        // Membership sends a negative fee for "no record on this side".
        let fen = |fee: i64| (fee >= 0).then_some(fee);
        Self {
            kind: d.kind,
            order_no: text_if_set(d.order_no),
            refund_no: text_if_set(d.refund_no),
            wechat_fee: fen(d.wechat_fee),
            our_fee: fen(d.our_fee),
        }
    }
}

/// A checked day (`check`, null if it never was) and each of its differences.
#[derive(Serialize, ToSchema)]
pub struct BillReportOut {
    pub check: Option<BillCheckOut>,
    pub differences: Vec<BillDifferenceOut>,
}

impl From<membership::BillReport> for BillReportOut {
    fn from(report: membership::BillReport) -> Self {
        Self {
            check: report.check.map(BillCheckOut::from),
            differences: report.differences.into_iter().map(Into::into).collect(),
        }
    }
}
