//! A credit hold's state as `credit_holds.status` stores it.

use strum::{EnumIter, EnumString, IntoStaticStr};

/// Where a hold stands: credits reserved, then spent (in part) or given back, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "lowercase")]
pub enum HoldStatus {
    Held,
    Captured,
    Released,
}

platform::stored_enum!(HoldStatus);

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn stored_names_are_the_columns() {
        let names: Vec<&str> = HoldStatus::iter().map(HoldStatus::as_str).collect();
        assert_eq!(names, ["held", "captured", "released"]);
        assert!(HoldStatus::try_from("expired".to_owned()).is_err());
    }
}
