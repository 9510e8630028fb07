//! Signals that end a sampling command (`record`, `top`) between two samples, never during
//! one.
//!
//! Two ways, one rule: a signal never acts while a sample holds a process stopped.
//! - `record` (one thread): the handlers only store the signal's number in an atomic
//!   (async-signal-safe); the thread has the signals blocked while it holds the process
//!   ([`Blocked`]), a signal that came meanwhile is delivered when the block ends, and the
//!   command ends at its next check of [`received`].
//! - `top` (a sampler thread and a screen thread): the signals stay blocked in every thread
//!   for the command's whole life, and the screen thread takes a pending one with
//!   [`take_pending`] between two draws. No handler runs at all — not even the reader's own,
//!   which would detach and exit at once without restoring the terminal.

use std::sync::atomic::{AtomicI32, Ordering};

/// The last signal a handler received; 0 when none has.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches `signals` from now on: each only sets what [`received`] returns.
pub fn install(signals: &[libc::c_int]) {
    for &signal in signals {
        // SAFETY: the handler only stores to an atomic (async-signal-safe); the sigaction
        // struct is zeroed and filled on our stack.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signal, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the command to end, if one did.
pub fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// What a person reads for `signal`: `Ctrl-C`, `the terminal was closed`, …
pub fn describe(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "interrupted (Ctrl-C)",
        libc::SIGHUP => "the terminal was closed (SIGHUP)",
        libc::SIGTERM => "terminated (SIGTERM)",
        _ => "ended by a signal",
    }
}

/// Takes one of `signals` that is pending (blocked, and sent to this thread or the process),
/// without waiting.
pub fn take_pending(signals: &[libc::c_int]) -> Option<libc::c_int> {
    // SAFETY: builds a signal set on the stack; sigtimedwait with a zero timeout only reads
    // the set and the timespec and dequeues a pending signal.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) {
            s if s > 0 => Some(s),
            _ => None,
        }
    }
}

/// `signals` blocked in the calling thread while it lives (and in the threads it spawns
/// meanwhile); the thread's previous mask is put back when it is dropped.
pub struct Blocked {
    previous: libc::sigset_t,
}

impl Blocked {
    /// Blocks `signals` in this thread.
    pub fn new(signals: &[libc::c_int]) -> Self {
        // SAFETY: builds two signal sets on the stack and changes this thread's mask; the
        // calls only read and write the pointed-to sets.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
            Blocked { previous }
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // A signal that came while blocked is delivered now (when the previous mask let it).
        // SAFETY: restores the mask saved by `new`, a valid set.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}
