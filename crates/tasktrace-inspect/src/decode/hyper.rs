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
//! - An HTTP/1 client connection (the task reqwest and hyper-util's pool spawn per
//!   connection, its future a `Map` around hyper's `Connection`) is the generic search's
//!   `Map` over the receiver of the requests it is given. Its dispatcher
//!   (`proto::h1::dispatch::Dispatcher` with a `Client` dispatch) becomes its leaf, named by
//!   what it waits for: the response to the request in flight (its `callback` is set), or a
//!   request to send. An HTTP/2 client connection's `ClientTask` is a leaf too: it waits for
//!   requests to open streams for.
//!
//! Each edge is recorded as a [`Link`] and joined by [`super::links::resolve`].

use super::links::Link;
use super::Decoder;
use tasktrace_model::{Frame, FrameKind, Node, Wait, WaitOn};

const STREAMS: &str = "h2::proto::streams::streams::Streams";
/// A received HTTP body (a client reading a response, a server a request): polled, not a
/// future, and what it waits on is behind shared state.
const INCOMING: &str = "hyper::body::incoming::Incoming";
const STREAM_REF: &str = "h2::proto::streams::streams::OpaqueStreamRef";
/// hyper's HTTP/1 connection, client or server (its `dispatch` says which).
pub(super) const H1_DISPATCHER: &str = "hyper::proto::h1::dispatch::Dispatcher";
const H1_CLIENT: &str = "hyper::proto::h1::dispatch::Client<";
/// hyper's HTTP/2 client task: takes the requests given to the connection and opens a stream
/// for each (the connection's I/O is `H2ClientFuture`, a task of its own).
pub(super) const H2_CLIENT_TASK: &str = "hyper::proto::h2::client::ClientTask";
/// What the streams of an HTTP/2 connection are called in notes.
const H2_STREAM: &str = "HTTP/2 stream";

/// What a `oneshot::Receiver` leaf named `name` waits for, if it is a hyper client's wait for
/// its response.
pub(super) fn response_wait(name: &str) -> Option<WaitOn> {
    (name.contains("hyper::client::dispatch") || name.contains("http::response::Response"))
        .then_some(WaitOn::HttpResponse)
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
    /// Whether the HTTP/1 dispatcher `ty` is a client's.
    pub(super) fn is_h1_client(&self, ty: u64) -> bool {
        self.r
            .member(ty, "dispatch")
            .is_some_and(|(_, t)| self.r.type_name(self.r.strip(t)).starts_with(H1_CLIENT))
    }

    /// An HTTP/1 client connection's dispatcher at `addr`: a leaf saying what it waits for
    /// (the socket, or its queue of requests: hyper's mechanism, not a frame of its own). The
    /// generic search through it still runs: it records the link from the request in flight
    /// (its response's `oneshot` sender) to this task.
    pub(super) fn h1_client(&mut self, addr: u64, ty: u64, depth: usize) -> Node {
        let r = self.r;
        let _ = self.owned_futures(addr, ty, depth + 1);
        let in_flight = r.member(ty, "dispatch").and_then(|(off, t)| {
            let (c_off, c_ty) = r.member(t, "callback")?;
            let v = r.active_variant(c_ty, addr + off + c_off).ok()??;
            Some(v.name == "Some")
        });
        let note = match in_flight {
            Some(true) => "HTTP/1 client connection: waiting for the response",
            Some(false) => "HTTP/1 client connection: idle, waiting for a request to send",
            None => "HTTP/1 client connection",
        };
        Node::new(
            Frame::new(H1_DISPATCHER, None)
                .with_kind(FrameKind::Leaf)
                .with_note(note),
        )
    }

    /// An HTTP/2 client connection's request taker at `addr`: a leaf (it waits for requests
    /// to send; its streams and I/O are tasks of their own). Searched for links all the same.
    pub(super) fn h2_client_task(&mut self, addr: u64, ty: u64, depth: usize) -> Node {
        let _ = self.owned_futures(addr, ty, depth + 1);
        Node::new(
            Frame::new(H2_CLIENT_TASK, None)
                .with_kind(FrameKind::Leaf)
                .with_note("HTTP/2 client connection: waiting for a request to send"),
        )
    }

    /// A received body as a leaf (its HTTP/2 stream's link recorded).
    pub(super) fn hyper_leaf(&mut self, addr: u64, ty: u64, depth: usize) -> Node {
        // The search records the `OpaqueStreamRef` inside an HTTP/2 body; it finds no future.
        let _ = self.owned_futures(addr, ty, depth);
        Node::new(
            Frame::new(INCOMING, None)
                .with_kind(FrameKind::Leaf)
                .with_wait(Wait::new(WaitOn::HttpBody)),
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
