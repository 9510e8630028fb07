//! The pprof export of a real captured trace, read back by Go's own `pprof` tool.

use std::process::Command;
use tasktrace::model::{pprof, Dump, Task};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_pprof_reads_the_export() {
    let trace = seed::trace_seed().await.expect("trace");
    // `debug = "line-tables-only"` names inlined async fns `{async_fn#0}`: the order of the
    // named frames is checked where the build has the names.
    let named = format!("{trace:#}").contains("seed::foo");
    let mut task = Task::new(1);
    task.name = Some("seed".into());
    task.trace = trace.into_model();
    let dump = Dump::new(vec![task]);
    let dir = std::env::temp_dir().join(format!("tasktrace-pprof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tasks.pb.gz");
    std::fs::write(&file, pprof::to_pprof(&dump)).unwrap();

    let go = match Command::new("go")
        .args(["tool", "pprof", "-traces"])
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: Go's pprof is not installed here ({e}); CI installs golang-go");
            return;
        }
        Err(e) => panic!("go tool pprof must run in CI: {e}"),
    };
    let stdout = String::from_utf8_lossy(&go.stdout);
    let stderr = String::from_utf8_lossy(&go.stderr);
    assert!(go.status.success(), "pprof failed: {stderr}");
    // Two samples (the two join branches), each a stack from the leaf up to foo.
    let samples: Vec<&str> = stdout
        .split("-----------+-------------------------------------------------------")
        .filter(|s| s.contains("foo"))
        .collect();
    if !named {
        let samples = stdout.matches("task_name:  seed").count();
        assert_eq!(samples, 2, "two samples:\n{stdout}");
        std::fs::remove_dir_all(&dir).ok();
        return;
    }
    assert_eq!(samples.len(), 2, "two samples:\n{stdout}");
    for sample in samples {
        let foo = sample.find("seed::foo").expect("foo in the stack");
        let bar = sample.find("seed::bar").expect("bar in the stack");
        let pending = sample.find("seed::pending").expect("pending in the stack");
        assert!(
            pending < bar && bar < foo,
            "leaf first, root last:\n{sample}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
