//! Debuginfo in a separate file: `testdata/tokio-targets` (tokio 1.54.1) split with
//! `objcopy --only-keep-debug` / `--strip-debug --add-gnu-debuglink`, the stripped executable
//! run, and read through its `.gnu_debuglink`, the build-id layout, and `--debuginfo FILE`;
//! without any of them (or with the wrong file) one clear line, and the target runs on. Debug
//! sections compressed (zlib, zstd) in the executable or in the debug file read the same.

mod support;

use std::process::Command;
use support::*;

/// Asserts the dump has foo → bar → two join branches (the debuginfo was used).
fn reads_foo(out: &std::process::Output) {
    let d = dump_of(out);
    let bar = only_child(root(one(&d, "foo")));
    is_async(bar, "bar", "tokio::join!(fiz(), buz())");
    assert_eq!(bar.children.len(), 2, "{bar:#?}");
}

fn fails_with(out: &std::process::Output, message: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(message), "{err:?} lacks {message:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn separate_debug_files_are_found_or_given() {
    if !objcopy(&["--version"]) {
        missing("objcopy", "apt-get install binutils");
        return;
    }
    let exe = build_target("1.54.1", "dev");
    let dir = target_dir().join(format!("debugfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8").to_string();
    let debug = s(dir.join("tt.debug"));
    let stripped = s(dir.join("tt"));
    assert!(objcopy(&["--only-keep-debug", &exe, &debug]));
    assert!(objcopy(&[
        "--strip-debug",
        &format!("--add-gnu-debuglink={debug}"),
        &exe,
        &stripped
    ]));

    let t = Target::start(&stripped, &["1"]);
    let pid = t.pid.to_string();
    // 1. `.gnu_debuglink`, next to the executable.
    reads_foo(&tasktrace(&["attach", &pid, "--json"]));

    // 2. Moved away: the message says where it looked and what to do.
    let moved = s(dir.join("elsewhere/tt.debug"));
    std::fs::rename(&debug, &moved).unwrap();
    let none = tasktrace_env(
        &["attach", &pid],
        &[
            ("TASKTRACE_DEBUG_FILE_DIRECTORY", "/nonexistent"),
            // No debuginfod server either (a login shell may set one).
            ("DEBUGINFOD_URLS", ""),
        ],
    );
    fails_with(&none, "give one with --debuginfo FILE");
    assert!(String::from_utf8_lossy(&none.stderr).contains(&debug));

    // 3. `--debuginfo FILE`.
    reads_foo(&tasktrace(&[
        "attach",
        &pid,
        "--json",
        "--debuginfo",
        &moved,
    ]));
    // The wrong file is refused (its build id differs).
    let other = build_target("1.52.0", "dev");
    fails_with(
        &tasktrace(&["attach", &pid, "--debuginfo", &other]),
        "build id",
    );

    // 4. The build-id layout of a debug directory: DIR/.build-id/xx/rest.debug.
    let readelf = Command::new("readelf")
        .args(["-n", &stripped])
        .output()
        .expect("readelf");
    let notes = String::from_utf8_lossy(&readelf.stdout);
    if let Some(id) = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
    {
        let root = dir.join("debug-root");
        let sub = root.join(".build-id").join(&id[..2]);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::copy(&moved, sub.join(format!("{}.debug", &id[2..]))).unwrap();
        reads_foo(&tasktrace_env(
            &["attach", &pid, "--json"],
            &[("TASKTRACE_DEBUG_FILE_DIRECTORY", &s(root))],
        ));
    }
    t.assert_running_and_echoes();
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}

/// True if `readelf` shows `.debug_info` of `file` compressed.
fn debug_info_compressed(file: &str) -> bool {
    let out = Command::new("readelf")
        .args(["-t", file])
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = text.lines().skip_while(|l| !l.contains("] .debug_info"));
    lines.take(4).any(|l| l.contains("COMPRESSED"))
}

#[test]
fn compressed_debug_sections_are_read() {
    // `ld --compress-debug-sections`, `objcopy` and distributions' debug files compress the
    // DWARF sections (SHF_COMPRESSED, zlib or zstd).
    if !objcopy(&["--version"]) {
        missing("objcopy", "apt-get install binutils");
        return;
    }
    let exe = build_target("1.54.1", "dev");
    let dir = Scratch::new("compressed-debug");
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8").to_string();
    for format in ["zlib", "zstd"] {
        // In the executable itself.
        let packed = s(dir.join(format!("tt-{format}")));
        if !objcopy(&[
            &format!("--compress-debug-sections={format}"),
            &exe,
            &packed,
        ]) {
            assert_ne!(format, "zlib", "objcopy compresses with zlib");
            eprintln!("this objcopy cannot compress with {format}: skipped");
            continue;
        }
        assert!(debug_info_compressed(&packed), "{format}: not compressed");
        let t = Target::start(&packed, &["1"]);
        reads_foo(&tasktrace(&["attach", &t.pid.to_string(), "--json"]));
        t.assert_running_and_echoes();
        drop(t);

        // In a separate debug file, given with --debuginfo.
        let debug = s(dir.join(format!("tt-{format}.debug")));
        let stripped = s(dir.join(format!("tt-{format}-stripped")));
        assert!(objcopy(&[
            "--only-keep-debug",
            &format!("--compress-debug-sections={format}"),
            &exe,
            &debug
        ]));
        assert!(
            debug_info_compressed(&debug),
            "{format}: debug file not compressed"
        );
        assert!(objcopy(&["--strip-debug", &exe, &stripped]));
        let t = Target::start(&stripped, &["1"]);
        reads_foo(&tasktrace(&[
            "attach",
            &t.pid.to_string(),
            "--json",
            "--debuginfo",
            &debug,
        ]));
        t.assert_running_and_echoes();
    }
}
