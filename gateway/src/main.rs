//! `gateway serve | migrate | openapi | hash-password | healthcheck`.

use clap::{Parser, Subcommand};

use gateway::config::GatewayConfig;

// Every request allocates and frees many small buffers across two runtime threads; mimalloc's
// per-thread pages cost less there than the system allocator's arenas (see the README's
// performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Xintu edge gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves HTTP until SIGTERM.
    Serve,
    /// The gateway has no schema of its own; accepted so every binary has the same commands.
    Migrate,
    /// Prints the OpenAPI document the gateway serves at `/api/v1/openapi.json`, which the
    /// typed clients under `clients/` are generated from.
    Openapi,
    /// Prints an argon2 hash of the password read from stdin, for ADMIN_PASSWORD_HASH.
    HashPassword,
    /// Exits 0 when `GET <url>` answers 200.
    Healthcheck {
        #[arg(default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Healthcheck { url } => {
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{url} answered {}",
                response.status()
            );
            Ok(())
        }
        Command::Migrate => Ok(()),
        Command::Openapi => {
            println!("{}", gateway::routes::openapi::pretty_document()?); // ok: this command's output is its result
            Ok(())
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let hash = gateway::admin::hash_password(password.trim_end_matches(['\r', '\n']))
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            println!("{hash}"); // ok: this command's output is its result
            Ok(())
        }
        Command::Serve => {
            let cfg = platform::cli::config_or_exit(GatewayConfig::load());
            let _telemetry = cfg
                .service
                .init_telemetry("gateway")
                .map_err(|err| anyhow::anyhow!(err))?;
            let listener = tokio::net::TcpListener::bind(&cfg.gateway_listen_addr).await?;
            let state = gateway::AppState::new(cfg)?;
            gateway::run(state, listener, platform::shutdown::on_signal()).await
        }
    }
}
