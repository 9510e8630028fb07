//! What a frame waits on, as facts: a [`Wait`] says the kind of thing waited on ([`WaitOn`])
//! and what is known of it (the task awaited, who holds a lock, a timer's deadline, a pool's
//! use, a socket's addresses).
//!
//! Both producers fill these and nothing else says a wait: the in-process capture derives
//! them from the hidden frames under the last visible one ([`crate::clean`]), the
//! out-of-process reader from the leaf futures it reads, refined by the same classification
//! in the default view. The words are written here, once, so a `tokio::sync::Mutex` reads
//! `waiting on Mutex lock` whichever way the trace was taken; task ids stay ids until
//! rendered, so a reader that renumbers tasks maps them without touching text.

use crate::{task_label, Location};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};

/// The kind of thing a frame waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitOn {
    /// A timer (`tokio::time::Sleep`, a timeout's deadline).
    Timer,
    /// Another task (a `JoinHandle`).
    Task,
    /// The next of a `JoinSet`'s tasks.
    JoinSet,
    /// A `tokio::sync::Mutex`.
    Mutex,
    /// A `tokio::sync::RwLock`, to read.
    RwLockRead,
    /// A `tokio::sync::RwLock`, to write.
    RwLockWrite,
    /// A `tokio::sync::Semaphore` permit.
    Semaphore,
    /// A permit of tokio's batch semaphore whose user (mutex, rwlock, semaphore, channel) is
    /// not known: the out-of-process reader's leaf before the default view classifies it.
    Acquire,
    /// A message on an mpsc channel.
    MpscReceive,
    /// Room on a bounded mpsc channel.
    MpscSend,
    /// A oneshot channel's value.
    OneshotReceive,
    /// A message on a broadcast channel.
    BroadcastReceive,
    /// Room on a broadcast channel.
    BroadcastSend,
    /// A change of a watch channel's value.
    WatchChange,
    /// A `tokio::sync::Notify`.
    Notify,
    /// A socket to connect.
    SocketConnect,
    /// A listener's next connection.
    SocketAccept,
    /// Bytes to read from a socket.
    SocketRead,
    /// Room to write to a socket.
    SocketWrite,
    /// I/O readiness of a resource whose operation is not known.
    Io,
    /// A connection from a pool (sqlx, deadpool, bb8): [`Wait::pool`] says which and how used.
    PoolConnection,
    /// An HTTP client's response (hyper's dispatch channel).
    HttpResponse,
    /// An HTTP body's next frame.
    HttpBody,
    /// A `tower::buffer::Buffer`'s worker task.
    BufferWorker,
    /// A closure given to `poll_fn` ([`Wait::at`] is where it is).
    Closure,
    /// A library future the reader has no words for ([`Wait::function`] names it).
    In,
}

impl WaitOn {
    /// Every kind, in declaration order (the JSON schema's table is tested against it).
    pub const ALL: [WaitOn; 26] = [
        WaitOn::Timer,
        WaitOn::Task,
        WaitOn::JoinSet,
        WaitOn::Mutex,
        WaitOn::RwLockRead,
        WaitOn::RwLockWrite,
        WaitOn::Semaphore,
        WaitOn::Acquire,
        WaitOn::MpscReceive,
        WaitOn::MpscSend,
        WaitOn::OneshotReceive,
        WaitOn::BroadcastReceive,
        WaitOn::BroadcastSend,
        WaitOn::WatchChange,
        WaitOn::Notify,
        WaitOn::SocketConnect,
        WaitOn::SocketAccept,
        WaitOn::SocketRead,
        WaitOn::SocketWrite,
        WaitOn::Io,
        WaitOn::PoolConnection,
        WaitOn::HttpResponse,
        WaitOn::HttpBody,
        WaitOn::BufferWorker,
        WaitOn::Closure,
        WaitOn::In,
    ];

