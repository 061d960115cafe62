//! Reconciliation of one day's WeChat Pay bill (`pay/downloadbill`) against our orders and
//! refunds. Pure: the caller reads both sides; this says where they differ. Each difference has
//! a kind a person can act on, and nothing here changes money.

use std::collections::{BTreeMap, BTreeSet};

use strum::{EnumIter, EnumString, IntoStaticStr};

/// A payment or refund as WeChat Pay's bill lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillEntry {
    Payment {
        out_trade_no: String,
        transaction_id: String,
        total_fee: i64,
    },
    Refund {
        out_trade_no: String,
        out_refund_no: String,
        refund_fee: i64,
        /// SUCCESS, or another refund status the bill reports.
        status: String,
    },
}

/// Our side of one order, as far as the comparison needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OurPayment {
    pub out_trade_no: String,
    pub paid: bool,
    pub transaction_id: Option<String>,
    pub total_fee: i64,
}

/// Our side of one refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OurRefund {
    pub out_refund_no: String,
    pub refund_fee: i64,
    /// Whether WeChat Pay confirmed it here (`success`).
    pub succeeded: bool,
}

/// What differs, in words an operator acts on (`bill_differences.kind`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, EnumString, IntoStaticStr, EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum DifferenceKind {
    /// WeChat Pay took money for an order number we do not have.
    UnknownOrder,
    /// WeChat Pay took the money; we never applied the payment.
    NotPaidHere,
    /// The bill's amount is not the order's.
    AmountMismatch,
    /// Another transaction id than the one we applied.
    TransactionMismatch,
    /// We applied a payment that day that is not in WeChat Pay's bill.
    MissingFromBill,
    /// A refund we never asked for.
    UnknownRefund,
    /// The bill's refund amount is not ours.
    RefundAmountMismatch,
    /// The bill reports the refund done; ours is not settled as done.
    RefundNotSettledHere,
    /// A refund WeChat Pay accepted that day, by our records, that is not in the bill.
    RefundMissingFromBill,
}

platform::stored_enum!(DifferenceKind);

/// One difference: what, which order (and refund), and both amounts where they apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub kind: DifferenceKind,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub wechat_fee: Option<i64>,
    pub our_fee: Option<i64>,
}

/// The outcome of comparing one day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillComparison {
    pub wechat_payments: i64,
    pub wechat_payment_fen: i64,
    pub wechat_refunds: i64,
    pub wechat_refund_fen: i64,
    pub differences: Vec<Difference>,
}

