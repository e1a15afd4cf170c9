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
use super::graph::{Graph, Node};
use super::layer::{Dense, LAYER_CLASSES, Layer, LayerKind, to_snake_case};
use super::layers::BuildCx;
use super::regularizer::Regularizer;
use crate::archive::{H5Group, KerasFile};
use crate::error::{Error, Result};

/// Model classes kerasrs understands.
const MODEL_CLASSES: &[&str] = &["Sequential", "Functional"];

/// Largest width accepted for any dimension or `units` (absurd values are
/// errors, not allocations).
const MAX_DIM: u64 = 1 << 31;

/// Largest number of values one layer output may hold per sample (a
/// config asking for more, e.g. a `RepeatVector` of millions, is refused
/// before anything is allocated).
const MAX_SAMPLE_ELEMENTS: u64 = 1 << 28;

/// A layer entry of a container's `layers` list.
struct RawLayer<'a> {
    class_name: &'a str,
    name: String,
    config: &'a Map<String, Value>,
    entry: &'a Value,
    weight_path: Option<String>,
    /// JSON pointer to the entry within `config.json`.
    pointer: String,
    /// Position in the model's (depth-first) layer order.
    order: Vec<usize>,
    /// Names of the nested models the entry is in, outermost first.
    scope: Vec<String>,
}

/// Model classes that may be nested as layers.
fn is_container(class_name: &str) -> bool {
    matches!(class_name, "Sequential" | "Functional" | "Model")
}

