//! Keras 2 (tf.keras / tf_keras) and legacy-writer configs → the Keras 3
//! `config.json` form, as a separate pass before the model is parsed.
//!
//! Spec: what Keras 3 accepts when it reads such configs —
//! `keras/src/legacy/saving/saving_utils.py` (`model_from_config`,
//! `compile_args_from_training_config`), `keras/src/models/functional.py`
//! (`deserialize_node`: the Keras 2 node list `[[name, node, tensor,
//! kwargs], ...]`), `keras/src/layers/core/input_layer.py`
//! (`batch_input_shape`), `keras/src/layers/activations/leaky_relu.py`
//! (`alpha` → `negative_slope`) — and what Keras 3.15's `get_config` writes
//! for the same model. The Keras 2 side: `tf_keras/src/engine/functional.py`
//! (`get_network_config`) and `tf_keras/src/saving/legacy/saving_utils.py`
//! (`model_metadata`).
//!
//! Every rewrite leaves keys it does not know alone, and a config already in
//! the Keras 3 form passes through unchanged.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// Marker for a `__keras_tensor__` shape to be filled in once the graph is
/// known (see `super::fill_tensor_shapes`).
pub(super) const SHAPE_PENDING: &str = "__kerasrs_shape_pending__";

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::mismatch("a JSON object", short(v)).at(at.to_string()))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The model config (`{"class_name": "Sequential" | "Functional" | "Model",
/// "config": {...}}`) in the Keras 3 form.
pub fn upgrade_model(config: &Value) -> Result<Value> {
    upgrade_container(config, "")
}

fn upgrade_container(entry: &Value, at: &str) -> Result<Value> {
    let root = obj(entry, at)?;
    let class = root
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing("string `class_name`").at(at.to_string()))?;
    let (class, module) = match class {
        "Sequential" => ("Sequential", "keras"),
        "Functional" | "Model" => ("Functional", "keras.src.models.functional"),
        other => {
            return Err(Error::unsupported(
                "model class",
                other,
                &["Sequential", "Functional", "Model"],
            )
            .at(at.to_string()));
        }
    };
    let cfg_at = format!("{at}/config");
    let mut cfg = obj(
        root.get("config")
            .ok_or_else(|| Error::missing("object `config`").at(at.to_string()))?,
        &cfg_at,
    )?
    .clone();
    let layers_at = format!("{cfg_at}/layers");
    let layers = cfg
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("`layers` list").at(cfg_at.clone()))?;
    let mut out_layers = Vec::with_capacity(layers.len() + 1);
    for (i, layer) in layers.iter().enumerate() {
        out_layers.push(upgrade_layer(
            layer,
            class == "Functional",
            &format!("{layers_at}/{i}"),
        )?);
    }
    if class == "Sequential" {
        prepend_input(&mut out_layers);
    }
    if let Some(dtype) = cfg.get_mut("dtype") {
        upgrade_dtype(dtype);
    }
    cfg.insert("layers".into(), Value::Array(out_layers));
    let mut out = root.clone();
    out.insert("module".into(), Value::from(module));
    out.insert("class_name".into(), Value::from(class));
    out.insert("config".into(), Value::Object(cfg));
    out.entry("registered_name").or_insert(Value::Null);
    if class == "Sequential" && !out.contains_key("build_config") {
        let shape = out["config"]["layers"]
            .get(0)
            .filter(|l| l["class_name"] == "InputLayer")
            .and_then(|l| l["config"].get("batch_shape"))
            .cloned();
        if let Some(shape) = shape {
            out.insert("build_config".into(), json!({ "input_shape": shape }));
        }
    }
    Ok(Value::Object(reorder(out)))
}

/// Keys in the order Keras 3 writes them (`module`, `class_name`, `config`,
/// `registered_name`, then the rest).
fn reorder(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut rest = map;
    for key in ["module", "class_name", "config", "registered_name"] {
        if let Some(v) = rest.remove(key) {
            out.insert(key.into(), v);
        }
    }
    out.extend(rest);
    out
}

/// A Sequential whose first layer carries `batch_input_shape` (Keras 2's
/// `Dense(4, input_shape=(8,))`) gets the `InputLayer` Keras 3 writes.
fn prepend_input(layers: &mut Vec<Value>) {
    let Some(first) = layers.first_mut() else {
        return;
    };
    if first["class_name"] == "InputLayer" {
        return;
    }
    let Some(cfg) = first.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(shape) = cfg.remove("batch_input_shape") else {
        return;
    };
    let dtype = match cfg.get("dtype") {
        Some(Value::String(s)) => s.clone(),
        _ => "float32".into(),
    };
    layers.insert(
        0,
        json!({
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": {"batch_shape": shape, "dtype": dtype, "sparse": false, "name": "input_layer"},
            "registered_name": null,
        }),
    );
}

