//! Opening a model from any file Keras users have: a `.keras` archive (Keras
//! 3, or tf_keras 2.13+), an unzipped archive directory, a legacy HDF5 model
//! (`model.save("m.h5")`), or weights only (`.weights.h5`, sharded
//! `model.weights.json`, legacy weights `.h5`) with the architecture from
//! `--config` or from a JSON file beside the weights.

use std::path::Path;

use serde_json::Value;

use super::Model;
use super::import::{self, Imported, keras2};
use crate::archive::legacy::{self, LegacyH5};
use crate::archive::sources::{self, Kind};
use crate::archive::{KerasFile, Limits};
use crate::error::{Error, Result};

/// True when a config still has a Keras 2 form somewhere: a layer without
/// `module`, a Keras 2 module, a `Model` class, or inbound nodes in the
/// list form.
fn needs_upgrade(config: &Value) -> bool {
    if config
        .get("keras_version")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with('2'))
        || config["class_name"] == "Model"
    {
        return true;
    }
    let Some(layers) = config.pointer("/config/layers").and_then(Value::as_array) else {
        return false;
    };
    layers.iter().any(|l| {
        let module = l.get("module").and_then(Value::as_str);
        module.is_none_or(|m| m.starts_with("tf_keras") || m.starts_with("keras.engine"))
            || l.get("inbound_nodes")
                .and_then(Value::as_array)
                .is_some_and(|n| n.iter().any(Value::is_array))
            || (l["class_name"] == "Sequential"
                || l["class_name"] == "Functional"
                || l["class_name"] == "Model")
                && needs_upgrade(l)
    })
}

fn architecture(weights: &Path, config: Option<&Path>, limits: &Limits) -> Result<Value> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => sources::config_beside(weights).map_err(|tried| {
            let tried: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
            Error::missing(format!(
                "a model architecture for these weights: pass `--config FILE` \
                 (a `config.json`, a `model.to_json()` output or a `.keras` archive); \
                 looked for {}",
                tried.join(", ")
            ))
            .in_file(weights)
        })?,
    };
    sources::read_config_file(&path, limits)
}

/// Keras 3 weights with an architecture from elsewhere.
fn weights_only(weights: crate::archive::H5Group, config: Value, what: &str) -> Result<Imported> {
    let upgrade = needs_upgrade(&config);
    let mut config = if upgrade {
        keras2::upgrade_model(&config).map_err(|e| e.in_member("config"))?
    } else {
        config
    };
    if let Value::Object(root) = &mut config {
        root.remove("keras_version");
        root.remove("backend");
    }
    Ok(Imported {
        file: KerasFile {
            config,
            metadata: serde_json::json!({
                "keras_version": import::TARGET_KERAS,
                "converted_from": what,
            }),
            weights,
            members: Vec::new(),
        },
        notes: vec![format!(
            "read {what}; kerasrs writes the model as a Keras 3 `.keras` archive"
        )],
        pending_shapes: upgrade,
    })
}

/// Read any supported model source into the Keras 3 wire form.
pub fn import(path: &Path, config: Option<&Path>, limits: &Limits) -> Result<Imported> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(e, path))?;
    if meta.is_dir() {
        if config.is_none() && sources::is_archive_dir(path) {
            let file = sources::read_archive_dir(path, limits)?;
            return archive(file, true);
        }
        let index = path.join("model.weights.json");
        if index.is_file() {
            return sharded(&index, config, limits);
        }
        return Err(Error::missing(
            "an unzipped `.keras` archive (`config.json` and `model.weights.h5`) or \
             sharded weights (`model.weights.json`) in this directory",
        )
        .in_file(path));
    }
    let head = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(e, path))?;
        let mut head = [0u8; 8];
        let n = f.read(&mut head).map_err(|e| Error::io(e, path))?;
        head[..n].to_vec()
    };
    match sources::sniff(&head) {
        Kind::Zip => {
            if let Some(c) = config {
                return Err(Error::invalid(format!(
                    "`--config {}` is only for weights-only files: a `.keras` archive \
                     holds its own architecture",
                    c.display()
                ))
                .in_file(path));
            }
            let file = KerasFile::open_with_limits(path, limits)?;
            archive(file, false)
        }
        Kind::Hdf5 => {
            let tree = sources::read_h5(path, limits)?;
            if legacy::is_legacy(&tree) {
                let legacy = LegacyH5::from_tree(&tree).map_err(|e| e.in_file(path))?;
                let arch = match (&legacy.model_config, config) {
                    (Some(_), None) => None,
                    (_, Some(_)) | (None, None) => Some(architecture(path, config, limits)?),
                };
                return import::from_legacy_h5(&legacy, arch).map_err(|e| e.in_file(path));
            }
            if tree.child("layers").is_none() && tree.child("vars").is_none() {
                return Err(Error::mismatch(
                    "a Keras weights file (`layers/...` groups) or a legacy HDF5 model \
                     (`model_config` attribute)",
                    "an HDF5 file with neither",
                )
                .in_file(path));
            }
            let arch = architecture(path, config, limits)?;
            weights_only(tree, arch, "a Keras 3 weights file (`.weights.h5`)")
                .map_err(|e| e.in_file(path))
        }
        Kind::Other => {
            let looks_json = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if looks_json {
                return sharded(path, config, limits);
            }
            Err(Error::mismatch(
                "a `.keras` archive, an HDF5 file (`.h5`, `.weights.h5`), sharded weights \
                 (`model.weights.json`) or an unzipped archive directory",
                "none of these (unknown file signature)",
            )
            .in_file(path))
        }
    }
}

fn sharded(index: &Path, config: Option<&Path>, limits: &Limits) -> Result<Imported> {
    let bytes = sources::read_capped(index, limits.max_json_bytes, "max_json_bytes")?;
    let value: Value = crate::archive::json::parse(&bytes, limits).map_err(|e| e.in_file(index))?;
    if !sources::is_shard_index(&value) {
        return Err(Error::mismatch(
            "a sharded-weights index (`weight_map`)",
            "a JSON file without one (an architecture goes in `--config`)",
        )
        .in_file(index));
    }
    let tree = sources::read_sharded_index(index, &value, limits)?;
    let arch = architecture(index, config, limits)?;
    weights_only(tree, arch, "sharded Keras 3 weights").map_err(|e| e.in_file(index))
}

fn archive(mut file: KerasFile, unzipped: bool) -> Result<Imported> {
    if import::is_keras2_archive(&file) {
        return import::upgrade_archive(file);
    }
    let mut notes = Vec::new();
    if unzipped {
        notes.push(
            "read an unzipped `.keras` archive directory; kerasrs writes a Keras 3 `.keras` archive"
                .into(),
        );
    }
    if let Some(note) = import::mark_older_keras3(&mut file)? {
        notes.push(note);
    }
    Ok(Imported {
        notes,
        file,
        pending_shapes: false,
    })
}

impl Model {
    /// Open and validate a model from any supported source (see the module
    /// docs), with the architecture of a weights-only file from `config`.
    pub fn open_with(path: impl AsRef<Path>, config: Option<&Path>) -> Result<Self> {
        let path = path.as_ref();
        let imported = import(path, config, &Limits::default())?;
        let mut model = Model::try_from(imported.file).map_err(|e| {
            if e.file().is_none() {
                e.in_file(path)
            } else {
                e
            }
        })?;
        if imported.pending_shapes {
            import::fill_tensor_shapes(&mut model);
        }
        model.notes = imported.notes;
        Ok(model)
    }
}
