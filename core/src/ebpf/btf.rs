//! A reader for BTF (the BPF Type Format, the `.BTF` section clang emits with `-g`), as
//! much as loading needs: the libbpf-style map definitions in `.maps`.
//!
//! [`Btf::parse`] checks the header and walks every type record once, so later lookups
//! only fail on references (a type id that does not exist, a string offset out of range)
//! and never read past the section. No allocation: a lookup by id walks the records.
//!
//! A BTF-defined map is a variable in the `.maps` data section whose type is a struct of
//! pointer members (`bpf.h`'s `__uint`/`__type` macros): `__uint(name, N)` is
//! `int (*name)[N]`, so the number is the array's element count; `__type(name, T)` is
//! `T *name`, so the size is `sizeof(T)` ([`Btf::map_definition`]).

use core::fmt;

/// BTF kinds (`BTF_KIND_*`).
pub mod kind {
    pub const INT: u8 = 1;
    pub const PTR: u8 = 2;
    pub const ARRAY: u8 = 3;
    pub const STRUCT: u8 = 4;
    pub const UNION: u8 = 5;
    pub const ENUM: u8 = 6;
    pub const FWD: u8 = 7;
    pub const TYPEDEF: u8 = 8;
    pub const VOLATILE: u8 = 9;
    pub const CONST: u8 = 10;
    pub const RESTRICT: u8 = 11;
    pub const FUNC: u8 = 12;
    pub const FUNC_PROTO: u8 = 13;
    pub const VAR: u8 = 14;
    pub const DATASEC: u8 = 15;
    pub const FLOAT: u8 = 16;
    pub const DECL_TAG: u8 = 17;
    pub const TYPE_TAG: u8 = 18;
    pub const ENUM64: u8 = 19;
}

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;
/// Longest chain of typedefs, modifiers and array elements followed before giving up (a
/// cycle in a malformed section would otherwise never end).
const MAX_CHAIN: u32 = 32;

/// What is wrong with a BTF section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BtfError {
    /// Shorter than the 24-byte header.
    Truncated { len: u32 },
    /// The magic number is not 0xeb9f (or the section is big-endian BTF).
    BadMagic { magic: u16 },
    /// A version other than 1.
    BadVersion { version: u8 },
    /// The header's lengths or offsets point outside the section.
    BadHeader,
    /// Type record `id` runs past the end of the type area.
    TruncatedType { id: u32 },
    /// Type record `id` has a kind this reader does not know.
    UnknownKind { id: u32, kind: u8 },
    /// A string offset outside the string area, or a string without its NUL or not UTF-8.
    BadString { offset: u32 },
    /// A reference to a type id that does not exist (or to `void` where a type is needed).
    BadTypeId { id: u32 },
    /// Type `id` has no size (a function, a forward declaration, `void`...) or it overflows.
    NoSize { id: u32 },
    /// Following type `id` takes more than 32 steps (or loops).
    ChainTooLong { id: u32 },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BtfError::Truncated { len } => write!(f, "BTF section of {len} bytes is shorter than its header"),
            BtfError::BadMagic { magic } => write!(f, "BTF magic {magic:#06x} is not 0xeb9f (little-endian BTF)"),
            BtfError::BadVersion { version } => write!(f, "BTF version {version} is not supported"),
            BtfError::BadHeader => f.write_str("BTF header points outside the section"),
            BtfError::TruncatedType { id } => write!(f, "BTF type {id} runs past the type area"),
            BtfError::UnknownKind { id, kind } => write!(f, "BTF type {id} has unknown kind {kind}"),
            BtfError::BadString { offset } => write!(f, "BTF string at offset {offset} is invalid"),
            BtfError::BadTypeId { id } => write!(f, "BTF type id {id} does not exist"),
            BtfError::NoSize { id } => write!(f, "BTF type {id} has no size"),
            BtfError::ChainTooLong { id } => write!(f, "BTF type {id}: chain of type references too long"),
        }
    }
}

impl core::error::Error for BtfError {}

/// One type record.
#[derive(Clone, Copy, Debug)]
pub struct Type<'data> {
    pub id: u32,
    pub name_off: u32,
    pub kind: u8,
    /// Number of members, enumerators, parameters or variables.
    pub vlen: u16,
    pub kind_flag: bool,
    /// The size (integers, structs, unions, enums, data sections) or the referenced type.
    pub size_or_type: u32,
    /// The kind-specific data after the 12-byte record.
    extra: &'data [u8],
}