    /// The words of a wait of this kind with nothing more known: `waiting on Mutex lock`.
    pub fn phrase(self) -> &'static str {
        match self {
            WaitOn::Timer => "waiting on timer",
            WaitOn::Task => "waiting on a task",
            WaitOn::JoinSet => "waiting on JoinSet",
            WaitOn::Mutex => "waiting on Mutex lock",
            WaitOn::RwLockRead => "waiting on RwLock read",
            WaitOn::RwLockWrite => "waiting on RwLock write",
            WaitOn::Semaphore => "waiting on semaphore acquire",
            WaitOn::Acquire => "waiting on semaphore/mutex acquire",
            WaitOn::MpscReceive => "waiting on mpsc receive",
            WaitOn::MpscSend => "waiting on mpsc send",
            WaitOn::OneshotReceive => "waiting on oneshot receive",
            WaitOn::BroadcastReceive => "waiting on broadcast receive",
            WaitOn::BroadcastSend => "waiting on broadcast send",
            WaitOn::WatchChange => "waiting on watch change",
            WaitOn::Notify => "waiting on Notify",
            WaitOn::SocketConnect => "waiting on socket connect",
            WaitOn::SocketAccept => "waiting on socket accept",
            WaitOn::SocketRead => "waiting on socket read",
            WaitOn::SocketWrite => "waiting on socket write",
            WaitOn::Io => "waiting on I/O readiness",
            WaitOn::PoolConnection => "waiting for a connection",
            WaitOn::HttpResponse => "waiting for the HTTP response",
            WaitOn::HttpBody => "waiting on the HTTP body",
            WaitOn::BufferWorker => "waiting on the tower Buffer's worker task",
            WaitOn::Closure => "waiting on closure",
            WaitOn::In => "waiting in a library future",
        }
    }

    /// The JSON name of this kind (`rwlock_read`).
    pub fn json_name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether this is a wait on a tokio lock or semaphore (one whose holders can be named).
    pub fn is_lock(self) -> bool {
        matches!(
            self,
            WaitOn::Mutex
                | WaitOn::RwLockRead
                | WaitOn::RwLockWrite
                | WaitOn::Semaphore
                | WaitOn::Acquire
        )
    }

    /// Whether this is a wait on a socket operation.
    pub fn is_socket(self) -> bool {
        matches!(
            self,
            WaitOn::SocketConnect | WaitOn::SocketAccept | WaitOn::SocketRead | WaitOn::SocketWrite
        )
    }
}

/// A timer's deadline as the reader saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// Due in this many milliseconds.
    LeftMs(u64),
    /// Due this many milliseconds ago (it has not fired, or its task has not run since).
    PassedMs(u64),
    /// Due at this `CLOCK_MONOTONIC` time, in milliseconds (a core file has no clock).
    AtMs(u64),
}

/// Who holds what a frame waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// A task (by the dump's id).
    Task(u64),
    /// The `block_on` root future of this thread (by its thread id).
    Thread(u64),
}

/// A pool's connections, as a waiter sees them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolUse {
    /// Which library's pool (`sqlx`, `deadpool`, `bb8`).
    pub library: String,
    /// Connections held now.
    pub in_use: u64,
    /// The pool's maximum size.
    pub size: u64,
}

/// A socket a frame waits on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Socket {
    /// Its file descriptor in the traced process.
    pub fd: i32,
    /// Its local address (a listener's: the address it listens on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Its peer's address (none for a listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// A Unix socket's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<String>,
}

impl fmt::Display for Socket {
    /// `fd 9: 127.0.0.1:3000 to 127.0.0.1:51234`, `fd 7: listening on 0.0.0.0:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fd {}", self.fd)?;
        match (&self.local, &self.peer, &self.unix) {
            (Some(l), Some(p), _) => write!(f, ": {l} to {p}"),
            (Some(l), None, _) => write!(f, ": listening on {l}"),
            (None, _, Some(u)) if !u.is_empty() => write!(f, ": unix {u}"),
            _ => Ok(()),
        }
    }
}

/// What a frame waits on ([`crate::Frame::waits`]). Rendered by `Display`, the only place
/// its words are written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Wait {
    /// The kind of thing waited on.
    pub on: WaitOn,
    /// The task awaited: the one a `JoinHandle` is for, or the receiver that makes room on a
    /// full channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u64>,
    /// Who holds the lock, permits or connections waited for (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<Holder>,
    /// How many more hold it than [`held_by`](Self::held_by) lists.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_holders: u64,
    /// A timer's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<Timer>,
    /// A pool's connections in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolUse>,
    /// The socket waited on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<Socket>,
    /// What the program uses it for, when a library decoder knows (`request head timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The library future waited in ([`WaitOn::In`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Where the closure is ([`WaitOn::Closure`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Location>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many holders a wait lists before saying `and N more`.
pub const HOLDERS_SHOWN: usize = 5;

impl Wait {
    /// A wait on `on` with nothing more known.
    pub fn new(on: WaitOn) -> Self {
        Wait {
            on,
            task: None,
            held_by: Vec::new(),
            more_holders: 0,
            timer: None,
            pool: None,
            socket: None,
            purpose: None,
            function: None,
            at: None,
        }
    }

    /// A wait on the task `id`.
    pub fn task(id: u64) -> Self {
        Wait {
            task: Some(id),
            ..Wait::new(WaitOn::Task)
        }
    }

