//! Membership expiry reminders: members who opted in on the member page get one template
//! message from the official account when their membership has a few days left, once per
//! membership end, at a bounded rate (WeChat counts template messages against a daily quota).
//!
//! A reminder is claimed before it is sent, so several instances and repeated rounds send it at
//! most once; a send that failed for a passing reason (WeChat busy, the quota for today) gives the
//! claim back for a later round, one WeChat refused for good (the user stopped following,
//! 43004) keeps it.

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use platform::db::Pools;

use crate::error::MembershipError;
use crate::store::reminders::{self, DueReminder};
use crate::wechat::{WechatApi, WechatError};

/// The reminder's template and timing, from config.
#[derive(Clone, Debug)]
pub struct ReminderSettings {
    /// The official account's template for "membership ends soon"; empty turns reminders off.
    pub template_id: String,
    /// Members are reminded this many days before the end.
    pub days_before: u32,
    /// Where the message leads (the member page); empty for none.
    pub url: String,
    pub per_minute: NonZeroU32,
}

#[derive(Clone)]
pub struct Reminders {
    pools: Pools,
    wechat: WechatApi,
    settings: ReminderSettings,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReminderRound {
    pub sent: usize,
    pub failed: usize,
}

/// `YYYY-MM-DD HH:MM` in China time, as the member reads it.
fn china_text(at: DateTime<Utc>) -> String {
    at.with_timezone(&crate::orders::china_time())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The template's data: WeChat's "会员到期提醒" keys.
fn message_data(expire_at: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("first", "您的芯图相册会员即将到期".to_owned()),
        ("keyword1", "芯图相册会员".to_owned()),
        ("keyword2", china_text(expire_at)),
        ("remark", "到期前续费，会员时长自动顺延。".to_owned()),
    ]
}

/// A refusal worth trying again later rather than giving up on this reminder.
fn passing(err: &WechatError) -> bool {
    !matches!(err, WechatError::Api { code, .. } if matches!(code, 43004 | 40003 | 40037 | 47001))
}

impl Reminders {
    pub fn new(pools: Pools, wechat: WechatApi, settings: ReminderSettings) -> Self {
        let limiter = Arc::new(RateLimiter::direct(Quota::per_minute(settings.per_minute)));
        Self {
            pools,
            wechat,
            settings,
            limiter,
        }
    }

    /// One round: every due reminder, at the configured rate.
    pub async fn send_due(&self) -> Result<ReminderRound, MembershipError> {
        let mut round = ReminderRound::default();
        if self.settings.template_id.is_empty() {
            return Ok(round);
        }
        let due = reminders::due(&self.pools.primary, self.settings.days_before, 200).await?;
        for reminder in due {
            if !reminders::claim(&self.pools.primary, &reminder).await? {
                continue;
            }
            self.limiter.until_ready().await;
            match self.send(&reminder).await {
                Ok(()) => round.sent += 1,
                Err(err) => {
                    round.failed += 1;
                    tracing::warn!(user_id = reminder.id, error = %err, "expiry reminder not sent");
                    if passing(&err) {
                        reminders::release(&self.pools.primary, &reminder).await?;
                    }
                    if matches!(err, WechatError::QuotaExceeded { .. }) {
                        break;
                    }
                }
            }
        }
        Ok(round)
    }

    async fn send(&self, reminder: &DueReminder) -> Result<(), WechatError> {
        let msgid = self
            .wechat
            .send_template(
                &reminder.openid,
                &self.settings.template_id,
                &self.settings.url,
                &message_data(reminder.member_expire_at),
            )
            .await?;
        tracing::info!(user_id = reminder.id, msgid, "expiry reminder sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_message_shows_the_end_in_china_time() {
        let end = Utc.with_ymd_and_hms(2026, 12, 31, 16, 30, 0).unwrap();
        let data = message_data(end);
        assert_eq!(data[2], ("keyword2", "2027-01-01 00:30".to_owned()));
    }

    #[test]
    fn only_a_refusal_about_the_user_or_template_gives_up() {
        let api = |code| WechatError::Api {
            code,
            message: String::new(),
        };
        assert!(!passing(&api(43004)), "no longer following");
        assert!(!passing(&api(40037)), "no such template");
        assert!(passing(&api(-1)), "busy");
        assert!(passing(&WechatError::QuotaExceeded { code: 45009 }));
        assert!(passing(&WechatError::Http(502)));
    }
}
