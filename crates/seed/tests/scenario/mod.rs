//! A small service with many tasks in typical waits (connections reading requests, workers on
//! a job queue, tickers, tasks queueing on a lock, a supervisor awaiting a task, the seed
//! program), captured with `tasktrace::dump()`. Shared by the renderer tests and the
//! `flamegraph` example that draws `docs/flamegraph.svg`.
#![allow(dead_code)]

pub mod leaves;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tasktrace::model::{Dump, TaskState};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};

/// How many tasks of each kind.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub connections: usize,
    pub workers: usize,
    pub tickers: usize,
    pub lockers: usize,
}

impl Scale {
    /// A few of each: enough to group, small enough to read.
    pub const SMALL: Scale = Scale {
        connections: 4,
        workers: 3,
        tickers: 2,
        lockers: 2,
    };
}

async fn read_request(stream: &mut TcpStream) -> usize {
    let mut buf = [0u8; 512];
    stream.read(&mut buf).await.unwrap_or(0)
}

async fn serve_connection(mut stream: TcpStream) {
    loop {
        if read_request(&mut stream).await == 0 {
            return;
        }
    }
}

async fn next_job(jobs: &mut mpsc::Receiver<u32>) -> Option<u32> {
    jobs.recv().await
}

async fn worker(mut jobs: mpsc::Receiver<u32>) {
    while let Some(job) = next_job(&mut jobs).await {
        std::hint::black_box(job);
    }
}

async fn ticker() {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn update_state(state: Arc<Mutex<u64>>) {
    *state.lock().await += 1;
}

async fn shutdown_signal(stop: tokio::sync::oneshot::Receiver<()>) {
    let _ = stop.await;
}

async fn supervisor(child: tasktrace::JoinHandle<()>) {
    let _ = child.await;
}

/// The running tasks and what keeps them waiting.
pub struct Scenario {
    /// Registry ids, in spawn order.
    ids: Vec<u64>,
    handles: Vec<tasktrace::JoinHandle<()>>,
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

impl Scenario {
    /// Spawns the tasks and waits until each has been polled to its wait.
    pub async fn start(scale: Scale) -> Scenario {
        let mut ids = Vec::new();
        let mut handles = Vec::new();
        let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        let mut track = |h: tasktrace::JoinHandle<()>| {
            ids.push(h.id());
            handles.push(h);
        };

        let seed = tasktrace::spawn_named("seed", seed::foo());
        track(seed);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for i in 0..scale.connections {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            keep.push(Box::new(client));
            let h = tasktrace::spawn_named(format!("conn-{i}"), serve_connection(server));
            track(h);
        }
        for i in 0..scale.workers {
            let (tx, rx) = mpsc::channel(8);
            keep.push(Box::new(tx));
            let h = tasktrace::spawn_named(format!("worker-{i}"), worker(rx));
            track(h);
        }
        for _ in 0..scale.tickers {
            let h = tasktrace::spawn(ticker());
            track(h);
        }
        let state = Arc::new(Mutex::new(0u64));
        let guard = state.clone().try_lock_owned().unwrap();
        keep.push(Box::new(guard));
        for _ in 0..scale.lockers {
            let h = tasktrace::spawn(update_state(state.clone()));
            track(h);
        }
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        keep.push(Box::new(stop));
        let child = tasktrace::spawn_named("shutdown", shutdown_signal(stop_rx));
        let child_id = child.id();
        let sup = tasktrace::spawn_named("supervisor", supervisor(child));
        track(sup);
        ids.push(child_id);
        // Let every task reach its wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Scenario {
            ids,
            handles,
            _keep: keep,
        }
    }

    /// `tasktrace::dump()` reduced to this scenario's tasks, ids renumbered 1.. in spawn order,
    /// states and poll counts cleared: the same text at every run.
    pub async fn dump(&self) -> Dump {
        // On a loaded machine a task may not have reached its wait yet: ask again.
        for _ in 0..40 {
            let dump = self.dump_once().await;
            let complete = dump.tasks.len() == self.ids.len()
                && dump
                    .tasks
                    .iter()
                    .all(|t| !t.trace.is_empty() && t.error.is_none());
            if complete {
                return dump;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.dump_once().await
    }

    async fn dump_once(&self) -> Dump {
        let full = tasktrace::dump().await;
        let renumber: HashMap<u64, u64> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u64 + 1))
            .collect();
        let tasks = full
            .tasks
            .into_iter()
            .filter_map(|mut t| {
                t.id = *renumber.get(&t.id)?;
                t.parent = t.parent.and_then(|p| renumber.get(&p).copied());
                t.awaits = t
                    .awaits
                    .iter()
                    .filter_map(|a| renumber.get(a).copied())
                    .collect();
                t.state = TaskState::Unknown;
                t.polls = None;
                // tokio's ids (given when a snapshot joins) depend on what ran before.
                t.tokio_id = None;
                Some(t)
            })
            .collect();
        Dump::new(tasks)
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}
