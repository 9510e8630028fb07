//! pprof export: a gzipped `profile.proto` with the logical frames of every task, like Go's
//! goroutine profile, for continuous profilers (pprof, Pyroscope, Parca).
//!
//! Each root-to-leaf path of a task is one sample of value 1 (a task suspended in a `join!` of
//! two branches gives two samples), labelled with the task's id, name and state. Locations are
//! logical frames (function + line), so there are no addresses or mappings.

use crate::{Dump, Frame};
use prost::Message;
use std::collections::HashMap;
use std::io::Write;

/// `perftools.profiles.Profile` (the fields this export uses; numbers from profile.proto).
#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
    #[prost(int64, tag = "3")]
    num: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
    #[prost(int64, tag = "3")]
    column: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// Interns strings, functions and locations as profile.proto wants them (ids from 1; string 0
/// is the empty string).
#[derive(Default)]
struct Builder {
    profile: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    locations: HashMap<(u64, u32, u32), u64>,
}

impl Builder {
    /// A profile whose one value counts `what` (`tasks`, `samples`), each sample one.
    fn counting(what: &str) -> Self {
        let mut b = Builder::default();
        b.string("");
        let what = b.string(what);
        let count = b.string("count");
        b.profile.sample_type = vec![ValueType {
            r#type: what,
            unit: count,
        }];
        b.profile.period_type = Some(ValueType {
            r#type: what,
            unit: count,
        });
        b.profile.period = 1;
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        let name = frame_name(frame);
        let file = frame
            .location
            .as_ref()
            .map(|l| l.file.clone())
            .unwrap_or_default();
        let fkey = (name.clone(), file.clone());
        let function_id = match self.functions.get(&fkey) {
            Some(&id) => id,
            None => {
                let id = self.profile.function.len() as u64 + 1;
                let (name_i, system_i, file_i) = (
                    self.string(&name),
                    self.string(&frame.function),
                    self.string(&file),
                );
                self.profile.function.push(Function {
                    id,
                    name: name_i,
                    system_name: system_i,
                    filename: file_i,
                });
                self.functions.insert(fkey, id);
                id
            }
        };
        let (line, column) = frame
            .location
            .as_ref()
            .map(|l| (l.line, l.column.unwrap_or(0)))
            .unwrap_or((0, 0));
        let lkey = (function_id, line, column);
        if let Some(&id) = self.locations.get(&lkey) {
            return id;
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(Location {
            id,
            line: vec![Line {
                function_id,
                line: line as i64,
                column: column as i64,
            }],
        });
        self.locations.insert(lkey, id);
        id
    }
}

/// How a frame is named in the profile: the frame's display without its location.
fn frame_name(frame: &Frame) -> String {
    let mut f = frame.clone();
    f.location = None;
    f.to_string()
}

/// Encodes `dump` as an uncompressed `profile.proto` message.
pub fn encode_profile(dump: &Dump) -> Vec<u8> {
    let mut b = Builder::counting("tasks");
    let (k_id, k_name, k_state) = (
        b.string("task_id"),
        b.string("task_name"),
        b.string("state"),
    );
    for task in &dump.tasks {
        let mut labels = vec![Label {
            key: k_id,
            str: 0,
            num: task.id as i64,
        }];
        if let Some(name) = &task.name {
            let s = b.string(name);
            labels.push(Label {
                key: k_name,
                str: s,
                num: 0,
            });
        }
        let state = serde_state(task);
        let s = b.string(&state);
        labels.push(Label {
            key: k_state,
            str: s,
            num: 0,
        });
        let paths = task.trace.paths();
        if paths.is_empty() {
            b.profile.sample.push(Sample {
                location_id: Vec::new(),
                value: vec![1],
                label: labels,
            });
            continue;
        }
        for path in paths {
            // pprof lists a sample's locations leaf first.
            let location_id = path.iter().rev().map(|f| b.location(f)).collect();
            b.profile.sample.push(Sample {
                location_id,
                value: vec![1],
                label: labels.clone(),
            });
        }
    }
    b.profile.encode_to_vec()
}

fn serde_state(task: &crate::Task) -> String {
    match task.state {
        crate::TaskState::Idle { .. } => "idle",
        crate::TaskState::Running { .. } => "running",
        crate::TaskState::Scheduled => "scheduled",
        crate::TaskState::Suspended => "suspended",
        crate::TaskState::InPoll => "in_poll",
        crate::TaskState::Unknown => "unknown",
    }
    .to_string()
}

/// Encodes weighted stacks (root first) as a gzipped `profile.proto` whose one value is
/// `samples`/`count`: a recording ([`crate::record::Recording::pprof`]).
pub fn samples_to_pprof<'a>(stacks: impl Iterator<Item = (&'a [Frame], u64)>) -> Vec<u8> {
    let mut b = Builder::counting("samples");
    for (stack, weight) in stacks {
        let location_id = stack.iter().rev().map(|f| b.location(f)).collect();
        b.profile.sample.push(Sample {
            location_id,
            value: vec![weight as i64],
            label: Vec::new(),
        });
    }
    gzip(&b.profile.encode_to_vec())
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(raw).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

/// Encodes `dump` as a gzipped `profile.proto`, the form `go tool pprof` and continuous
/// profilers read.
pub fn to_pprof(dump: &Dump) -> Vec<u8> {
    gzip(&encode_profile(dump))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Location as Loc, Task, Trace};

    fn dump() -> Dump {
        let mut t = Task::new(3);
        t.name = Some("worker".into());
        let f = |n: &str, l| Frame::new(n, Some(Loc::new("src/main.rs", l, Some(5))));
        let mut trace = Trace::new();
        trace.insert_path([f("foo", 1), f("fiz", 2)]);
        trace.insert_path([f("foo", 1), f("buz", 3)]);
        t.trace = trace;
        Dump::new(vec![t, Task::new(4)])
    }

    #[test]
    fn one_sample_per_path_leaf_first_with_labels() {
        let bytes = encode_profile(&dump());
        let p = Profile::decode(bytes.as_slice()).unwrap();
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample.len(), 3, "two paths of task 3, one empty task 4");
        let leaf = p.sample[0].location_id[0];
        let loc = &p.location[(leaf - 1) as usize];
        let func = &p.function[(loc.line[0].function_id - 1) as usize];
        assert_eq!(p.string_table[func.name as usize], "fiz");
        assert_eq!(loc.line[0].line, 2);
        assert_eq!(p.location.len(), 3, "foo is interned once");
        let id_label = &p.sample[0].label[0];
        assert_eq!(p.string_table[id_label.key as usize], "task_id");
        assert_eq!(id_label.num, 3);
    }

    #[test]
    fn gzip_roundtrip() {
        use std::io::Read;
        let gz = to_pprof(&dump());
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw, encode_profile(&dump()));
    }
}
