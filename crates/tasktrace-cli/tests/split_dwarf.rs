//! Split DWARF: `testdata/tokio-targets` (tokio 1.54.1) built with `split-debuginfo =
//! "packed"` (its DWARF in `tokio-target.dwp` beside the binary) and `"unpacked"` (in `.dwo`
//! files under the build's `deps/`, which the binary's skeleton units name), in a dev and in a
//! release build (`debug = true`), and with DWARF 5. Each is read live with `attach --threads` and from a
//! `gcore` core file with `core` (the executable taken from the core), and each read must
//! show what the same read of the build without split DWARF shows: the same tasks and
//! threads, each with the same tree of frames (functions, kinds, await lines, join and select
//! branches, what the leaves wait on), the native callees of the running blocking task
//! included. Then a package that is not beside the executable: one line naming the `.dwp`
//! and the `.dwo` looked for; found once copied beside it, beside a separate debug file, or
//! in a debug directory by build id.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;
use tasktrace_model::{Dump, Node};

/// `text` with every run of digits as `#`: timers' seconds left, task and thread ids, fds and
/// ports differ between two runs of the same program.
fn blank_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// A tree of frames as text, one line per frame, indented by depth: its kind, function,
/// location (await or call line), status, branches, and note (numbers blanked).
fn shape(roots: &[Node]) -> String {
    fn walk(n: &Node, depth: usize, out: &mut String) {
        let f = &n.frame;
        let location = f.location.as_ref().map(ToString::to_string);
        out.push_str(&format!(
            "{:depth$}{:?} {} at {} {:?} {:?} [{}]\n",
            "",
            f.kind,
            f.function,
            location.as_deref().unwrap_or("-"),
            f.status,
            f.branches,
            blank_digits(f.note.as_deref().unwrap_or("")),
        ));
        for c in &n.children {
            walk(c, depth + 2, out);
        }
    }
    let mut out = String::new();
    for r in roots {
        walk(r, 0, &mut out);
    }
    out
}

/// What a read shows, in an order of its own: each task's tree, and each thread's role,
/// name, trees and native stack, each as `fix` makes it, sorted.
fn shapes(d: &Dump, fix: impl Fn(String) -> String) -> (Vec<String>, Vec<String>) {
    let mut tasks: Vec<String> = d.tasks.iter().map(|t| fix(shape(&t.trace.roots))).collect();
    let mut threads: Vec<String> = d
        .threads
        .iter()
        .map(|th| {
            let native: Vec<String> = th.native_stack.iter().map(ToString::to_string).collect();
            fix(format!(
                "{:?} {:?} {:?}\n{}{}",
                th.role,
                th.name,
                th.scheduler,
                shape(&th.trace.roots),
                blank_digits(&native.join("\n"))
            ))
        })
        .collect();
    tasks.sort();
    threads.sort();
    (tasks, threads)
}

/// Asserts `got` (a read of a split build, in the project directory `tokio-1.54.1SUFFIX`)
/// shows what `want` (the same read of the plain build) shows.
fn same_trees(got: &Dump, want: &Dump, suffix: &str, ctx: &str) {
    // Paths of the target's own source (native frames have them whole) are in the project
    // directory of its build.
    let project = |s: String| s.replace(&format!("/tokio-1.54.1{suffix}/"), "/tokio-1.54.1/");
    let (got_tasks, got_threads) = shapes(got, project);
    let (want_tasks, want_threads) = shapes(want, |s| s);
    assert!(
        want_tasks.len() >= 20,
        "{ctx}: the plain build's read has {} tasks",
        want_tasks.len()
    );
    assert_eq!(got_tasks, want_tasks, "{ctx}: tasks");
    assert_eq!(got_threads, want_threads, "{ctx}: threads");
    // The trees are the debuginfo's: named frames with their await lines.
    let bar = only_child(root(one(got, "foo")));
    is_async(bar, "bar", "tokio::join!(fiz(), buz())");
}

/// `attach --threads --json` of the running target `t`.
fn attach(t: &Target) -> Dump {
    dump_of(&tasktrace(&[
        "attach",
        &t.pid.to_string(),
        "--threads",
        "--json",
    ]))
}

