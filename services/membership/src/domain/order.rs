//! An order's kind and state as `payment_orders` stores them (its ENUM columns). A stored value
//! this code does not know is an error, never read as some default.

use std::str::FromStr;

/// A stored value outside its column's known set.
#[derive(Debug, thiserror::Error)]
#[error("unknown {column} {value:?}")]
pub struct UnknownValue {
    column: &'static str,
    value: String,
}

/// Where an order stands (`payment_orders.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Created, not paid (WeChat Pay's `NOTPAY`).
    NotPay,
    Paid,
    /// Closed unpaid after its expiry; a payment that arrives later is still applied.
    Closed,
    /// WeChat Pay refused the order.
    Failed,
}

impl OrderStatus {
    pub const ALL: [Self; 4] = [Self::NotPay, Self::Paid, Self::Closed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPay => "notpay",
            Self::Paid => "paid",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for OrderStatus {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| UnknownValue {
                column: "order status",
                value: value.to_owned(),
            })
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = UnknownValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// What an order buys (`payment_orders.order_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    Member,
    Credits,
}

impl OrderType {
    pub const ALL: [Self; 2] = [Self::Member, Self::Credits];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Credits => "credits",
        }
    }
}

impl FromStr for OrderType {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| UnknownValue {
                column: "order type",
                value: value.to_owned(),
            })
    }
}

impl TryFrom<String> for OrderType {
    type Error = UnknownValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_refused() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        for kind in OrderType::ALL {
            assert_eq!(kind.as_str().parse::<OrderType>().unwrap(), kind);
        }
        assert_eq!(
            "refunded".parse::<OrderStatus>().unwrap_err().to_string(),
            "unknown order status \"refunded\""
        );
        assert!("NOTPAY".parse::<OrderStatus>().is_err());
        assert!("".parse::<OrderType>().is_err());
    }
}
