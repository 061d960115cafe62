//! `membership-svc serve | migrate | healthcheck`.

use platform::cli::ServiceCommand as Command;

use membership_svc::config::MembershipConfig;

// The same allocator as the gateway: many small short-lived buffers per call, on several
// runtime threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = platform::cli::parse();
    if let Some(checked) =
        platform::cli::healthcheck_if_asked(&command, "http://127.0.0.1:50051").await
    {
        return checked;
    }
    let cfg = platform::cli::config_or_exit(MembershipConfig::load());
    let _telemetry = cfg
        .service
        .init_telemetry("membership")
        .map_err(|err| anyhow::anyhow!(err))?;
    let deps = membership_svc::connect(&cfg).await?;
    match command {
        Command::Migrate => {
            membership_svc::MIGRATOR.run(&deps.pools.primary).await?;
            tracing::info!("membership migrations applied");
            Ok(())
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(&cfg.membership_listen_addr).await?;
            membership_svc::run(&cfg, deps, listener, platform::shutdown::on_signal()).await
        }
        Command::Healthcheck { .. } => Ok(()),
    }
}
