//! The values an async fn keeps across its await: the members of its state machine's active
//! variant (its arguments and the locals live across that await point), read into the
//! model's [`Value`]s when the reader is asked for them ([`crate::Options::values`]).
//!
//! Bounds (memory is untrusted, and a value is for a glance): at most [`PER_FRAME`] values a
//! frame, [`DEPTH`] levels through references, boxes, `Arc`s, enums and small structs,
//! strings cut at [`STR_CHARS`] characters (at most [`STR_BYTES`] bytes read), the first
//! [`SEQ_ITEMS`] items of a sequence. A pointer is followed only when the reader can read
//! where it points; anything else is shown by its type name.
//!
//! What is shown: integers, floats, `bool`, `char`; `String`, `&str`, `Box<str>`; `Vec`,
//! slices, arrays (length and first items), `VecDeque`, `HashMap`/`HashSet`/`BTreeMap`/
//! `BTreeSet` (length); `Option`, `Result` and every enum by variant with its fields; `Box`,
//! `Arc`, `Rc` and references one level through; `Duration`, `SocketAddr`, `Uuid`; small
//! structs field by field, newtypes (axum's `Path`, `Json`, `Query`) by their one field.
//! Libraries' values that hold what a person asks about have a file each: a sqlx query by
//! its SQL ([`sqlx`]), a tonic request by its message ([`tonic`]).

mod sqlx;
mod tonic;

use crate::debuginfo::Kind;
use crate::type_names::last_segment;
use crate::value::Reader;
use tasktrace_model::{NamedValue, Value};

/// Most values shown for one frame.
pub const PER_FRAME: usize = 8;
/// Deepest a value is followed (through pointers, enums, structs).
pub const DEPTH: usize = 2;
/// Characters of a string shown.
pub const STR_CHARS: usize = 64;
/// Bytes of a string read.
pub const STR_BYTES: u64 = 256;
/// Items of a sequence shown.
pub const SEQ_ITEMS: usize = 3;
/// Levels of generic arguments a type's name keeps (its own, not theirs).
const TYPE_NESTING: usize = 1;
/// Structs with more fields than this are shown by their type.
const STRUCT_FIELDS: usize = 4;

/// The values of the state machine variant `variant_ty` at `base`: its members but the
/// awaited future (`__awaitee`), a join's or select's futures and select's mask of finished
/// branches (`disabled`). A name seen twice (an argument and the local it moved into) is
/// shown once, with the later member's value.
pub fn frame_values(r: &Reader<'_>, base: u64, variant_ty: u64) -> Vec<NamedValue> {
    let members = r.members(variant_ty);
    let joins = members.iter().any(|(name, _, _)| *name == "futures");
    let mut out: Vec<NamedValue> = Vec::new();
    for (name, off, ty) in members {
        if name.starts_with("__") || name == "futures" || (joins && name == "disabled") {
            continue;
        }
        let value = read_value(r, base + off, ty, 0);
        let name = captured_name(name);
        if let Some(seen) = out.iter_mut().find(|n| n.name == name) {
            seen.value = value;
            continue;
        }
        if out.len() == PER_FRAME {
            break;
        }
        out.push(NamedValue {
            name: name.to_string(),
            value,
        });
    }
    out
}

/// The name a person wrote for a member: an async block's capture by reference
/// (`_ref__self`) is the variable it captures.
fn captured_name(member: &str) -> &str {
    member.strip_prefix("_ref__").unwrap_or(member)
}

/// A type's name as a value shows it: its last path segment, the paths in its generic
/// arguments cut to their last segment too, and anything nested in them to `…` (`Arc<Chan<…>>`).
pub(super) fn short(name: &str) -> String {
    // A future or closure's environment (`{async_block_env#0}<Sqlite>`) is named by what
    // it is.
    for (env, what) in [
        ("{async_block_env", "async block"),
        ("{async_fn_env", "async fn"),
        ("{closure_env", "closure"),
    ] {
        if name.contains(env) {
            return what.to_string();
        }
    }
    nested_cut(&tasktrace_model::clean::trim_generics(last_segment(name)))
}

