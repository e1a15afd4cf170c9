//! NumPy `.npy` / `.npz` input and output.
//!
//! Inputs may be float32 (used as is) or float64 / integer arrays, which are
//! cast to float32 the way Keras casts its inputs (`numpy.astype("float32")`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};
use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, Axis, IxDyn};
use ndarray_npy::WriteNpyExt;
use rayon::prelude::*;

use crate::archive::atomic::write_atomic_with;
use crate::engine::gemm::Lhs;
use crate::error::{Error, Result};

/// Batches with at least this many values are gathered on two threads.
const PARALLEL_GATHER: usize = 1 << 14;

/// Most bytes one `.npz` member may inflate to.
const MAX_NPZ_MEMBER_BYTES: u64 = 32 << 30;

/// What a `.npy` header declares.
struct NpyHeader {
    /// The dtype descriptor without quotes, e.g. `<f4`.
    descr: String,
    /// True for Fortran (column-major) order.
    fortran_order: bool,
    /// The array shape.
    shape: Vec<usize>,
    /// Offset of the first data byte.
    data_start: usize,
}

impl NpyHeader {
    /// True for little-endian float32 in C order: data usable as stored.
    fn is_plain_f32(&self) -> bool {
        self.descr == "<f4" && !self.fortran_order
    }
}

/// Parse and check a `.npy` header against the bytes that follow it: the
/// declared shape × item size (checked arithmetic) must equal the stored
/// data, so a header declaring a huge shape ("shape bomb") is refused before
/// anything is allocated.
fn parse_npy_header(bytes: &[u8]) -> Result<NpyHeader> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        let found = if bytes.starts_with(b"PK") {
            "a zip archive, as an `.npz` is: name one of its arrays instead"
        } else {
            "other bytes"
        };
        return Err(Error::mismatch(
            "a .npy array (starting with `\\x93NUMPY`)",
            found,
        ));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(Error::unsupported(
                ".npy version",
                v.to_string(),
                &["1", "2", "3"],
            ));
        }
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| Error::invalid("truncated .npy header"))?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| Error::invalid(".npy header is not text"))?;
    let HeaderDict {
        descr,
        fortran_order,
        shape: dims,
    } = header_dict(header)?;
    let itemsize: u64 = match descr.as_str() {
        "<f4" | "<i4" | "<u4" | ">f4" | ">i4" | ">u4" => 4,
        "<f8" | "<i8" | "<u8" | ">f8" | ">i8" | ">u8" => 8,
        "<i2" | "<u2" | ">i2" | ">u2" => 2,
        "|u1" | "|i1" | "|b1" => 1,
        _ => {
            return Err(Error::unsupported(
                ".npy dtype",
                descr,
                &["<f4", "<f8", "<i4", "<i8"],
            ));
        }
    };
    let inner = dims
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut elements: u64 = 1;
    let mut shape = Vec::new();
    for &d in &dims {
        elements = elements
            .checked_mul(d)
            .ok_or_else(|| Error::limit("npy_shape", format!("shape ({inner}) overflows")))?;
        shape.push(
            usize::try_from(d)
                .map_err(|_| Error::limit("npy_shape", format!("shape ({inner}) overflows")))?,
        );
    }
    let declared = elements
        .checked_mul(itemsize)
        .ok_or_else(|| Error::limit("npy_shape", format!("shape ({inner}) overflows")))?;
    let stored = (bytes.len() - end) as u64;
    if declared != stored {
        return Err(Error::mismatch(
            format!("{declared} bytes of data for shape ({inner})"),
            format!("{stored} bytes"),
        ));
    }
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_start: end,
    })
}

/// The three keys of a `.npy` header.
struct HeaderDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A Python literal, as far as `.npy` headers use them.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(i128),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

