//! `model.weights.h5` as an in-memory tree: every group, dataset and attribute
//! of the file, kept losslessly (datatype and raw bytes) so that what kerasrs
//! does not understand is written back unchanged.
//!
//! Reading and writing go through the pure-Rust `hdf5-pure` crate. The Keras
//! layout on top of this tree (`layers/<name>/vars/<i>`) lives in
//! `crate::model::weights`.

use hdf5_pure::{AttrValue, Datatype, DatatypeByteOrder, FileBuilder, Layout};

use super::limits::Limits;
use crate::error::{Error, Result};

/// A node of the HDF5 tree.
#[derive(Debug, Clone, PartialEq)]
pub enum H5Node {
    /// A group.
    Group(H5Group),
    /// A dataset.
    Dataset(H5Dataset),
}

/// An HDF5 group: attributes (sorted by name) and children in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct H5Group {
    /// Attributes of the group, sorted by name.
    pub attrs: Vec<(String, AttrValue)>,
    /// Child groups and datasets, by name.
    pub children: Vec<(String, H5Node)>,
}

/// An HDF5 dataset with its on-disk datatype, shape and raw element bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct H5Dataset {
    /// The stored datatype, written back as it was read.
    pub datatype: Datatype,
    /// The dataspace dimensions (empty for a scalar).
    pub shape: Vec<u64>,
    /// The elements, in the datatype's on-disk layout, C order.
    pub raw: Vec<u8>,
    /// Attributes of the dataset, sorted by name.
    pub attrs: Vec<(String, AttrValue)>,
}

/// The element type of a numeric dataset kerasrs can compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericType {
    /// IEEE float32, little-endian.
    F32,
    /// IEEE float64, little-endian.
    F64,
    /// IEEE float16, little-endian.
    F16,
    /// Signed integer of the given byte width, little-endian.
    Int(u32),
    /// Unsigned integer of the given byte width, little-endian.
    UInt(u32),
    /// bfloat16: Keras stores it as 2-byte opaque data with the attribute
    /// `dtype = "bfloat16"` (`keras/src/saving/saving_lib.py`, `H5IOStore`).
    BF16,
}

impl H5Dataset {
    /// A little-endian float32 dataset.
    pub fn from_f32(shape: &[u64], values: &[f32]) -> Self {
        H5Dataset {
            datatype: hdf5_pure::make_f32_type(),
            shape: shape.to_vec(),
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            attrs: Vec::new(),
        }
    }

    /// Number of elements the shape declares (1 for a scalar).
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    /// True when the dataset holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numeric element type, if this is a plain little-endian number.
    pub fn numeric_type(&self) -> Option<NumericType> {
        match &self.datatype {
            Datatype::FloatingPoint {
                size,
                byte_order: DatatypeByteOrder::LittleEndian,
                ..
            } => match size {
                2 => Some(NumericType::F16),
                4 => Some(NumericType::F32),
                8 => Some(NumericType::F64),
                _ => None,
            },
            Datatype::FixedPoint {
                size,
                byte_order: DatatypeByteOrder::LittleEndian,
                layout,
            } if matches!(size, 1 | 2 | 4 | 8) => Some(if layout.signed {
                NumericType::Int(*size)
            } else {
                NumericType::UInt(*size)
            }),
            Datatype::Opaque { size: 2, .. } if self.attr_is("dtype", "bfloat16") => {
                Some(NumericType::BF16)
            }
            _ => None,
        }
    }

    /// Whether the string attribute `name` is `value`.
    fn attr_is(&self, name: &str, value: &str) -> bool {
        self.attrs.iter().any(|(n, v)| {
            n == name
                && matches!(v, AttrValue::String(s) | AttrValue::AsciiString(s) | AttrValue::VarLenString(s) if s == value)
        })
    }

