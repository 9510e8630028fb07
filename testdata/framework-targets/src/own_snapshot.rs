//! What a fixture prints of its own in-process snapshot, shared by the fixtures that read
//! themselves (included with `#[path]`: the bins of this crate have no library).

use std::time::Duration;

/// Takes this process's snapshot with `options` until `parked` holds for it (every task at
/// its await; an event, not a sleep: the LocalSet's thread starts on its own time), 60 s at
/// most; then prints `ready` and the snapshot as `snapshot {…}` (JSON on one line), or
/// `snapshot-error …`.
pub async fn print_when(
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
    match inside {
        Ok(dump) => println!(
            "snapshot {}",
            dump.render(tasktrace::model::Format::Json)
                .replace('\n', " ")
        ),
        Err(e) => println!("snapshot-error {e}"),
    }
}
