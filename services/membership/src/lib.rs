//! Membership service: WeChat users and app-client bindings, credits and orders.

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod admin;
pub mod binding;
pub mod binding_changes;
pub mod config;
pub mod credits;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod members;
pub mod metrics;
pub mod orders;
pub mod personal_data;
pub mod reminders;
pub mod retention;
pub mod retry;
pub mod store;
pub mod wechat;
pub mod wechatpay;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use platform::db::Pools;
use platform::db::freshness::Freshness;
use platform::redis::{Keys, Redis};
use platform::shutdown::every;
use proto::membership::v1::admin_service_server::AdminServiceServer;
use proto::membership::v1::binding_service_server::BindingServiceServer;
use proto::membership::v1::credit_service_server::CreditServiceServer;
use proto::membership::v1::member_service_server::MemberServiceServer;
use proto::membership::v1::order_service_server::OrderServiceServer;
use proto::membership::v1::personal_data_service_server::PersonalDataServiceServer;

use crate::binding::{BindingRules, Bindings};
use crate::binding_changes::BindingChanges;
use crate::config::MembershipConfig;
use crate::credits::Credits;
use crate::domain::pricing::PriceList;
use crate::members::Members;
use crate::orders::{OrderRules, Orders, ReconcileReport};
use crate::reminders::{ReminderSettings, Reminders};
use crate::wechat::{WechatApi, WechatSettings};
use crate::wechatpay::{PayClient, PaySettings, SecapiSettings, V3Settings};

/// This service's migrations, run only by `membership-svc migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The gRPC service names reported by health checks.
pub const SERVICE_NAMES: &[&str] = &[
    "membership.v1.BindingService",
    "membership.v1.MemberService",
    "membership.v1.OrderService",
    "membership.v1.CreditService",
    "membership.v1.AdminService",
];

/// Everything a running instance needs, built once at start.
pub struct Dependencies {
    pub pools: Pools,
    pub redis: Redis,
}

/// The use cases of one instance.
#[derive(Clone)]
pub struct Membership {
    pub bindings: Bindings,
    pub members: Members,
    pub orders: Orders,
    pub credits: Credits,
    pub admin: admin::Admin,
    pub reminders: Reminders,
    pub personal_data: personal_data::PersonalData,
    pub retention: retention::Retention,
}

/// The merchant certificate, read once at start: a configured file that cannot be read stops the
/// service with the path named, rather than failing the first refund.
fn secapi_settings(cfg: &MembershipConfig) -> anyhow::Result<Option<SecapiSettings>> {
    if cfg.wechatpay_cert_path.is_empty() {
        return Ok(None);
    }
    let read = |variable: &str, path: &str| {
        std::fs::read(path).map_err(|err| anyhow::anyhow!("{variable}={path}: {err}"))
    };
    let mut identity = read("WECHATPAY_CERT_PATH", &cfg.wechatpay_cert_path)?;
    identity.push(b'\n');
    identity.extend(read("WECHATPAY_KEY_PATH", &cfg.wechatpay_key_path)?);
    let extra_root_pem = match cfg.wechatpay_secapi_ca_path.as_str() {
        "" => None,
        path => Some(read("WECHATPAY_SECAPI_CA_PATH", path)?),
    };
    let base = match cfg.wechatpay_secapi_base.as_str() {
        "" => cfg.wechatpay_api_base.clone(),
        base => base.to_owned(),
    };
    Ok(Some(SecapiSettings {
        base,
        identity_pem: identity.into(),
        extra_root_pem,
    }))
}