    /// Whether this is a floating-point dataset kerasrs computes with (read
    /// as float32, written back in its own type).
    pub fn is_float(&self) -> bool {
        matches!(
            self.numeric_type(),
            Some(NumericType::F16 | NumericType::BF16 | NumericType::F32 | NumericType::F64)
        )
    }

    /// A short name of the datatype for messages (`float32`, `int64`, ...).
    pub fn dtype_name(&self) -> String {
        match self.numeric_type() {
            Some(NumericType::F32) => "float32".into(),
            Some(NumericType::F64) => "float64".into(),
            Some(NumericType::F16) => "float16".into(),
            Some(NumericType::BF16) => "bfloat16".into(),
            Some(NumericType::Int(n)) => format!("int{}", n * 8),
            Some(NumericType::UInt(n)) => format!("uint{}", n * 8),
            None => format!("{:?}", self.datatype),
        }
    }

    /// The elements as f32 (kerasrs computes in float32): float16 and
    /// bfloat16 exactly, float64 rounded to nearest; anything else is an
    /// error naming the dtype.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let raw = &self.raw;
        match self.numeric_type() {
            Some(NumericType::F32) => Ok(raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            Some(NumericType::F16) => Ok(raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            Some(NumericType::BF16) => Ok(raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            Some(NumericType::F64) => Ok(raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect()),
            _ => Err(Error::mismatch(
                "dtype float32 (or float16, bfloat16, float64)",
                self.dtype_name(),
            )),
        }
    }

    /// Replace the elements of a floating-point dataset, keeping datatype
    /// and shape: values are stored in the dataset's own type (rounded to
    /// nearest even for float16 and bfloat16), and an element whose value
    /// did not change keeps its stored bits (a float64 weight is not cut to
    /// float32 by a round trip).
    pub fn set_f32(&mut self, values: &[f32]) -> Result<()> {
        let Some(kind) = self.numeric_type().filter(|_| self.is_float()) else {
            return Err(Error::mismatch(
                "dtype float32 (or float16, bfloat16, float64)",
                self.dtype_name(),
            ));
        };
        if values.len() as u64 != self.len() {
            return Err(Error::mismatch(
                format!("{} values", self.len()),
                format!("{} values", values.len()),
            ));
        }
        match kind {
            NumericType::F16 => {
                self.raw = values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect();
            }
            NumericType::BF16 => {
                self.raw = values
                    .iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                    .collect();
            }
            NumericType::F64 => {
                for (c, &v) in self.raw.chunks_exact_mut(8).zip(values) {
                    let old = f64::from_le_bytes((&*c).try_into().expect("8 bytes"));
                    if old as f32 != v {
                        c.copy_from_slice(&f64::from(v).to_le_bytes());
                    }
                }
            }
            _ => self.raw = values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
        Ok(())
    }

    /// A scalar integer value (for counters such as optimizer iterations).
    pub fn scalar_i64(&self) -> Option<i64> {
        if self.len() != 1 {
            return None;
        }
        let b = &self.raw;
        match self.numeric_type()? {
            NumericType::Int(1) => Some(i64::from(b[0] as i8)),
            NumericType::Int(2) => Some(i64::from(i16::from_le_bytes([b[0], b[1]]))),
            NumericType::Int(4) => Some(i64::from(i32::from_le_bytes(b[..4].try_into().ok()?))),
            NumericType::Int(8) => Some(i64::from_le_bytes(b[..8].try_into().ok()?)),
            NumericType::UInt(1) => Some(i64::from(b[0])),
            NumericType::UInt(2) => Some(i64::from(u16::from_le_bytes([b[0], b[1]]))),
            NumericType::UInt(4) => Some(i64::from(u32::from_le_bytes(b[..4].try_into().ok()?))),
            NumericType::UInt(8) => i64::try_from(u64::from_le_bytes(b[..8].try_into().ok()?)).ok(),
            NumericType::F32
            | NumericType::F64
            | NumericType::F16
            | NumericType::BF16
            | NumericType::Int(_) => None,
            NumericType::UInt(_) => None,
        }
    }

    /// Overwrite a scalar integer dataset's value, keeping its datatype.
    pub fn set_scalar_i64(&mut self, value: i64) -> Result<()> {
        let bytes = match self.numeric_type() {
            Some(NumericType::Int(4)) => i32::try_from(value)
                .map_err(|_| Error::invalid(format!("{value} does not fit int32")))?
                .to_le_bytes()
                .to_vec(),
            Some(NumericType::Int(8)) => value.to_le_bytes().to_vec(),
            _ => {
                return Err(Error::mismatch(
                    "an int32 or int64 scalar",
                    self.dtype_name(),
                ));
            }
        };
        if self.len() != 1 {
            return Err(Error::mismatch(
                "a scalar",
                format!("shape {:?}", self.shape),
            ));
        }
        self.raw = bytes;
        Ok(())
    }

    /// A scalar float value (for example a stored learning rate).
    pub fn scalar_f64(&self) -> Option<f64> {
        if self.len() != 1 {
            return None;
        }
        let b = &self.raw;
        match self.numeric_type()? {
            NumericType::F32 => Some(f64::from(f32::from_le_bytes(b[..4].try_into().ok()?))),
            NumericType::F64 => Some(f64::from_le_bytes(b[..8].try_into().ok()?)),
            _ => self.scalar_i64().map(|v| v as f64),
        }
    }
}

impl H5Group {
    /// The child node called `name`.
    pub fn child(&self, name: &str) -> Option<&H5Node> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// The child node called `name`, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut H5Node> {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// The group at a `/`-separated path below this one.
    pub fn group(&self, path: &str) -> Option<&H5Group> {
        let mut g = self;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match g.child(part)? {
                H5Node::Group(child) => g = child,
                H5Node::Dataset(_) => return None,
            }
        }
        Some(g)
    }

    /// The group at a `/`-separated path below this one, mutably.
    pub fn group_mut(&mut self, path: &str) -> Option<&mut H5Group> {
        let mut g = self;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match g.child_mut(part)? {
                H5Node::Group(child) => g = child,
                H5Node::Dataset(_) => return None,
            }
        }
        Some(g)
    }

    /// The group at `path`, created (with its parents) when absent.
    pub fn ensure_group(&mut self, path: &str) -> Result<&mut H5Group> {
        let mut g = self;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if g.child(part).is_none() {
                g.children
                    .push((part.to_string(), H5Node::Group(H5Group::default())));
            }
            g = match g.child_mut(part) {
                Some(H5Node::Group(child)) => child,
                _ => return Err(Error::mismatch("a group", "a dataset").at(path.to_string())),
            };
        }
        Ok(g)
    }

