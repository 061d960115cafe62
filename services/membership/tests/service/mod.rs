//! The membership service alone, for service-level tests: its own database (migrated) on the
//! test primary and replica, the test Redis, and one or more instances serving gRPC on port 0.
//! No gateway, no other service, no provider: what a test of membership's own API needs.

use std::time::Duration;

use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use membership_svc::config::MembershipConfig;
use platform::grpc::ServiceChannel;
use platform::testing::{Replica, TestDatabase};
use proto::membership::v1 as pb;
use proto::membership::v1::binding_service_client::BindingServiceClient;
use proto::membership::v1::credit_service_client::CreditServiceClient;

/// How the instances run.
pub struct Settings {
    pub instances: usize,
    pub hold_janitor_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            instances: 1,
            hold_janitor_interval_ms: 30_000,
        }
    }
}

pub struct Membership {
    pub db: TestDatabase,
    /// One URL per instance.
    pub urls: Vec<String>,
    token: platform::grpc::ServiceToken,
    stop: CancellationToken,
}

impl Membership {
    pub async fn start(settings: Settings) -> Self {
        let db =
            TestDatabase::migrated("membership", Replica::Shared, &membership_svc::MIGRATOR).await;
        let token = platform::testing::service_token();
        let redis_prefix = platform::testing::redis_prefix();
        let stop = CancellationToken::new();
        let mut urls = Vec::new();
        for _ in 0..settings.instances.max(1) {
            let mut cfg = MembershipConfig::defaults().expect("membership defaults");
            cfg.service.service_token = token.clone();
            cfg.database.database_url = db.primary_url.clone();
            cfg.database.database_replica_url = Some(db.replica_url.clone());
            cfg.redis.redis_url = platform::testing::redis_url();
            cfg.redis.redis_key_prefix = redis_prefix.clone();
            // Credits come from grants here, so each test starts users where it wants them.
            cfg.new_follower_credits = 0;
            cfg.hold_janitor_interval_ms = settings.hold_janitor_interval_ms;
            // Nothing here talks to WeChat or WeChat Pay.
            cfg.wechat_api_base = "http://127.0.0.1:9".into();
            cfg.wechatpay_api_base = "http://127.0.0.1:9".into();
            cfg.bill_check_interval_ms = 0;
            cfg.expiry_reminder_interval_ms = 0;
            cfg.validate().expect("membership test config");
            let deps = membership_svc::connect(&cfg).await.expect("connect");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
            urls.push(format!(
                "http://{}",
                listener.local_addr().expect("address")
            ));
            let shutdown = stop.child_token();
            tokio::spawn(async move {
                if let Err(err) = membership_svc::run(&cfg, deps, listener, shutdown).await {
                    panic!("membership stopped: {err}");
                }
            });
        }
        Self {
            db,
            urls,
            token,
            stop,
        }
    }

    fn channel(&self, instance: usize) -> ServiceChannel {
        platform::grpc::channel(
            &self.urls[instance % self.urls.len()],
            Duration::from_secs(30),
            &self.token,
        )
        .expect("a channel to membership")
    }

    /// The credits API of the first instance.
    pub fn credit_client(&self) -> CreditServiceClient<ServiceChannel> {
        CreditServiceClient::new(self.channel(0))
    }

    /// A WeChat user who followed the account, holding `credits` credits (granted by an
    /// operator, so the ledger shows where they came from).
    pub async fn user_with_credits(&self, openid: &str, credits: i64) -> i64 {
        let mut binding = BindingServiceClient::new(self.channel(0));
        binding
            .handle_official_account_event(pb::OfficialAccountEvent {
                openid: openid.to_owned(),
                create_time: chrono::Utc::now().timestamp(),
                kind: pb::EventKind::Subscribe.into(),
                event_key: String::new(),
                ticket: String::new(),
            })
            .await
            .expect("a follow event");
        let user_id = self.user_id(openid).await;
        if credits > 0 {
            self.credit_client()
                .grant(pb::GrantRequest {
                    user_id,
                    amount: credits,
                    reason: "admin_adjust".into(),
                    reference: format!("setup-{openid}"),
                    note: "test setup".into(),
                    actor: "test".into(),
                })
                .await
                .expect("the setup grant");
        }
        user_id
    }

    /// The user id of an openid.
    pub async fn user_id(&self, openid: &str) -> i64 {
        let pool = self.db.primary().await;
        let user = membership_svc::store::users::find_by_openid(&pool, openid)
            .await
            .expect("read the user")
            .expect("the user exists");
        pool.close().await;
        user.id
    }

    /// Every balance is the sum of its ledger rows.
    pub async fn assert_ledger_invariant(&self) {
        let pool: MySqlPool = self.db.primary().await;
        let broken = membership_svc::store::ledger::users_off_their_ledger(&pool)
            .await
            .expect("check the ledger invariant");
        pool.close().await;
        assert_eq!(broken, 0, "users whose balance differs from their ledger");
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
