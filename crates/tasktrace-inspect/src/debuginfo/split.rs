//! The split units of the type index: for each skeleton unit of the executable (or of its
//! debug file), its split unit, in a `.dwp` package or a `.dwo` file
//! ([`crate::split_dwarf`] says what rustc emits and where each is looked for).
//!
//! A split unit is read through a gimli view made on demand: for a package, gimli's
//! `DwarfPackage` slices its sections to the unit's contributions (found in the package's
//! `.debug_cu_index` by the unit's dwo id); for a `.dwo` file, `Dwarf::make_dwo` joins the
//! file's sections to the executable's `.debug_addr` and `.debug_ranges`. Making a view costs
//! no allocation and no parse beyond the index's header, so none is kept.
//!
//! Invariants: the files are mapped, as the executable is, and their sections are ranges of
//! the mappings (a compressed one alone is decompressed, once, into the heap); every file is
//! checked when found (a package holds the units asked for, a `.dwo` has the skeleton's dwo
//! id); a split unit is numbered by its skeleton's position in the executable, in the order
//! the index assigns their offsets.

use super::scan::R;
use crate::bytes::FileBytes;
use crate::error::{Error, Looked, Result};
use crate::sections::Stored;
use crate::split_dwarf::{self, Found, LoadError, Places, Skeleton};
use gimli::{EndianSlice, RunTimeEndian};
use std::sync::Arc;

/// The sections of one split file.
enum Sections {
    /// A package: every unit's contributions, and the index that finds them.
    Package(gimli::DwarfPackageSections<Stored>),
    /// A `.dwo` file (or an object file with `.dwo` sections): one unit.
    Object(gimli::DwarfSections<Stored>),
}

/// One split file, mapped.
struct SplitFile {
    bytes: Arc<FileBytes>,
    sections: Sections,
}

impl SplitFile {
    /// Maps the sections of the file `found` (a package when `package`).
    fn open(found: Found, package: bool) -> Result<SplitFile> {
        let bytes = found.data;
        let cannot = |why: String| Error::BadDwarf {
            path: found.path.clone(),
            why,
        };
        let obj = object::File::parse(&*bytes).map_err(|_| Error::NotElf(found.path.clone()))?;
        let section = |id| {
            crate::sections::dwo_section(&obj, id)
                .map(|data| Stored::new(&bytes, data))
                .map_err(LoadError)
        };
        let sections = if package {
            Sections::Package(gimli::DwarfPackageSections::load(section).map_err(|e| cannot(e.0))?)
        } else {
            Sections::Object(gimli::DwarfSections::load(section).map_err(|e| cannot(e.0))?)
        };
        drop(obj);
        Ok(SplitFile {
            bytes: Arc::new(bytes),
            sections,
        })
    }

    fn slice<'a>(&'a self, s: &'a Stored) -> R<'a> {
        EndianSlice::new(s.bytes(&self.bytes), RunTimeEndian::Little)
    }

    /// Whether this file holds split unit `dwo_id` (a `.dwo` was checked when found).
    fn holds(&self, dwo_id: u64) -> bool {
        match &self.sections {
            Sections::Package(s) => s
                .borrow(
                    |d| self.slice(d),
                    EndianSlice::new(&[], RunTimeEndian::Little),
                )
                .is_ok_and(|p| p.cu_index.find(dwo_id).is_some()),
            Sections::Object(_) => true,
        }
    }
}

/// A split unit: its file, and its id (the package's key for it).
#[derive(Clone, Copy)]
struct SplitUnit {
    file: u32,
    dwo_id: u64,
}

/// The split units of an executable, and their files.
#[derive(Default)]
pub(super) struct SplitUnits {
    files: Vec<SplitFile>,
    units: Vec<SplitUnit>,
}

