//! `config.json` + weights tree → [`Model`].
//!
//! Spec: `keras/src/models/sequential.py`, `models/functional.py`
//! (`functional_from_config`), `saving/saving_lib.py` (`_save_container_state`:
//! weight paths are `layers/<snake_case(class)>[_N]` in `model.layers` order;
//! Sequential's `layers` omits its leading `InputLayer`).

use std::collections::HashMap;

use ndarray::{Array1, Array2};
use serde_json::{Map, Value};

use super::Model;
use super::activation::Activation;
use super::constraint::Constraint;
use super::layer::{Dense, LAYER_CLASSES, Layer, LayerKind, to_snake_case};
use super::regularizer::Regularizer;
use crate::archive::{H5Group, KerasFile};
use crate::error::{Error, Result};

/// Model classes kerasrs understands.
const MODEL_CLASSES: &[&str] = &["Sequential", "Functional"];

/// Largest width accepted for any dimension or `units` (absurd values are
/// errors, not allocations).
const MAX_DIM: u64 = 1 << 31;

struct RawLayer<'a> {
    index: usize,
    class_name: &'a str,
    name: String,
    config: &'a Map<String, Value>,
    entry: &'a Value,
    weight_path: Option<String>,
}

pub(super) fn parse_model(file: KerasFile) -> Result<Model> {
    let (name, class_name, input_shape, layers) = {
        let root = &file.config;
        let class_name = str_field(root, "class_name").map_err(|e| e.in_member("config.json"))?;
        if !MODEL_CLASSES.contains(&class_name) {
            return Err(Error::unsupported("model class", class_name, MODEL_CLASSES)
                .in_member("config.json"));
        }
        let cfg = obj_field(root, "config").map_err(|e| e.in_member("config.json"))?;
        let name = cfg
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(class_name)
            .to_string();
        check_dtype(cfg.get("dtype")).map_err(|e| e.at("config").in_member("config.json"))?;
        let model_trainable = cfg
            .get("trainable")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let raw =
            raw_layers(cfg, class_name == "Sequential").map_err(|e| e.in_member("config.json"))?;
        let (input_shape, chain) = if class_name == "Sequential" {
            sequential_chain(root, cfg, &raw)
        } else {
            functional_chain(cfg, &raw)
        }
        .map_err(|e| e.in_member("config.json"))?;
        let layers = build_layers(&raw, &chain, &input_shape, model_trainable, &file.weights)?;
        check_no_stray_weights(&file.weights, &raw)?;
        (name, class_name.to_string(), input_shape, layers)
    };
    Ok(Model {
        name,
        class_name,
        input_shape,
        layers,
        source: file,
    })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing(format!("string `{key}`")))
}

fn obj_field<'a>(v: &'a Value, key: &str) -> Result<&'a Map<String, Value>> {
    v.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| Error::missing(format!("object `{key}`")))
}

/// Accept only float32 dtype policies: a string (Keras ≤ 3.3) or a
/// `DTypePolicy` object (Keras ≥ 3.4).
fn check_dtype(dtype: Option<&Value>) -> Result<()> {
    let name = match dtype {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) => s.as_str(),
        Some(v) => v
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::mismatch("a dtype policy with a `name`", v))?,
    };
    if name == "float32" {
        Ok(())
    } else {
        Err(Error::unsupported("dtype policy", name, &["float32"]))
    }
}

fn raw_layers(cfg: &Map<String, Value>, sequential: bool) -> Result<Vec<RawLayer<'_>>> {
    let list = cfg
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("`config.layers` list"))?;
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let at = format!("config.layers[{index}]");
        let class_name = str_field(entry, "class_name").map_err(|e| e.at(at.clone()))?;
        let config = obj_field(entry, "config").map_err(|e| e.at(at.clone()))?;
        let name = config
            .get("name")
            .or_else(|| entry.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // `Sequential.layers` drops a leading InputLayer, so it gets no weight path.
        let weight_path = if sequential && index == 0 && class_name == "InputLayer" {
            None
        } else {
            let base = to_snake_case(class_name);
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
            Some(format!("layers/{unique}"))
        };
        out.push(RawLayer {
            index,
            class_name,
            name,
            config,
            entry,
            weight_path,
        });
    }
    Ok(out)
}

fn parse_shape(v: &Value, what: &str) -> Result<Vec<usize>> {
    let dims = v
        .as_array()
        .ok_or_else(|| Error::mismatch(format!("a shape list for `{what}`"), v))?;
    if dims.is_empty() {
        return Err(Error::mismatch(format!("a batch shape for `{what}`"), v));
    }
    // The first entry is the batch dimension.
    dims[1..]
        .iter()
        .map(|d| {
            d.as_u64()
                .filter(|&n| n > 0 && n <= MAX_DIM)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    Error::unsupported(
                        "input dimension",
                        format!("{d} in `{what}` {v}"),
                        &["fixed positive sizes"],
                    )
                })
        })
        .collect()
}

