//! A target in a container, read from the host: a stripped build of `testdata/tokio-targets`
//! runs in its own pid and mount namespaces (`unshare -pm --fork --mount-proc`), chrooted into
//! a directory that holds only the executable, its libraries (`ldd`) and its debug file under
//! `usr/lib/debug/.build-id/`. The host has no debug file for it: `attach` finds the
//! container's through `/proc/PID/root`, and names the process by both its pids (the host's
//! and the container's, `NSpid`). A `gcore` core of it reads with `core CORE --sysroot DIR`
//! (the executable and debug file under DIR), and `core CORE` alone says where it looked.
//!
//! Needs root (namespaces, chroot). Without it the test is skipped outside CI and fails under
//! CI (`CI` set), where it runs as root.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Asserts foo → bar → join!(fiz, buz → Sleep): the debuginfo was found and used.
fn reads_foo(out: &std::process::Output, timer: &str) -> tasktrace_model::Dump {
    let d = dump_of(out);
    let bar = only_child(root(one(&d, "foo")));
    is_async(bar, "bar", "tokio::join!(fiz(), buz())");
    assert_eq!(bar.children.len(), 2, "{bar:#?}");
    let buz = bar
        .children
        .iter()
        .find(|c| c.frame.function == format!("{PREFIX}buz"))
        .expect("buz under bar");
    is_leaf(only_child(buz), "tokio::time::sleep::Sleep", timer);
    d
}

fn fails_with(out: &std::process::Output, parts: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for p in parts {
        assert!(err.contains(p), "{err:?} lacks {p:?}");
    }
}

/// Copies `file` to the same path under `root`.
fn copy_under(root: &Path, file: &str) {
    let to = root.join(file.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().expect("a directory")).unwrap();
    std::fs::copy(file, &to).unwrap_or_else(|e| panic!("copy {file} to {to:?}: {e}"));
}

/// The shared libraries `ldd` says `exe` loads, the dynamic loader included.
fn libraries(exe: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(exe).output().expect("ldd");
    assert!(out.status.success(), "ldd {exe}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// `DIR/.build-id/xx/rest.debug` for build id `id`.
fn build_id_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(".build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]))
}

/// The pid of `parent`'s only child, waited for (10 s at most).
fn only_child_of(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().expect("a pid");
        }
        assert!(
            Instant::now() < deadline,
            "process {parent} started no child within 10s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Root can make namespaces here; `false` (after a loud line) when not, outside CI.
fn can_make_containers() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let ok = unsafe { libc::geteuid() } == 0
        && Command::new("unshare")
            .args(["-pm", "--fork", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        missing(
            "unshare -pm (pid and mount namespaces)",
            "run as root, with util-linux's unshare",
        );
    }
    ok
}

#[test]
fn a_container_process_is_read_from_the_host() {
    if !can_make_containers() {
        return;
    }
    assert!(objcopy(&["--version"]), "objcopy (binutils) is needed");
    let exe = build_target("1.54.1", "dev");
    let scratch = Scratch::new("container");
    let s = |p: PathBuf| p.to_str().expect("utf-8").to_string();
    let debug = s(scratch.join("tokio-target.debug"));
    let stripped = s(scratch.join("tokio-target"));
    assert!(objcopy(&["--only-keep-debug", &exe, &debug]));
    assert!(objcopy(&["--strip-debug", &exe, &stripped]));
    let id = {
        let out = Command::new("readelf")
            .args(["-n", &stripped])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
            .expect("a build id")
    };

    // The container's root: the executable at /app, its libraries, its debug file.
    let root_dir = scratch.join("root");
    std::fs::create_dir_all(root_dir.join("app")).unwrap();
    std::fs::create_dir_all(root_dir.join("proc")).unwrap();
    std::fs::copy(&stripped, root_dir.join("app/tokio-target")).unwrap();
    for lib in libraries(&stripped) {
        copy_under(&root_dir, &lib);
    }
    let in_container = build_id_path(&root_dir.join("usr/lib/debug"), &id);
    std::fs::create_dir_all(in_container.parent().unwrap()).unwrap();
    std::fs::copy(&debug, &in_container).unwrap();

    let mount_proc = format!("--mount-proc={}", s(root_dir.join("proc")));
    let root_arg = s(root_dir.clone());
    let mut t = Target::spawn(
        "unshare",
        &[
            "-pm",
            "--fork",
            // The target dies with unshare, which the guard kills.
            "--kill-child",
            &mount_proc,
            "chroot",
            &root_arg,
            "/app/tokio-target",
            "1",
        ],
    );
    // `ready <port> <pid>`: the pid in the container is 1.
    let ready = t.wait_for("ready ");
    let mut words = ready.split_whitespace();
    t.port = words.next().and_then(|p| p.parse().ok()).expect("port");
    assert_eq!(words.next(), Some("1"), "pid 1 in its namespace: {ready}");
    t.pid = only_child_of(t.pid);
    let pid = t.pid.to_string();
    // No debug file on the host: no debuginfod server or cache, no host debug dir has it.
    let cache = s(scratch.join("debuginfod-cache"));
    let env = [
        ("DEBUGINFOD_URLS", ""),
        ("DEBUGINFOD_CACHE_PATH", cache.as_str()),
    ];

    let d = reads_foo(&tasktrace_env(&["attach", &pid, "--json"], &env), "s left");
    let both = format!("process {pid} (pid 1 in its own pid namespace) was stopped for");
    assert!(
        d.notes.iter().any(|n| n.starts_with(&both)),
        "{:?}",
        d.notes
    );

    // Without the container's debug file: it says it looked there.
    let aside = scratch.join("aside.debug");
    std::fs::rename(&in_container, &aside).unwrap();
    fails_with(
        &tasktrace_env(&["attach", &pid], &env),
        &[&format!(
            "/proc/{pid}/root/usr/lib/debug/.build-id/{}/{}.debug (not there)",
            &id[..2],
            &id[2..]
        )],
    );
    std::fs::rename(&aside, &in_container).unwrap();

    let Some(core) = gcore(t.pid, &scratch.join("core")) else {
        return;
    };
    t.assert_running_and_echoes();
    drop(t);

    // The container's root as the sysroot: its debug file is found there.
    let with_sysroot = ["core", &core, "--sysroot", &root_arg, "--json"];
    reads_foo(&tasktrace_env(&with_sysroot, &env), "deadline at");
    // Without it, the core names the executable (found), but no debug file is.
    fails_with(
        &tasktrace_env(&["core", &core], &env),
        &["no separate debug file", "/usr/lib/debug/.build-id/"],
    );
    // A copy of the files elsewhere (the container's directory gone): the executable the
    // core names is looked up under the sysroot as well.
    let named = s(root_dir.join("app/tokio-target"));
    let copy = scratch.join("copy");
    copy_under(&copy, &named);
    let copied_debug = build_id_path(&copy.join("usr/lib/debug"), &id);
    std::fs::create_dir_all(copied_debug.parent().unwrap()).unwrap();
    std::fs::copy(&debug, &copied_debug).unwrap();
    std::fs::remove_dir_all(&root_dir).unwrap();
    let copy_arg = s(copy);
    reads_foo(
        &tasktrace_env(&["core", &core, "--sysroot", &copy_arg, "--json"], &env),
        "deadline at",
    );
    // Without a sysroot, the executable is nowhere: where it looked, and what to do.
    fails_with(
        &tasktrace_env(&["core", &core], &env),
        &[
            &format!("the core names {named}; looked in {named} (not there)"),
            "--sysroot DIR",
        ],
    );
}
