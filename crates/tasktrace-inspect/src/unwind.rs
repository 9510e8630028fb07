//! Native stacks of stopped threads (x86-64), by the call frame information in the mapped
//! ELF files' `.eh_frame` (binary-searched through `.eh_frame_hdr`), symbolised with their
//! symbol tables. Used by the threads view for a worker inside a poll: what the task's code
//! is doing right now.
//!
//! Only `rip`, `rsp` and `rbp` are known of the stopped thread; frames whose CFA rule needs
//! another register end the walk. Each step is checked (the stack grows down, return addresses
//! lie in a mapped file), and the walk is bounded.

use crate::target::{MappedFile, Registers, Target};
use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindContext, UnwindSection};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Deepest stack walked.
const MAX_FRAMES: usize = 64;

/// One mapped ELF file with its unwind tables and symbols.
struct Module {
    start: u64,
    end: u64,
    bias: u64,
    data: Vec<u8>,
    eh_frame: Option<(u64, std::ops::Range<usize>)>,
    eh_frame_hdr: Option<(u64, std::ops::Range<usize>)>,
    text: u64,
    /// (address, size, demangled name), sorted by address.
    symbols: Vec<(u64, u64, String)>,
}

impl Module {
    fn load(path: &str, maps: &[&MappedFile]) -> Option<Module> {
        let data = std::fs::read(path).ok()?;
        let obj = object::File::parse(&*data).ok()?;
        let range = |name: &str| {
            let s = obj.section_by_name(name)?;
            let (off, len) = s.file_range()?;
            Some((s.address(), off as usize..(off + len) as usize))
        };
        let eh_frame = range(".eh_frame");
        let eh_frame_hdr = range(".eh_frame_hdr");
        let text = obj.section_by_name(".text").map_or(0, |s| s.address());
        // bias: a mapping at `start` of file offset `offset` holds the segment bytes at
        // vaddr `seg.vaddr + (offset - seg.offset)`.
        let first = maps.iter().min_by_key(|m| m.offset)?;
        let seg = obj.segments().find(|s| {
            let (off, len) = s.file_range();
            first.offset >= off && first.offset < off + len.max(1)
        })?;
        let (seg_off, _) = seg.file_range();
        let vaddr = seg.address() + (first.offset - seg_off);
        let bias = first.start.wrapping_sub(vaddr);
        let mut symbols: Vec<(u64, u64, String)> = obj
            .symbols()
            .chain(obj.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), demangle(s.name().ok()?))))
            .collect();
        symbols.sort_by_key(|s| s.0);
        symbols.dedup_by_key(|s| s.0);
        Some(Module {
            start: maps.iter().map(|m| m.start).min()?,
            end: maps.iter().map(|m| m.end).max()?,
            bias,
            data,
            eh_frame,
            eh_frame_hdr,
            text,
            symbols,
        })
    }

    fn symbol(&self, pc: u64) -> Option<&str> {
        let lpc = pc.wrapping_sub(self.bias);
        let i = self
            .symbols
            .partition_point(|s| s.0 <= lpc)
            .checked_sub(1)?;
        let (addr, size, name) = &self.symbols[i];
        (size == &0 || lpc < addr + size).then_some(name.as_str())
    }

    /// The caller's (rip, rsp, rbp) of the frame at `regs`, from this module's CFI.
    fn step(&self, t: &dyn Target, regs: Registers, first: bool) -> Option<Registers> {
        let (eh_addr, eh_range) = self.eh_frame.clone()?;
        let eh = EhFrame::new(self.data.get(eh_range)?, LittleEndian);
        let mut bases = BaseAddresses::default()
            .set_eh_frame(eh_addr)
            .set_text(self.text);
        // A return address points after the call: look up the call itself.
        let lpc = regs
            .rip
            .wrapping_sub(self.bias)
            .wrapping_sub(u64::from(!first));
        let mut ctx = Box::new(UnwindContext::new());
        let row = match &self.eh_frame_hdr {
            Some((hdr_addr, hdr_range)) => {
                bases = bases.set_eh_frame_hdr(*hdr_addr);
                let hdr = EhFrameHdr::new(self.data.get(hdr_range.clone())?, LittleEndian)
                    .parse(&bases, 8)
                    .ok()?;
                let table = hdr.table()?;
                table
                    .unwind_info_for_address(&eh, &bases, &mut ctx, lpc, EhFrame::cie_from_offset)
                    .ok()?
                    .clone()
            }
            None => eh
                .unwind_info_for_address(&bases, &mut ctx, lpc, EhFrame::cie_from_offset)
                .ok()?
                .clone(),
        };
        let reg = |r: gimli::Register| match r.0 {
            6 => Some(regs.rbp),
            7 => Some(regs.rsp),
            _ => None,
        };
        let cfa = match row.cfa() {
            gimli::CfaRule::RegisterAndOffset { register, offset } => {
                reg(*register)?.wrapping_add(*offset as u64)
            }
            gimli::CfaRule::Expression(_) => return None,
        };
        let read = |a: u64| -> Option<u64> {
            let mut b = [0u8; 8];
            t.read(a, &mut b).ok()?;
            Some(u64::from_le_bytes(b))
        };
        let rule = |r: u16, old: u64| -> Option<u64> {
            match row.register(gimli::Register(r)) {
                None | Some(gimli::RegisterRule::SameValue) => Some(old),
                Some(gimli::RegisterRule::Offset(o)) => read(cfa.wrapping_add(o as u64)),
                Some(gimli::RegisterRule::ValOffset(o)) => Some(cfa.wrapping_add(o as u64)),
                _ => None,
            }
        };
        let ra = match row.register(gimli::Register(16)) {
            Some(gimli::RegisterRule::Offset(o)) => read(cfa.wrapping_add(o as u64))?,
            _ => read(cfa.wrapping_sub(8))?,
        };
        Some(Registers {
            rip: ra,
            rsp: cfa,
            rbp: rule(6, regs.rbp)?,
        })
    }
}

