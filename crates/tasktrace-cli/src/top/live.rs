//! The live view's two threads: a sampler (stops the process at the interval, reads it, folds
//! the sample into the rows) and the screen (keys, drawing), joined by a channel.
//!
//! Invariants: only the sampler thread ever stops the process; the signals that end the view
//! are blocked in both threads for their whole life and taken by the screen thread between
//! two draws ([`crate::interrupt::take_pending`]); the screen never waits on a sample (it waits for keys 100 ms at most), so it
//! keeps up whatever a sample costs; a closed terminal is seen by the key reader
//! ([`super::keys`]) even when no SIGHUP comes; every way out (q, Ctrl-C, a signal, the terminal closed,
//! the process gone) asks the sampler to stop and waits for it — at most one sample, with a
//! deadline — before the terminal is restored and one line says why the view ended. The
//! process is therefore never left stopped: a sample under way lets it go before the sampler
//! ends (and, past the deadline, this process's exit detaches it).

use super::app::{App, Refresh};
use super::keys::{Input, Keys};
use super::terminal::Screen;
use super::Ending;
use crate::sampling::Sampler;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasktrace_model::top::history::History;

/// What the sampler sends.
enum Msg {
    /// A new sample.
    Refresh(Box<Refresh>),
    /// The sampler stopped: a sample failed.
    Failed(tasktrace_inspect::Error),
}

/// Stopped times shown in the status line are over this many recent samples.
const RECENT: usize = 60;

fn sampler_thread(
    mut sampler: Sampler,
    signals: Vec<libc::c_int>,
    tx: mpsc::Sender<Msg>,
    stop: Arc<AtomicBool>,
) {
    let _blocked = crate::interrupt::Blocked::new(&signals);
    let mut history = History::default();
    let stopping = || stop.load(Ordering::SeqCst);
    while !stopping() {
        let t0 = Instant::now();
        let sample = match sampler.sample() {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
        };
        let rows = history.add(&sample.dump, t0, &sample.sampled);
        let refresh = Refresh {
            rows,
            dump: Arc::new(sample.dump),
            sampled: sample.sampled,
            stopped: sample.stopped,
            stopped_recent: sampler.stopped_summary(RECENT),
            samples: sampler.samples(),
            period: sampler.period(),
            lowered: sampler.lowered(),
        };
        if tx.send(Msg::Refresh(Box::new(refresh))).is_err() {
            return;
        }
        sampler.wait_next(t0, stopping);
    }
}

/// How the live view ended.
pub struct Ended {
    /// Why.
    pub ending: Ending,
    /// Samples shown.
    pub samples: usize,
    /// The sampler finished its last sample within the deadline.
    pub sampler_done: bool,
}

/// Runs the live view until it ends; says how it ended. `deadline` bounds the wait for the
/// sampler to finish its last sample.
pub fn run(
    sampler: Sampler,
    pid: i32,
    signals: &[libc::c_int],
    deadline: Duration,
) -> Result<Ended, String> {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (signals, stop) = (signals.to_vec(), stop.clone());
        std::thread::Builder::new()
            .name("tasktrace-sampler".into())
            .spawn(move || sampler_thread(sampler, signals, tx, stop))
            .map_err(|e| format!("cannot start the sampler thread: {e}"))?
    };
    let mut app = App::new(pid);
    let (ending, sampler_done) = {
        let screen = Screen::new();
        let ending = match screen {
            Ok(mut screen) => screen_loop(&mut screen, &mut app, &rx, signals),
            Err(e) => Ending::Failed(e),
        };
        // The sampler ends before the terminal is restored (the screen is dropped at the end
        // of this block), so no line of it is written over.
        stop.store(true, Ordering::SeqCst);
        let until = Instant::now() + deadline;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        (ending, thread.is_finished())
    };
    Ok(Ended {
        ending,
        samples: app.refresh.as_ref().map_or(0, |r| r.samples),
        sampler_done,
    })
}

fn screen_loop(
    screen: &mut Screen,
    app: &mut App,
    rx: &mpsc::Receiver<Msg>,
    signals: &[libc::c_int],
) -> Ending {
    let mut dirty = true;
    let mut keys = Keys::default();
    let mut size = ratatui::crossterm::terminal::size().ok();
    loop {
        if let Some(signal) = crate::interrupt::take_pending(signals) {
            return Ending::Signal(signal);
        }
        loop {
            match rx.try_recv() {
                Ok(Msg::Refresh(r)) => {
                    app.refreshed(*r);
                    dirty = true;
                }
                Ok(Msg::Failed(e)) => return Ending::SampleFailed(e),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Ending::Failed("the sampler thread ended".into())
                }
            }
        }
        if dirty {
            if screen.term.draw(|f| super::screen::draw(f, app)).is_err() {
                return Ending::TerminalGone;
            }
            dirty = false;
        }
        match keys.next(Duration::from_millis(100)) {
            Input::Key(key) => {
                app.key(key);
                dirty = true;
            }
            Input::Nothing => {}
            Input::Gone => return Ending::TerminalGone,
        }
        // A resized terminal is redrawn at once (ratatui fits the screen to it).
        let now = ratatui::crossterm::terminal::size().ok();
        if now != size {
            size = now;
            dirty = true;
        }
        if let Some(ending) = app.quit.take() {
            return ending;
        }
    }
}
