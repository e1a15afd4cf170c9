//! Files that are not Keras 3 `.keras` archives → the Keras 3 wire form
//! ([`KerasFile`]: `config.json`, `metadata.json`, `model.weights.h5` in
//! Keras 3's layout), before the model is parsed. After this pass every
//! model is read, trained and written like a Keras 3 one, and written as a
//! Keras 3 `.keras` archive.
//!
//! - legacy HDF5 models and weights (Keras 2 / tf_keras, Keras 3's legacy
//!   writer): [`from_legacy_h5`];
//! - tf_keras 2.15 `.keras` archives: [`upgrade_archive`];
//! - Keras 2 configs anywhere: [`keras2`].
//!
//! Weight paths follow `keras/src/saving/saving_lib.py`
//! (`_save_container_state`: `layers/<snake_case(class)>[_N]/vars/<i>` in
//! `model.layers` order); legacy layers map onto them by name, each layer's
//! weights in stored order (`legacy_h5_format.py`, `_legacy_weights`:
//! trainable then non-trainable, which is Keras 3's `vars` order).

pub mod keras2;

use std::collections::{HashMap, HashSet};

use hdf5_pure::AttrValue;
use serde_json::{Value, json};

use super::Model;
use super::layer::to_snake_case;
use crate::archive::legacy::LegacyH5;
use crate::archive::{H5Dataset, H5Group, H5Node, KerasFile};
use crate::error::{Error, Result};

/// The Keras version whose `config.json` form the import pass writes.
pub const TARGET_KERAS: &str = "3.15.1";

/// A file turned into the Keras 3 wire form.
#[derive(Debug)]
pub struct Imported {
    /// The archive to parse.
    pub file: KerasFile,
    /// What the pass did that a user should know (printed as `note:`).
    pub notes: Vec<String>,
    /// True when `__keras_tensor__` shapes must be filled in after parsing.
    pub pending_shapes: bool,
}

fn metadata(origin: &str) -> Value {
    json!({ "keras_version": TARGET_KERAS, "converted_from": origin })
}

fn model_outputs(config: &Value) -> usize {
    match config.pointer("/config/output_layers") {
        Some(Value::Array(list)) if list.first().is_some_and(Value::is_array) => list.len(),
        _ => 1,
    }
}

/// A legacy HDF5 model (or a weights file with `config` from elsewhere) as a
/// Keras 3 archive.
pub fn from_legacy_h5(legacy: &LegacyH5, config: Option<Value>) -> Result<Imported> {
    let version = legacy.keras_version.as_deref().unwrap_or("unknown");
    let keras2 = !version.starts_with('3');
    let (config, compile) = match (config, &legacy.model_config) {
        (Some(c), _) => (c, None),
        (None, Some(c)) => (c.clone(), legacy.training_config.as_ref()),
        (None, None) => {
            return Err(Error::missing(
                "a model architecture: this legacy HDF5 file holds weights only \
                 (no `model_config` attribute); pass `--config model.json`",
            ));
        }
    };
    let mut config = keras2::upgrade_model(&config).map_err(|e| e.in_member("model_config"))?;
    let mut notes = vec![format!(
        "read a legacy HDF5 file (Keras {version}{}); kerasrs writes it as a Keras 3 `.keras` archive",
        legacy
            .backend
            .as_deref()
            .map(|b| format!(", {b}"))
            .unwrap_or_default()
    )];
    let compile_config = match compile {
        Some(tc) => Some(
            keras2::upgrade_training_config(tc, model_outputs(&config))
                .map_err(|e| e.in_member("training_config"))?,
        ),
        None => None,
    };
    if let (Some(cc), Value::Object(root)) = (&compile_config, &mut config) {
        root.insert("compile_config".into(), cc.clone());
    }
    let mut weights = weights_tree(&config, legacy)?;
    if let Some(stored) = &legacy.optimizer_weights {
        let list: Vec<H5Dataset> = stored.iter().map(|(_, d)| d.clone()).collect();
        match optimizer_vars(list, compile_config.as_ref(), keras2) {
            Ok((name, vars)) => put_optimizer(&mut weights, &name, vars)?,
            Err(why) => notes.push(format!(
                "the stored optimizer state (`optimizer_weights`) is not used: {why}; \
                 training starts from a fresh optimizer"
            )),
        }
    }
    let origin = format!("legacy HDF5, Keras {version}");
    Ok(Imported {
        file: KerasFile {
            config,
            metadata: metadata(&origin),
            weights,
            members: Vec::new(),
        },
        notes,
        pending_shapes: true,
    })
}