/// The unwinder of one target: its mapped ELF files.
pub struct Unwinder {
    modules: Vec<Module>,
}

impl Unwinder {
    /// Loads the unwind tables and symbols of every file mapped into `t`.
    pub fn new(t: &dyn Target) -> Self {
        Self::from_maps(&t.mapped_files())
    }

    /// Loads the unwind tables and symbols of these mapped files (e.g. read from
    /// `/proc/PID/maps` before the process is stopped, so it is not stopped for this).
    pub fn from_maps(maps: &[MappedFile]) -> Self {
        let mut paths: Vec<&str> = maps.iter().map(|m| m.path.as_str()).collect();
        paths.sort();
        paths.dedup();
        let modules = paths
            .into_iter()
            .filter_map(|p| {
                let of: Vec<&MappedFile> = maps.iter().filter(|m| m.path == p).collect();
                Module::load(p, &of)
            })
            .collect();
        Unwinder { modules }
    }

    /// True when nothing can be unwound (no mapped files known: a core file).
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    fn module(&self, pc: u64) -> Option<&Module> {
        self.modules.iter().find(|m| pc >= m.start && pc < m.end)
    }

    /// The native stack of a thread stopped at `regs`, innermost first: (pc, symbol).
    pub fn stack(&self, t: &dyn Target, regs: Registers) -> Vec<(u64, Option<String>)> {
        let mut out = Vec::new();
        let mut cur = regs;
        for i in 0..MAX_FRAMES {
            let Some(m) = self.module(cur.rip) else { break };
            out.push((cur.rip, m.symbol(cur.rip).map(str::to_string)));
            let Some(next) = m.step(t, cur, i == 0) else {
                break;
            };
            // The stack grows down: a caller's frame is above.
            if next.rip == 0 || next.rsp <= cur.rsp {
                break;
            }
            cur = next;
        }
        out
    }
}

