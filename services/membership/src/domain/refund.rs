//! What a refund of a paid order takes back. Money is integer fen; what the order bought is
//! taken back in proportion to the money returned, counted over all of the order's refunds so
//! that partial refunds add up to exactly the whole: the cumulative share is rounded up, and each
//! refund takes the difference to what earlier ones took.

use strum::{EnumIter, EnumString, IntoStaticStr};

/// Where a refund stands (`payment_refunds.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum RefundStatus {
    /// Written and what it takes back taken; WeChat Pay's answer is not known yet.
    Pending,
    /// WeChat Pay accepted it; the money is on its way back.
    Processing,
    Success,
    /// WeChat Pay refused or closed it; what was taken was given back.
    Failed,
    /// WeChat Pay could not pay it out (`CHANGE`): the money stays with the merchant until a
    /// person arranges it.
    Abnormal,
}

platform::stored_enum!(RefundStatus);

impl RefundStatus {
    /// Still counting against the order: everything but a failed refund.
    pub fn counts(self) -> bool {
        self != Self::Failed
    }
}

/// What an order bought, and what its earlier (not failed) refunds returned and took back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundBasis {
    pub total_fee: i64,
    pub credits: i64,
    pub membership_days: i64,
    pub refunded_fee: i64,
    pub credits_taken: i64,
    pub days_taken: i64,
}

/// What one refund takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundShare {
    pub credits: i64,
    pub membership_days: i64,
}

/// Why a refund of that amount is not possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundRefusal {
    /// Zero, negative, or more than is left of the order: at most `left` fen.
    Amount { left: i64 },
}

/// `ceil(whole * part / total)` without overflow for any fen amount and credit count we store.
fn share_of(whole: i64, part: i64, total: i64) -> i64 {
    let scaled = i128::from(whole) * i128::from(part);
    let total = i128::from(total.max(1));
    i64::try_from((scaled + total - 1) / total).unwrap_or(i64::MAX)
}

impl RefundBasis {
    /// Fen of the order not refunded yet.
    pub fn left(&self) -> i64 {
        (self.total_fee - self.refunded_fee).max(0)
    }

    /// What refunding `refund_fee` more takes back, credits and days together.
    pub fn share(&self, refund_fee: i64) -> Result<RefundShare, RefundRefusal> {
        let left = self.left();
        if refund_fee <= 0 || refund_fee > left {
            return Err(RefundRefusal::Amount { left });
        }
        let refunded = self.refunded_fee + refund_fee;
        Ok(RefundShare {
            credits: (share_of(self.credits, refunded, self.total_fee) - self.credits_taken).max(0),
            membership_days: (share_of(self.membership_days, refunded, self.total_fee)
                - self.days_taken)
                .max(0),
        })
    }

    /// The most fen that can be refunded when only `spendable` credits can be taken back: the
    /// largest amount whose credit share fits.
    pub fn refundable_with(&self, spendable: i64) -> i64 {
        if self.credits <= 0 {
            return self.left();
        }
        // ceil(C·R/F) ≤ K  ⇔  R ≤ floor(K·F/C), with K the credits takeable in all.
        let takeable = i128::from(self.credits_taken + spendable.max(0));
        let most = takeable * i128::from(self.total_fee) / i128::from(self.credits);
        let most = i64::try_from(most).unwrap_or(i64::MAX);
        (most - self.refunded_fee).clamp(0, self.left())
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    fn credits_order(total_fee: i64, credits: i64) -> RefundBasis {
        RefundBasis {
            total_fee,
            credits,
            membership_days: 0,
            refunded_fee: 0,
            credits_taken: 0,
            days_taken: 0,
        }
    }

    fn after(mut basis: RefundBasis, refund_fee: i64) -> (RefundBasis, RefundShare) {
        let share = basis.share(refund_fee).unwrap();
        basis.refunded_fee += refund_fee;
        basis.credits_taken += share.credits;
        basis.days_taken += share.membership_days;
        (basis, share)
    }

    #[test]
    fn a_whole_refund_takes_back_everything() {
        let share = credits_order(1000, 100).share(1000).unwrap();
        assert_eq!(share.credits, 100);
        let member = RefundBasis {
            membership_days: 30,
            ..credits_order(1990, 50)
        };
        assert_eq!(
            member.share(1990).unwrap(),
            RefundShare {
                credits: 50,
                membership_days: 30
            }
        );
    }

    #[test]
    fn partial_refunds_add_up_to_exactly_the_whole() {
        // 7 credits for 10 fen, refunded 3 + 3 + 4: shares round up cumulatively.
        let basis = credits_order(10, 7);
        let (basis, first) = after(basis, 3);
        assert_eq!(first.credits, 3, "ceil(7·3/10)");
        let (basis, second) = after(basis, 3);
        assert_eq!(second.credits, 2, "ceil(7·6/10) − 3");
        let (basis, third) = after(basis, 4);
        assert_eq!(third.credits, 2, "7 − 5");
        assert_eq!(basis.credits_taken, 7);
        assert_eq!(basis.left(), 0);
        assert_eq!(basis.share(1), Err(RefundRefusal::Amount { left: 0 }));
    }

    #[test]
    fn amounts_outside_what_is_left_are_refused() {
        let basis = credits_order(1000, 100);
        assert_eq!(basis.share(0), Err(RefundRefusal::Amount { left: 1000 }));
        assert_eq!(basis.share(-5), Err(RefundRefusal::Amount { left: 1000 }));
        assert_eq!(basis.share(1001), Err(RefundRefusal::Amount { left: 1000 }));
        let (basis, _) = after(basis, 600);
        assert_eq!(basis.share(401), Err(RefundRefusal::Amount { left: 400 }));
        assert!(basis.share(400).is_ok());
    }

    #[test]
    fn refundable_with_the_unspent_credits_is_the_largest_amount_that_fits() {
        for (fee, credits) in [(1000, 100), (10, 7), (1990, 50), (3, 1000), (999, 1)] {
            for spendable in 0..=credits + 2 {
                let basis = credits_order(fee, credits);
                let most = basis.refundable_with(spendable);
                if most > 0 {
                    assert!(basis.share(most).unwrap().credits <= spendable);
                }
                if most < basis.left() {
                    assert!(
                        basis.share(most + 1).unwrap().credits > spendable,
                        "{fee} fen, {credits} credits, {spendable} spendable: {most} is not the most"
                    );
                }
            }
        }
        assert_eq!(
            RefundBasis {
                credits: 0,
                ..credits_order(500, 0)
            }
            .refundable_with(0),
            500
        );
    }

    #[test]
    fn stored_names_round_trip() {
        let names: Vec<&str> = RefundStatus::iter().map(RefundStatus::as_str).collect();
        assert_eq!(
            names,
            ["pending", "processing", "success", "failed", "abnormal"]
        );
        assert!(!RefundStatus::Failed.counts() && RefundStatus::Abnormal.counts());
    }
}