/// True for a `.keras` archive written by Keras 2 (tf.keras 2.13+ /
/// tf_keras): its `metadata.json` says `keras_version` 2.x.
pub fn is_keras2_archive(file: &KerasFile) -> bool {
    file.keras_version().is_some_and(|v| v.starts_with("2."))
}

/// Give each `vars` group the `name` attribute Keras 3.4+ writes (the
/// layer's name; the model's name on the root `vars`; the optimizer's on
/// `optimizer/vars`), where the writer left it out (tf_keras, Keras 3.0 -
/// 3.3).
fn name_vars_groups(weights: &mut H5Group, config: &Value) -> Result<()> {
    let mut set = |path: &str, name: &str| {
        if let Some(vars) = weights.group_mut(path)
            && vars.attr("name").is_none()
        {
            vars.set_attr("name", AttrValue::VarLenString(name.to_string()));
        }
    };
    for (entry, path) in layer_paths(config)? {
        if let Some(path) = path {
            set(&format!("{path}/vars"), layer_name(entry));
        }
    }
    if let Some(name) = config.pointer("/config/name").and_then(Value::as_str) {
        set("vars", name);
    }
    if let Some(name) = config
        .pointer("/compile_config/optimizer/config/name")
        .and_then(Value::as_str)
    {
        set("optimizer/vars", name);
    }
    Ok(())
}

/// The `(major, minor)` of a Keras version string.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit());
    Some((major, minor.parse().ok()?))
}

/// A `.keras` archive written by Keras 3.0 - 3.3 (string `dtype`s,
/// `InputLayer` with `batch_shape` and `sparse`, the same weights layout):
/// Keras 3.15 reads its config as it is, so the config passes through
/// untouched; the `vars` groups get the `name` attribute Keras 3.4+
/// writes; the metadata says which Keras the written archive follows
/// (kerasrs trains with Keras 3.15's semantics) and where it came from.
/// Returns the note to print, or `None` for any other archive.
pub fn mark_older_keras3(file: &mut KerasFile) -> Result<Option<String>> {
    let Some(version) = file.keras_version().map(str::to_string) else {
        return Ok(None);
    };
    match major_minor(&version) {
        Some((3, minor)) if minor < 4 => {}
        _ => return Ok(None),
    }
    name_vars_groups(&mut file.weights, &file.config)
        .map_err(|e| e.in_member(crate::archive::CONFIG_MEMBER))?;
    let mut meta = metadata(&format!("Keras {version} .keras"));
    if let (Value::Object(m), Value::Object(old)) = (&mut meta, std::mem::take(&mut file.metadata))
    {
        for (k, v) in old {
            m.entry(k).or_insert(v);
        }
    }
    file.metadata = meta;
    for m in &mut file.members {
        if m.name == crate::archive::METADATA_MEMBER {
            m.data.clear();
        }
    }
    Ok(Some(format!(
        "read a Keras {version} `.keras` archive; kerasrs writes it as a Keras 3 `.keras` \
         archive marked {TARGET_KERAS} (the config is kept as written: Keras {TARGET_KERAS} reads it)"
    )))
}