/// `core --threads --json` of a `gcore` of `t` (the executable named by the core), the core
/// removed after; `None` without gcore (outside CI).
fn core(t: &Target, name: &str) -> Option<Dump> {
    let dir = Scratch::new(name);
    let core = gcore(t.pid, &dir.join("core"))?;
    Some(dump_of(&tasktrace(&["core", &core, "--threads", "--json"])))
}

/// Starts the tokio target built in `profile` and reads it live and from a core.
fn reads(profile: &str) -> (Dump, Option<Dump>) {
    let exe = build_target("1.54.1", profile);
    let t = Target::start(&exe, &["3"]);
    // `ready` is printed once the local runtime's tasks were polled, not once its thread
    // parked: until it has, its stack (where its root future is found) is in flux. Read
    // until the thread shows its root future (30 s at most).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let live = loop {
        let d = attach(&t);
        let parked = d
            .threads
            .iter()
            .any(|th| th.name.as_deref() == Some("local-rt") && !th.trace.roots.is_empty());
        if parked || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let from_core = core(&t, &format!("split-{profile}"));
    t.assert_running_and_echoes();
    (live, from_core)
}

/// The plain build `plain` and its split builds (`PLAIN-packed`, `PLAIN-unpacked`, each
/// with `suffix`) read alike, live and from a core.
fn split_builds_read_as_the_plain_one(plain: &str, suffix: &str) {
    let (want_live, want_core) = reads(plain);
    for split in ["packed", "unpacked"] {
        let profile = format!("{plain}-{split}{suffix}");
        let exe = build_target("1.54.1", &profile);
        let dwp = Path::new(&format!("{exe}.dwp")).exists();
        assert_eq!(dwp, split == "packed", "{profile}: {exe}.dwp");
        let (live, from_core) = reads(&profile);
        same_trees(&live, &want_live, suffix, &format!("{profile}, attach"));
        if let (Some(got), Some(want)) = (&from_core, &want_core) {
            same_trees(got, want, suffix, &format!("{profile}, core"));
        }
    }
}

#[test]
fn split_debuginfo_dev_builds_read_as_the_plain_one() {
    split_builds_read_as_the_plain_one("dev", "");
}

#[test]
fn split_debuginfo_release_builds_read_as_the_plain_one() {
    split_builds_read_as_the_plain_one("release", "");
}

/// With `-C dwarf-version=5`: DWARF 5 skeleton and split units (`DW_UT_skeleton`,
/// `DW_AT_dwo_name`, `DW_OP_addrx`), a version 5 package index.
#[test]
fn split_dwarf_5_dev_builds_read_as_the_plain_one() {
    split_builds_read_as_the_plain_one("dev", "-dwarf5");
}

fn fails_with(out: &std::process::Output, message: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(message), "{err:?} lacks {message:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn text(p: &Path) -> String {
    p.to_str().expect("utf-8").to_string()
}

