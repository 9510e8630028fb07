//! actix-web (actix-http 3.x): each HTTP/1 connection, named with what it is doing.
//!
//! actix-server spawns one local task per accepted connection (on its worker's `LocalSet`),
//! whose future is actix-web's service chain around `actix_http::h1::dispatcher::Dispatcher`.
//! The generic search finds the handler's future inside it, but names the connection after
//! the chain's combinator (`AndThenServiceResponse`), beside the dispatcher's graceful-shutdown
//! signal, its timers and its socket. This decoder shows the dispatcher itself as the
//! connection's frame instead, with the peer's address and the state of its request
//! (`InnerDispatcher.state`): reading one (`None`, with bytes of it received or not), in the
//! handler (`ServiceCall`, whose future — the handler's async fn chain — is its child), in the
//! `Expect: 100-continue` handler (`ExpectCall`), or writing the response (`SendPayload`,
//! `SendErrorPayload`). Its children are that future, the timers that are running (each named
//! by what it guards) and the socket; the shutdown signal, which every connection waits on,
//! is left out.
//!
//! A field that is not where actix-http 3 keeps it leaves the frame without that part: the
//! state unknown, no timer, no socket — never a wrong one.

use super::Decoder;
use crate::value::Reader;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tasktrace_model::{Frame, FrameKind, Node};

/// actix-http's HTTP/1 connection future.
pub(super) const DISPATCHER: &str = "actix_http::h1::dispatcher::Dispatcher";

/// The dispatcher's timers, and what each one guards.
const TIMERS: [(&str, &str); 3] = [
    ("head_timer", "request head timeout"),
    ("ka_timer", "keep-alive timeout"),
    ("shutdown_timer", "shutdown timeout"),
];

/// What an HTTP/1 connection is doing, from its dispatcher's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnectionState {
    /// No request in progress, none of the next received.
    Idle,
    /// Part of a request's head received.
    ReadingRequest { received: u64 },
    /// The request's `Expect: 100-continue` handler runs.
    InExpect,
    /// The request's handler runs.
    InHandler,
    /// The response is being written.
    WritingResponse,
    /// Upgraded (a WebSocket, or another protocol): actix's `Upgrade` future runs.
    Upgraded,
}

impl ConnectionState {
    fn describe(self) -> String {
        match self {
            ConnectionState::Idle => "waiting for a request".to_string(),
            ConnectionState::ReadingRequest { received } => {
                format!("reading a request ({received} bytes received)")
            }
            ConnectionState::InExpect => "in the Expect: 100-continue handler".to_string(),
            ConnectionState::InHandler => "in the handler".to_string(),
            ConnectionState::WritingResponse => "writing the response".to_string(),
            ConnectionState::Upgraded => "upgraded".to_string(),
        }
    }
}

