//! Allowances per minute: QR codes per client and per IP, photos and lookups per client, place
//! names per client, orders per WeChat user. Each holds across every gateway instance (Redis) and,
//! while Redis is unreachable, per instance ([`allowance`]).

mod allowance;
mod lease;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::redis::Redis;

use crate::config::GatewayConfig;
use crate::error::ApiError;
use allowance::{Allowance, Verdict};

#[derive(Clone)]
pub struct Limits {
    inner: Arc<Allowances>,
}

struct Allowances {
    qrcode_per_client: Allowance,
    qrcode_per_ip: Allowance,
    photos_per_client: Allowance,
    lookups_per_client: Allowance,
    locations_per_client: Allowance,
    orders_per_user: Allowance,
}

impl Allowances {
    fn all(&self) -> [&Allowance; 6] {
        [
            &self.qrcode_per_client,
            &self.qrcode_per_ip,
            &self.photos_per_client,
            &self.lookups_per_client,
            &self.locations_per_client,
            &self.orders_per_user,
        ]
    }
}

/// Refused with 429 and `message`, or allowed.
fn check(verdict: Verdict, message: &'static str) -> Result<(), ApiError> {
    match verdict {
        Verdict::Allowed => Ok(()),
        Verdict::Refused => Err(ApiError::too_many_requests(message)),
        Verdict::TooLarge => Err(ApiError::too_many_requests(
            "one request asks for more than the whole allowance of a minute",
        )),
    }
}

impl Limits {
    pub fn new(cfg: &GatewayConfig, redis: &Redis) -> Self {
        let allowance = |name: &str, per_minute: u32| {
            Allowance::new(name, per_minute, redis.clone(), &cfg.redis.redis_key_prefix)
        };
        Self {
            inner: Arc::new(Allowances {
                qrcode_per_client: allowance("qrcode-client", cfg.qrcode_per_client_per_minute),
                qrcode_per_ip: allowance("qrcode-ip", cfg.qrcode_per_ip_per_minute),
                photos_per_client: allowance("photos-client", cfg.photos_per_client_per_minute),
                lookups_per_client: allowance(
                    "lookups-client",
                    cfg.photo_lookups_per_client_per_minute,
                ),
                locations_per_client: allowance(
                    "locations-client",
                    cfg.locations_per_client_per_minute,
                ),
                orders_per_user: allowance("orders-user", cfg.orders_per_user_per_minute),
            }),
        }
    }

    pub async fn check_qrcode(&self, client_id: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            let verdict = self.inner.qrcode_per_ip.take(&ip.to_string(), 1).await;
            check(verdict, "too many QR codes from this address")?;
        }
        let verdict = self.inner.qrcode_per_client.take(client_id, 1).await;
        check(verdict, "too many QR codes for this client")
    }

    /// Counts `images` photos against the client's per-minute allowance.
    pub async fn check_photos(&self, client_id: &str, images: usize) -> Result<(), ApiError> {
        let verdict = self
            .inner
            .photos_per_client
            .take(client_id, units(images))
            .await;
        check(verdict, "too many photos from this client; slow down")
    }

    /// Counts one order against the WeChat user's per-minute allowance: each order is a call to
    /// WeChat Pay and a row, so a signed-in user cannot make them in bulk.
    pub async fn check_order(&self, openid: &str) -> Result<(), ApiError> {
        let verdict = self.inner.orders_per_user.take(openid, 1).await;
        check(verdict, "too many orders; try again in a minute")
    }

    /// Counts one cached-result lookup against the client's per-minute allowance.
    pub async fn check_lookup(&self, client_id: &str) -> Result<(), ApiError> {
        let verdict = self.inner.lookups_per_client.take(client_id, 1).await;
        check(verdict, "too many lookups from this client; slow down")
    }

    /// Counts `points` place names against the client's per-minute allowance.
    pub async fn check_locations(&self, client_id: &str, points: usize) -> Result<(), ApiError> {
        let verdict = self
            .inner
            .locations_per_client
            .take(client_id, units(points))
            .await;
        check(verdict, "too many place names for this client; slow down")
    }

    /// Forgets idle keys now and then, so the limiters' memory stays bounded.
    pub fn spawn_cleanup(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        for allowance in limits.inner.all() {
                            allowance.forget_idle();
                        }
                    }
                }
            }
        })
    }
}

fn units(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
