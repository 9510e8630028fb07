//! A debuginfod client: debug files (and executables) fetched by build id from the servers
//! a distribution or a build farm runs, with the conventions of elfutils' client and gdb, so
//! that one setting serves all of them:
//!
//! - `DEBUGINFOD_URLS`: the servers, space-separated, asked in order; unset or empty, no
//!   server is asked (the cache is still read);
//! - `DEBUGINFOD_CACHE_PATH`: the cache, by default `$XDG_CACHE_HOME/debuginfod_client`, else
//!   `$HOME/.cache/debuginfod_client`; laid out as elfutils lays it out,
//!   `<cache>/<build-id hex>/debuginfo` and `…/executable`, so a file gdb fetched is used here
//!   and the other way round;
//! - `DEBUGINFOD_TIMEOUT`: seconds a server has to connect and start answering (default 90,
//!   elfutils' too); `DEBUGINFOD_MAXTIME`: seconds a whole download may take (elfutils has no
//!   limit by default; here 600, so that no read waits for ever).
//!
//! The request is `GET <url>/buildid/<hex>/debuginfo` (or `/executable`). The HTTP client is
//! this crate's `debuginfod` feature (on by default; the `tasktrace` crate's in-process
//! snapshot leaves it off): without it the cache is read and no server is asked.
//!
//! Invariants:
//! - **The cache holds whole, checked files only.** A download goes to a temporary file in
//!   the entry's directory, is checked by the caller (an ELF with the build id asked for), and
//!   only then renamed to its place: a rename within a directory is atomic, so a reader never
//!   sees half a file, and an interrupted or failed download leaves no file behind (the
//!   temporary one is removed on every path, and is never at a name that is looked up). An
//!   empty file in the cache (elfutils' mark of a server's "not found") is not a hit.
//! - **Every request has a deadline**: `DEBUGINFOD_TIMEOUT` for connecting and the answer's
//!   first byte, `DEBUGINFOD_MAXTIME` for the whole download. A server past either is
//!   recorded as timed out and the next one asked.
//! - A server's every answer is recorded ([`Looked`]) for the missing-debuginfo error.

use crate::debugfile::hex;
use crate::error::{Looked, ServerAnswer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seconds a server has to connect and start answering, by default (elfutils' default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// Seconds a whole download may take, by default.
const DEFAULT_MAXTIME: Duration = Duration::from_secs(600);

/// What is fetched for a build id: its path segment on a server and its file name in the
/// cache are the same word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// The separate debug file (`objcopy --only-keep-debug` output).
    Debuginfo,
    /// The executable itself (for a core file whose executable is not at hand).
    Executable,
}

impl Artifact {
    fn word(self) -> &'static str {
        match self {
            Artifact::Debuginfo => "debuginfo",
            Artifact::Executable => "executable",
        }
    }
}

/// The servers and cache of this process's environment.
#[derive(Clone, Debug)]
pub struct Client {
    /// Base URLs, in the order asked, without a trailing `/`.
    pub urls: Vec<String>,
    /// The cache's root directory.
    pub cache: PathBuf,
    /// Deadline for connecting and the first byte of an answer.
    pub timeout: Duration,
    /// Deadline for a whole download.
    pub maxtime: Duration,
}