/// Parse a `.npy` header as numpy does (`format._read_array_header`: the
/// text is a Python literal read by `ast.literal_eval`, which must be a dict
/// with exactly the keys `descr`, `fortran_order` and `shape`; a repeated
/// key keeps its last value, as in Python).
fn header_dict(text: &str) -> Result<HeaderDict> {
    let bad = |what: &str| Error::invalid(format!("malformed .npy header ({what}): {text:?}"));
    let mut p = LiteralParser {
        s: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let value = p.value().map_err(|e| bad(&e))?;
    p.skip_ws();
    if p.at != p.s.len() {
        return Err(bad("text after the dictionary"));
    }
    let Literal::Dict(items) = value else {
        return Err(bad("not a dictionary"));
    };
    let mut map: Vec<(String, Literal)> = Vec::new();
    for (k, v) in items {
        let Literal::Str(k) = k else {
            return Err(bad("a key that is not a string"));
        };
        match map.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => map.push((k, v)),
        }
    }
    let mut keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if keys != ["descr", "fortran_order", "shape"] {
        return Err(Error::mismatch(
            "a .npy header with the keys `descr`, `fortran_order` and `shape`",
            format!("keys {keys:?}"),
        ));
    }
    let get = |k: &str| &map.iter().find(|(key, _)| key == k).expect("checked").1;
    let descr = match get("descr") {
        Literal::Str(d) => d.clone(),
        other => {
            return Err(Error::unsupported(
                ".npy dtype",
                format!("{other:?}"),
                &["<f4", "<f8", "<i4", "<i8"],
            ));
        }
    };
    let fortran_order = match get("fortran_order") {
        Literal::Bool(b) => *b,
        _ => return Err(bad("`fortran_order` is not a boolean")),
    };
    let shape = match get("shape") {
        Literal::Tuple(items) => items
            .iter()
            .map(|d| match d {
                Literal::Int(v) => u64::try_from(*v).map_err(|_| bad("a negative dimension")),
                _ => Err(bad("a dimension that is not an integer")),
            })
            .collect::<Result<Vec<u64>>>()?,
        _ => return Err(bad("`shape` is not a tuple")),
    };
    Ok(HeaderDict {
        descr,
        fortran_order,
        shape,
    })
}

/// A recursive-descent reader of the Python literals `.npy` headers hold.
struct LiteralParser<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
}

impl LiteralParser<'_> {
    fn skip_ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> std::result::Result<Literal, String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err("nested too deeply".into());
        }
        let v = match self.peek().ok_or("unexpected end")? {
            b'{' => {
                self.at += 1;
                let mut items = Vec::new();
                while !self.eat(b'}') {
                    let k = self.value()?;
                    if !self.eat(b':') {
                        return Err("`:` expected".into());
                    }
                    items.push((k, self.value()?));
                    if !self.eat(b',') {
                        if !self.eat(b'}') {
                            return Err("`,` or `}` expected".into());
                        }
                        break;
                    }
                }
                Literal::Dict(items)
            }
            open @ (b'(' | b'[') => {
                self.at += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                let mut comma = false;
                while !self.eat(close) {
                    items.push(self.value()?);
                    comma = self.eat(b',');
                    if !comma {
                        if !self.eat(close) {
                            return Err("`,` or a closing bracket expected".into());
                        }
                        break;
                    }
                }
                match (open, items.len(), comma) {
                    // `(x)` is x, not a tuple.
                    (b'(', 1, false) => items.pop().expect("one item"),
                    (b'(', ..) => Literal::Tuple(items),
                    _ => Literal::List(items),
                }
            }
            q @ (b'\'' | b'"') => {
                self.at += 1;
                let mut out = String::new();
                loop {
                    let c = *self.s.get(self.at).ok_or("unterminated string")?;
                    self.at += 1;
                    match c {
                        _ if c == q => break,
                        b'\\' => {
                            let e = *self.s.get(self.at).ok_or("unterminated string")?;
                            self.at += 1;
                            out.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                other => char::from(other),
                            });
                        }
                        b'\n' => return Err("newline in a string".into()),
                        _ => out.push(char::from(c)),
                    }
                }
                Literal::Str(out)
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let begin = self.at;
                self.at += 1;
                while self
                    .s
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'_')
                {
                    self.at += 1;
                }
                let text: String = std::str::from_utf8(&self.s[begin..self.at])
                    .map_err(|_| "bad number")?
                    .replace('_', "");
                Literal::Int(text.parse().map_err(|_| format!("bad integer `{text}`"))?)
            }
            _ => {
                let rest = &self.s[self.at..];
                let (lit, len) = if rest.starts_with(b"True") {
                    (Literal::Bool(true), 4)
                } else if rest.starts_with(b"False") {
                    (Literal::Bool(false), 5)
                } else if rest.starts_with(b"None") {
                    (Literal::None, 4)
                } else {
                    return Err("unexpected character".into());
                };
                self.at += len;
                if self
                    .s
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    return Err("unexpected name".into());
                }
                lit
            }
        };
        self.depth -= 1;
        Ok(v)
    }
}

