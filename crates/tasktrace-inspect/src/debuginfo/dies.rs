//! Reading one DIE on demand: its unit (by offset), the unit's abbreviations (a few kept),
//! its attributes into a [`Die`], and its qualified name from the index's scope tree. What is
//! read is kept by the caller ([`super::cache`]); nothing here allocates per lookup beyond the
//! `Die` it returns.

use super::*;

/// Where a DIE is ([`DebugInfo::locate`]).
pub(super) struct Located<'a> {
    /// The DWARF of its unit (the executable's, or its split file's).
    dwarf: gimli::Dwarf<R<'a>>,
    /// Its unit's index in the index's unit list.
    unit: usize,
    /// Where its unit's DIEs are in the index's offset space.
    place: Place,
    header: gimli::UnitHeader<R<'a>>,
    abbrevs: Arc<gimli::Abbreviations>,
    /// Its offset in the unit.
    at: gimli::UnitOffset,
}

/// `DW_AT_data_member_location` of a member (0 without one).
pub(super) fn member_offset(entry: &gimli::DebuggingInformationEntry<R<'_>>) -> u64 {
    entry
        .attr_value(gimli::DW_AT_data_member_location)
        .and_then(|v| v.udata_value())
        .unwrap_or(0)
}

/// The kind of a DIE the reader keeps, by tag.
pub(super) fn kind_of(tag: gimli::DwTag) -> Option<Kind> {
    Some(match tag {
        gimli::DW_TAG_structure_type => Kind::Struct,
        gimli::DW_TAG_union_type => Kind::Union,
        gimli::DW_TAG_enumeration_type => Kind::Enum,
        gimli::DW_TAG_base_type => Kind::Base,
        gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => Kind::Pointer,
        gimli::DW_TAG_member => Kind::Member,
        gimli::DW_TAG_variant_part => Kind::VariantPart,
        gimli::DW_TAG_variant => Kind::Variant,
        gimli::DW_TAG_template_type_parameter => Kind::TemplateType,
        gimli::DW_TAG_typedef => Kind::Typedef,
        _ => return None,
    })
}

impl DebugInfo {
    /// The unit holding `off`: its index in the index's unit list.
    pub(super) fn unit_of(&self, off: u64) -> Option<usize> {
        self.index
            .units
            .partition_point(|u| u.offset <= off)
            .checked_sub(1)
    }

    pub(super) fn abbreviations_of(
        &self,
        unit: usize,
        dwarf: &gimli::Dwarf<R<'_>>,
        header: &gimli::UnitHeader<R<'_>>,
    ) -> Option<Arc<gimli::Abbreviations>> {
        let mut kept = self.abbreviations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = kept.get(&unit) {
            return Some(a.clone());
        }
        let parsed = Arc::new(header.abbreviations(&dwarf.debug_abbrev).ok()?);
        if kept.len() >= ABBREVIATIONS_KEPT {
            kept.clear();
        }
        kept.insert(unit, parsed.clone());
        Some(parsed)
    }

