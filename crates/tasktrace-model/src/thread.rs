//! The OS threads of a program, as an out-of-process reader sees them: runtime workers, the
//! threads blocked in `block_on` with their root future, blocking-pool threads.

use crate::{Location, Trace};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a thread does for the async runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadRole {
    /// A worker of a multi-thread runtime (it polls tasks).
    Worker,
    /// A thread inside `block_on` (e.g. `#[tokio::main]`'s), driving one root future; on a
    /// current-thread runtime it also polls that runtime's tasks.
    BlockOn,
    /// A blocking-pool thread (`spawn_blocking`, or idle in the pool).
    Blocking,
    /// Not a runtime thread.
    #[default]
    Other,
}

/// One thread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// Kernel thread id.
    pub tid: u64,
    /// Its name (`/proc/PID/task/TID/comm`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it does.
    pub role: ThreadRole,
    /// Which runtime it belongs to: 1-based, in the order the producer found them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<u32>,
    /// The runtime's scheduler: `"multi_thread"` or `"current_thread"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// Worker index within its runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u32>,
    /// Tasks waiting in its local run queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_queue: Option<u64>,
    /// The task it is polling (or, on a blocking thread, the blocking task it runs) now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u64>,
    /// The root future of a `block_on` thread; empty otherwise.
    #[serde(default, skip_serializing_if = "Trace::is_empty")]
    pub trace: Trace,
    /// Its native stack, innermost first, when it was inside a poll and the producer could
    /// unwind it: per physical frame, the functions inlined at its pc (innermost first, each
    /// [`NativeFrame::inlined`]) and then the physical function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub native_stack: Vec<NativeFrame>,
    /// Anything else worth a glance (why the root future is missing, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The system call it was inside when it was stopped (a live process's, or a core's
    /// taken of stopped threads), when the producer knows; `None` when it was running its own
    /// code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<Syscall>,
    /// Its scheduler's tick (a worker's, or a current-thread runtime's): the count of its
    /// run loop's turns, one per task it takes from its queues. Unchanged between two reads
    /// while the thread runs the same task: it was inside one poll all along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_tick: Option<u64>,
}

/// A system call a thread was inside.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Syscall {
    /// Its number (the platform's: x86-64 Linux).
    pub number: u64,
    /// Its name, when the producer knows it (`clock_nanosleep`, `futex`, `read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl fmt::Display for Syscall {
    /// `system call clock_nanosleep`, or `system call 230` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "system call {name}"),
            None => write!(f, "system call {}", self.number),
        }
    }
}

/// One function of a native stack: a physical frame, or a function inlined into one (then it
/// shares the pc of the physical frame it is listed above).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "NativeFrameRepr")]
pub struct NativeFrame {
    /// The instruction pointer of the physical frame (for a caller: its return address).
    pub pc: u64,
    /// The function, demangled without its hash; `None` when nothing names the pc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Where in the source the pc (a caller's: its call) is, from the module's DWARF line
    /// table; `None` without DWARF (e.g. libc): then the name is the symbol table's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// True for a function inlined into the physical frame below it in the list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
    /// True for a function whose frame is gone because it tail-called (jumped to) the
    /// function listed before it: put back from the call instruction of the frame after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tail_call: bool,
    /// The file name of the module the pc is in (`libc.so.6`), for a frame its module has no
    /// DWARF for (named from the symbol table, or not at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// What a native frame deserializes from: the object form, or the `"0x… symbol"` string
/// older producers wrote.
#[derive(Deserialize)]
#[serde(untagged)]
enum NativeFrameRepr {
    Old(String),
    New {
        pc: u64,
        #[serde(default)]
        function: Option<String>,
        #[serde(default)]
        location: Option<Location>,
        #[serde(default)]
        inlined: bool,
        #[serde(default)]
        tail_call: bool,
        #[serde(default)]
        module: Option<String>,
    },
}

impl From<NativeFrameRepr> for NativeFrame {
    fn from(r: NativeFrameRepr) -> Self {
        match r {
            NativeFrameRepr::Old(s) => {
                let (pc, name) = s.split_once(' ').unwrap_or((s.as_str(), ""));
                NativeFrame {
                    pc: u64::from_str_radix(pc.trim_start_matches("0x"), 16).unwrap_or(0),
                    function: (!name.is_empty()).then(|| name.to_string()),
                    location: None,
                    inlined: false,
                    tail_call: false,
                    module: None,
                }
            }
            NativeFrameRepr::New {
                pc,
                function,
                location,
                inlined,
                tail_call,
                module,
            } => NativeFrame {
                pc,
                function,
                location,
                inlined,
                tail_call,
                module,
            },
        }
    }
}

impl fmt::Display for NativeFrame {
    /// `0x55d0c0a01234 app::spin at src/main.rs:12`; an inlined function says so; a frame
    /// without DWARF names its module: `0x7f… clock_nanosleep in libc.so.6`, `0x7f… ?? in
    /// libc.so.6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.pc)?;
        if self.inlined {
            f.write_str(" [inlined]")?;
        }
        if self.tail_call {
            f.write_str(" [tail call]")?;
        }
        match (&self.function, &self.module) {
            (Some(name), _) => write!(f, " {name}")?,
            (None, Some(_)) => f.write_str(" ??")?,
            (None, None) => {}
        }
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        if let Some(module) = &self.module {
            write!(f, " in {module}")?;
        }
        Ok(())
    }
}