fn input_layer_shape(layer: &RawLayer<'_>) -> Result<Vec<usize>> {
    let at = format!("config.layers[{}].config", layer.index);
    check_dtype(layer.config.get("dtype")).map_err(|e| e.at(at.clone()))?;
    if layer.config.get("sparse").and_then(Value::as_bool) == Some(true) {
        return Err(Error::unsupported("input", "sparse", &["dense inputs"]).at(at));
    }
    let shape = layer
        .config
        .get("batch_shape")
        .or_else(|| layer.config.get("batch_input_shape"))
        .ok_or_else(|| Error::missing("`batch_shape`").at(at.clone()))?;
    parse_shape(shape, "batch_shape").map_err(|e| e.at(at))
}

fn sequential_chain(
    root: &Value,
    cfg: &Map<String, Value>,
    raw: &[RawLayer<'_>],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let chain: Vec<usize> = (0..raw.len()).collect();
    if let Some(first) = raw.first().filter(|l| l.class_name == "InputLayer") {
        return Ok((input_layer_shape(first)?, chain));
    }
    let shape = cfg
        .get("build_input_shape")
        .filter(|v| !v.is_null())
        .or_else(|| root.get("build_config").and_then(|b| b.get("input_shape")))
        .ok_or_else(|| {
            Error::missing("input shape (no `InputLayer`, `build_input_shape` or `build_config`)")
        })?;
    Ok((parse_shape(shape, "build_input_shape")?, chain))
}

/// The name of the layer that produces the single input of `layer`.
fn inbound_layer(layer: &RawLayer<'_>) -> Result<Option<String>> {
    let at = || format!("config.layers[{}].inbound_nodes", layer.index);
    let nodes = match layer.entry.get("inbound_nodes") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v
            .as_array()
            .ok_or_else(|| Error::mismatch("a list", v).at(at()))?,
    };
    match nodes.len() {
        0 => return Ok(None),
        1 => {}
        n => {
            return Err(Error::unsupported(
                "functional graph",
                format!("layer `{}` is called {n} times (shared layer)", layer.name),
                &["chains of single-use layers"],
            ));
        }
    }
    let args = nodes[0]
        .get("args")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("`args`").at(at()))?;
    let tensors: Vec<&Value> = args
        .iter()
        .filter(|a| a.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__"))
        .collect();
    if tensors.len() != 1 || args.len() != 1 {
        return Err(Error::unsupported(
            "functional graph",
            format!("layer `{}` takes {} inputs", layer.name, args.len()),
            &["chains of single-input layers"],
        ));
    }
    let history = tensors[0]
        .get("config")
        .and_then(|c| c.get("keras_history"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("`keras_history`").at(at()))?;
    let producer = history
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing("`keras_history[0]`").at(at()))?;
    Ok(Some(producer.to_string()))
}

fn single_endpoint(cfg: &Map<String, Value>, key: &str) -> Result<String> {
    let v = cfg
        .get(key)
        .ok_or_else(|| Error::missing(format!("`config.{key}`")))?;
    // Either [name, 0, 0] or [[name, 0, 0]].
    let list = v
        .as_array()
        .ok_or_else(|| Error::mismatch("a list", v).at(key.to_string()))?;
    let entry = match list.first() {
        Some(Value::Array(inner)) if list.len() == 1 => inner,
        Some(Value::String(_)) => list,
        _ => {
            return Err(Error::unsupported(
                "functional graph",
                format!("{} {key}", list.len()),
                &["one input and one output"],
            ));
        }
    };
    entry
        .first()
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::mismatch("a layer name", v).at(key.to_string()))
}

