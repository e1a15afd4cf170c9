//! Layers beyond the Dense chain: one file per layer family, each layer a
//! type implementing [`LayerOp`] (its config, shapes, variables, forward and
//! backward), and one registry ([`REGISTRY`]) from Keras class names.
//!
//! Adding a layer means writing its type in the family's file and adding
//! one line to [`REGISTRY`]: import, shape inference, the graph executor,
//! the optimizer, regularizers, constraints, the summary and the archive
//! writer all work through the trait and the variables it exposes.
//!
//! Tensors carry the batch axis first (`[n, ...]`, channels last as Keras);
//! shapes given to and returned by [`LayerOp::output_shape`] are per-sample
//! (no batch axis).

pub mod activations;
pub mod applications;
pub mod attention;
pub mod conv;
pub mod dot_attention;
pub mod einsum;
pub mod embedding;
pub mod merge;
pub mod noise;
pub mod norm;
pub mod ops;
pub mod pool;
pub mod preprocessing;
pub mod reshape;
pub mod rnn;
pub mod spatial;
pub mod wrappers;

use std::any::Any;
use std::fmt;

use ndarray::ArrayD;
use rand::RngCore;
use serde_json::{Map, Value};

use super::constraint::Constraint;
use super::regularizer::Regularizer;
use crate::error::{Error, Result};

/// What a variable is to its layer (Keras's variable names).
pub type Role = &'static str;

/// One variable of a layer, in the layer's `weights` order (which is the
/// order of `vars/0`, `vars/1`, ... in `model.weights.h5`).
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    /// Keras's name for it (`gamma`, `moving_mean`, `alpha`, ...).
    pub role: Role,
    /// Current value (float32, C order).
    pub value: ArrayD<f32>,
    /// False for state Keras does not train (BatchNormalization's moving
    /// statistics); the layer's `trainable` flag applies on top.
    pub trainable: bool,
    /// Weight penalty.
    pub regularizer: Option<Regularizer>,
    /// Projection applied after each optimizer update.
    pub constraint: Option<Constraint>,
}

impl Var {
    /// A trainable variable without penalty or constraint.
    pub fn new(role: Role, value: ArrayD<f32>) -> Self {
        Var {
            role,
            value,
            trainable: true,
            regularizer: None,
            constraint: None,
        }
    }

    /// A non-trainable variable (state).
    pub fn state(role: Role, value: ArrayD<f32>) -> Self {
        Var {
            trainable: false,
            ..Var::new(role, value)
        }
    }
}

/// Whether a call is for training (`training=True` in Keras) or inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `training=False`: noise layers are the identity, BatchNormalization
    /// uses its moving statistics.
    Inference,
    /// `training=True`.
    Training,
}

/// Per-call context: the mode and the random source of noise layers.
pub struct Ctx<'a> {
    /// Training or inference.
    pub mode: Mode,
    /// Random numbers for dropout and noise (seeded by the caller; Keras's
    /// random stream cannot be reproduced).
    pub rng: &'a mut dyn RngCore,
}

impl Ctx<'_> {
    /// True in training mode.
    pub fn training(&self) -> bool {
        self.mode == Mode::Training
    }
}

/// Values a layer keeps from its forward pass for its backward pass.
pub type Saved = Option<Box<dyn Any + Send + Sync>>;

/// A Keras mask (`_keras_mask`): one flag per sample and timestep (the
/// output's shape without its last axis), `true` where the step is kept.
pub type Mask = ArrayD<bool>;

/// The result of a forward call.
pub struct Forward {
    /// The output, `[n, ...]` (the first output of a layer with several).
    pub y: ArrayD<f32>,
    /// Outputs after the first (an RNN's states with `return_state`).
    pub extra: Vec<ArrayD<f32>>,
    /// What the backward pass needs besides inputs and output.
    pub saved: Saved,
    /// New values of non-trainable variables (by index into
    /// [`LayerOp::vars`]), applied after the optimizer step as Keras's JAX
    /// trainer does.
    pub updates: Vec<(usize, ArrayD<f32>)>,
}

impl Forward {
    /// An output with nothing saved and no state updates.
    pub fn plain(y: ArrayD<f32>) -> Self {
        Forward {
            y,
            extra: Vec::new(),
            saved: None,
            updates: Vec::new(),
        }
    }
}

/// One per-sample shape, as the single-input layers here take.
pub fn single_shape<'a>(inputs: &'a [Vec<usize>], class: &str) -> Result<&'a [usize]> {
    match inputs {
        [one] => Ok(one),
        more => Err(Error::mismatch(
            format!("one input for `{class}`"),
            format!("{} inputs", more.len()),
        )),
    }
}

