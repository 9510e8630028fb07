//! `GET /debug/tasks`: the [`dump`](crate::dump()) of every registered task over HTTP
//! (cargo feature `http`).
//!
//! **This endpoint exposes the internals of the process** — function names, source paths, task
//! names, what every task waits on — and each request wakes every registered task polled since
//! the last dump (the others are still where that dump found them). Serve it on
//! loopback or an internal admin port, behind whatever authentication your other debug
//! endpoints have; never on the public internet.
//!
//! - [`serve`] runs a small HTTP/1 server (hyper) on a listener you bind:
//!   ```no_run
//!   # #[tokio::main]
//!   # async fn main() -> std::io::Result<()> {
//!   let listener = tokio::net::TcpListener::bind("127.0.0.1:6669").await?;
//!   tokio::spawn(tasktrace::http::serve(listener));
//!   // curl 'http://127.0.0.1:6669/debug/tasks?format=folded&task=handle_'
//!   # Ok(())
//!   # }
//!   ```
//! - [`respond`] is the same handler without a server, to mount in a service you already run
//!   (axum, hyper, anything that hands you the request target); see its example.
//!
//! Query parameters:
//!
//! | parameter | values | |
//! | --- | --- | --- |
//! | `format` | `text` (default), `verbose`, `grouped`, `json`, `json-raw`, `folded`, `svg`, `pprof`, `pprof-raw` | the renderers of [`Dump::render`] (`svg`: a flame graph), and a gzipped `profile.proto` ([`model::pprof`](crate::model::pprof)) of the traces in the default view (`pprof`: async fns and leaves, as the text shows them) or with every frame (`pprof-raw`) |
//! | `task` | a regex | keep only the tasks whose root frame's function matches (as captured, `app::serve::{{closure}}`, or clean, `app::serve`); tasks without a trace have no root frame and are left out |
//! | `fresh` | `1`, `true` | wake and capture every task, even those not polled since the last dump ([`DumpOptions::fresh`](crate::DumpOptions::fresh)): a task whose executor stopped polling then reads "not captured" |
//! | `values` | `1`, `true` | with the `snapshot` feature: show the values in the async fn frames of the tasks the snapshot reads — their arguments and the locals they keep across their await (`place_order(order_id: 981, user: "bob")`), the values of the task-locals in scope for each task, and the fields its `tracing` span recorded (`in span request{order_id=981}`, from tracing-subscriber's `fmt` layer); off by default, and answered `403` once the program called [`deny_values`] |
//!
//! `GET /debug/tasks/record?seconds=N` ([`RECORD_PATH`]) records where the tasks wait over
//! time, like `tasktrace record` from outside: a dump every `1/rate` s for `seconds` (at most
//! 300), every task's stacks summed over the samples ([`model::record`](crate::model::record)),
//! answered as `format` = `svg` (default, a flame graph whose widths are task-time),
//! `folded`, `speedscope` or `pprof` (a `samples` value); `rate` (default 10, at most 100)
//! and `task` as above.
//!
//! `GET /debug/tasks/top` ([`TOP_PATH`]) is the table of `tasktrace top PID --once`, taken
//! in process: `samples` dumps (default 3, at most 60) `interval` seconds apart (default 1,
//! from 0.1 to 10), one row per task — its state, root function, the innermost frame it waits
//! in with its line, what it waits on, how long it has been seen waiting there ("seen in every
//! sample since": `1.0s+` when already waiting at the first), how often it was seen running,
//! the diagnoses naming it ([`model::top`](crate::model::top)) — as `format` = `text`
//! (default, aligned columns) or `json` (the fields of `tasktrace top --once --format json`,
//! with `"in_process": true` and how long the dumps took, `dump_ms`, in place of the stopped
//! time `stopped_ms`); `task` as above keeps the rows of the matching tasks (the diagnoses
//! above the table stay the whole process's), and `fresh` as above.
//!
//! Answers: `200` with the dump; `400` with a one-line message for an unknown format or
//! parameter or a bad regex; `404` for any other path; `405` for a method other than `GET` or
//! `HEAD` ([`serve`] only).

