//! A [`dump`](crate::dump()) on `SIGUSR1` (cargo feature `signal`, Unix only).
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! tasktrace::signal::dump_on_sigusr1()?;
//! // kill -USR1 <pid>: every task's trace on stderr, the program goes on.
//! # Ok(())
//! # }
//! ```
//!
//! The signal handler itself is tokio's (`tokio::signal::unix`): it only records the signal and
//! writes a byte to tokio's self-pipe, no allocation and no lock. Everything else — the dump,
//! rendering, writing — runs on an ordinary tokio task, then on the blocking pool for the write.
//! A dump needs a worker to run on: if every worker is blocked, it waits for one (tasks blocked
//! inside a poll are reported as running, with no trace).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::signal::unix::{signal, SignalKind};

/// The environment variable naming a file to append dumps to instead of writing them to
/// stderr. Read once, when [`dump_on_sigusr1`] is called.
pub const DUMP_FILE_ENV: &str = "TASKTRACE_DUMP_FILE";

/// True while a listener installed by [`dump_on_sigusr1`] runs.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// On every `SIGUSR1` from now on, takes a [`dump`](crate::dump()) of every registered task and
/// writes it as text ([`Format::Text`](crate::model::Format::Text)) to stderr — or appends it
/// to the file named by [`TASKTRACE_DUMP_FILE`](DUMP_FILE_ENV) when that variable is set —
/// without stopping the program. Each dump starts with a line
/// `tasktrace: dump on SIGUSR1 (pid N, 2026-12-07 04:12:33 UTC)` and ends with an empty line.
///
/// Call it inside a tokio runtime with I/O enabled (`#[tokio::main]`, or
/// `Builder::enable_all`); the listener is a task of that runtime and stops with it. A second
/// call while it runs does nothing. Once called, `SIGUSR1` no longer terminates the process,
/// even after the runtime is gone (tokio keeps its handler installed).
///
/// # Errors
///
/// Outside a tokio runtime, or in one whose I/O driver is disabled, or when the handler
/// cannot be installed.
///
/// ```
/// // Outside a runtime: an error, not a panic.
/// assert!(tasktrace::signal::dump_on_sigusr1().is_err());
/// ```
pub fn dump_on_sigusr1() -> io::Result<()> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        io::Error::other(
            "tasktrace::signal::dump_on_sigusr1 needs a tokio runtime: none is current",
        )
    })?;
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let reset = Installed;
    // tokio panics (rather than failing) when the runtime's I/O driver is disabled.
    let stream =
        std::panic::catch_unwind(|| signal(SignalKind::user_defined1())).unwrap_or_else(|_| {
            Err(io::Error::other(
                "tasktrace::signal::dump_on_sigusr1 needs a tokio runtime with I/O enabled \
                 (Builder::enable_io or enable_all)",
            ))
        });
    let mut stream = stream?;
    let file = std::env::var_os(DUMP_FILE_ENV).filter(|f| !f.is_empty());
    runtime.spawn(async move {
        let _reset = reset;
        while stream.recv().await.is_some() {
            let dump = crate::dump().await;
            let text = render(&dump);
            let file = file.clone();
            // File and terminal writes block: off the worker.
            let _ = tokio::task::spawn_blocking(move || write_out(file.as_deref(), &text)).await;
        }
    });
    Ok(())
}

/// Clears [`INSTALLED`] when the listener stops (or could not be installed).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        INSTALLED.store(false, Ordering::Release);
    }
}

fn render(dump: &crate::model::Dump) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "tasktrace: dump on SIGUSR1 (pid {}, {})\n{dump}\n",
        std::process::id(),
        utc(now)
    )
}

/// Seconds since the Unix epoch as a UTC date and time: `2026-12-07 04:12:33 UTC` (days to a
/// civil date by Howard Hinnant's algorithm: no time zone data, no dependency).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Appends `text` to `file`, or writes it to stderr (also when the file cannot be written).
fn write_out(file: Option<&std::ffi::OsStr>, text: &str) {
    if let Some(path) = file {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            // One write: concurrent appenders do not interleave inside a dump.
            .and_then(|mut f| f.write_all(text.as_bytes()));
        match written {
            Ok(()) => return,
            Err(e) => {
                let _ = writeln!(
                    io::stderr().lock(),
                    "tasktrace: cannot append the dump to {} ({e}); here instead:",
                    std::path::Path::new(path).display()
                );
            }
        }
    }
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_runtime_without_io_is_an_error_not_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(async { super::dump_on_sigusr1() }).unwrap_err();
        assert!(err.to_string().contains("I/O enabled"), "{err}");
        assert!(!super::INSTALLED.load(std::sync::atomic::Ordering::Acquire));
    }
}