/// A tf_keras `.keras` archive as a Keras 3 one: the config upgraded, the
/// optimizer state mapped (`iterations` int64 and no learning rate in Keras
/// 2), tf_keras's `metrics` variables dropped (Keras 3 rebuilds them).
pub fn upgrade_archive(mut file: KerasFile) -> Result<Imported> {
    let version = file.keras_version().unwrap_or("2").to_string();
    let mut config = keras2::upgrade_model(&file.config).map_err(|e| e.in_member("config.json"))?;
    if file.weights.child(CHECKPOINT_DEPENDENCIES).is_some() {
        checkpoint_dependencies(&mut file.weights, &config, &version)
            .map_err(|e| e.in_member(crate::archive::WEIGHTS_MEMBER))?;
    }
    let compile = file.config.get("compile_config").cloned();
    let mut notes = vec![format!(
        "read a Keras {version} `.keras` archive; kerasrs writes it as a Keras 3 `.keras` archive"
    )];
    let compile = match compile.filter(|c| c.is_object()) {
        Some(cc) => {
            let mut cc = cc.clone();
            if let Some(opt) = cc.get("optimizer").cloned() {
                cc["optimizer"] = keras2::upgrade_optimizer(&opt)
                    .map_err(|e| e.at("compile_config/optimizer").in_member("config.json"))?;
            }
            if let Some(m) = cc.get("metrics").cloned() {
                // tf_keras writes the user's metrics; Keras 3 takes them as
                // they are except a one-output `[[...]]`.
                cc["metrics"] = match m {
                    Value::Array(items) if items.len() == 1 && items[0].is_array() => {
                        items[0].clone()
                    }
                    other => other,
                };
            }
            // tf_keras writes `null` for unset execution options; Keras 3's
            // `compile` compares them (`steps_per_execution > 1`).
            for (key, default) in [
                ("run_eagerly", Value::Bool(false)),
                ("steps_per_execution", Value::from(1)),
                ("jit_compile", Value::Bool(true)),
            ] {
                if cc.get(key).is_none_or(Value::is_null) {
                    cc[key] = default;
                }
            }
            if let Value::Object(o) = &mut cc {
                o.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "optimizer"
                            | "loss"
                            | "loss_weights"
                            | "metrics"
                            | "weighted_metrics"
                            | "run_eagerly"
                            | "steps_per_execution"
                            | "jit_compile"
                            | "auto_scale_loss"
                    )
                });
            }
            Some(cc)
        }
        None => None,
    };
    if let (Some(cc), Value::Object(root)) = (&compile, &mut config) {
        root.insert("compile_config".into(), cc.clone());
    }
    name_vars_groups(&mut file.weights, &config)?;
    file.config = config;
    file.weights.children.retain(|(n, _)| n != "metrics");
    if let Some(vars) = file.weights.group("optimizer/vars") {
        let mut list = Vec::new();
        while let Some(ds) = vars.dataset(&list.len().to_string()) {
            list.push(ds.clone());
        }
        file.weights.children.retain(|(n, _)| n != "optimizer");
        match optimizer_vars(list, compile.as_ref(), true) {
            Ok((name, vars)) => put_optimizer(&mut file.weights, &name, vars)?,
            Err(why) => notes.push(format!(
                "the stored optimizer state is not used: {why}; training starts from a fresh optimizer"
            )),
        }
    }
    file.metadata = metadata(&format!("Keras {version} .keras"));
    // The config and metadata members are rewritten from the values.
    for m in &mut file.members {
        if m.name == crate::archive::CONFIG_MEMBER || m.name == crate::archive::METADATA_MEMBER {
            m.data.clear();
        }
    }
    Ok(Imported {
        file,
        notes,
        pending_shapes: true,
    })
}

const CHECKPOINT_DEPENDENCIES: &str = "_layer_checkpoint_dependencies";

/// True when Keras `version` (2.x) counts an already-saved layer when it
/// names the groups of `_layer_checkpoint_dependencies` (Keras 2.13 and
/// older; 2.14 skips it before counting).
fn counts_saved_layers(version: &str) -> bool {
    let minor = version
        .strip_prefix("2.")
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m <= 13)
}

