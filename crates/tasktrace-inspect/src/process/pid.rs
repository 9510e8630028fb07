//! A live process's ids: the one this reader attaches to, and the one the process has in its
//! own pid namespace (a container's init is pid 1 there), from `NSpid` in
//! `/proc/PID/status`. Notes and errors say both, so that the pid a container's logs or
//! `ps` inside it show is recognised.

use std::fmt;

/// A process's pid as this reader sees it and, when it differs, as its own pid namespace does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessIds {
    /// The pid in this reader's pid namespace.
    pub pid: i32,
    /// The pid in the process's innermost pid namespace, when that is not this reader's.
    pub in_namespace: Option<i32>,
}

impl ProcessIds {
    /// The ids of process `pid` (without its namespace pid when its status cannot be read).
    pub fn of(pid: i32) -> ProcessIds {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        ProcessIds::from_status(pid, &status)
    }

    /// The ids from the text of `/proc/PID/status`: its `NSpid` line lists the pid in each
    /// namespace from this reader's (the one `/proc` was mounted in) to the innermost.
    pub fn from_status(pid: i32, status: &str) -> ProcessIds {
        let innermost = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|ids| ids.split_whitespace().last())
            .and_then(|id| id.parse().ok());
        ProcessIds {
            pid,
            in_namespace: innermost.filter(|id| *id != pid),
        }
    }
}

impl fmt::Display for ProcessIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {}", self.pid)?;
        if let Some(own) = self.in_namespace {
            write!(f, " (pid {own} in its own pid namespace)")?;
        }
        Ok(())
    }
}

/// True if `pid` is gone or a zombie.
pub fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_none_or(|state| matches!(state, 'Z' | 'X' | 'x')),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_in_a_pid_namespace_is_named_by_both_pids() {
        let ids =
            ProcessIds::from_status(9204, "Name:\tserver\nNSpid:\t9204\t1\nNSpgid:\t9204\t1\n");
        assert_eq!(ids.in_namespace, Some(1));
        assert_eq!(
            ids.to_string(),
            "process 9204 (pid 1 in its own pid namespace)"
        );
        let host = ProcessIds::from_status(42, "NSpid:\t42\n");
        assert_eq!(host.to_string(), "process 42");
        assert_eq!(ProcessIds::from_status(42, "").to_string(), "process 42");
        let own = ProcessIds::of(std::process::id() as i32);
        assert_eq!(own.pid, std::process::id() as i32);
    }
}