/// A struct or union member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    pub offset: u32,
}

/// A variable of a data section (`btf_var_secinfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarSecInfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// The numbers of a map definition, before they are checked ([`crate::ebpf::maps::MapDef::new`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawMapDef {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// A map definition the loader does not accept, with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapDefinitionError {
    Btf(BtfError),
    Invalid(&'static str),
}

impl From<BtfError> for MapDefinitionError {
    fn from(e: BtfError) -> Self {
        MapDefinitionError::Btf(e)
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Bytes after the 12-byte record, by kind.
fn extra_len(kind: u8, vlen: usize) -> Option<usize> {
    Some(match kind {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::PTR
        | kind::FWD
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::FLOAT
        | kind::TYPE_TAG => 0,
        kind::ARRAY => 12,
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
        kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
        _ => return None,
    })
}

/// A parsed `.BTF` section.
#[derive(Clone, Copy, Debug)]
pub struct Btf<'data> {
    types: &'data [u8],
    strings: &'data [u8],
    count: u32,
}

impl<'data> Btf<'data> {
    /// Checks the header (little-endian BTF, version 1) and every type record's length and
    /// kind.
    pub fn parse(data: &'data [u8]) -> Result<Btf<'data>, BtfError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let header = data.first_chunk::<HEADER_LEN>().ok_or(BtfError::Truncated { len })?;
        let magic = u16::from_le_bytes([header[0], header[1]]);
        if magic != MAGIC {
            return Err(BtfError::BadMagic { magic });
        }
        if header[2] != 1 {
            return Err(BtfError::BadVersion { version: header[2] });
        }
        let field = |i: usize| u32_at(header, 4 + 4 * i).unwrap_or_default() as usize;
        let (hdr_len, type_off, type_len, str_off, str_len) = (field(0), field(1), field(2), field(3), field(4));
        if hdr_len < HEADER_LEN {
            return Err(BtfError::BadHeader);
        }
        let area = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let types = area(type_off, type_len).ok_or(BtfError::BadHeader)?;
        let strings = area(str_off, str_len).ok_or(BtfError::BadHeader)?;
        let mut btf = Btf { types, strings, count: 0 };
        let mut offset = 0;
        let mut id = 1u32;
        while offset < types.len() {
            let (_, next) = btf.record(id, offset)?;
            offset = next;
            id = id.checked_add(1).ok_or(BtfError::TruncatedType { id })?;
        }
        btf.count = id - 1;
        Ok(btf)
    }

    /// Number of types (ids 1..=count).
    pub fn type_count(&self) -> u32 {
        self.count
    }

    /// Decodes the record at byte `offset` of the type area as type `id`; returns it and
    /// the offset of the next record.
    fn record(&self, id: u32, offset: usize) -> Result<(Type<'data>, usize), BtfError> {
        let truncated = BtfError::TruncatedType { id };
        let head = self.types.get(offset..offset.checked_add(TYPE_LEN).ok_or(truncated)?).ok_or(truncated)?;
        let name_off = u32_at(head, 0).ok_or(truncated)?;
        let info = u32_at(head, 4).ok_or(truncated)?;
        let size_or_type = u32_at(head, 8).ok_or(truncated)?;
        let kind = ((info >> 24) & 0x1f) as u8;
        let vlen = (info & 0xffff) as u16;
        let extra_len = extra_len(kind, vlen as usize).ok_or(BtfError::UnknownKind { id, kind })?;
        let start = offset + TYPE_LEN;
        let end = start.checked_add(extra_len).ok_or(truncated)?;
        let extra = self.types.get(start..end).ok_or(truncated)?;
        Ok((Type { id, name_off, kind, vlen, kind_flag: info >> 31 != 0, size_or_type, extra }, end))
    }

    /// Every type, in id order.
    pub fn types(&self) -> Types<'_, 'data> {
        Types { btf: self, offset: 0, id: 1 }
    }

    /// Type `id` (1..=count; 0 is `void`, which has no record).
    pub fn get(&self, id: u32) -> Result<Type<'data>, BtfError> {
        if id == 0 || id > self.count {
            return Err(BtfError::BadTypeId { id });
        }
        self.types().nth(id as usize - 1).ok_or(BtfError::BadTypeId { id })
    }

