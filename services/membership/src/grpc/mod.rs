//! gRPC adapters: proto in, domain call, proto out. No rules live here.

mod admin;
mod binding;
mod credit;
mod member;
mod order;
mod personal_data;

pub use admin::AdminGrpc;
pub use binding::BindingGrpc;
pub use credit::CreditGrpc;
pub use member::MemberGrpc;
pub use order::OrderGrpc;
pub use personal_data::PersonalDataGrpc;

/// An openid the caller must send (the gateway's signed session holds it).
fn required_openid(openid: &str) -> Result<&str, crate::error::MembershipError> {
    if openid.is_empty() {
        return Err(crate::error::MembershipError::invalid("openid", "missing"));
    }
    Ok(openid)
}
