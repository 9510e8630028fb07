//! (b) The ELF/DWARF loader on arbitrary bytes: `DebugInfo::parse`, then the lookups the
//! upper layers make. No input may panic, hang or take unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasktrace_inspect::debuginfo::DebugInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = DebugInfo::parse(data.to_vec(), "fuzz.elf") else {
        return;
    };
    // The index (names by hash, scopes) and the DIEs it leads to, parsed on demand from the
    // fuzzed sections: every type named under a scope, its children and its variants.
    for (name, off) in info.types_with_prefix("").into_iter().take(256) {
        let _ = info.types_named(&name);
        if let Some(d) = info.die(off) {
            for c in d.children.iter().take(64) {
                let _ = info.die(*c);
            }
            let _ = info.variant_table(off);
            let _ = info.awaitees(&name);
        }
    }
    for (_, off) in info.types_with_prefix("tokio::").into_iter().take(64) {
        if let Some(d) = info.die(off) {
            for c in d.children.iter().take(64) {
                let _ = info.die(*c);
            }
        }
    }
    let _ = info.types_named("tokio::runtime::task::core::Header");
    let _ = info.subprogram_at(info.entry);
    let _ = info.vtable_type(info.entry);
    let mut buf = [0u8; 16];
    for &(vaddr, _, len) in info.loads.iter().take(16) {
        let _ = info.read_file_data(vaddr, &mut buf);
        let _ = info.read_file_data(vaddr.wrapping_add(len).wrapping_sub(8), &mut buf);
    }
    let _ = info.read_file_data(u64::MAX - 4, &mut buf);
    // A read of an empty target with this debuginfo: every layer above it on these types.
    let empty = tasktrace_fuzz::MemTarget::from_bytes(&[]);
    let _ = tasktrace_inspect::read(&empty, &info, &tasktrace_fuzz::options());
});