    /// The NUL-terminated string at `offset` of the string area.
    pub fn string(&self, offset: u32) -> Result<&'data str, BtfError> {
        let bad = BtfError::BadString { offset };
        let tail = self.strings.get(offset as usize..).ok_or(bad)?;
        let end = tail.iter().position(|&b| b == 0).ok_or(bad)?;
        core::str::from_utf8(tail.get(..end).ok_or(bad)?).map_err(|_| bad)
    }

    /// The type's name (empty for anonymous types).
    pub fn name(&self, t: &Type<'data>) -> Result<&'data str, BtfError> {
        self.string(t.name_off)
    }

    /// The first type of `kind` named `name`.
    pub fn find(&self, kind: u8, name: &str) -> Result<Option<Type<'data>>, BtfError> {
        for t in self.types() {
            if t.kind == kind && self.name(&t)? == name {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Follows typedefs and qualifiers (`const`, `volatile`, `restrict`, type tags) from
    /// type `id` to the type they name.
    pub fn skip_modifiers(&self, id: u32) -> Result<Type<'data>, BtfError> {
        let mut t = self.get(id)?;
        for _ in 0..MAX_CHAIN {
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    t = self.get(t.size_or_type)?
                }
                _ => return Ok(t),
            }
        }
        Err(BtfError::ChainTooLong { id })
    }

    /// `sizeof` type `id`, in bytes.
    pub fn size_of(&self, id: u32) -> Result<u64, BtfError> {
        let mut t = self.get(id)?;
        // Array dimensions multiply; modifiers and variables pass through.
        let mut factor: u64 = 1;
        for _ in 0..MAX_CHAIN {
            match t.kind {
                kind::INT | kind::ENUM | kind::ENUM64 | kind::STRUCT | kind::UNION | kind::DATASEC | kind::FLOAT => {
                    return factor.checked_mul(t.size_or_type as u64).ok_or(BtfError::NoSize { id });
                }
                kind::PTR => return factor.checked_mul(8).ok_or(BtfError::NoSize { id }),
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG | kind::VAR => {
                    t = self.get(t.size_or_type)?
                }
                kind::ARRAY => {
                    let array = array_info(&t).ok_or(BtfError::TruncatedType { id: t.id })?;
                    factor = factor.checked_mul(array.nelems as u64).ok_or(BtfError::NoSize { id })?;
                    t = self.get(array.elem)?;
                }
                _ => return Err(BtfError::NoSize { id: t.id }),
            }
        }
        Err(BtfError::ChainTooLong { id })
    }

    /// The members of a struct or union (nothing for other kinds).
    pub fn members(&self, t: &Type<'data>) -> impl Iterator<Item = Member> + 'data {
        let extra = if matches!(t.kind, kind::STRUCT | kind::UNION) { t.extra } else { &[] };
        extra.chunks_exact(12).map(|m| Member {
            name_off: u32_at(m, 0).unwrap_or_default(),
            type_id: u32_at(m, 4).unwrap_or_default(),
            offset: u32_at(m, 8).unwrap_or_default(),
        })
    }

    /// The variables of a data section (nothing for other kinds).
    pub fn datasec_vars(&self, t: &Type<'data>) -> impl Iterator<Item = VarSecInfo> + 'data {
        let extra = if t.kind == kind::DATASEC { t.extra } else { &[] };
        extra.chunks_exact(12).map(|v| VarSecInfo {
            type_id: u32_at(v, 0).unwrap_or_default(),
            offset: u32_at(v, 4).unwrap_or_default(),
            size: u32_at(v, 8).unwrap_or_default(),
        })
    }

    /// Reads a libbpf-style map definition from the type of a `.maps` variable (type
    /// `var_type`: the VAR's type, a struct). Attributes: `type`, `max_entries`,
    /// `map_flags`, `key_size`/`key`, `value_size`/`value`, `numa_node` (ignored); `pinning`
    /// and `map_extra` only as 0. Anything else (`values` for map-in-map, unknown names) is
    /// refused.
    pub fn map_definition(&self, var_type: u32) -> Result<RawMapDef, MapDefinitionError> {
        let def_type = self.skip_modifiers(var_type)?;
        if def_type.kind != kind::STRUCT {
            return Err(MapDefinitionError::Invalid("the map's type is not a struct"));
        }
        let mut def = RawMapDef::default();
        let (mut key_type_size, mut value_type_size) = (None, None);
        for member in self.members(&def_type) {
            let name = self.string(member.name_off)?;
            match name {
                "key" | "value" => {
                    let ptr = self.skip_modifiers(member.type_id)?;
                    if ptr.kind != kind::PTR {
                        return Err(MapDefinitionError::Invalid("`key`/`value` is not a pointer to the type"));
                    }
                    let size = self.size_of(ptr.size_or_type)?;
                    let size = u32::try_from(size).map_err(|_| BtfError::NoSize { id: ptr.size_or_type })?;
                    *(if name == "key" { &mut key_type_size } else { &mut value_type_size }) = Some(size);
                }
                "values" => return Err(MapDefinitionError::Invalid("initial `values` are not supported")),
                _ => {
                    let n = self.uint_attribute(member.type_id)?;
                    match name {
                        "type" => def.map_type = n,
                        "max_entries" => def.max_entries = n,
                        "map_flags" => def.flags = n,
                        "key_size" => def.key_size = n,
                        "value_size" => def.value_size = n,
                        "numa_node" => {}
                        "pinning" | "map_extra" if n == 0 => {}
                        "pinning" => return Err(MapDefinitionError::Invalid("map pinning is not supported")),
                        "map_extra" => return Err(MapDefinitionError::Invalid("map_extra is not supported")),
                        _ => return Err(MapDefinitionError::Invalid("unknown map attribute")),
                    }
                }
            }
        }
        for (from_type, size, what) in [
            (key_type_size, &mut def.key_size, "`key` and `key_size` disagree"),
            (value_type_size, &mut def.value_size, "`value` and `value_size` disagree"),
        ] {
            if let Some(from_type) = from_type {
                if *size != 0 && *size != from_type {
                    return Err(MapDefinitionError::Invalid(what));
                }
                *size = from_type;
            }
        }
        Ok(def)
    }

    /// The number `__uint(name, N)` encodes: a pointer to an array of N elements.
    fn uint_attribute(&self, member_type: u32) -> Result<u32, MapDefinitionError> {
        let invalid = MapDefinitionError::Invalid("a numeric attribute is not a pointer to an array");
        let ptr = self.skip_modifiers(member_type)?;
        if ptr.kind != kind::PTR {
            return Err(invalid);
        }
        let array = self.skip_modifiers(ptr.size_or_type)?;
        array_info(&array).map(|a| a.nelems).ok_or(invalid)
    }
}

/// The element type, index type and length of an array type.
#[derive(Clone, Copy)]
struct ArrayInfo {
    elem: u32,
    nelems: u32,
}

fn array_info(t: &Type) -> Option<ArrayInfo> {
    if t.kind != kind::ARRAY {
        return None;
    }
    Some(ArrayInfo { elem: u32_at(t.extra, 0)?, nelems: u32_at(t.extra, 8)? })
}

/// Iterator over the types of a [`Btf`], in id order.
pub struct Types<'b, 'data> {
    btf: &'b Btf<'data>,
    offset: usize,
    id: u32,
}

impl<'data> Iterator for Types<'_, 'data> {
    type Item = Type<'data>;

    fn next(&mut self) -> Option<Type<'data>> {
        if self.offset >= self.btf.types.len() {
            return None;
        }
        // Every record was checked by `parse`; an error here cannot happen and ends the walk.
        let (t, next) = self.btf.record(self.id, self.offset).ok()?;
        self.offset = next;
        self.id = self.id.wrapping_add(1);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF section from type records and a string area.
    fn section(types: &[u8], strings: &[u8]) -> [u8; 512] {
        let mut out = [0u8; 512];
        // magic, version 1, flags 0; then hdr_len, type_off, type_len, str_off, str_len.
        out[..4].copy_from_slice(&[0x9f, 0xeb, 1, 0]);
        let (types_len, strings_len) = (types.len() as u32, strings.len() as u32);
        for (i, word) in [24, 0, types_len, types_len, strings_len].into_iter().enumerate() {
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&word.to_le_bytes());
        }
        out[24..24 + types.len()].copy_from_slice(types);
        out[24 + types.len()..24 + types.len() + strings.len()].copy_from_slice(strings);
        out
    }

    fn record(out: &mut [u8], at: &mut usize, name: u32, kind: u8, vlen: u16, size_or_type: u32, extra: &[u32]) {
        let info = ((kind as u32) << 24) | vlen as u32;
        for w in [name, info, size_or_type].iter().chain(extra) {
            out[*at..*at + 4].copy_from_slice(&w.to_le_bytes());
            *at += 4;
        }
    }

    // Strings: 0 "", 1 "int", 5 "type", 10 "key", 14 "value", 20 "max_entries", 32 "m"
    const STRINGS: &[u8] = b"\0int\0type\0key\0value\0max_entries\0m\0";

    /// 1 int; 2 int[1]; 3 int (*)[1]; 4 int[64]; 5 int (*)[64]; 6 int *; 7 typedef int;
    /// 8 struct { type: 3, key: 6, value: 6, max_entries: 5 }
    fn map_types() -> ([u8; 256], usize) {
        let mut t = [0u8; 256];
        let mut at = 0;
        record(&mut t, &mut at, 1, kind::INT, 0, 4, &[32]);
        record(&mut t, &mut at, 0, kind::ARRAY, 0, 0, &[1, 1, 1]);
        record(&mut t, &mut at, 0, kind::PTR, 0, 2, &[]);
        record(&mut t, &mut at, 0, kind::ARRAY, 0, 0, &[1, 1, 64]);
        record(&mut t, &mut at, 0, kind::PTR, 0, 4, &[]);
        record(&mut t, &mut at, 0, kind::PTR, 0, 7, &[]);
        record(&mut t, &mut at, 32, kind::TYPEDEF, 0, 1, &[]);
        record(&mut t, &mut at, 0, kind::STRUCT, 4, 32, &[5, 3, 0, 10, 6, 64, 14, 6, 128, 20, 5, 192]);
        (t, at)
    }

    #[test]
    fn reads_a_map_definition() {
        let (types, len) = map_types();
        let data = section(&types[..len], STRINGS);
        let btf = Btf::parse(&data[..24 + len + STRINGS.len()]).unwrap();
        assert_eq!(btf.type_count(), 8);
        assert_eq!(btf.size_of(4), Ok(256));
        assert_eq!(btf.size_of(7), Ok(4));
        assert_eq!(btf.size_of(6), Ok(8));
        assert_eq!(btf.name(&btf.get(1).unwrap()), Ok("int"));
        assert_eq!(
            btf.map_definition(8),
            Ok(RawMapDef { map_type: 1, key_size: 4, value_size: 4, max_entries: 64, flags: 0 })
        );
        assert_eq!(btf.map_definition(1), Err(MapDefinitionError::Invalid("the map's type is not a struct")));
        assert_eq!(btf.get(9).err(), Some(BtfError::BadTypeId { id: 9 }));
        assert_eq!(btf.get(0).err(), Some(BtfError::BadTypeId { id: 0 }));
        assert_eq!(btf.string(500), Err(BtfError::BadString { offset: 500 }));
        assert_eq!(btf.find(kind::TYPEDEF, "m").map(|t| t.map(|t| t.id)), Ok(Some(7)));
    }

    #[test]
    fn malformed_sections() {
        let (types, len) = map_types();
        let good = section(&types[..len], STRINGS);
        let total = 24 + len + STRINGS.len();
        assert_eq!(Btf::parse(&good[..10]).err(), Some(BtfError::Truncated { len: 10 }));
        let mut bad = good;
        bad[0] = 0xeb;
        bad[1] = 0x9f;
        assert_eq!(Btf::parse(&bad[..total]).err(), Some(BtfError::BadMagic { magic: 0x9feb }));
        let mut bad = good;
        bad[2] = 2;
        assert_eq!(Btf::parse(&bad[..total]).err(), Some(BtfError::BadVersion { version: 2 }));
        // The string area runs past the section.
        assert_eq!(Btf::parse(&good[..total - 1]).err(), Some(BtfError::BadHeader));
        // Type 3 (at byte 40: after a 16-byte int and a 24-byte array) gets an unknown kind.
        let mut bad = good;
        bad[24 + 40 + 7] = 31;
        assert_eq!(Btf::parse(&bad[..total]).err(), Some(BtfError::UnknownKind { id: 3, kind: 31 }));
        // The struct claims 5 members: its record runs past the type area.
        let mut bad = good;
        bad[24 + len - 60 + 4] = 5;
        assert_eq!(Btf::parse(&bad[..total]).err(), Some(BtfError::TruncatedType { id: 8 }));
    }

    #[test]
    fn cycles_end() {
        let mut t = [0u8; 64];
        let mut at = 0;
        record(&mut t, &mut at, 0, kind::TYPEDEF, 0, 2, &[]);
        record(&mut t, &mut at, 0, kind::CONST, 0, 1, &[]);
        let data = section(&t[..at], b"\0");
        let btf = Btf::parse(&data[..24 + at + 1]).unwrap();
        assert_eq!(btf.skip_modifiers(1).err(), Some(BtfError::ChainTooLong { id: 1 }));
        assert_eq!(btf.size_of(2).err(), Some(BtfError::ChainTooLong { id: 2 }));
    }
}
