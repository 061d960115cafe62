//! `photo-svc serve | migrate | healthcheck`.

use platform::cli::ServiceCommand as Command;

use photo_svc::config::PhotoConfig;

// The same allocator as the gateway: many small short-lived buffers per call, on several
// runtime threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = platform::cli::parse();
    if let Some(checked) =
        platform::cli::healthcheck_if_asked(&command, "http://127.0.0.1:50052").await
    {
        return checked;
    }
    let cfg = platform::cli::config_or_exit(PhotoConfig::load());
    let _telemetry = cfg
        .service
        .init_telemetry("photo")
        .map_err(|err| anyhow::anyhow!(err))?;
    match command {
        Command::Migrate => {
            // Migrations need only the database: no Redis, no location data.
            let pools = platform::db::Pools::connect_lazy(
                &cfg.database.database_url,
                None,
                &platform::db::PoolSettings::default(),
            )?;
            photo_svc::MIGRATOR.run(&pools.primary).await?;
            tracing::info!("photo migrations applied");
            Ok(())
        }
        Command::Serve => {
            let deps = photo_svc::connect(&cfg).await?;
            let listener = tokio::net::TcpListener::bind(&cfg.photo_listen_addr).await?;
            photo_svc::run(&cfg, deps, listener, platform::shutdown::on_signal()).await
        }
        Command::Healthcheck { .. } => Ok(()),
    }
}