/// Parse `.npy` bytes as float32, casting the other numeric dtypes as
/// `numpy.astype("float32")` does (round to nearest); Fortran-order data is
/// returned in C order.
pub fn npy_f32_from_bytes(bytes: &[u8]) -> Result<ArrayD<f32>> {
    let header = parse_npy_header(bytes)?;
    let data = &bytes[header.data_start..];
    let (kind, little) = {
        let d = header.descr.as_bytes();
        (&header.descr[1..], d[0] != b'>')
    };
    macro_rules! cast {
        ($t:ty, $n:expr) => {
            data.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().expect("chunk size");
                    (if little {
                        <$t>::from_le_bytes(a)
                    } else {
                        <$t>::from_be_bytes(a)
                    }) as f32
                })
                .collect::<Vec<f32>>()
        };
    }
    let values: Vec<f32> = match kind {
        "f4" => cast!(f32, 4),
        "f8" => cast!(f64, 8),
        "i1" => cast!(i8, 1),
        "u1" => cast!(u8, 1),
        "b1" => data.iter().map(|&b| f32::from(u8::from(b != 0))).collect(),
        "i2" => cast!(i16, 2),
        "u2" => cast!(u16, 2),
        "i4" => cast!(i32, 4),
        "u4" => cast!(u32, 4),
        "i8" => cast!(i64, 8),
        "u8" => cast!(u64, 8),
        _ => {
            return Err(Error::unsupported(
                ".npy dtype",
                header.descr,
                &["<f4", "<f8", "<i4", "<i8"],
            ));
        }
    };
    let shape = IxDyn(&header.shape);
    let array = if header.fortran_order {
        use ndarray::ShapeBuilder;
        ArrayD::from_shape_vec(shape.f(), values).map(|a| a.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(shape, values)
    };
    array.map_err(|e| Error::invalid(format!("not a readable .npy array: {e}")))
}

/// A float32 array read from a `.npy` file or `.npz` member, first axis
/// the rows. Little-endian float32 data stored uncompressed is used where it
/// lies in the file (memory-mapped, never copied as a whole); anything else
/// (other dtypes, compressed members, files that cannot be mapped) is
/// decoded into memory. Cloning and slicing rows are cheap.
#[derive(Clone)]
pub struct F32Data {
    shape: Vec<usize>,
    store: Store,
    /// Index of this array's first element in the store.
    first: usize,
    /// The whole array's first non-finite value, when a scan of the file
    /// already found it (`Some(None)`: all values are finite).
    scanned: Option<Option<usize>>,
}

#[derive(Clone)]
enum Store {
    Owned(Arc<Vec<f32>>),
    /// Little-endian float32 values (possibly unaligned) from byte `start`.
    Mapped {
        map: Arc<Mmap>,
        start: usize,
    },
}

impl std::fmt::Debug for F32Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.store {
            Store::Owned(_) => "in memory",
            Store::Mapped { .. } => "mapped",
        };
        write!(f, "F32Data({:?}, {kind})", self.shape)
    }
}

impl PartialEq for F32Data {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.to_array() == other.to_array()
    }
}

impl From<ArrayD<f32>> for F32Data {
    fn from(a: ArrayD<f32>) -> Self {
        let shape = a.shape().to_vec();
        let values = if a.is_standard_layout() {
            a.into_raw_vec_and_offset().0
        } else {
            a.iter().copied().collect()
        };
        F32Data {
            shape,
            store: Store::Owned(Arc::new(values)),
            first: 0,
            scanned: None,
        }
    }
}

/// The little-endian float32 values in `bytes`.
fn le_f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// True when any of the little-endian float32 values in `bytes` is NaN or
/// infinite (all exponent bits set). Written without early exit so that it
/// vectorizes.
fn bytes_have_non_finite(bytes: &[u8]) -> bool {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7f80_0000)
        .fold(0u32, |acc, e| acc | u32::from(e == 0x7f80_0000))
        != 0
}

impl F32Data {
    /// The array shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per row (product of all axes but the first).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The values as stored bytes (mapped) or as floats (in memory).
    fn parts(&self) -> std::result::Result<&[u8], &[f32]> {
        let n = self.len();
        match &self.store {
            Store::Owned(v) => Err(&v[self.first..self.first + n]),
            Store::Mapped { map, start } => {
                let from = start + self.first * 4;
                Ok(&map[from..from + n * 4])
            }
        }
    }

