#!/usr/bin/env bash
# Makes the fuzz seed corpora in OUTDIR/<target>/ from a live run of the demo target:
# a gcore of it, read in full, written back as a `read_memory` input and a small core file
# (examples/mkseed.rs); small ELF files with DWARF for `debuginfo`.
#   fuzz/seed.sh OUTDIR [DEMO_EXE]
set -euo pipefail
out=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
exe=$(realpath "${2:-$here/../target/debug/tasktrace-demo-target}")
mkdir -p "$out"/{core_file,debuginfo,read_memory}
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# A running demo target: wait (at most 60 s) for `ready`, then dump its core.
"$exe" >"$tmp/out" &
pid=$!
for _ in $(seq 600); do
    grep -q '^ready' "$tmp/out" 2>/dev/null && break
    sleep 0.1
done
grep -q '^ready' "$tmp/out" || { echo "seed.sh: the demo target never got ready" >&2; exit 1; }
timeout 120 gcore -o "$tmp/core" "$pid" >/dev/null 2>&1
# The read_memory fuzz binary makes the seeds (the same build as the fuzz runs: set
# FUZZ_FLAGS to the flags of `cargo fuzz run`).
(cd "$here" && TASKTRACE_FUZZ_EXE="$exe" TASKTRACE_FUZZ_MKSEED="$tmp/core.$pid:$exe:$out" \
    cargo +nightly fuzz run ${FUZZ_FLAGS:-} read_memory -- -runs=0)

# Small ELF files with DWARF types for the loader.
cat >"$tmp/types.c" <<'C'
struct inner { int a; long b; };
struct outer { struct inner in; union { int x; float y; } u; enum { A, B } e; struct outer *next; };
typedef struct outer outer_t;
outer_t value;
int main(void) { return value.in.a; }
C
if command -v cc >/dev/null 2>&1; then
    cc -g -O0 -o "$out/debuginfo/c-types" "$tmp/types.c"
fi
cat >"$tmp/lib.rs" <<'R'
#![no_std]
pub struct Header { pub state: u64, pub vtable: &'static u8 }
pub enum Stage<T> { Running(T), Finished(u32), Consumed }
pub async fn leaf() {}
pub async fn outer() { leaf().await; leaf().await }
pub fn keep() -> Stage<Header> { Stage::Consumed }
R
rustc --edition 2021 --crate-type lib --emit obj -C debuginfo=2 -C opt-level=0 \
    -o "$out/debuginfo/rust-types.o" "$tmp/lib.rs"
ls -l "$out"/*

# Truncated cores (cut by `ulimit -c`, a size cap or a full disk): each core seed cut inside
# its program headers and at 40, 60 and 80 % of its size.
for f in "$out"/core_file/*; do
    [ -f "$f" ] || continue
    case "$f" in *.cut-*) continue ;; esac
    size=$(stat -c %s "$f")
    for cut in 100 $((size * 2 / 5)) $((size * 3 / 5)) $((size * 4 / 5)); do
        head -c "$cut" "$f" >"$f.cut-$cut"
    done
done
ls -l "$out"/core_file
