//! Makes seed inputs from a real core of the demo target: reads it in full through a recording
//! target, then writes what was read as a `read_memory` input and as a small core file for
//! `core_file`, and checks that both give the same tasks as the real core.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example mkseed -- CORE EXE OUTDIR`

use tasktrace_fuzz::{encode, mini_core, MemTarget, Recorder};
use tasktrace_inspect::debuginfo::DebugInfo;
use tasktrace_inspect::target::core::CoreFile;
use tasktrace_inspect::target::Target;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, core, exe, out] = &args[..] else {
        eprintln!("usage: mkseed CORE EXE OUTDIR");
        std::process::exit(2);
    };
    let info = DebugInfo::load(exe).expect("the executable's debuginfo");
    let file = CoreFile::open(core).expect("the core");
    let opts = tasktrace_fuzz::options();
    let rec = Recorder::new(&file);
    let real = tasktrace_inspect::read(&rec, &info, &opts).expect("a read of the real core");
    let chunks = rec.chunks(64);
    let fs: Vec<u64> = file.threads().iter().map(|t| t.fs_base).collect();

    let mem = encode(&fs, file.at_entry(), &chunks);
    let from_mem = tasktrace_inspect::read(&MemTarget::from_bytes(&mem), &info, &opts)
        .expect("a read of the seed");
    let mini = mini_core(file.threads(), file.at_entry(), &chunks);
    let from_mini = tasktrace_inspect::read(
        &CoreFile::parse(mini.clone(), "mini.core").expect("the mini core parses"),
        &info,
        &opts,
    )
    .expect("a read of the mini core");
    for (what, d) in [("read_memory seed", &from_mem), ("mini core", &from_mini)] {
        assert_eq!(
            d.tasks.len(),
            real.tasks.len(),
            "the {what} gives the real core's tasks"
        );
        assert_eq!(
            d.to_string(),
            real.to_string(),
            "the {what} gives the same trees"
        );
    }
    for (dir, name, bytes) in [
        ("read_memory", "demo-seed", &mem),
        ("core_file", "demo-mini-core", &mini),
    ] {
        let dir = std::path::Path::new(out).join(dir);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(name), bytes).expect("write the seed");
    }
    eprintln!(
        "mkseed: {} tasks, {} reads in {} chunks: read_memory seed {} bytes, mini core {} bytes",
        real.tasks.len(),
        rec.reads.borrow().len(),
        chunks.len(),
        mem.len(),
        mini.len()
    );
}
