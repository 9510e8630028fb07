//! Makes seed inputs from a real core of the demo target ([`tasktrace_fuzz::mkseed`]).
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example mkseed -- CORE EXE OUTDIR`
//! (`fuzz/seed.sh` does the same with the `read_memory` fuzz binary, to save a build.)

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, core, exe, out] = &args[..] else {
        eprintln!("usage: mkseed CORE EXE OUTDIR");
        std::process::exit(2);
    };
    tasktrace_fuzz::mkseed(core, exe, out);
}
