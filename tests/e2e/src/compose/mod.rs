//! The deployment under test, as `docker-compose` and `docker` see it. The project, its files and
//! profiles come from the environment docker-compose reads itself (`COMPOSE_PROJECT_NAME`,
//! `COMPOSE_FILE`, `COMPOSE_PROFILES`, and the variables the compose file interpolates), so each
//! command here is the one an operator would type. `edge` is what users do through the ports it
//! publishes.

pub mod edge;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub struct Compose {
    root_password: String,
}

/// One container of a service, by its id (as `docker` takes it) and compose's number.
#[derive(Clone, Debug)]
pub struct Container {
    pub id: String,
    pub name: String,
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Compose {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            root_password: std::env::var("MARIADB_ROOT_PASSWORD")
                .context("MARIADB_ROOT_PASSWORD (the project's environment)")?,
        })
    }

    pub fn compose(&self, args: &[&str]) -> Result<String> {
        run("docker-compose", args)
    }

    /// `up -d` on the built images, with `scale` instances of the named services.
    pub fn up(&self, scale: &[(&str, u32)]) -> Result<()> {
        let scales: Vec<String> = scale
            .iter()
            .map(|(service, n)| format!("{service}={n}"))
            .collect();
        let mut args = vec!["up", "-d", "--no-build", "--remove-orphans"];
        for s in &scales {
            args.extend(["--scale", s.as_str()]);
        }
        self.compose(&args).map(drop)
    }

    /// The service's containers, running or not, in compose's numbering.
    pub fn containers(&self, service: &str) -> Result<Vec<Container>> {
        let ids = self.compose(&["ps", "-a", "-q", service])?;
        let mut containers = Vec::new();
        for id in ids.split_whitespace() {
            let name = run("docker", &["inspect", "-f", "{{.Name}}", id])?;
            containers.push(Container {
                id: id.to_owned(),
                name: name.trim().trim_start_matches('/').to_owned(),
            });
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    fn inspect(&self, container: &Container, format: &str) -> Result<String> {
        Ok(run("docker", &["inspect", "-f", format, &container.id])?
            .trim()
            .to_owned())
    }

    /// Waits until every running container with a healthcheck reports healthy.
    pub fn wait_healthy(&self, limit: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let ids = self.compose(&["ps", "-q"])?;
            let mut waiting = Vec::new();
            for id in ids.split_whitespace() {
                let container = Container {
                    id: id.to_owned(),
                    name: String::new(),
                };
                let state = self.inspect(
                    &container,
                    "{{.Name}} {{.State.Status}} {{.State.ExitCode}} \
                     {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                )?;
                let fields: Vec<&str> = state.split_whitespace().collect();
                let done = match fields[..] {
                    // One-shot steps (the migrations) have no healthcheck; they end with 0.
                    [_, "exited", "0", "none"] => true,
                    [_, "running", _, "healthy" | "none"] => true,
                    _ => false,
                };
                if !done {
                    waiting.push(state);
                }
            }
            if waiting.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("not healthy after {limit:?}: {}", waiting.join(", "));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    pub fn kill(&self, container: &Container) -> Result<()> {
        run("docker", &["kill", &container.id]).map(drop)
    }

    /// The container's whole log (stdout and stderr).
    pub fn logs(&self, container: &Container) -> Result<String> {
        let output = Command::new("docker")
            .args(["logs", &container.id])
            .output()
            .context("docker logs")?;
        ensure!(output.status.success(), "docker logs {}", container.name);
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok(text)
    }

    pub fn exit_code(&self, container: &Container) -> Result<String> {
        self.inspect(container, "{{.State.Status}} {{.State.ExitCode}}")
    }

    /// Runs `sql` as root on the primary, inside its container (no database port is published);
    /// returns the rows, tab-separated.
    pub fn sql(&self, sql: &str) -> Result<String> {
        self.sql_on("mysql-primary", sql)
    }

    /// Runs `sql` (one statement or a script) as root on `service` (`mysql-primary` or
    /// `mysql-replica`). It goes on standard input: a script may be longer than a command line.
    pub fn sql_on(&self, service: &str, sql: &str) -> Result<String> {
        let password = format!("-p{}", self.root_password);
        let container = self
            .containers(service)?
            .pop()
            .with_context(|| format!("{service}'s container"))?;
        // docker itself: docker-compose 1.29's exec does not pass a long standard input through.
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &container.id,
                "mariadb",
                "-uroot",
                &password,
                "-N",
                "-B",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("docker exec")?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let mut script = sql.to_owned();
        if !script.trim_end().ends_with(';') {
            script.push(';');
        }
        // Written from its own thread: the output is read meanwhile, so neither pipe fills up.
        let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let output = child.wait_with_output()?;
        ensure!(
            output.status.success(),
            "sql on {service}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the script's writer panicked"))??;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The container's main process as the host sees it (0 when it is not running).
    pub fn main_pid(&self, container: &Container) -> Result<u32> {
        Ok(self.inspect(container, "{{.State.Pid}}")?.parse()?)
    }

    /// Every process of the container, as host process ids.
    pub fn processes(&self, container: &Container) -> Result<Vec<u32>> {
        let listing = run("docker", &["top", &container.id, "-eo", "pid"])?;
        Ok(listing
            .lines()
            .skip(1)
            .filter_map(|line| line.trim().parse().ok())
            .collect())
    }

    /// The running containers of the project, by name.
    pub fn running(&self) -> Result<Vec<Container>> {
        let ids = self.compose(&["ps", "-q"])?;
        let mut containers = Vec::new();
        for id in ids.split_whitespace() {
            let container = Container {
                id: id.to_owned(),
                name: String::new(),
            };
            let state = self.inspect(&container, "{{.Name}} {{.State.Running}}")?;
            if let Some(name) = state.strip_suffix(" true") {
                containers.push(Container {
                    name: name.trim_start_matches('/').to_owned(),
                    ..container
                });
            }
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    pub fn docker(&self, args: &[&str]) -> Result<String> {
        run("docker", args)
    }
}