/// A packed build's executable copied without its `.dwp`: one line names the package and the
/// `.dwo` looked for; with the package copied beside it, beside its separate debug file
/// (`--debuginfo`), or under a debug directory by build id, it reads.
#[test]
fn a_package_is_found_beside_the_executable_its_debug_file_or_by_build_id() {
    let binutils = ["objcopy", "readelf"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok());
    if !binutils {
        missing("objcopy or readelf", "apt-get install binutils");
        return;
    }
    let built = build_target("1.54.1", "dev-packed");
    let package = format!("{built}.dwp");
    let dir = Scratch::new("split-moved");
    let exe = dir.join("tt");
    std::fs::copy(&built, &exe).unwrap();
    let t = Target::start(&text(&exe), &["3"]);
    let pid = t.pid.to_string();

    // Not beside it (the build's `.dwo` files are gone too: rustc deleted them once packed).
    let none = tasktrace_env(
        &["attach", &pid],
        &[
            ("TASKTRACE_DEBUG_FILE_DIRECTORY", "/nonexistent"),
            ("DEBUGINFOD_URLS", ""),
        ],
    );
    let err = fails_with(&none, "split DWARF");
    assert!(
        err.contains(&format!("{}.dwp (not there)", text(&exe))),
        "the package looked for: {err}"
    );
    assert!(
        err.contains(".dwo (not there)"),
        "the .dwo looked for: {err}"
    );
    assert!(err.contains("split-debuginfo"), "{err}");
    // A package is not a debug file: given as one, it is refused, saying where it goes.
    fails_with(
        &tasktrace(&["attach", &pid, "--debuginfo", &package]),
        "put it beside the executable",
    );

    // Beside it.
    let beside = PathBuf::from(format!("{}.dwp", text(&exe)));
    std::fs::copy(&package, &beside).unwrap();
    let d = dump_of(&tasktrace(&["attach", &pid, "--json"]));
    only_child(root(one(&d, "foo")));
    std::fs::remove_file(&beside).unwrap();

    // Under a debug directory, by build id.
    let id = build_id(&exe);
    let root_dir = dir.join("debug-root");
    let sub = root_dir.join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(&package, sub.join(format!("{}.dwp", &id[2..]))).unwrap();
    let d = dump_of(&tasktrace_env(
        &["attach", &pid, "--json"],
        &[("TASKTRACE_DEBUG_FILE_DIRECTORY", &text(&root_dir))],
    ));
    only_child(root(one(&d, "foo")));
    t.assert_running_and_echoes();
    drop(t);

    // A stripped executable whose skeleton units are in a separate debug file: the package
    // beside that file, named after it.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let debug = elsewhere.join("tt.debug");
    let stripped = dir.join("tt-stripped");
    assert!(objcopy(&["--only-keep-debug", &built, &text(&debug)]));
    assert!(objcopy(&["--strip-debug", &built, &text(&stripped)]));
    std::fs::copy(&package, elsewhere.join("tt.dwp")).unwrap();
    let t = Target::start(&text(&stripped), &["3"]);
    let d = dump_of(&tasktrace(&[
        "attach",
        &t.pid.to_string(),
        "--json",
        "--debuginfo",
        &text(&debug),
    ]));
    only_child(root(one(&d, "foo")));
    t.assert_running_and_echoes();
}

/// The build id of the ELF file `p`, in hex (`readelf -n`).
fn build_id(p: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(p)
        .output()
        .expect("readelf");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("a build id")
        .to_string()
}

/// An unpacked build read where its `.dwo` files are not where the executable names them (a
/// core read on another machine; here, in a mount namespace where the build's `deps/` is an
/// empty tmpfs): one line names the `.dwo` looked for; with the `.dwo` files copied beside
/// the executable, the core reads.
#[test]
fn dwo_files_are_found_where_the_executable_names_them_or_beside_it() {
    let in_namespace = |script: &str| {
        Command::new("timeout")
            .args(["120", "unshare", "-m", "--propagation", "private"])
            .args(["sh", "-c", script])
            .env("DEBUGINFOD_URLS", "")
            .env("TASKTRACE_DEBUG_FILE_DIRECTORY", "/nonexistent")
            .output()
            .expect("run unshare")
    };
    if !in_namespace("true").status.success() {
        missing("unshare -m", "root, for a mount namespace");
        return;
    }
    let built = build_target("1.54.1", "dev-unpacked");
    let deps = target_dir().join("tokio-targets/target/dev-unpacked/deps");
    assert!(
        std::fs::read_dir(&deps).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".dwo")),
        "no .dwo in {deps:?}"
    );
    let dir = Scratch::new("split-unpacked");
    let t = Target::start(&built, &["3"]);
    let Some(core) = gcore(t.pid, &dir.join("core")) else {
        return;
    };
    drop(t);
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    let exe = app.join("tt");
    std::fs::copy(&built, &exe).unwrap();
    let read = format!(
        "mount -t tmpfs tt-hidden {} && exec {TASKTRACE} core {core} --exe {} --json",
        text(&deps),
        text(&exe)
    );
    let err = fails_with(&in_namespace(&read), "split DWARF");
    let looked = |at: &Path| format!("{}/", text(at));
    assert!(
        err.contains(&looked(&deps)) && err.contains(".dwo (not there)"),
        "where the executable names it: {err}"
    );
    assert!(err.contains(&looked(&app)), "beside the executable: {err}");

    for entry in std::fs::read_dir(&deps).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "dwo") {
            std::fs::copy(&path, app.join(path.file_name().unwrap())).unwrap();
        }
    }
    let d = dump_of(&in_namespace(&read));
    let bar = only_child(root(one(&d, "foo")));
    is_async(bar, "bar", "tokio::join!(fiz(), buz())");
}
