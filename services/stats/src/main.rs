//! `stats-svc serve | migrate | healthcheck`.

use clap::{Parser, Subcommand};

use stats_svc::config::StatsConfig;

#[derive(Parser)]
#[command(about = "Xintu stats service")]
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
        #[arg(default_value = "http://127.0.0.1:50053")]
        addr: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Healthcheck { addr } = &cli.command {
        return platform::grpc::healthcheck(addr).await;
    }
    let cfg = StatsConfig::load()?;
    let _telemetry = platform::telemetry::init(
        "stats",
        cfg.log_format,
        cfg.otel_exporter_otlp_endpoint.as_deref(),
    )
    .map_err(|err| anyhow::anyhow!(err))?;
    let pools = stats_svc::connect(&cfg)?;
    match cli.command {
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
