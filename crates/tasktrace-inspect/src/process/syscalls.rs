//! The names of the system calls a thread blocks in (x86-64 Linux numbers, from libc's
//! constants): what a diagnosis of a blocked worker says it was doing.

/// The calls a thread is commonly seen blocked in, by number.
const NAMES: &[(libc::c_long, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_readv, "readv"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_openat, "openat"),
    (libc::SYS_poll, "poll"),
    (libc::SYS_ppoll, "ppoll"),
    (libc::SYS_select, "select"),
    (libc::SYS_pselect6, "pselect6"),
    (libc::SYS_epoll_wait, "epoll_wait"),
    (libc::SYS_epoll_pwait, "epoll_pwait"),
    (libc::SYS_nanosleep, "nanosleep"),
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_pause, "pause"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_accept, "accept"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvmsg, "recvmsg"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_waitid, "waitid"),
    (libc::SYS_flock, "flock"),
    (libc::SYS_fsync, "fsync"),
    (libc::SYS_fdatasync, "fdatasync"),
    // A call a ptrace stop interrupted, going on once resumed (a sleep, a futex wait with
    // a timeout): the diagnoses take it for the call it continues.
    (libc::SYS_restart_syscall, "restart_syscall"),
];

/// The system call `number` as the model keeps it: with its name when it is a common one.
pub fn syscall(number: u64) -> tasktrace_model::Syscall {
    tasktrace_model::Syscall {
        number,
        name: NAMES
            .iter()
            .find(|(n, _)| *n as u64 == number)
            .map(|(_, name)| name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_common_ones() {
        assert_eq!(super::syscall(230).name.as_deref(), Some("clock_nanosleep"));
        assert_eq!(super::syscall(202).name.as_deref(), Some("futex"));
        assert_eq!(super::syscall(9999).name, None);
    }

    #[test]
    fn only_a_call_the_stop_interrupted_is_one_blocked_in() {
        use crate::process::blocked_syscall;
        let restart_block = -516i64 as u64;
        assert_eq!(blocked_syscall(230, restart_block), Some(230));
        assert_eq!(blocked_syscall(202, -512i64 as u64), Some(202));
        // Returned (its result in rax), or no call at all (an interrupt: orig_rax −1).
        assert_eq!(blocked_syscall(0, 12), None);
        assert_eq!(blocked_syscall(0, -4i64 as u64), None);
        assert_eq!(blocked_syscall(u64::MAX, restart_block), None);
    }
}