/// tf.keras 2.13 / 2.14 `.keras` weights, stored at
/// `_layer_checkpoint_dependencies/<name>/vars`, moved to Keras 3's
/// `layers/<name>/vars`.
///
/// Keras 2.13 / 2.14's `saving_lib._save_state` walks the model's
/// attributes in `dir()` order; the first that holds the layers is
/// `Functional._layer_checkpoint_dependencies`
/// (`keras/src/engine/functional.py`), an ordered dict of `model.layers`
/// (a Sequential's `InputLayer` is not among them) in which a layer with
/// weights appears twice (`layer_with_weights-i`, then `layer-j`).
/// `_save_container_state` names each entry `snake_case(class)` plus a
/// per-class counter; Keras 2.14 skips an already-saved layer before
/// counting, Keras 2.13 counts it too, so its second Dense is `dense_2`.
fn checkpoint_dependencies(weights: &mut H5Group, config: &Value, version: &str) -> Result<()> {
    let count_saved = counts_saved_layers(version);
    let Some(pos) = weights
        .children
        .iter()
        .position(|(n, _)| n == CHECKPOINT_DEPENDENCIES)
    else {
        return Ok(());
    };
    let (_, node) = weights.children.remove(pos);
    let H5Node::Group(mut old) = node else {
        return Err(Error::mismatch("a group", "a dataset").at(CHECKPOINT_DEPENDENCIES));
    };
    let mut used: HashMap<String, usize> = HashMap::new();
    for (entry, path) in layer_paths(config)? {
        let Some(path) = path else { continue };
        let class = entry["class_name"].as_str().unwrap_or("");
        if matches!(class, "Sequential" | "Functional" | "Model") {
            return Err(Error::unsupported(
                "tf.keras `.keras` weights layout",
                format!(
                    "the nested model `{}` under `{CHECKPOINT_DEPENDENCIES}`",
                    layer_name(entry)
                ),
                &["models without nested models"],
            ));
        }
        let base = to_snake_case(class);
        let n = used.entry(base.clone()).or_insert(0);
        let name = if *n == 0 {
            base.clone()
        } else {
            format!("{base}_{n}")
        };
        *n += 1;
        let at = format!("{CHECKPOINT_DEPENDENCIES}/{name}");
        let Some(H5Node::Group(group)) = old
            .children
            .iter()
            .position(|(c, _)| *c == name)
            .map(|i| old.children.remove(i).1)
        else {
            return Err(Error::missing(format!(
                "group `{at}` for layer `{}` (Keras {version} names layer groups by \
                 class, in layer order)",
                layer_name(entry)
            )));
        };
        let has_weights = group.group("vars").is_some_and(|v| {
            v.children
                .iter()
                .any(|(_, c)| matches!(c, H5Node::Dataset(_)))
        });
        if count_saved && has_weights {
            // Its second entry (`layer-j`) in the dependencies.
            *used.get_mut(&base).expect("counted above") += 1;
        }
        let vars = match group.children.into_iter().find(|(c, _)| c == "vars") {
            Some((_, H5Node::Group(v))) => v,
            _ => H5Group::default(),
        };
        *weights.ensure_group(&format!("{path}/vars"))? = vars;
    }
    if let Some((left, _)) = old.children.iter().find(|(_, c)| match c {
        H5Node::Group(g) => g.group("vars").is_some_and(|v| !v.children.is_empty()),
        H5Node::Dataset(_) => true,
    }) {
        return Err(Error::mismatch(
            "weights only for the model's layers",
            format!("`{CHECKPOINT_DEPENDENCIES}/{left}`, which no layer of the config maps to"),
        ));
    }
    Ok(())
}

