//! Typed layers. Each layer keeps the index of its original config entry; the
//! config `Value` itself stays in the archive so unknown keys pass through.
//!
//! Spec: `keras/src/layers/core/dense.py`, `layers/core/input_layer.py`,
//! `layers/regularization/dropout.py`, `layers/activations/activation.py`,
//! `layers/reshaping/flatten.py`.

use super::activation::Activation;
use super::constraint::Constraint;
use super::layers::LayerOp;
use super::regularizer::Regularizer;
use crate::error::{Error, Result};
use ndarray::{Array1, Array2};

/// Layer classes kerasrs understands (Keras class names).
pub const LAYER_CLASSES: &[&str] = &["InputLayer", "Dense", "Dropout", "Activation", "Flatten"];

/// A layer of a model, in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The layer's `name` from its config.
    pub name: String,
    /// The Keras class name.
    pub class_name: String,
    /// Whether its weights are trained (`trainable` in config, and the model's).
    pub trainable: bool,
    /// Where its variables live in `model.weights.h5` (`layers/dense_1`), or
    /// `None` for a layer Keras saves no variables for.
    pub weight_path: Option<String>,
    /// JSON pointer to its entry (`{"class_name", "config", ...}`) in
    /// `config.json` (`/config/layers/3`, or deeper for nested models).
    pub config_pointer: String,
    /// The nested models (`Sequential`/`Functional` called as layers) the
    /// layer belongs to, outermost first; empty for the model's own layers.
    pub scope: Vec<String>,
    /// Per-sample input shape (no batch dimension) of its first call.
    pub input_shape: Vec<usize>,
    /// Per-sample output shape (no batch dimension) of its first call.
    pub output_shape: Vec<usize>,
    /// What the layer does, with its parameters.
    pub kind: LayerKind,
}

/// The closed set of supported layers.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// `InputLayer`: the model's input, no computation.
    Input,
    /// `Dense`: `activation(x @ kernel + bias)` on the last axis.
    Dense(Box<Dense>),
    /// `Dropout`: identity at inference.
    Dropout {
        /// Fraction of units dropped during training.
        rate: f64,
    },
    /// `Activation`: an activation function on its own.
    Activation(Activation),
    /// `Flatten`: collapse all per-sample axes into one.
    Flatten,
    /// Any other layer, through the [`LayerOp`] trait (`model::layers`).
    Op(Box<dyn LayerOp>),
}

/// A Dense layer's configuration and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Output width.
    pub units: usize,
    /// Activation applied after the affine map.
    pub activation: Activation,
    /// Kernel `[input, units]`, float32.
    pub kernel: Array2<f32>,
    /// Bias `[units]` when `use_bias` is true.
    pub bias: Option<Array1<f32>>,
    /// Penalty on the kernel.
    pub kernel_regularizer: Option<Regularizer>,
    /// Penalty on the bias.
    pub bias_regularizer: Option<Regularizer>,
    /// Penalty on the layer's output.
    pub activity_regularizer: Option<Regularizer>,
    /// Constraint applied to the kernel after each update.
    pub kernel_constraint: Option<Constraint>,
    /// Constraint applied to the bias after each update.
    pub bias_constraint: Option<Constraint>,
}

impl Layer {
    /// Number of scalar parameters (weights) the layer holds.
    pub fn param_count(&self) -> usize {
        match &self.kind {
            LayerKind::Dense(d) => d.kernel.len() + d.bias.as_ref().map_or(0, |b| b.len()),
            LayerKind::Op(op) => op.vars().iter().map(|v| v.value.len()).sum(),
            _ => 0,
        }
    }

    /// Number of scalar weights Keras counts as trainable (`trainable_weights`).
    pub fn trainable_param_count(&self) -> usize {
        if !self.trainable {
            return 0;
        }
        match &self.kind {
            LayerKind::Op(op) => op
                .vars()
                .iter()
                .filter(|v| v.trainable)
                .map(|v| v.value.len())
                .sum(),
            _ => self.param_count(),
        }
    }

    /// The layer's [`LayerOp`], for layers implemented through it.
    pub fn op(&self) -> Option<&dyn LayerOp> {
        match &self.kind {
            LayerKind::Op(op) => Some(op.as_ref()),
            _ => None,
        }
    }

