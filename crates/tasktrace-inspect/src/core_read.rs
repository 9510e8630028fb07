//! Reading a core file ([`core`]): its executable (given, or named by the core), checked to be
//! the one that dumped it, and what a core cannot tell said once.

use crate::options::Progress;
use crate::read::{read_held, SessionParts};
use crate::session::{free_in_background, rename_path};
use crate::{debuginfo, process, unwind, Error, Options, Prepared, Result};
use tasktrace_model::{Dump, FrameStatus};

/// Reads every task from the core file `core` of the executable `exe`; without `exe`, of the
/// one the core names ([`process::core_exe`]), under [`Options::sysroot`] when given.
pub fn core(core: &str, exe: Option<&str>, opts: &Options) -> Result<Dump> {
    let files = process::files::TargetFiles::by_path().with_sysroot(opts.sysroot.as_deref());
    let exe_given = exe.is_some();
    // An executable given is read first (a wrong one is said before a bad core); one that is
    // not is found from the core.
    let (found, opened) = match exe {
        Some(exe) => (
            process::core_exe::CoreExecutable {
                path_in_core: exe.to_string(),
                file: exe.to_string(),
            },
            None,
        ),
        None => {
            let file = process::core_file::CoreFile::open(core)?;
            (process::core_exe::find(&file, core, &files)?, Some(file))
        }
    };
    let exe = found.file.as_str();
    // Debuglinks are relative to the executable's directory in the target (under the
    // sysroot, as every path of it).
    let (info, debug_file) = debuginfo::DebugInfo::load_with_debug_file(
        exe,
        &found.path_in_core,
        opts.debuginfo.as_deref(),
        &files,
    )
    .map_err(|e| rename_path(e, &found.path_in_core, exe))?;
    let mut file = match opened {
        Some(file) => file,
        None => process::core_file::CoreFile::open(core)?,
    };
    let mut truncated = file.truncation().map(|(present, expected)| {
        format!(
            "truncated core: {present} of {expected} bytes present ({:.0} %); what was in the \
             missing part cannot be read",
            present as f64 * 100.0 / expected as f64
        )
    });
    if file.threads_from_memory() {
        use process::Target;
        if let Some(&(vaddr, _, len)) = info.loads.iter().find(|l| l.1 == 0) {
            let n = (len.min(4096) as usize).min(info.file_data().len());
            file.place_image(&info.file_data()[..n], vaddr, info.entry);
        }
        if let Some(note) = &mut truncated {
            note.push_str(&match file.threads().len() {
                0 => "; its notes (threads, registers) were cut off, and no thread's control \
                      block is in the memory present"
                    .to_string(),
                n => format!(
                    "; its notes were cut off: {n} thread(s) found by their control blocks in \
                     memory, without registers (no native stacks)"
                ),
            });
        }
    }
    // The executable is the one given or found, wherever the core says it was mapped from:
    // the pages of it the core left out are read from it, and its unwind tables.
    let maps = process::Target::mapped_files(&file);
    let entry = process::Target::at_entry(&file).unwrap_or(0);
    let mapped = maps
        .iter()
        .find(|m| (m.start..m.end).contains(&entry))
        .map_or(exe, |m| m.path.as_str());
    let files = files.with_executable(mapped, exe);
    file.set_files(files.clone());
    let dump = check_core_matches(&file, &info, core, exe, exe_given).and_then(|()| {
        let unwinder = opts
            .threads
            .then(|| {
                let exe_debug = debug_file.as_ref().map(|file| unwind::ExeDebugFile {
                    exe_path: mapped,
                    file,
                });
                unwind::Unwinder::from_maps(&maps, &files, exe_debug)
            })
            .map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from);
        read_held(
            &file,
            &info,
            &Prepared::new(&info)?,
            opts,
            &Progress::new(opts.progress),
            SessionParts {
                unwinder: Some(&unwinder),
                memo: None,
                roots: None,
            },
        )
    });
    drop(debug_file);
    free_in_background(info);
    // What a core cannot tell, said once (the leaves show it: sockets without addresses,
    // timers as deadlines).
    let dump = dump.map(|mut d| {
        d.notes.push(CORE_NOTE.to_string());
        d
    });
    match (dump, truncated) {
        (Ok(mut dump), Some(note)) => {
            let cut_short = dump
                .tasks
                .iter()
                .filter(|t| {
                    t.error.is_some()
                        || t.trace
                            .walk()
                            .iter()
                            .any(|(_, n)| n.frame.status == FrameStatus::Unreadable)
                })
                .count();
            if cut_short > 0 {
                dump.partial.insert(
                    0,
                    format!(
                        "{cut_short} task(s) with memory in the missing part (their trees \
                         stop at an unreadable frame)"
                    ),
                );
            }
            dump.notes.insert(0, note);
            Ok(dump)
        }
        // What failed was most likely in the part that is missing: say that first.
        (Err(e), Some(note)) => Err(Error::InMissingPart {
            truncated: note,
            source: Box::new(e),
        }),
        (dump, None) => dump,
    }
}

/// What a read of a core file cannot tell, and why.
const CORE_NOTE: &str = "read from a core file: a socket shows its descriptor but not its \
     addresses (they are in the kernel's tables, not in a core), and a timer its deadline on \
     CLOCK_MONOTONIC instead of the time left (a core does not record when it was taken)";

/// Checks that `exe` is the executable that dumped `core`: the first page of its image, as
/// the core holds it (cores keep the ELF headers of file mappings), equals the file's.
/// `given`: `exe` is the `--exe` given (else it was found from the core).
fn check_core_matches(
    file: &process::core_file::CoreFile,
    info: &debuginfo::DebugInfo,
    core: &str,
    exe: &str,
    given: bool,
) -> Result<()> {
    use process::Target;
    let entry = file
        .at_entry()
        .ok_or_else(|| Error::CorruptCore(format!("{core}: no NT_AUXV note (no entry point)")))?;
    let bias = entry.wrapping_sub(info.entry);
    let Some(&(vaddr, 0, len)) = info.loads.iter().find(|l| l.1 == 0) else {
        return Ok(());
    };
    let n = len.min(4096) as usize;
    let mut image = vec![0u8; n];
    // Cores keep the first page of file mappings (the kernel's default coredump_filter and
    // gcore both do); a core without it at the computed address is from another executable.
    let in_core = file.read(vaddr.wrapping_add(bias), &mut image).is_ok();
    if !in_core || info.file_data().get(..n) != Some(&image[..]) {
        return Err(Error::CoreNotFrom {
            core: core.to_string(),
            exe: exe.to_string(),
            given,
        });
    }
    Ok(())
}