    /// A wait in the library future `function`.
    pub fn in_function(function: impl Into<String>) -> Self {
        Wait {
            function: Some(function.into()),
            ..Wait::new(WaitOn::In)
        }
    }

    /// Sets the holders: the first [`HOLDERS_SHOWN`] are listed, the rest counted.
    pub fn set_holders(&mut self, mut holders: Vec<Holder>) {
        let more = holders.len().saturating_sub(HOLDERS_SHOWN);
        holders.truncate(HOLDERS_SHOWN);
        self.held_by = holders;
        self.more_holders = more as u64;
    }

    /// Whether this wait names a task (the awaited task, a holder).
    pub fn names_tasks(&self) -> bool {
        self.task.is_some() || self.held_by.iter().any(|h| matches!(h, Holder::Task(_)))
    }

    /// Every task id this wait names (the awaited task, the holders), for a reader that
    /// renumbers tasks.
    pub fn task_ids_mut(&mut self) -> impl Iterator<Item = &mut u64> {
        self.task
            .iter_mut()
            .chain(self.held_by.iter_mut().filter_map(|h| match h {
                Holder::Task(id) => Some(id),
                Holder::Thread(_) => None,
            }))
    }

    /// The words without what changes from one read to the next (a timer's time left): what
    /// samples of a wait have in common.
    pub fn steady(&self) -> Wait {
        let mut w = self.clone();
        w.timer = None;
        w
    }

    fn write_holders(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.held_by.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match h {
                Holder::Task(id) => f.write_str(&task_label(*id))?,
                Holder::Thread(tid) => write!(f, "the block_on future of thread {tid}")?,
            }
        }
        if self.more_holders > 0 {
            write!(f, " and {} more", self.more_holders)?;
        }
        Ok(())
    }
}

/// Milliseconds as `{:.1}s`.
fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(purpose) = &self.purpose {
            write!(f, "{purpose}: ")?;
        }
        match self.on {
            WaitOn::Task => match self.task {
                Some(id) => write!(f, "waiting on {}", task_label(id))?,
                None => f.write_str(self.on.phrase())?,
            },
            WaitOn::MpscSend if self.task.is_some() => {
                let by = self.task.map(task_label).unwrap_or_default();
                write!(f, "waiting on mpsc send (channel full), received by {by}")?;
            }
            WaitOn::PoolConnection => {
                let library = self.pool.as_ref().map_or("", |p| p.library.as_str());
                write!(f, "waiting for a {library} connection")?;
                if let Some(p) = &self.pool {
                    write!(f, " ({} of {} in use: ", p.in_use, p.size)?;
                    if self.held_by.is_empty() {
                        // It holds every connection itself.
                        f.write_str("this task itself")?;
                    } else {
                        self.write_holders(f)?;
                    }
                    f.write_str(")")?;
                }
                return Ok(());
            }
            WaitOn::Closure => match &self.at {
                Some(at) => write!(f, "waiting on closure at {}:{}", at.file, at.line)?,
                None => f.write_str(self.on.phrase())?,
            },
            WaitOn::In => match &self.function {
                Some(function) => write!(f, "waiting in {function}")?,
                None => f.write_str(self.on.phrase())?,
            },
            on if on.is_socket() => {
                if let Some(s) = &self.socket {
                    let fd = s.fd;
                    let text = match (on, &s.peer, &s.local) {
                        (WaitOn::SocketRead, Some(p), _) => format!("waiting to read from {p}"),
                        (WaitOn::SocketWrite, Some(p), _) => format!("waiting to write to {p}"),
                        (WaitOn::SocketConnect, Some(p), _) => {
                            format!("waiting to connect to {p}")
                        }
                        (WaitOn::SocketAccept, None, Some(l)) => {
                            format!("waiting to accept on {l}")
                        }
                        _ => return write!(f, "{} ({s})", on.phrase()),
                    };
                    return write!(f, "{text} (fd {fd})");
                }
                f.write_str(on.phrase())?;
            }
            on => f.write_str(on.phrase())?,
        }
        match self.timer {
            Some(Timer::LeftMs(ms)) => write!(f, ", {} left", secs(ms))?,
            Some(Timer::PassedMs(ms)) => write!(f, ", deadline passed {} ago", secs(ms))?,
            Some(Timer::AtMs(ms)) => write!(f, ", deadline at {} (CLOCK_MONOTONIC)", secs(ms))?,
            None => {}
        }
        if !self.held_by.is_empty() {
            f.write_str(", held by ")?;
            self.write_holders(f)?;
        }
        if let Some(s) = &self.socket {
            if !self.on.is_socket() {
                write!(f, " ({s})")?;
            }
        }
        Ok(())
    }
}