pub(super) fn parse_model(file: KerasFile) -> Result<Model> {
    let (name, class_name, layers, graph) = {
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
        let mut im = Importer {
            root,
            weights: &file.weights,
            layers: Vec::new(),
            built: HashMap::new(),
            graph: Graph::default(),
            weight_paths: Vec::new(),
            call_options: HashMap::new(),
        };
        let outputs = im.container(root, "", "", &[], &[], true, None)?;
        im.graph.outputs = outputs;
        check_no_stray_weights(&file.weights, &im.weight_paths)?;
        if let Some(state) = super::compile::OptimizerState::from_weights(&file.weights) {
            state
                .validate()
                .map_err(|e| e.in_member("model.weights.h5"))?;
        }
        let (layers, graph) = im.finish();
        (name, class_name.to_string(), layers, graph)
    };
    let input_shape = graph
        .input_shapes()
        .first()
        .map(|s| s.to_vec())
        .unwrap_or_default();
    Ok(Model {
        name,
        class_name,
        input_shape,
        layers,
        graph,
        notes: Vec::new(),
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

/// The dtype policies kerasrs runs: a string (Keras ≤ 3.3) or a
/// `DTypePolicy` object (Keras ≥ 3.4). kerasrs computes in float32
/// whatever the policy; variables stored as float16, bfloat16 or float64 are
/// read into float32 and written back in their own type, so predictions of
/// a low-precision model agree with Keras's to that precision, not to
/// float32 rounding (see the README's support table).
pub const DTYPE_POLICIES: &[&str] = &[
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "mixed_float16",
    "mixed_bfloat16",
];

/// Check a layer's dtype policy against [`DTYPE_POLICIES`].
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
    if DTYPE_POLICIES.contains(&name) {
        Ok(())
    } else {
        Err(Error::unsupported("dtype policy", name, DTYPE_POLICIES))
    }
}

/// The layer entries of a container (`Sequential` or `Functional`), with
/// their weight paths: `<prefix>layers/<snake_case(class)>[_N]` in
/// `model.layers` order; Sequential's `layers` omits its leading
/// `InputLayer`, so it gets none.
fn raw_layers<'a>(
    cfg: &'a Map<String, Value>,
    sequential: bool,
    prefix: &str,
    pointer: &str,
    order: &[usize],
    scope: &[String],
) -> Result<Vec<RawLayer<'a>>> {
    let list = cfg
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("`config.layers` list").at(pointer.to_string()))?;
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let at = format!("{pointer}/config/layers/{index}");
        let class_name = str_field(entry, "class_name").map_err(|e| e.at(at.clone()))?;
        let config = obj_field(entry, "config").map_err(|e| e.at(at.clone()))?;
        let name = config
            .get("name")
            .or_else(|| entry.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let is_op = entry.get("module").and_then(Value::as_str) == Some(super::layers::ops::MODULE);
        // Operations (`x + 3.0`) are not layers: no weights, no name slot.
        let weight_path = if (sequential && index == 0 && class_name == "InputLayer") || is_op {
            None
        } else {
            // The group is named after the Python class, which for
            // `GroupQueryAttention` (its registered name) is
            // `GroupedQueryAttention`.
            let python_class = match class_name {
                "GroupQueryAttention" => "GroupedQueryAttention",
                other => other,
            };
            let base = to_snake_case(python_class);
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
            Some(format!("{prefix}layers/{unique}"))
        };
        let mut layer_order = order.to_vec();
        layer_order.push(index);
        out.push(RawLayer {
            class_name,
            name,
            config,
            entry,
            weight_path,
            pointer: at,
            order: layer_order,
            scope: scope.to_vec(),
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

/// Model input dtypes kerasrs accepts: float32, and the integer ids of
/// `Embedding` models (data arrive as integer or float arrays and are held
/// as float32, exact below 2^24; `Embedding` checks every id).
const INPUT_DTYPES: &[&str] = &["float32", "int32", "int64"];

fn check_input_dtype(dtype: Option<&Value>) -> Result<()> {
    match dtype.and_then(Value::as_str) {
        Some(name) if INPUT_DTYPES.contains(&name) => Ok(()),
        Some(name) => Err(Error::unsupported("input dtype", name, INPUT_DTYPES)),
        None => check_dtype(dtype),
    }
}

fn input_layer_shape(layer: &RawLayer<'_>) -> Result<Vec<usize>> {
    let at = format!("{}/config", layer.pointer);
    check_input_dtype(layer.config.get("dtype")).map_err(|e| e.at(at.clone()))?;
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

/// A tensor reference `[layer_name, node_index, tensor_index]`.
type Endpoint = (String, usize, usize);

fn endpoint(v: &Value) -> Option<Endpoint> {
    let list = v.as_array()?;
    match list.as_slice() {
        [Value::String(name), node, tensor, ..] => Some((
            name.clone(),
            node.as_u64()? as usize,
            tensor.as_u64()? as usize,
        )),
        _ => None,
    }
}

/// `input_layers` / `output_layers`: one `[name, node, tensor]` or a list
/// (or dict) of them.
fn endpoints(cfg: &Map<String, Value>, key: &str) -> Result<Vec<Endpoint>> {
    let v = cfg
        .get(key)
        .ok_or_else(|| Error::missing(format!("`config.{key}`")))?;
    if let Some(one) = endpoint(v) {
        return Ok(vec![one]);
    }
    let items: Vec<&Value> = match v {
        Value::Array(list) => list.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => Vec::new(),
    };
    let out: Option<Vec<Endpoint>> = items.into_iter().map(endpoint).collect();
    match out {
        Some(list) if !list.is_empty() => Ok(list),
        _ => Err(Error::mismatch("a list of `[layer, node, tensor]`", v).at(key.to_string())),
    }
}

/// Every `__keras_tensor__` in a node's `args` (merge layers take a list),
/// in order; tensors passed as keyword arguments are refused.
fn node_tensors(node: &Value, at: &str) -> Result<Vec<Endpoint>> {
    fn walk(v: &Value, out: &mut Vec<Endpoint>) -> Result<()> {
        match v {
            Value::Object(map)
                if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
            {
                let history = map
                    .get("config")
                    .and_then(|c| c.get("keras_history"))
                    .and_then(endpoint)
                    .ok_or_else(|| Error::missing("`keras_history`"))?;
                out.push(history);
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|i| walk(i, out)),
            _ => Ok(()),
        }
    }
    let args = node
        .get("args")
        .ok_or_else(|| Error::missing("`args` of an inbound node").at(at.to_string()))?;
    let mut out = Vec::new();
    walk(args, &mut out).map_err(|e| e.at(at.to_string()))?;
    if let Some(kwargs) = node.get("kwargs").and_then(Value::as_object) {
        // The attention layers' `query`, `value` and `key` given by name
        // follow the positional ones in that order (their call signature).
        for key in TENSOR_KWARGS {
            if let Some(value) = kwargs.get(*key) {
                walk(value, &mut out).map_err(|e| e.at(at.to_string()))?;
            }
        }
        for (key, value) in kwargs {
            if key == "mask" || TENSOR_KWARGS.contains(&key.as_str()) {
                // The mask Keras recorded when the model was built; the
                // engine propagates the same mask from the layers that
                // make it (`Embedding(mask_zero)`, `Masking`).
                continue;
            }
            let mut found = Vec::new();
            walk(value, &mut found).map_err(|e| e.at(at.to_string()))?;
            if !found.is_empty() {
                return Err(Error::unsupported(
                    "layer call argument",
                    format!("tensor passed as `{key}`"),
                    &["tensors as positional inputs"],
                )
                .at(at.to_string()));
            }
        }
    }
    Ok(out)
}

/// Call arguments that are inputs when given by name (the attention
/// layers' `call(query, value, key=None, ...)`), in signature order.
const TENSOR_KWARGS: &[&str] = &["query", "value", "key"];

/// The keyword arguments of a call that configure it (`use_causal_mask`,
/// `return_attention_scores`): every non-tensor one but `mask` and
/// `training`; `None` when there are none.
fn call_options(node: &Value) -> Option<Map<String, Value>> {
    let kwargs = node.get("kwargs")?.as_object()?;
    let opts: Map<String, Value> = kwargs
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "mask" | "training") && !TENSOR_KWARGS.contains(&k.as_str())
        })
        .filter(|(_, v)| {
            let mut found = Vec::new();
            collect_history(v, &mut found);
            found.is_empty()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!opts.is_empty()).then_some(opts)
}

/// The import pass: config containers → layers and graph nodes.
struct Importer<'a> {
    root: &'a Value,
    weights: &'a H5Group,
    /// Layers with their order keys (depth-first config position).
    layers: Vec<(Vec<usize>, Layer)>,
    /// Layer built for a config entry (by JSON pointer).
    built: HashMap<String, usize>,
    graph: Graph,
    /// Weight paths of every config layer (for the stray-weights check).
    weight_paths: Vec<String>,
    /// The call options of each layer's first call (by JSON pointer).
    call_options: HashMap<String, Option<Map<String, Value>>>,
}

impl<'a> Importer<'a> {
    /// Layers in Keras's order (nested models' layers at their model's
    /// place), with the graph's layer indices renumbered to match.
    fn finish(mut self) -> (Vec<Layer>, Graph) {
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        order.sort_by(|&a, &b| self.layers[a].0.cmp(&self.layers[b].0));
        let mut new_index = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        for node in &mut self.graph.nodes {
            node.layer = node.layer.map(|l| new_index[l]);
        }
        let mut slots: Vec<Option<Layer>> = self.layers.into_iter().map(|(_, l)| Some(l)).collect();
        let layers = order
            .iter()
            .map(|&old| slots[old].take().expect("each layer once"))
            .collect();
        (layers, self.graph)
    }

    fn add_node(&mut self, layer: Option<usize>, inputs: Vec<usize>, shape: Vec<usize>) -> usize {
        self.graph.nodes.push(Node {
            layer,
            inputs,
            output_shape: shape,
            input_slot: None,
            source: None,
        });
        self.graph.nodes.len() - 1
    }

    fn add_input(&mut self, layer: Option<usize>, shape: Vec<usize>, name: String) -> usize {
        let node = self.add_node(layer, Vec::new(), shape);
        self.graph.nodes[node].input_slot = Some(self.graph.inputs.len());
        self.graph.inputs.push(node);
        self.graph.input_names.push(name);
        node
    }

    fn push_layer(&mut self, order: &[usize], layer: Layer) -> usize {
        self.layers.push((order.to_vec(), layer));
        self.layers.len() - 1
    }

    /// An input layer of the top-level model, as a layer and an input node.
    fn top_input(&mut self, r: &RawLayer<'_>, trainable: bool) -> Result<usize> {
        let shape = input_layer_shape(r)?;
        let layer = Layer {
            name: r.name.clone(),
            class_name: r.class_name.to_string(),
            trainable,
            weight_path: r.weight_path.clone(),
            config_pointer: r.pointer.clone(),
            scope: r.scope.clone(),
            input_shape: shape.clone(),
            output_shape: shape.clone(),
            kind: LayerKind::Input,
        };
        let li = self.push_layer(&r.order, layer);
        self.built.insert(r.pointer.clone(), li);
        Ok(self.add_input(Some(li), shape, r.name.clone()))
    }

    /// Call layer `r` on the outputs of nodes `inputs`: build it on its
    /// first call, check the shapes of later calls (shared layers).
    fn call(
        &mut self,
        r: &RawLayer<'_>,
        inputs: &[usize],
        options: Option<Map<String, Value>>,
        trainable: bool,
    ) -> Result<Vec<usize>> {
        let shapes: Vec<Vec<usize>> = inputs
            .iter()
            .map(|&n| self.graph.nodes[n].output_shape.clone())
            .collect();
        let at = || format!("{} (`{}`)", r.pointer, r.name);
        let li = match self.built.get(&r.pointer) {
            Some(&li) => {
                let first = self.call_options.get(&r.pointer).cloned().flatten();
                if first != options {
                    return Err(Error::unsupported(
                        "layer called again",
                        format!(
                            "`{}` with other call arguments ({} then {})",
                            r.name,
                            Value::from(first.unwrap_or_default()),
                            Value::from(options.unwrap_or_default())
                        ),
                        &["a shared layer called with the same call arguments each time"],
                    )
                    .at(at())
                    .in_member("config.json"));
                }
                li
            }
            None => {
                self.call_options.insert(r.pointer.clone(), options.clone());
                let layer = build_layer(r, &shapes, trainable, self.weights, options.as_ref())
                    .map_err(|e| {
                        if e.member().is_none() && e.location().is_none() {
                            e.at(at()).in_member("config.json")
                        } else {
                            e
                        }
                    })?;
                let li = self.push_layer(&r.order, layer);
                self.built.insert(r.pointer.clone(), li);
                li
            }
        };
        let outs = self.layers[li]
            .1
            .output_shapes_for(&shapes)
            .map_err(|e| e.at(at()).in_member("config.json"))?;
        for out in &outs {
            let elements = out
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
                .unwrap_or(u64::MAX);
            if elements > MAX_SAMPLE_ELEMENTS {
                return Err(Error::limit(
                    "max_sample_elements",
                    format!(
                        "layer output of shape {out:?} holds {elements} values per sample (at most {MAX_SAMPLE_ELEMENTS})"
                    ),
                )
                .at(at())
                .in_member("config.json"));
            }
        }
        let mut outs = outs.into_iter();
        let first = outs.next().unwrap_or_default();
        let call = self.add_node(Some(li), inputs.to_vec(), first);
        let mut ids = vec![call];
        for (k, shape) in outs.enumerate() {
            let node = self.add_node(None, vec![call], shape);
            self.graph.nodes[node].source = Some((call, k + 1));
            ids.push(node);
        }
        Ok(ids)
    }

    /// Import a container (the model, or a model nested as a layer) and
    /// return its output nodes. `call_inputs` are the nodes a nested model
    /// is called on (`None` at the top level, where its inputs become the
    /// model's inputs).
    #[allow(clippy::too_many_arguments)]
    fn container(
        &mut self,
        entry: &'a Value,
        pointer: &str,
        prefix: &str,
        order: &[usize],
        scope: &[String],
        trainable: bool,
        call_inputs: Option<&[usize]>,
    ) -> Result<Vec<usize>> {
        let in_config = |e: Error| {
            if e.member().is_none() {
                e.in_member("config.json")
            } else {
                e
            }
        };
        let class_name = str_field(entry, "class_name").map_err(in_config)?;
        let cfg = obj_field(entry, "config").map_err(in_config)?;
        let trainable = trainable
            && cfg
                .get("trainable")
                .and_then(Value::as_bool)
                .unwrap_or(true);
        let sequential = class_name == "Sequential";
        let raw = raw_layers(cfg, sequential, prefix, pointer, order, scope).map_err(in_config)?;
        self.weight_paths
            .extend(raw.iter().filter_map(|r| r.weight_path.clone()));
        if sequential {
            self.sequential(entry, cfg, &raw, trainable, call_inputs)
                .map_err(in_config)
        } else {
            self.functional(cfg, &raw, trainable, call_inputs)
                .map_err(in_config)
        }
    }

    fn sequential(
        &mut self,
        entry: &'a Value,
        cfg: &Map<String, Value>,
        raw: &[RawLayer<'a>],
        trainable: bool,
        call_inputs: Option<&[usize]>,
    ) -> Result<Vec<usize>> {
        let starts_with_input = raw.first().is_some_and(|l| l.class_name == "InputLayer");
        let mut current = match call_inputs {
            Some(&[one]) => one,
            Some(more) => {
                return Err(Error::mismatch(
                    "one input for a nested Sequential model",
                    more.len(),
                ));
            }
            None if starts_with_input => self.top_input(&raw[0], trainable)?,
            None => {
                let root_build = if std::ptr::eq(entry, self.root) {
                    self.root.get("build_config")
                } else {
                    entry.get("build_config")
                };
                let shape = cfg
                    .get("build_input_shape")
                    .filter(|v| !v.is_null())
                    .or_else(|| root_build.and_then(|b| b.get("input_shape")))
                    .ok_or_else(|| {
                        Error::missing(
                            "input shape (no `InputLayer`, `build_input_shape` or `build_config`)",
                        )
                    })?;
                let shape = parse_shape(shape, "build_input_shape")?;
                self.add_input(None, shape, "input".into())
            }
        };
        for r in raw.iter().skip(usize::from(starts_with_input)) {
            let outs = self.call_entry(r, &[current], None, trainable)?;
            if outs.len() != 1 {
                return Err(Error::unsupported(
                    "layer in a Sequential model",
                    format!("`{}` with {} outputs", r.name, outs.len()),
                    &["layers with one output"],
                ));
            }
            current = outs[0];
        }
        if call_inputs.is_none() {
            let last = raw.last().map_or("output", |r| r.name.as_str());
            self.graph.output_names = vec![last.to_string()];
        }
        Ok(vec![current])
    }

    /// Call a layer entry, which may be a nested model.
    fn call_entry(
        &mut self,
        r: &RawLayer<'a>,
        inputs: &[usize],
        options: Option<Map<String, Value>>,
        trainable: bool,
    ) -> Result<Vec<usize>> {
        if is_container(r.class_name) {
            // A nested model called again (a shared encoder) is imported
            // again on the new inputs: its layers are built on the first
            // call and shared by the later ones, as Keras shares them.
            let prefix = format!("{}/", r.weight_path.as_deref().unwrap_or("layers/model"));
            let mut scope = r.scope.clone();
            scope.push(r.name.clone());
            let outputs = self.container(
                r.entry,
                &r.pointer,
                &prefix,
                &r.order,
                &scope,
                trainable,
                Some(inputs),
            )?;
            self.graph.nested.push(super::graph::Nested {
                name: r.name.clone(),
                class_name: r.class_name.to_string(),
                scope: r.scope.clone(),
                inputs: inputs.to_vec(),
                outputs: outputs.clone(),
            });
            return Ok(outputs);
        }
        self.call(r, inputs, options, trainable)
    }

    fn functional(
        &mut self,
        cfg: &Map<String, Value>,
        raw: &[RawLayer<'a>],
        trainable: bool,
        call_inputs: Option<&[usize]>,
    ) -> Result<Vec<usize>> {
        let inputs = endpoints(cfg, "input_layers")?;
        let outputs = endpoints(cfg, "output_layers")?;
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
        // Tensors produced so far: (layer name, node index) → output nodes.
        let mut produced: HashMap<(String, usize), Vec<usize>> = HashMap::new();
        if let Some(given) = call_inputs
            && given.len() != inputs.len()
        {
            return Err(Error::mismatch(
                format!("{} inputs for the nested model", inputs.len()),
                given.len(),
            ));
        }
        for (slot, (name, _, _)) in inputs.iter().enumerate() {
            let r = &raw[lookup(name)?];
            if r.class_name != "InputLayer" {
                return Err(Error::mismatch(
                    format!("an `InputLayer` as model input `{name}`"),
                    r.class_name,
                ));
            }
            let node = match call_inputs {
                None => self.top_input(r, trainable)?,
                Some(given) => {
                    let shape = input_layer_shape(r)?;
                    let found = &self.graph.nodes[given[slot]].output_shape;
                    if *found != shape {
                        return Err(Error::mismatch(
                            format!("input `{name}` of shape {shape:?}"),
                            format!("{found:?}"),
                        ));
                    }
                    given[slot]
                }
            };
            produced.insert((name.clone(), 0), vec![node]);
        }
        let mask_only = mask_only_ops(raw, &outputs);
        // Keras's `functional_from_config`: process each layer's inbound
        // nodes in order, layer by layer, repeating until all are done.
        let mut pending: Vec<std::collections::VecDeque<(usize, &Value)>> = raw
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if r.class_name == "InputLayer" || mask_only[i] {
                    return Default::default();
                }
                r.entry
                    .get("inbound_nodes")
                    .and_then(Value::as_array)
                    .map(|nodes| nodes.iter().enumerate().collect())
                    .unwrap_or_default()
            })
            .collect();
        while pending.iter().any(|p| !p.is_empty()) {
            let mut progressed = false;
            for (i, r) in raw.iter().enumerate() {
                while let Some(&(call_index, node)) = pending[i].front() {
                    let at = format!("{}/inbound_nodes/{call_index}", r.pointer);
                    let tensors = node_tensors(node, &at)?;
                    let mut ids = Vec::with_capacity(tensors.len());
                    for (name, node_index, tensor_index) in &tensors {
                        lookup(name).map_err(|e| e.at(at.clone()))?;
                        match produced.get(&(name.clone(), *node_index)) {
                            Some(outs) => ids.push(*outs.get(*tensor_index).ok_or_else(|| {
                                Error::mismatch(
                                    format!("tensor index below {} for `{name}`", outs.len()),
                                    tensor_index,
                                )
                                .at(at.clone())
                            })?),
                            None => break,
                        }
                    }
                    if ids.len() < tensors.len() {
                        break;
                    }
                    if tensors.is_empty() {
                        return Err(Error::invalid(format!(
                            "layer `{}` is called without inputs",
                            r.name
                        ))
                        .at(at));
                    }
                    let outs = self.call_entry(r, &ids, call_options(node), trainable)?;
                    produced.insert((r.name.clone(), call_index), outs);
                    pending[i].pop_front();
                    progressed = true;
                }
            }
            if !progressed {
                let stuck: Vec<&str> = raw
                    .iter()
                    .zip(&pending)
                    .filter(|(_, p)| !p.is_empty())
                    .map(|(r, _)| r.name.as_str())
                    .collect();
                return Err(Error::invalid(format!(
                    "the functional graph has a cycle or a missing input at layers: {}",
                    stuck.join(", ")
                )));
            }
        }
        let mut out = Vec::with_capacity(outputs.len());
        for (name, node_index, tensor_index) in &outputs {
            // A nested Functional model starts out with a node of its own,
            // which `get_tensor` skips for the model's outputs.
            let nested = raw
                .iter()
                .any(|r| r.name == *name && matches!(r.class_name, "Functional" | "Model"));
            let node_index = if nested && *node_index > 0 {
                node_index - 1
            } else {
                *node_index
            };
            let nodes = produced.get(&(name.clone(), node_index)).ok_or_else(|| {
                Error::missing(format!("output `{name}` (node {node_index}) in the graph"))
            })?;
            out.push(*nodes.get(*tensor_index).ok_or_else(|| {
                Error::mismatch(format!("a tensor index of `{name}`"), tensor_index)
            })?);
        }
        if call_inputs.is_none() {
            self.graph.output_names = outputs.iter().map(|(n, _, _)| n.clone()).collect();
        }
        // Layers never called do not take part (Keras drops them too), but
        // their weights still belong to the config.
        Ok(out)
    }
}
/// The layers that only compute masks Keras recorded as `mask` arguments
/// (`NotEqual`, `Any` operations of `Embedding(mask_zero)` and `Masking`):
/// operations read only by `mask` arguments or by other such operations.
/// They are not run; the engine propagates masks itself.
fn mask_only_ops(raw: &[RawLayer<'_>], outputs: &[Endpoint]) -> Vec<bool> {
    let by_name: HashMap<&str, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    // (reader, producer, through a `mask` argument) for every reference.
    let mut refs: Vec<(usize, usize, bool)> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let nodes = r.entry.get("inbound_nodes").and_then(Value::as_array);
        for node in nodes.into_iter().flatten() {
            let mut args = Vec::new();
            collect_history(node.get("args").unwrap_or(&Value::Null), &mut args);
            let mut masks = Vec::new();
            if let Some(kwargs) = node.get("kwargs").and_then(Value::as_object) {
                for (key, value) in kwargs {
                    let list = if key == "mask" { &mut masks } else { &mut args };
                    collect_history(value, list);
                }
            }
            for (list, is_mask) in [(args, false), (masks, true)] {
                for name in list {
                    if let Some(&p) = by_name.get(name.as_str()) {
                        refs.push((i, p, is_mask));
                    }
                }
            }
        }
    }
    let is_op = |r: &RawLayer<'_>| {
        r.entry
            .get("module")
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("keras.src.ops"))
    };
    let mut mask_only: Vec<bool> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| {
            is_op(r)
                && refs.iter().any(|&(_, p, _)| p == i)
                && !outputs.iter().any(|(name, _, _)| *name == r.name)
        })
        .collect();
    loop {
        let mut changed = false;
        for &(reader, producer, is_mask) in &refs {
            if mask_only[producer] && !is_mask && !mask_only[reader] {
                mask_only[producer] = false;
                changed = true;
            }
        }
        if !changed {
            return mask_only;
        }
    }
}