/// Gradients from a backward call.
pub struct Backward {
    /// Gradient for each input (same shapes as the inputs).
    pub inputs: Vec<ArrayD<f32>>,
    /// Gradient for each variable (by index into [`LayerOp::vars`]), `None`
    /// for variables without one (state).
    pub vars: Vec<Option<ArrayD<f32>>>,
}

impl Backward {
    /// Input gradients of a layer without variables.
    pub fn inputs(inputs: Vec<ArrayD<f32>>) -> Self {
        Backward {
            inputs,
            vars: Vec::new(),
        }
    }
}

/// A layer kerasrs can run inside a graph.
pub trait LayerOp: fmt::Debug + Send + Sync {
    /// Output shape (per sample) for these input shapes (per sample).
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>>;

    /// Output shapes (per sample) of a layer with several outputs; the
    /// first is [`LayerOp::output_shape`].
    fn output_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        Ok(vec![self.output_shape(inputs)?])
    }

    /// Whether the layer passes a mask on (Keras's `supports_masking` with
    /// the default `compute_mask`, which returns the first input's mask).
    /// Layers that do not are where a mask ends, as in Keras.
    fn supports_masking(&self) -> bool {
        false
    }

    /// The masks of the outputs (one per output) given the inputs and their
    /// masks (`keras/src/layers/layer.py` `_set_mask_metadata`: the mask of
    /// the first input argument goes to `compute_mask`). The default passes
    /// the first input's mask to the first output when the layer
    /// [`supports_masking`](LayerOp::supports_masking).
    fn compute_mask(
        &self,
        _x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        let first = if self.supports_masking() {
            masks.first().copied().flatten().cloned()
        } else {
            None
        };
        Ok(vec![first])
    }

    /// The forward pass with the inputs' masks (the `mask` argument of
    /// Keras's `call`); layers that read masks override it.
    fn forward_masked(
        &self,
        x: &[&ArrayD<f32>],
        _masks: &[Option<&Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<Forward> {
        self.forward(x, cx)
    }

    /// The backward pass of a layer with several outputs: `dys[k]` is the
    /// gradient for output `k` (`None` where no loss depends on it), `ys`
    /// the outputs. The default is [`LayerOp::backward`] on the first.
    fn backward_multi(
        &self,
        x: &[&ArrayD<f32>],
        ys: &[&ArrayD<f32>],
        saved: &Saved,
        dys: Vec<Option<ArrayD<f32>>>,
        inputs_needed: bool,
    ) -> Result<Backward> {
        let y = ys[0];
        let dy = dys
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_else(|| ArrayD::zeros(y.raw_dim()));
        if inputs_needed {
            self.backward(x, y, saved, dy)
        } else {
            self.backward_vars(x, y, saved, dy)
        }
    }

    /// Where variable `i` lives under the layer's group in
    /// `model.weights.h5` (`vars/0`; an RNN's `cell/vars/0`).
    fn var_path(&self, i: usize) -> String {
        format!("vars/{i}")
    }

    /// For kernel variable `i` whose layout is not Dense's or a
    /// convolution's `(…, in, out)`: its input-channel axis and its
    /// output-channel axes `start..end`, for the sparsity report's
    /// per-channel columns and structured pruning (an attention layer's
    /// `[features, heads, head size]` kernels).
    fn channel_axes(&self, _i: usize) -> Option<(usize, (usize, usize))> {
        None
    }

    /// The sublayer variable `i` belongs to, as Keras's variable path
    /// names it (`query` in `mha/query/kernel`); `None` for the layer's own.
    fn var_scope(&self, _i: usize) -> Option<&'static str> {
        None
    }

    /// The layer's variables in Keras's `weights` order.
    fn vars(&self) -> &[Var] {
        &[]
    }

    /// The variables, mutably (the optimizer and constraints write them).
    fn vars_mut(&mut self) -> &mut [Var] {
        &mut []
    }

    /// The forward pass on `[n, ...]` inputs.
    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward>;

    /// The backward pass: `dy` is the gradient of the loss with respect to
    /// the output of the forward call that produced `y` and `saved`.
    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward>;

    /// The backward pass when no input needs a gradient (the layer reads
    /// model inputs only): only [`Backward::vars`] is used, so a layer may
    /// skip computing input gradients (a first convolution's is as costly
    /// as its kernel gradient).
    fn backward_vars(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.backward(x, y, saved, dy)
    }

    /// The layer was frozen or unfrozen (its `trainable` flag, which for
    /// BatchNormalization also selects inference-mode statistics).
    fn set_trainable(&mut self, _trainable: bool) {}

    /// Penalty on the output (`activity_regularizer`), if any.
    fn activity_regularizer(&self) -> Option<Regularizer> {
        None
    }

    /// Extra detail for the summary (a rate, an axis).
    fn detail(&self) -> Option<String> {
        None
    }

    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn LayerOp>;
}