impl ThreadInfo {
    /// A thread with this id and role, nothing else known.
    pub fn new(tid: u64, role: ThreadRole) -> Self {
        ThreadInfo {
            tid,
            role,
            ..ThreadInfo::default()
        }
    }

    /// The header line of this thread in text dumps.
    pub fn header(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ThreadInfo {
    /// `thread 1234 "tokio-rt-worker" — worker 0 of runtime 1 (multi_thread), local queue 0,
    /// polling task 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "thread {}", self.tid)?;
        if let Some(name) = &self.name {
            write!(f, " \"{name}\"")?;
        }
        f.write_str(" — ")?;
        match self.role {
            ThreadRole::Worker => match self.worker {
                Some(i) => write!(f, "worker {i}")?,
                None => f.write_str("worker")?,
            },
            ThreadRole::BlockOn => f.write_str("block_on")?,
            ThreadRole::Blocking => f.write_str("blocking pool")?,
            ThreadRole::Other => f.write_str("not a runtime thread")?,
        }
        if let Some(rt) = self.runtime {
            write!(f, " of runtime {rt}")?;
            if let Some(s) = &self.scheduler {
                write!(f, " ({s})")?;
            }
        }
        if let Some(n) = self.local_queue {
            write!(f, ", local queue {n}")?;
        }
        match (self.task, self.role) {
            (Some(id), ThreadRole::Blocking) => write!(f, ", running blocking task {id}")?,
            (Some(id), _) => write!(f, ", polling task {id}")?,
            (None, ThreadRole::Worker) => f.write_str(", idle")?,
            _ => {}
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_frames_read_both_json_forms() {
        let f: Vec<NativeFrame> = serde_json::from_str(
            r#"["0x10 std::thread::sleep", "0x20",
                {"pc": 48, "function": "a::f", "location": {"file": "src/a.rs", "line": 3}, "inlined": true}]"#,
        )
        .unwrap();
        assert_eq!(f[0].pc, 0x10);
        assert_eq!(f[0].function.as_deref(), Some("std::thread::sleep"));
        assert_eq!(f[1].function, None);
        assert!(f[2].inlined);
        assert_eq!(f[2].to_string(), "0x30 [inlined] a::f at src/a.rs:3");
        let back: Vec<NativeFrame> =
            serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn frames_without_dwarf_name_their_module() {
        let f: Vec<NativeFrame> = serde_json::from_str(
            r#"[{"pc": 16, "function": "clock_nanosleep", "module": "libc.so.6"},
                {"pc": 32, "module": "libc.so.6"}]"#,
        )
        .unwrap();
        assert_eq!(f[0].to_string(), "0x10 clock_nanosleep in libc.so.6");
        assert_eq!(f[1].to_string(), "0x20 ?? in libc.so.6");
        let back: Vec<NativeFrame> =
            serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