/// `config.layers` with their Keras 3 weight paths (`None` for a
/// Sequential's leading `InputLayer` and for operations), as `raw_layers`
/// in `parse.rs` names them.
fn layer_paths(config: &Value) -> Result<Vec<(&Value, Option<String>)>> {
    let sequential = config["class_name"] == "Sequential";
    let layers = config
        .pointer("/config/layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("`config.layers` list").in_member("model_config"))?;
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(layers.len());
    for (i, entry) in layers.iter().enumerate() {
        let class = entry["class_name"].as_str().unwrap_or("");
        let is_op = entry["module"] == super::layers::ops::MODULE;
        if (sequential && i == 0 && class == "InputLayer") || is_op {
            out.push((entry, None));
            continue;
        }
        let base = to_snake_case(class);
        let unique = match used.get_mut(&base) {
            Some(n) => {
                *n += 1;
                format!("{base}_{n}")
            }
            None => {
                used.insert(base.clone(), 0);
                base
            }
        };
        out.push((entry, Some(format!("layers/{unique}"))));
    }
    Ok(out)
}

fn layer_name(entry: &Value) -> &str {
    entry
        .pointer("/config/name")
        .or_else(|| entry.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The Keras 3 weights tree for a legacy file's layers.
fn weights_tree(config: &Value, legacy: &LegacyH5) -> Result<H5Group> {
    let in_h5 = |e: Error| e.in_member("model_weights");
    let mut by_name: HashMap<&str, &crate::archive::legacy::LegacyLayer> = HashMap::new();
    for layer in &legacy.layers {
        if by_name.insert(layer.name.as_str(), layer).is_some() {
            return Err(in_h5(
                Error::invalid(format!("layer `{}` is listed twice", layer.name))
                    .at("attribute `layer_names`"),
            ));
        }
    }
    let mut root = H5Group::default();
    let mut used = HashSet::new();
    for (entry, path) in layer_paths(config)? {
        let Some(path) = path else { continue };
        let name = layer_name(entry);
        let vars = root.ensure_group(&format!("{path}/vars"))?;
        vars.set_attr("name", AttrValue::VarLenString(name.to_string()));
        let Some(stored) = by_name.get(name) else {
            continue;
        };
        used.insert(name.to_string());
        let class = entry["class_name"].as_str().unwrap_or("");
        if matches!(class, "Sequential" | "Functional" | "Model") && !stored.weights.is_empty() {
            return Err(in_h5(Error::unsupported(
                "legacy HDF5 layout",
                format!("weights of the nested model `{name}`"),
                &["models without nested models"],
            )));
        }
        for (i, (_, ds)) in stored.weights.iter().enumerate() {
            let mut ds = ds.clone();
            ds.attrs.clear();
            vars.set_child(&i.to_string(), H5Node::Dataset(ds));
        }
    }
    for layer in &legacy.layers {
        if !layer.weights.is_empty() && !used.contains(&layer.name) {
            return Err(in_h5(
                Error::mismatch(
                    format!("a layer named `{}` in the model config", layer.name),
                    "none: the weights file and the architecture disagree",
                )
                .at(format!("/model_weights/{}", layer.name)),
            ));
        }
    }
    let model_name = config
        .pointer("/config/name")
        .and_then(Value::as_str)
        .unwrap_or("model");
    root.ensure_group("vars")?
        .set_attr("name", AttrValue::VarLenString(model_name.to_string()));
    Ok(root)
}

fn put_optimizer(weights: &mut H5Group, name: &str, vars: Vec<H5Dataset>) -> Result<()> {
    let g = weights.ensure_group("optimizer/vars")?;
    g.children = vars
        .into_iter()
        .enumerate()
        .map(|(i, d)| (i.to_string(), H5Node::Dataset(d)))
        .collect();
    g.set_attr("name", AttrValue::VarLenString(name.to_string()));
    Ok(())
}

fn scalar_i32(v: i32) -> H5Dataset {
    H5Dataset {
        datatype: hdf5_pure::make_i32_type(),
        shape: Vec::new(),
        raw: v.to_le_bytes().to_vec(),
        attrs: Vec::new(),
    }
}

/// Stored optimizer variables as Keras 3's `optimizer/vars` list
/// (`base_optimizer.py`: `iterations`, `learning_rate` unless a schedule,
/// then the slots in trainable-variable order), with the optimizer's name.
///
/// Keras 3's legacy writer stores exactly that list. Keras 2's optimizers
/// (`tf_keras/src/optimizers/optimizer.py` and `adam.py`, `sgd.py`) store
/// `iteration` (int64) and the slots in the same per-variable order (Adam:
/// `m`, `v` per variable; SGD: `m`), but no learning rate: those two are
/// mapped; other Keras 2 optimizers are refused (a reason is returned).
fn optimizer_vars(
    mut stored: Vec<H5Dataset>,
    compile: Option<&Value>,
    keras2: bool,
) -> std::result::Result<(String, Vec<H5Dataset>), String> {
    let opt = compile
        .and_then(|c| c.get("optimizer"))
        .ok_or("the file has no optimizer configuration")?;
    let class = opt["class_name"].as_str().unwrap_or("");
    let cfg = &opt["config"];
    let name = cfg["name"].as_str().unwrap_or(class).to_lowercase();
    if stored.is_empty() {
        return Err("it is empty".into());
    }
    for (i, d) in stored.iter().enumerate() {
        let numeric = d.numeric_type();
        if numeric.is_none() || (i > 0 && !d.is_float()) {
            return Err(format!("variable {i} is {}, not a number", d.dtype_name()));
        }
    }
    let iterations = stored[0]
        .scalar_i64()
        .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
        .ok_or("its first variable is not an iteration count")?;
    if !keras2 {
        return Ok((name, stored));
    }
    let per_var = match class {
        "Adam" if cfg["amsgrad"].as_bool() != Some(true) => 2,
        "SGD" if cfg["momentum"].as_f64().is_some_and(|m| m != 0.0) => 1,
        "SGD" => 0,
        other => {
            return Err(format!(
                "mapping Keras 2 `{other}` state onto Keras 3 is not supported \
                 (supported: Adam, SGD)"
            ));
        }
    };
    let mut slots = stored.split_off(1);
    if class == "SGD" && per_var == 0 {
        // tf_keras's SGD builds an `m` slot per variable even at momentum 0
        // (`sgd.py`, `build`); it holds the last step (`m = -lr·g`) and is
        // never read back. Keras 3's SGD has no slots at momentum 0.
        slots.clear();
    }
    if per_var > 0 && !slots.len().is_multiple_of(per_var) {
        return Err(format!(
            "{} slot variables do not make {per_var} per trainable variable",
            slots.len()
        ));
    }
    if per_var == 2 && slots.chunks(2).any(|p| p[0].shape != p[1].shape) {
        return Err("the Adam `m` and `v` slots do not pair up".into());
    }
    let mut out = vec![scalar_i32(iterations as i32)];
    if let Some(lr) = cfg["learning_rate"].as_f64() {
        out.push(H5Dataset {
            datatype: hdf5_pure::make_f32_type(),
            shape: Vec::new(),
            raw: (lr as f32).to_le_bytes().to_vec(),
            attrs: Vec::new(),
        });
    }
    out.extend(slots);
    Ok((name, out))
}

/// Fill the `__keras_tensor__` shapes the Keras 2 pass left pending, from
/// the parsed graph (`[null, ...per-sample shape]`, as Keras 3 writes them).
pub(super) fn fill_tensor_shapes(model: &mut Model) {
    // (layer name, call index) → per-sample output shape.
    let mut calls: HashMap<(String, usize), Vec<usize>> = HashMap::new();
    let mut count: HashMap<usize, usize> = HashMap::new();
    for node in &model.graph.nodes {
        let Some(li) = node.layer else { continue };
        let k = count.entry(li).or_insert(0);
        calls.insert(
            (model.layers[li].name.clone(), *k),
            node.output_shape.clone(),
        );
        *k += 1;
    }
    fn walk(v: &mut Value, calls: &HashMap<(String, usize), Vec<usize>>) {
        match v {
            Value::Object(o) => {
                if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__")
                    && let Some(cfg) = o.get_mut("config").and_then(Value::as_object_mut)
                    && cfg.get("shape").and_then(Value::as_str) == Some(keras2::SHAPE_PENDING)
                {
                    let key = cfg.get("keras_history").and_then(|h| {
                        Some((
                            h.get(0)?.as_str()?.to_string(),
                            h.get(1)?.as_u64()? as usize,
                        ))
                    });
                    let shape = key.and_then(|k| calls.get(&k));
                    let mut dims = vec![Value::Null];
                    if let Some(shape) = shape {
                        dims.extend(shape.iter().map(|&d| Value::from(d)));
                    }
                    cfg.insert("shape".into(), Value::Array(dims));
                    return;
                }
                for (_, child) in o.iter_mut() {
                    walk(child, calls);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, calls)),
            _ => {}
        }
    }
    walk(&mut model.source.config, &calls);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_ds(shape: &[u64], v: f32) -> H5Dataset {
        let n: u64 = shape.iter().product();
        H5Dataset {
            datatype: hdf5_pure::make_f32_type(),
            shape: shape.to_vec(),
            raw: (0..n).flat_map(|_| v.to_le_bytes()).collect(),
            attrs: Vec::new(),
        }
    }

    fn i64_scalar(v: i64) -> H5Dataset {
        H5Dataset {
            datatype: hdf5_pure::make_i64_type(),
            shape: Vec::new(),
            raw: v.to_le_bytes().to_vec(),
            attrs: Vec::new(),
        }
    }

    #[test]
    fn keras2_sgd_without_momentum_drops_its_m_slots() {
        // tf_keras `SGD(0.01)`: `iteration`, then an `m` per variable.
        let compile = json!({"optimizer": {"class_name": "SGD",
            "config": {"name": "SGD", "learning_rate": 0.01, "momentum": 0.0}}});
        let stored = vec![i64_scalar(4), f32_ds(&[3, 2], -0.5), f32_ds(&[2], 0.25)];
        let (name, vars) = optimizer_vars(stored, Some(&compile), true).unwrap();
        assert_eq!(name, "sgd");
        // Keras 3's SGD at momentum 0: iterations and the learning rate.
        assert_eq!(vars.len(), 2);
        assert_eq!(vars[0].scalar_i64(), Some(4));
        // With momentum the slots are kept.
        let compile = json!({"optimizer": {"class_name": "SGD",
            "config": {"name": "SGD", "learning_rate": 0.01, "momentum": 0.9}}});
        let stored = vec![i64_scalar(4), f32_ds(&[3, 2], -0.5), f32_ds(&[2], 0.25)];
        let (_, vars) = optimizer_vars(stored, Some(&compile), true).unwrap();
        assert_eq!(vars.len(), 4);
    }

    #[test]
    fn keras_2_13_counts_saved_layers_and_2_14_does_not() {
        assert!(counts_saved_layers("2.13.1"));
        assert!(!counts_saved_layers("2.14.0"));
        assert!(!counts_saved_layers("2.15.1"));
        assert_eq!(major_minor("3.0.5"), Some((3, 0)));
        assert_eq!(major_minor("3.15.1"), Some((3, 15)));
        assert_eq!(major_minor("3.4.0rc1"), Some((3, 4)));
        assert_eq!(major_minor("x"), None);
    }

    #[test]
    fn checkpoint_dependencies_of_an_unknown_layer_are_named() {
        let config = json!({"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"name": "in"}},
            {"class_name": "Dense", "config": {"name": "d"}}]}});
        let mut weights = H5Group::default();
        let deps = weights
            .ensure_group("_layer_checkpoint_dependencies/dense/vars")
            .unwrap();
        deps.set_child("0", H5Node::Dataset(f32_ds(&[2], 1.0)));
        weights
            .ensure_group("_layer_checkpoint_dependencies/ghost/vars")
            .unwrap()
            .set_child("0", H5Node::Dataset(f32_ds(&[2], 1.0)));
        let err = checkpoint_dependencies(&mut weights, &config, "2.14.0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("_layer_checkpoint_dependencies/ghost"),
            "{err}"
        );
        // A layer whose group is missing is named too.
        let mut weights = H5Group::default();
        weights
            .ensure_group("_layer_checkpoint_dependencies/dense_1/vars")
            .unwrap();
        let err = checkpoint_dependencies(&mut weights, &config, "2.14.0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("_layer_checkpoint_dependencies/dense") && err.contains("`d`"),
            "{err}"
        );
    }
}