    /// Where the DIE at `off` is: its unit (index and header), the unit's abbreviations, and
    /// its offset in the unit.
    pub(super) fn locate(&self, off: u64) -> Option<Located<'_>> {
        let unit = self.unit_of(off)?;
        let info = &self.index.units[unit];
        let dwarf = self.dwarf_of(info)?;
        let header = dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(usize::try_from(info.header).ok()?))
            .ok()?;
        let abbrevs = self.abbreviations_of(unit, &dwarf, &header)?;
        let at = gimli::UnitOffset(usize::try_from(off - info.offset).ok()?);
        // Inside the unit's entries (its header is before them).
        header.range_from(at..).ok()?;
        let place = Place {
            base: info.offset,
            split: info.split.is_some(),
        };
        Some(Located {
            dwarf,
            unit,
            place,
            header,
            abbrevs,
            at,
        })
    }

    /// The `DW_AT_name` of `entry` (of the unit `l`), as text.
    pub(super) fn name_of<'a>(
        &self,
        l: &Located<'a>,
        entry: &gimli::DebuggingInformationEntry<R<'a>>,
    ) -> Option<String> {
        let v = entry.attr_value(gimli::DW_AT_name)?;
        self.attr_str(l, v)
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    pub(super) fn parse_die(&self, off: u64) -> Option<Die> {
        let l = self.locate(off)?;
        let (ui, header, place) = (l.unit, &l.header, l.place);
        let unit = &self.index.units[ui];
        let mut tree = header.entries_tree(&l.abbrevs, Some(l.at)).ok()?;
        let root = tree.root().ok()?;
        let e = root.entry();
        let kind = kind_of(e.tag())?;
        let own = self.name_of(&l, e).unwrap_or_default();
        let is_type = matches!(
            kind,
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Base | Kind::Pointer | Kind::Typedef
        );
        let name = if is_type && !own.is_empty() {
            self.qualified(off, own)
        } else {
            own
        };
        let decl = match (
            e.attr_value(gimli::DW_AT_decl_file),
            e.attr_value(gimli::DW_AT_decl_line),
        ) {
            (Some(AttributeValue::FileIndex(f)), Some(l)) => {
                let file = unit
                    .files
                    .get(f as usize)
                    .and_then(|&id| self.index.files.get(id as usize));
                match (file, l.udata_value()) {
                    (Some(file), Some(l)) => Some((file.to_string(), l as u32)),
                    _ => None,
                }
            }
            _ => None,
        };
        let ty = e
            .attr_value(gimli::DW_AT_type)
            .and_then(|v| place.reference(v));
        let mut die = Die {
            kind,
            name,
            size: e
                .attr_value(gimli::DW_AT_byte_size)
                .and_then(|v| v.udata_value())
                .unwrap_or(0),
            offset: member_offset(e),
            ty,
            discr: e
                .attr_value(gimli::DW_AT_discr)
                .and_then(|v| place.reference(v)),
            discr_value: e.attr_value(gimli::DW_AT_discr_value).and_then(|v| {
                v.udata_value()
                    .or_else(|| v.sdata_value().map(|s| s as u64))
            }),
            decl,
            children: Vec::new(),
            members: Vec::new(),
            containing: e
                .attr_value(gimli::DW_AT_containing_type)
                .and_then(|v| place.reference(v)),
        };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let c = child.entry();
            if kind_of(c.tag()).is_some() {
                die.children.push(place.die(c.offset()));
            }
            if c.tag() == gimli::DW_TAG_member {
                let ty = c
                    .attr_value(gimli::DW_AT_type)
                    .and_then(|v| place.reference(v));
                if let Some(ty) = ty {
                    let name = self.name_of(&l, c).unwrap_or_default();
                    die.members.push((name, member_offset(c), ty));
                }
            }
        }
        Some(die)
    }

    /// A string attribute's bytes (inline, `.debug_str`, `.debug_line_str` or `strx`).
    pub(super) fn attr_str<'a>(
        &self,
        l: &Located<'a>,
        v: AttributeValue<R<'a>>,
    ) -> Option<&'a [u8]> {
        let (dwarf, header, unit) = (&l.dwarf, &l.header, l.unit);
        let r = match v {
            AttributeValue::String(s) => s,
            AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o).ok()?,
            AttributeValue::DebugLineStrRef(o) => dwarf.debug_line_str.get_str(o).ok()?,
            AttributeValue::DebugStrOffsetsIndex(i) => {
                let base = gimli::DebugStrOffsetsBase(self.index.units[unit].str_offsets_base);
                let o = dwarf
                    .debug_str_offsets
                    .get_str_offset(header.format(), base, i)
                    .ok()?;
                dwarf.debug_str.get_str(o).ok()?
            }
            _ => return None,
        };
        Some(r.slice())
    }

    /// `own` qualified with the namespaces and types the DIE at `off` is declared in.
    pub(super) fn qualified(&self, off: u64, own: String) -> String {
        let scoped = &self.index.scoped;
        let Ok(i) = scoped.binary_search_by_key(&off, |e| e.0) else {
            return own;
        };
        let mut out = self.scope_name(scoped[i].1);
        out.push_str("::");
        out.push_str(&own);
        out
    }

    /// The qualified name of scope `id` (`a::b::C`).
    pub(super) fn scope_name(&self, id: u32) -> String {
        let mut segments = Vec::new();
        let mut at = id;
        // Scopes are made parent first: ids only decrease going up, so this ends.
        while let Some(s) = self.index.scopes.get(at as usize) {
            segments.push(&*s.name);
            if s.parent >= at {
                break;
            }
            at = s.parent;
        }
        segments.reverse();
        segments.join("::")
    }

    /// The name of the DIE at `off` as written in it (not qualified), without keeping the DIE.
    pub(super) fn own_name(&self, off: u64) -> Option<String> {
        // Not from a parsed DIE's qualified name: generic arguments hold `::` too.
        let l = self.locate(off)?;
        let e = l.header.entry(&l.abbrevs, l.at).ok()?;
        self.name_of(&l, &e)
    }
}