impl SplitUnits {
    /// Finds the split unit of each of `skeletons`: the package first (one that holds the
    /// first skeleton's unit), then, for each unit it does not hold, the unit's `.dwo` file.
    /// Unit `i` is the split unit of `skeletons[i]`. Any not found is an error that says where
    /// the package and the first missing `.dwo` were looked for.
    pub(super) fn find(skeletons: &[Skeleton], places: &Places<'_>) -> Result<SplitUnits> {
        let mut out = SplitUnits::default();
        let Some(first) = skeletons.first() else {
            return Ok(out);
        };
        let mut looked = Vec::new();
        let fits = |d: &[u8]| split_dwarf::package_fits(d, first.dwo_id);
        let package = split_dwarf::first_fit(&places.package_candidates(), fits, &mut looked);
        let package_path = package.as_ref().map(|p| p.path.clone());
        if let Some(found) = package {
            out.files.push(SplitFile::open(found, true)?);
        }
        let (mut missing, mut first_missing) = (0, None);
        for sk in skeletons {
            if package_path.is_some() && out.files[0].holds(sk.dwo_id) {
                out.units.push(SplitUnit {
                    file: 0,
                    dwo_id: sk.dwo_id,
                });
                continue;
            }
            let mut here = Vec::new();
            if let Some(p) = &package_path {
                let why = format!("it has no unit {}", split_dwarf::dwo_id_text(sk.dwo_id));
                here.push(Looked::unfit(std::path::Path::new(p), why));
            }
            let fits = |d: &[u8]| split_dwarf::dwo_fits(d, sk.dwo_id);
            match split_dwarf::first_fit(&places.dwo_candidates(sk), fits, &mut here) {
                Some(found) => {
                    out.files.push(SplitFile::open(found, false)?);
                    out.units.push(SplitUnit {
                        file: (out.files.len() - 1) as u32,
                        dwo_id: sk.dwo_id,
                    });
                }
                None => {
                    missing += 1;
                    first_missing.get_or_insert(here);
                }
            }
        }
        if let Some(more) = first_missing {
            // The package's own mark comes first when there is one; the other candidates
            // were listed in `looked` already.
            looked.extend(more);
            return Err(Error::NoSplitDwarf {
                exe: places.exe.to_string(),
                missing,
                units: skeletons.len(),
                looked,
            });
        }
        Ok(out)
    }

    /// A gimli view of split unit `i` (see the module doc); `parent` is the executable's
    /// (or its debug file's) DWARF, whose `.debug_addr` the unit's addresses index.
    pub(super) fn dwarf<'a>(
        &'a self,
        i: u32,
        parent: &gimli::Dwarf<R<'a>>,
    ) -> Option<gimli::Dwarf<R<'a>>> {
        let unit = self.units.get(i as usize)?;
        let file = self.files.get(unit.file as usize)?;
        match &file.sections {
            Sections::Package(s) => {
                let empty = EndianSlice::new(&[][..], RunTimeEndian::Little);
                let package = s.borrow(|d| file.slice(d), empty).ok()?;
                package
                    .find_cu(gimli::DwoId(unit.dwo_id), parent)
                    .ok()
                    .flatten()
            }
            Sections::Object(s) => {
                let mut dwarf = s.borrow(|d| file.slice(d));
                dwarf.make_dwo(parent);
                Some(dwarf)
            }
        }
    }

    /// The file the bytes of split unit `i` are in.
    pub(super) fn file(&self, i: u32) -> Option<&FileBytes> {
        let unit = self.units.get(i as usize)?;
        Some(&self.files.get(unit.file as usize)?.bytes)
    }

    /// How many split files are mapped.
    pub(super) fn files(&self) -> usize {
        self.files.len()
    }

    /// Lets the kernel drop the pages of every split file from this process's resident
    /// memory ([`FileBytes::forget_pages`]).
    pub(super) fn release_pages(&self) {
        for f in &self.files {
            f.bytes.forget_pages(0..f.bytes.len());
        }
    }

    /// Bytes held in the heap, roughly (the unit and file tables; a compressed split
    /// section, rare, is not counted).
    pub(super) fn heap_bytes(&self) -> usize {
        self.units.capacity() * std::mem::size_of::<SplitUnit>()
            + self.files.capacity() * std::mem::size_of::<SplitFile>()
    }
}
