//! Prints the markdown tables from the `RESULT` lines of one run and criterion's estimates.

use std::collections::BTreeMap;
use tasktrace_bench::{CHAIN_BATCH, PINGPONG_BATCH, SPAWN_TASKS};

/// Row order of every table.
const ROWS: &[&str] = &[
    "plain",
    "tokio_taskdump",
    "ours",
    "ours_fresh",
    "published",
    "async_backtrace",
    "await_tree",
];

fn label(c: &str) -> &'static str {
    match c {
        "plain" => "tokio (plain)",
        "tokio_taskdump" => "tokio + taskdump (`Handle::dump`)",
        "ours" => "**tasktrace (this repo)**",
        "ours_fresh" => "tasktrace, every task re-captured (`DumpOptions::fresh`)",
        "published" => "tasktrace 0.1.1",
        "async_backtrace" => "async-backtrace 0.2",
        "await_tree" => "await-tree 0.3",
        _ => "?",
    }
}

/// (workload, contender, n) -> key -> values (several runs: the median is shown).
type Results = BTreeMap<(String, String, String), BTreeMap<String, Vec<f64>>>;

fn parse(path: &str) -> Results {
    let mut out = Results::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("RESULT") {
            continue;
        }
        let (Some(workload), Some(contender)) = (words.next(), words.next()) else {
            continue;
        };
        let mut n = String::new();
        let mut kv = Vec::new();
        for w in words {
            if let Some((k, v)) = w.split_once('=') {
                if k == "n" {
                    n = v.to_string();
                } else if let Ok(v) = v.parse::<f64>() {
                    kv.push((k.to_string(), v));
                }
            }
        }
        let entry = out
            .entry((workload.to_string(), contender.to_string(), n))
            .or_default();
        for (k, v) in kv {
            entry.entry(k).or_default().push(v);
        }
    }
    out
}

fn med(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn get(r: &Results, workload: &str, contender: &str, n: &str, key: &str) -> Option<f64> {
    r.get(&(workload.into(), contender.into(), n.into()))
        .and_then(|m| m.get(key))
        .map(|v| med(v))
}

/// Median time per iteration of a criterion benchmark, in ns.
fn criterion_ns(dir: &str, group: &str, contender: &str) -> Option<f64> {
    let path = format!("{dir}/{group}/{contender}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":123.4,...},...}
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    num.parse().ok()
}

fn cell(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.3}x", v / b),
        _ => "–".into(),
    }
}

