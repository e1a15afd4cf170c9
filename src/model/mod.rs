//! The validated, typed model: layers with parameters, built from a
//! [`KerasFile`] by one fallible conversion and turned back into one.
//!
//! The model keeps the archive it came from: writing back starts from it and
//! changes only the weights (and config keys) kerasrs changed, so anything it
//! does not understand passes through.

pub mod activation;
pub mod compile;
pub mod constraint;
pub mod graph;
pub mod import;
pub mod layer;
pub mod layers;
mod open;
mod parse;
pub mod regularizer;
pub mod summary;

use serde_json::Value;

pub use activation::Activation;
pub use compile::{CompileInfo, OptimizerState};
pub use graph::{Graph, Node};
pub use layer::{Dense, Layer, LayerKind};
pub use regularizer::Regularizer;

use crate::archive::KerasFile;

/// The archive member where kerasrs records what Keras has no place for
/// (input feature names); Keras's loader ignores members it does not know.
pub const KERASRS_MEMBER: &str = "kerasrs.json";
use crate::error::{Error, Result};

/// A Keras model kerasrs can run: a chain of supported layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model's `name`.
    pub name: String,
    /// `Sequential` or `Functional`.
    pub class_name: String,
    /// Per-sample shape of the first input (no batch dimension).
    pub input_shape: Vec<usize>,
    /// Layers in Keras's `model.layers` order (nested models' layers at
    /// their model's place), which is the order of `model.weights`.
    pub layers: Vec<Layer>,
    /// The calls of the layers, in execution order.
    pub graph: Graph,
    /// What importing the file did that a user should know (a legacy or
    /// weights-only source, optimizer state that could not be mapped).
    pub notes: Vec<String>,
    source: KerasFile,
}

impl TryFrom<KerasFile> for Model {
    type Error = Error;

    fn try_from(file: KerasFile) -> Result<Self> {
        parse::parse_model(file)
    }
}

impl Model {
    /// Open and validate a model file: a `.keras` archive, an unzipped
    /// archive directory, a legacy HDF5 model, or weights only with the
    /// architecture beside them (see [`Model::open_with`]).
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// The archive this model was read from (weights as read, not as trained).
    pub fn source(&self) -> &KerasFile {
        &self.source
    }

    /// Per-sample shape of the first output.
    pub fn output_shape(&self) -> &[usize] {
        self.graph
            .outputs
            .first()
            .map_or(&self.input_shape[..], |&n| {
                &self.graph.nodes[n].output_shape[..]
            })
    }

    /// True when the model is a chain of the Dense fast path's layers
    /// (`InputLayer`, `Dense`, `Activation`, `Dropout`, `Flatten`), each
    /// called once on the previous one's output, in `layers` order: such
    /// models run on the Dense engine (`engine::forward`, `engine::backward`);
    /// every other model on the graph engine (`engine::graph`).
    pub fn is_chain(&self) -> bool {
        let g = &self.graph;
        g.inputs.len() == 1
            && g.outputs.len() == 1
            && g.outputs[0] + 1 == g.nodes.len()
            && self
                .layers
                .iter()
                .all(|l| !matches!(l.kind, LayerKind::Op(_)))
            && g.nodes.iter().enumerate().all(|(i, n)| {
                let offset = usize::from(g.nodes[0].layer.is_none());
                (i == 0 || n.inputs == [i - 1]) && n.layer.is_none_or(|l| l + offset == i)
            })
            && g.nodes.len() == self.layers.len() + usize::from(g.nodes[0].layer.is_none())
    }

