//! The variants of an enum type, resolved once from its DIEs: how the active one is told
//! (the tag's offset and size, tag value → variant, the default one) and each variant's
//! payload. [`DebugInfo::variant_table`] keeps one per type for the debuginfo's life.

use super::{DebugInfo, Kind};
use tasktrace_model::clean::last_segment;

/// The active variant of an enum value.
#[derive(Clone, Debug)]
pub struct Variant {
    /// The variant's name (`Some`, `Running`, `Suspend0`, …): last segment of its type name.
    pub name: String,
    /// Its payload type (a struct whose members are the variant's fields).
    pub ty: u64,
    /// Offset of the payload within the enum.
    pub offset: u64,
    /// `decl_file`/`decl_line` of the variant member (an await line for `SuspendN`).
    pub decl: Option<(String, u32)>,
}

/// The variants of one enum type.
#[derive(Clone, Debug)]
pub struct VariantTable {
    /// The tag: (offset, size); `None` for an enum without one (a single variant).
    tag: Option<(u64, u64)>,
    /// Tag value → index in `variants` (`None`: a variant without a payload).
    values: Vec<(u64, Option<usize>)>,
    /// The variant of every other tag value (a niche layout's dataful variant).
    default: Option<Option<usize>>,
    /// The variants with a payload.
    pub variants: Vec<Variant>,
}

impl VariantTable {
    /// Where the tag is: (offset, size), `None` without one.
    pub fn tag(&self) -> Option<(u64, u64)> {
        self.tag
    }

    /// The active variant for this tag value.
    pub fn pick(&self, tag: Option<u64>) -> Option<&Variant> {
        let chosen = self
            .values
            .iter()
            .find(|(v, _)| Some(*v) == tag)
            .map(|(_, i)| *i)
            .or(self.default);
        chosen.flatten().and_then(|i| self.variants.get(i))
    }

    /// The table of the enum type `ty` (typedefs already stripped), `None` for a type without
    /// a variant part.
    pub(super) fn build(info: &DebugInfo, ty: u64) -> Option<VariantTable> {
        let d = info.die(ty)?;
        let part = d
            .children
            .iter()
            .filter_map(|c| info.die(*c))
            .find(|v| v.kind == Kind::VariantPart)?;
        let tag = part.discr.and_then(|o| info.die(o)).map(|tag| {
            let size = tag.ty.map(|t| info.type_size(t)).unwrap_or(1);
            (tag.offset, size)
        });
        let mut table = VariantTable {
            tag,
            values: Vec::new(),
            default: None,
            variants: Vec::new(),
        };
        let mut only = None;
        for (n, v) in part
            .children
            .iter()
            .filter_map(|c| info.die(*c))
            .filter(|v| v.kind == Kind::Variant)
            .enumerate()
        {
            // A variant without a payload member cannot be read as one: it is never chosen.
            let payload = v
                .children
                .iter()
                .filter_map(|c| info.die(*c))
                .find(|m| m.kind == Kind::Member)
                .and_then(|m| Some((m, m.ty?)));
            let index = payload.map(|(member, mty)| {
                let type_name = info.die(mty).map_or("?", |d| d.name.as_str());
                let short = last_segment(type_name).to_string();
                table.variants.push(Variant {
                    name: if short.is_empty() {
                        member.name.clone()
                    } else {
                        short
                    },
                    ty: mty,
                    offset: member.offset,
                    decl: member.decl.clone(),
                });
                table.variants.len() - 1
            });
            match v.discr_value {
                Some(value) => table.values.push((value, index)),
                None if table.default.is_none() => table.default = Some(index),
                None => {}
            }
            only = (n == 0).then_some(index);
        }
        // A single variant is the active one whatever its tag says.
        if table.default.is_none() {
            table.default = only;
        }
        Some(table)
    }
}