    /// Rows `range` as a `[rows · lead, last]` product operand, where they
    /// lie (no copy), `last` being the size of the last axis; `None` when
    /// the stored bytes cannot be used as they are (a big-endian target).
    ///
    /// # Panics
    /// When the range is beyond the rows.
    pub fn rows_in_place(&self, range: std::ops::Range<usize>) -> Option<Lhs<'_>> {
        let w = self.row_len();
        let last = *self.shape.last().unwrap_or(&1);
        let rows = (range.len() * w).checked_div(last).unwrap_or(0);
        let view = |v| ArrayView2::from_shape((rows, last), v).expect("rows of a C-order array");
        match self.parts() {
            Err(v) => Some(Lhs::View(view(&v[range.start * w..range.end * w]))),
            Ok(bytes) => {
                let bytes = &bytes[range.start * w * 4..range.end * w * 4];
                match aligned_f32s(bytes) {
                    Some(v) => Some(Lhs::View(view(v))),
                    None => Lhs::from_le_bytes(bytes, rows, last),
                }
            }
        }
    }

    /// Rows `range` of the array, sharing the storage.
    pub fn slice_rows(&self, range: std::ops::Range<usize>) -> F32Data {
        let rows = self.shape.first().copied().unwrap_or(0);
        let (lo, hi) = (
            range.start.min(rows),
            range.end.min(rows).max(range.start.min(rows)),
        );
        let mut shape = self.shape.clone();
        if let Some(r) = shape.first_mut() {
            *r = hi - lo;
        }
        F32Data {
            shape,
            store: self.store.clone(),
            first: self.first + lo * self.row_len(),
            scanned: None,
        }
    }

    /// Write rows `idx` (in that order) into `out`, `idx.len()` rows of
    /// `row_len` values in C order. For large batches each thread copies
    /// one half of every row: the half of the inputs that meets the half of
    /// the first kernel it works on (see `engine::gemm`). A caller that
    /// reuses `out` from batch to batch keeps each half in the cache of the
    /// thread that uses it.
    ///
    /// # Panics
    /// When `out` has another length or an index is out of range.
    pub fn gather_rows_into(&self, idx: &[usize], out: &mut [f32]) {
        let w = self.row_len();
        let mut out = ArrayViewMut2::from_shape((idx.len(), w), out)
            .expect("the output holds idx.len() rows of row_len values");
        let fill = |mut part: ArrayViewMut2<'_, f32>, lo: usize| {
            for (mut row, &i) in part.rows_mut().into_iter().zip(idx) {
                let dst = row.as_slice_mut().expect("rows of a C-order array");
                self.copy_part(i * w + lo, dst);
            }
        };
        if idx.len() * w >= PARALLEL_GATHER && w >= 64 {
            let (left, right) = out.view_mut().split_at(Axis(1), w / 2);
            crate::engine::pool::join(|| fill(left, 0), || fill(right, w / 2));
        } else {
            fill(out.view_mut(), 0);
        }
    }

    /// Copy the values from element `from` on into `dst`.
    fn copy_part(&self, from: usize, dst: &mut [f32]) {
        let n = dst.len();
        match self.parts() {
            Err(values) => dst.copy_from_slice(&values[from..from + n]),
            Ok(bytes) => {
                for (d, v) in dst
                    .iter_mut()
                    .zip(le_f32s(&bytes[from * 4..(from + n) * 4]))
                {
                    *d = v;
                }
            }
        }
    }

    /// Index (in C order) of the first NaN or infinite value. Large arrays
    /// are scanned on all threads.
    pub fn first_non_finite(&self) -> Option<usize> {
        if let Some(found) = self.scanned {
            return found;
        }
        const CHUNK: usize = 1 << 16;
        match self.parts() {
            Err(values) => {
                let bad = values
                    .par_chunks(CHUNK)
                    .position_first(|c| c.iter().any(|v| !v.is_finite()))?;
                let c = &values[bad * CHUNK..];
                c.iter()
                    .position(|v| !v.is_finite())
                    .map(|i| bad * CHUNK + i)
            }
            Ok(bytes) => {
                let bad = bytes
                    .par_chunks(CHUNK * 4)
                    .position_first(bytes_have_non_finite)?;
                let c = &bytes[bad * CHUNK * 4..];
                c.chunks_exact(4)
                    .position(bytes_have_non_finite)
                    .map(|i| bad * CHUNK + i)
            }
        }
    }

    /// The values as an in-memory array.
    pub fn to_array(&self) -> ArrayD<f32> {
        let values: Vec<f32> = match self.parts() {
            Err(values) => values.to_vec(),
            Ok(bytes) => le_f32s(bytes).collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&self.shape), values)
            .expect("the shape was checked against the data")
    }

    /// The array from `.npy` bytes; `mapped` gives the map holding them and
    /// their offset in it, so that float32 data can stay where it is.
    fn from_npy(bytes: &[u8], mapped: Option<(&Arc<Mmap>, usize)>) -> Result<F32Data> {
        let header = parse_npy_header(bytes)?;
        Self::from_parsed(bytes, header, mapped, None)
    }

    /// [`F32Data::from_npy`] with the header parsed and, for mapped data,
    /// the result of a scan for non-finite values.
    fn from_parsed(
        bytes: &[u8],
        header: NpyHeader,
        mapped: Option<(&Arc<Mmap>, usize)>,
        scanned: Option<Option<usize>>,
    ) -> Result<F32Data> {
        let plain_f32 = header.is_plain_f32();
        match mapped {
            Some((map, offset)) if plain_f32 => Ok(F32Data {
                shape: header.shape,
                store: Store::Mapped {
                    map: Arc::clone(map),
                    start: offset + header.data_start,
                },
                first: 0,
                scanned,
            }),
            _ if plain_f32 => Ok(F32Data {
                shape: header.shape,
                store: Store::Owned(Arc::new(le_f32s(&bytes[header.data_start..]).collect())),
                first: 0,
                scanned: None,
            }),
            _ => npy_f32_from_bytes(bytes).map(F32Data::from),
        }
    }
}