/// Compares the bill with our records. `orders` must hold every order the bill names (any day)
/// and every order we applied that day; `paid_that_day` names the latter. `refunds` likewise,
/// with `refunded_that_day` the refunds WeChat Pay accepted that day by our records.
pub fn compare(
    bill: &[BillEntry],
    orders: &BTreeMap<String, OurPayment>,
    paid_that_day: &BTreeSet<String>,
    refunds: &BTreeMap<String, OurRefund>,
    refunded_that_day: &BTreeSet<String>,
) -> BillComparison {
    let mut out = BillComparison::default();
    let mut billed_payments = BTreeSet::new();
    let mut billed_refunds = BTreeSet::new();
    let difference =
        |kind, out_trade_no: &str, out_refund_no: Option<&str>, wechat, ours| Difference {
            kind,
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: out_refund_no.map(str::to_owned),
            wechat_fee: wechat,
            our_fee: ours,
        };
    for entry in bill {
        match entry {
            BillEntry::Payment {
                out_trade_no,
                transaction_id,
                total_fee,
            } => {
                out.wechat_payments += 1;
                out.wechat_payment_fen += total_fee;
                billed_payments.insert(out_trade_no.clone());
                let found = orders.get(out_trade_no);
                let kind = match found {
                    None => Some(DifferenceKind::UnknownOrder),
                    Some(order) if !order.paid => Some(DifferenceKind::NotPaidHere),
                    Some(order) if order.total_fee != *total_fee => {
                        Some(DifferenceKind::AmountMismatch)
                    }
                    Some(order) if order.transaction_id.as_deref() != Some(transaction_id) => {
                        Some(DifferenceKind::TransactionMismatch)
                    }
                    Some(_) => None,
                };
                if let Some(kind) = kind {
                    out.differences.push(difference(
                        kind,
                        out_trade_no,
                        None,
                        Some(*total_fee),
                        found.map(|order| order.total_fee),
                    ));
                }
            }
            BillEntry::Refund {
                out_trade_no,
                out_refund_no,
                refund_fee,
                status,
            } => {
                out.wechat_refunds += 1;
                out.wechat_refund_fen += refund_fee;
                billed_refunds.insert(out_refund_no.clone());
                let found = refunds.get(out_refund_no);
                let kind = match found {
                    None => Some(DifferenceKind::UnknownRefund),
                    Some(ours) if ours.refund_fee != *refund_fee => {
                        Some(DifferenceKind::RefundAmountMismatch)
                    }
                    Some(ours) if status == "SUCCESS" && !ours.succeeded => {
                        Some(DifferenceKind::RefundNotSettledHere)
                    }
                    Some(_) => None,
                };
                if let Some(kind) = kind {
                    out.differences.push(difference(
                        kind,
                        out_trade_no,
                        Some(out_refund_no),
                        Some(*refund_fee),
                        found.map(|ours| ours.refund_fee),
                    ));
                }
            }
        }
    }
    for out_trade_no in paid_that_day.difference(&billed_payments) {
        let ours = orders.get(out_trade_no).map(|order| order.total_fee);
        out.differences.push(difference(
            DifferenceKind::MissingFromBill,
            out_trade_no,
            None,
            None,
            ours,
        ));
    }
    for out_refund_no in refunded_that_day.difference(&billed_refunds) {
        let ours = refunds.get(out_refund_no).map(|refund| refund.refund_fee);
        out.differences.push(difference(
            DifferenceKind::RefundMissingFromBill,
            "",
            Some(out_refund_no),
            None,
            ours,
        ));
    }
    out.differences.sort_by(|a, b| {
        (a.kind, &a.out_trade_no, &a.out_refund_no).cmp(&(
            b.kind,
            &b.out_trade_no,
            &b.out_refund_no,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    fn payment(no: &str, tx: &str, fee: i64) -> BillEntry {
        BillEntry::Payment {
            out_trade_no: no.into(),
            transaction_id: tx.into(),
            total_fee: fee,
        }
    }

    fn ours(no: &str, paid: bool, tx: &str, fee: i64) -> (String, OurPayment) {
        (
            no.into(),
            OurPayment {
                out_trade_no: no.into(),
                paid,
                transaction_id: Some(tx.to_owned()).filter(|t| !t.is_empty()),
                total_fee: fee,
            },
        )
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_matching_day_has_no_differences_and_sums_the_bill() {
        let bill = [payment("A", "t1", 1990), payment("B", "t2", 50)];
        let orders = BTreeMap::from([ours("A", true, "t1", 1990), ours("B", true, "t2", 50)]);
        let out = compare(
            &bill,
            &orders,
            &set(&["A", "B"]),
            &BTreeMap::new(),
            &set(&[]),
        );
        assert!(out.differences.is_empty(), "{out:?}");
        assert_eq!((out.wechat_payments, out.wechat_payment_fen), (2, 2040));
    }

    #[test]
    fn every_kind_of_payment_difference_is_named() {
        let bill = [
            payment("UNKNOWN", "t0", 100),
            payment("UNPAID", "t1", 100),
            payment("AMOUNT", "t2", 101),
            payment("TX", "t-other", 100),
        ];
        let orders = BTreeMap::from([
            ours("UNPAID", false, "", 100),
            ours("AMOUNT", true, "t2", 100),
            ours("TX", true, "t3", 100),
            ours("OURS_ONLY", true, "t4", 300),
        ]);
        let out = compare(
            &bill,
            &orders,
            &set(&["AMOUNT", "TX", "OURS_ONLY"]),
            &BTreeMap::new(),
            &set(&[]),
        );
        let kinds: Vec<(DifferenceKind, &str)> = out
            .differences
            .iter()
            .map(|d| (d.kind, d.out_trade_no.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (DifferenceKind::UnknownOrder, "UNKNOWN"),
                (DifferenceKind::NotPaidHere, "UNPAID"),
                (DifferenceKind::AmountMismatch, "AMOUNT"),
                (DifferenceKind::TransactionMismatch, "TX"),
                (DifferenceKind::MissingFromBill, "OURS_ONLY"),
            ]
        );
        let amount = &out.differences[2];
        assert_eq!((amount.wechat_fee, amount.our_fee), (Some(101), Some(100)));
    }

    #[test]
    fn refunds_are_compared_by_their_number() {
        let refund = |no: &str, fee: i64, status: &str| BillEntry::Refund {
            out_trade_no: "A".into(),
            out_refund_no: no.into(),
            refund_fee: fee,
            status: status.into(),
        };
        let bill = [
            refund("R_OK", 10, "SUCCESS"),
            refund("R_UNKNOWN", 10, "SUCCESS"),
            refund("R_AMOUNT", 11, "SUCCESS"),
            refund("R_OPEN", 10, "SUCCESS"),
        ];
        let ours = |no: &str, fee: i64, succeeded: bool| {
            (
                no.to_owned(),
                OurRefund {
                    out_refund_no: no.into(),
                    refund_fee: fee,
                    succeeded,
                },
            )
        };
        let refunds = BTreeMap::from([
            ours("R_OK", 10, true),
            ours("R_AMOUNT", 10, true),
            ours("R_OPEN", 10, false),
            ours("R_OURS_ONLY", 7, true),
        ]);
        let out = compare(
            &bill,
            &BTreeMap::new(),
            &set(&[]),
            &refunds,
            &set(&["R_OK", "R_AMOUNT", "R_OURS_ONLY"]),
        );
        let kinds: Vec<_> = out.differences.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                DifferenceKind::UnknownRefund,
                DifferenceKind::RefundAmountMismatch,
                DifferenceKind::RefundNotSettledHere,
                DifferenceKind::RefundMissingFromBill,
            ]
        );
        assert_eq!((out.wechat_refunds, out.wechat_refund_fen), (4, 41));
    }

    #[test]
    fn stored_names_round_trip() {
        for kind in DifferenceKind::iter() {
            assert_eq!(
                DifferenceKind::try_from(kind.as_str().to_owned()).ok(),
                Some(kind)
            );
        }
        assert_eq!(
            DifferenceKind::MissingFromBill.as_str(),
            "missing_from_bill"
        );
    }
}