impl Clone for Box<dyn LayerOp> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl PartialEq for Box<dyn LayerOp> {
    fn eq(&self, other: &Self) -> bool {
        // Layers of the same class with the same variables and options
        // print alike; arrays are compared in full below.
        format!("{self:?}") == format!("{other:?}")
            && self.vars().len() == other.vars().len()
            && self
                .vars()
                .iter()
                .zip(other.vars())
                .all(|(a, b)| a.value == b.value)
    }
}

/// What a layer's builder gets: its config and input shapes, and access to
/// its stored variables.
pub struct BuildCx<'a> {
    /// Keras class name.
    pub class_name: &'a str,
    /// The layer's name.
    pub name: &'a str,
    /// The layer's inner `config` object.
    pub config: &'a Map<String, Value>,
    /// Per-sample input shapes of the first call.
    pub inputs: &'a [Vec<usize>],
    /// The stored variables (`vars/0`, `vars/1`, ...) with their shapes;
    /// empty when the weights file has none for this layer.
    pub stored: &'a [(Vec<usize>, Vec<f32>)],
    /// Where the layer's variables live (`layers/batch_normalization/vars`).
    pub vars_path: &'a str,
    /// The layer's group in the weights file, for layers whose variables
    /// live deeper (`cell/vars`, `forward_layer/cell/vars`).
    pub group: Option<&'a crate::archive::H5Group>,
}

