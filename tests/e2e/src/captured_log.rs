//! What the components of a test's process log: kept for the test to read (a writer for a
//! tracing subscriber that appends to one shared buffer), and their warnings in the test's output.

#![allow(clippy::unwrap_used)] // test support: a poisoned buffer fails the test loudly

use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLog {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl CapturedLog {
    /// Captures, as plain text, what is logged at `level` and above on this thread until the
    /// guard is dropped: a `#[tokio::test]` runtime runs on its thread, and the system under
    /// test's tasks with it.
    pub fn on_this_thread(level: tracing::Level) -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Sends what every part of the system under test logs at warning level and above to the
/// process's standard error, which the test runner shows only for a test that failed: what a
/// service saw (a call it gave up on, a lease it took back) is then on record beside the failed
/// assertion. `XINTU_TEST_LOG` sets another filter (`info`, `photo_svc=debug`). A test that
/// installed its own subscriber first keeps it.
pub fn warnings_to_test_output() {
    let filter = std::env::var("XINTU_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only when a subscriber is already set, which is then the one to keep.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
