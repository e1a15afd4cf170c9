//! The `.keras` container: a zip of `metadata.json`, `config.json`,
//! `model.weights.h5` and possibly `assets/` and other members.
//!
//! This is the only module that knows file formats. [`KerasFile`] is the
//! archive as read: the two JSON documents as `serde_json::Value` (so unknown
//! keys pass through), the weights file as an [`H5Group`] tree, and every other
//! member byte-for-byte. Writing produces the same members in the same order.
//!
//! Layout reference: `keras/src/saving/saving_lib.py` (`_save_model_to_fileobj`,
//! `_load_model_from_fileobj`, `H5IOStore`).

pub mod atomic;
pub mod h5;
pub mod json;
pub mod legacy;
pub mod limits;
pub mod sources;

use std::io::{Cursor, Read, Write};
use std::path::Path;

use serde_json::Value;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

pub use h5::{H5Dataset, H5Group, H5Node, NumericType};
pub use limits::Limits;

use crate::error::{Error, Result};

/// Name of the model configuration member.
pub const CONFIG_MEMBER: &str = "config.json";
/// Name of the metadata member.
pub const METADATA_MEMBER: &str = "metadata.json";
/// Name of the weights member.
pub const WEIGHTS_MEMBER: &str = "model.weights.h5";

/// One zip member as it was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member name inside the zip.
    pub name: String,
    /// How it was compressed (written back the same way).
    pub compression: CompressionMethod,
    /// The modification time stored for it.
    pub modified: Option<zip::DateTime>,
    /// The contents as read. For `config.json` and `metadata.json` these
    /// bytes are written back as they were while the parsed value is
    /// unchanged; the weights member is always re-encoded from the tree.
    pub data: Vec<u8>,
    /// True for a directory entry.
    pub is_dir: bool,
}

/// A `.keras` archive as read: wire form, nothing interpreted yet.
#[derive(Debug, Clone, PartialEq)]
pub struct KerasFile {
    /// `config.json`: the serialized model.
    pub config: Value,
    /// `metadata.json`: Keras version, save date.
    pub metadata: Value,
    /// `model.weights.h5` as a tree.
    pub weights: H5Group,
    /// Every member in archive order (the weights member with empty `data`).
    pub members: Vec<Member>,
}

fn is_known(name: &str) -> bool {
    matches!(name, CONFIG_MEMBER | METADATA_MEMBER | WEIGHTS_MEMBER)
}

