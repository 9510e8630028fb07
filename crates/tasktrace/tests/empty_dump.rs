//! A dump with no task in it says why (a test binary of its own: the registry is global, and
//! no other test may register a task meanwhile).

#[test]
fn an_empty_dump_says_why_it_is_empty() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dump = rt.block_on(tasktrace::dump_with(
        tasktrace::DumpOptions::default().snapshot(false),
    ));
    assert!(dump.tasks.is_empty(), "{dump}");
    let why = dump
        .notes
        .iter()
        .find(|n| n.starts_with("no tasks: none was started with tasktrace::spawn or traced"))
        .unwrap_or_else(|| panic!("a note saying why: {:?}", dump.notes));
    if cfg!(feature = "snapshot") {
        assert!(why.contains("DumpOptions::snapshot is off"), "{why}");
    } else {
        assert!(why.contains("the `snapshot` feature"), "{why}");
    }
    assert!(
        dump.to_string().contains("no tasks:"),
        "the text shows it: {dump}"
    );
}