use crate::model::record::RecordFormat;
use crate::model::top::history::History;
use crate::model::top::table::{self, Producer, Summary, TableFormat};
use crate::model::{Dump, Format, SampledDiagnoser, Task};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;

/// The path [`respond`] and [`serve`] answer.
pub const PATH: &str = "/debug/tasks";

/// The path of a recording over time (see the [module docs](self)).
pub const RECORD_PATH: &str = "/debug/tasks/record";

/// The path of the task table (see the [module docs](self)).
pub const TOP_PATH: &str = "/debug/tasks/top";

/// The most samples a table may ask for.
const MAX_TOP_SAMPLES: u32 = 60;

/// The shortest and longest interval between a table's samples, in seconds.
const TOP_INTERVAL: std::ops::RangeInclusive<f64> = 0.1..=10.0;

/// The longest recording a request may ask for.
const MAX_RECORD: Duration = Duration::from_secs(300);

/// The longest a `task=` regex may compile to (bytes of its automaton), so that a request
/// cannot make the process build a huge one.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// An answer of [`respond`], for whatever HTTP library carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status: 200, 400 or 404.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body: the rendered dump, or a one-line error message.
    pub body: Vec<u8>,
}

impl Response {
    fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Response {
            status,
            content_type: TEXT,
            body: format!("{message}\n").into_bytes(),
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// What a request asks for.
#[derive(Debug)]
struct Query {
    output: Output,
    task: Option<regex::Regex>,
    /// A recording over time, instead of one dump.
    record: Option<Record>,
    /// The task table, instead of one dump.
    top: Option<Top>,
    /// Every task captured anew ([`crate::DumpOptions::fresh`]).
    fresh: bool,
    /// The values of async fn frames ([`crate::DumpOptions::values`]).
    values: bool,
}

/// Whether `?values=1` is answered ([`deny_values`]).
static VALUES_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns `?values=1` off for this process: the endpoint then answers `403` to it. Values are
/// the arguments and locals of the program's async fns (ids, user names, whatever a request
/// carries): a program whose endpoint must never show them calls this once at start.
pub fn deny_values() {
    VALUES_ALLOWED.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// A boolean query parameter: `1`, `true` or present without a value; `0` or `false`.
fn flag(name: &str, value: &str) -> Result<bool, Response> {
    match value {
        "1" | "true" | "" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(Response::error(
            400,
            format_args!("bad {name}: {value} (1, true, 0 or false)"),
        )),
    }
}

/// `/debug/tasks/record`: how long, how often, and in which form.
#[derive(Debug)]
struct Record {
    seconds: Duration,
    rate: f64,
    format: RecordFormat,
}

/// The content type of a recording in `format`.
fn record_content_type(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Folded => TEXT,
        RecordFormat::Svg => "image/svg+xml",
        RecordFormat::Speedscope => "application/json",
        RecordFormat::Pprof => "application/octet-stream",
    }
}

/// `/debug/tasks/top`: how many samples, how far apart, and in which form.
#[derive(Debug)]
struct Top {
    samples: u32,
    interval: Duration,
    format: TableFormat,
}

impl Top {
    fn content_type(&self) -> &'static str {
        match self.format {
            TableFormat::Text => TEXT,
            TableFormat::Json => "application/json",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Render(Format),
    /// pprof of the default view (as `json`), or of every frame (`raw`, as `json-raw`).
    Pprof {
        raw: bool,
    },
}

impl Output {
    fn content_type(self) -> &'static str {
        match self {
            Output::Pprof { .. } => "application/octet-stream",
            Output::Render(Format::Json | Format::JsonRaw) => "application/json",
            Output::Render(Format::Svg) => "image/svg+xml",
            Output::Render(_) => TEXT,
        }
    }
}

/// Parses a request target (`/debug/tasks?format=json&task=serve`): `Err` is the answer.
fn parse(path_and_query: &str) -> Result<Query, Response> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    // Also accept the target without its leading slash, or with a trailing one.
    let path = path.trim_end_matches('/');
    let is = |p: &str| path == p || path == &p[1..];
    let (recording, table) = (is(RECORD_PATH), is(TOP_PATH));
    if !is(PATH) && !recording && !table {
        return Err(Response::error(
            404,
            format_args!("not found: {path} (try {PATH}, {RECORD_PATH} or {TOP_PATH})"),
        ));
    }
    let mut out = Query {
        output: Output::Render(Format::Text),
        task: None,
        record: recording.then_some(Record {
            seconds: Duration::from_secs(10),
            rate: 10.0,
            format: RecordFormat::Svg,
        }),
        top: table.then_some(Top {
            samples: 3,
            interval: Duration::from_secs(1),
            format: TableFormat::Text,
        }),
        fresh: false,
        values: false,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(top) = &mut out.top {
            match &*key {
                "samples" => {
                    top.samples = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_TOP_SAMPLES).contains(n))
                        .ok_or_else(|| {
                            Response::error(
                                400,
                                format_args!(
                                    "bad samples: {value} (a whole number, 1 <= samples <= \
                                     {MAX_TOP_SAMPLES})"
                                ),
                            )
                        })?;
                    continue;
                }
                "interval" => {
                    let seconds = value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| TOP_INTERVAL.contains(v))
                        .ok_or_else(|| {
                            Response::error(
                                400,
                                format_args!(
                                    "bad interval: {value} (seconds, {} <= interval <= {})",
                                    TOP_INTERVAL.start(),
                                    TOP_INTERVAL.end()
                                ),
                            )
                        })?;
                    top.interval = Duration::from_secs_f64(seconds);
                    continue;
                }
                "format" => {
                    top.format = value.parse().map_err(|_| {
                        Response::error(400, format_args!("bad format: {value} (text, json)"))
                    })?;
                    continue;
                }
                _ => {}
            }
        }
        if let Some(rec) = &mut out.record {
            let number = |max: f64| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0 && *v <= max)
                    .ok_or_else(|| {
                        Response::error(
                            400,
                            format_args!("bad {key}: {value} (0 < {key} <= {max})"),
                        )
                    })
            };
            match &*key {
                "seconds" => {
                    rec.seconds = Duration::from_secs_f64(number(MAX_RECORD.as_secs_f64())?);
                    continue;
                }
                "rate" => {
                    rec.rate = number(100.0)?;
                    continue;
                }
                "format" => {
                    rec.format = value.parse().map_err(|_| {
                        Response::error(
                            400,
                            format_args!("bad format: {value} (svg, folded, speedscope, pprof)"),
                        )
                    })?;
                    continue;
                }
                _ => {}
            }
        }
        match &*key {
            "format" if value == "pprof" => out.output = Output::Pprof { raw: false },
            "format" if value == "pprof-raw" => out.output = Output::Pprof { raw: true },
            "format" => {
                out.output = Output::Render(value.parse::<Format>().map_err(|_| {
                    Response::error(
                        400,
                        format_args!(
                            "bad format: {}",
                            Format::unknown(&value, &["pprof", "pprof-raw"])
                        ),
                    )
                })?)
            }
            "fresh" => out.fresh = flag("fresh", &value)?,
            "values" if out.record.is_none() && out.top.is_none() => {
                out.values = flag("values", &value)?;
                if out.values && !VALUES_ALLOWED.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Response::error(
                        403,
                        format_args!("values are turned off on this endpoint (http::deny_values)"),
                    ));
                }
            }
            "task" => {
                let re = regex::RegexBuilder::new(&value)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        // The regex crate's messages span several lines; one is enough here.
                        let first = e.to_string();
                        let first = first.lines().last().unwrap_or_default().trim().to_owned();
                        Response::error(400, format_args!("bad task regex {value:?}: {first}"))
                    })?;
                out.task = Some(re);
            }
            other => {
                return Err(Response::error(
                    400,
                    format_args!(
                        "unknown parameter {other:?} (known: format, task, fresh{})",
                        if out.record.is_some() {
                            ", seconds, rate"
                        } else if out.top.is_some() {
                            ", samples, interval"
                        } else {
                            ", values"
                        }
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// True when a root frame of the task's trace names a function `re` matches, as captured or
/// clean.
fn root_matches(task: &Task, re: &regex::Regex) -> bool {
    task.trace
        .roots
        .iter()
        .any(|n| re.is_match(&n.frame.function))
        || task
            .trace
            .clean()
            .roots
            .iter()
            .any(|n| re.is_match(&n.frame.function))
}

fn filter(dump: Dump, re: &regex::Regex) -> Dump {
    let total = dump.tasks.len();
    let notes = dump.notes;
    let kept: Vec<Task> = dump
        .tasks
        .into_iter()
        .filter(|t| root_matches(t, re))
        .collect();
    let kept_len = kept.len();
    let mut out = Dump::new(kept);
    out.notes = notes;
    out.notes.push(format!(
        "{kept_len} of {total} task(s) shown: those whose root frame matches /{re}/"
    ));
    out
}

/// Renders the answer of a request to `/debug/tasks` — the request target, path and query, as
/// in `/debug/tasks?format=json&task=serve` — with a [`dump`](crate::dump()) of every
/// registered task taken now. Bad requests are answered without taking a dump. Concurrent
/// calls take their dumps one at a time.
///
/// **It exposes the internals of the process: mount it only where your other debug endpoints
/// are, never on the public internet** (see the [module docs](self)).
///
/// To mount it in a hyper service you already run (axum: the same, in a handler that gets
/// the request's `Uri`):
///
/// ```no_run
/// use http_body_util::Full;
/// use hyper::body::{Bytes, Incoming};
/// use hyper::{Request, Response};
/// use hyper_util::rt::TokioIo;
///
/// async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
///     let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
///     if req.uri().path() == tasktrace::http::PATH {
///         let answer = tasktrace::http::respond(target).await;
///         return Ok(Response::builder()
///             .status(answer.status)
///             .header("content-type", answer.content_type)
///             .body(Full::new(Bytes::from(answer.body)))
///             .expect("a valid response"));
///     }
///     Ok(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
/// }
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         let service = hyper::service::service_fn(app);
///         let _ = hyper::server::conn::http1::Builder::new()
///             .serve_connection(TokioIo::new(stream), service)
///             .await;
///     });
/// }
/// # }
/// ```
///
/// Without a server:
///
/// ```
/// # #[tokio::main]
/// # async fn main() {
/// let task = tasktrace::spawn_named("orders", std::future::pending::<()>());
/// let answer = tasktrace::http::respond("/debug/tasks?format=json").await;
/// assert_eq!((answer.status, answer.content_type), (200, "application/json"));
/// assert!(String::from_utf8(answer.body).unwrap().contains("\"orders\""));
///
/// let answer = tasktrace::http::respond("/debug/tasks?format=yaml").await;
/// assert_eq!(answer.status, 400);
/// assert_eq!(tasktrace::http::respond("/metrics").await.status, 404);
/// task.abort();
/// # }
/// ```
pub async fn respond(path_and_query: &str) -> Response {
    let query = match parse(path_and_query) {
        Ok(q) => q,
        Err(answer) => return answer,
    };
    if let Some(rec) = &query.record {
        return record(rec, query.task.as_ref(), query.fresh).await;
    }
    if let Some(t) = &query.top {
        return top(t, query.task.as_ref(), query.fresh).await;
    }
    let dump = one_dump(query.fresh, query.values).await;
    let dump = match &query.task {
        Some(re) => filter(dump, re),
        None => dump,
    };
    let body = match query.output {
        Output::Pprof { raw: false } => crate::model::pprof::to_pprof(&dump.cleaned()),
        Output::Pprof { raw: true } => crate::model::pprof::to_pprof(&dump),
        Output::Render(format) => dump.render(format).into_bytes(),
    };
    Response {
        status: 200,
        content_type: query.output.content_type(),
        body,
    }
}

/// A dump; one at a time: each may wake every task, so a burst of requests is served in turn.
async fn one_dump(fresh: bool, values: bool) -> Dump {
    timed_dump(fresh, values).await.0
}

/// [`one_dump`], with how long the dump itself took (its turn once come).
async fn timed_dump(fresh: bool, values: bool) -> (Dump, Duration) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = std::time::Instant::now();
    let dump = crate::dump_with(crate::DumpOptions::default().fresh(fresh).values(values)).await;
    (dump, started.elapsed())
}

/// `/debug/tasks/record`: a dump every `1/rate` s for `seconds`, summed. A dump that takes
/// longer than the period delays the next one (no pile-up).
async fn record(rec: &Record, task: Option<&regex::Regex>, fresh: bool) -> Response {
    let period = Duration::from_secs_f64(1.0 / rec.rate);
    let until = tokio::time::Instant::now() + rec.seconds;
    let mut recording = crate::model::record::Recording::default();
    while tokio::time::Instant::now() < until {
        let started = tokio::time::Instant::now();
        let dump = one_dump(fresh, false).await;
        let dump = match task {
            Some(re) => filter(dump, re),
            None => dump,
        };
        recording.add(&dump);
        tokio::time::sleep_until((started + period).min(until)).await;
    }
    let title = format!(
        "Where the tasks waited: {} samples over {:.1}s",
        recording.samples(),
        rec.seconds.as_secs_f64()
    );
    let body = recording.render(rec.format, &title);
    Response {
        status: 200,
        content_type: record_content_type(rec.format),
        body,
    }
}

/// `/debug/tasks/top`: `samples` dumps `interval` apart (taken as the recording takes them:
/// one at a time, the lock held only for the dump itself), each fed to the model's
/// [`History`] and [`SampledDiagnoser`] as `tasktrace top` feeds its samples; the table of the
/// last one. A dump that takes longer than the interval delays the next one.
async fn top(top: &Top, task: Option<&regex::Regex>, fresh: bool) -> Response {
    let mut history = History::default();
    let mut diagnoser = SampledDiagnoser::default();
    let mut took = Vec::with_capacity(top.samples as usize);
    let mut first = None;
    let mut last = None;
    for i in 0..top.samples {
        let started = tokio::time::Instant::now();
        let (dump, dumped) = timed_dump(fresh, false).await;
        // The sample's time: when its dump ended (the tasks were captured during it).
        let at = std::time::Instant::now();
        took.push(dumped);
        // The whole dump goes to the history and the diagnoser: a diagnosis is proven on
        // every task, never on the few a filter keeps.
        let sampled = diagnoser.add(&dump, at - *first.get_or_insert(at));
        let rows = history.add(&dump, at, &sampled);
        last = Some((dump, sampled, rows));
        if i + 1 < top.samples {
            tokio::time::sleep_until(started + top.interval).await;
        }
    }
    let (dump, sampled, mut rows) = last.expect("at least one sample");
    if let Some(re) = task {
        rows.retain(|r| dump.task(r.id).is_some_and(|t| root_matches(t, re)));
    }
    let (median, max) = table::median_max(&took);
    let summary = Summary {
        pid: std::process::id() as i32,
        samples: top.samples as usize,
        // A dump longer than the interval delayed the next one: the samples were that far
        // apart at most.
        interval: top.interval.max(max),
        producer: Producer::InProcess {
            took: (median, max),
        },
        deadlocks: dump.deadlocks,
        diagnoses: dump.diagnoses,
        sampled,
    };
    Response {
        status: 200,
        content_type: top.content_type(),
        body: table::render(&rows, &summary, top.format).into_bytes(),
    }
}

/// Serves `GET /debug/tasks` ([`respond`]) over HTTP/1 on `listener`, until the future is
/// dropped or the listener fails. Each connection is served on its own tokio task (not a
/// registered one: the endpoint does not show up in its own dumps).
///
/// **It exposes the internals of the process: bind it to loopback or an internal admin
/// interface, never to the public internet** (see the [module docs](self)).
///
/// Errors: only those of the listener itself. A failed connection is dropped and the server
/// goes on; running out of file descriptors pauses accepting for a moment.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:6669").await?;
/// tokio::spawn(async move {
///     if let Err(e) = tasktrace::http::serve(listener).await {
///         eprintln!("/debug/tasks server stopped: {e}");
///     }
/// });
/// # Ok(())
/// # }
/// ```
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) if is_resource_error(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

/// A failure of one connection being accepted: the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Out of descriptors or buffers: accepting can work again later.
fn is_resource_error(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    e.kind() == io::ErrorKind::OutOfMemory
        || matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

async fn handle(req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let answer = if matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD) {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        respond(target).await
    } else {
        Response::error(
            405,
            format_args!("method {} not allowed (GET)", req.method()),
        )
    };
    let mut response = hyper::Response::builder()
        .status(answer.status)
        .header(hyper::header::CONTENT_TYPE, answer.content_type)
        .header(hyper::header::CACHE_CONTROL, "no-store");
    if answer.status == 405 {
        response = response.header(hyper::header::ALLOW, "GET, HEAD");
    }
    Ok(response
        .body(Full::new(Bytes::from(answer.body)))
        .expect("status and headers are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_formats_and_filters() {
        let q = parse("/debug/tasks").unwrap();
        assert_eq!(q.output, Output::Render(Format::Text));
        assert!(q.task.is_none());
        assert!(!q.fresh);
        assert!(parse("/debug/tasks?fresh=1").unwrap().fresh);
        assert!(parse("/debug/tasks?fresh").unwrap().fresh);
        assert!(!parse("/debug/tasks?fresh=false").unwrap().fresh);
        let q = parse("/debug/tasks?format=pprof&task=seed%3A%3Afoo").unwrap();
        assert_eq!(q.output, Output::Pprof { raw: false });
        assert_eq!(q.task.unwrap().as_str(), "seed::foo");
        assert_eq!(
            parse("/debug/tasks/?format=svg").unwrap().output,
            Output::Render(Format::Svg)
        );
        assert_eq!(
            parse("debug/tasks?format=json")
                .unwrap()
                .output
                .content_type(),
            "application/json"
        );
    }

    #[test]
    fn parses_a_table_request() {
        let t = parse("/debug/tasks/top").unwrap().top.unwrap();
        assert_eq!(
            (t.samples, t.interval, t.format),
            (3, Duration::from_secs(1), TableFormat::Text)
        );
        let q = parse("/debug/tasks/top/?samples=60&interval=0.1&format=json&task=serve").unwrap();
        let t = q.top.unwrap();
        assert_eq!(
            (t.samples, t.interval, t.format),
            (60, Duration::from_millis(100), TableFormat::Json)
        );
        assert_eq!(t.content_type(), "application/json");
        assert_eq!(q.task.unwrap().as_str(), "serve");
        assert!(parse("/debug/tasks").unwrap().top.is_none());
    }

    /// Values are opt-in per request, and a program can refuse them: `403` from then on.
    #[test]
    fn values_are_asked_for_and_can_be_refused() {
        assert!(!parse("/debug/tasks").unwrap().values);
        assert!(parse("/debug/tasks?values=1").unwrap().values);
        assert!(!parse("/debug/tasks?values=0").unwrap().values);
        deny_values();
        assert_eq!(parse("/debug/tasks?values=1").unwrap_err().status, 403);
        assert!(!parse("/debug/tasks?values=0").unwrap().values);
    }

    #[test]
    fn bad_requests_get_one_line() {
        for (target, status) in [
            ("/", 404),
            ("/debug/tasksx", 404),
            ("/debug/tasks?format=yaml", 400),
            ("/debug/tasks?task=(", 400),
            ("/debug/tasks?task=a%7B99999%7D%7B99999%7D", 400),
            ("/debug/tasks?fromat=json", 400),
            ("/debug/tasks?fresh=maybe", 400),
            ("/debug/tasks?values=maybe", 400),
            ("/debug/tasks/record?values=1", 400),
            ("/debug/tasks/top?values=1", 400),
            ("/debug/tasks/top?samples=0", 400),
            ("/debug/tasks/top?samples=61", 400),
            ("/debug/tasks/top?samples=1.5", 400),
            ("/debug/tasks/top?interval=0.05", 400),
            ("/debug/tasks/top?interval=11", 400),
            ("/debug/tasks/top?interval=NaN", 400),
            ("/debug/tasks/top?format=svg", 400),
            ("/debug/tasks/top?seconds=1", 400),
            ("/debug/tasks/topx", 404),
        ] {
            let answer = parse(target).unwrap_err();
            assert_eq!(answer.status, status, "{target}");
            let body = String::from_utf8(answer.body).unwrap();
            assert_eq!(body.lines().count(), 1, "{target}: {body}");
            assert!(body.ends_with('\n'));
        }
    }
}