/// API v3's keys, read once at start when v3 is selected: a file that cannot be read or a key
/// that cannot be used stops the service with the variable named.
fn v3_settings(cfg: &MembershipConfig) -> anyhow::Result<Option<V3Settings>> {
    use wechat_protocol::pay_v3::{PlatformKeys, certificate_key};
    if !cfg.uses_v3() {
        return Ok(None);
    }
    let read = |variable: &str, path: &str| {
        std::fs::read_to_string(path).map_err(|err| anyhow::anyhow!("{variable}={path}: {err}"))
    };
    let merchant_serial_no = match cfg.wechatpay_mch_serial_no.as_str() {
        "" => {
            let pem = read("WECHATPAY_CERT_PATH", &cfg.wechatpay_cert_path)?;
            certificate_key(&pem)
                .map_err(|err| anyhow::anyhow!("WECHATPAY_CERT_PATH: {err}"))?
                .0
        }
        serial => serial.to_owned(),
    };
    let mut platform_keys = PlatformKeys::default();
    if !cfg.wechatpay_public_key_path.is_empty() {
        let pem = read("WECHATPAY_PUBLIC_KEY_PATH", &cfg.wechatpay_public_key_path)?;
        platform_keys
            .add_public_key(&cfg.wechatpay_public_key_id, &pem)
            .map_err(|err| anyhow::anyhow!("WECHATPAY_PUBLIC_KEY_PATH: {err}"))?;
    }
    if !cfg.wechatpay_platform_cert_path.is_empty() {
        let pem = read(
            "WECHATPAY_PLATFORM_CERT_PATH",
            &cfg.wechatpay_platform_cert_path,
        )?;
        platform_keys
            .add_certificate(&pem)
            .map_err(|err| anyhow::anyhow!("WECHATPAY_PLATFORM_CERT_PATH: {err}"))?;
    }
    Ok(Some(V3Settings {
        api_base: cfg.wechatpay_api_base.clone(),
        appid: cfg.wechat_appid.clone(),
        mch_id: cfg.wechatpay_mch_id.clone(),
        merchant_serial_no,
        merchant_key_pem: read("WECHATPAY_KEY_PATH", &cfg.wechatpay_key_path)?.into(),
        api_v3_key: cfg.wechatpay_api_v3_key.clone(),
        platform_keys,
        public_key_id: Some(cfg.wechatpay_public_key_id.clone()).filter(|id| !id.is_empty()),
        notify_url: cfg.v3_notify_url(),
        timeout: Duration::from_millis(cfg.wechatpay_timeout_ms),
    }))
}

