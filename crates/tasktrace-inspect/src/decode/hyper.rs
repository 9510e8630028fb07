//! hyper 1.x and h2: the ends of the edges that go through their shared state.
//!
//! The generic search sees a connection's dispatcher and a request's future, but not how
//! they meet: that goes through `Arc`s it does not follow.
//! - HTTP/2 server and client: the connection task owns `h2::proto::streams::Streams`; every
//!   stream (hyper spawns each server stream's service future as a task of its own, an
//!   `H2Stream`) holds an `OpaqueStreamRef` into the same `Arc<Mutex<Inner>>`.
//! - HTTP client: a request waits on a `oneshot::Receiver` for its response; the connection
//!   task holds its sender inside a `hyper::client::dispatch::Callback`.
//!
//! - A received body (`hyper::body::incoming::Incoming`) is a leaf: reading it waits on the
//!   connection's task.
//!
//! Each edge is recorded as a [`Link`] and joined by [`super::links::resolve`].

use super::links::Link;
use super::Decoder;
use tasktrace_model::{Frame, FrameKind, Node};

const STREAMS: &str = "h2::proto::streams::streams::Streams";
/// A received HTTP body (a client reading a response, a server a request): polled, not a
/// future, and what it waits on is behind shared state.
const INCOMING: &str = "hyper::body::incoming::Incoming";
const STREAM_REF: &str = "h2::proto::streams::streams::OpaqueStreamRef";
/// What the streams of an HTTP/2 connection are called in notes.
const H2_STREAM: &str = "HTTP/2 stream";

/// The note of a `oneshot::Receiver` leaf named `name`, if it is a hyper client's wait for
/// its response.
pub(super) fn response_note(name: &str) -> Option<&'static str> {
    (name.contains("hyper::client::dispatch") || name.contains("http::response::Response"))
        .then_some("waiting for the HTTP response")
}

/// Types the hyper decoder reads although they hold no future: the generic search must reach
/// them.
pub(super) fn is_link_type(generic: &str) -> bool {
    matches!(generic, STREAMS | STREAM_REF) || generic == super::ONESHOT_SENDER
}

/// Types the hyper decoder shows as leaves.
pub(super) fn is_leaf_type(generic: &str) -> bool {
    generic == INCOMING
}

impl Decoder<'_, '_, '_> {
    /// A received body as a leaf (its HTTP/2 stream's link recorded).
    pub(super) fn hyper_leaf(&mut self, addr: u64, ty: u64, depth: usize) -> Node {
        // The search records the `OpaqueStreamRef` inside an HTTP/2 body; it finds no future.
        let _ = self.owned_futures(addr, ty, depth);
        Node::new(
            Frame::new(INCOMING, None)
                .with_kind(FrameKind::Leaf)
                .with_note("waiting on the HTTP body"),
        )
    }

    /// Records the link of one of [`is_link_type`]'s types at `addr`.
    pub(super) fn hyper_link(&mut self, addr: u64, ty: u64, generic: &str) {
        let Some(key) = self.arc_member(addr, ty, "inner") else {
            return;
        };
        self.links.push(match generic {
            STREAMS => Link::Drives(key, H2_STREAM),
            STREAM_REF => Link::DrivenBy(key, H2_STREAM),
            _ => Link::Completes(key),
        });
    }

    /// The address of the allocation the `Arc` (or `Option<Arc>`) member `field` points to.
    pub(super) fn arc_member(&self, addr: u64, ty: u64, field: &str) -> Option<u64> {
        let (off, t) = self.r.member(ty, field)?;
        let (p, _) = self.r.thin_pointer(t, addr + off).ok()??;
        (p != 0).then_some(p)
    }
}
