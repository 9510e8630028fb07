//! tower: what the generic search cannot name on its own.
//!
//! A `Buffer` moves each request to a worker task (`tower::buffer::worker::Worker`): the
//! caller's `ResponseFuture` waits on a `oneshot` channel until the worker has called the
//! inner service (the worker holds the sender while the inner service is not ready), then
//! polls the inner service's response future itself — so a request is either in the caller's
//! tree (the generic search finds the inner future) or waiting on the worker, which
//! [`super::links`] turns into an edge to the worker's task.

use tasktrace_model::WaitOn;

/// What a `oneshot::Receiver` leaf named `name` waits for, if it is a `Buffer`'s caller
/// waiting for the worker.
pub(super) fn response_wait(name: &str) -> Option<WaitOn> {
    name.contains("tower::buffer::")
        .then_some(WaitOn::BufferWorker)
}
