//! Every renderer on REAL captured traces: the seed program (`seed::trace_seed()`) and a
//! small service of many tasks (`scenario`), captured in this process.
//!
//! Snapshots (`insta`) are taken in dev builds, and for the seed's default view also in
//! release (`debug = "limited"`), where it must read the same; other profiles check the same
//! properties with assertions. The clean views hold no absolute path, so the snapshots do
//! not depend on where the repository is checked out.

#![allow(clippy::disallowed_names)] // foo, bar, baz: the seed program's names.

#[path = "../../tasktrace/tests/support/mod.rs"]
mod support;

mod scenario;

use scenario::{Scale, Scenario};
use support::{has_names, profile};
use tasktrace::model::{Dump, Format, FrameKind, Node, Trace};

/// Words that must never reach the default view.
const PLUMBING: &[&str] = &[
    "PollFn",
    "MaybeDone",
    "poll_fn",
    "Waker",
    "clone_raw",
    "{{closure}}",
    "async_fn_env",
    "/rustc/",
    "/.cargo/",
    "registry",
    "tasktrace::",
    "tokio::",
    "core::",
];

fn assert_no_plumbing(text: &str) {
    for line in text.lines() {
        for word in PLUMBING {
            assert!(!line.contains(word), "{word:?} in line {line:?} of\n{text}");
        }
    }
}

fn is_dev() -> bool {
    profile() == "debug"
}

/// The function of a clean node (`??` when the debuginfo has no name for it).
fn name(n: &Node) -> &str {
    &n.frame.function
}

fn line(n: &Node) -> u32 {
    n.frame.location.as_ref().map_or(0, |l| l.line)
}

