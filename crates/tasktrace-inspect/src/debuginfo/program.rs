//! What an executable is, told before its DWARF is read: a Rust program with tokio, without,
//! or not Rust at all — so that the error for a file that cannot be read names the reason.

/// What an executable is, from its symbols and its `.comment` (kept by `strip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Program {
    /// Symbols, none of them Rust's, and no rustc mark.
    NotRust,
    /// Rust, and its symbol table names no tokio item.
    RustWithoutTokio,
    /// Rust with tokio symbols.
    Tokio,
    /// No symbol table to tell by (stripped), or not an ELF `object` reads.
    Unknown,
}

pub(super) fn what_program(data: &[u8]) -> Program {
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(file) = object::File::parse(data) else {
        return Program::Unknown;
    };
    let rustc_mark = file
        .section_by_name(".comment")
        .and_then(|s| s.data().ok())
        .is_some_and(|d| d.windows(5).any(|w| w == b"rustc"));
    let (mut rust, mut tokio, mut any) = (false, false, false);
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        let Ok(name) = sym.name() else { continue };
        any = true;
        // Legacy (`_ZN…17h<hash>E`) and v0 (`_R…`) mangling, and the runtime's own symbols.
        if name.starts_with("_R") || name.contains("17h") || name.starts_with("rust_") {
            rust = true;
        }
        if name.contains("tokio") {
            tokio = true;
            break;
        }
    }
    match (rust || rustc_mark, tokio, any) {
        (_, true, _) => Program::Tokio,
        (false, false, true) => Program::NotRust,
        (true, false, true) => Program::RustWithoutTokio,
        // No symbols at all (stripped): nothing to tell by.
        (_, false, false) => Program::Unknown,
    }
}