impl Membership {
    pub fn build(cfg: &MembershipConfig, deps: &Dependencies) -> anyhow::Result<Self> {
        let keys = cfg.redis.keys("membership");
        // The token is shared by every service of the deployment, so its key has no service part.
        let shared = Keys::new(format!(
            "{}:wechat:{}",
            cfg.redis.redis_key_prefix, cfg.wechat_appid
        ));
        let wechat = WechatApi::new(
            WechatSettings {
                api_base: cfg.wechat_api_base.clone(),
                appid: cfg.wechat_appid.clone(),
                secret: cfg.wechat_secret.clone(),
                timeout: Duration::from_millis(cfg.wechat_timeout_ms),
                token_key: shared.key(&["access_token"]),
                token_lock_key: shared.key(&["access_token", "lock"]),
            },
            deps.redis.clone(),
        )?;
        let sign_type = cfg
            .wechatpay_sign_type
            .parse::<wechat_protocol::pay::SignType>()
            .map_err(|why| anyhow::anyhow!("WECHATPAY_SIGN_TYPE: {why}"))?;
        let pay = PayClient::new(
            PaySettings {
                api_base: cfg.wechatpay_api_base.clone(),
                appid: cfg.wechat_appid.clone(),
                mch_id: cfg.wechatpay_mch_id.clone(),
                api_key: cfg.wechatpay_api_key.clone(),
                sign_type,
                notify_url: cfg.wechatpay_notify_url.clone(),
                timeout: Duration::from_millis(cfg.wechatpay_timeout_ms),
                refund_notify_url: cfg.refund_notify_url(),
                secapi: secapi_settings(cfg)?,
            },
            v3_settings(cfg)?,
        )?;
        if cfg.service.is_production() && !cfg.uses_v3() {
            // v2 keeps working, but WeChat Pay gives new merchants v3 keys and develops only v3.
            tracing::warn!(
                "orders go through WeChat Pay API v2; with v3 keys, set WECHATPAY_API_VERSION=v3"
            );
        }
        tracing::info!(api = pay.api_version(), "wechat pay client ready");
        // Remembered longer than any replica lag we accept, and than a QR code lives.
        let freshness = Freshness::new(
            deps.redis.clone(),
            keys,
            Duration::from_secs(u64::from(cfg.qrcode_expire_seconds).max(600) + 60),
        );
        let prices = PriceList {
            member_price_fen: cfg.member_price_fen,
            member_days: cfg.member_days,
            member_bonus_credits: cfg.member_bonus_credits,
            member_renew_window_days: cfg.member_renew_window_days,
            credit_unit_fen: cfg.credit_unit_fen,
            credits_min: cfg.credits_min,
            credits_max: cfg.credits_max,
        };
        let bindings = Bindings::new(
            deps.pools.clone(),
            wechat.clone(),
            freshness.clone(),
            BindingChanges::new(deps.redis.clone(), &cfg.redis.redis_key_prefix),
            BindingRules {
                qrcode_expire_seconds: cfg.qrcode_expire_seconds,
                mp_base: cfg.wechat_mp_base.clone(),
                new_follower_credits: cfg.new_follower_credits,
            },
        );
        let reminders = Reminders::new(
            deps.pools.clone(),
            wechat.clone(),
            ReminderSettings {
                template_id: cfg.expiry_reminder_template_id.clone(),
                days_before: cfg.expiry_reminder_days,
                url: cfg.expiry_reminder_url.clone(),
                per_minute: std::num::NonZeroU32::new(cfg.expiry_reminder_per_minute)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            },
        );
        let members = Members::new(
            deps.pools.clone(),
            wechat,
            freshness.clone(),
            prices.clone(),
        );
        let orders = Orders::new(
            deps.pools.clone(),
            pay,
            prices,
            freshness.clone(),
            OrderRules {
                expire_minutes: cfg.order_expire_minutes,
                close_min_age_secs: cfg.order_close_min_age_secs,
                query_after_secs: cfg.reconcile_query_after_secs,
                backoff_first_secs: cfg.reconcile_backoff_first_secs,
                backoff_max_secs: cfg.reconcile_backoff_max_secs,
            },
        );
        let credits = Credits::new(deps.pools.clone(), cfg.hold_ttl_secs);
        let admin = admin::Admin::new(deps.pools.clone(), freshness.clone());
        let personal_data =
            personal_data::PersonalData::new(deps.pools.clone(), freshness, bindings.clone());
        let retention = retention::Retention::new(
            deps.pools.clone(),
            retention::RetentionRules {
                event_days: cfg.event_retention_days,
                binding_days: cfg.binding_retention_days,
                hold_days: cfg.hold_retention_days,
            },
        );
        Ok(Self {
            bindings,
            members,
            orders,
            credits,
            admin,
            reminders,
            personal_data,
            retention,
        })
    }

    /// The gRPC routes of this service.
    pub fn routes(&self) -> Routes {
        Routes::new(BindingServiceServer::new(grpc::BindingGrpc::new(
            self.bindings.clone(),
        )))
        .add_service(MemberServiceServer::new(grpc::MemberGrpc::new(
            self.members.clone(),
        )))
        .add_service(OrderServiceServer::new(grpc::OrderGrpc::new(
            self.orders.clone(),
        )))
        .add_service(CreditServiceServer::new(grpc::CreditGrpc::new(
            self.credits.clone(),
        )))
        .add_service(PersonalDataServiceServer::new(grpc::PersonalDataGrpc::new(
            self.personal_data.clone(),
        )))
        .add_service(AdminServiceServer::new(grpc::AdminGrpc::new(
            self.admin.clone(),
            self.orders.clone(),
        )))
    }