/// Generic arguments nested deeper than [`TYPE_NESTING`] cut to `…`: a glance needs
/// `Pin<&mut UpgradeableConnection<…>>`, not the service stack inside it.
fn nested_cut(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '<' => {
                depth += 1;
                if depth <= TYPE_NESTING {
                    out.push(c);
                } else if depth == TYPE_NESTING + 1 {
                    out.push_str("<…");
                }
            }
            '>' => {
                if depth <= TYPE_NESTING + 1 {
                    out.push(c);
                }
                depth = depth.saturating_sub(1);
            }
            _ if depth <= TYPE_NESTING => out.push(c),
            _ => {}
        }
    }
    out
}

/// The generic name of a type (`alloc::vec::Vec` of `alloc::vec::Vec<u8, …>`).
fn generic(name: &str) -> &str {
    name.split('<').next().unwrap_or(name)
}

/// The value of type `ty` at `addr`, `depth` levels below a frame's member.
pub fn read_value(r: &Reader<'_>, addr: u64, ty: u64, depth: usize) -> Value {
    let ty = r.strip(ty);
    let name = r.type_name(ty);
    let opaque = || Value::Opaque { ty: short(name) };
    let Some(die) = r.info.die(ty) else {
        return opaque();
    };
    match die.kind {
        Kind::Base => base_value(r, addr, name, die.size).unwrap_or_else(opaque),
        Kind::Pointer => {
            if depth >= DEPTH {
                return opaque();
            }
            match r.thin_pointer(ty, addr) {
                Ok(Some((p, Some(pointee)))) if p != 0 => read_value(r, p, pointee, depth + 1),
                _ => opaque(),
            }
        }
        Kind::Struct => struct_value(r, addr, ty, name, depth).unwrap_or_else(opaque),
        _ => opaque(),
    }
}

/// A primitive, by its name and size.
fn base_value(r: &Reader<'_>, addr: u64, name: &str, size: u64) -> Option<Value> {
    let mut b = [0u8; 16];
    let n = usize::try_from(size)
        .ok()
        .filter(|n| (1..=16).contains(n))?;
    r.bytes(addr, &mut b[..n]).ok()?;
    let unsigned = u128::from_le_bytes(b);
    Some(match name {
        "bool" => Value::Bool(b[0] != 0),
        "char" => Value::Char(char::from_u32(unsigned as u32)?),
        "f32" => Value::Float(f32::from_le_bytes(b[..4].try_into().ok()?).to_string()),
        "f64" => Value::Float(f64::from_le_bytes(b[..8].try_into().ok()?).to_string()),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => {
            let shift = 128 - 8 * n as u32;
            Value::Int(((unsigned << shift) as i128) >> shift)
        }
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            Value::Int(i128::try_from(unsigned).ok()?)
        }
        _ => return None,
    })
}