pub fn print(results: &str, criterion: &str) {
    let r = parse(results);
    // `ours_fresh` is a dump-only row (ours with `DumpOptions::fresh`).
    let dump_rows: Vec<&str> = ROWS
        .iter()
        .copied()
        .filter(|c| r.keys().any(|(_, rc, _)| rc == c))
        .collect();
    let present: Vec<&str> = dump_rows
        .iter()
        .copied()
        .filter(|c| *c != "ours_fresh")
        .collect();

    println!("### 1. mpsc ping-pong (two tasks, bounded channels, 3 async levels per side)\n");
    println!(
        "| contender | instructions / round trip | vs plain | time / round trip (ns) | vs plain |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let base_i = get(&r, "pingpong_instr", "plain", "", "per_op");
    let base_t = criterion_ns(criterion, "pingpong", "plain").map(|t| t / PINGPONG_BATCH as f64);
    for c in &present {
        let i = get(&r, "pingpong_instr", c, "", "per_op");
        let t = criterion_ns(criterion, "pingpong", c).map(|t| t / PINGPONG_BATCH as f64);
        println!(
            "| {} | {} | {} | {} | {} |",
            label(c),
            cell(i, 0),
            ratio(i, base_i),
            cell(t, 0),
            ratio(t, base_t)
        );
    }

    println!("\n### 2. depth-10 async chain awaited in a loop (leaf: `yield_now`)\n");
    println!(
        "| contender | instructions / iteration | vs plain | time / iteration (ns) | vs plain |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let base_i = get(&r, "chain_instr", "plain", "", "per_op");
    let base_t = criterion_ns(criterion, "chain", "plain").map(|t| t / CHAIN_BATCH as f64);
    for c in &present {
        let i = get(&r, "chain_instr", c, "", "per_op");
        let t = criterion_ns(criterion, "chain", c).map(|t| t / CHAIN_BATCH as f64);
        println!(
            "| {} | {} | {} | {} | {} |",
            label(c),
            cell(i, 0),
            ratio(i, base_i),
            cell(t, 0),
            ratio(t, base_t)
        );
    }

    let dump_ns: Vec<String> = {
        let mut ns: Vec<String> = r
            .keys()
            .filter(|(w, _, _)| w == "dump")
            .map(|(_, _, n)| n.clone())
            .collect();
        ns.sort_by_key(|n| n.parse::<u64>().unwrap_or(0));
        ns.dedup();
        ns
    };
    let largest = dump_ns.last().cloned().unwrap_or_default();
    let rounds = r
        .get(&("dump".into(), "ours".into(), largest.clone()))
        .and_then(|m| m.get("warm_ms"))
        .map_or(0, Vec::len);
    println!("\n### 3. dump of idle depth-5 tasks as text (capture + symbolise + render), ms\n");
    println!(
        "Median of {rounds} rounds, the contenders alternating in each; a round is a fresh \
         process per contender and size, its first dump cold, warm the median of the next ones.\n"
    );
    print!("| contender |");
    for n in &dump_ns {
        print!(" {n} cold | {n} warm |");
    }
    println!(" warm vs await-tree (largest n) | text bytes per task (largest n) | notes |");
    print!("| --- |");
    for _ in &dump_ns {
        print!(" ---: | ---: |");
    }
    println!(" ---: | ---: | --- |");
    let at_warm = get(&r, "dump", "await_tree", &largest, "warm_ms");
    for c in &dump_rows {
        if *c == "plain" {
            continue;
        }
        print!("| {} |", label(c));
        for n in &dump_ns {
            print!(
                " {} | {} |",
                cell(get(&r, "dump", c, n, "cold_ms"), 2),
                cell(get(&r, "dump", c, n, "warm_ms"), 2)
            );
        }
        let notes: Vec<String> = dump_ns
            .iter()
            .filter_map(|n| {
                get(&r, "dump", c, n, "froze_at_dump").map(|k| {
                    format!("{n} tasks: the runtime froze in dump #{k} (killed after 20 s; warm = median of the dumps before)")
                })
            })
            .collect();
        let per_task = get(&r, "dump", c, &largest, "bytes")
            .zip(largest.parse::<f64>().ok())
            .map(|(b, n)| b / n);
        println!(
            " {} | {} | {} |",
            ratio(get(&r, "dump", c, &largest, "warm_ms"), at_warm),
            cell(per_task, 0),
            notes.join("; ")
        );
    }

    println!("\n### 4. first trace of one depth-10 task in a fresh process, ms (median of runs)\n");
    println!("| contender | cold (first) | warm (next) | text bytes |");
    println!("| --- | ---: | ---: | ---: |");
    for c in &present {
        if *c == "plain" {
            continue;
        }
        println!(
            "| {} | {} | {} | {} |",
            label(c),
            cell(get(&r, "first_trace", c, "", "cold_ms"), 2),
            cell(get(&r, "first_trace", c, "", "warm_ms"), 3),
            cell(get(&r, "first_trace", c, "", "bytes"), 0)
        );
    }

    if let Some(n) = r
        .keys()
        .find(|(w, _, _)| w == "dump_parts")
        .map(|(_, _, n)| n.clone())
    {
        println!("\nWhere tasktrace's dump of {n} tasks goes (medians, ms): capture + symbolise (`dump()`, the captures of the last dump reused) {}, the same with every task re-captured (`fresh`) {}, render (`to_string()`) {}, drop {}; first dump in the process: capture {}, render {}.",
            cell(get(&r, "dump_parts", "ours", &n, "capture_ms"), 2),
            cell(get(&r, "dump_parts", "ours", &n, "fresh_capture_ms"), 2),
            cell(get(&r, "dump_parts", "ours", &n, "render_ms"), 2),
            cell(get(&r, "dump_parts", "ours", &n, "drop_ms"), 2),
            cell(get(&r, "dump_parts", "ours", &n, "first_capture_ms"), 2),
            cell(get(&r, "dump_parts", "ours", &n, "first_render_ms"), 2),
        );
    }
    if let Some(first) = get(&r, "cold_resolve", "-", "", "first_ms") {
        println!("\nbacktrace-rs alone, first `resolve` of one address in a fresh process of this binary: {first:.2} ms (median of runs).");
    }

    let mem_n = r
        .keys()
        .find(|(w, _, _)| w == "memory")
        .map(|(_, _, n)| n.clone())
        .unwrap_or_default();
    println!("\n### 5. memory per idle depth-5 task ({mem_n} tasks; heap = live bytes from a counting allocator)\n");
    println!("| contender | heap bytes / task | extra vs plain | RSS bytes / task |");
    println!("| --- | ---: | ---: | ---: |");
    let base = get(&r, "memory", "plain", &mem_n, "heap_per_task");
    for c in &present {
        let h = get(&r, "memory", c, &mem_n, "heap_per_task");
        let extra = match (h, base) {
            (Some(h), Some(b)) => format!("{:+.0}", h - b),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} |",
            label(c),
            cell(h, 0),
            extra,
            cell(get(&r, "memory", c, &mem_n, "rss_per_task"), 0)
        );
    }

    if let Some(kept) = get(&r, "memory_kept_by_dump", "ours", &mem_n, "per_task") {
        println!("\nAfter a dump, tasktrace keeps {kept:.0} bytes per task for the next one (each task's id, poll count and capture, equal captures shared; `capture_cache`).");
    }

    println!(
        "\n### 6. spawning {SPAWN_TASKS} short-lived tasks from 2 spawners on 2 workers, ms\n"
    );
    println!("| contender | median (criterion) | vs plain |");
    println!("| --- | ---: | ---: |");
    let base = criterion_ns(criterion, "spawn", "plain").map(|t| t / 1e6);
    for c in &present {
        let t = criterion_ns(criterion, "spawn", c).map(|t| t / 1e6);
        println!("| {} | {} | {} |", label(c), cell(t, 1), ratio(t, base));
    }
}
