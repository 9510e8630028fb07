//! What the fixtures that read themselves share (included with `#[path]`: the bins of this
//! crate have no library): a `LocalSet` on a thread of its own, and the print of their own
//! in-process snapshot.

use std::time::Duration;

/// Starts a thread named `local-rt` running a current-thread runtime and a `LocalSet`, on
/// which `spawn` spawns its tasks (they need not be `Send`: they are made on that thread).
pub fn local_set_thread(spawn: impl FnOnce(&tokio::task::LocalSet) + Send + 'static) {
    std::thread::Builder::new()
        .name("local-rt".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            spawn(&local);
            rt.block_on(local.run_until(std::future::pending::<()>()));
        })
        .unwrap();
}

/// Takes this process's snapshot with `options` until `parked` holds for it (every task at
/// its await; an event, not a sleep: the LocalSet's thread starts on its own time), 60 s at
/// most; then prints `ready` and the snapshot ([`print_snapshot`] as `snapshot`).
pub async fn print_own_snapshot_when(
    options: &tasktrace::snapshot::SnapshotOptions,
    parked: fn(&tasktrace::model::Dump) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let inside = loop {
        match tasktrace::snapshot::snapshot_with(options) {
            Ok(d) if parked(&d) || std::time::Instant::now() > deadline => break Ok(d),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break Err(e),
        }
    };
    println!("ready");
    print_snapshot("snapshot", inside);
}

/// Prints a snapshot as `{label} {…}` (JSON on one line), or `{label}-error …`.
pub fn print_snapshot(
    label: &str,
    snapshot: Result<tasktrace::model::Dump, tasktrace::snapshot::SnapshotError>,
) {
    match snapshot {
        Ok(dump) => println!(
            "{label} {}",
            dump.render(tasktrace::model::Format::Json)
                .replace('\n', " ")
        ),
        Err(e) => println!("{label}-error {e}"),
    }
}
