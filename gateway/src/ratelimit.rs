//! Per-client and per-IP limits on QR code creation, per-client limits on photo uploads, and
//! per-user limits on orders (governor, in-process per gateway).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

#[derive(Clone)]
pub struct Limits {
    qrcode_per_client: Arc<DefaultKeyedRateLimiter<String>>,
    qrcode_per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    photos_per_client: Arc<DefaultKeyedRateLimiter<String>>,
    lookups_per_client: Arc<DefaultKeyedRateLimiter<String>>,
    orders_per_user: Arc<DefaultKeyedRateLimiter<String>>,
}

impl Limits {
    pub fn new(
        per_client_per_minute: u32,
        per_ip_per_minute: u32,
        photos_per_client_per_minute: u32,
        lookups_per_client_per_minute: u32,
        orders_per_user_per_minute: u32,
    ) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            qrcode_per_client: Arc::new(RateLimiter::keyed(quota(per_client_per_minute))),
            qrcode_per_ip: Arc::new(RateLimiter::keyed(quota(per_ip_per_minute))),
            photos_per_client: Arc::new(RateLimiter::keyed(quota(photos_per_client_per_minute))),
            lookups_per_client: Arc::new(RateLimiter::keyed(quota(lookups_per_client_per_minute))),
            orders_per_user: Arc::new(RateLimiter::keyed(quota(orders_per_user_per_minute))),
        }
    }

    pub fn check_qrcode(&self, client_id: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(ip) = ip
            && self.qrcode_per_ip.check_key(&ip).is_err()
        {
            return Err(ApiError::too_many_requests(
                "too many QR codes from this address",
            ));
        }
        if self
            .qrcode_per_client
            .check_key(&client_id.to_owned())
            .is_err()
        {
            return Err(ApiError::too_many_requests(
                "too many QR codes for this client",
            ));
        }
        Ok(())
    }

    /// Counts `images` photos against the client's per-minute allowance.
    pub fn check_photos(&self, client_id: &str, images: usize) -> Result<(), ApiError> {
        let images = u32::try_from(images)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        match self
            .photos_per_client
            .check_key_n(&client_id.to_owned(), images)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ApiError::too_many_requests(
                "too many photos from this client; slow down",
            )),
            Err(_) => Err(ApiError::too_many_requests(
                "more photos in one request than this client may send per minute",
            )),
        }
    }

    /// Counts one order against the WeChat user's per-minute allowance: each order is a call to
    /// WeChat Pay and a row, so a signed-in user cannot make them in bulk.
    pub fn check_order(&self, openid: &str) -> Result<(), ApiError> {
        self.orders_per_user
            .check_key(&openid.to_owned())
            .map_err(|_| ApiError::too_many_requests("too many orders; try again in a minute"))
    }

    /// Counts one cached-result lookup against the client's per-minute allowance.
    pub fn check_lookup(&self, client_id: &str) -> Result<(), ApiError> {
        self.lookups_per_client
            .check_key(&client_id.to_owned())
            .map_err(|_| {
                ApiError::too_many_requests("too many lookups from this client; slow down")
            })
    }

    /// Forgets idle keys now and then, so the limiter's memory stays bounded.
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
                        limits.qrcode_per_client.retain_recent();
                        limits.qrcode_per_ip.retain_recent();
                        limits.photos_per_client.retain_recent();
                        limits.lookups_per_client.retain_recent();
                    }
                }
            }
        })
    }
}