/// A Keras 2 `Policy` object as the dtype name string (Keras 3 accepts both).
fn upgrade_dtype(dtype: &mut Value) {
    if let Some(o) = dtype.as_object()
        && o.get("class_name").and_then(Value::as_str) == Some("Policy")
        && let Some(name) = o.get("config").and_then(|c| c.get("name")).cloned()
    {
        *dtype = name;
    }
}

fn is_container(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

fn upgrade_layer(entry: &Value, functional: bool, at: &str) -> Result<Value> {
    let layer = obj(entry, at)?;
    let class = layer
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing("string `class_name`").at(at.to_string()))?;
    let mut out = if is_container(class) {
        match upgrade_container(entry, at)? {
            Value::Object(o) => o,
            _ => unreachable!("a container upgrades to an object"),
        }
    } else {
        let mut out = layer.clone();
        let module = out.get("module").and_then(Value::as_str).unwrap_or("");
        if module.is_empty() || module.starts_with("tf_keras") || module.starts_with("keras.engine")
        {
            out.insert("module".into(), Value::from("keras.layers"));
        }
        out.entry("registered_name").or_insert(Value::Null);
        let cfg_at = format!("{at}/config");
        let cfg = out
            .get_mut("config")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::missing("object `config`").at(at.to_string()))?;
        upgrade_layer_config(class, cfg).map_err(|e| e.at(cfg_at))?;
        out
    };
    if functional && let Some(nodes) = out.get("inbound_nodes") {
        let nodes =
            upgrade_inbound_nodes(nodes).map_err(|e| e.at(format!("{at}/inbound_nodes")))?;
        out.insert("inbound_nodes".into(), nodes);
    }
    Ok(Value::Object(reorder(out)))
}

/// The module Keras 3 records for a nested serialized object, by config key.
fn object_module(key: &str) -> Option<&'static str> {
    if key.ends_with("_initializer") {
        Some("keras.initializers")
    } else if key.ends_with("_regularizer") {
        Some("keras.regularizers")
    } else if key.ends_with("_constraint") {
        Some("keras.constraints")
    } else {
        None
    }
}

fn upgrade_layer_config(class: &str, cfg: &mut Map<String, Value>) -> Result<()> {
    if let Some(dtype) = cfg.get_mut("dtype") {
        upgrade_dtype(dtype);
    }
    for (key, value) in cfg.iter_mut() {
        if let (Some(module), Some(o)) = (object_module(key), value.as_object_mut())
            && o.contains_key("class_name")
            && !o.contains_key("module")
        {
            o.insert("module".into(), Value::from(module));
            o.entry("registered_name").or_insert(Value::Null);
        }
    }
    match class {
        "InputLayer" => {
            if let Some(shape) = cfg.remove("batch_input_shape") {
                cfg.entry("batch_shape").or_insert(shape);
            }
        }
        // keras/src/layers/activations/leaky_relu.py: `alpha` is the
        // deprecated name of `negative_slope`.
        "LeakyReLU" => {
            if let Some(alpha) = cfg.remove("alpha") {
                cfg.entry("negative_slope").or_insert(alpha);
            }
        }
        // tf_keras's DepthwiseConv2D inherits `groups` (always 1) from its
        // Conv base; Keras 3's DepthwiseConv2D refuses the argument.
        "DepthwiseConv2D" => match cfg.get("groups") {
            None => {}
            Some(g) if g.as_u64() == Some(1) => {
                cfg.remove("groups");
            }
            Some(g) => {
                return Err(Error::unsupported(
                    "DepthwiseConv2D option",
                    format!("groups={g}"),
                    &["groups=1"],
                ));
            }
        },
        // tf_keras stores the normalized axis list (`[3]`); Keras 3's
        // BatchNormalization takes one integer axis.
        "BatchNormalization" => {
            if let Some(Value::Array(axes)) = cfg.get("axis") {
                match axes.as_slice() {
                    [one] => {
                        let one = one.clone();
                        cfg.insert("axis".into(), one);
                    }
                    _ => {
                        return Err(Error::unsupported(
                            "BatchNormalization axis",
                            Value::Array(axes.clone()).to_string(),
                            &["one axis"],
                        ));
                    }
                }
            }
            // Keras 2's `fused`, `renorm` and `virtual_batch_size` options
            // have no Keras 3 counterpart; the defaults mean nothing changes.
            for (key, default) in [
                ("fused", Value::Null),
                ("renorm", Value::Bool(false)),
                ("virtual_batch_size", Value::Null),
                ("adjustment", Value::Null),
            ] {
                match cfg.get(key) {
                    None => {}
                    Some(v) if *v == default || (key == "fused" && v.is_boolean()) => {
                        cfg.remove(key);
                    }
                    Some(v) => {
                        return Err(Error::unsupported(
                            "Keras 2 BatchNormalization option",
                            format!("{key}={v}"),
                            &["the defaults"],
                        ));
                    }
                }
            }
            for key in ["renorm_clipping", "renorm_momentum"] {
                cfg.remove(key);
            }
        }
        _ => {}
    }
    Ok(())
}