    /// The dataset called `name` directly in this group.
    pub fn dataset(&self, name: &str) -> Option<&H5Dataset> {
        match self.child(name)? {
            H5Node::Dataset(d) => Some(d),
            H5Node::Group(_) => None,
        }
    }

    /// The dataset called `name` directly in this group, mutably.
    pub fn dataset_mut(&mut self, name: &str) -> Option<&mut H5Dataset> {
        match self.child_mut(name)? {
            H5Node::Dataset(d) => Some(d),
            H5Node::Group(_) => None,
        }
    }

    /// Insert or replace the child `name`.
    pub fn set_child(&mut self, name: &str, node: H5Node) {
        match self.child_mut(name) {
            Some(slot) => *slot = node,
            None => self.children.push((name.to_string(), node)),
        }
    }

    /// The attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Insert or replace the attribute `name`, keeping the list sorted.
    pub fn set_attr(&mut self, name: &str, value: AttrValue) {
        match self.attrs.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => {
                self.attrs.push((name.to_string(), value));
                self.attrs.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
    }

    /// Names of the child groups, in file order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.children.iter().filter_map(|(n, c)| match c {
            H5Node::Group(_) => Some(n.as_str()),
            H5Node::Dataset(_) => None,
        })
    }
}

/// Read a whole HDF5 file held in memory into a tree, within `limits`.
pub fn read_tree(bytes: Vec<u8>, limits: &Limits) -> Result<H5Group> {
    if !hdf5_pure::is_hdf5_bytes(&bytes) {
        return Err(Error::hdf5("no HDF5 signature"));
    }
    let file = hdf5_pure::File::from_bytes(bytes).map_err(Error::hdf5)?;
    let mut budget = Budget {
        bytes_left: limits.max_weights_bytes,
        nodes_left: limits.max_h5_objects,
        storage: std::collections::HashMap::new(),
        declared: 0,
        stored: 0,
    };
    read_group(&file.root(), "", 0, limits, &mut budget)
}