    /// Starts the background loops (reconciler, bill check, expiry reminders, hold janitor,
    /// retention); each stops with `shutdown`, after the round in progress (await the handles).
    /// Every instance runs them: each order check is claimed in SQL and each release is guarded,
    /// so concurrent instances never do the same work twice.
    pub fn spawn_background(
        &self,
        cfg: &MembershipConfig,
        shutdown: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let orders = self.orders.clone();
        let interval = Duration::from_millis(cfg.reconcile_interval_ms.max(10));
        let reconciler = every(interval, shutdown.clone(), move || {
            let orders = orders.clone();
            async move {
                match orders.reconcile_once().await {
                    Ok(report) if report != ReconcileReport::default() => {
                        tracing::info!(?report, "reconciler round");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "reconciler round failed"),
                }
            }
        });
        let orders = self.orders.clone();
        let from_hour = cfg.bill_check_hour;
        let bill_checker = (cfg.bill_check_interval_ms > 0).then(|| {
            let interval = Duration::from_millis(cfg.bill_check_interval_ms.max(10));
            every(interval, shutdown.clone(), move || {
                let orders = orders.clone();
                async move {
                    if let Err(err) = orders.check_yesterdays_bill(from_hour).await {
                        tracing::warn!(error = %err, "bill check round failed");
                    }
                }
            })
        });
        let reminders = self.reminders.clone();
        let reminder_sender = (cfg.expiry_reminder_interval_ms > 0).then(|| {
            let interval = Duration::from_millis(cfg.expiry_reminder_interval_ms.max(10));
            every(interval, shutdown.clone(), move || {
                let reminders = reminders.clone();
                async move {
                    match reminders.send_due().await {
                        Ok(round) if round.sent + round.failed > 0 => {
                            tracing::info!(?round, "expiry reminder round");
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "expiry reminder round failed"),
                    }
                }
            })
        });
        let credits = self.credits.clone();
        let interval = Duration::from_millis(cfg.hold_janitor_interval_ms.max(10));
        let janitor = every(interval, shutdown.clone(), move || {
            let credits = credits.clone();
            async move {
                if let Err(err) = credits.release_expired().await {
                    tracing::warn!(error = %err, "hold janitor round failed");
                }
            }
        });
        let retention = self.retention.clone();
        let retention_rounds = (cfg.retention_interval_ms > 0).then(|| {
            let interval = Duration::from_millis(cfg.retention_interval_ms.max(10));
            every(interval, shutdown.clone(), move || {
                let retention = retention.clone();
                async move {
                    match retention.purge(chrono::Utc::now()).await {
                        Ok(round) if round != retention::RetentionRound::default() => {
                            tracing::info!(?round, "retention round");
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "retention round failed"),
                    }
                }
            })
        });
        [
            Some(reconciler),
            bill_checker,
            reminder_sender,
            Some(janitor),
            retention_rounds,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Serves the service on `listener` until `shutdown` is cancelled.
pub async fn run(
    cfg: &MembershipConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let membership = Membership::build(cfg, &deps)?;
    let mut background = membership.spawn_background(cfg, &shutdown);
    background.extend(
        deps.pools
            .spawn_replica_monitor(cfg.database.replica_status_interval(), shutdown.clone()),
    );
    tracing::info!(addr = %listener.local_addr()?, "membership service listening");
    let served = platform::grpc::serve(
        listener,
        membership.routes(),
        SERVICE_NAMES,
        cfg.service.reflection(),
        cfg.service.service_token.clone(),
        shutdown,
    )
    .await;
    // In-flight calls are done; the loops finish their round (a payment being applied, a hold
    // being released) before the process may exit.
    for task in background {
        let _ = task.await;
    }
    tracing::info!("membership service drained");
    served.map_err(|err| anyhow::anyhow!(err))
}

/// Connects the pools (lazily) and Redis.
pub async fn connect(cfg: &MembershipConfig) -> anyhow::Result<Dependencies> {
    let pools = cfg.database.connect_lazy()?;
    let redis = cfg.redis.connect().await?;
    Ok(Dependencies { pools, redis })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_merchant_certificate_stops_start_up_naming_it() {
        let mut cfg = MembershipConfig::defaults().unwrap();
        assert!(secapi_settings(&cfg).unwrap().is_none(), "off by default");
        cfg.wechatpay_cert_path = "/nonexistent/apiclient_cert.pem".into();
        cfg.wechatpay_key_path = "/nonexistent/apiclient_key.pem".into();
        let refused = secapi_settings(&cfg).unwrap_err().to_string();
        assert!(
            refused.contains("WECHATPAY_CERT_PATH=/nonexistent/apiclient_cert.pem"),
            "{refused}"
        );
    }
}