fn functional_chain(
    cfg: &Map<String, Value>,
    raw: &[RawLayer<'_>],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let input = single_endpoint(cfg, "input_layers")?;
    let output = single_endpoint(cfg, "output_layers")?;
    let by_name: HashMap<&str, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let lookup = |name: &str| {
        by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::missing(format!("layer `{name}` named in the graph")))
    };
    let mut chain = vec![lookup(&output)?];
    loop {
        let current = &raw[*chain.last().expect("chain starts non-empty")];
        if current.name == input {
            break;
        }
        let producer = inbound_layer(current)?.ok_or_else(|| {
            Error::invalid(format!(
                "layer `{}` has no input but is not the model input `{input}`",
                current.name
            ))
        })?;
        let next = lookup(&producer)?;
        if chain.contains(&next) || chain.len() > raw.len() {
            return Err(Error::invalid("the functional graph has a cycle"));
        }
        chain.push(next);
    }
    chain.reverse();
    if chain.len() != raw.len() {
        let stray: Vec<&str> = raw
            .iter()
            .enumerate()
            .filter(|(i, _)| !chain.contains(i))
            .map(|(_, l)| l.name.as_str())
            .collect();
        return Err(Error::unsupported(
            "functional graph",
            format!("layers off the input→output chain: {}", stray.join(", ")),
            &["chains (one path from input to output)"],
        ));
    }
    let first = &raw[chain[0]];
    if first.class_name != "InputLayer" {
        return Err(Error::mismatch(
            "an `InputLayer` as model input",
            first.class_name,
        ));
    }
    Ok((input_layer_shape(first)?, chain))
}

fn usize_field(config: &Map<String, Value>, key: &str) -> Result<usize> {
    let v = config
        .get(key)
        .ok_or_else(|| Error::missing(format!("`{key}`")))?;
    v.as_u64()
        .filter(|&n| n > 0 && n <= MAX_DIM)
        .map(|n| n as usize)
        .ok_or_else(|| Error::mismatch(format!("a positive integer `{key}` ≤ {MAX_DIM}"), v))
}

fn build_layers(
    raw: &[RawLayer<'_>],
    chain: &[usize],
    input_shape: &[usize],
    model_trainable: bool,
    weights: &H5Group,
) -> Result<Vec<Layer>> {
    let mut shape = input_shape.to_vec();
    let mut layers = Vec::with_capacity(chain.len());
    for &i in chain {
        let r = &raw[i];
        let at = format!("config.layers[{}] (`{}`)", r.index, r.name);
        let layer = build_layer(r, &shape, model_trainable, weights).map_err(|e| {
            if e.member().is_none() && e.location().is_none() {
                e.at(at).in_member("config.json")
            } else {
                e
            }
        })?;
        shape.clone_from(&layer.output_shape);
        layers.push(layer);
    }
    Ok(layers)
}

fn build_layer(
    r: &RawLayer<'_>,
    input_shape: &[usize],
    model_trainable: bool,
    weights: &H5Group,
) -> Result<Layer> {
    let c = r.config;
    let trainable = model_trainable && c.get("trainable").and_then(Value::as_bool).unwrap_or(true);
    if r.class_name != "InputLayer" {
        check_dtype(c.get("dtype"))?;
    }
    let last = *input_shape.last().unwrap_or(&1);
    let (kind, output_shape) = match r.class_name {
        "InputLayer" => (LayerKind::Input, input_shape.to_vec()),
        "Dense" => {
            let dense = build_dense(r, last, weights)?;
            let mut out = input_shape.to_vec();
            if out.is_empty() {
                return Err(Error::mismatch(
                    "an input with at least one axis",
                    "a scalar",
                ));
            }
            *out.last_mut().expect("non-empty") = dense.activation.output_width(dense.units)?;
            (LayerKind::Dense(Box::new(dense)), out)
        }
        "Dropout" => {
            let rate = c.get("rate").and_then(Value::as_f64).unwrap_or(0.0);
            if !(0.0..1.0).contains(&rate) {
                return Err(Error::mismatch("`rate` in [0, 1)", rate));
            }
            if c.get("noise_shape").is_some_and(|v| !v.is_null()) {
                return Err(Error::unsupported(
                    "Dropout option",
                    "noise_shape",
                    &["rate", "seed"],
                ));
            }
            (LayerKind::Dropout { rate }, input_shape.to_vec())
        }
        "Activation" => {
            let act = Activation::from_config(c.get("activation").unwrap_or(&Value::Null))?;
            let mut out = input_shape.to_vec();
            if let Some(w) = out.last_mut() {
                *w = act.output_width(*w)?;
            }
            (LayerKind::Activation(act), out)
        }
        "Flatten" => {
            let n = input_shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&n| n as u64 <= MAX_DIM)
                .ok_or_else(|| Error::limit("max_dim", format!("flattened {input_shape:?}")))?;
            (LayerKind::Flatten, vec![n])
        }
        other => return Err(Error::unsupported("layer class", other, LAYER_CLASSES)),
    };
    if r.class_name != "Dense" {
        check_vars_count(weights, r, 0)?;
    }
    Ok(Layer {
        name: r.name.clone(),
        class_name: r.class_name.to_string(),
        trainable,
        weight_path: r.weight_path.clone(),
        config_index: r.index,
        input_shape: input_shape.to_vec(),
        output_shape,
        kind,
    })
}

