//! Legacy Keras HDF5 files (`model.save("m.h5")`, `model.save_weights("w.h5")`
//! in Keras 2 / tf_keras and Keras 3's legacy writer), read as wire form:
//! the root attributes as JSON, the weights of each layer in stored order.
//!
//! Spec: `keras/src/legacy/saving/legacy_h5_format.py` (Keras 3:
//! `save_model_to_hdf5`, `save_weights_to_hdf5_group`,
//! `save_attributes_to_hdf5_group`, `load_attributes_from_hdf5_group`,
//! `load_optimizer_weights_from_hdf5_group`) and
//! `tf_keras/src/saving/legacy/hdf5_format.py` (Keras 2): root attributes
//! `model_config`, `training_config` (JSON), `keras_version`, `backend`;
//! `model_weights/<layer>` groups carrying `weight_names`, datasets at
//! `model_weights/<layer>/<weight name>`; `optimizer_weights` likewise.
//! Attributes too large for an object header are split into `name0`,
//! `name1`, ...

use hdf5_pure::AttrValue;
use serde_json::Value;

use super::h5::{H5Dataset, H5Group, H5Node};
use crate::error::{Error, Result};

/// One layer's weights as stored: `(weight name, dataset)` in stored order
/// (Keras's `_legacy_weights`: trainable, then non-trainable).
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyLayer {
    /// The layer name (a `layer_names` entry).
    pub name: String,
    /// The weights named by the group's `weight_names`, in order.
    pub weights: Vec<(String, H5Dataset)>,
}

/// A legacy HDF5 model or weights file as read.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyH5 {
    /// The `model_config` root attribute (absent in a weights-only file).
    pub model_config: Option<Value>,
    /// The `training_config` root attribute, when the model was compiled.
    pub training_config: Option<Value>,
    /// `keras_version` (of the file, or of its `model_weights` group).
    pub keras_version: Option<String>,
    /// `backend` that wrote the file.
    pub backend: Option<String>,
    /// Layers in `layer_names` order, including layers without weights.
    pub layers: Vec<LegacyLayer>,
    /// `optimizer_weights`, in `weight_names` order.
    pub optimizer_weights: Option<Vec<(String, H5Dataset)>>,
}

/// True when an HDF5 tree looks like a legacy file: a `model_config` root
/// attribute or a root `layer_names` (weights-only).
pub fn is_legacy(root: &H5Group) -> bool {
    root.attr("model_config").is_some()
        || root.attr("layer_names").is_some()
        || root.attr("layer_names0").is_some()
}

/// A string attribute (fixed- or variable-length, UTF-8 or ASCII).
fn string_attr(group: &H5Group, name: &str, at: &str) -> Result<Option<String>> {
    match group.attr(name) {
        None => Ok(None),
        Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
            Error::mismatch("a string attribute", attr_kind(v))
                .at(format!("{at} attribute `{name}`"))
        }),
    }
}

fn attr_kind(v: &AttrValue) -> String {
    let s = format!("{v:?}");
    s.chars().take(60).collect()
}

/// A list-of-strings attribute, joined from `name0`, `name1`, ... when
/// split (`load_attributes_from_hdf5_group`). An empty numeric array (what
/// h5py stores for an empty list) is an empty list.
pub fn string_list_attr(group: &H5Group, name: &str, at: &str) -> Result<Option<Vec<String>>> {
    let one = |v: &AttrValue, attr: &str| -> Result<Vec<String>> {
        if let Some(list) = v.as_strings() {
            return Ok(list.to_vec());
        }
        let empty = match v {
            AttrValue::F64Array(a) => a.is_empty(),
            AttrValue::F32Array(a) => a.is_empty(),
            AttrValue::I64Array(a) => a.is_empty(),
            AttrValue::I32Array(a) => a.is_empty(),
            AttrValue::U8Array(a) => a.is_empty(),
            _ => false,
        };
        if empty {
            Ok(Vec::new())
        } else {
            Err(Error::mismatch("a list of strings", attr_kind(v))
                .at(format!("{at} attribute `{attr}`")))
        }
    };
    if let Some(v) = group.attr(name) {
        return one(v, name).map(Some);
    }
    let mut out = Vec::new();
    let mut chunk = 0usize;
    while let Some(v) = group.attr(&format!("{name}{chunk}")) {
        out.extend(one(v, &format!("{name}{chunk}"))?);
        chunk += 1;
        if chunk > group.attrs.len() {
            break;
        }
    }
    Ok((chunk > 0).then_some(out))
}

