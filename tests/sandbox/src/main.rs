//! `sandbox serve` plays WeChat on loopback for the local demo; `sandbox scan` acts as a user.

use clap::{Parser, Subcommand};
use sandbox::{Sandbox, SandboxConfig};

#[derive(Parser)]
#[command(
    about = "Local stand-in for WeChat (official account), WeChat Pay and DashScope, for tests and the demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the WeChat API until Ctrl-C or SIGTERM.
    Serve {
        #[arg(long, env = "SANDBOX_LISTEN_ADDR", default_value = "127.0.0.1:9900")]
        listen: String,
        #[arg(long, env = "WECHAT_APPID", default_value = "wx5a1dbox0000000001")]
        appid: String,
        #[arg(long, env = "WECHAT_SECRET", default_value = "sandbox-app-secret")]
        secret: String,
        #[arg(long, env = "WECHAT_TOKEN", default_value = "sandbox-push-token")]
        push_token: String,
        #[arg(long, env = "WECHAT_AES_KEY")]
        aes_key: Option<String>,
        #[arg(long, env = "WECHATPAY_MCH_ID", default_value = "1900000109")]
        mch_id: String,
        #[arg(
            long,
            env = "WECHATPAY_API_KEY",
            default_value = "sandboxsandboxsandboxsandbox0001"
        )]
        pay_key: String,
        /// The merchant's APIv3 key: v3 notifications are encrypted with it.
        #[arg(
            long,
            env = "WECHATPAY_API_V3_KEY",
            default_value = "sandboxV3ApiKeySandboxV3ApiKey01"
        )]
        api_v3_key: String,
        /// The id of WeChat Pay's public key (the key itself is written to the TLS dir).
        #[arg(
            long,
            env = "WECHATPAY_PUBLIC_KEY_ID",
            default_value = "PUB_KEY_ID_0119000001092026120500000001"
        )]
        public_key_id: String,
        /// The DashScope API key the sandbox accepts (the photo service's DASHSCOPE_API_KEY).
        #[arg(
            long,
            env = "DASHSCOPE_API_KEY",
            default_value = "sk-sandbox-dashscope-0001"
        )]
        dashscope_api_key: String,
        /// Port of the mutual-TLS listener for WeChat Pay's secapi calls (refunds), on the
        /// listen address's IP; 0 picks a free one.
        #[arg(long, env = "SANDBOX_SECAPI_PORT", default_value_t = 9901)]
        secapi_port: u16,
        /// Host names the secapi server certificate names besides localhost and 127.0.0.1
        /// (comma-separated; compose: sandbox).
        #[arg(long, env = "SANDBOX_SECAPI_HOSTS", value_delimiter = ',')]
        secapi_hosts: Vec<String>,
        /// Where to write the CA (ca.pem), the merchant's client certificate and key
        /// (apiclient_cert.pem, apiclient_key.pem) and WeChat Pay's public key (pub_key.pem) at
        /// start, for the merchant's refunds and API v3.
        #[arg(long, env = "SANDBOX_TLS_DIR")]
        tls_dir: Option<std::path::PathBuf>,
    },
    /// Scans a QR ticket as a WeChat user: the sandbox pushes the signed event to the gateway.
    Scan {
        #[arg(long, default_value = "http://127.0.0.1:9900")]
        sandbox: String,
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080/api/v1/auth/wechat/verify"
        )]
        push_url: String,
        #[arg(long)]
        ticket: String,
        #[arg(long, default_value = "o_sandbox_user_1")]
        openid: String,
    },
    /// Pays an order as its WeChat user: the sandbox sends the signed notify to the gateway.
    Pay {
        #[arg(long, default_value = "http://127.0.0.1:9900")]
        sandbox: String,
        /// out_trade_no or prepay_id.
        #[arg(long)]
        order: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            appid,
            secret,
            push_token,
            aes_key,
            mch_id,
            pay_key,
            api_v3_key,
            public_key_id,
            dashscope_api_key,
            secapi_port,
            secapi_hosts,
            tls_dir,
        } => {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            // An empty WECHAT_AES_KEY (as compose passes an unset one) means plain mode.
            let aes_key = aes_key.filter(|key| !key.is_empty());
            let cfg = SandboxConfig {
                appid,
                secret,
                push_token,
                aes_key,
                mch_id,
                pay_key,
                api_v3_key,
                public_key_id,
                dashscope_api_key,
                secapi_port,
                secapi_hosts,
                ..SandboxConfig::default()
            };
            let sandbox = Sandbox::start(cfg, listener)?;
            if let Some(dir) = tls_dir {
                sandbox.merchant_tls()?.write_to(&dir)?;
                std::fs::write(dir.join("pub_key.pem"), sandbox.wechatpay_public_key()?.1)?;
                tracing::info!(dir = %dir.display(), "merchant TLS files written");
            }
            // SIGTERM too: Docker stops a container with it, and as a container's main process
            // the sandbox would otherwise ignore it and be killed after the grace period. (The
            // services wait the same way in `platform::shutdown`, a crate the sandbox does not
            // build on: it would bring the database and Redis clients into this test server.)
            // Both handled before the start-up line says the sandbox serves: a signal sent on
            // reading it would otherwise find no handler yet and kill the process.
            use tokio::signal::unix::{SignalKind, signal};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            tracing::info!(
                url = %sandbox.url(),
                secapi = %sandbox.secapi_url(),
                "sandbox playing WeChat, WeChat Pay and DashScope"
            );
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            Ok(())
        }
        Command::Scan {
            sandbox,
            push_url,
            ticket,
            openid,
        } => {
            let answer: serde_json::Value = reqwest::Client::new()
                .post(format!("{sandbox}/_sandbox/scan"))
                .json(&serde_json::json!({ "ticket": ticket, "openid": openid, "push_url": push_url }))
                .send()
                .await?
                .json()
                .await?;
            println!("{answer}"); // ok: this CLI's output is its result
            Ok(())
        }
        Command::Pay { sandbox, order } => {
            let answer: serde_json::Value = reqwest::Client::new()
                .post(format!("{sandbox}/_sandbox/pay"))
                .json(&serde_json::json!({ "order": order }))
                .send()
                .await?
                .json()
                .await?;
            println!("{answer}"); // ok: this CLI's output is its result
            Ok(())
        }
    }
}
