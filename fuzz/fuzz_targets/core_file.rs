//! (a) The core-file reader on arbitrary bytes: `CoreFile::parse`, memory reads through it
//! (inside, across and outside its segments), then a full `read` with the demo target's
//! debuginfo. No input may panic, hang or take unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasktrace_inspect::process::core_file::CoreFile;
use tasktrace_inspect::process::Target;

fuzz_target!(|data: &[u8]| {
    let Ok(core) = CoreFile::parse(data.to_vec(), "fuzz.core") else {
        return;
    };
    let _ = core.at_entry();
    let mut buf = [0u8; 64];
    // Addresses the input names (its first words) and the threads' TLS areas.
    let mut addrs: Vec<u64> = data
        .chunks_exact(8)
        .take(32)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for t in core.threads() {
        addrs.push(t.fs_base);
        addrs.push(t.fs_base.wrapping_sub(64));
    }
    addrs.extend([0, u64::MAX - 8, u64::MAX]);
    for a in addrs {
        for len in [1usize, 8, 64] {
            let _ = core.read(a, &mut buf[..len]);
        }
    }
    let _ = tasktrace_inspect::read(
        &core,
        tasktrace_fuzz::demo_info(),
        &tasktrace_fuzz::options(),
    );
});
