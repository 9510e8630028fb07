//! A `tracing` fmt subscriber whose output the tests read: the watchdog's events. The
//! watchdog's unit tests use it as a module, the integration tests include this file by path.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Logs::wait_for`] waits for an event.
const DEADLINE: Duration = Duration::from_secs(30);

/// Everything a `tracing` fmt subscriber writes.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// What was written so far, taken (the next call returns only what comes after).
    pub fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }

    /// A subscriber writing here, made the default of this thread while the guard lives.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .without_time()
            .finish()
            .set_default()
    }

    /// Waits until the logs hold an event line that `want` accepts; returns it.
    pub fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let text = self.text();
            if let Some(event) = events(&text).into_iter().find(|e| want(e)) {
                return event;
            }
            assert!(
                Instant::now() < until,
                "no such event within {DEADLINE:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The events in fmt output (an event's message may span lines; each starts with its level).
pub fn events(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("WARN") || out.is_empty() {
            out.push(line.to_owned());
        } else {
            let last = out.last_mut().unwrap();
            last.push('\n');
            last.push_str(line);
        }
    }
    out
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
