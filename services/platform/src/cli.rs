//! The command line every service binary shares: `serve`, `migrate`, `healthcheck [addr]`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Serves gRPC until SIGTERM.
    Serve,
    /// Applies this service's database migrations, then exits.
    Migrate,
    /// Exits 0 when the service at `addr` (default: this service's local address) answers its
    /// gRPC health check as serving.
    Healthcheck { addr: Option<String> },
}

/// Parses the process arguments (exits with clap's usage text on a bad command line).
pub fn parse() -> ServiceCommand {
    Cli::parse().command
}

/// Runs `healthcheck` and returns Some(result) for that command, None for the others.
pub async fn healthcheck_if_asked(
    command: &ServiceCommand,
    default_addr: &str,
) -> Option<anyhow::Result<()>> {
    match command {
        ServiceCommand::Healthcheck { addr } => {
            Some(crate::grpc::healthcheck(addr.as_deref().unwrap_or(default_addr)).await)
        }
        _ => None,
    }
}

/// The service's configuration, or the end of the process with one line naming the bad setting
/// (exit status 2): operators read it in container logs, where a backtrace would bury it.
pub fn config_or_exit<T>(loaded: Result<T, crate::config::ConfigError>) -> T {
    loaded.unwrap_or_else(|err| {
        #[allow(clippy::print_stderr)] // no logger is set up before the config is read
        {
            eprintln!("configuration error: {err}");
        }
        std::process::exit(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.command);
        assert_eq!(parse(&["svc", "serve"]).unwrap(), ServiceCommand::Serve);
        assert_eq!(parse(&["svc", "migrate"]).unwrap(), ServiceCommand::Migrate);
        assert_eq!(
            parse(&["svc", "healthcheck", "http://x:1"]).unwrap(),
            ServiceCommand::Healthcheck {
                addr: Some("http://x:1".into())
            }
        );
        assert!(parse(&["svc", "fly"]).is_err());
    }
}
