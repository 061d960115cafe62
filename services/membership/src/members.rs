//! The member H5 page's user: OAuth code exchange and the profile.

use chrono::Utc;

use platform::db::Pools;
use platform::db::freshness::Freshness;

use crate::domain::pricing::PriceList;
use crate::error::MembershipError;
use crate::orders::user_subject;
use crate::store;
use crate::store::users::UserRow;
use crate::wechat::WechatApi;

#[derive(Clone)]
pub struct Members {
    pools: Pools,
    wechat: WechatApi,
    freshness: Freshness,
    prices: PriceList,
}

/// A profile: the user's row (zeros for a user we have never seen) and what they may buy.
pub struct ProfileView {
    pub user: Option<UserRow>,
    pub can_buy_membership: bool,
    pub prices: PriceList,
}

impl Members {
    pub fn new(pools: Pools, wechat: WechatApi, freshness: Freshness, prices: PriceList) -> Self {
        Self {
            pools,
            wechat,
            freshness,
            prices,
        }
    }

    /// The openid behind a web OAuth code; the code is single-use at WeChat.
    pub async fn exchange_code(&self, code: &str) -> Result<String, MembershipError> {
        if code.is_empty() || code.len() > 128 {
            return Err(MembershipError::InvalidOAuthCode);
        }
        self.wechat
            .oauth_openid(code)
            .await?
            .ok_or(MembershipError::InvalidOAuthCode)
    }

    /// Turns the user's membership expiry reminders on or off; the next profile read sees it.
    pub async fn set_expiry_reminders(
        &self,
        openid: &str,
        enabled: bool,
    ) -> Result<(), MembershipError> {
        if !store::reminders::set(&self.pools.primary, openid, enabled).await? {
            return Err(MembershipError::NotFound("user"));
        }
        self.freshness.wrote(&user_subject(openid), None).await;
        Ok(())
    }

    /// The user's credits and membership as of their last change.
    pub async fn profile(&self, openid: &str) -> Result<ProfileView, MembershipError> {
        let wanted = self
            .freshness
            .read_from(&self.pools, &user_subject(openid))
            .await;
        let user = self
            .pools
            .read_from(wanted, |pool| store::users::find_by_openid(pool, openid))
            .await
            .0?;
        let member_until = user.as_ref().and_then(UserRow::member_until);
        Ok(ProfileView {
            can_buy_membership: self.prices.can_buy_membership(member_until, Utc::now()),
            user,
            prices: self.prices.clone(),
        })
    }
}