    /// The layer's [`LayerOp`], mutably.
    pub fn op_mut(&mut self) -> Option<&mut Box<dyn LayerOp>> {
        match &mut self.kind {
            LayerKind::Op(op) => Some(op),
            _ => None,
        }
    }

    /// Output shape (per sample) of a call on inputs of these shapes.
    pub fn output_shape_for(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let one = || match inputs {
            [one] => Ok(one),
            _ => Err(Error::mismatch(
                format!("one input for `{}`", self.class_name),
                inputs.len(),
            )),
        };
        Ok(match &self.kind {
            LayerKind::Input => one()?.clone(),
            LayerKind::Dense(d) => {
                let input = one()?;
                let mut out = input.clone();
                match out.last_mut() {
                    Some(last) if *last == d.kernel.nrows() => {
                        *last = d.activation.output_width(d.units)?;
                    }
                    _ => {
                        return Err(Error::mismatch(
                            format!(
                                "an input whose last axis is {} (the kernel's rows)",
                                d.kernel.nrows()
                            ),
                            format!("{input:?}"),
                        ));
                    }
                }
                out
            }
            LayerKind::Dropout { .. } => one()?.clone(),
            LayerKind::Activation(a) => {
                let mut out = one()?.clone();
                if let Some(w) = out.last_mut() {
                    *w = a.output_width(*w)?;
                }
                out
            }
            LayerKind::Flatten => {
                let n = one()?
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .filter(|&n| n as u64 <= 1 << 31)
                    .ok_or_else(|| Error::limit("max_dim", format!("flattened {inputs:?}")))?;
                vec![n]
            }
            LayerKind::Op(op) => op.output_shape(inputs)?,
        })
    }

    /// Output shapes (per sample) of a call: one per output.
    pub fn output_shapes_for(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        match &self.kind {
            LayerKind::Op(op) => op.output_shapes(inputs),
            _ => Ok(vec![self.output_shape_for(inputs)?]),
        }
    }

    /// The activation of the layer, if it has one.
    pub fn activation(&self) -> Option<Activation> {
        match &self.kind {
            LayerKind::Dense(d) => Some(d.activation),
            LayerKind::Activation(a) => Some(*a),
            _ => None,
        }
    }

    /// The Dense parameters, if this is a Dense layer.
    pub fn dense(&self) -> Option<&Dense> {
        match &self.kind {
            LayerKind::Dense(d) => Some(d),
            _ => None,
        }
    }

    /// The Dense parameters, mutably.
    pub fn dense_mut(&mut self) -> Option<&mut Dense> {
        match &mut self.kind {
            LayerKind::Dense(d) => Some(d),
            _ => None,
        }
    }
}

/// Keras's `naming.to_snake_case` (`keras/src/utils/naming.py`): the class
/// name part of weight paths such as `layers/input_layer`.
pub fn to_snake_case(name: &str) -> String {
    // re.sub(r"\W+", "", name)
    let chars: Vec<char> = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    let mut step1 = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if i + 2 <= chars.len()
            && i > 0
            && c.is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())
        {
            step1.push('_');
        }
        step1.push(c);
        i += 1;
    }
    // re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    let s: Vec<char> = step1.chars().collect();
    let mut out = String::new();
    for (j, &c) in s.iter().enumerate() {
        if j > 0 && s[j - 1].is_ascii_lowercase() && c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c);
    }
    out.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::to_snake_case;

    #[test]
    fn snake_case_matches_keras() {
        // Expected strings: keras.src.utils.naming.to_snake_case(<name>) in Keras 3.15.1.
        assert_eq!(to_snake_case("Dense"), "dense");
        assert_eq!(to_snake_case("InputLayer"), "input_layer");
        assert_eq!(to_snake_case("L1L2"), "l1l2");
        assert_eq!(to_snake_case("Conv2DTranspose"), "conv2d_transpose");
        assert_eq!(to_snake_case("ReLU"), "re_lu");
        assert_eq!(to_snake_case("BatchNormalization"), "batch_normalization");
        assert_eq!(to_snake_case("ABcDe"), "a_bc_de");
        assert_eq!(to_snake_case("Foo_Bar"), "foo__bar");
        assert_eq!(to_snake_case("HTTPServerX"), "http_server_x");
    }
}