fn json_attr(root: &H5Group, name: &str) -> Result<Option<Value>> {
    let Some(text) = string_attr(root, name, "/")? else {
        return Ok(None);
    };
    super::json::parse(text.as_bytes(), &super::Limits::default())
        .map(Some)
        .map_err(|e| e.at(format!("root attribute `{name}`")))
}

/// The dataset at a `/`-separated path below `group`.
fn dataset_at<'a>(group: &'a H5Group, path: &str) -> Option<&'a H5Dataset> {
    let (dir, leaf) = match path.rsplit_once('/') {
        Some((d, l)) => (d, l),
        None => ("", path),
    };
    group.group(dir)?.dataset(leaf)
}

/// The weights a group lists in `weight_names`, in that order.
fn named_weights(group: &H5Group, at: &str) -> Result<Vec<(String, H5Dataset)>> {
    let names = string_list_attr(group, "weight_names", at)?.unwrap_or_default();
    names
        .into_iter()
        .map(|name| {
            let ds = dataset_at(group, &name).ok_or_else(|| {
                Error::missing(format!(
                    "dataset `{name}` named by attribute `weight_names`"
                ))
                .at(format!("{at}/{name}"))
            })?;
            Ok((name, ds.clone()))
        })
        .collect()
}

impl LegacyH5 {
    /// Interpret an HDF5 tree as a legacy model (`model_config` and
    /// `model_weights`) or weights file (root `layer_names`).
    pub fn from_tree(root: &H5Group) -> Result<Self> {
        let model_config = json_attr(root, "model_config")?;
        let training_config = json_attr(root, "training_config")?;
        let (weights, at) = if model_config.is_some() {
            let g = root.group("model_weights").ok_or_else(|| {
                Error::missing(
                    "group `model_weights` (a legacy model file stores its weights there)",
                )
            })?;
            (g, "/model_weights")
        } else {
            (root, "")
        };
        let keras_version = match string_attr(root, "keras_version", "/")? {
            Some(v) => Some(v),
            None => string_attr(weights, "keras_version", at)?,
        };
        let backend = match string_attr(root, "backend", "/")? {
            Some(v) => Some(v),
            None => string_attr(weights, "backend", at)?,
        };
        let names = string_list_attr(weights, "layer_names", at)?.ok_or_else(|| {
            Error::missing("attribute `layer_names`").at(if at.is_empty() { "/" } else { at })
        })?;
        let mut layers = Vec::with_capacity(names.len());
        for name in names {
            let path = format!("{at}/{name}");
            let group = match weights.child(&name) {
                Some(H5Node::Group(g)) => g,
                _ => {
                    return Err(Error::missing(format!(
                        "group for layer `{name}` named by attribute `layer_names`"
                    ))
                    .at(path));
                }
            };
            let weights = named_weights(group, &path)?;
            layers.push(LegacyLayer { name, weights });
        }
        let optimizer_weights = match root.group("optimizer_weights") {
            Some(g) => Some(named_weights(g, "/optimizer_weights")?),
            None => None,
        };
        Ok(LegacyH5 {
            model_config,
            training_config,
            keras_version,
            backend,
            layers,
            optimizer_weights,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_attributes_are_joined() {
        let mut g = H5Group::default();
        g.set_attr(
            "layer_names0",
            AttrValue::StringArray(vec!["a".into(), "b".into()]),
        );
        g.set_attr(
            "layer_names1",
            AttrValue::VarLenStringArray(vec!["c".into()]),
        );
        let names = string_list_attr(&g, "layer_names", "").unwrap().unwrap();
        assert_eq!(names, ["a", "b", "c"]);
        g.set_attr("weight_names", AttrValue::F64Array(Vec::new()));
        assert_eq!(
            string_list_attr(&g, "weight_names", "").unwrap().unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_weight_is_named() {
        let mut root = H5Group::default();
        root.set_attr("model_config", AttrValue::String("{}".into()));
        let mw = root.ensure_group("model_weights").unwrap();
        mw.set_attr("layer_names", AttrValue::StringArray(vec!["dense".into()]));
        let d = mw.ensure_group("dense").unwrap();
        d.set_attr(
            "weight_names",
            AttrValue::StringArray(vec!["dense/kernel:0".into()]),
        );
        let err = LegacyH5::from_tree(&root).unwrap_err().to_string();
        assert!(err.contains("model_weights/dense/dense/kernel:0"), "{err}");
        assert!(err.contains("weight_names"), "{err}");
    }
}