/// A struct (or an enum: a struct with a variant part), by what its type is.
fn struct_value(r: &Reader<'_>, addr: u64, ty: u64, name: &str, depth: usize) -> Option<Value> {
    let g = generic(name);
    // Fat pointers: `&str`, `&[T]`, `Box<str>`, `Box<[T]>`.
    if let (Some((p_off, p_ty)), Some((l_off, l_ty))) =
        (r.member(ty, "data_ptr"), r.member(ty, "length"))
    {
        let ptr = r.pointer(addr + p_off).ok()?;
        let len = r.uint(addr + l_off, r.type_size(l_ty)).ok()?;
        let elem = r.pointee(p_ty)?;
        return Some(
            if name.contains("str") && r.type_name(r.strip(elem)) == "u8" {
                string_at(r, ptr, len)
            } else {
                seq_at(r, ptr, len, elem, depth)
            },
        );
    }
    match g {
        "alloc::string::String" => {
            let (v_off, v_ty) = r.member(ty, "vec")?;
            let (ptr, len, _) = vec_parts(r, addr + v_off, v_ty)?;
            return Some(string_at(r, ptr, len));
        }
        "alloc::vec::Vec" => {
            let (ptr, len, elem) = vec_parts(r, addr, ty)?;
            return Some(seq_at(r, ptr, len, elem?, depth));
        }
        "alloc::collections::vec_deque::VecDeque" => {
            let (l_off, l_ty) = r.member(ty, "len")?;
            let len = r.uint(addr + l_off, r.type_size(l_ty)).ok()?;
            return Some(Value::Seq {
                len,
                first: Vec::new(),
            });
        }
        // Maps and sets by their length: a hash table's `items`, a B-tree's `length`.
        "std::collections::hash::map::HashMap" | "std::collections::hash::set::HashSet" => {
            return map_of(r, addr, ty, g, "items", 5);
        }
        "alloc::collections::btree::map::BTreeMap" | "alloc::collections::btree::set::BTreeSet" => {
            return map_of(r, addr, ty, g, "length", 3);
        }
        "alloc::sync::Arc" | "alloc::rc::Rc" => {
            if depth >= DEPTH {
                return None;
            }
            let (at, inner) = r.arc_data(addr, ty).ok()??;
            return Some(read_value(r, at, inner, depth + 1));
        }
        "core::time::Duration" => {
            let (s_off, s_ty) = r.member(ty, "secs")?;
            let (n_off, n_ty) = r.member(ty, "nanos")?;
            let secs = r.int(addr + s_off, s_ty)?;
            let nanos = r.int(addr + n_off, n_ty)?;
            return Some(Value::DurationNs(
                u128::from(secs) * 1_000_000_000 + u128::from(nanos),
            ));
        }
        "core::net::socket_addr::SocketAddr" | "std::net::addr::SocketAddr" => {
            return Some(Value::Plain(r.socket_addr(addr, ty)?.to_string()));
        }
        "uuid::Uuid" => {
            let mut b = [0u8; 16];
            r.bytes(addr, &mut b).ok()?;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            return Some(Value::Plain(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )));
        }
        "sqlx_core::query::Query"
        | "sqlx_core::query_as::QueryAs"
        | "sqlx_core::query_scalar::QueryScalar" => return sqlx::query(r, addr, ty),
        "tonic::request::Request" | "tonic::response::Response" => {
            return tonic::message(r, addr, ty, g, depth)
        }
        _ => {}
    }
    // Closures, async blocks and futures say nothing as values (an async fn's state machine
    // is an enum, but its variants are its await points, not data).
    if name.contains("{closure") || name.contains("{async") {
        return None;
    }
    // An enum: its variant, and the variant's fields one level down.
    if r.find_enum(ty).is_some() {
        let v = r.variant(ty, addr).ok()??;
        let fields = if depth < DEPTH {
            fields_of(r, addr + v.offset, v.ty, depth + 1)
        } else {
            Vec::new()
        };
        return Some(Value::Variant {
            name: v.name,
            fields,
        });
    }
    if depth >= DEPTH {
        return None;
    }
    let members = r.members(ty);
    if members.is_empty() || members.len() > STRUCT_FIELDS {
        return None;
    }
    // A struct reads field by field only when every field reads as a plain value (an `Order
    // { id: 7, user: "bob" }`); a handle to runtime state (`JoinHandle`, `Notify`, a
    // channel) is named by its type. A newtype (`Json(Order { … })`, `Path(981)`) shows
    // whatever its one field shows.
    let fields = fields_of(r, addr, ty, depth + 1);
    let newtype = fields.len() == 1;
    if fields.iter().any(|f| match f.value {
        Value::Opaque { .. } => true,
        Value::Struct { .. } => !newtype,
        _ => false,
    }) {
        return None;
    }
    Some(Value::Struct {
        name: short(g),
        fields,
    })
}