impl Client {
    /// The client the environment describes (see the module doc).
    pub fn from_env() -> Client {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let seconds = |name: &str, default: Duration| {
            var(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(default, Duration::from_secs_f64)
        };
        let urls = var("DEBUGINFOD_URLS")
            .unwrap_or_default()
            .split_whitespace()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        let cache = var("DEBUGINFOD_CACHE_PATH")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| Path::new(&d).join("debuginfod_client")))
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache/debuginfod_client")))
            .unwrap_or_else(|| PathBuf::from(".cache/debuginfod_client"));
        Client {
            urls,
            cache,
            timeout: seconds("DEBUGINFOD_TIMEOUT", DEFAULT_TIMEOUT),
            maxtime: seconds("DEBUGINFOD_MAXTIME", DEFAULT_MAXTIME),
        }
    }

    /// Where the cache keeps `artifact` of build id `id`.
    pub fn cached(&self, id: &[u8], artifact: Artifact) -> PathBuf {
        self.cache.join(hex(id)).join(artifact.word())
    }

    /// The file of `artifact` for build id `id`: from the cache, else from the first server
    /// that has one `accept` takes (it checks the bytes: an ELF, the right build id, …; its
    /// `Err` says why not). Each place asked is added to `looked`. The file returned is in
    /// the cache.
    pub fn find(
        &self,
        id: &[u8],
        artifact: Artifact,
        accept: &dyn Fn(&Path) -> Result<(), String>,
        looked: &mut Vec<Looked>,
    ) -> Option<PathBuf> {
        let cached = self.cached(id, artifact);
        // An empty file is elfutils' "the servers did not have it", not a file.
        if std::fs::metadata(&cached).is_ok_and(|m| m.len() > 0) {
            match accept(&cached) {
                Ok(()) => return Some(cached),
                Err(why) => looked.push(Looked::unfit(&cached, why)),
            }
        } else {
            looked.push(Looked::missing(&cached));
        }
        for base in &self.urls {
            let url = format!("{base}/buildid/{}/{}", hex(id), artifact.word());
            let answer = match self.download(&url, &cached, accept) {
                Ok(()) => return Some(cached),
                Err(answer) => answer,
            };
            looked.push(Looked::Server { url, answer });
        }
        None
    }

    /// Downloads `url` into `dest` (through a temporary file beside it, checked by `accept`).
    fn download(
        &self,
        url: &str,
        dest: &Path,
        accept: &dyn Fn(&Path) -> Result<(), String>,
    ) -> Result<(), ServerAnswer> {
        #[cfg(feature = "debuginfod")]
        return fetch::download(self, url, dest, accept);
        #[cfg(not(feature = "debuginfod"))]
        {
            let _ = (url, dest, accept);
            Err(ServerAnswer::Failed(
                "this build has no debuginfod client (tasktrace-inspect's `debuginfod` feature)"
                    .into(),
            ))
        }
    }
}

/// The HTTP side: requests with deadlines, downloads into the cache through a temporary
/// file.
#[cfg(feature = "debuginfod")]
mod fetch {
    use super::Client;
    use crate::error::ServerAnswer;
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// Downloads at least this large get progress lines on stderr (on a slow link a megabyte
    /// takes seconds; a service's debug file is tens or hundreds of them).
    const LARGE: u64 = 1 << 20;
    /// How often a large download says how far it is.
    const PROGRESS_EVERY: Duration = Duration::from_secs(2);

