//! `membership-svc serve | migrate | healthcheck`.

use clap::{Parser, Subcommand};

use membership_svc::config::MembershipConfig;

#[derive(Parser)]
#[command(about = "Xintu membership service")]
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
        #[arg(default_value = "http://127.0.0.1:50051")]
        addr: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Healthcheck { addr } = &cli.command {
        return platform::grpc::healthcheck(addr).await;
    }
    let cfg = MembershipConfig::load()?;
    let _telemetry = platform::telemetry::init(
        "membership",
        cfg.log_format,
        cfg.otel_exporter_otlp_endpoint.as_deref(),
    )
    .map_err(|err| anyhow::anyhow!(err))?;
    let deps = membership_svc::connect(&cfg).await?;
    match cli.command {
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