impl<'a> BuildCx<'a> {
    /// The config value of `key`, `Null` when absent.
    pub fn get(&self, key: &str) -> &'a Value {
        self.config.get(key).unwrap_or(&Value::Null)
    }

    /// A float option with a default.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            Value::Null => Ok(default),
            v => v
                .as_f64()
                .ok_or_else(|| Error::mismatch(format!("a number for `{key}`"), v)),
        }
    }

    /// A boolean option with a default.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Value::Null => Ok(default),
            v => v
                .as_bool()
                .ok_or_else(|| Error::mismatch(format!("a boolean for `{key}`"), v)),
        }
    }

    /// An integer option (possibly negative) with a default.
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64> {
        match self.get(key) {
            Value::Null => Ok(default),
            v => v
                .as_i64()
                .ok_or_else(|| Error::mismatch(format!("an integer for `{key}`"), v)),
        }
    }

    /// The single input's shape (layers that take one input).
    pub fn input(&self) -> Result<&'a [usize]> {
        match self.inputs {
            [one] => Ok(one),
            more => Err(Error::mismatch(
                format!("one input for `{}`", self.class_name),
                format!("{} inputs", more.len()),
            )),
        }
    }

    /// A regularizer option.
    pub fn regularizer(&self, key: &str) -> Result<Option<Regularizer>> {
        Regularizer::from_config(self.get(key)).map_err(|e| e.at(key.to_string()))
    }

    /// A constraint option.
    pub fn constraint(&self, key: &str) -> Result<Option<Constraint>> {
        Constraint::from_config(self.get(key)).map_err(|e| e.at(key.to_string()))
    }

    /// The same layer config seen from a sub-layer (`cell`, `forward_layer`,
    /// `layer`): its own config and class, the stored variables under
    /// `sub/vars` of this layer's group.
    pub fn sub<R>(
        &self,
        class_name: &str,
        config: &Map<String, Value>,
        sub: &str,
        inputs: &[Vec<usize>],
        f: impl FnOnce(&BuildCx<'_>) -> Result<R>,
    ) -> Result<R> {
        let base = self
            .vars_path
            .strip_suffix("/vars")
            .unwrap_or(self.vars_path);
        let vars_path = format!("{base}/{sub}/vars");
        let group = self.group.and_then(|g| g.group(sub));
        let stored = match (self.group, group.and_then(|g| g.group("vars"))) {
            (_, Some(vars)) => read_stored(vars, &vars_path)?,
            // No weights group at all (a layer built in memory): the
            // variables given to this layer, split between the forward and
            // backward layers of a wrapper.
            (None, None) => {
                let half = self.stored.len() / 2;
                match sub {
                    "forward_layer" => self.stored[..half].to_vec(),
                    "backward_layer" => self.stored[half..].to_vec(),
                    _ => self.stored.to_vec(),
                }
            }
            (Some(_), None) => Vec::new(),
        };
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(self.name)
            .to_string();
        f(&BuildCx {
            class_name,
            name: &name,
            config,
            inputs,
            stored: &stored,
            vars_path: &vars_path,
            group,
        })
    }

    /// The stored variables, which must be exactly `expected` (shapes in
    /// order); an error names the weight path, what was expected and found.
    pub fn take_vars(&self, expected: &[(Role, Vec<usize>)]) -> Result<Vec<ArrayD<f32>>> {
        if self.stored.len() != expected.len() {
            return Err(Error::mismatch(
                format!(
                    "{} variables for `{}` layer `{}` ({})",
                    expected.len(),
                    self.class_name,
                    self.name,
                    expected
                        .iter()
                        .map(|(r, s)| format!("{r} {s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                self.stored.len(),
            )
            .at(self.vars_path.to_string())
            .in_member("model.weights.h5"));
        }
        expected
            .iter()
            .zip(self.stored)
            .enumerate()
            .map(|(i, ((role, shape), (found, values)))| {
                if found != shape {
                    return Err(Error::mismatch(
                        format!("{role} of shape {shape:?}"),
                        format!("shape {found:?}"),
                    )
                    .at(format!("{}/{i}", self.vars_path))
                    .in_member("model.weights.h5"));
                }
                ArrayD::from_shape_vec(shape.clone(), values.clone())
                    .map_err(|e| Error::invalid(e.to_string()))
            })
            .collect()
    }
}

/// The float32 datasets `0`, `1`, ... of a `vars` group with their shapes.
pub fn read_stored(
    vars: &crate::archive::H5Group,
    path: &str,
) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    let mut out = Vec::with_capacity(vars.children.len());
    for i in 0..vars.children.len() {
        let at = format!("{path}/{i}");
        let ds = vars.dataset(&i.to_string()).ok_or_else(|| {
            Error::missing("weight dataset")
                .at(at.clone())
                .in_member("model.weights.h5")
        })?;
        let shape: Vec<usize> = ds
            .shape
            .iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d <= 1 << 31))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::limit("max_dim", format!("shape {:?}", ds.shape))
                    .at(at.clone())
                    .in_member("model.weights.h5")
            })?;
        let values = ds
            .to_f32()
            .map_err(|e| e.at(at.clone()).in_member("model.weights.h5"))?;
        out.push((shape, values));
    }
    Ok(out)
}

/// The key under which a layer's builder finds the non-tensor keyword
/// arguments of its call (`use_causal_mask`, `return_attention_scores`),
/// added to the config it is given (not to the config written back).
pub const CALL_KWARGS: &str = "__call_kwargs";