/// The map or set `ty` (generic name `generic`) at `addr`, by the length its member
/// `length` (at most `levels` deep) holds.
fn map_of(
    r: &Reader<'_>,
    addr: u64,
    ty: u64,
    generic: &str,
    length: &str,
    levels: usize,
) -> Option<Value> {
    let (l_off, l_ty) = r.member_deep(ty, length, levels)?;
    let len = r.uint(addr + l_off, r.type_size(l_ty)).ok()?;
    Some(Value::Map {
        kind: short(generic),
        len,
    })
}

/// The fields of struct `ty` at `addr`.
pub(super) fn fields_of(r: &Reader<'_>, addr: u64, ty: u64, depth: usize) -> Vec<NamedValue> {
    r.members(ty)
        .into_iter()
        .take(STRUCT_FIELDS)
        .map(|(name, off, t)| NamedValue {
            name: name.to_string(),
            value: read_value(r, addr + off, t, depth),
        })
        .collect()
}

/// A `Vec<T>` at `addr`: its buffer's address, its length and `T`.
fn vec_parts(r: &Reader<'_>, addr: u64, ty: u64) -> Option<(u64, u64, Option<u64>)> {
    let (l_off, l_ty) = r.member(ty, "len")?;
    let len = r.uint(addr + l_off, r.type_size(l_ty)).ok()?;
    let (b_off, b_ty) = r.member(ty, "buf")?;
    let ptr = first_pointer(r, addr + b_off, b_ty, 6)?;
    Some((ptr, len, r.type_param(ty, "T")))
}

/// The first pointer inside a struct (the buffer of a `RawVec`, however many wrappers deep).
fn first_pointer(r: &Reader<'_>, addr: u64, ty: u64, depth: usize) -> Option<u64> {
    let ty = r.strip(ty);
    let die = r.info.die(ty)?;
    if die.kind == Kind::Pointer {
        return r.pointer(addr).ok();
    }
    if depth == 0 || die.kind != Kind::Struct {
        return None;
    }
    r.members(ty)
        .into_iter()
        .find_map(|(_, off, t)| first_pointer(r, addr + off, t, depth - 1))
}

/// The string of `len` bytes at `ptr` (UTF-8, lossy), cut.
pub(super) fn string_at(r: &Reader<'_>, ptr: u64, len: u64) -> Value {
    let n = len.min(STR_BYTES);
    let mut buf = vec![0u8; n as usize];
    if ptr == 0 || r.bytes(ptr, &mut buf).is_err() {
        return Value::Opaque { ty: "str".into() };
    }
    let text = String::from_utf8_lossy(&buf);
    let shown: String = text.chars().take(STR_CHARS).collect();
    let cut = len > n || shown.len() < text.len();
    Value::Str { text: shown, cut }
}

/// `len` items of type `elem` at `ptr`: the length and the first few.
fn seq_at(r: &Reader<'_>, ptr: u64, len: u64, elem: u64, depth: usize) -> Value {
    let size = r.type_size(elem);
    let first = if ptr == 0 || size == 0 || depth >= DEPTH {
        Vec::new()
    } else {
        (0..len.min(SEQ_ITEMS as u64))
            .map(|i| read_value(r, ptr + i * size, elem, depth + 1))
            .collect()
    };
    Value::Seq { len, first }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_keep_one_level_of_generics() {
        assert_eq!(
            short("core::pin::Pin<&mut hyper_util::server::conn::auto::UpgradeableConnection<hyper_util::rt::tokio::TokioIo<tokio::net::tcp::stream::TcpStream>, S>>"),
            "Pin<&mut UpgradeableConnection<…>>"
        );
        assert_eq!(short("alloc::sync::Arc<app::App>"), "Arc<App>");
        assert_eq!(
            short("sqlx_core::rt::timeout::{async_block_env#0}<sqlx_sqlite::Sqlite>"),
            "async block"
        );
    }
}
