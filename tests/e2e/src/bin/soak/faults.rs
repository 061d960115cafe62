//! The faults injected mid-run, at fixed fractions of it: a membership instance killed with
//! SIGKILL (and back through its restart policy), the replica's SQL thread stopped, Redis
//! restarted (it keeps nothing: every cached token and counter is gone), the primary frozen.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use e2e::compose::{Compose, Container};

use crate::record::Recorder;

/// One fault as it happened: from its injection until the system had what it lost back.
#[derive(Clone, Debug)]
pub struct Window {
    pub what: String,
    pub from: Duration,
    pub to: Duration,
}

/// When each fault starts (fraction of the run) and what it is.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillMembership,
    StopReplicaSql,
    RestartRedis,
    FreezePrimary,
}

const SCHEDULE: [(f64, Fault); 4] = [
    (0.15, Fault::KillMembership),
    (0.30, Fault::StopReplicaSql),
    (0.55, Fault::RestartRedis),
    (0.75, Fault::FreezePrimary),
];

/// The replica's SQL thread stays stopped for a tenth of the run, at most a minute.
fn replica_stop(run: Duration) -> Duration {
    (run / 10).min(Duration::from_secs(60))
}

const PRIMARY_FROZEN: Duration = Duration::from_secs(10);

/// Waits until `service` has a running container whose main process is not `old_pid`.
fn back_with_new_process(
    compose: &Compose,
    container: &Container,
    old_pid: u32,
    limit: Duration,
) -> Result<bool> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let pid = compose.main_pid(container)?;
        if pid != 0 && pid != old_pid {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(false)
}

fn kill_membership(compose: &Compose) -> Result<String> {
    let victim = compose
        .containers("membership")?
        .pop()
        .context("a membership instance")?;
    let pid = compose.main_pid(&victim)?;
    // SIGKILL to the process itself, as the kernel's OOM killer or `kill -9` would: Docker sees
    // a crash and its restart policy starts the container again.
    signal(compose, &victim, &[pid], "KILL")?;
    let how = if back_with_new_process(compose, &victim, pid, Duration::from_secs(10))? {
        "restarted by its restart policy"
    } else {
        compose.docker(&["start", &victim.id])?;
        if !back_with_new_process(compose, &victim, pid, Duration::from_secs(20))? {
            bail!("{} did not come back", victim.name);
        }
        "started again"
    };
    wait_until_healthy(compose, &victim, Duration::from_secs(60))?;
    Ok(format!("kill -9 {} (pid {pid}), {how}", victim.name))
}

fn wait_until_healthy(compose: &Compose, container: &Container, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let health = compose.docker(&[
            "inspect",
            "-f",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            &container.id,
        ])?;
        if matches!(health.trim(), "healthy" | "none") {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{} not healthy after {limit:?}: {health}", container.name);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Times `docker pause` is tried. The kernel's freezer can fail to stop every process of a busy
/// container at once (runc then thaws it and reports "unable to freeze"); a moment later it
/// usually succeeds.
const PAUSE_ATTEMPTS: u32 = 3;

/// How a container was frozen, so that it is thawed the same way.
enum Frozen {
    Paused,
    /// Every process stopped with SIGSTOP: what the freezer does, seen from the network (the
    /// server holds its connections and answers nothing), for when the cgroup v1 freezer keeps
    /// refusing, as it does for a server whose threads sit in uninterruptible disk waits.
    Stopped,
}

fn freeze(compose: &Compose, container: &Container) -> Result<Frozen> {
    for attempt in 1..=PAUSE_ATTEMPTS {
        match compose.docker(&["pause", &container.id]) {
            Ok(_) => return Ok(Frozen::Paused),
            Err(err) => println!(
                "    pausing {} failed (attempt {attempt} of {PAUSE_ATTEMPTS}): {err:#}",
                container.name
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("    stopping every process of {} instead", container.name);
    signal(compose, container, &compose.processes(container)?, "STOP")?;
    Ok(Frozen::Stopped)
}

fn thaw(compose: &Compose, container: &Container, frozen: Frozen) -> Result<()> {
    match frozen {
        Frozen::Paused => compose.docker(&["unpause", &container.id]).map(drop),
        Frozen::Stopped => signal(compose, container, &compose.processes(container)?, "CONT"),
    }
}

/// Sends `signal` to the container's processes `pids` (host process ids); without the right to
/// signal them from here (root's processes), Docker delivers it to the container's main process
/// (the server: the images exec it).
fn signal(compose: &Compose, container: &Container, pids: &[u32], signal: &str) -> Result<()> {
    let signalled = !pids.is_empty()
        && std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .args(pids.iter().map(u32::to_string))
            .status()
            .is_ok_and(|s| s.success());
    if !signalled {
        compose.docker(&["kill", "-s", signal, &container.id])?;
    }
    Ok(())
}

fn inject(compose: &Compose, fault: Fault, run: Duration) -> Result<String> {
    match fault {
        Fault::KillMembership => kill_membership(compose),
        Fault::StopReplicaSql => {
            let stopped = replica_stop(run);
            compose.sql_on("mysql-replica", "STOP SLAVE SQL_THREAD")?;
            std::thread::sleep(stopped);
            compose.sql_on("mysql-replica", "START SLAVE SQL_THREAD")?;
            Ok(format!("replica's SQL thread stopped for {stopped:.0?}"))
        }
        Fault::RestartRedis => {
            compose.compose(&["restart", "redis"])?;
            Ok("redis restarted (empty)".to_owned())
        }
        Fault::FreezePrimary => {
            let primary = compose
                .containers("mysql-primary")?
                .pop()
                .context("the primary")?;
            let frozen = freeze(compose, &primary)?;
            let how = match frozen {
                Frozen::Paused => "paused",
                Frozen::Stopped => "SIGSTOP",
            };
            std::thread::sleep(PRIMARY_FROZEN);
            thaw(compose, &primary, frozen)?;
            Ok(format!("primary frozen ({how}) for {PRIMARY_FROZEN:.0?}"))
        }
    }
}

/// Injects every fault of the schedule into a run of length `run` whose load began at
/// `load_started`; returns each fault's window, and the error that stopped it early. Blocking (docker commands and waits): run it on
/// a thread of its own.
pub fn inject_all(
    compose: &Compose,
    recorder: &Recorder,
    load_started: Duration,
    run: Duration,
) -> (Vec<Window>, Result<()>) {
    let mut windows = Vec::new();
    for (at, fault) in SCHEDULE {
        let due = load_started + run.mul_f64(at);
        std::thread::sleep(due.saturating_sub(recorder.elapsed()));
        let from = recorder.elapsed();
        match inject(compose, fault, run) {
            Ok(what) => {
                let to = recorder.elapsed();
                println!("  {from:>7.1?} … {to:>7.1?}  {what}");
                windows.push(Window { what, from, to });
            }
            Err(err) => return (windows, Err(err.context(format!("{fault:?}")))),
        }
    }
    (windows, Ok(()))
}
