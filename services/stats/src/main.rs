//! `stats-svc serve | migrate | healthcheck`.

use platform::cli::ServiceCommand as Command;

use stats_svc::config::StatsConfig;

// The same allocator as the gateway: many small short-lived buffers per call, on several
// runtime threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = platform::cli::parse();
    if let Some(checked) =
        platform::cli::healthcheck_if_asked(&command, "http://127.0.0.1:50053").await
    {
        return checked;
    }
    let cfg = platform::cli::config_or_exit(StatsConfig::load());
    let _telemetry = cfg
        .service
        .init_telemetry("stats")
        .map_err(|err| anyhow::anyhow!(err))?;
    let pools = stats_svc::connect(&cfg)?;
    match command {
        Command::Migrate => {
            stats_svc::MIGRATOR.run(&pools.primary).await?;
            tracing::info!("stats migrations applied");
            Ok(())
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(&cfg.stats_listen_addr).await?;
            stats_svc::run(&cfg, pools, listener, platform::shutdown::on_signal()).await
        }
        Command::Healthcheck { .. } => Ok(()),
    }
}