impl Reader<'_> {
    /// A `std::net::SocketAddr` at `addr` (type `ty`).
    pub(crate) fn socket_addr(&self, addr: u64, ty: u64) -> Option<SocketAddr> {
        let v = self.active_variant(ty, addr).ok()??;
        let (off, inner) = self.member(v.ty, "__0")?;
        let at = addr + v.offset + off;
        let (ip_off, ip_ty) = self.member(inner, "ip")?;
        let (port_off, _) = self.member(inner, "port")?;
        let port = self.uint(at + port_off, 2).ok()? as u16;
        let ip = match (v.name.as_str(), self.type_size(ip_ty)) {
            ("V4", 4) => {
                let mut b = [0u8; 4];
                self.bytes(at + ip_off, &mut b).ok()?;
                IpAddr::V4(Ipv4Addr::from(b))
            }
            ("V6", 16) => {
                let mut b = [0u8; 16];
                self.bytes(at + ip_off, &mut b).ok()?;
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// The value of `Option<T>` at `addr` (type `ty`): its payload's address and type.
    fn some(&self, addr: u64, ty: u64) -> Option<(u64, u64)> {
        let v = self.active_variant(ty, addr).ok()??;
        if v.name != "Some" {
            return None;
        }
        let (off, t) = self.member(v.ty, "__0")?;
        Some((addr + v.offset + off, t))
    }

    /// The length of the `bytes::BytesMut` at `addr` (type `ty`).
    fn bytes_mut_len(&self, addr: u64, ty: u64) -> Option<u64> {
        let (off, t) = self.member(ty, "len")?;
        self.uint(addr + off, self.type_size(t)).ok()
    }
}

impl Decoder<'_, '_, '_> {
    /// The dispatcher `ty` at `addr`: a frame naming the connection and its state, over the
    /// request's future, the running timers and the socket.
    pub(super) fn actix_dispatcher(&mut self, addr: u64, ty: u64, depth: usize) -> Node {
        let r = self.r;
        let mut node = Node::new(Frame::new(DISPATCHER, None).with_kind(FrameKind::Fn));
        let Some((off, state_ty)) = r.member(ty, "inner") else {
            return node;
        };
        let Ok(Some(outer)) = r.active_variant(state_ty, addr + off) else {
            return node;
        };
        let base = addr + off + outer.offset;
        if outer.name == "Upgrade" {
            node.frame.note = Some(format!(
                "HTTP/1 connection: {}",
                ConnectionState::Upgraded.describe()
            ));
            node.children = self.owned_futures(base, outer.ty, depth + 1);
            return node;
        }
        let Some((i_off, inner_ty)) = r.member(outer.ty, "inner") else {
            return node;
        };
        let inner = base + i_off;
        let peer = r
            .member(inner_ty, "peer_addr")
            .and_then(|(o, t)| r.some(inner + o, t))
            .and_then(|(a, t)| r.socket_addr(a, t));
        let mut state = None;
        if let Some((s_off, s_ty)) = r.member(inner_ty, "state") {
            if let Ok(Some(v)) = r.active_variant(s_ty, inner + s_off) {
                state = match v.name.as_str() {
                    "None" => {
                        let received = r
                            .member(inner_ty, "read_buf")
                            .and_then(|(o, t)| r.bytes_mut_len(inner + o, t));
                        received.map(|n| {
                            if n == 0 {
                                ConnectionState::Idle
                            } else {
                                ConnectionState::ReadingRequest { received: n }
                            }
                        })
                    }
                    "ExpectCall" => Some(ConnectionState::InExpect),
                    "ServiceCall" => Some(ConnectionState::InHandler),
                    "SendPayload" | "SendErrorPayload" => Some(ConnectionState::WritingResponse),
                    _ => None,
                };
                if matches!(v.name.as_str(), "ExpectCall" | "ServiceCall") {
                    let at = inner + s_off;
                    node.children
                        .extend(self.owned_futures(at, s_ty, depth + 1));
                }
            }
        }
        let mut note = match peer {
            Some(p) => format!("HTTP/1 connection from {p}"),
            None => "HTTP/1 connection".to_string(),
        };
        if let Some(s) = state {
            note.push_str(": ");
            note.push_str(&s.describe());
        }
        node.frame.note = Some(note);
        for (field, guards) in TIMERS {
            let Some((t_off, t_ty)) = r.member(inner_ty, field) else {
                continue;
            };
            // A running timer is the `Sleep` inside `TimerState::Active`: its leaf, renamed.
            for timer in self.owned_futures(inner + t_off, t_ty, depth + 1) {
                for mut leaf in leaves(timer) {
                    for w in &mut leaf.frame.waits {
                        w.purpose = Some(guards.to_string());
                    }
                    node.children.push(leaf);
                }
            }
        }
        if let Some((io_off, io_ty)) = r.member(inner_ty, "io") {
            if let Some((a, t)) = r.some(inner + io_off, io_ty) {
                node.children.extend(self.decode(a, t, depth + 1));
            }
        }
        node
    }
}

/// The leaves of a subtree, in order.
fn leaves(node: Node) -> Vec<Node> {
    if node.children.is_empty() {
        return vec![node];
    }
    node.children.into_iter().flat_map(leaves).collect()
}
