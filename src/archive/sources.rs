//! Where a model can come from besides a `.keras` zip: an unzipped archive
//! directory, a weights file (`.weights.h5`, legacy `.h5`), sharded weights
//! (`model.weights.json` + `*_NNNNN.weights.h5`), and an architecture file
//! (`config.json`, `model.to_json()` output, or a `.keras` archive).
//!
//! Sharded layout: `keras/src/saving/saving_lib.py` (`ShardedH5IOStore`,
//! Keras >= 3.10): the index holds `{"metadata": {...}, "weight_map":
//! {"/layers/dense/vars": ["model_00000.weights.h5"], ...}}`, each shard a
//! weights file holding some of the groups; together they form one tree.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::h5::{self, H5Group, H5Node};
use super::limits::Limits;
use super::{CONFIG_MEMBER, KerasFile, METADATA_MEMBER, WEIGHTS_MEMBER};
use crate::error::{Error, Result};

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A zip archive (`.keras`).
    Zip,
    /// An HDF5 file.
    Hdf5,
    /// Anything else (JSON, garbage).
    Other,
}

/// Sniff a file's kind from its first bytes.
pub fn sniff(bytes: &[u8]) -> Kind {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        Kind::Zip
    } else if hdf5_pure::is_hdf5_bytes(bytes) {
        Kind::Hdf5
    } else {
        Kind::Other
    }
}

/// Read a whole file, refusing one larger than `cap` bytes before reading.
pub fn read_capped(path: &Path, cap: u64, limit: &'static str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(e, path))?
        .len();
    if len > cap {
        return Err(
            Error::limit(limit, format!("{len} bytes, at most {cap} allowed")).in_file(path),
        );
    }
    std::fs::read(path).map_err(|e| Error::io(e, path))
}

fn read_json(path: &Path, limits: &Limits) -> Result<Value> {
    let bytes = read_capped(path, limits.max_json_bytes, "max_json_bytes")?;
    super::json::parse(&bytes, limits).map_err(|e| e.in_file(path))
}

/// Read an HDF5 weights file into a tree.
pub fn read_h5(path: &Path, limits: &Limits) -> Result<H5Group> {
    let bytes = read_capped(path, limits.max_member_bytes, "max_member_bytes")?;
    h5::read_tree(bytes, limits).map_err(|e| e.in_file(path))
}

/// An unzipped `.keras` archive: a directory with `config.json` and
/// `model.weights.h5` (and usually `metadata.json`).
pub fn is_archive_dir(dir: &Path) -> bool {
    dir.join(CONFIG_MEMBER).is_file() && dir.join(WEIGHTS_MEMBER).is_file()
}

/// Read an unzipped `.keras` archive directory. Other files in it (assets)
/// are not carried over.
pub fn read_archive_dir(dir: &Path, limits: &Limits) -> Result<KerasFile> {
    let config = read_json(&dir.join(CONFIG_MEMBER), limits)?;
    let meta_path = dir.join(METADATA_MEMBER);
    let metadata = if meta_path.is_file() {
        read_json(&meta_path, limits)?
    } else {
        Value::Object(Default::default())
    };
    let weights = read_h5(&dir.join(WEIGHTS_MEMBER), limits)?;
    Ok(KerasFile {
        config,
        metadata,
        weights,
        members: Vec::new(),
    })
}

/// The architecture in a `--config` file: a `.keras` archive's
/// `config.json`, or a JSON file (`config.json`, `model.to_json()`).
pub fn read_config_file(path: &Path, limits: &Limits) -> Result<Value> {
    let bytes = read_capped(path, limits.max_member_bytes, "max_member_bytes")?;
    match sniff(&bytes) {
        Kind::Zip => Ok(KerasFile::from_bytes(&bytes, limits)
            .map_err(|e| e.in_file(path))?
            .config),
        Kind::Hdf5 => Err(Error::mismatch(
            "a JSON architecture (`config.json`, `model.to_json()`) or a `.keras` archive",
            "an HDF5 file",
        )
        .in_file(path)),
        Kind::Other => {
            if bytes.len() as u64 > limits.max_json_bytes {
                return Err(Error::limit("max_json_bytes", "architecture file").in_file(path));
            }
            let v: Value = super::json::parse(&bytes, limits).map_err(|e| e.in_file(path))?;
            // `model.to_json()` of Keras 2 wraps the same object; a legacy
            // `model_config` is the same too.
            if v.get("class_name").is_none() {
                return Err(Error::missing(
                    "`class_name`: not a model architecture (`config.json` or `model.to_json()`)",
                )
                .in_file(path));
            }
            Ok(v)
        }
    }
}