/// One endpoint of a Keras 2 node: `[name, node_index, tensor_index, kwargs]`.
fn keras_tensor(item: &Value) -> Result<Value> {
    let list = item
        .as_array()
        .filter(|l| (3..=4).contains(&l.len()))
        .ok_or_else(|| Error::mismatch("`[layer, node, tensor, kwargs]`", short(item)))?;
    if !list[0].is_string() || !list[1].is_u64() || !list[2].is_u64() {
        return Err(Error::mismatch(
            "`[layer, node, tensor, kwargs]`",
            short(item),
        ));
    }
    if let Some(kwargs) = list.get(3)
        && kwargs.as_object().is_some_and(|k| !k.is_empty())
    {
        return Err(Error::unsupported(
            "Keras 2 call arguments",
            short(kwargs),
            &["calls without keyword arguments"],
        ));
    }
    Ok(json!({
        "class_name": "__keras_tensor__",
        "config": {
            "shape": SHAPE_PENDING,
            "dtype": "float32",
            "keras_history": [list[0], list[1], list[2]],
        }
    }))
}

/// Keras 2 inbound nodes (a list of calls, each a list of endpoints) as
/// Keras 3's `{"args": [...], "kwargs": {}}`: one tensor as the argument, or
/// the list of them for merge layers.
fn upgrade_inbound_nodes(nodes: &Value) -> Result<Value> {
    let list = nodes
        .as_array()
        .ok_or_else(|| Error::mismatch("a list of inbound nodes", short(nodes)))?;
    let mut out = Vec::with_capacity(list.len());
    for node in list {
        match node {
            Value::Object(_) => out.push(node.clone()),
            Value::Array(endpoints) => {
                let tensors: Vec<Value> =
                    endpoints.iter().map(keras_tensor).collect::<Result<_>>()?;
                let arg = match tensors.len() {
                    0 => return Err(Error::invalid("an inbound node without inputs")),
                    1 => tensors.into_iter().next().expect("one tensor"),
                    _ => Value::Array(tensors),
                };
                out.push(json!({"args": [arg], "kwargs": {}}));
            }
            other => return Err(Error::mismatch("an inbound node", short(other))),
        }
    }
    Ok(Value::Array(out))
}

/// Metrics of a `training_config` (strings, or Keras 2's serialized
/// `MeanMetricWrapper`s, one list per output) as Keras 3 compile metrics.
fn upgrade_metrics(v: &Value, outputs: usize) -> Value {
    fn one(m: &Value) -> Value {
        match m {
            Value::Object(o)
                if o.get("class_name").and_then(Value::as_str) == Some("MeanMetricWrapper") =>
            {
                o.get("config")
                    .and_then(|c| c.get("name"))
                    .cloned()
                    .unwrap_or(Value::Null)
            }
            Value::Object(o) if !o.contains_key("module") && o.contains_key("class_name") => {
                let mut o = o.clone();
                o.insert("module".into(), Value::from("keras.metrics"));
                o.entry("registered_name").or_insert(Value::Null);
                Value::Object(reorder(o))
            }
            Value::Array(items) => Value::Array(items.iter().map(one).collect()),
            other => other.clone(),
        }
    }
    match v {
        // One output: Keras 2 writes `[[metric, ...]]`.
        Value::Array(items) if outputs == 1 && items.len() == 1 && items[0].is_array() => {
            one(&items[0])
        }
        other => one(other),
    }
}

fn upgrade_loss(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.contains_key("class_name") => {
            let mut o = o.clone();
            o.entry("module").or_insert(Value::from("keras.losses"));
            o.entry("registered_name").or_insert(Value::Null);
            if let Some(cfg) = o.get_mut("config").and_then(Value::as_object_mut)
                && cfg.get("reduction").and_then(Value::as_str) == Some("auto")
            {
                cfg.insert("reduction".into(), Value::from("sum_over_batch_size"));
            }
            Value::Object(reorder(o))
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, l)| (k.clone(), upgrade_loss(l)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(upgrade_loss).collect()),
        other => other.clone(),
    }
}