struct Budget {
    bytes_left: u64,
    nodes_left: u64,
    /// Where each stored extent (contiguous data, chunk) was first seen:
    /// two datasets on one extent are one object under two names (a hard
    /// link), which Keras never writes and which would make a small file
    /// cost its size once per link.
    storage: std::collections::HashMap<u64, String>,
    /// Bytes declared by the datasets read so far.
    declared: u64,
    /// Bytes those datasets store (each extent once).
    stored: u64,
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn check_name(name: &str, parent: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::hdf5(format!("invalid link name {name:?}")).at(parent.to_string()));
    }
    Ok(())
}

fn sorted_attrs(attrs: std::collections::HashMap<String, AttrValue>) -> Vec<(String, AttrValue)> {
    let mut attrs: Vec<_> = attrs.into_iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    attrs
}

fn read_group(
    group: &hdf5_pure::Group,
    path: &str,
    depth: usize,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<H5Group> {
    if depth > limits.max_h5_depth {
        return Err(Error::limit(
            "max_h5_depth",
            format!("groups nested deeper than {}", limits.max_h5_depth),
        )
        .at(path.to_string()));
    }
    let hdf = |e: hdf5_pure::Error| hdf5_error(e).at(path.to_string());
    let attrs = sorted_attrs(group.attrs().map_err(hdf)?);
    let mut children = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in group.groups().map_err(hdf)? {
        check_name(&name, path)?;
        take_node(budget, limits, path)?;
        if !seen.insert(name.clone()) {
            return Err(Error::hdf5(format!("duplicate link `{name}`")).at(path.to_string()));
        }
        let sub = group.group(&name).map_err(hdf)?;
        let sub_path = child_path(path, &name);
        let node = read_group(&sub, &sub_path, depth + 1, limits, budget)?;
        children.push((name, H5Node::Group(node)));
    }
    for name in group.datasets().map_err(hdf)? {
        check_name(&name, path)?;
        take_node(budget, limits, path)?;
        if !seen.insert(name.clone()) {
            return Err(Error::hdf5(format!("duplicate link `{name}`")).at(path.to_string()));
        }
        let ds_path = child_path(path, &name);
        let ds = group.dataset(&name).map_err(hdf)?;
        let node = read_dataset(&ds, &ds_path, limits, budget)?;
        children.push((name, H5Node::Dataset(node)));
    }
    Ok(H5Group { attrs, children })
}

/// An `hdf5-pure` error in words a user can act on: a link whose object
/// address is undefined (all ones) is a soft or external link, which Keras's
/// loader refuses too, or a damaged group, not a read past the end.
fn hdf5_error(e: hdf5_pure::Error) -> Error {
    match e {
        hdf5_pure::Error::Format(hdf5_pure::FormatError::UnexpectedEof { expected, .. })
            if expected == usize::MAX =>
        {
            Error::unsupported(
                "HDF5 link",
                "a link to no object in this file (a soft or external link, or a damaged group)",
                &["hard links to groups and datasets, as Keras writes"],
            )
        }
        e => Error::hdf5(e),
    }
}

fn take_node(budget: &mut Budget, limits: &Limits, path: &str) -> Result<()> {
    budget.nodes_left = budget.nodes_left.checked_sub(1).ok_or_else(|| {
        Error::limit(
            "max_h5_objects",
            format!("more than {} groups and datasets", limits.max_h5_objects),
        )
        .at(path.to_string())
    })?;
    Ok(())
}

fn read_dataset(
    ds: &hdf5_pure::Dataset,
    path: &str,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<H5Dataset> {
    let hdf = |e: hdf5_pure::Error| hdf5_error(e).at(path.to_string());
    let datatype = ds.datatype().map_err(hdf)?;
    let shape = ds.shape().map_err(hdf)?;
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= limits.max_dataset_elements)
        .ok_or_else(|| {
            Error::limit(
                "max_dataset_elements",
                format!(
                    "shape {shape:?} declares more than {} elements",
                    limits.max_dataset_elements
                ),
            )
            .at(path.to_string())
        })?;
    let size = u64::from(datatype.type_size());
    let bytes = elements.checked_mul(size).ok_or_else(|| {
        Error::limit("max_weights_bytes", format!("shape {shape:?} overflows")).at(path.to_string())
    })?;
    budget.bytes_left = budget.bytes_left.checked_sub(bytes).ok_or_else(|| {
        Error::limit(
            "max_weights_bytes",
            format!(
                "datasets declare more than {} bytes in total",
                limits.max_weights_bytes
            ),
        )
        .at(path.to_string())
    })?;
    if matches!(
        datatype,
        Datatype::VariableLength { .. } | Datatype::Reference { .. }
    ) {
        return Err(Error::unsupported(
            "dataset datatype",
            format!("{datatype:?}"),
            &["numbers", "fixed-length strings", "compounds of them"],
        )
        .at(path.to_string()));
    }
    check_stored_bytes(ds, bytes, limits, budget, path).map_err(|e| e.at(path.to_string()))?;
    let raw = ds.read_raw().map_err(hdf)?;
    if raw.len() as u64 != bytes {
        return Err(Error::mismatch(
            format!("{bytes} bytes of data for shape {shape:?}"),
            format!("{} bytes", raw.len()),
        )
        .at(path.to_string()));
    }
    let attrs = sorted_attrs(ds.attrs().map_err(hdf)?);
    Ok(H5Dataset {
        datatype,
        shape,
        raw,
        attrs,
    })
}

/// Refuse virtual datasets, datasets sharing their storage with another
/// (hard links) and "shape bombs": a dataset declaring far more bytes than
/// it stores (a huge shape backed by a fill value or a tiny compressed
/// chunk), or many small ones that do so together, would otherwise force a
/// huge allocation. External storage is refused by `hdf5-pure` itself when
/// read.
fn check_stored_bytes(
    ds: &hdf5_pure::Dataset,
    declared: u64,
    limits: &Limits,
    budget: &mut Budget,
    path: &str,
) -> Result<()> {
    let mut extents: Vec<(u64, u64)> = Vec::new();
    let stored = match ds.layout().map_err(Error::hdf5)? {
        Layout::Compact { size } => size,
        Layout::Contiguous {
            address: Some(address),
            size,
        } => {
            extents.push((address, size));
            size
        }
        Layout::Contiguous { address: None, .. } => 0,
        Layout::Chunked { .. } => {
            let chunks = ds.chunks().map_err(Error::hdf5)?;
            extents.extend(chunks.iter().map(|c| (c.address, c.storage_size)));
            chunks
                .iter()
                .map(|c| c.storage_size)
                .fold(0u64, u64::saturating_add)
        }
        Layout::Virtual => {
            return Err(Error::unsupported(
                "dataset layout",
                "virtual",
                &["compact", "contiguous", "chunked"],
            ));
        }
        other => {
            return Err(Error::unsupported(
                "dataset layout",
                other.to_string(),
                &["compact", "contiguous", "chunked"],
            ));
        }
    };
    if declared > limits.bomb_floor_bytes && declared > limits.max_expansion.saturating_mul(stored)
    {
        return Err(Error::limit(
            "max_expansion",
            format!(
                "dataset declares {declared} bytes but stores only {stored}: \
                 refusing a potential shape bomb"
            ),
        ));
    }
    for (address, size) in extents {
        if size == 0 {
            continue;
        }
        if let Some(first) = budget.storage.get(&address) {
            return Err(Error::invalid(format!(
                "its data is the data of `{first}` (the same object under two names, a \
                 hard link, which Keras never writes): refusing a file whose size would \
                 count once per name"
            )));
        }
        budget.storage.insert(address, path.to_string());
    }
    // The whole file, as each dataset: what it declares stays within the
    // expansion limit of what it stores.
    budget.declared = budget.declared.saturating_add(declared);
    budget.stored = budget.stored.saturating_add(stored);
    if budget.declared > limits.bomb_floor_bytes
        && budget.declared > limits.max_expansion.saturating_mul(budget.stored)
    {
        return Err(Error::limit(
            "max_expansion",
            format!(
                "the datasets declare {} bytes together but store only {}: refusing a \
                 potential shape bomb",
                budget.declared, budget.stored
            ),
        ));
    }
    Ok(())
}

/// Serialize a tree to HDF5 bytes.
pub fn write_tree(root: &H5Group) -> Result<Vec<u8>> {
    let mut builder = FileBuilder::new();
    for (name, value) in &root.attrs {
        builder.set_attr(name, value.clone());
    }
    for (name, node) in &root.children {
        match node {
            H5Node::Dataset(ds) => {
                let b = builder.create_dataset(name);
                fill_dataset(b, ds);
            }
            H5Node::Group(g) => {
                let mut gb = builder.create_group(name);
                fill_group(&mut gb, g);
                builder.add_group(gb.finish());
            }
        }
    }
    builder.finish().map_err(Error::hdf5)
}

fn fill_group(gb: &mut hdf5_pure::GroupBuilder, group: &H5Group) {
    for (name, value) in &group.attrs {
        gb.set_attr(name, value.clone());
    }
    for (name, node) in &group.children {
        match node {
            H5Node::Dataset(ds) => {
                let b = gb.create_dataset(name);
                fill_dataset(b, ds);
            }
            H5Node::Group(g) => {
                let mut sub = gb.create_group(name);
                fill_group(&mut sub, g);
                gb.add_group(sub.finish());
            }
        }
    }
}

fn fill_dataset(b: &mut hdf5_pure::DatasetBuilder, ds: &H5Dataset) {
    b.with_raw_data(ds.datatype.clone(), ds.raw.clone(), ds.len())
        .with_shape(&ds.shape);
    for (name, value) in &ds.attrs {
        b.set_attr(name, value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_round_trips_through_hdf5() {
        let mut root = H5Group::default();
        let vars = root.ensure_group("layers/dense/vars").unwrap();
        vars.set_attr("name", AttrValue::VarLenString("dense".into()));
        vars.set_child(
            "0",
            H5Node::Dataset(H5Dataset::from_f32(
                &[2, 3],
                &[1.0, -2.0, 3.5, 0.0, 1e-8, 7.0],
            )),
        );
        vars.set_child(
            "1",
            H5Node::Dataset(H5Dataset::from_f32(&[3], &[0.5, 0.25, 0.0])),
        );
        root.ensure_group("vars").unwrap();
        let bytes = write_tree(&root).unwrap();
        let back = read_tree(bytes, &Limits::default()).unwrap();
        let vars = back.group("layers/dense/vars").unwrap();
        assert_eq!(
            vars.dataset("0").unwrap().to_f32().unwrap(),
            vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]
        );
        assert_eq!(vars.dataset("0").unwrap().shape, vec![2, 3]);
        assert!(back.group("vars").unwrap().children.is_empty());
        assert_eq!(vars.attr("name").and_then(|a| a.as_str()), Some("dense"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = read_tree(b"not hdf5 at all".to_vec(), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("HDF5"), "{err}");
    }
}
