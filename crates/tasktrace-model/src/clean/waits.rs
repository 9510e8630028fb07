//! What a frame waits on, told from the frames under it: the in-process capture's hidden
//! frames become a [`Wait`] ([`classify`]), and an out-of-process leaf that only names its
//! primitive learns what it is used for from the frames above it ([`refine_leaf_waits`]).

use super::paths::path_crate;
use crate::{Frame, FrameKind, Wait, WaitOn};

/// What a chain of hidden frames (outermost first) below the last visible frame waits on.
pub(super) fn classify(chain: &[&Frame]) -> Option<Wait> {
    let has = |pat: &str| {
        chain.iter().any(|f| {
            f.function.contains(pat) || f.location.as_ref().is_some_and(|l| l.file.contains(pat))
        })
    };
    let name_has = |pat: &str| chain.iter().any(|f| f.function.contains(pat));
    let direction = |recv: WaitOn, send: WaitOn| {
        if name_has("send") || name_has("reserve") || name_has("Send") || has("batch_semaphore") {
            send
        } else {
            recv
        }
    };
    let what = if has("task/join_set") || name_has("JoinSet") {
        WaitOn::JoinSet
    } else if has("runtime/task/join.rs") || name_has("JoinHandle") {
        WaitOn::Task
    } else if has("sync/mutex.rs") || name_has("Mutex<") {
        WaitOn::Mutex
    } else if has("sync/rwlock") || name_has("RwLock") {
        if name_has("write") {
            WaitOn::RwLockWrite
        } else {
            WaitOn::RwLockRead
        }
    } else if has("sync/mpsc/") || has("futures-channel") && has("/mpsc/") {
        direction(WaitOn::MpscReceive, WaitOn::MpscSend)
    } else if has("sync/oneshot.rs") || has("oneshot") {
        WaitOn::OneshotReceive
    } else if has("sync/broadcast.rs") {
        direction(WaitOn::BroadcastReceive, WaitOn::BroadcastSend)
    } else if has("sync/watch.rs") {
        WaitOn::WatchChange
    } else if has("sync/notify.rs") || name_has("Notified") {
        WaitOn::Notify
    } else if has("semaphore") {
        WaitOn::Semaphore
    } else if has("/time/") || has("futures-timer") || name_has("Sleep") || name_has("Delay") {
        WaitOn::Timer
    } else if name_has("::connect_mio")
        || name_has("TcpStream::connect")
        || name_has("TcpSocket::connect")
        || name_has("UnixStream::connect")
    {
        WaitOn::SocketConnect
    } else if name_has("accept") || has("/listener.rs") {
        WaitOn::SocketAccept
    } else if name_has("poll_read")
        || name_has("::io::util::read")
        || name_has("::codec::framed")
        || name_has("read_ready")
        || name_has("recv_from")
        || has("io/util/read")
    {
        WaitOn::SocketRead
    } else if name_has("poll_write")
        || name_has("::io::util::write")
        || name_has("write_ready")
        || name_has("send_to")
        || has("io/util/write")
    {
        WaitOn::SocketWrite
    } else if has("runtime/io/") || has("io/poll_evented") {
        WaitOn::Io
    } else {
        // Something else: name the outermost hidden frame that is not the standard library.
        let f = chain.iter().find(|f| {
            let file_std = f
                .location
                .as_ref()
                .and_then(|l| path_crate(&l.file))
                .is_some_and(|c| matches!(c, "core" | "std" | "alloc"));
            !file_std && f.location.is_some()
        })?;
        return Some(Wait::in_function(f.function.clone()));
    };
    Some(Wait::new(what))
}

/// Whether a chain of hidden frames passes through a `poll_fn`.
pub(super) fn via_poll_fn(chain: &[&Frame]) -> bool {
    chain.iter().any(|f| {
        f.function.contains("PollFn")
            || f.function.contains("poll_fn")
            || f.location
                .as_ref()
                .is_some_and(|l| l.file.ends_with("poll_fn.rs"))
    })
}

/// A leaf whose wait only names its primitive (I/O readiness, a `Notify`, a batch semaphore's
/// permit, a channel's receiver) says what it is used for when the hidden frames above it, or
/// its own name, say it: `TcpListener::accept` → socket accept, `tokio::io::util::read_buf::ReadBuf`
/// → socket read, a `Notified` inside `watch::Receiver::changed` → watch change, an `Acquire`
/// inside `Mutex::lock` → Mutex lock — as the in-process capture's waits do. What the reader
/// knew (the socket, the lock's holders) is kept.
pub(super) fn refine_leaf_waits(frame: &mut Frame, chain: &[&Frame]) {
    if frame.kind != FrameKind::Leaf || frame.waits.len() != 1 {
        return;
    }
    let on = frame.waits[0].on;
    let refinable = matches!(
        on,
        WaitOn::Io | WaitOn::Notify | WaitOn::Acquire | WaitOn::MpscReceive
    );
    if !refinable {
        return;
    }
    // A permit's leaf is named `batch_semaphore` whoever uses it: only the frames above say.
    let mut with_leaf = chain.to_vec();
    if on != WaitOn::Acquire {
        with_leaf.push(frame);
    }
    let Some(what) = classify(&with_leaf) else {
        return;
    };
    let fits = match on {
        WaitOn::Io => what.on.is_socket(),
        WaitOn::Notify => !matches!(what.on, WaitOn::Notify | WaitOn::In),
        WaitOn::Acquire => what.on.is_lock() || what.on == WaitOn::MpscSend,
        WaitOn::MpscReceive => what.on == WaitOn::MpscSend,
        _ => false,
    };
    if fits {
        frame.waits[0].on = what.on;
    }
}
