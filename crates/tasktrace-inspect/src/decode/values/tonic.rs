//! tonic's requests and responses by their message: `Request { message: Order { id: 7 } }`.
//!
//! A `tonic::Request` keeps its metadata (the HTTP headers), its message and its extensions;
//! the message is what identifies the call, so it alone is shown (the metadata may hold
//! credentials).

use super::{read_value, short, DEPTH};
use crate::value::Reader;
use tasktrace_model::{NamedValue, Value};

/// The tonic `Request` or `Response` (generic name `generic`) of type `ty` at `addr`, by its
/// message, `depth` levels below a frame's member.
pub fn message(r: &Reader<'_>, addr: u64, ty: u64, generic: &str, depth: usize) -> Option<Value> {
    if depth >= DEPTH {
        return None;
    }
    let (m_off, m_ty) = r.member(ty, "message")?;
    let message = read_value(r, addr + m_off, m_ty, depth + 1);
    Some(Value::Struct {
        name: short(generic),
        fields: vec![NamedValue {
            name: "message".into(),
            value: message,
        }],
    })
}