/// The shape the issue asks for: foo → bar → {fiz → pending | buz → baz → pending}, async fns
/// suspended at the await lines of `src/lib.rs`, leaves annotated.
fn check_seed_shape(clean: &Trace, text: &str) {
    assert!(clean.node_count() <= 9, "at most 9 nodes:\n{text}");
    assert_eq!(clean.node_count(), 7, "{text}");
    assert_eq!(clean.roots.len(), 1, "{text}");
    let foo = &clean.roots[0];
    let expect = |n: &Node, fn_name: &str, l: u32| {
        assert_eq!(n.frame.kind, FrameKind::AsyncFn, "{text}");
        assert_eq!(line(n), l, "{fn_name} line:\n{text}");
        let file = &n.frame.location.as_ref().unwrap().file;
        assert_eq!(file, "src/lib.rs", "{text}");
        if has_names() {
            assert_eq!(name(n), fn_name, "{text}");
        } else {
            assert!(
                name(n) == fn_name || name(n) == "??",
                "{fn_name} is named or unnamed, never misnamed:\n{text}"
            );
        }
    };
    expect(foo, "seed::foo", 20);
    let [bar] = foo.children.as_slice() else {
        panic!("foo awaits bar only:\n{text}")
    };
    expect(bar, "seed::bar", 25);
    let [fiz, buz] = bar.children.as_slice() else {
        panic!("bar joins two branches:\n{text}")
    };
    expect(fiz, "seed::fiz", 30);
    expect(buz, "seed::buz", 35);
    let [baz] = buz.children.as_slice() else {
        panic!("buz awaits baz:\n{text}")
    };
    expect(baz, "seed::baz", 40);
    for parent in [fiz, baz] {
        let [pending] = parent.children.as_slice() else {
            panic!("one pending below:\n{text}")
        };
        expect(pending, "seed::pending", 15);
        assert!(pending.children.is_empty(), "{text}");
        assert_eq!(
            pending.frame.annotation().as_deref(),
            Some("waiting on closure at src/lib.rs:12"),
            "the poll_fn closure is the leaf:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_default_view() {
    let trace = seed::trace_seed().await.expect("trace");
    let text = trace.to_string();
    assert_no_plumbing(&text);
    check_seed_shape(&trace.clean(), &text);
    if has_names() {
        assert!(
            text.starts_with("╼ async fn seed::foo at src/lib.rs:20\n"),
            "{text}"
        );
    }
    // dev and release (`debug = "limited"`) read the same.
    if is_dev() || profile() == "release" {
        insta::assert_snapshot!("seed_default", text);
    }
    // Cleaning is idempotent.
    assert_eq!(trace.clean().clean(), trace.clean());
    assert_eq!(trace.clean().to_string(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_verbose_view() {
    let trace = seed::trace_seed().await.expect("trace");
    let text = format!("{trace:#}");
    if std::env::var_os("TASKTRACE_PRINT").is_some() {
        println!("{trace}\n{text}");
    }
    assert_eq!(
        trace.normalized().node_count(),
        trace.node_count(),
        "every frame:\n{text}"
    );
    assert!(
        !text.contains("/rustc/") && !text.contains("/.cargo/"),
        "{text}"
    );
    assert!(text.contains(" at core/src/future/poll_fn.rs:"), "{text}");
    assert!(text.contains(" at tokio-1.54.1/src/"), "{text}");
    assert!(text.contains(" at src/lib.rs:20:11"), "{text}");
    if is_dev() {
        insta::assert_snapshot!("seed_verbose", mask_external_lines(&text));
    }
}

/// `core/src/task/wake.rs:619:29` → `core/src/task/wake.rs:_`: line numbers of the toolchain
/// and of dependencies change with their versions, the shape does not.
fn mask_external_lines(text: &str) -> String {
    text.lines()
        .map(|l| match l.find(" at ") {
            Some(i) if !l[i + 4..].starts_with("src/") => {
                let loc = &l[i + 4..];
                let file_end = loc.find(".rs:").map_or(loc.len(), |j| j + 3);
                format!("{} at {}:_\n", &l[..i], &loc[..file_end])
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_trace_renders_in_every_format() {
    let trace = seed::trace_seed().await.expect("trace");
    let folded = trace.render(Format::Folded);
    assert_eq!(folded.lines().count(), 2, "one line per branch:\n{folded}");
    assert_no_plumbing(&folded);
    if has_names() {
        assert_eq!(
            folded,
            "seed::foo at src/lib.rs:20;seed::bar at src/lib.rs:25;seed::buz at src/lib.rs:35;\
             seed::baz at src/lib.rs:40;seed::pending at src/lib.rs:15;\
             [waiting on closure at src/lib.rs:12] 1\n\
             seed::foo at src/lib.rs:20;seed::bar at src/lib.rs:25;seed::fiz at src/lib.rs:30;\
             seed::pending at src/lib.rs:15;[waiting on closure at src/lib.rs:12] 1\n"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&trace.render(Format::Json)).unwrap();
    assert_eq!(json["roots"][0]["frame"]["kind"], "async_fn");
    assert_eq!(json["roots"][0]["frame"]["location"]["line"], 20);
    let raw: Trace = serde_json::from_str(&trace.render(Format::JsonRaw)).unwrap();
    assert_eq!(&raw, &*trace, "the raw JSON is the trace as captured");
    let svg = trace.render(Format::Svg);
    assert!(
        svg.contains("<svg") && svg.contains("seed::pending"),
        "{svg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_notes() {
    let dump = scenario::leaves::leaves_dump().await;
    let text = dump.to_string();
    assert_no_plumbing(&text);
    let expected = [
        ("sleep", "waiting on timer"),
        ("mpsc recv", "waiting on mpsc receive"),
        ("mpsc send", "waiting on mpsc send"),
        ("oneshot", "waiting on oneshot receive"),
        ("broadcast", "waiting on broadcast receive"),
        ("watch", "waiting on watch change"),
        ("notify", "waiting on Notify"),
        ("mutex", "waiting on Mutex lock"),
        ("semaphore", "waiting on semaphore acquire"),
        ("join handle", "waiting on "),
        ("accept", "waiting on socket accept"),
        ("select", "waiting on "),
        ("timeout", "waiting on timer"),
    ];
    for (task, (name, note)) in dump.tasks.iter().zip(expected) {
        assert_eq!(task.name.as_deref(), Some(name));
        let clean = task.trace.clean();
        let leaves: Vec<_> = clean
            .walk()
            .into_iter()
            .filter(|(_, n)| n.children.is_empty())
            .map(|(_, n)| n.frame.clone())
            .collect();
        assert_eq!(leaves.len(), 1, "{name}: one leaf:\n{clean}");
        let got = leaves[0].annotation().unwrap_or_default();
        assert!(
            got.starts_with(note),
            "{name}: {got:?}, want {note:?}:\n{clean}"
        );
        if has_names() && name != "select" {
            // v0 mangling keeps generic arguments in names: `…::waits::<Sleep>`.
            let function = leaves[0].function.split("::<").next().unwrap_or_default();
            assert!(
                function.ends_with("::waits"),
                "{name}: the user fn is the leaf:\n{clean}"
            );
        }
    }
    let select = dump.tasks[11].trace.clean().to_string();
    assert!(
        select.contains("timer") && select.contains("Notify"),
        "{select}"
    );
    if is_dev() {
        insta::assert_snapshot!("leaves_default", text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_every_format() {
    let scenario = Scenario::start(Scale::SMALL).await;
    let dump = scenario.dump().await;
    assert_eq!(dump.tasks.len(), scenario.len(), "{dump}");
    let text = dump.render(Format::Text);
    assert_eq!(text, dump.to_string());
    assert_no_plumbing(&text);
    let grouped = dump.render(Format::Grouped);
    assert_no_plumbing(&grouped);
    assert!(
        grouped.contains("4 tasks like this: ids 2-5\n"),
        "the connections group:\n{grouped}"
    );
    assert!(
        grouped.contains("3 tasks like this: ids 6-8\n"),
        "{grouped}"
    );
    assert!(grouped.contains("[waiting on task 14]"), "{grouped}");
    let folded = dump.render(Format::Folded);
    let total: u64 = folded
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    // The seed task counts once per join branch.
    assert_eq!(total as usize, scenario.len() + 1, "{folded}");
    let json: serde_json::Value = serde_json::from_str(&dump.render(Format::Json)).unwrap();
    assert_eq!(json["schema_version"], tasktrace::model::SCHEMA_VERSION);
    assert_eq!(json["tasks"].as_array().unwrap().len(), scenario.len());
    let back: Dump = serde_json::from_value(json).unwrap();
    assert_eq!(
        back.render(Format::Text),
        text,
        "JSON round-trips the clean dump"
    );
    let svg = dump.render(Format::Svg);
    assert!(svg.contains("<svg") && svg.contains("waiting on socket read"));
    if has_names() {
        assert!(svg.contains("serve_connection"));
    }
    if std::env::var_os("TASKTRACE_PRINT").is_some() {
        println!("{grouped}");
    }
    if is_dev() {
        insta::assert_snapshot!("many_tasks_text", text);
        insta::assert_snapshot!("many_tasks_grouped", grouped);
        insta::assert_snapshot!("many_tasks_folded", folded);
        insta::assert_snapshot!("many_tasks_json", dump.render(Format::Json));
    }
}