/// Builds a layer from its config (Keras's `from_config` plus `build`).
pub type Builder = fn(&BuildCx<'_>) -> Result<Box<dyn LayerOp>>;

/// Keras class name → builder, for every layer implemented through
/// [`LayerOp`]. `Dense`, `Activation`, `Dropout`, `Flatten` and
/// `InputLayer` have their own fast path (see `model::layer`).
pub const REGISTRY: &[(&str, Builder)] = &[
    ("Add", merge::build),
    ("Subtract", merge::build),
    ("Multiply", merge::build),
    ("Average", merge::build),
    ("Maximum", merge::build),
    ("Minimum", merge::build),
    ("Concatenate", merge::build_concatenate),
    ("Dot", merge::build_dot),
    ("Embedding", embedding::build_embedding),
    ("EinsumDense", einsum::build_einsum_dense),
    ("MultiHeadAttention", attention::build_multi_head_attention),
    (
        "GroupQueryAttention",
        attention::build_grouped_query_attention,
    ),
    ("Attention", dot_attention::build_attention),
    ("AdditiveAttention", dot_attention::build_additive_attention),
    ("Masking", embedding::build_masking),
    ("SimpleRNN", rnn::build_rnn),
    ("LSTM", rnn::build_rnn),
    ("GRU", rnn::build_rnn),
    ("Bidirectional", wrappers::build_bidirectional),
    ("TimeDistributed", wrappers::build_time_distributed),
    ("Reshape", reshape::build_reshape),
    ("Permute", reshape::build_permute),
    ("RepeatVector", reshape::build_repeat_vector),
    ("Identity", reshape::build_identity),
    ("BatchNormalization", norm::build_batch_norm),
    ("LayerNormalization", norm::build_layer_norm),
    ("UnitNormalization", norm::build_unit_norm),
    ("ReLU", activations::build_relu),
    ("LeakyReLU", activations::build_leaky_relu),
    ("PReLU", activations::build_prelu),
    ("ELU", activations::build_elu),
    ("Softmax", activations::build_softmax),
    ("Conv1D", conv::build),
    ("Conv2D", conv::build),
    ("Conv3D", conv::build),
    ("DepthwiseConv1D", conv::build),
    ("DepthwiseConv2D", conv::build),
    ("SeparableConv1D", conv::build),
    ("SeparableConv2D", conv::build),
    ("Conv1DTranspose", conv::build),
    ("Conv2DTranspose", conv::build),
    ("Conv3DTranspose", conv::build),
    ("Normalization", preprocessing::build_normalization),
    ("LayerScale", applications::build_layer_scale),
    ("SpatialDropout1D", noise::build_spatial_dropout),
    ("SpatialDropout2D", noise::build_spatial_dropout),
    ("SpatialDropout3D", noise::build_spatial_dropout),
    ("GaussianNoise", noise::build_gaussian_noise),
    ("GaussianDropout", noise::build_gaussian_dropout),
    ("AlphaDropout", noise::build_alpha_dropout),
    ("Rescaling", preprocessing::build_rescaling),
    ("MaxPooling1D", pool::build_pooling),
    ("MaxPooling2D", pool::build_pooling),
    ("MaxPooling3D", pool::build_pooling),
    ("AveragePooling1D", pool::build_pooling),
    ("AveragePooling2D", pool::build_pooling),
    ("AveragePooling3D", pool::build_pooling),
    ("GlobalMaxPooling1D", pool::build_global_pooling),
    ("GlobalMaxPooling2D", pool::build_global_pooling),
    ("GlobalMaxPooling3D", pool::build_global_pooling),
    ("GlobalAveragePooling1D", pool::build_global_pooling),
    ("GlobalAveragePooling2D", pool::build_global_pooling),
    ("GlobalAveragePooling3D", pool::build_global_pooling),
    ("ZeroPadding1D", spatial::build_pad_crop),
    ("ZeroPadding2D", spatial::build_pad_crop),
    ("ZeroPadding3D", spatial::build_pad_crop),
    ("Cropping1D", spatial::build_pad_crop),
    ("Cropping2D", spatial::build_pad_crop),
    ("Cropping3D", spatial::build_pad_crop),
    ("UpSampling1D", spatial::build_up_sampling),
    ("UpSampling2D", spatial::build_up_sampling),
    ("UpSampling3D", spatial::build_up_sampling),
    ("Resizing", spatial::build_resizing),
    (
        "ActivityRegularization",
        noise::build_activity_regularization,
    ),
];

/// The builder for a class, if it is in the registry.
pub fn builder(class_name: &str) -> Option<Builder> {
    REGISTRY
        .iter()
        .find(|(name, _)| *name == class_name)
        .map(|(_, b)| *b)
}

/// Every class name in the registry.
pub fn registered_classes() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|(name, _)| *name)
}

/// Resolve a possibly negative `axis` of a tensor with `rank` axes
/// (including the batch axis) to an index; errors name the layer's option.
pub fn resolve_axis(axis: i64, rank: usize, what: &str) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::mismatch(
            format!("`{what}` within a tensor of rank {rank}"),
            axis,
        ));
    }
    Ok(a as usize)
}

/// A shape with the batch axis prepended.
pub fn with_batch(n: usize, shape: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(shape.len() + 1);
    s.push(n);
    s.extend_from_slice(shape);
    s
}

/// Keras's `(None, 3, 4)` notation of a per-sample shape.
pub fn keras_shape(shape: &[usize]) -> String {
    let mut parts = vec!["None".to_string()];
    parts.extend(shape.iter().map(usize::to_string));
    if parts.len() == 1 {
        "(None,)".into()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Implements [`LayerOp::clone_box`] for a `Clone` type.
#[macro_export]
#[doc(hidden)]
macro_rules! clone_box {
    () => {
        fn clone_box(&self) -> Box<dyn $crate::model::layers::LayerOp> {
            Box::new(self.clone())
        }
    };
}

#[cfg(test)]
pub(crate) mod check;
