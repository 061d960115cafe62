//! The sandbox: plays the WeChat official-account API on loopback (tokens, QR codes, template
//! messages to followers) with its real wire formats, error codes and injectable faults, and acts
//! as a WeChat user (scan a QR code: a signed subscribe or SCAN push to the gateway, plain or safe
//! mode). It also plays WeChat Pay (with refunds on a second, mutual-TLS listener, as `secapi`
//! needs the merchant's certificate) and DashScope (Qwen-VL vision; image editing with wanx2.1
//! tasks and qwen-image-edit). Tests start it in-process; the local demo runs the `sandbox`
//! binary. Production config refuses its addresses.

mod control;
mod dashscope;
mod imageedit;
mod oauth;
mod official_account;
pub mod pay;
mod secapi;
mod template_message;
pub mod user;

pub use dashscope::{VisionAnswer, VisionFaults};
pub use imageedit::{EditFaults, EditSettings, EditStats};
pub use pay::{BillRow, BillType, RefundMode, RefundStatus};
pub use secapi::MerchantTls;
pub use template_message::TemplateMessage;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Who the sandbox pretends to be: the official account's credentials as WeChat knows them.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub appid: String,
    pub secret: String,
    /// The push token configured in the official-account console (the gateway's WECHAT_TOKEN).
    pub push_token: String,
    /// The EncodingAESKey; pushes are encrypted (safe mode) when set.
    pub aes_key: Option<String>,
    /// The account's original id, sent as ToUserName.
    pub original_id: String,
    /// Lifetime of an access token, seconds (WeChat: 7200).
    pub token_ttl_secs: i64,
    /// The merchant as WeChat Pay knows it: id and 32-character API key.
    pub mch_id: String,
    pub pay_key: String,
    /// The merchant's 32-character APIv3 key: v3 notifications are encrypted with it.
    pub api_v3_key: String,
    /// The id of WeChat Pay's public key (v3 answers and notifications name it).
    pub public_key_id: String,
    /// The WeChat user whose browser opens the OAuth page (override per request with
    /// `sandbox_openid=` on the authorize URL).
    pub oauth_openid: String,
    /// Pauses between notify deliveries while the merchant does not answer SUCCESS
    /// (WeChat: 15 s, 15 s, 30 s, 3 min, …; shortened for tests).
    pub notify_retry_delays_ms: Vec<u64>,
    /// The DashScope API key the sandbox accepts (the photo service's DASHSCOPE_API_KEY).
    pub dashscope_api_key: String,
    /// Port of the mutual-TLS listener for WeChat Pay's `secapi` calls, on the main listener's
    /// IP; 0 picks a free port.
    pub secapi_port: u16,
    /// Host names the secapi server certificate names besides `localhost` and `127.0.0.1`
    /// (compose: `sandbox`, the name the other containers reach it by).
    pub secapi_hosts: Vec<String>,
    /// Template ids the account has added (模板消息); `message/template/send` refuses any other
    /// with 40037.
    pub templates: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            appid: "wx5a1dbox0000000001".into(),
            secret: "sandbox-app-secret".into(),
            push_token: "sandbox-push-token".into(),
            aes_key: None,
            original_id: "gh_5a1db0x00001".into(),
            token_ttl_secs: 7200,
            mch_id: "1900000109".into(),
            pay_key: "sandboxsandboxsandboxsandbox0001".into(),
            api_v3_key: "sandboxV3ApiKeySandboxV3ApiKey01".into(),
            public_key_id: "PUB_KEY_ID_0119000001092026120500000001".into(),
            oauth_openid: "o_sandbox_user_1".into(),
            notify_retry_delays_ms: vec![100, 200, 400, 800, 1600, 3200],
            dashscope_api_key: "sk-sandbox-dashscope-0001".into(),
            secapi_port: 0,
            secapi_hosts: Vec::new(),
            templates: vec!["sandbox-member-expiry-0001".into()],
        }
    }
}

/// Faults to inject into the next answers. Each count is used up one answer at a time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Business calls that answer 40001 and revoke the token they were given.
    #[serde(default)]
    pub revoke_token: u32,
    /// Business calls that answer 45009 (daily quota reached).
    #[serde(default)]
    pub quota_exceeded: u32,
    /// Calls (token endpoints included) that answer errcode -1, WeChat's "system busy".
    #[serde(default)]
    pub server_errors: u32,
    /// Delay before every answer, milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Pay calls that answer result_code FAIL / SYSTEMERROR.
    #[serde(default)]
    pub pay_system_errors: u32,
}

