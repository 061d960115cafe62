//! An order's kind and state as `payment_orders` stores them.

use strum::{EnumIter, EnumString, IntoStaticStr};

/// Where an order stands (`payment_orders.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum OrderStatus {
    /// Created, not paid (WeChat Pay's `NOTPAY`).
    NotPay,
    Paid,
    /// Closed unpaid after its expiry; a payment that arrives later is still applied.
    Closed,
    /// WeChat Pay refused the order.
    Failed,
}

/// What an order buys (`payment_orders.order_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum OrderType {
    Member,
    Credits,
}

platform::stored_enum!(OrderStatus, OrderType);

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_refused() {
        let names: Vec<&str> = OrderStatus::iter().map(OrderStatus::as_str).collect();
        assert_eq!(names, ["notpay", "paid", "closed", "failed"]);
        for status in OrderStatus::iter() {
            assert_eq!(
                OrderStatus::try_from(status.as_str().to_owned()).ok(),
                Some(status)
            );
        }
        let names: Vec<&str> = OrderType::iter().map(OrderType::as_str).collect();
        assert_eq!(names, ["member", "credits"]);
        assert!(OrderStatus::try_from("refunded".to_owned()).is_err());
        assert!("NOTPAY".parse::<OrderStatus>().is_err());
        assert!("".parse::<OrderType>().is_err());
    }
}