impl KerasFile {
    /// Read a `.keras` archive from disk with default limits.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_limits(path, &Limits::default())
    }

    /// Read a `.keras` archive from disk.
    pub fn open_with_limits(path: impl AsRef<Path>, limits: &Limits) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(e, path))?;
        Self::from_bytes(&bytes, limits).map_err(|e| e.in_file(path))
    }

    /// Read a `.keras` archive held in memory.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Self> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(Error::zip)?;
        if zip.len() > limits.max_members {
            return Err(Error::limit(
                "max_members",
                format!(
                    "{} members, at most {} allowed",
                    zip.len(),
                    limits.max_members
                ),
            ));
        }
        let mut members = Vec::with_capacity(zip.len());
        let mut config = None;
        let mut metadata = None;
        let mut weights = None;
        let mut total: u64 = 0;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(Error::zip)?;
            let name = entry.name().to_string();
            if members.iter().any(|m: &Member| m.name == name) {
                return Err(Error::invalid("duplicate member").in_member(name));
            }
            let cap = if name.ends_with(".json") {
                limits.max_json_bytes.min(limits.max_member_bytes)
            } else {
                limits.max_member_bytes
            };
            let declared = entry.size();
            let stored = entry.compressed_size();
            if declared > limits.bomb_floor_bytes
                && declared > limits.max_expansion.saturating_mul(stored)
            {
                return Err(Error::limit(
                    "max_expansion",
                    format!(
                        "declares {declared} bytes but stores only {stored}: \
                         refusing a potential decompression bomb"
                    ),
                )
                .in_member(name));
            }
            if declared > cap {
                return Err(Error::limit(
                    if cap == limits.max_member_bytes {
                        "max_member_bytes"
                    } else {
                        "max_json_bytes"
                    },
                    format!("declares {declared} bytes, at most {cap} allowed"),
                )
                .in_member(name));
            }
            // Read at most what the member's header declares (one byte
            // more tells a lie): a header declaring 1000 bytes over data
            // that inflates to gigabytes costs 1001 bytes, not the cap.
            let mut data = Vec::with_capacity(declared.min(64 << 20) as usize);
            (&mut entry)
                .take(declared.saturating_add(1))
                .read_to_end(&mut data)
                .map_err(|e| Error::zip(e).in_member(name.clone()))?;
            if data.len() as u64 != declared {
                let found = if data.len() as u64 > declared {
                    format!("data that inflates past {declared} bytes")
                } else {
                    format!("{} bytes of data", data.len())
                };
                return Err(Error::mismatch(
                    format!("the {declared} bytes its header declares"),
                    found,
                )
                .in_member(name));
            }
            total = total.saturating_add(data.len() as u64);
            if total > limits.max_total_bytes {
                return Err(Error::limit(
                    "max_total_bytes",
                    format!("members inflate past {} bytes", limits.max_total_bytes),
                )
                .in_member(name));
            }
            let compression = entry.compression();
            let modified = entry.last_modified();
            let is_dir = entry.is_dir();
            drop(entry);
            match name.as_str() {
                CONFIG_MEMBER => {
                    config = Some(json::parse(&data, limits).map_err(|e| e.in_member(&name))?)
                }
                METADATA_MEMBER => {
                    metadata = Some(json::parse(&data, limits).map_err(|e| e.in_member(&name))?)
                }
                WEIGHTS_MEMBER => {
                    weights = Some(
                        h5::read_tree(std::mem::take(&mut data), limits)
                            .map_err(|e| e.in_member(&name))?,
                    )
                }
                _ => {}
            }

            members.push(Member {
                name,
                compression,
                modified,
                data,
                is_dir,
            });
        }
        let config = config.ok_or_else(|| Error::missing(format!("member `{CONFIG_MEMBER}`")))?;
        let metadata =
            metadata.ok_or_else(|| Error::missing(format!("member `{METADATA_MEMBER}`")))?;
        let weights =
            weights.ok_or_else(|| Error::missing(format!("member `{WEIGHTS_MEMBER}`")))?;
        Ok(KerasFile {
            config,
            metadata,
            weights,
            members,
        })
    }

    /// Serialize the archive to bytes: members in their original order and
    /// compression, the JSON and weights members from this struct's fields.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Cursor::new(Vec::new());
        self.write_to(&mut out)?;
        Ok(out.into_inner())
    }

    /// Serialize the archive into a writer.
    pub fn write_to<W: Write + std::io::Seek>(&self, w: W) -> Result<()> {
        let mut zip = zip::ZipWriter::new(w);
        let mut members: Vec<&Member> = self.members.iter().collect();
        let defaults: Vec<Member> = [METADATA_MEMBER, CONFIG_MEMBER, WEIGHTS_MEMBER]
            .iter()
            .filter(|n| !self.members.iter().any(|m| m.name == **n))
            .map(|n| Member {
                name: (*n).to_string(),
                compression: CompressionMethod::Stored,
                modified: None,
                data: Vec::new(),
                is_dir: false,
            })
            .collect();
        members.extend(defaults.iter());
        for m in members {
            let data: std::borrow::Cow<'_, [u8]> = match m.name.as_str() {
                CONFIG_MEMBER => json_bytes(&self.config, &m.data)?,
                METADATA_MEMBER => json_bytes(&self.metadata, &m.data)?,
                WEIGHTS_MEMBER => h5::write_tree(&self.weights)
                    .map_err(|e| e.in_member(WEIGHTS_MEMBER))?
                    .into(),
                _ => (&m.data[..]).into(),
            };
            let method = match m.compression {
                CompressionMethod::Deflated => CompressionMethod::Deflated,
                _ => CompressionMethod::Stored,
            };
            let mut opts = SimpleFileOptions::default()
                .compression_method(method)
                .large_file(data.len() as u64 >= u64::from(u32::MAX));
            if let Some(t) = m.modified {
                opts = opts.last_modified_time(t);
            }
            let zerr = |e| Error::zip(e).in_member(m.name.clone());
            if m.is_dir {
                zip.add_directory(m.name.clone(), opts).map_err(zerr)?;
            } else {
                zip.start_file(m.name.clone(), opts).map_err(zerr)?;
                zip.write_all(&data)
                    .map_err(|e| Error::zip(e).in_member(m.name.clone()))?;
            }
        }
        zip.finish().map_err(Error::zip)?;
        Ok(())
    }

    /// Write the archive to `path` atomically (temporary file, sync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        atomic::write_atomic(path.as_ref(), &bytes)
    }

    /// The Keras version recorded in `metadata.json`, if any.
    pub fn keras_version(&self) -> Option<&str> {
        self.metadata.get("keras_version")?.as_str()
    }

    /// The extra (non-standard) members, in archive order.
    pub fn extra_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !is_known(&m.name))
    }
}

/// The bytes to store for a JSON member: the original bytes when they still
/// parse to the current value (byte-for-byte passthrough), else the value
/// serialized afresh.
fn json_bytes<'a>(v: &Value, original: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    if !original.is_empty() && serde_json::from_slice::<Value>(original).ok().as_ref() == Some(v) {
        return Ok(original.into());
    }
    Ok(serde_json::to_vec(v).map_err(Error::json)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> KerasFile {
        KerasFile {
            config: serde_json::json!({"class_name": "Sequential", "config": {"layers": []}}),
            metadata: serde_json::json!({"keras_version": "3.15.1"}),
            weights: H5Group::default(),
            members: Vec::new(),
        }
    }

    #[test]
    fn written_archive_reads_back() {
        let mut kf = minimal();
        kf.members.push(Member {
            name: "assets/notes.txt".into(),
            compression: CompressionMethod::Deflated,
            modified: None,
            data: b"hello".to_vec(),
            is_dir: false,
        });
        let bytes = kf.to_bytes().unwrap();
        let back = KerasFile::from_bytes(&bytes, &Limits::default()).unwrap();
        assert_eq!(back.config, kf.config);
        assert_eq!(back.keras_version(), Some("3.15.1"));
        let extra: Vec<_> = back.extra_members().collect();
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].data, b"hello");
        assert_eq!(extra[0].compression, CompressionMethod::Deflated);
    }

    #[test]
    fn missing_member_is_named() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("config.json", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"{}").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        let err = KerasFile::from_bytes(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(err.to_string(), "missing member `metadata.json`");
    }

    #[test]
    fn member_over_the_cap_is_refused() {
        let kf = minimal();
        let bytes = kf.to_bytes().unwrap();
        let limits = Limits {
            max_json_bytes: 4,
            ..Limits::default()
        };
        let err = KerasFile::from_bytes(&bytes, &limits).unwrap_err();
        assert!(err.to_string().contains("max_json_bytes"), "{err}");
    }
}