    /// Check the ids given to model input `slot` when an `Embedding` reads
    /// it: every value must be an integer in `[0, input_dim)`; the error
    /// names the input, the row, the position and the id.
    pub fn check_ids(&self, slot: usize, x: ndarray::ArrayViewD<'_, f32>) -> Result<()> {
        let g = &self.graph;
        let Some(&node) = g.inputs.get(slot) else {
            return Ok(());
        };
        let name = g.input_names.get(slot).map_or("input", String::as_str);
        for reader in g.nodes.iter().filter(|n| n.inputs.contains(&node)) {
            let Some(layer) = reader.layer.map(|l| &self.layers[l]) else {
                continue;
            };
            let vocab = match layer.op() {
                Some(op) if layer.class_name == "Embedding" => {
                    op.vars().first().map_or(0, |v| v.value.shape()[0])
                }
                _ => continue,
            };
            let per_row = x.shape()[1..].iter().product::<usize>().max(1);
            for (i, &v) in x.iter().enumerate() {
                if v.fract() == 0.0 && v >= 0.0 && (v as f64) < vocab as f64 {
                    continue;
                }
                let what = if v.is_finite() && v.fract() == 0.0 {
                    "is outside the vocabulary"
                } else {
                    "is not an integer id"
                };
                return Err(Error::invalid(format!(
                    "input `{name}` row {} (position {}): id {v} {what} of `Embedding` layer `{}` \
                     (ids must be integers in [0, {vocab}))",
                    i / per_row,
                    i % per_row,
                    layer.name
                )));
            }
        }
        Ok(())
    }

