//! What the snapshot's reader process does for one warm dump, in a process that callgrind can
//! count (the reader itself starts from `/proc/self/exe`, which under valgrind is valgrind).
//!
//! `reader_instr PID HANDLE DUMPS`: reads the program PID (examples/snapshot_instr.rs with
//! DUMPS 0, which prints its runtime handle's address) as the reader process does: one
//! session, a first read (the index), then DUMPS reads, each sent as the reader sends it (the
//! dump as JSON with each distinct tree once: the shape of `snapshot/reader.rs`'s `WireDump`,
//! which is the crate's own) and taken back as the program takes it. With `NOWIRE` set in
//! the environment, the reads alone. `bench/snapshot-instr.sh` runs it under callgrind.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tasktrace::model::{Dump, Node};

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    dump: Dump,
    trees: Vec<Arc<Vec<Node>>>,
    tree_of: Vec<u32>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pid: i32 = args[1].parse().unwrap();
    let handle: u64 = args[2].parse().unwrap();
    let dumps: usize = args[3].parse().unwrap();
    let opts = tasktrace_inspect::Options {
        timeout: Duration::from_secs(120),
        runtime_handles: vec![handle],
        ..Default::default()
    };
    let session = tasktrace_inspect::Session::new(pid, &opts).expect("session");
    let (first, _) = session.sample(&opts).expect("first read");
    let mut seen = first.tasks.len();
    let mut bytes = 0;
    for _ in 0..dumps {
        let (mut dump, _) = session.sample(&opts).expect("a read");
        if std::env::var_os("NOWIRE").is_some() {
            seen = dump.tasks.len();
            continue;
        }
        let mut index: HashMap<*const Vec<Node>, u32> = HashMap::new();
        let mut trees = Vec::new();
        let mut tree_of = Vec::new();
        for t in &mut dump.tasks {
            let roots = std::mem::take(&mut t.trace.roots);
            let i = *index.entry(Arc::as_ptr(&roots)).or_insert_with(|| {
                trees.push(roots.clone());
                (trees.len() - 1) as u32
            });
            tree_of.push(i);
        }
        let json = serde_json::to_string(&Wire {
            dump,
            trees,
            tree_of,
        })
        .unwrap();
        bytes = json.len();
        let back: Wire = serde_json::from_str(&json).unwrap();
        seen = back.dump.tasks.len();
    }
    println!("seen={seen} wire_bytes={bytes}");
}