/// Map `file` read-only when it is a regular, non-empty file.
///
/// The map is private and read-only; like every tool that maps its inputs,
/// kerasrs assumes nobody truncates the file while it runs.
fn map_file(file: &File) -> Option<Arc<Mmap>> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the map is read-only and private; the bytes are only read
    // through bounds-checked slices.
    unsafe { MmapOptions::new().populate().map(file) }
        .ok()
        .map(Arc::new)
}

/// Little-endian float32 bytes as floats, when they are aligned for f32 on a
/// little-endian target.
fn aligned_f32s(bytes: &[u8]) -> Option<&[f32]> {
    // SAFETY: every bit pattern is a valid f32.
    let (pre, values, post) = unsafe { bytes.align_to::<f32>() };
    (cfg!(target_endian = "little") && pre.is_empty() && post.is_empty()).then_some(values)
}

/// Read a `.npy` file as float32 data, casting float64 and integer arrays.
pub fn read_npy_data(path: &Path) -> Result<F32Data> {
    let file = File::open(path).map_err(|e| Error::io(e, path))?;
    match map_file(&file) {
        Some(map) => F32Data::from_npy(&map[..], Some((&map, 0))),
        None => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| Error::io(e, path))?;
            F32Data::from_npy(&bytes, None)
        }
    }
    .map_err(|e| e.in_file(path))
}

/// Read a `.npy` file as float32, casting float64 and integer arrays.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    read_npy_data(path).map(|d| d.to_array())
}

/// Read array `key` of a `.npz` file as float32 (same casts as
/// [`read_npy_f32`]).
pub fn read_npz_f32(path: &Path, key: &str) -> Result<ArrayD<f32>> {
    read_npz_data(path, key).map(|d| d.to_array())
}

/// Read array `key` of a `.npz` file as float32 data (same casts as
/// [`read_npy_data`]). Members are checked like `.keras` members: declared
/// sizes are capped, decompression bombs refused before inflating, and
/// checksums verified. Stored (uncompressed) members are used in place.
pub fn read_npz_data(path: &Path, key: &str) -> Result<F32Data> {
    let [x] = read_npz_members(path, [key])?;
    Ok(x)
}

/// Arrays `keys` of one `.npz` file, opened and mapped once.
fn read_npz_members<const N: usize>(path: &Path, keys: [&str; N]) -> Result<[F32Data; N]> {
    let file = File::open(path).map_err(|e| Error::io(e, path))?;
    let map = map_file(&file);
    let mut out = Vec::with_capacity(N);
    for key in keys {
        let data = match &map {
            Some(map) => read_npz_from(std::io::Cursor::new(&map[..]), Some(map), key),
            None => read_npz_from(std::io::BufReader::new(&file), None, key),
        };
        out.push(data.map_err(|e| e.in_file(path))?);
    }
    Ok(out.try_into().expect("one array per key"))
}

/// The CRC-32 of a stored `.npy` member and, for float32 data, where its
/// first non-finite value is: one pass over the bytes, in chunks spread over
/// the threads (the data is read from memory once for both).
fn checksum_and_scan(bytes: &[u8], header: &NpyHeader) -> (u32, Option<Option<usize>>) {
    const CHUNK: usize = 1 << 20;
    let (head, data) = bytes.split_at(header.data_start);
    let plain_f32 = header.is_plain_f32();
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    let parts: Vec<(crc32fast::Hasher, Option<usize>)> = data
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut h = crc32fast::Hasher::new();
            h.update(chunk);
            let bad = (plain_f32 && bytes_have_non_finite(chunk))
                .then(|| chunk.chunks_exact(4).position(bytes_have_non_finite))
                .flatten();
            (h, bad)
        })
        .collect();
    let mut first = None;
    for (i, (h, bad)) in parts.iter().enumerate() {
        crc.combine(h);
        if first.is_none() {
            first = bad.map(|b| i * CHUNK / 4 + b);
        }
    }
    (crc.finalize(), plain_f32.then_some(first))
}

