//! `photo-svc serve | migrate | healthcheck`.

use clap::{Parser, Subcommand};

use photo_svc::config::PhotoConfig;

#[derive(Parser)]
#[command(about = "Xintu photo service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves gRPC until SIGTERM.
    Serve,
    /// Applies this service's database migrations, then exits.
    Migrate,
    /// Exits 0 when the service at `addr` answers its gRPC health check as serving.
    Healthcheck {
        #[arg(default_value = "http://127.0.0.1:50052")]
        addr: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Healthcheck { addr } = &cli.command {
        return platform::grpc::healthcheck(addr).await;
    }
    let cfg = PhotoConfig::load()?;
    let _telemetry = platform::telemetry::init(
        "photo",
        cfg.log_format,
        cfg.otel_exporter_otlp_endpoint.as_deref(),
    )
    .map_err(|err| anyhow::anyhow!(err))?;
    match cli.command {
        Command::Migrate => {
            // Migrations need only the database: no Redis, no location data.
            let pools = platform::db::Pools::connect_lazy(
                &cfg.database_url,
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