    /// Downloads `url` into `dest` (through a temporary file beside it, checked by `accept`).
    pub(super) fn download(
        client: &Client,
        url: &str,
        dest: &Path,
        accept: &dyn Fn(&Path) -> Result<(), String>,
    ) -> Result<(), ServerAnswer> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(client.timeout))
            .timeout_recv_response(Some(client.timeout))
            .timeout_global(Some(client.maxtime))
            .user_agent(concat!("tasktrace/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut response = agent.get(url).call().map_err(|e| failure(client, &e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ServerAnswer::Status(status));
        }
        let size = response.body().content_length();
        let dir = dest.parent().expect("a cache entry has a directory");
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerAnswer::Cache(format!("cannot create {}: {e}", dir.display())))?;
        let mut partial = PartialFile::create(dest)?;
        let mut body = response.body_mut().as_reader();
        let mut progress = Progress::new(url, size);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_failure(client, e)),
            };
            partial.write(&buf[..n])?;
            progress.advance(n as u64);
        }
        progress.done();
        partial.finish()?;
        accept(&partial.path).map_err(ServerAnswer::Unfit)?;
        partial.rename_to(dest)
    }

    /// A failed request, with the deadlines named when one of them passed.
    fn failure(client: &Client, e: &ureq::Error) -> ServerAnswer {
        match e {
            ureq::Error::Timeout(_) => timed_out(client),
            other => ServerAnswer::Failed(other.to_string()),
        }
    }

    /// A failed read of an answer's body (ureq's error inside an `io::Error`).
    fn read_failure(client: &Client, e: std::io::Error) -> ServerAnswer {
        if e.kind() == std::io::ErrorKind::TimedOut {
            return timed_out(client);
        }
        match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
            Some(inner) => failure(client, inner),
            None => ServerAnswer::Failed(e.to_string()),
        }
    }

    fn timed_out(client: &Client) -> ServerAnswer {
        ServerAnswer::TimedOut {
            start: client.timeout,
            whole: client.maxtime,
        }
    }

    /// A download's temporary file: removed when dropped unless renamed to its place.
    pub(super) struct PartialFile {
        pub(super) path: PathBuf,
        file: Option<std::fs::File>,
        kept: bool,
    }

    impl PartialFile {
        /// A new file beside `dest`, at a name no reader looks up (and no other writer uses).
        pub(super) fn create(dest: &Path) -> Result<PartialFile, ServerAnswer> {
            use std::sync::atomic::{AtomicU32, Ordering};
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                ".{}.tasktrace-{}-{}.part",
                dest.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let path = dest.with_file_name(name);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| {
                    ServerAnswer::Cache(format!("cannot create {}: {e}", path.display()))
                })?;
            Ok(PartialFile {
                path,
                file: Some(file),
                kept: false,
            })
        }

        pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), ServerAnswer> {
            let file = self.file.as_mut().expect("written before finish");
            file.write_all(bytes).map_err(|e| self.cache_error(e))
        }

        /// Flushed to disk and closed: what is renamed is the whole file.
        pub(super) fn finish(&mut self) -> Result<(), ServerAnswer> {
            if let Some(file) = self.file.take() {
                file.sync_all().map_err(|e| self.cache_error(e))?;
            }
            Ok(())
        }

        pub(super) fn rename_to(mut self, dest: &Path) -> Result<(), ServerAnswer> {
            std::fs::rename(&self.path, dest).map_err(|e| self.cache_error(e))?;
            self.kept = true;
            Ok(())
        }

        fn cache_error(&self, e: std::io::Error) -> ServerAnswer {
            ServerAnswer::Cache(format!("cannot write {}: {e}", self.path.display()))
        }
    }

    impl Drop for PartialFile {
        fn drop(&mut self) {
            if !self.kept {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    /// Progress lines on stderr for a large download (or one of unknown size that grows large).
    struct Progress<'a> {
        url: &'a str,
        size: Option<u64>,
        got: u64,
        started: Instant,
        said: Option<Instant>,
    }

    impl<'a> Progress<'a> {
        fn new(url: &'a str, size: Option<u64>) -> Self {
            Progress {
                url,
                size,
                got: 0,
                started: Instant::now(),
                said: None,
            }
        }

        fn advance(&mut self, n: u64) {
            self.got += n;
            let large = self.size.unwrap_or(self.got) >= LARGE;
            let due = self.said.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
            if large && due {
                let of = self
                    .size
                    .map(|s| format!(" of {:.1}", mb(s)))
                    .unwrap_or_default();
                eprintln!(
                    "tasktrace: downloading {}: {:.1}{of} MB",
                    self.url,
                    mb(self.got)
                );
                self.said = Some(Instant::now());
            }
        }

        fn done(&self) {
            if self.said.is_some() {
                eprintln!(
                    "tasktrace: downloaded {} ({:.1} MB in {:.1}s)",
                    self.url,
                    mb(self.got),
                    self.started.elapsed().as_secs_f64()
                );
            }
        }
    }

    fn mb(bytes: u64) -> f64 {
        bytes as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_laid_out_as_elfutils_lays_it_out() {
        let c = Client {
            urls: vec![],
            cache: PathBuf::from("/c"),
            timeout: DEFAULT_TIMEOUT,
            maxtime: DEFAULT_MAXTIME,
        };
        assert_eq!(
            c.cached(&[0xab, 0x01], Artifact::Debuginfo),
            Path::new("/c/ab01/debuginfo")
        );
        assert_eq!(
            c.cached(&[0xab, 0x01], Artifact::Executable),
            Path::new("/c/ab01/executable")
        );
    }

    #[cfg(feature = "debuginfod")]
    #[test]
    fn a_partial_file_is_removed_unless_renamed() {
        use super::fetch::PartialFile;
        let dir = std::env::temp_dir().join(format!("tasktrace-partial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("debuginfo");
        let mut p = PartialFile::create(&dest).unwrap();
        p.write(b"half").unwrap();
        let tmp = p.path.clone();
        drop(p);
        assert!(!tmp.exists() && !dest.exists());
        let mut p = PartialFile::create(&dest).unwrap();
        p.write(b"whole").unwrap();
        p.finish().unwrap();
        p.rename_to(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