/// Read inputs `x_key` (as [`read_npz_data`]) and targets `y_key` (as
/// [`read_npz_f32`]) of one `.npz` file, opened and mapped once.
pub fn read_npz_pair(path: &Path, x_key: &str, y_key: &str) -> Result<(F32Data, ArrayD<f32>)> {
    let [x, y] = read_npz_members(path, [x_key, y_key])?;
    Ok((x, y.to_array()))
}

fn read_npz_from<R: std::io::Read + std::io::Seek>(
    reader: R,
    map: Option<&Arc<Mmap>>,
    key: &str,
) -> Result<F32Data> {
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| Error::invalid(format!("not a readable .npz archive: {e}")))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let member = names
        .iter()
        .find(|n| n.as_str() == key || n.strip_suffix(".npy") == Some(key))
        .cloned()
        .ok_or_else(|| {
            let mut keys: Vec<&str> = names.iter().map(|n| n.trim_end_matches(".npy")).collect();
            keys.sort_unstable();
            Error::missing(format!(
                "array `{key}` (the archive holds: {})",
                keys.join(", ")
            ))
        })?;
    let in_member = |e: Error| e.in_member(member.clone());
    let mut entry = zip.by_name(&member).map_err(|e| in_member(Error::zip(e)))?;
    let (declared, stored) = (entry.size(), entry.compressed_size());
    let limits = crate::archive::Limits::default();
    if declared > MAX_NPZ_MEMBER_BYTES
        || (declared > limits.bomb_floor_bytes
            && declared > limits.max_expansion.saturating_mul(stored))
    {
        return Err(in_member(Error::limit(
            "max_expansion",
            format!("declares {declared} bytes but stores {stored}: refusing a potential bomb"),
        )));
    }
    // A stored member inside a mapped file: check its checksum and use it
    // where it lies.
    if let Some(map) = map
        && entry.compression() == zip::CompressionMethod::Stored
        && declared == stored
    {
        let start = usize::try_from(entry.data_start()).ok();
        let range = start.and_then(|s| Some(s..s.checked_add(usize::try_from(declared).ok()?)?));
        if let Some(range) = range.filter(|r| r.end <= map.len()) {
            let bytes = &map[range.clone()];
            let header = parse_npy_header(bytes).map_err(in_member)?;
            let (crc, scanned) = checksum_and_scan(bytes, &header);
            if crc != entry.crc32() {
                return Err(in_member(Error::mismatch(
                    format!("CRC-32 {:08x}", entry.crc32()),
                    format!("{crc:08x}: the member is corrupt"),
                )));
            }
            return F32Data::from_parsed(bytes, header, Some((map, range.start)), scanned)
                .map_err(in_member);
        }
    }
    let mut bytes = Vec::with_capacity(declared.min(1 << 30) as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut entry, declared.saturating_add(1)),
        &mut bytes,
    )
    .map_err(|e| in_member(Error::zip(e)))?;
    F32Data::from_npy(&bytes, None).map_err(in_member)
}

/// Write a float32 array as `.npy`, atomically.
pub fn write_npy_f32(path: &Path, array: &ArrayD<f32>) -> Result<()> {
    write_atomic_with(path, |f| {
        array
            .write_npy(std::io::BufWriter::new(f))
            .map_err(std::io::Error::other)
    })
}

/// Write named float32 arrays as an `.npz` archive (atomically).
pub fn write_npz_f32(path: &Path, arrays: &[(&str, &ArrayD<f32>)]) -> Result<()> {
    write_atomic_with(path, |f| {
        let mut npz = ndarray_npy::NpzWriter::new(std::io::BufWriter::new(f));
        for (name, array) in arrays {
            npz.add_array(*name, *array)
                .map_err(std::io::Error::other)?;
        }
        npz.finish().map_err(std::io::Error::other)?;
        Ok(())
    })
}

