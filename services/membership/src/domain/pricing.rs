//! What can be bought and for how much (docs/architecture.md, "Prices and memberships"). Money
//! is integer fen, computed here only.

use chrono::{DateTime, Duration, Utc};

use crate::error::MembershipError;

/// Prices and rules, from config.
#[derive(Clone, Debug)]
pub struct PriceList {
    pub member_price_fen: i64,
    pub member_days: u32,
    pub member_bonus_credits: i64,
    pub member_renew_window_days: u32,
    pub credit_unit_fen: i64,
    pub credits_min: u32,
    pub credits_max: u32,
}

/// What an order buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Product {
    /// `member_days` of membership plus the bonus credits.
    Membership,
    /// A number of credits.
    Credits(u32),
}

/// A priced order line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub product: Product,
    pub total_fee: i64,
    /// Credits the payment adds (the membership bonus, or the credits bought).
    pub credits: i64,
    pub membership_days: u32,
    /// The WeChat Pay `body` (≤ 127 characters).
    pub description: String,
}

impl PriceList {
    /// Prices a product for a buyer whose membership ends at `member_until` (if ever a member).
    pub fn quote(
        &self,
        product: Product,
        member_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Quote, MembershipError> {
        match product {
            Product::Membership => {
                if !self.can_buy_membership(member_until, now) {
                    return Err(MembershipError::MembershipActive {
                        renew_window_days: self.member_renew_window_days,
                    });
                }
                Ok(Quote {
                    product,
                    total_fee: self.member_price_fen,
                    credits: self.member_bonus_credits,
                    membership_days: self.member_days,
                    description: format!("芯图相册-会员{}天", self.member_days),
                })
            }
            Product::Credits(count) => {
                if !(self.credits_min..=self.credits_max).contains(&count) {
                    return Err(MembershipError::invalid(
                        "credits_amount",
                        format!("must be within {}..={}", self.credits_min, self.credits_max),
                    ));
                }
                let total_fee = i64::from(count)
                    .checked_mul(self.credit_unit_fen)
                    .ok_or_else(|| MembershipError::invalid("credits_amount", "too large"))?;
                Ok(Quote {
                    product,
                    total_fee,
                    credits: i64::from(count),
                    membership_days: 0,
                    description: format!("芯图相册-积分{count}个"),
                })
            }
        }
    }

    /// A member with more than the renew window left cannot buy again.
    pub fn can_buy_membership(
        &self,
        member_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        match member_until {
            Some(until) => until - now <= Duration::days(i64::from(self.member_renew_window_days)),
            None => true,
        }
    }
}

/// The new expiry of a paid membership: from the current expiry while it runs, else from now.
pub fn extend_membership(
    current: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    days: u32,
) -> DateTime<Utc> {
    let start = current.filter(|until| *until > now).unwrap_or(now);
    start + Duration::days(i64::from(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> PriceList {
        PriceList {
            member_price_fen: 1990,
            member_days: 30,
            member_bonus_credits: 10,
            member_renew_window_days: 7,
            credit_unit_fen: 50,
            credits_min: 1,
            credits_max: 1000,
        }
    }

    #[test]
    fn credits_cost_count_times_unit_in_fen() {
        let now = Utc::now();
        let quote = prices().quote(Product::Credits(10), None, now).unwrap();
        assert_eq!((quote.total_fee, quote.credits), (500, 10));
        assert_eq!(
            prices()
                .quote(Product::Credits(1), None, now)
                .unwrap()
                .total_fee,
            50
        );
        assert_eq!(
            prices()
                .quote(Product::Credits(1000), None, now)
                .unwrap()
                .total_fee,
            50_000
        );
        assert!(prices().quote(Product::Credits(0), None, now).is_err());
        assert!(prices().quote(Product::Credits(1001), None, now).is_err());
    }

    #[test]
    fn membership_is_refused_with_more_than_seven_days_left() {
        let now = Utc::now();
        let quote = prices().quote(Product::Membership, None, now).unwrap();
        assert_eq!(
            (quote.total_fee, quote.credits, quote.membership_days),
            (1990, 10, 30)
        );
        let in_ten_days = Some(now + Duration::days(10));
        assert!(matches!(
            prices().quote(Product::Membership, in_ten_days, now),
            Err(MembershipError::MembershipActive { .. })
        ));
        let in_six_days = Some(now + Duration::days(6));
        assert!(
            prices()
                .quote(Product::Membership, in_six_days, now)
                .is_ok()
        );
        let expired = Some(now - Duration::days(1));
        assert!(prices().quote(Product::Membership, expired, now).is_ok());
    }

    #[test]
    fn membership_extends_from_the_current_expiry_while_it_runs() {
        let now = Utc::now();
        assert_eq!(extend_membership(None, now, 30), now + Duration::days(30));
        let running = now + Duration::days(5);
        assert_eq!(
            extend_membership(Some(running), now, 30),
            running + Duration::days(30)
        );
        let lapsed = now - Duration::days(5);
        assert_eq!(
            extend_membership(Some(lapsed), now, 30),
            now + Duration::days(30)
        );
    }
}