/// The architecture file beside a weights file, when none was given:
/// `<stem>.json` (`m.weights.h5` → `m.json`), then `config.json`, then
/// `model.json` in the same directory.
pub fn config_beside(weights: &Path) -> std::result::Result<PathBuf, Vec<PathBuf>> {
    let dir = weights.parent().unwrap_or(Path::new(""));
    let name = weights
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = [".weights.h5", ".weights.json", ".h5", ".hdf5", ".json"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let mut tried = Vec::new();
    for candidate in [
        format!("{stem}.json"),
        "config.json".into(),
        "model.json".into(),
    ] {
        let p = dir.join(&candidate);
        if p == weights || tried.contains(&p) {
            continue;
        }
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    Err(tried)
}

/// True when a JSON value is a sharded-weights index.
pub fn is_shard_index(v: &Value) -> bool {
    v.get("weight_map").is_some_and(Value::is_object)
}

/// Read sharded weights from their index (`model.weights.json`): every
/// shard it names, merged into one tree.
pub fn read_sharded(index_path: &Path, limits: &Limits) -> Result<H5Group> {
    let index = read_json(index_path, limits)?;
    read_sharded_index(index_path, &index, limits)
}

/// [`read_sharded`] with the index already parsed.
pub fn read_sharded_index(index_path: &Path, index: &Value, limits: &Limits) -> Result<H5Group> {
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::missing("object `weight_map`").in_file(index_path))?;
    let dir = index_path.parent().unwrap_or(Path::new(""));
    let mut shards: Vec<&str> = Vec::new();
    for (group, files) in map {
        let files = match files {
            Value::Array(list) => list.iter().map(Value::as_str).collect::<Option<Vec<_>>>(),
            Value::String(s) => Some(vec![s.as_str()]),
            _ => None,
        }
        .ok_or_else(|| {
            Error::mismatch("a list of shard file names", files)
                .at(format!("weight_map/{group}"))
                .in_file(index_path)
        })?;
        for f in files {
            // Shards live beside the index: plain file names only.
            if f.is_empty() || f.contains(['/', '\\']) || f == "." || f == ".." {
                return Err(Error::invalid(format!(
                    "shard file name {f:?} is not a plain file name beside the index"
                ))
                .at(format!("weight_map/{group}"))
                .in_file(index_path));
            }
            if !shards.contains(&f) {
                shards.push(f);
            }
        }
    }
    if shards.len() > limits.max_members {
        return Err(Error::limit(
            "max_members",
            format!("{} shards, at most {}", shards.len(), limits.max_members),
        )
        .in_file(index_path));
    }
    let mut tree = H5Group::default();
    let mut total: u64 = 0;
    for shard in shards {
        let path = dir.join(shard);
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io(e, &path))?
            .len();
        total = total.saturating_add(len);
        if total > limits.max_total_bytes {
            return Err(Error::limit(
                "max_total_bytes",
                format!("shards add up past {} bytes", limits.max_total_bytes),
            )
            .in_file(&path));
        }
        let part = read_h5(&path, limits)?;
        merge(&mut tree, part, "").map_err(|e| e.in_file(&path))?;
    }
    Ok(tree)
}

/// Merge `part` into `into`: groups are joined, a dataset present in both
/// is an error (shards hold disjoint variables).
fn merge(into: &mut H5Group, part: H5Group, path: &str) -> Result<()> {
    for (name, value) in part.attrs {
        into.set_attr(&name, value);
    }
    for (name, node) in part.children {
        let at = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}/{name}")
        };
        match (into.child_mut(&name), node) {
            (None, node) => into.children.push((name, node)),
            (Some(H5Node::Group(g)), H5Node::Group(p)) => merge(g, p, &at)?,
            (Some(_), _) => {
                return Err(Error::invalid("stored in two shards").at(at));
            }
        }
    }
    Ok(())
}