/// Several waits as one phrase: `waiting on timer, Notify` (each after the first without its
/// `waiting on`).
pub fn join_waits(waits: &[Wait]) -> String {
    let mut out = String::new();
    for (i, w) in waits.iter().enumerate() {
        let text = w.to_string();
        if i == 0 {
            out.push_str(&text);
        } else {
            out.push_str(", ");
            out.push_str(text.strip_prefix("waiting on ").unwrap_or(&text));
        }
    }
    out
}

/// Appends the words of `waits` to `out`, after `sep` when `out` is not empty.
pub(crate) fn write_waits(out: &mut String, waits: &[Wait], sep: &str) {
    if waits.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str(sep);
    }
    let _ = write!(out, "{}", join_waits(waits));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_the_same_whoever_made_them() {
        let mut mutex = Wait::new(WaitOn::Mutex);
        mutex.set_holders(vec![Holder::Task(62)]);
        assert_eq!(mutex.to_string(), "waiting on Mutex lock, held by task 62");
        let mut many = Wait::new(WaitOn::RwLockWrite);
        many.set_holders(
            (1..=8)
                .map(Holder::Task)
                .chain([Holder::Thread(9)])
                .collect(),
        );
        assert_eq!(
            many.to_string(),
            "waiting on RwLock write, held by task 1, task 2, task 3, task 4, task 5 and 4 more"
        );
        let mut pool = Wait::new(WaitOn::PoolConnection);
        pool.pool = Some(PoolUse {
            library: "sqlx".into(),
            in_use: 1,
            size: 1,
        });
        pool.set_holders(vec![Holder::Task(7)]);
        assert_eq!(
            pool.to_string(),
            "waiting for a sqlx connection (1 of 1 in use: task 7)"
        );
        pool.held_by.clear();
        assert!(pool.to_string().ends_with("in use: this task itself)"));
        let mut timer = Wait::new(WaitOn::Timer);
        timer.timer = Some(Timer::LeftMs(3_240));
        timer.purpose = Some("request head timeout".into());
        assert_eq!(
            timer.to_string(),
            "request head timeout: waiting on timer, 3.2s left"
        );
        let mut read = Wait::new(WaitOn::SocketRead);
        read.socket = Some(Socket {
            fd: 9,
            local: Some("127.0.0.1:3000".into()),
            peer: Some("127.0.0.1:51234".into()),
            unix: None,
        });
        assert_eq!(
            read.to_string(),
            "waiting to read from 127.0.0.1:51234 (fd 9)"
        );
        let mut io = read.clone();
        io.on = WaitOn::Io;
        assert_eq!(
            io.to_string(),
            "waiting on I/O readiness (fd 9: 127.0.0.1:3000 to 127.0.0.1:51234)"
        );
        assert_eq!(
            Wait::task(crate::TOKIO_ID_BASE + 4).to_string(),
            "waiting on tokio task 4"
        );
        let mut send = Wait::new(WaitOn::MpscSend);
        send.task = Some(3);
        assert_eq!(
            send.to_string(),
            "waiting on mpsc send (channel full), received by task 3"
        );
        assert_eq!(
            join_waits(&[Wait::new(WaitOn::Timer), Wait::new(WaitOn::Notify)]),
            "waiting on timer, Notify"
        );
    }

    #[test]
    fn waits_round_trip_through_json() {
        let mut w = Wait::new(WaitOn::RwLockRead);
        w.set_holders(vec![Holder::Task(3), Holder::Thread(11)]);
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"on":"rw_lock_read","held_by":[{"task":3},{"thread":11}]}"#
        );
        assert_eq!(serde_json::from_str::<Wait>(&json).unwrap(), w);
        assert_eq!(
            WaitOn::ALL.len(),
            WaitOn::ALL
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
    }

    /// docs/json-schema.md lists every kind with its words: the table is this code's.
    #[test]
    fn the_schema_lists_every_wait_with_its_words() {
        let doc = include_str!("../../../docs/json-schema.md");
        for on in WaitOn::ALL {
            let row = format!("| `{}` | `{}` |", on.json_name(), on.phrase());
            assert!(
                doc.contains(&row),
                "docs/json-schema.md lacks the row {row}"
            );
        }
        let rows = doc
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains("| `waiting"))
            .count();
        assert_eq!(
            rows,
            WaitOn::ALL.len(),
            "docs/json-schema.md lists a wait kind the code lacks"
        );
    }
}
