//! SQL of the membership service, one module per aggregate. Functions take a connection or a
//! pool; the use case that calls them owns the transaction and picks primary or replica.

pub mod admin;
pub mod bills;
pub mod bindings;
pub mod erasure;
pub mod events;
pub mod holds;
pub mod ledger;
pub mod orders;
pub mod personal_data;
pub mod refunds;
pub mod reminders;
pub mod retention;
pub mod users;