fn vars_group<'w>(weights: &'w H5Group, r: &RawLayer<'_>) -> Option<(String, &'w H5Group)> {
    let path = format!("{}/vars", r.weight_path.as_ref()?);
    let group = weights.group(&path)?;
    Some((path, group))
}

fn check_vars_count(weights: &H5Group, r: &RawLayer<'_>, expected: usize) -> Result<()> {
    if let Some((path, group)) = vars_group(weights, r) {
        let found = group.children.len();
        if found != expected {
            return Err(Error::mismatch(
                format!(
                    "{expected} variables for `{}` layer `{}`",
                    r.class_name, r.name
                ),
                format!("{found}"),
            )
            .at(path)
            .in_member("model.weights.h5"));
        }
    }
    Ok(())
}

fn regularizer(c: &Map<String, Value>, key: &str) -> Result<Option<Regularizer>> {
    Regularizer::from_config(c.get(key).unwrap_or(&Value::Null)).map_err(|e| e.at(key.to_string()))
}

fn build_dense(r: &RawLayer<'_>, input_width: usize, weights: &H5Group) -> Result<Dense> {
    let c = r.config;
    let units = usize_field(c, "units")?;
    let activation = Activation::from_config(c.get("activation").unwrap_or(&Value::Null))
        .map_err(|e| e.at("activation"))?;
    let use_bias = c.get("use_bias").and_then(Value::as_bool).unwrap_or(true);
    for key in ["quantization_config", "lora_rank"] {
        if c.get(key)
            .is_some_and(|v| !v.is_null() && v != &Value::from(0))
        {
            return Err(Error::unsupported(
                "Dense option",
                key,
                &["plain float32 Dense"],
            ));
        }
    }
    let kernel_regularizer = regularizer(c, "kernel_regularizer")?;
    let bias_regularizer = regularizer(c, "bias_regularizer")?;
    let activity_regularizer = regularizer(c, "activity_regularizer")?;
    let constraint = |key: &str| {
        Constraint::from_config(c.get(key).unwrap_or(&Value::Null))
            .map_err(|e| e.at(key.to_string()))
    };

    let in_h5 = |e: Error| e.in_member("model.weights.h5");
    let (path, vars) = vars_group(weights, r).ok_or_else(|| {
        in_h5(
            Error::missing(format!("variables of Dense layer `{}`", r.name))
                .at(format!("{}/vars", r.weight_path.as_deref().unwrap_or("?"))),
        )
    })?;
    let expected_vars = if use_bias { 2 } else { 1 };
    check_vars_count(weights, r, expected_vars)?;
    let kernel_values = read_weight(vars, &path, "0", &[input_width, units]).map_err(in_h5)?;
    let kernel = Array2::from_shape_vec((input_width, units), kernel_values)
        .map_err(|e| in_h5(Error::invalid(e.to_string()).at(format!("{path}/0"))))?;
    let bias = if use_bias {
        Some(Array1::from_vec(
            read_weight(vars, &path, "1", &[units]).map_err(in_h5)?,
        ))
    } else {
        None
    };
    Ok(Dense {
        units,
        activation,
        kernel,
        bias,
        kernel_regularizer,
        bias_regularizer,
        activity_regularizer,
        kernel_constraint: constraint("kernel_constraint")?,
        bias_constraint: constraint("bias_constraint")?,
    })
}

fn read_weight(vars: &H5Group, path: &str, index: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let at = format!("{path}/{index}");
    let ds = vars
        .dataset(index)
        .ok_or_else(|| Error::missing("weight dataset").at(at.clone()))?;
    let expected: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    if ds.shape != expected {
        return Err(Error::mismatch(
            format!("shape {expected:?}"),
            format!("shape {:?}", ds.shape),
        )
        .at(at));
    }
    ds.to_f32().map_err(|e| e.at(at))
}

/// Every `layers/*` group in the weights file must belong to a config layer.
fn check_no_stray_weights(weights: &H5Group, raw: &[RawLayer<'_>]) -> Result<()> {
    let Some(layers) = weights.group("layers") else {
        return Ok(());
    };
    for name in layers.group_names() {
        let path = format!("layers/{name}");
        if !raw
            .iter()
            .any(|r| r.weight_path.as_deref() == Some(path.as_str()))
        {
            let has_vars = layers
                .group(name)
                .and_then(|g| g.group("vars"))
                .is_some_and(|v| !v.children.is_empty());
            if has_vars {
                return Err(Error::mismatch(
                    format!("{} layers holding weights (from config.json)", raw.len()),
                    "weights for a layer the config does not have",
                )
                .at(path)
                .in_member("model.weights.h5"));
            }
        }
    }
    Ok(())
}
