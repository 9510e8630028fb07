//! (c) The value reader and the decoders over arbitrary memory: a target whose threads and
//! memory are the fuzz input (see `tasktrace_fuzz::MemTarget`), read in full with the demo
//! target's debuginfo by `tasktrace_inspect::read`. No input may panic (libFuzzer's panic hook
//! aborts even inside `read`'s `catch_unwind`), hang or take unbounded memory.
//!
//! With `TASKTRACE_FUZZ_MKSEED=CORE:EXE:OUTDIR` it makes the seeds instead
//! (`tasktrace_fuzz::mkseed`) and exits: `fuzz/seed.sh` uses it to save a build.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        if let Ok(spec) = std::env::var("TASKTRACE_FUZZ_MKSEED") {
            let parts: Vec<&str> = spec.splitn(3, ':').collect();
            let [core, exe, out] = parts[..] else {
                panic!("TASKTRACE_FUZZ_MKSEED=CORE:EXE:OUTDIR, not {spec:?}");
            };
            tasktrace_fuzz::mkseed(core, exe, out);
            std::process::exit(0);
        }
        tasktrace_fuzz::demo_info();
    },
    |data: &[u8]| {
        let target = tasktrace_fuzz::MemTarget::from_bytes(data);
        let _ = tasktrace_inspect::read(
            &target,
            tasktrace_fuzz::demo_info(),
            &tasktrace_fuzz::options(),
        );
    }
);
