#!/usr/bin/env bash
# Build testdata/tokio-targets/main.rs against one tokio version.
#
#   build.sh VERSION [PROFILE] [OUT_DIR]
#
# VERSION  exact tokio version, e.g. 1.38.2
# PROFILE  dev (default) | release (opt-level 3, debug = true)
#          | release-limited (opt-level 3, debug = "limited")
#          | dev-unstable (dev, built with --cfg tokio_unstable, as tokio-console
#            users build: tasks keep their spawn location)
#          | dev-full (dev, tokio with features = ["full"], as most users build it:
#            `parking_lot` changes tokio's internal mutexes)
#          | dev-packed | release-packed (split-debuginfo = "packed": the DWARF in
#            tokio-target.dwp beside the binary, copied with it)
#          | dev-unpacked | release-unpacked (split-debuginfo = "unpacked": the DWARF
#            in .dwo files under the target dir's PROFILE/deps, where the binary's
#            skeleton units name them)
#          | dev-packed-dwarf5 | dev-unpacked-dwarf5 (the same, with -C dwarf-version=5:
#            DWARF 5 skeleton and split units instead of the GNU extension to DWARF 4)
# OUT_DIR  where the throw-away cargo project goes
#          (default: ${TMPDIR:-/tmp}/tasktrace-tokio-targets)
#
# Prints the absolute path of the built binary on stdout (cargo's output goes
# to stderr). Tries `cargo build --offline` first, then crates.io.
#
# TOKIO_TARGETS_SHARED_TARGET_DIR: one cargo target dir for every version (shared
# dependencies such as futures compile once); each build's binary is then copied
# to OUT_DIR/tokio-VERSION/bin/PROFILE/tokio-target, since all versions' builds
# write the same target/PROFILE/tokio-target.
set -euo pipefail

usage() {
    echo "usage: $0 VERSION [dev|release|release-limited|dev-unstable|dev-full|{dev,release}-{packed,unpacked}|dev-{packed,unpacked}-dwarf5] [OUT_DIR]" >&2
    exit 2
}

[ $# -ge 1 ] && [ $# -le 3 ] || usage
version=$1
profile=${2:-dev}
out=${3:-${TMPDIR:-/tmp}/tasktrace-tokio-targets}

case "$version" in
    1.[0-9]*.[0-9]*) ;;
    *) echo "bad tokio version: $version" >&2; usage ;;
esac
case "$profile" in
    dev) profile_dir=debug ;;
    dev-unstable) profile_dir=debug-unstable ;;
    dev-full) profile_dir=debug-full ;;
    release | release-limited) profile_dir=$profile ;;
    dev-packed | dev-unpacked | release-packed | release-unpacked) profile_dir=$profile ;;
    dev-packed-dwarf5 | dev-unpacked-dwarf5) profile_dir=$profile ;;
    *) echo "bad profile: $profile" >&2; usage ;;
esac
# --cfg tokio_unstable (as -C dwarf-version) changes every crate's fingerprint: its own target
# dir, so that it does not rebuild the others' dependencies each time.
cargo_profile=$profile
rustflags=
features='"rt", "rt-multi-thread", "macros", "net", "time", "sync", "io-util"'
suffix=
case "$profile" in
    dev-unstable) cargo_profile=dev; rustflags="--cfg tokio_unstable"; suffix=-unstable ;;
    dev-packed-dwarf5 | dev-unpacked-dwarf5)
        cargo_profile=${profile%-dwarf5}; rustflags="-C dwarf-version=5"; suffix=-dwarf5 ;;
    dev-full) cargo_profile=dev; features='"full"'; suffix=-full ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proj="$out/tokio-$version$suffix"
mkdir -p "$proj/src"
cp "$here/main.rs" "$proj/src/main.rs"

cat >"$proj/Cargo.toml.new" <<TOML
[package]
name = "tokio-target"
version = "0.1.0"
edition = "2021"
publish = false

[[bin]]
name = "tokio-target"
path = "src/main.rs"

[dependencies]
tokio = { version = "=$version", features = [$features] }
futures = "0.3"

[profile.dev]
debug = true

[profile.release]
debug = true
opt-level = 3

[profile.release-limited]
inherits = "release"
debug = "limited"

[profile.dev-packed]
inherits = "dev"
split-debuginfo = "packed"

[profile.dev-unpacked]
inherits = "dev"
split-debuginfo = "unpacked"

[profile.release-packed]
inherits = "release"
split-debuginfo = "packed"

[profile.release-unpacked]
inherits = "release"
split-debuginfo = "unpacked"

[workspace]
TOML
# Keep the old file (and cargo's freshness) when nothing changed.
if cmp -s "$proj/Cargo.toml.new" "$proj/Cargo.toml"; then
    rm "$proj/Cargo.toml.new"
else
    mv "$proj/Cargo.toml.new" "$proj/Cargo.toml"
fi

target_dir=${TOKIO_TARGETS_SHARED_TARGET_DIR:-$proj/target}
target_dir="$target_dir$suffix"
build() {
    if [ -n "$rustflags" ]; then
        RUSTFLAGS="$rustflags" CARGO_TARGET_DIR="$target_dir" \
            cargo build --manifest-path "$proj/Cargo.toml" --profile "$cargo_profile" "$@" 1>&2
    else
        CARGO_TARGET_DIR="$target_dir" cargo build --manifest-path "$proj/Cargo.toml" --profile "$cargo_profile" "$@" 1>&2
    fi
}
if ! build --offline 2>/dev/null; then
    build
fi

bin="$target_dir/${profile_dir%"$suffix"}/tokio-target"
[ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
if [ -n "${TOKIO_TARGETS_SHARED_TARGET_DIR:-}" ]; then
    mkdir -p "$proj/bin/$profile_dir"
    # Copy to a temporary name and rename: a running copy of the old binary is not disturbed.
    cp "$bin" "$proj/bin/$profile_dir/tokio-target.tmp"
    # A packed build's DWARF is in the .dwp beside the binary: it goes with it (first, so
    # that a binary is never beside another build's .dwp).
    if [ -f "$bin.dwp" ]; then
        cp "$bin.dwp" "$proj/bin/$profile_dir/tokio-target.dwp.tmp"
        mv -f "$proj/bin/$profile_dir/tokio-target.dwp.tmp" "$proj/bin/$profile_dir/tokio-target.dwp"
    fi
    mv -f "$proj/bin/$profile_dir/tokio-target.tmp" "$proj/bin/$profile_dir/tokio-target"
    bin="$proj/bin/$profile_dir/tokio-target"
fi
echo "$bin"
