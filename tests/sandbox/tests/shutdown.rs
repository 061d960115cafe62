//! `sandbox serve` as a container's main process: Docker stops it with SIGTERM, and a PID 1
//! that does not handle SIGTERM ignores it (the kernel applies no default action to it), so the
//! stop waits out its grace period (10 s) and kills. Outside a container the same missing
//! handler shows as a death by the signal instead of an exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_exits_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--secapi-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Serving: its start-up line (the log goes to standard output) is written once the
    // listener and the keys are ready.
    let started = Instant::now();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert!(
        lines.any(|line| line.unwrap().contains("sandbox playing WeChat")),
        "the sandbox did not start"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let waited = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), None, "killed by the signal: {status:?}");
    assert!(status.success(), "{status:?}");
}
