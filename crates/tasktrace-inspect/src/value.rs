//! Typed reads of target memory: struct fields, Rust enums (variant parts, niche or tagged),
//! pointers. Types are DIE offsets from [`DebugInfo`]; addresses are the target's.

use crate::debuginfo::{DebugInfo, Kind};
pub use crate::debuginfo::{Variant, VariantTable};
use crate::error::{Error, Result};
use crate::process::Target;

/// Reads typed values of one stopped target.
pub struct Reader<'a> {
    /// The target's memory.
    pub target: &'a dyn Target,
    /// The executable's debuginfo.
    pub info: &'a DebugInfo,
    /// Load bias: runtime address − link-time address of the executable.
    pub bias: u64,
}

impl<'a> Reader<'a> {
    /// A reader of types only: every memory read fails.
    pub(crate) fn types_only(info: &'a DebugInfo) -> Reader<'a> {
        Reader {
            target: &crate::process::NoMemory,
            info,
            bias: 0,
        }
    }

    /// Reads raw bytes; for a core file, read-only data it left out comes from the executable.
    pub fn bytes(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.target.read(addr, buf) {
            Ok(()) => Ok(()),
            Err(e) => {
                if addr >= self.bias && self.info.read_file_data(addr - self.bias, buf) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Reads an unsigned little-endian integer of `size` (1..=8) bytes.
    pub fn uint(&self, addr: u64, size: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        let n = size.clamp(1, 8) as usize;
        self.bytes(addr, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a `u64`.
    pub fn u64(&self, addr: u64) -> Result<u64> {
        self.uint(addr, 8)
    }

    /// Reads a pointer: 0, or a value a user-space address can have (below 2^56, the limit
    /// of 5-level paging). Memory is untrusted: a pointer past that is refused here, so that
    /// adding a member offset (from the DWARF, small) to a pointer read never overflows.
    pub fn pointer(&self, addr: u64) -> Result<u64> {
        const USER_LIMIT: u64 = 1 << 56;
        let p = self.u64(addr)?;
        if p >= USER_LIMIT {
            return Err(crate::Error::NotAPointer { value: p, at: addr });
        }
        Ok(p)
    }

    /// The type behind typedefs.
    pub fn strip(&self, ty: u64) -> u64 {
        self.info.strip(ty)
    }

    /// Qualified name of a type.
    pub fn type_name(&self, ty: u64) -> &'a str {
        self.info.die(ty).map(|d| d.name.as_str()).unwrap_or("?")
    }

    /// Size of a type.
    pub fn type_size(&self, ty: u64) -> u64 {
        self.info.type_size(ty)
    }

    /// The direct member `name` of struct `ty`: (offset, type).
    pub fn member(&self, ty: u64, name: &str) -> Option<(u64, u64)> {
        let d = self.info.die(self.strip(ty))?;
        d.members
            .iter()
            .find(|m| m.0 == name)
            .map(|&(_, off, ty)| (off, ty))
    }

    /// The direct members of struct `ty`: (name, offset, type).
    pub fn members(&self, ty: u64) -> Vec<(&'a str, u64, u64)> {
        let Some(d) = self.info.die(self.strip(ty)) else {
            return Vec::new();
        };
        d.members
            .iter()
            .map(|(name, off, ty)| (name.as_str(), *off, *ty))
            .collect()
    }

    /// A member `name` found breadth-first through nested struct members (not through enum
    /// variants), at most `max_depth` levels down: (offset from `ty`, type).
    pub fn member_deep(&self, ty: u64, name: &str, max_depth: usize) -> Option<(u64, u64)> {
        let mut level = vec![(0u64, ty)];
        for _ in 0..max_depth {
            let mut next = Vec::new();
            for (base, t) in level {
                for (n, off, mt) in self.members(t) {
                    if n == name {
                        return Some((base + off, mt));
                    }
                    let mt = self.strip(mt);
                    if self
                        .info
                        .die(mt)
                        .is_some_and(|d| matches!(d.kind, Kind::Struct | Kind::Union))
                    {
                        next.push((base + off, mt));
                    }
                }
            }
            if next.is_empty() {
                return None;
            }
            level = next;
        }
        None
    }

    /// Like [`member_deep`](Self::member_deep), naming the missing field in its error.
    pub fn field(&self, ty: u64, name: &str, layout: &str) -> Result<(u64, u64)> {
        self.member_deep(ty, name, 6).ok_or_else(|| {
            Error::UnsupportedLayout(format!(
                "{layout}: `{}` has no field `{name}`",
                self.type_name(ty)
            ))
        })
    }

    /// The enum type at or inside `ty` (descending single members at offset 0): the type that
    /// has a variant part, and its offset from `ty`.
    pub fn find_enum(&self, ty: u64) -> Option<(u64, u64)> {
        let mut t = self.strip(ty);
        for _ in 0..6 {
            let d = self.info.die(t)?;
            if d.children.iter().any(|c| {
                self.info
                    .die(*c)
                    .is_some_and(|v| v.kind == Kind::VariantPart)
            }) {
                return Some((0, t));
            }
            let ms = self.members(t);
            match ms.as_slice() {
                [(_, 0, mt)] => t = self.strip(*mt),
                _ => return None,
            }
        }
        None
    }

    /// The active variant of the enum `ty` stored at `addr`.
    pub fn variant(&self, ty: u64, addr: u64) -> Result<Option<Variant>> {
        Ok(self.active_variant(ty, addr)?.cloned())
    }

    /// [`variant`](Self::variant), borrowed from the debuginfo's table of `ty`'s variants
    /// (nothing allocated: the task list walk tells 10,000 `Stage`s apart this way while the
    /// process is stopped).
    pub fn active_variant(&self, ty: u64, addr: u64) -> Result<Option<&'a Variant>> {
        let Some(table) = self.info.variant_table(self.strip(ty)) else {
            return Ok(None);
        };
        let tag = match table.tag() {
            Some((off, size)) => Some(self.uint(addr + off, size)?),
            None => None,
        };
        Ok(table.pick(tag))
    }

    /// The payload types of every variant of the enum `ty` (empty for a type without a
    /// variant part): what any value of it may hold, whichever variant is active.
    pub fn variant_types(&self, ty: u64) -> Vec<u64> {
        let Some(d) = self.info.die(self.strip(ty)) else {
            return Vec::new();
        };
        let info = self.info;
        d.children
            .iter()
            .filter_map(|c| info.die(*c))
            .filter(|p| p.kind == Kind::VariantPart)
            .flat_map(|p| p.children.iter().filter_map(|c| info.die(*c)))
            .filter(|v| v.kind == Kind::Variant)
            .flat_map(|v| v.children.iter().filter_map(|c| info.die(*c)))
            .filter(|m| m.kind == Kind::Member)
            .filter_map(|m| m.ty)
            .collect()
    }

    /// The type argument `param` (`T`) of the generic type `ty`.
    pub fn type_param(&self, ty: u64, param: &str) -> Option<u64> {
        let d = self.info.die(self.strip(ty))?;
        d.children.iter().find_map(|c| {
            let p = self.info.die(*c)?;
            (p.kind == Kind::TemplateType && p.name == param)
                .then_some(p.ty)
                .flatten()
        })
    }

    /// The type a pointer type points to.
    pub fn pointee(&self, ty: u64) -> Option<u64> {
        let d = self.info.die(self.strip(ty))?;
        (d.kind == Kind::Pointer).then_some(d.ty).flatten()
    }

    /// Follows single members at offset 0 (`NonNull`, `Unique`, `Option<NonNull>`'s payload
    /// lives at 0 too) down to a pointer type: the pointer's value and its pointee type.
    pub fn thin_pointer(&self, ty: u64, addr: u64) -> Result<Option<(u64, Option<u64>)>> {
        let mut t = self.strip(ty);
        for _ in 0..8 {
            let Some(d) = self.info.die(t) else {
                return Ok(None);
            };
            if d.kind == Kind::Pointer {
                return Ok(Some((self.pointer(addr)?, d.ty)));
            }
            if let Some((0, inner)) = self.find_enum(t) {
                if inner != t {
                    t = inner;
                    continue;
                }
                // Option<NonNull<T>>: niche at offset 0.
                match self.variant(t, addr)? {
                    Some(v) if v.name == "None" => return Ok(Some((0, None))),
                    Some(v) => match self.member(v.ty, "__0") {
                        Some((0, inner)) => {
                            t = self.strip(inner);
                            continue;
                        }
                        _ => return Ok(None),
                    },
                    None => return Ok(None),
                }
            }
            let ms = self.members(t);
            match ms.iter().find(|(_, off, _)| *off == 0) {
                Some((_, _, mt)) => t = self.strip(*mt),
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// Generic readers of the values programs keep: wrapped integers, `Option`s of them, `Arc`s.
impl Reader<'_> {
    /// An `Option<u64-like>` (`Option<task::Id>`, niche or tagged): its value when `Some`.
    pub fn option_u64(&self, addr: u64, ty: u64) -> Option<u64> {
        let r = self;
        let (e_off, e_ty) = r.find_enum(ty)?;
        let v = r.variant(e_ty, addr + e_off).ok()??;
        if v.name != "Some" {
            return None;
        }
        let (o, t) = r.member(v.ty, "__0")?;
        self.int(addr + e_off + v.offset + o, t)
    }

    /// An integer wrapped in single-member structs (`Id(NonZero<u64>)`, atomics, cells).
    pub fn int(&self, addr: u64, ty: u64) -> Option<u64> {
        let r = self;
        let mut t = r.strip(ty);
        let mut a = addr;
        for _ in 0..8 {
            let d = r.info.die(t)?;
            if d.kind == crate::debuginfo::Kind::Base {
                return r.uint(a, d.size).ok();
            }
            let ms = r.members(t);
            let &(_, o, mt) = ms.first()?;
            a += o;
            t = r.strip(mt);
        }
        None
    }

    /// The value behind an `Arc<T>` (or `Rc<T>`) stored at `addr`: (address, type).
    pub fn arc_data(&self, addr: u64, arc_ty: u64) -> Result<Option<(u64, u64)>> {
        let r = self;
        let Some((inner, Some(inner_ty))) = r.thin_pointer(arc_ty, addr)? else {
            return Ok(None);
        };
        if inner == 0 {
            return Ok(None);
        }
        // `ArcInner<T>.data`, `RcInner<T>.value`.
        let Some((d_off, d_ty)) = ["data", "value"].iter().find_map(|m| r.member(inner_ty, m))
        else {
            return Err(Error::MissingMember {
                ty: r.type_name(inner_ty).to_string(),
                member: "data or value",
            });
        };
        Ok(Some((inner + d_off, d_ty)))
    }
}

/// What a value owns that the decoders look for: a descriptor, an async fn's source file.
impl Reader<'_> {
    /// The first descriptor (`std::os::fd::OwnedFd`) a value owns or borrows: searched
    /// depth first through struct members, the active variant of enums and references,
    /// within a small budget.
    pub fn owned_fd(&self, addr: u64, ty: u64) -> Option<i32> {
        let mut budget = 256;
        self.owned_fd_in(addr, ty, 0, &mut budget)
    }

    fn owned_fd_in(&self, addr: u64, ty: u64, depth: usize, budget: &mut usize) -> Option<i32> {
        if depth > 14 || *budget == 0 {
            return None;
        }
        *budget -= 1;
        let ty = self.strip(ty);
        let name = self.type_name(ty);
        if name.ends_with("::OwnedFd") {
            let (off, _) = self.member(ty, "fd")?;
            let fd = self.uint(addr + off, 4).ok()? as i32;
            return (fd >= 0).then_some(fd);
        }
        // Shared state is not the value's own; a future's futures are not its socket.
        if name.starts_with("alloc::sync::Arc")
            || name.starts_with("alloc::rc::Rc")
            || name.starts_with('*')
        {
            return None;
        }
        if name.starts_with('&') || name.starts_with("alloc::boxed::Box") {
            let (p, pointee) = self.thin_pointer(ty, addr).ok()??;
            return self.owned_fd_in(p, pointee?, depth + 1, budget);
        }
        if let Ok(Some(v)) = self.variant(ty, addr) {
            return self.members(v.ty).into_iter().find_map(|(_, off, t)| {
                self.owned_fd_in(addr + v.offset + off, t, depth + 1, budget)
            });
        }
        self.members(ty)
            .into_iter()
            .find_map(|(_, off, t)| self.owned_fd_in(addr + off, t, depth + 1, budget))
    }

    /// The `decl_file` of the variant `name` of the state machine `env_ty`.
    pub fn variant_decl_file(&self, env_ty: u64, name: &str) -> Option<String> {
        self.variant_decl(env_ty, name).map(|d| d.0)
    }

    /// The `decl_file` and `decl_line` of the variant `name` (`Unresumed`, `Returned`,
    /// `SuspendN`) of the state machine `env_ty`.
    pub fn variant_decl(&self, env_ty: u64, name: &str) -> Option<(String, u32)> {
        use crate::debuginfo::Kind;
        let d = self.info.die(self.strip(env_ty))?;
        for part in d.children.iter().filter_map(|c| self.info.die(*c)) {
            if part.kind != Kind::VariantPart {
                continue;
            }
            for v in part.children.iter().filter_map(|c| self.info.die(*c)) {
                for m in v.children.iter().filter_map(|c| self.info.die(*c)) {
                    if m.kind == Kind::Member
                        && m.ty.is_some_and(|t| {
                            crate::type_names::last_segment(self.type_name(t)) == name
                        })
                    {
                        return m.decl.clone();
                    }
                }
            }
        }
        None
    }
}
