//! sqlx's queries by their SQL: `Query { sql: "select * from orders where id = ?" }`.
//!
//! A `Query` (what `sqlx::query(…)` builds) keeps its statement as
//! `Either<&str, &Statement>`: the SQL text, or a prepared statement holding it in its `sql`
//! field. `QueryAs` and `QueryScalar` wrap a `Query` (`inner`, one or two levels). The bound
//! arguments are not shown: they are the values most likely to be secrets, and a backend's
//! argument buffer has no one shape.

use super::read_value;
use crate::value::Reader;
use tasktrace_model::{NamedValue, Value};

/// How deep `QueryScalar → QueryAs → Query` nests.
const WRAPPERS: usize = 2;

/// The sqlx `Query`, `QueryAs` or `QueryScalar` of type `ty` at `addr`, by its SQL.
pub fn query(r: &Reader<'_>, addr: u64, ty: u64) -> Option<Value> {
    let (mut addr, mut ty) = (addr, ty);
    for _ in 0..WRAPPERS {
        match r.member(ty, "inner") {
            Some((off, inner)) => (addr, ty) = (addr + off, r.strip(inner)),
            None => break,
        }
    }
    let (s_off, s_ty) = r.member(ty, "statement")?;
    let statement = r.variant(s_ty, addr + s_off).ok()??;
    let (f_off, f_ty) = r.member(statement.ty, "__0")?;
    let at = addr + s_off + statement.offset + f_off;
    let sql = match statement.name.as_str() {
        // `&str`: the text itself.
        "Left" => read_value(r, at, f_ty, 0),
        // `&Statement`: its `sql` (a `Cow<str>` or a `String`, one level down).
        "Right" => {
            let (p, pointee) = r.thin_pointer(f_ty, at).ok()??;
            let pointee = pointee?;
            let (q_off, q_ty) = r.member_deep(pointee, "sql", 2)?;
            match read_value(r, p + q_off, q_ty, 0) {
                Value::Variant { mut fields, .. } if fields.len() == 1 => fields.remove(0).value,
                other => other,
            }
        }
        _ => return None,
    };
    if !matches!(sql, Value::Str { .. }) {
        return None;
    }
    Some(Value::Struct {
        name: "Query".into(),
        fields: vec![NamedValue {
            name: "sql".into(),
            value: sql,
        }],
    })
}