    /// Total number of scalar weights (Keras's `count_params()`).
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(Layer::param_count).sum()
    }

    /// Number of trainable scalar weights.
    pub fn trainable_param_count(&self) -> usize {
        self.layers.iter().map(Layer::trainable_param_count).sum()
    }

    /// The compile configuration, if the model was saved compiled.
    pub fn compile_info(&self) -> Option<CompileInfo> {
        self.source
            .config
            .get("compile_config")
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
            .map(CompileInfo::from_config)
    }

    /// The optimizer state stored in the weights file, if any.
    pub fn optimizer_state(&self) -> Option<OptimizerState> {
        OptimizerState::from_weights(&self.source.weights)
    }

    /// The config entry (`{"class_name", "config", ...}`) of a layer.
    pub fn layer_config(&self, layer: &Layer) -> Option<&Value> {
        self.source.config.pointer(&layer.config_pointer)
    }

    /// The layer's inner `config` object, mutably, for changes that must be
    /// recorded in the written `config.json`.
    pub fn layer_config_mut(&mut self, index: usize) -> Option<&mut Value> {
        let pointer = self.layers.get(index)?.config_pointer.clone();
        self.source.config.pointer_mut(&pointer)?.get_mut("config")
    }

    /// Freeze or unfreeze the layer called `name`; the written config
    /// records it (`"trainable": false`).
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        let index = self
            .layers
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
                Error::missing(format!("layer `{name}` (layers: {})", names.join(", ")))
            })?;
        self.layers[index].trainable = trainable;
        if let Some(op) = self.layers[index].op_mut() {
            op.set_trainable(trainable);
        }
        if let Some(Value::Object(cfg)) = self.layer_config_mut(index) {
            cfg.insert("trainable".into(), Value::Bool(trainable));
        }
        Ok(())
    }

    /// Set (or clear) the kernel regularizer of the layer at `index` (Dense,
    /// convolutions, recurrent layers and their wrappers; an `Embedding`'s
    /// `embeddings_regularizer`); the written config records it, so Keras
    /// sees the same model.
    pub fn set_kernel_regularizer(&mut self, index: usize, reg: Option<Regularizer>) -> Result<()> {
        let layer = &mut self.layers[index];
        let class = layer.class_name.clone();
        // The config keys of the kernels' regularizers (Keras's names).
        let mut keys: Vec<&'static str> = Vec::new();
        if let Some(op) = layer.op_mut() {
            for var in op.vars_mut() {
                let key = match var.role {
                    "kernel" if class.starts_with("Depthwise") => "depthwise_regularizer",
                    "kernel" => "kernel_regularizer",
                    "depthwise_kernel" => "depthwise_regularizer",
                    "pointwise_kernel" => "pointwise_regularizer",
                    "embeddings" => "embeddings_regularizer",
                    _ => continue,
                };
                var.regularizer = reg;
                keys.push(key);
            }
            if keys.is_empty() {
                return Err(Error::invalid(format!(
                    "`{class}` layer `{}` has no kernel",
                    layer.name
                )));
            }
        } else {
            let dense = layer.dense_mut().ok_or_else(|| {
                Error::invalid("only Dense and convolution layers have a kernel regularizer")
            })?;
            dense.kernel_regularizer = reg;
            keys.push("kernel_regularizer");
        }
        if let Some(Value::Object(cfg)) = self.layer_config_mut(index) {
            // Wrappers keep the options in their wrapped layers' configs.
            let wrapped: Vec<&str> = match class.as_str() {
                "Bidirectional" => vec!["layer", "backward_layer"],
                "TimeDistributed" => vec!["layer"],
                _ => Vec::new(),
            };
            let mut targets: Vec<&mut serde_json::Map<String, Value>> = Vec::new();
            if wrapped.is_empty() {
                targets.push(cfg);
            } else {
                for (name, inner) in cfg.iter_mut() {
                    if wrapped.contains(&name.as_str())
                        && let Some(Value::Object(c)) = inner.get_mut("config")
                    {
                        targets.push(c);
                    }
                }
            }
            keys.sort_unstable();
            keys.dedup();
            for target in targets {
                for key in &keys {
                    target.insert(
                        (*key).into(),
                        reg.map_or(Value::Null, Regularizer::to_config),
                    );
                }
            }
        }
        Ok(())
    }

    /// Variable `index` (`vars/index`) of layer `layer` as the archive
    /// stores it, if it does.
    pub fn stored_variable(
        &self,
        layer: usize,
        index: usize,
    ) -> Option<&crate::archive::H5Dataset> {
        let path = self.layers.get(layer)?.weight_path.as_ref()?;
        self.source
            .weights
            .group(&format!("{path}/vars"))?
            .dataset(&index.to_string())
    }

    /// Replace the stored optimizer state (`optimizer/vars/0..n`), keeping
    /// the group's `name` attribute Keras writes.
    pub fn set_optimizer_state(
        &mut self,
        name: &str,
        variables: Vec<crate::archive::H5Dataset>,
    ) -> Result<()> {
        self.set_optimizer_state_at("optimizer/vars", name, variables)
    }

    /// Replace the optimizer variables stored in the group at `path` (a
    /// `LossScaleOptimizer` also stores its inner optimizer's under
    /// `optimizer/inner_optimizer/vars`).
    pub fn set_optimizer_state_at(
        &mut self,
        path: &str,
        name: &str,
        variables: Vec<crate::archive::H5Dataset>,
    ) -> Result<()> {
        use crate::archive::H5Node;
        let vars = self.source.weights.ensure_group(path)?;
        vars.children = variables
            .into_iter()
            .enumerate()
            .map(|(i, d)| (i.to_string(), H5Node::Dataset(d)))
            .collect();
        vars.set_attr("name", hdf5_pure::AttrValue::VarLenString(name.to_string()));
        Ok(())
    }

    /// Replace the `compile_config` written to `config.json`.
    pub fn set_compile_config(&mut self, compile_config: Value) {
        if let Value::Object(root) = &mut self.source.config {
            root.insert("compile_config".into(), compile_config);
        }
    }

    /// The archive to write: the source archive with this model's current
    /// weights in place.
    pub fn to_keras_file(&self) -> Result<KerasFile> {
        let mut file = self.source.clone();
        for layer in &self.layers {
            if let (Some(path), Some(op)) = (&layer.weight_path, layer.op()) {
                for (i, var) in op.vars().iter().enumerate() {
                    let rel = op.var_path(i);
                    let at = format!("{path}/{rel}");
                    let values: Vec<f32> = var.value.iter().copied().collect();
                    let (group, name) = at.rsplit_once('/').unwrap_or(("", &at));
                    let ds = file
                        .weights
                        .group_mut(group)
                        .and_then(|g| g.dataset_mut(name))
                        .ok_or_else(|| Error::missing("weight").at(at.clone()))?;
                    if !var.trainable && !ds.is_float() {
                        // Integer state (a counter) kerasrs never changes.
                        continue;
                    }
                    ds.set_f32(&values).map_err(|e| e.at(at.clone()))?;
                }
                continue;
            }
            let (Some(path), Some(dense)) = (&layer.weight_path, layer.dense()) else {
                continue;
            };
            let vars_path = format!("{path}/vars");
            let vars = file
                .weights
                .group_mut(&vars_path)
                .ok_or_else(|| Error::missing("weights group").at(vars_path.clone()))?;
            let mut put = |index: &str, values: Vec<f32>| -> Result<()> {
                vars.dataset_mut(index)
                    .ok_or_else(|| Error::missing("weight").at(format!("{vars_path}/{index}")))?
                    .set_f32(&values)
                    .map_err(|e| e.at(format!("{vars_path}/{index}")))
            };
            put("0", dense.kernel.iter().copied().collect())?;
            if let Some(bias) = &dense.bias {
                put("1", bias.to_vec())?;
            }
        }
        Ok(file)
    }

    /// The names of the model's input features (the columns of the CSV it
    /// was trained on, or `--feature-names`), recorded in the archive member
    /// [`KERASRS_MEMBER`], which Keras ignores. `None` when the archive has
    /// none, or they do not fit the model's input (one input of one axis,
    /// one name per column).
    pub fn feature_names(&self) -> Option<Vec<String>> {
        let member = self
            .source
            .members
            .iter()
            .find(|m| m.name == KERASRS_MEMBER && !m.is_dir)?;
        let v: Value = serde_json::from_slice(&member.data).ok()?;
        let names: Vec<String> = v
            .get("feature_names")?
            .as_array()?
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect::<Option<_>>()?;
        (self.feature_width() == Some(names.len())).then_some(names)
    }

    /// The number of input columns feature names describe: the width of a
    /// model with one input of one axis.
    pub fn feature_width(&self) -> Option<usize> {
        match self.graph.input_shapes()[..] {
            [[width]] => Some(*width),
            _ => None,
        }
    }

    /// Record (or, with `None`, remove) the input feature names in the
    /// archive member [`KERASRS_MEMBER`]; there must be one per input column.
    pub fn set_feature_names(&mut self, names: Option<&[String]>) -> Result<()> {
        let members = &mut self.source.members;
        let Some(names) = names else {
            members.retain(|m| m.name != KERASRS_MEMBER);
            return Ok(());
        };
        match self.feature_width() {
            Some(width) if width == names.len() => {}
            Some(width) => {
                return Err(Error::mismatch(
                    format!("{width} feature names (one per input column)"),
                    format!("{} names", names.len()),
                ));
            }
            None => {
                return Err(Error::invalid(format!(
                    "feature names describe the columns of a model with one input of one                      axis; this one takes {}",
                    self.graph
                        .input_shapes()
                        .iter()
                        .map(|s| crate::model::layers::keras_shape(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let data = serde_json::to_vec_pretty(&serde_json::json!({ "feature_names": names }))
            .map_err(Error::json)?;
        let members = &mut self.source.members;
        match members.iter_mut().find(|m| m.name == KERASRS_MEMBER) {
            Some(m) => {
                m.data = data;
                m.is_dir = false;
            }
            None => members.push(crate::archive::Member {
                name: KERASRS_MEMBER.into(),
                compression: zip::CompressionMethod::Deflated,
                modified: None,
                data,
                is_dir: false,
            }),
        }
        Ok(())
    }

    /// Write the model to `path` atomically.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        self.to_keras_file()?
            .save(path)
            .map_err(|e| e.in_file(path))
    }
}
