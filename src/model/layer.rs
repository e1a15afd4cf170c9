//! Typed layers. Each layer keeps the index of its original config entry; the
//! config `Value` itself stays in the archive so unknown keys pass through.
//!
//! Spec: `keras/src/layers/core/dense.py`, `layers/core/input_layer.py`,
//! `layers/regularization/dropout.py`, `layers/activations/activation.py`,
//! `layers/reshaping/flatten.py`.

use super::activation::Activation;
use super::constraint::Constraint;
use super::regularizer::Regularizer;
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
    /// Index of its entry in the config's `layers` list.
    pub config_index: usize,
    /// Per-sample input shape (no batch dimension).
    pub input_shape: Vec<usize>,
    /// Per-sample output shape (no batch dimension).
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
            _ => 0,
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