/// Demangles a Rust symbol: legacy (`_ZN…17h<hash>E`), or v0 (`_R…`) for plain nested
/// paths (crate roots, modules, functions, closures); anything else is left as it is.
pub fn demangle(name: &str) -> String {
    if let Some(v0) = name.strip_prefix("_R") {
        let mut p = V0 {
            s: v0.as_bytes(),
            at: 0,
        };
        return p.path(0).unwrap_or_else(|| name.to_string());
    }
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts = Vec::new();
    while let Some(c) = rest.chars().next() {
        if c == 'E' {
            break;
        }
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let Ok(len) = rest[..digits].parse::<usize>() else {
            return name.to_string();
        };
        let Some(part) = rest.get(digits..digits + len) else {
            return name.to_string();
        };
        parts.push(part);
        rest = &rest[digits + len..];
    }
    if parts.last().is_some_and(|p| {
        p.len() == 17 && p.starts_with('h') && p[1..].chars().all(|c| c.is_ascii_hexdigit())
    }) {
        parts.pop();
    }
    let joined = parts
        .iter()
        .map(|p| {
            p.strip_prefix('_')
                .filter(|s| s.starts_with('$'))
                .unwrap_or(p)
        })
        .collect::<Vec<_>>()
        .join("::");
    let mut s = joined;
    for (from, to) in [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$C$", ","),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$SP$", "@"),
        ("$u20$", " "),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u7e$", "~"),
        ("..", "::"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// A parser of the plain-path subset of v0 mangling.
struct V0<'s> {
    s: &'s [u8],
    at: usize,
}

impl V0<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn path(&mut self, depth: usize) -> Option<String> {
        if depth > 32 {
            return None;
        }
        match self.next()? {
            b'C' => self.ident().map(|(_, id)| id),
            b'N' => {
                let ns = self.next()?;
                let inner = self.path(depth + 1)?;
                let (dis, id) = self.ident()?;
                Some(match ns {
                    b'C' => format!("{inner}::{{closure#{dis}}}"),
                    _ if id.is_empty() => format!("{inner}::{{{}#{dis}}}", ns as char),
                    _ => format!("{inner}::{id}"),
                })
            }
            _ => None,
        }
    }

    /// `[s <base62> _] [u] <decimal> [_] <bytes>`: (disambiguator, identifier).
    fn ident(&mut self) -> Option<(u64, String)> {
        let mut dis = 0;
        if self.peek() == Some(b's') {
            self.at += 1;
            let mut v = 0u64;
            while let Some(c) = self.next() {
                if c == b'_' {
                    dis = v + 1;
                    break;
                }
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'z' => c - b'a' + 10,
                    b'A'..=b'Z' => c - b'A' + 36,
                    _ => return None,
                };
                v = v.checked_mul(62)?.checked_add(u64::from(d))?;
            }
        }
        if self.peek() == Some(b'u') {
            return None; // punycode
        }
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let len: usize = std::str::from_utf8(&self.s[start..self.at])
            .ok()?
            .parse()
            .ok()?;
        if self.peek() == Some(b'_') {
            self.at += 1;
        }
        let bytes = self.s.get(self.at..self.at + len)?;
        self.at += len;
        Some((dis, String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_legacy_rust_symbols() {
        assert_eq!(
            demangle("_ZN3std6thread5sleep17h0123456789abcdefE"),
            "std::thread::sleep"
        );
        assert_eq!(
            demangle("_ZN66_$LT$tokio..task..Foo$LT$T$GT$$u20$as$u20$core..future..Future$GT$4poll17h0123456789abcdefE"),
            "<tokio::task::Foo<T> as core::future::Future>::poll"
        );
        assert_eq!(demangle("clock_nanosleep"), "clock_nanosleep");
        assert_eq!(
            demangle("_RNvNtNtCsjrHSEGnQ3l9_3std6thread9functions5sleep"),
            "std::thread::functions::sleep"
        );
        assert_eq!(
            demangle("_RNCNvCs1234_4test4main0B3_"),
            "test::main::{closure#0}"
        );
        // Generic instances are left mangled.
        assert_eq!(demangle("_RINvCs1_1a1fmE"), "_RINvCs1_1a1fmE");
    }

    #[test]
    fn parses_proc_maps() {
        let maps = "55d0c0a00000-55d0c0a20000 r--p 00000000 fd:01 123 /usr/bin/x y\n\
                    7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n";
        let m = crate::target::parse_maps(maps);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, "/usr/bin/x y");
        assert_eq!(
            (m[0].start, m[0].end, m[0].offset),
            (0x55d0c0a00000, 0x55d0c0a20000, 0)
        );
    }
}