/// The optimizer of a `training_config` (`{"class_name": "Custom>Adam",
/// "config": {...}}`) as Keras 3 serializes it.
pub fn upgrade_optimizer(v: &Value) -> Result<Value> {
    let o = obj(v, "optimizer_config")?;
    let class = o
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing("`optimizer_config.class_name`"))?;
    // tf_keras registers its optimizers as `Custom>Adam`.
    let class = class.rsplit('>').next().unwrap_or(class);
    let mut cfg = o
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if cfg.get("is_legacy_optimizer").and_then(Value::as_bool) == Some(true) {
        return Err(Error::unsupported(
            "Keras 2 optimizer",
            format!("legacy `{class}` (`is_legacy_optimizer`)"),
            &["the Keras 2.11+ optimizers"],
        ));
    }
    for key in ["jit_compile", "is_legacy_optimizer"] {
        cfg.remove(key);
    }
    if let Some(decay) = cfg.remove("decay")
        && decay.as_f64().is_some_and(|d| d != 0.0)
    {
        return Err(Error::unsupported(
            "Keras 2 optimizer option",
            format!("decay={decay}"),
            &["decay 0 (use a learning-rate schedule)"],
        ));
    }
    if let Some(Value::Object(lr)) = cfg.get_mut("learning_rate")
        && lr.contains_key("class_name")
    {
        lr.entry("module")
            .or_insert(Value::from("keras.optimizers.schedules"));
        lr.entry("registered_name").or_insert(Value::Null);
    }
    Ok(json!({
        "module": "keras.optimizers",
        "class_name": class,
        "config": cfg,
        "registered_name": null,
    }))
}

/// A legacy `training_config` as Keras 3's `compile_config`
/// (`compile_args_from_training_config`, then `Trainer.get_compile_config`).
pub fn upgrade_training_config(tc: &Value, outputs: usize) -> Result<Value> {
    let tc = obj(tc, "training_config")?;
    let mut out = Map::new();
    if let Some(opt) = tc.get("optimizer_config") {
        out.insert(
            "optimizer".into(),
            upgrade_optimizer(opt).map_err(|e| e.at("training_config/optimizer_config"))?,
        );
    }
    out.insert(
        "loss".into(),
        tc.get("loss").map_or(Value::Null, upgrade_loss),
    );
    out.insert(
        "loss_weights".into(),
        tc.get("loss_weights").cloned().unwrap_or(Value::Null),
    );
    for key in ["metrics", "weighted_metrics"] {
        out.insert(
            key.into(),
            tc.get(key)
                .filter(|v| !v.is_null())
                .map_or(Value::Null, |m| upgrade_metrics(m, outputs)),
        );
    }
    out.insert("run_eagerly".into(), Value::Bool(false));
    out.insert("steps_per_execution".into(), Value::from(1));
    out.insert("jit_compile".into(), Value::Bool(true));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras2_functional_nodes_become_keras3_calls() {
        let k2 = json!({"class_name": "Model", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
             "config": {"batch_input_shape": [null, 4], "dtype": "float32", "name": "x"}},
            {"class_name": "Add", "name": "add", "config": {"name": "add"},
             "inbound_nodes": [[["x", 0, 0, {}], ["x", 0, 0, {}]]]}],
            "input_layers": [["x", 0, 0]], "output_layers": [["add", 0, 0]]}});
        let k3 = upgrade_model(&k2).unwrap();
        assert_eq!(k3["class_name"], "Functional");
        assert_eq!(
            k3["config"]["layers"][0]["config"]["batch_shape"],
            json!([null, 4])
        );
        let args = &k3["config"]["layers"][1]["inbound_nodes"][0]["args"][0];
        assert_eq!(args[1]["config"]["keras_history"], json!(["x", 0, 0]));
        assert_eq!(k3["config"]["layers"][1]["module"], "keras.layers");
        // A Keras 3 config is a fixed point.
        assert_eq!(upgrade_model(&k3).unwrap(), k3);
    }

    #[test]
    fn depthwise_groups_one_is_dropped_and_others_refused() {
        let mut cfg = json!({"groups": 1, "depth_multiplier": 1})
            .as_object()
            .unwrap()
            .clone();
        upgrade_layer_config("DepthwiseConv2D", &mut cfg).unwrap();
        assert_eq!(Value::Object(cfg), json!({"depth_multiplier": 1}));
        let mut cfg = json!({"groups": 2}).as_object().unwrap().clone();
        let err = upgrade_layer_config("DepthwiseConv2D", &mut cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("groups=2"), "{err}");
    }

    #[test]
    fn leaky_relu_alpha_and_optimizer_names() {
        let mut cfg = json!({"alpha": 0.2}).as_object().unwrap().clone();
        upgrade_layer_config("LeakyReLU", &mut cfg).unwrap();
        assert_eq!(Value::Object(cfg), json!({"negative_slope": 0.2}));
        let opt = upgrade_optimizer(&json!({"class_name": "Custom>Adam",
            "config": {"learning_rate": 0.01, "jit_compile": false, "is_legacy_optimizer": false}}))
        .unwrap();
        assert_eq!(opt["class_name"], "Adam");
        assert_eq!(opt["config"], json!({"learning_rate": 0.01}));
    }
}