/// What WeChat Pay does with the notify of a paid order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyMode {
    /// One delivery, retried until the merchant answers SUCCESS.
    #[default]
    Normal,
    /// The notify is lost: never sent.
    Drop,
    /// This many copies at once (WeChat's servers racing each other), then retries.
    Duplicates(u32),
}

/// Counters tests assert on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub token_fetches: u64,
    pub qrcode_creates: u64,
    pub pushes_sent: u64,
    pub unified_orders: u64,
    pub order_queries: u64,
    pub close_orders: u64,
    pub notifies_sent: u64,
    pub oauth_exchanges: u64,
    /// DashScope vision calls received (every attempt, faults included).
    pub vision_calls: u64,
    /// DashScope vision calls answered with a completion.
    pub vision_answers: u64,
    /// `secapi/pay/refund` calls that passed the request checks.
    pub refunds: u64,
    pub refund_queries: u64,
    /// Refund notify deliveries (every attempt).
    pub refund_notifies_sent: u64,
    /// `pay/downloadbill` calls that passed the request checks.
    pub bill_downloads: u64,
    /// Template messages accepted (a client_msg_id repeat is not counted: nothing is sent).
    pub template_messages_sent: u64,
}

#[derive(Clone, Debug)]
struct IssuedToken {
    value: String,
    expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct QrRecord {
    pub scene_id: u32,
    pub expires_at: i64,
}

#[derive(Default)]
struct Accounts {
    token: Option<IssuedToken>,
    revoked: HashSet<String>,
    qrcodes: HashMap<String, QrRecord>,
    followers: HashSet<String>,
    pay_orders: HashMap<String, pay::PayOrder>,
    oauth_codes: HashMap<String, (String, i64)>,
    notify_mode: NotifyMode,
    notify_style: pay::NotifyStyle,
    /// Every refund, in the order they were asked for (refundquery numbers them so).
    refunds: Vec<pay::Refund>,
    refund_mode: RefundMode,
    /// Transactions tests put in the bills besides the orders and refunds (`add_bill_row`).
    bill_rows: Vec<pay::BillRow>,
    templates: template_message::TemplateBook,
}

pub(crate) struct State {
    cfg: SandboxConfig,
    faults: Mutex<Faults>,
    accounts: Mutex<Accounts>,
    token_fetches: AtomicU64,
    qrcode_creates: AtomicU64,
    pushes_sent: AtomicU64,
    unified_orders: AtomicU64,
    order_queries: AtomicU64,
    close_orders: AtomicU64,
    notifies_sent: AtomicU64,
    oauth_exchanges: AtomicU64,
    refunds: AtomicU64,
    refund_queries: AtomicU64,
    refund_notifies_sent: AtomicU64,
    bill_downloads: AtomicU64,
    template_messages_sent: AtomicU64,
    pki: secapi::Pki,
    /// Issued when first asked for (an RSA key takes a moment to make).
    merchant_tls: std::sync::OnceLock<Result<MerchantTls, String>>,
    /// WeChat Pay's own API v3 signing key, made when first needed.
    platform_key: std::sync::OnceLock<Result<pay::v3::PlatformKey, String>>,
    vision: dashscope::Vision,
    image_edit: imageedit::ImageEdit,
    http: reqwest::Client,
}

/// A running sandbox.
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<State>,
    addr: SocketAddr,
    secapi_addr: SocketAddr,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked holder leaves plain data behind; the sandbox keeps serving.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sandbox {
    /// Starts the sandbox on `listener` in the background, and its mutual-TLS `secapi`
    /// listener on the same IP at `cfg.secapi_port`.
    pub fn start(cfg: SandboxConfig, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        let pki = secapi::issue(&cfg.secapi_hosts, addr.ip())?;
        let secapi_server = pki.server.clone();
        let secapi_listener = std::net::TcpListener::bind((addr.ip(), cfg.secapi_port))?;
        let secapi_addr = secapi_listener.local_addr()?;
        let state = Arc::new(State {
            cfg,
            faults: Mutex::new(Faults::default()),
            accounts: Mutex::new(Accounts::default()),
            token_fetches: AtomicU64::new(0),
            qrcode_creates: AtomicU64::new(0),
            pushes_sent: AtomicU64::new(0),
            unified_orders: AtomicU64::new(0),
            order_queries: AtomicU64::new(0),
            close_orders: AtomicU64::new(0),
            notifies_sent: AtomicU64::new(0),
            oauth_exchanges: AtomicU64::new(0),
            refunds: AtomicU64::new(0),
            refund_queries: AtomicU64::new(0),
            refund_notifies_sent: AtomicU64::new(0),
            bill_downloads: AtomicU64::new(0),
            template_messages_sent: AtomicU64::new(0),
            pki,
            merchant_tls: std::sync::OnceLock::new(),
            platform_key: std::sync::OnceLock::new(),
            vision: dashscope::Vision::default(),
            image_edit: imageedit::ImageEdit::default(),
            http,
        });
        let sandbox = Self {
            state,
            addr,
            secapi_addr,
        };
        let app = Router::new()
            .merge(official_account::routes())
            .merge(template_message::routes())
            .merge(pay::routes())
            .merge(oauth::routes())
            .merge(dashscope::routes())
            .merge(imageedit::routes())
            .merge(control::routes())
            .with_state(sandbox.clone());
        secapi::serve(
            secapi_listener,
            secapi_server,
            pay::secapi_routes().with_state(sandbox.clone()),
        )?;
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "sandbox stopped");
            }
        });
        Ok(sandbox)
    }

    /// Starts on a free loopback port.
    pub async fn start_local(cfg: SandboxConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start(cfg, listener)
    }

    /// The base URL to configure as WECHAT_API_BASE.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The base URL of the mutual-TLS listener (WeChat Pay's `secapi` calls; it serves the other
    /// pay calls too, as api.mch.weixin.qq.com does).
    pub fn secapi_url(&self) -> String {
        format!("https://{}", self.secapi_addr)
    }

    /// The CA, client certificate and key a merchant needs for [`Sandbox::secapi_url`] and for
    /// signing API v3 requests. Issued on the first call.
    pub fn merchant_tls(&self) -> std::io::Result<MerchantTls> {
        self.state
            .merchant_tls
            .get_or_init(|| {
                secapi::issue_merchant(&self.state.pki, &self.state.cfg.mch_id)
                    .map_err(|err| err.to_string())
            })
            .clone()
            .map_err(std::io::Error::other)
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.state.cfg
    }

    /// Chooses what happens to the notify of the next payments.
    pub fn set_notify_mode(&self, mode: NotifyMode) {
        lock(&self.state.accounts).notify_mode = mode;
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    pub fn stats(&self) -> Stats {
        Stats {
            token_fetches: self.state.token_fetches.load(Ordering::SeqCst),
            qrcode_creates: self.state.qrcode_creates.load(Ordering::SeqCst),
            pushes_sent: self.state.pushes_sent.load(Ordering::SeqCst),
            unified_orders: self.state.unified_orders.load(Ordering::SeqCst),
            order_queries: self.state.order_queries.load(Ordering::SeqCst),
            close_orders: self.state.close_orders.load(Ordering::SeqCst),
            notifies_sent: self.state.notifies_sent.load(Ordering::SeqCst),
            oauth_exchanges: self.state.oauth_exchanges.load(Ordering::SeqCst),
            vision_calls: self.state.vision.calls(),
            vision_answers: self.state.vision.answered(),
            refunds: self.state.refunds.load(Ordering::SeqCst),
            refund_queries: self.state.refund_queries.load(Ordering::SeqCst),
            refund_notifies_sent: self.state.refund_notifies_sent.load(Ordering::SeqCst),
            bill_downloads: self.state.bill_downloads.load(Ordering::SeqCst),
            template_messages_sent: self.state.template_messages_sent.load(Ordering::SeqCst),
        }
    }

    /// The access token handed out last, if it is still current.
    pub fn current_access_token(&self) -> Option<String> {
        lock(&self.state.accounts)
            .token
            .as_ref()
            .map(|token| token.value.clone())
    }

    /// Revokes the current access token, as another caller's force refresh would.
    pub fn revoke_current_token(&self) {
        let mut accounts = lock(&self.state.accounts);
        if let Some(token) = accounts.token.take() {
            accounts.revoked.insert(token.value);
        }
    }

    /// Marks a QR ticket expired now (as if its lifetime had passed).
    pub fn expire_qrcode(&self, ticket: &str) {
        if let Some(record) = lock(&self.state.accounts).qrcodes.get_mut(ticket) {
            record.expires_at = chrono::Utc::now().timestamp() - 1;
        }
    }

    pub(crate) fn qrcode(&self, ticket: &str) -> Option<QrRecord> {
        lock(&self.state.accounts).qrcodes.get(ticket).cloned()
    }

    /// Records the user as a follower; returns true when they were not following before.
    pub(crate) fn follow(&self, openid: &str) -> bool {
        lock(&self.state.accounts)
            .followers
            .insert(openid.to_owned())
    }

    pub(crate) fn is_follower(&self, openid: &str) -> bool {
        lock(&self.state.accounts).followers.contains(openid)
    }

    pub(crate) fn unfollow(&self, openid: &str) {
        lock(&self.state.accounts).followers.remove(openid);
    }
}
