//! The values in a frame: an async fn's arguments and the locals it keeps across its await
//! ([`crate::Frame::values`]), as the out-of-process reader found them in its state machine.
//!
//! A [`Value`] is what was read, typed: an integer, a string (cut), a sequence's length and
//! first items, an enum's variant, a type's name when nothing more is shown. It is written
//! once, here (`Display`): `981`, `"bob"`, `[2 items: 3, 4]`, `Some(7)`, `Duration(1.5s)`.
//! Producers bound what they read (a few values per frame, a few levels deep, strings cut),
//! so a value never holds more than a glance needs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One named value of a frame: `order_id: 981`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamedValue {
    /// The argument's or local's name.
    pub name: String,
    /// What it holds.
    pub value: Value,
}

/// What a value holds, as far as the reader shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Value {
    /// An integer (any width, signed or not).
    Int(i128),
    /// A float, as written by Rust's `Display` (kept as text: floats are not `Eq`).
    Float(String),
    /// A `bool`.
    Bool(bool),
    /// A `char`.
    Char(char),
    /// A string (`String`, `&str`, `Box<str>`): its first characters, and whether it was cut.
    Str {
        /// The text read.
        text: String,
        /// Whether the string is longer than `text`.
        cut: bool,
    },
    /// A sequence (`Vec`, slice, array, `VecDeque`): its length and its first items.
    Seq {
        /// How many items it has.
        len: u64,
        /// The first few, read.
        first: Vec<Value>,
    },
    /// A map or set: its length.
    Map {
        /// Its kind (`HashMap`, `BTreeSet`).
        kind: String,
        /// How many entries.
        len: u64,
    },
    /// An enum's variant (`Option`, `Result`, any enum), with its fields read.
    Variant {
        /// The variant's name.
        name: String,
        /// Its fields (tuple variants unnamed, `""`).
        fields: Vec<NamedValue>,
    },
    /// A struct read field by field (small structs only).
    Struct {
        /// The type's short name.
        name: String,
        /// Its fields.
        fields: Vec<NamedValue>,
    },
    /// A `Duration`, in nanoseconds.
    DurationNs(u128),
    /// A value written as it reads, unquoted: a socket address, a UUID.
    Plain(String),
    /// A value shown by its type only (too deep, not a type the reader shows, or unreadable).
    Opaque {
        /// The type's name.
        ty: String,
    },
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => f.write_str(x),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Char(c) => write!(f, "{c:?}"),
            Value::Str { text, cut } => {
                write!(f, "{text:?}")?;
                if *cut {
                    f.write_str("…")?;
                }
                Ok(())
            }
            Value::Seq { len, first } => {
                let s = if *len == 1 { "" } else { "s" };
                write!(f, "[{len} item{s}")?;
                for (i, v) in first.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { ", " })?;
                    write!(f, "{v}")?;
                }
                if (first.len() as u64) < *len && !first.is_empty() {
                    f.write_str(", …")?;
                }
                f.write_str("]")
            }
            Value::Map { kind, len } => write!(f, "{kind}[{len}]"),
            Value::Variant { name, fields } => {
                f.write_str(name)?;
                write_fields(f, fields, "(", ")")
            }
            Value::Struct { name, fields } => {
                f.write_str(name)?;
                // A tuple struct reads as it is written: `Path(981)`.
                if fields.iter().all(|v| v.is_positional()) {
                    write_fields(f, fields, "(", ")")
                } else {
                    write_fields(f, fields, " { ", " }")
                }
            }
            Value::DurationNs(ns) => {
                write!(
                    f,
                    "Duration({:?})",
                    std::time::Duration::from_nanos(*ns as u64)
                )
            }
            Value::Plain(a) => f.write_str(a),
            Value::Opaque { ty } => write!(f, "<{ty}>"),
        }
    }
}

fn write_fields(
    f: &mut fmt::Formatter<'_>,
    fields: &[NamedValue],
    open: &str,
    close: &str,
) -> fmt::Result {
    if fields.is_empty() {
        return Ok(());
    }
    f.write_str(open)?;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{field}")?;
    }
    f.write_str(close)
}

impl NamedValue {
    /// Whether this is a tuple's field (`__0`, or no name): shown by its value alone.
    pub fn is_positional(&self) -> bool {
        self.name.is_empty() || self.name.starts_with("__")
    }
}

impl fmt::Display for NamedValue {
    /// `name: value`; a tuple field (no name) is its value alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_positional() {
            write!(f, "{}", self.value)
        } else {
            write!(f, "{}: {}", self.name, self.value)
        }
    }
}

/// A frame's values as its call reads: `(order_id: 981, user: "bob")`.
pub fn call_text(values: &[NamedValue]) -> String {
    let list: Vec<String> = values.iter().map(NamedValue::to_string).collect();
    format!("({})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, value: Value) -> NamedValue {
        NamedValue {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn values_read_as_a_call() {
        let values = [
            named("order_id", Value::Int(981)),
            named(
                "user",
                Value::Str {
                    text: "bob".into(),
                    cut: false,
                },
            ),
            named(
                "lines",
                Value::Seq {
                    len: 3,
                    first: vec![Value::Int(2), Value::Int(5)],
                },
            ),
            named(
                "coupon",
                Value::Variant {
                    name: "Some".into(),
                    fields: vec![named("__0", Value::Char('x'))],
                },
            ),
            named("timeout", Value::DurationNs(1_500_000_000)),
            named(
                "path",
                Value::Struct {
                    name: "Path".into(),
                    fields: vec![named("__0", Value::Int(7))],
                },
            ),
            named(
                "db",
                Value::Opaque {
                    ty: "sqlx::Pool".into(),
                },
            ),
        ];
        assert_eq!(
            call_text(&values),
            "(order_id: 981, user: \"bob\", lines: [3 items: 2, 5, …], coupon: Some('x'), \
             timeout: Duration(1.5s), path: Path(7), db: <sqlx::Pool>)"
        );
        let json = serde_json::to_string(&values[0]).unwrap();
        assert_eq!(json, r#"{"name":"order_id","value":{"int":981}}"#);
        assert_eq!(
            serde_json::from_str::<NamedValue>(&json).unwrap(),
            values[0]
        );
    }
}
