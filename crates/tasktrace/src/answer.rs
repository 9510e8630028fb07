//! One request for a task's trace, and its answer: the [`Reply`] cell a handle (or a dump)
//! queues on the task's slot and waits on, and the future fills on its next poll — or its
//! close fills with why it will not. A reply is filled once (a second fill is ignored) and
//! taken once; its waker, when set, is woken after the fill, outside the cell's lock.

use crate::capture::RawPath;
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::{symbolize, Trace, TraceError};
use std::task::{Context, Poll, Waker};

/// What one capturing poll recorded: one raw path per leaf that touched the waker.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) paths: Vec<RawPath>,
    /// Wakers cloned on other threads during the poll (counted, not walked).
    pub(crate) foreign: usize,
    /// Registered tasks whose join handles were pending in this poll (task-awaits-task edges).
    pub(crate) awaits: Vec<u64>,
    /// The task's poll count during this poll (see [`crate::capture_cache`]).
    pub(crate) polls: u64,
}

impl Captured {
    /// Symbolises and merges the paths into one tree.
    pub(crate) fn to_trace(&self) -> Trace {
        let mut trace = tasktrace_model::Trace::new();
        for path in &self.paths {
            trace.insert_path(symbolize::symbolize(path, None));
        }
        // Branches of one join or select are captured in the order the combinator polls them,
        // which rotates for fairness; source order is stable and reads naturally.
        trace.sort_by_location();
        Trace::from(trace)
    }
}

pub(crate) type Answer = Result<Arc<Captured>, TraceError>;

/// One pending request: filled by the future, read by the handle.
#[derive(Default)]
pub(crate) struct Reply {
    state: Mutex<ReplyState>,
}

#[derive(Default)]
struct ReplyState {
    answer: Option<Answer>,
    waker: Option<Waker>,
}

impl Reply {
    /// A slot that wakes `waker` when it is answered (one waker for many slots: `dump`).
    pub(crate) fn with_waker(waker: Waker) -> Self {
        Reply {
            state: Mutex::new(ReplyState {
                answer: None,
                waker: Some(waker),
            }),
        }
    }

    /// The answer, if there is one yet (taken: a second call returns `None`).
    pub(crate) fn take_answer(&self) -> Option<Answer> {
        lock(&self.state).answer.take()
    }

    pub(crate) fn fill(&self, answer: Answer) {
        let waker = {
            let mut s = lock(&self.state);
            if s.answer.is_some() {
                return;
            }
            s.answer = Some(answer);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn poll_answer(&self, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut s = lock(&self.state);
        match s.answer.take() {
            Some(a) => Poll::Ready(a),
            None => {
                if !matches!(&s.waker, Some(w) if w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data (wakers, queues) stays valid.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