/// The layer names in the `keras_history` of every tensor in `v`.
fn collect_history(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map)
            if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
        {
            if let Some((name, _, _)) = map
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .and_then(endpoint)
            {
                out.push(name);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_history(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_history(i, out)),
        _ => {}
    }
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

fn build_layer(
    r: &RawLayer<'_>,
    inputs: &[Vec<usize>],
    model_trainable: bool,
    weights: &H5Group,
    call_options: Option<&Map<String, Value>>,
) -> Result<Layer> {
    // The builder sees the call's options beside the config (the config
    // written back is the original).
    let with_options = call_options.map(|o| {
        let mut c = r.config.clone();
        c.insert(super::layers::CALL_KWARGS.into(), Value::Object(o.clone()));
        c
    });
    let c = with_options.as_ref().unwrap_or(r.config);
    let trainable = model_trainable && c.get("trainable").and_then(Value::as_bool).unwrap_or(true);
    if r.class_name != "InputLayer" {
        check_dtype(c.get("dtype"))?;
    }
    let legacy = matches!(r.class_name, "Dense" | "Activation" | "Flatten")
        || (r.class_name == "Dropout" && c.get("noise_shape").is_none_or(Value::is_null));
    let input_shape = match inputs {
        [one] => one.clone(),
        _ if legacy || r.class_name == "InputLayer" => {
            return Err(Error::mismatch(
                format!("one input for `{}`", r.class_name),
                inputs.len(),
            ));
        }
        _ => inputs.first().cloned().unwrap_or_default(),
    };
    let last = *input_shape.last().unwrap_or(&1);
    let kind = match r.class_name {
        "InputLayer" => LayerKind::Input,
        "Dense" => {
            if input_shape.is_empty() {
                return Err(Error::mismatch(
                    "an input with at least one axis",
                    "a scalar",
                ));
            }
            LayerKind::Dense(Box::new(build_dense(r, last, weights)?))
        }
        "Dropout" if legacy => {
            let rate = c.get("rate").and_then(Value::as_f64).unwrap_or(0.0);
            if !(0.0..1.0).contains(&rate) {
                return Err(Error::mismatch("`rate` in [0, 1)", rate));
            }
            LayerKind::Dropout { rate }
        }
        "Activation" => LayerKind::Activation(Activation::from_config(
            c.get("activation").unwrap_or(&Value::Null),
        )?),
        "Flatten" => LayerKind::Flatten,
        other
            if r.entry.get("module").and_then(Value::as_str)
                == Some(super::layers::ops::MODULE) =>
        {
            let args = r
                .entry
                .get("inbound_nodes")
                .and_then(|n| n.get(0))
                .and_then(|n| n.get("args"))
                .unwrap_or(&Value::Null);
            LayerKind::Op(super::layers::ops::build(other, args, r.config)?)
        }
        other => {
            let builder = if other == "Dropout" {
                Some(super::layers::noise::build_dropout as super::layers::Builder)
            } else {
                super::layers::builder(other)
            };
            let Some(builder) = builder else {
                let mut supported: Vec<&str> = LAYER_CLASSES.to_vec();
                supported.extend(super::layers::registered_classes());
                supported.extend(["Sequential", "Functional"]);
                return Err(Error::unsupported("layer class", other, &supported));
            };
            let (vars_path, stored) = stored_vars(weights, r)?;
            let mut op = builder(&BuildCx {
                class_name: other,
                name: &r.name,
                config: c,
                inputs,
                stored: &stored,
                vars_path: &vars_path,
                group: r.weight_path.as_deref().and_then(|p| weights.group(p)),
            })?;
            op.set_trainable(trainable);
            LayerKind::Op(op)
        }
    };
    if !matches!(kind, LayerKind::Dense(_) | LayerKind::Op(_)) {
        check_vars_count(weights, r, 0)?;
    }
    let mut layer = Layer {
        name: r.name.clone(),
        class_name: r.class_name.to_string(),
        trainable,
        weight_path: r.weight_path.clone(),
        config_pointer: r.pointer.clone(),
        scope: r.scope.clone(),
        input_shape,
        output_shape: Vec::new(),
        kind,
    };
    layer.output_shape = layer.output_shape_for(inputs)?;
    Ok(layer)
}

/// Stored variables: (shape, float32 values) in `vars/0`, `vars/1`, ... order.
type StoredVars = Vec<(Vec<usize>, Vec<f32>)>;

/// The stored variables of a layer (`vars/0`, `vars/1`, ... in order) with
/// their shapes, as float32.
fn stored_vars(weights: &H5Group, r: &RawLayer<'_>) -> Result<(String, StoredVars)> {
    let path = format!("{}/vars", r.weight_path.as_deref().unwrap_or("?"));
    let Some((path, group)) = vars_group(weights, r) else {
        return Ok((path, Vec::new()));
    };
    let mut out = Vec::with_capacity(group.children.len());
    for i in 0..group.children.len() {
        let index = i.to_string();
        let at = format!("{path}/{index}");
        let ds = group.dataset(&index).ok_or_else(|| {
            Error::missing("weight dataset")
                .at(at.clone())
                .in_member("model.weights.h5")
        })?;
        let shape: Vec<usize> = ds
            .shape
            .iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d as u64 <= MAX_DIM))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::limit("max_dim", format!("shape {:?}", ds.shape))
                    .at(at.clone())
                    .in_member("model.weights.h5")
            })?;
        // An integer scalar is a counter (Normalization's `count`), read as
        // a float and never written back.
        let values = match ds.scalar_i64() {
            Some(v) if ds.numeric_type() != Some(crate::archive::NumericType::F32) => {
                vec![v as f32]
            }
            _ => ds
                .to_f32()
                .map_err(|e| e.at(at.clone()).in_member("model.weights.h5"))?,
        };
        out.push((shape, values));
    }
    Ok((path, out))
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

/// Every `layers/*` group holding variables in the weights file must belong
/// to a config layer (at any nesting depth).
fn check_no_stray_weights(weights: &H5Group, paths: &[String]) -> Result<()> {
    fn walk(group: &H5Group, prefix: &str, paths: &[String]) -> Result<()> {
        let Some(layers) = group.group("layers") else {
            return Ok(());
        };
        for name in layers.group_names() {
            let path = format!("{prefix}layers/{name}");
            let Some(sub) = layers.group(name) else {
                continue;
            };
            if paths.contains(&path) {
                walk(sub, &format!("{path}/"), paths)?;
                continue;
            }
            let has_vars = sub.group("vars").is_some_and(|v| !v.children.is_empty())
                || sub.group("layers").is_some();
            if has_vars {
                return Err(Error::mismatch(
                    format!("{} layers holding weights (from config.json)", paths.len()),
                    "weights for a layer the config does not have",
                )
                .at(path)
                .in_member("model.weights.h5"));
            }
        }
        Ok(())
    }
    walk(weights, "", paths)
}
