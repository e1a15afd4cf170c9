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

/// A tf_keras `.keras` archive as a Keras 3 one: the config upgraded, the
/// optimizer state mapped (`iterations` int64 and no learning rate in Keras
/// 2), tf_keras's `metrics` variables dropped (Keras 3 rebuilds them).
pub fn upgrade_archive(mut file: KerasFile) -> Result<Imported> {
    let version = file.keras_version().unwrap_or("2").to_string();
    if file
        .weights
        .child("_layer_checkpoint_dependencies")
        .is_some()
    {
        return Err(Error::unsupported(
            "weights layout",
            "`_layer_checkpoint_dependencies` (tf.keras 2.12 and older)",
            &["`layers/<name>/vars` (tf_keras 2.13+, Keras 3)"],
        )
        .in_member("model.weights.h5"));
    }
    let mut config = keras2::upgrade_model(&file.config).map_err(|e| e.in_member("config.json"))?;
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
    // tf_keras leaves out the `name` attribute Keras 3 gives each `vars`
    // group (the layer's name); write it as Keras 3 does.
    for (entry, path) in layer_paths(&config)? {
        if let Some(path) = path
            && let Some(vars) = file.weights.group_mut(&format!("{path}/vars"))
            && vars.attr("name").is_none()
        {
            vars.set_attr(
                "name",
                AttrValue::VarLenString(layer_name(entry).to_string()),
            );
        }
    }
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
    let slots = stored.split_off(1);
    if per_var == 0 && !slots.is_empty() || per_var > 0 && !slots.len().is_multiple_of(per_var) {
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
