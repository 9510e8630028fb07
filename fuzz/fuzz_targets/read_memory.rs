//! (c) The value reader and the decoders over arbitrary memory: a target whose threads and
//! memory are the fuzz input (see `tasktrace_fuzz::MemTarget`), read in full with the demo
//! target's debuginfo by `tasktrace_inspect::read`. No input may panic (libFuzzer's panic hook
//! aborts even inside `read`'s `catch_unwind`), hang or take unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let target = tasktrace_fuzz::MemTarget::from_bytes(data);
    let _ = tasktrace_inspect::read(
        &target,
        tasktrace_fuzz::demo_info(),
        &tasktrace_fuzz::options(),
    );
});