/// The array names in an `.npz` archive (member names without `.npy`).
pub fn npz_keys(path: &Path) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| Error::io(e, path))?;
    let zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::invalid(format!("not a readable .npz archive: {e}")).in_file(path))?;
    Ok(zip
        .file_names()
        .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_casts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let a =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![1.0f32, 2.0, -3.5, 0.25]).unwrap();
        write_npy_f32(&p, &a).unwrap();
        assert_eq!(read_npy_f32(&p).unwrap(), a);
        let q = dir.path().join("b.npy");
        let b = a.mapv(f64::from);
        ndarray_npy::write_npy(&q, &b).unwrap();
        assert_eq!(read_npy_f32(&q).unwrap(), a);
    }

    #[test]
    fn garbage_npy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"definitely not numpy").unwrap();
        let err = read_npy_f32(&p).unwrap_err();
        assert!(err.to_string().contains("bad.npy"), "{err}");
    }

    #[test]
    fn npy_shape_bomb_is_refused_before_allocating() {
        let header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        let err = npy_f32_from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("npy_shape"), "{err}");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        let err = npy_f32_from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("4000000 bytes of data"), "{err}");
    }

    fn npy_with_header(header: &str, data: &[f32]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        bytes
    }

    /// Headers are Python literals read as numpy's `ast.literal_eval` reads
    /// them: a repeated key keeps its last value (here `fortran_order`, so
    /// the 2 × 3 data is column-major), double quotes are quotes, and
    /// syntax Python refuses is refused.
    #[test]
    fn npy_headers_parse_like_numpy() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let twice =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'fortran_order': True}";
        let a = npy_f32_from_bytes(&npy_with_header(twice, &data)).unwrap();
        // numpy: np.array([1..6]).reshape((2, 3), order="F")
        assert_eq!(a.as_slice().unwrap(), &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let double = "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3,), }\n";
        let b = npy_f32_from_bytes(&npy_with_header(double, &data)).unwrap();
        assert_eq!(b.as_slice().unwrap(), &data);
        assert_eq!(b.shape(), &[2, 3]);
        let scalar = "{'descr': '<f4', 'fortran_order': False, 'shape': ()}";
        assert_eq!(
            npy_f32_from_bytes(&npy_with_header(scalar, &data[..1]))
                .unwrap()
                .ndim(),
            0
        );
        for bad in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3,,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (6)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
            "{'descr': '<f4', 'shape': (2, 3)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}",
            "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}",
            "['descr', '<f4']",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x",
        ] {
            let err = npy_f32_from_bytes(&npy_with_header(bad, &data));
            assert!(err.is_err(), "{bad}");
        }
    }

    fn write_npz(path: &Path, x: &ArrayD<f32>) {
        let mut npz = ndarray_npy::NpzWriter::new(File::create(path).unwrap());
        npz.add_array("x", x).unwrap();
        npz.add_array("y", &ndarray::arr1(&[1i64, 2, 3])).unwrap();
        npz.finish().unwrap();
    }

    #[test]
    fn stored_npz_members_are_mapped_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let x = ArrayD::from_shape_fn(IxDyn(&[3, 2, 5]), |i| {
            (i[0] * 10 + i[1] * 5 + i[2]) as f32 - 7.5
        });
        write_npz(&p, &x);
        let data = read_npz_data(&p, "x").unwrap();
        assert!(format!("{data:?}").contains("mapped"), "{data:?}");
        assert_eq!(data.to_array(), x);
        assert_eq!(data.row_len(), 10);
        assert_eq!(data.first_non_finite(), None);
        let tail = data.slice_rows(1..3);
        assert_eq!(tail.shape(), &[2, 2, 5]);
        assert_eq!(
            tail.to_array(),
            x.slice(ndarray::s![1.., .., ..]).to_owned().into_dyn()
        );
        let mut rows = vec![0.0; 20];
        data.gather_rows_into(&[2, 0], &mut rows);
        assert_eq!(rows[..10], x.as_slice().unwrap()[20..30]);
        assert_eq!(rows[10..], x.as_slice().unwrap()[..10]);
        // The same data from memory behaves the same.
        let owned = F32Data::from(x.clone());
        assert_eq!(owned, data);
        assert_eq!(owned.slice_rows(1..3), tail);

        // A flipped data byte fails the member's checksum.
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == (-7.5f32).to_le_bytes())
            .unwrap();
        bytes[at] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let err = read_npz_data(&p, "x").unwrap_err().to_string();
        assert!(err.contains("CRC-32") && err.contains("x.npy"), "{err}");
    }

    #[test]
    fn rows_in_place_are_the_rows_at_any_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let x = ArrayD::from_shape_fn(IxDyn(&[5, 2, 3]), |i| {
            (i[0] * 6 + i[1] * 3 + i[2]) as f32 * 0.25 - 2.0
        });
        let mut alignments = std::collections::BTreeSet::new();
        let mut sources = vec![F32Data::from(x.clone())];
        // Member names of 1 to 4 characters put the data at every offset
        // modulo 4 in the file.
        for name in ["x", "xy", "xyz", "wxyz"] {
            let p = dir.path().join(format!("{name}.npz"));
            let mut npz = ndarray_npy::NpzWriter::new(File::create(&p).unwrap());
            npz.add_array(name, &x).unwrap();
            npz.finish().unwrap();
            let data = read_npz_data(&p, name).unwrap();
            if let Ok(bytes) = data.parts() {
                alignments.insert(bytes.as_ptr() as usize % 4);
            }
            sources.push(data);
        }
        assert_eq!(alignments.len(), 4, "offsets modulo 4: {alignments:?}");
        for data in &sources {
            let lhs = data.rows_in_place(1..4).unwrap();
            // Rows × leading axis by the last axis.
            assert_eq!(lhs.dim(), (6, 3));
            let expected = x
                .slice(ndarray::s![1..4, .., ..])
                .to_owned()
                .into_shape_with_order((6, 3))
                .unwrap();
            assert_eq!(lhs.to_array(), expected, "{data:?}");
            assert_eq!(data.rows_in_place(5..5).unwrap().dim(), (0, 3));
        }
    }

    #[test]
    fn non_finite_values_are_found_in_mapped_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let mut x = ArrayD::<f32>::zeros(IxDyn(&[200_000, 2]));
        x[[150_001, 1]] = f32::NEG_INFINITY;
        x[[170_000, 0]] = f32::NAN;
        write_npz(&p, &x);
        let data = read_npz_data(&p, "x").unwrap();
        assert_eq!(data.first_non_finite(), Some(300_003));
        assert_eq!(F32Data::from(x).first_non_finite(), Some(300_003));
    }

    #[test]
    fn compressed_fortran_and_float64_data_read_the_same() {
        use ndarray::ShapeBuilder;
        let dir = tempfile::tempdir().unwrap();
        let x = ArrayD::from_shape_fn(IxDyn(&[4, 3]), |i| (i[0] * 3 + i[1]) as f32 * 0.5 - 1.0);
        // Compressed members are inflated (and kept in memory).
        let p = dir.path().join("c.npz");
        let mut npz = ndarray_npy::NpzWriter::new_compressed(File::create(&p).unwrap());
        npz.add_array("x", &x).unwrap();
        npz.finish().unwrap();
        let data = read_npz_data(&p, "x").unwrap();
        assert!(format!("{data:?}").contains("in memory"), "{data:?}");
        assert_eq!(data.to_array(), x);
        // Fortran order and float64 are converted.
        let f =
            ndarray::Array2::from_shape_vec((4, 3).f(), x.t().iter().copied().collect()).unwrap();
        assert_eq!(f.clone().into_dyn(), x);
        let p = dir.path().join("f.npy");
        ndarray_npy::write_npy(&p, &f).unwrap();
        assert_eq!(read_npy_data(&p).unwrap().to_array(), x);
        let p = dir.path().join("d.npy");
        ndarray_npy::write_npy(&p, &x.mapv(f64::from)).unwrap();
        assert_eq!(read_npy_data(&p).unwrap().to_array(), x);
        // A plain float32 .npy is mapped.
        let p = dir.path().join("x.npy");
        ndarray_npy::write_npy(&p, &x).unwrap();
        let data = read_npy_data(&p).unwrap();
        assert!(format!("{data:?}").contains("mapped"), "{data:?}");
        assert_eq!(data.to_array(), x);
        // An empty file is an error naming it, not a crash.
        let p = dir.path().join("empty.npy");
        std::fs::write(&p, b"").unwrap();
        let err = read_npy_data(&p).unwrap_err().to_string();
        assert!(err.contains("empty.npy"), "{err}");
    }

    #[test]
    fn mutated_and_truncated_npz_files_are_errors_not_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let x = ArrayD::from_shape_fn(IxDyn(&[16, 4]), |i| i[0] as f32 - i[1] as f32);
        write_npz(&p, &x);
        let original = std::fs::read(&p).unwrap();
        let q = dir.path().join("m.npz");
        let mut state = 0x2545_f491_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        };
        for round in 0..1500 {
            let mut bytes = original.clone();
            if round % 3 == 0 {
                bytes.truncate(next() % bytes.len());
            } else {
                for _ in 0..1 + next() % 4 {
                    let at = next() % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            std::fs::write(&q, &bytes).unwrap();
            for key in ["x", "y"] {
                if let Ok(d) = read_npz_data(&q, key) {
                    let _ = (d.to_array(), d.first_non_finite());
                }
            }
        }
    }
}
