//! Keras activations: every function that Keras 3.15.1 accepts as a string
//! `activation` on a `Dense` or `Activation` layer, forward and backward, in
//! `f32` like Keras.
//!
//! # Specification
//!
//! The formulas follow Keras 3.15.1 on the JAX backend (jax 0.10.2). Paths below
//! are relative to `site-packages/`:
//!
//! * `keras/src/activations/__init__.py`: the registry `ALL_OBJECTS_DICT`
//!   (function `__name__`s plus the aliases `swish` → `silu` and
//!   `hard_swish` → `hard_silu`);
//! * `keras/src/activations/activations.py`: the activation functions and the
//!   default arguments they pass on (`leaky_relu` slope 0.2, `gelu`
//!   `approximate=False`, `elu`/`celu` alpha 1, `squareplus` b = 4, shrink
//!   thresholds 0.5);
//! * `keras/src/ops/nn.py` and `keras/src/backend/jax/nn.py`: the ops and their
//!   JAX lowering;
//! * `jax/_src/nn/functions.py` and `jax/_src/lax/other.py` (`logaddexp`): the
//!   JAX formulas, whose order of operations is kept here.
//!
//! The registry also holds `threshold`, but it has two required arguments
//! (`threshold`, `default_value`) that neither a layer config nor Keras can
//! supply: `Dense(activation="threshold")` fails in Keras when called. It is
//! rejected by [`Activation::from_config`] with an explanation.
//!
//! # Config form
//!
//! Keras 3.15.1 writes built-in activations in a layer config as the plain
//! canonical name (`activations.serialize` returns `fn_config["config"]`):
//! `"relu"`, `"silu"` for both `"swish"` and `keras.activations.swish`,
//! `"hard_silu"` for `"hard_swish"`, `"linear"` for `activation=None`. The
//! object form `{"module": "keras.activations", "class_name": "function",
//! "config": "relu", "registered_name": "function"}` is accepted as well (Keras
//! can deserialize it).
//!
//! # Gradients
//!
//! [`Activation::backward`] gives what `jax.grad` of the Keras function gives,
//! including at kinks: `relu'(0) = 0`, `relu6'(0) = relu6'(6) = 0` (custom JVPs),
//! `leaky_relu'(0) = 1` (`where(x >= 0, ..)`), ties of `jnp.maximum`/`jnp.clip`
//! split the gradient in halves (`sparse_sigmoid'(±1) = 0.25`), and the
//! `logaddexp` JVP `exp(x - softplus(x))` for `softplus`.
//!
//! # Numerics
//!
//! Where the order of operations changes the `f32` result, jax's is kept:
//! `sigmoid` is `1 / (1 + exp(-x))` (XLA's expansion of `lax.logistic`, read from
//! the lowered HLO); `softplus` is `logaddexp(x, 0) = max(x, 0) + log1p(exp(-|x|))`;
//! `softmax`/`log_softmax` subtract the row max and `softmax` divides by the sum;
//! `hard_sigmoid` is `relu6(x + 3) / 6`; `gelu` is the exact `0.5 * x * erfc(-x *
//! sqrt(0.5))` (libm's `erfcf`); `selu` uses jax's constants rounded to `f32`.
//! XLA on CPU flushes subnormal results to zero; `exp`, `erfc` and `sigmoid`
//! results are flushed here too, so that `silu(-88)` or `mish(-88)` is `-0` as in
//! Keras. `sparsemax` is Keras's formula, which differs from the paper (see
//! [`Activation::Sparsemax`]). Against Keras the forward values agree to about
//! 1e-6 relative (XLA's and libm's `exp`/`tanh`/`erfc` differ by a few ulps).
//!
//! # Performance
//!
//! Element-wise activations map the input buffer in place; from
//! [`PAR_THRESHOLD`] elements on, the work runs on the rayon pool. The
//! row-wise ones (`softmax`, `log_softmax`, `sparsemax`) work along axis 1, in
//! parallel over rows for large batches.

use std::cmp::Ordering;
use std::f32::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
use std::fmt;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Zip, s};
use serde_json::Value;

use crate::error::{Error, Result};

/// Element count from which forward and backward passes run in parallel.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// `negative_slope` of `keras.activations.leaky_relu` (keras/src/activations/activations.py;
/// Keras's default, not jax's 0.01).
const LEAKY_RELU_SLOPE: f32 = 0.2;
/// `alpha` of `keras.activations.elu` (keras/src/activations/activations.py).
const ELU_ALPHA: f32 = 1.0;
/// `alpha` of `keras.activations.celu` (keras/src/activations/activations.py).
const CELU_ALPHA: f32 = 1.0;
/// `alpha` of `jax.nn.selu` (jax/_src/nn/functions.py), rounded to `f32`.
const SELU_ALPHA: f32 = 1.673_263_2;
/// `scale` of `jax.nn.selu` (jax/_src/nn/functions.py), rounded to `f32`.
const SELU_SCALE: f32 = 1.050_701;
/// `b` of `keras.activations.squareplus` (keras/src/activations/activations.py).
const SQUAREPLUS_B: f32 = 4.0;
/// `threshold` of `keras.activations.soft_shrink` and `hard_shrink`
/// (keras/src/activations/activations.py).
const SHRINK_THRESHOLD: f32 = 0.5;

/// A Keras activation. Closed set; parsed from config; one `match` in forward/backward.
///
/// Each variant documents its formula and the source it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `x` (keras/src/activations/activations.py `linear`).
    Linear,
    /// `max(x, 0)`; gradient 0 at 0 (jax/_src/nn/functions.py `relu`, custom JVP).
    Relu,
    /// `where(x >= 0, x, 0.2 * x)`: Keras's slope 0.2
    /// (keras/src/activations/activations.py `leaky_relu`; jax/_src/nn/functions.py `leaky_relu`).
    LeakyRelu,
    /// `min(max(x, 0), 6)`; gradient 0 at 0 and 6 (jax/_src/nn/functions.py `relu6`).
    Relu6,
    /// `where(x > 0, x, alpha * expm1(x))`, alpha 1 (jax/_src/nn/functions.py `elu`).
    Elu,
    /// `scale * elu(x, alpha)` with jax's constants (jax/_src/nn/functions.py `selu`).
    Selu,
    /// `max(x, 0) + alpha * expm1(min(x, 0) / alpha)`, alpha 1
    /// (jax/_src/nn/functions.py `celu`).
    Celu,
    /// `logaddexp(x, 0) = max(x, 0) + log1p(exp(-|x|))`
    /// (jax/_src/nn/functions.py `softplus`; jax/_src/lax/other.py `logaddexp`).
    Softplus,
    /// `x / (|x| + 1)` (jax/_src/nn/functions.py `soft_sign`).
    Softsign,
    /// `(x + sqrt(x² + 4)) / 2` (jax/_src/nn/functions.py `squareplus`, Keras's b = 4).
    Squareplus,
    /// `where(x > 0.5, x - 0.5, where(x < -0.5, x + 0.5, 0))`
    /// (keras/src/backend/jax/nn.py `soft_shrink`).
    SoftShrink,
    /// `where(x <= -1, 0, where(x >= 1, x, (x + 1)² / 4))`
    /// (jax/_src/nn/functions.py `sparse_plus`).
    SparsePlus,
    /// `x * sigmoid(x)`, alias `swish` (jax/_src/nn/functions.py `silu`).
    Silu,
    /// Exact GELU `0.5 * x * erfc(-x * sqrt(0.5))`: `keras.activations.gelu` passes
    /// `approximate=False` (keras/src/activations/activations.py `gelu`;
    /// jax/_src/nn/functions.py `gelu`).
    Gelu,
    /// `a * sigmoid(b)` with `x = [a, b]` split in halves along the last axis
    /// (jax/_src/nn/functions.py `glu`). Halves the feature width.
    Glu,
    /// `tanh(x)` (keras/src/backend/jax/nn.py `tanh`).
    Tanh,
    /// `x - tanh(x)` (keras/src/backend/jax/nn.py `tanh_shrink`).
    TanhShrink,
    /// `1 / (1 + exp(-x))`, XLA's expansion of `lax.logistic`
    /// (jax/_src/nn/functions.py `sigmoid`).
    Sigmoid,
    /// `0.5 * clip(x + 1, 0, 2)` (jax/_src/nn/functions.py `sparse_sigmoid`).
    SparseSigmoid,
    /// `exp(x)` (keras/src/activations/activations.py `exponential`).
    Exponential,
    /// `relu6(x + 3) / 6` (jax/_src/nn/functions.py `hard_sigmoid`, which the Keras
    /// JAX backend calls; the `0.2 * x + 0.5` in the keras/src/ops/nn.py docstring is stale).
    HardSigmoid,
    /// `x * hard_sigmoid(x)`, alias `hard_swish` (jax/_src/nn/functions.py `hard_silu`).
    HardSilu,
    /// `where(x > 1, 1, where(x < -1, -1, x))` (jax/_src/nn/functions.py `hard_tanh`).
    HardTanh,
    /// `where(|x| > 0.5, x, 0)` (keras/src/backend/jax/nn.py `hard_shrink`).
    HardShrink,
    /// `x * tanh(softplus(x))` (keras/src/activations/activations.py `Mish.static_call`).
    Mish,
    /// `exp(x - max) / sum(exp(x - max))` along axis 1
    /// (jax/_src/nn/functions.py `_softmax`).
    Softmax,
    /// `(x - max) - log(sum(exp(x - max)))` along axis 1
    /// (jax/_src/nn/functions.py `log_softmax`).
    LogSoftmax,
    /// `-softplus(-x)` (jax/_src/nn/functions.py `log_sigmoid`).
    LogSigmoid,
    /// Keras's sparsemax along axis 1 (keras/src/backend/jax/nn.py `sparsemax`):
    /// `max(x - tau, 0)` with `tau = (sum of the cumulative sums over the support - 1) / k`.
    ///
    /// This is Keras's formula as written (all backends share it), not the paper's
    /// `tau = (cumsum[k-1] - 1) / k`: rows whose support has two or more elements do
    /// not sum to one (`[1, 0.9, 0]` gives `[0.05, 0, 0]`). It is kept so that
    /// predictions match Keras.
    Sparsemax,
}

impl Activation {
    /// All supported Keras identifiers (including aliases), for error messages and docs.
    pub const NAMES: &'static [&'static str] = &[
        "linear",
        "relu",
        "leaky_relu",
        "relu6",
        "elu",
        "selu",
        "celu",
        "softplus",
        "softsign",
        "squareplus",
        "soft_shrink",
        "sparse_plus",
        "silu",
        "swish",
        "gelu",
        "glu",
        "tanh",
        "tanh_shrink",
        "sigmoid",
        "sparse_sigmoid",
        "exponential",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "hard_shrink",
        "mish",
        "softmax",
        "log_softmax",
        "log_sigmoid",
        "sparsemax",
    ];

    /// Every activation, once.
    pub const ALL: &'static [Activation] = &[
        Activation::Linear,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Relu6,
        Activation::Elu,
        Activation::Selu,
        Activation::Celu,
        Activation::Softplus,
        Activation::Softsign,
        Activation::Squareplus,
        Activation::SoftShrink,
        Activation::SparsePlus,
        Activation::Silu,
        Activation::Gelu,
        Activation::Glu,
        Activation::Tanh,
        Activation::TanhShrink,
        Activation::Sigmoid,
        Activation::SparseSigmoid,
        Activation::Exponential,
        Activation::HardSigmoid,
        Activation::HardSilu,
        Activation::HardTanh,
        Activation::HardShrink,
        Activation::Mish,
        Activation::Softmax,
        Activation::LogSoftmax,
        Activation::LogSigmoid,
        Activation::Sparsemax,
    ];

    /// Parse a Keras identifier (canonical name or alias), as `keras.activations.get`
    /// looks strings up in `ALL_OBJECTS_DICT`.
    pub fn from_name(name: &str) -> Result<Self> {
        use Activation as A;
        Ok(match name {
            "linear" => A::Linear,
            "relu" => A::Relu,
            "leaky_relu" => A::LeakyRelu,
            "relu6" => A::Relu6,
            "elu" => A::Elu,
            "selu" => A::Selu,
            "celu" => A::Celu,
            "softplus" => A::Softplus,
            "softsign" => A::Softsign,
            "squareplus" => A::Squareplus,
            "soft_shrink" => A::SoftShrink,
            "sparse_plus" => A::SparsePlus,
            "silu" | "swish" => A::Silu,
            "gelu" => A::Gelu,
            "glu" => A::Glu,
            "tanh" => A::Tanh,
            "tanh_shrink" => A::TanhShrink,
            "sigmoid" => A::Sigmoid,
            "sparse_sigmoid" => A::SparseSigmoid,
            "exponential" => A::Exponential,
            "hard_sigmoid" => A::HardSigmoid,
            "hard_silu" | "hard_swish" => A::HardSilu,
            "hard_tanh" => A::HardTanh,
            "hard_shrink" => A::HardShrink,
            "mish" => A::Mish,
            "softmax" => A::Softmax,
            "log_softmax" => A::LogSoftmax,
            "log_sigmoid" => A::LogSigmoid,
            "sparsemax" => A::Sparsemax,
            "threshold" => {
                return Err(Error::invalid(
                    "activation `threshold` needs `threshold` and `default_value` arguments \
                     that a layer config cannot carry (Keras fails to call it too)",
                ));
            }
            other => return Err(Error::unsupported("activation", other, Self::NAMES)),
        })
    }

    /// Parse the `activation` value of a layer config: a string identifier, or the serialized
    /// object form (`{"module": "keras.activations", "class_name": "function", "config":
    /// "relu", "registered_name": "function"}`), or JSON null (= linear). Keras 3.15.1 itself
    /// writes the plain canonical name. Unknown names:
    /// `Error::unsupported("activation", name, Self::NAMES)`.
    pub fn from_config(value: &Value) -> Result<Self> {
        match value {
            Value::Null => Ok(Activation::Linear),
            Value::String(name) => Self::from_name(name),
            Value::Object(map) => {
                let class_name = map.get("class_name").and_then(Value::as_str);
                let module = map.get("module").and_then(Value::as_str);
                // Keras resolves functions from `builtins` or a `keras...` module by name;
                // anything else is a user function that merely shares a name.
                let keras_module = |m: Option<&str>| match m {
                    None | Some("builtins") => true,
                    Some(m) => m == "keras" || m.starts_with("keras."),
                };
                match (class_name, map.get("config")) {
                    (Some("function"), Some(Value::String(name))) => {
                        if keras_module(module) {
                            Self::from_name(name)
                        } else {
                            let full = format!("{}.{name}", module.unwrap_or_default());
                            Err(Error::unsupported("activation", full, Self::NAMES))
                        }
                    }
                    (Some("function"), _) => Err(Error::invalid(
                        "serialized activation function has no string `config` (its name)",
                    )),
                    // `{"module": "keras.activations", "class_name": "relu", ...}` also
                    // resolves in Keras; other classes (layers, custom objects) do not here.
                    (Some(class_name), _) => match module {
                        Some(m) if keras_module(Some(m)) && m.contains("activations") => {
                            Self::from_name(class_name)
                        }
                        _ => Err(Error::unsupported("activation", class_name, Self::NAMES)),
                    },
                    (None, _) => Err(Error::invalid(
                        "serialized activation has no string `class_name`",
                    )),
                }
            }
            other => Err(Error::invalid(format!(
                "`activation` must be a string, null or a serialized function, found `{other}`"
            ))),
        }
    }

    /// The canonical Keras name (what Keras's `activations.serialize` gives).
    pub fn name(self) -> &'static str {
        use Activation as A;
        match self {
            A::Linear => "linear",
            A::Relu => "relu",
            A::LeakyRelu => "leaky_relu",
            A::Relu6 => "relu6",
            A::Elu => "elu",
            A::Selu => "selu",
            A::Celu => "celu",
            A::Softplus => "softplus",
            A::Softsign => "softsign",
            A::Squareplus => "squareplus",
            A::SoftShrink => "soft_shrink",
            A::SparsePlus => "sparse_plus",
            A::Silu => "silu",
            A::Gelu => "gelu",
            A::Glu => "glu",
            A::Tanh => "tanh",
            A::TanhShrink => "tanh_shrink",
            A::Sigmoid => "sigmoid",
            A::SparseSigmoid => "sparse_sigmoid",
            A::Exponential => "exponential",
            A::HardSigmoid => "hard_sigmoid",
            A::HardSilu => "hard_silu",
            A::HardTanh => "hard_tanh",
            A::HardShrink => "hard_shrink",
            A::Mish => "mish",
            A::Softmax => "softmax",
            A::LogSoftmax => "log_softmax",
            A::LogSigmoid => "log_sigmoid",
            A::Sparsemax => "sparsemax",
        }
    }

    /// Output feature width for an input width (glu halves it; errors on odd width for glu).
    pub fn output_width(self, input_width: usize) -> Result<usize> {
        match self {
            Activation::Glu if !input_width.is_multiple_of(2) => Err(Error::mismatch(
                "an even feature width for activation `glu`, which halves it",
                format!("width {input_width}"),
            )),
            Activation::Glu => Ok(input_width / 2),
            _ => Ok(input_width),
        }
    }

    /// True for activations that act on each element independently.
    pub fn is_elementwise(self) -> bool {
        !matches!(
            self,
            Activation::Softmax | Activation::LogSoftmax | Activation::Sparsemax | Activation::Glu
        )
    }

    /// Forward on a batch (rows = samples, columns = features; softmax-like ones along axis 1).
    /// Element-wise activations reuse the buffer (no allocation).
    ///
    /// # Panics
    ///
    /// For `glu` on an odd number of columns (check with [`Activation::output_width`]).
    pub fn forward(self, x: Array2<f32>) -> Array2<f32> {
        use Activation as A;
        match self {
            A::Linear => x,
            A::Relu => map_inplace(x, relu),
            A::LeakyRelu => map_inplace(x, leaky_relu),
            A::Relu6 => map_inplace(x, relu6),
            A::Elu => map_inplace(x, elu),
            A::Selu => map_inplace(x, selu),
            A::Celu => map_inplace(x, celu),
            A::Softplus => map_inplace(x, softplus),
            A::Softsign => map_inplace(x, softsign),
            A::Squareplus => map_inplace(x, squareplus),
            A::SoftShrink => map_inplace(x, soft_shrink),
            A::SparsePlus => map_inplace(x, sparse_plus),
            A::Silu => map_inplace(x, silu),
            A::Gelu => map_inplace(x, gelu),
            A::Glu => glu_forward(x.view()),
            A::Tanh => {
                let mut x = if x.is_standard_layout() {
                    x
                } else {
                    x.as_standard_layout().into_owned()
                };
                tanh_slice(x.as_slice_mut().expect("standard layout"));
                x
            }
            A::TanhShrink => map_inplace(x, tanh_shrink),
            A::Sigmoid => map_inplace(x, sigmoid),
            A::SparseSigmoid => map_inplace(x, sparse_sigmoid),
            A::Exponential => map_inplace(x, exp),
            A::HardSigmoid => map_inplace(x, hard_sigmoid),
            A::HardSilu => map_inplace(x, hard_silu),
            A::HardTanh => map_inplace(x, hard_tanh),
            A::HardShrink => map_inplace(x, hard_shrink),
            A::Mish => map_inplace(x, mish),
            A::Softmax => rows_inplace(x, softmax_row),
            A::LogSoftmax => rows_inplace(x, log_softmax_row),
            A::LogSigmoid => map_inplace(x, log_sigmoid),
            A::Sparsemax => rows_inplace(x, sparsemax_row),
        }
    }

    /// Backward: given the pre-activation input `x`, the output `y = forward(x)` and dL/dy,
    /// return dL/dx (same shape as x). Subgradients where not differentiable: match what
    /// jax.grad of the Keras function gives (e.g. relu'(0) = 0).
    ///
    /// # Panics
    ///
    /// If the shapes disagree (`y` and `dy` must have the shape of `forward(x)`).
    pub fn backward(
        self,
        x: ArrayView2<f32>,
        y: ArrayView2<f32>,
        dy: ArrayView2<f32>,
    ) -> Array2<f32> {
        use Activation as A;
        match self {
            A::Linear => {
                assert_eq!(x.shape(), dy.shape(), "linear backward: shape of x and dy");
                dy.to_owned()
            }
            A::Relu => map_backward(x, y, dy, |x, _, g| if x > 0.0 { g } else { 0.0 }),
            A::LeakyRelu => map_backward(
                x,
                y,
                dy,
                |x, _, g| {
                    if x >= 0.0 { g } else { LEAKY_RELU_SLOPE * g }
                },
            ),
            A::Relu6 => map_backward(x, y, dy, |x, _, g| if x > 0.0 && x < 6.0 { g } else { 0.0 }),
            A::Elu => map_backward(
                x,
                y,
                dy,
                |x, _, g| {
                    if x > 0.0 { g } else { g * ELU_ALPHA * x.exp() }
                },
            ),
            A::Selu => map_backward(x, y, dy, |x, _, g| {
                let g = g * SELU_SCALE;
                if x > 0.0 { g } else { g * SELU_ALPHA * x.exp() }
            }),
            A::Celu => map_backward(x, y, dy, celu_grad),
            A::Softplus => map_backward(x, y, dy, |x, y, g| g * softplus_grad(x, y)),
            A::Softsign => map_backward(x, y, dy, |x, _, g| {
                let a = x.abs() + 1.0;
                g / a / a
            }),
            A::Squareplus => map_backward(x, y, dy, |x, _, g| {
                let half = g / 2.0;
                half + half * (2.0 * x) * (0.5 / (x * x + SQUAREPLUS_B).sqrt())
            }),
            A::SoftShrink => map_backward(x, y, dy, |x, _, g| {
                // `where(x > t, .., where(x < -t, .., 0))`: NaN takes the constant branch.
                if x.abs() > SHRINK_THRESHOLD { g } else { 0.0 }
            }),
            A::SparsePlus => map_backward(x, y, dy, |x, _, g| {
                if x <= -1.0 {
                    0.0
                } else if x >= 1.0 {
                    g
                } else {
                    g / 4.0 * (2.0 * (x + 1.0))
                }
            }),
            A::Silu => map_backward(x, y, dy, |x, _, g| {
                let s = sigmoid(x);
                g * s + g * x * (s * (1.0 - s))
            }),
            A::Gelu => map_backward(x, y, dy, |x, _, g| g * gelu_grad(x)),
            A::Glu => glu_backward(x, dy),
            A::Tanh => map_backward(x, y, dy, |_, y, g| (g + g * y) * (1.0 - y)),
            A::TanhShrink => map_backward(x, y, dy, |x, _, g| {
                let t = xla_tanh(x);
                g - (g + g * t) * (1.0 - t)
            }),
            A::Sigmoid => map_backward(x, y, dy, |_, y, g| g * (y * (1.0 - y))),
            A::SparseSigmoid => map_backward(x, y, dy, |x, _, g| {
                let u = x + 1.0;
                if u > 0.0 && u < 2.0 {
                    0.5 * g
                } else if u == 0.0 || u == 2.0 {
                    // Ties of `jnp.maximum`/`jnp.minimum` in `jnp.clip` split the gradient.
                    0.25 * g
                } else {
                    0.0
                }
            }),
            A::Exponential => map_backward(x, y, dy, |_, y, g| g * y),
            A::HardSigmoid => map_backward(x, y, dy, |x, _, g| {
                let u = x + 3.0;
                if u > 0.0 && u < 6.0 { g / 6.0 } else { 0.0 }
            }),
            A::HardSilu => map_backward(x, y, dy, |x, _, g| {
                let u = x + 3.0;
                let slope = if u > 0.0 && u < 6.0 { g * x / 6.0 } else { 0.0 };
                g * hard_sigmoid(x) + slope
            }),
            A::HardTanh => map_backward(x, y, dy, |x, _, g| {
                // NaN takes the `x` branch of the `where` chain.
                if x.abs() > 1.0 { 0.0 } else { g }
            }),
            A::HardShrink => {
                map_backward(
                    x,
                    y,
                    dy,
                    |x, _, g| {
                        if x.abs() > SHRINK_THRESHOLD { g } else { 0.0 }
                    },
                )
            }
            A::Mish => map_backward(x, y, dy, |x, _, g| {
                let sp = softplus(x);
                let t = xla_tanh(sp);
                g * t + (g * x) * (1.0 + t) * (1.0 - t) * softplus_grad(x, sp)
            }),
            A::Softmax => rows_backward(x, y, dy, softmax_row_grad),
            A::LogSoftmax => rows_backward(x, y, dy, log_softmax_row_grad),
            A::LogSigmoid => map_backward(x, y, dy, |x, y, g| g * softplus_grad(-x, -y)),
            A::Sparsemax => rows_backward(x, y, dy, sparsemax_row_grad),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// Drivers: element-wise and row-wise, sequential below PAR_THRESHOLD.
// ---------------------------------------------------------------------------

/// Apply `f` to every element in place.
fn map_inplace(mut x: Array2<f32>, f: impl Fn(f32) -> f32 + Sync + Send) -> Array2<f32> {
    if x.len() >= PAR_THRESHOLD {
        x.par_mapv_inplace(f);
    } else {
        x.mapv_inplace(f);
    }
    x
}

/// `dx = f(x, y, dy)` element by element.
fn map_backward(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    f: impl Fn(f32, f32, f32) -> f32 + Sync + Send,
) -> Array2<f32> {
    let parallel = x.len() >= PAR_THRESHOLD;
    let zip = Zip::from(x).and(y).and(dy);
    if parallel {
        zip.par_map_collect(|&x, &y, &g| f(x, y, g))
    } else {
        zip.map_collect(|&x, &y, &g| f(x, y, g))
    }
}

/// Apply `f` to every row (axis 1) in place.
fn rows_inplace(mut x: Array2<f32>, f: impl Fn(ArrayViewMut1<f32>) + Sync + Send) -> Array2<f32> {
    let parallel = x.len() >= PAR_THRESHOLD;
    let zip = Zip::from(x.rows_mut());
    if parallel {
        zip.par_for_each(f);
    } else {
        zip.for_each(f);
    }
    x
}

/// `dx_row = f(x_row, y_row, dy_row, dx_row)` row by row, `dx` starting at zero.
fn rows_backward(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    f: impl Fn(ArrayView1<f32>, ArrayView1<f32>, ArrayView1<f32>, ArrayViewMut1<f32>) + Sync + Send,
) -> Array2<f32> {
    let mut dx = Array2::zeros(x.raw_dim());
    let parallel = x.len() >= PAR_THRESHOLD;
    let zip = Zip::from(x.rows())
        .and(y.rows())
        .and(dy.rows())
        .and(dx.rows_mut());
    if parallel {
        zip.par_for_each(&f);
    } else {
        zip.for_each(&f);
    }
    dx
}

// ---------------------------------------------------------------------------
// Element-wise formulas. NaN propagates like XLA's `max`/`min` (not like
// `f32::max`), and `where(cond, ..)` chains keep jax's branch order.
// ---------------------------------------------------------------------------

/// Flush a subnormal result to (signed) zero, as XLA on CPU does (FTZ): keeps e.g.
/// `silu(-88) = -88 * sigmoid(-88)` at `-0` like Keras instead of `-5e-37`. Applied to the
/// `exp`/`erfc` results that can underflow.
#[inline]
fn ftz(v: f32) -> f32 {
    if v.abs() < f32::MIN_POSITIVE {
        v * 0.0
    } else {
        v
    }
}

/// `exp(x)` with XLA's flush of subnormal results.
#[inline]
fn exp(x: f32) -> f32 {
    ftz(x.exp())
}

/// `jnp.maximum(x, 0)` (NaN propagates).
#[inline]
fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// `jnp.minimum(x, 0)` (NaN propagates).
#[inline]
fn min0(x: f32) -> f32 {
    if x > 0.0 { 0.0 } else { x }
}

/// jax/_src/nn/functions.py `leaky_relu`: `where(x >= 0, x, negative_slope * x)`.
#[inline]
fn leaky_relu(x: f32) -> f32 {
    if x >= 0.0 { x } else { LEAKY_RELU_SLOPE * x }
}

/// jax/_src/nn/functions.py `relu6`: `minimum(maximum(x, 0), 6.)` (`clamp` keeps NaN).
#[inline]
fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// jax/_src/nn/functions.py `elu`: `where(x > 0, x, alpha * expm1(where(x > 0, 0., x)))`.
#[inline]
fn elu(x: f32) -> f32 {
    if x > 0.0 { x } else { ELU_ALPHA * x.exp_m1() }
}

/// jax/_src/nn/functions.py `selu`: `scale * elu(x, alpha)`.
#[inline]
fn selu(x: f32) -> f32 {
    SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() }
}

/// jax/_src/nn/functions.py `celu`: `maximum(x, 0.0) + alpha * expm1(minimum(x, 0.0) / alpha)`.
#[inline]
fn celu(x: f32) -> f32 {
    relu(x) + CELU_ALPHA * (min0(x) / CELU_ALPHA).exp_m1()
}

/// `jax.grad` of [`celu`]: a tie at 0 gives half to each of `maximum` and `minimum`.
#[inline]
fn celu_grad(x: f32, _y: f32, g: f32) -> f32 {
    let (max_part, min_part) = match x.partial_cmp(&0.0) {
        Some(Ordering::Greater) => (1.0, 0.0),
        Some(Ordering::Less) => (0.0, 1.0),
        _ => (0.5, 0.5),
    };
    g * max_part + g * min_part * (min0(x) / CELU_ALPHA).exp()
}

/// jax/_src/nn/functions.py `softplus` = jax/_src/lax/other.py `logaddexp(x, 0)`:
/// `max(x, 0) + log1p(exp(-|x - 0|))`, or `x + 0` when `x - 0` is NaN.
#[inline]
fn softplus(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    relu(x) + exp(-x.abs()).ln_1p()
}

/// `±inf → 0`, as `_replace_inf` in jax/_src/lax/other.py.
#[inline]
fn replace_inf(v: f32) -> f32 {
    if v.is_infinite() { 0.0 } else { v }
}

/// The `logaddexp` JVP of jax/_src/lax/other.py for `softplus(x) = y`:
/// `exp(replace_inf(x) - replace_inf(y))` (= sigmoid(x)).
#[inline]
fn softplus_grad(x: f32, y: f32) -> f32 {
    (replace_inf(x) - replace_inf(y)).exp()
}

/// jax/_src/nn/functions.py `soft_sign`: `x / (|x| + 1)`.
#[inline]
fn softsign(x: f32) -> f32 {
    x / (x.abs() + 1.0)
}

/// jax/_src/nn/functions.py `squareplus`: `(x + sqrt(square(x) + b)) / 2`.
#[inline]
fn squareplus(x: f32) -> f32 {
    (x + (x * x + SQUAREPLUS_B).sqrt()) / 2.0
}

/// keras/src/backend/jax/nn.py `soft_shrink`:
/// `where(x > t, x - t, where(x < -t, x + t, 0.0))` (NaN gives 0, as there).
#[inline]
fn soft_shrink(x: f32) -> f32 {
    if x > SHRINK_THRESHOLD {
        x - SHRINK_THRESHOLD
    } else if x < -SHRINK_THRESHOLD {
        x + SHRINK_THRESHOLD
    } else {
        0.0
    }
}

/// jax/_src/nn/functions.py `sparse_plus`: `where(x <= -1, 0, where(x >= 1, x, (x + 1)**2 / 4))`.
#[inline]
fn sparse_plus(x: f32) -> f32 {
    if x <= -1.0 {
        0.0
    } else if x >= 1.0 {
        x
    } else {
        let u = x + 1.0;
        u * u / 4.0
    }
}

/// jax/_src/nn/functions.py `sigmoid` = `lax.logistic`, which XLA expands to
/// `1 / (1 + exp(-x))` (checked in the lowered HLO), subnormal results below x ≈ -87
/// flushed to zero like XLA.
#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    ftz(1.0 / (1.0 + (-x).exp()))
}

/// `jnp.tanh` as XLA compiles it for the CPU (xla/service/llvm_ir/math_ops.cc
/// `EmitFastTanh` with FMA, Eigen's rational approximation): `x` itself below
/// 0.0004 in magnitude, else `x·p(x²) / q(x²)` on `x` clamped to ±7.998811…,
/// each polynomial by Horner's rule in fused multiply-adds. Bit for bit equal
/// to jax's `tanh` (checked on 1.2 million inputs, where libm's `tanhf`
/// differs in half of them).
#[inline(always)]
pub(crate) fn xla_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.998_811_7;
    // The coefficients as `f32` literals (their shortest decimal forms).
    const P: [f32; 7] = [
        -2.760_768_4e-16,
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297_3e-8,
        1.485_722_35e-5,
        6.372_619_5e-4,
        4.893_524_6e-3,
    ];
    const Q: [f32; 4] = [1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_7e-3, 4.893_525e-3];
    // A NaN is returned as is, as XLA's select of the small-argument branch
    // gives for it.
    if x.abs() < 0.0004 || x.is_nan() {
        return x;
    }
    let xc = x.clamp(-CLAMP, CLAMP);
    let x2 = xc * xc;
    let mut p = P[0];
    for c in &P[1..] {
        p = x2.mul_add(p, *c);
    }
    let mut q = Q[0];
    for c in &Q[1..] {
        q = x2.mul_add(q, *c);
    }
    (xc * p) / q
}

/// [`xla_tanh`] over a slice, with the CPU's fused multiply-add instruction
/// when it has one (else `mul_add` is computed exactly in software).
pub(crate) fn tanh_slice(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA.
        unsafe { tanh_slice_fma(xs) };
        return;
    }
    xs.iter_mut().for_each(|v| *v = xla_tanh(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
unsafe fn tanh_slice_fma(xs: &mut [f32]) {
    xs.iter_mut().for_each(|v| *v = xla_tanh(*v));
}

/// jax/_src/nn/functions.py `silu`: `x * sigmoid(x)`.
#[inline]
fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// jax/_src/nn/functions.py `gelu` with `approximate=False` (what
/// `keras.activations.gelu` passes): `0.5 * x * erfc(-x * sqrt_half)`, `sqrt_half`
/// rounded to `f32`.
#[inline]
fn gelu(x: f32) -> f32 {
    0.5 * x * ftz(libm::erfcf(-x * FRAC_1_SQRT_2))
}

/// `jax.grad` of [`gelu`], with the `erfc` JVP `-2/sqrt(pi) * exp(-u²)`:
/// `0.5 * erfc(u) + 0.5 * x * sqrt_half * 2/sqrt(pi) * exp(-u²)`, `u = -x * sqrt_half`.
#[inline]
fn gelu_grad(x: f32) -> f32 {
    let u = -x * FRAC_1_SQRT_2;
    0.5 * libm::erfcf(u) + 0.5 * x * FRAC_1_SQRT_2 * FRAC_2_SQRT_PI * (-(u * u)).exp()
}

/// keras/src/backend/jax/nn.py `tanh_shrink`: `x - tanh(x)`.
#[inline]
fn tanh_shrink(x: f32) -> f32 {
    x - xla_tanh(x)
}

/// jax/_src/nn/functions.py `sparse_sigmoid`: `0.5 * clip(x + 1.0, 0.0, 2.0)`.
#[inline]
fn sparse_sigmoid(x: f32) -> f32 {
    0.5 * (x + 1.0).clamp(0.0, 2.0)
}

/// jax/_src/nn/functions.py `hard_sigmoid`: `relu6(x + 3.) / 6.` (a division, not `x / 6 + 0.5`).
#[inline]
fn hard_sigmoid(x: f32) -> f32 {
    relu6(x + 3.0) / 6.0
}

/// jax/_src/nn/functions.py `hard_silu`: `x * hard_sigmoid(x)`.
#[inline]
fn hard_silu(x: f32) -> f32 {
    x * hard_sigmoid(x)
}

/// jax/_src/nn/functions.py `hard_tanh`: `where(x > 1, 1, where(x < -1, -1, x))`.
#[inline]
fn hard_tanh(x: f32) -> f32 {
    x.clamp(-1.0, 1.0)
}

/// keras/src/backend/jax/nn.py `hard_shrink`: `where(|x| > t, x, 0.0)`.
#[inline]
fn hard_shrink(x: f32) -> f32 {
    if x.abs() > SHRINK_THRESHOLD { x } else { 0.0 }
}

/// keras/src/activations/activations.py `Mish.static_call`: `x * tanh(softplus(x))`.
#[inline]
fn mish(x: f32) -> f32 {
    x * xla_tanh(softplus(x))
}

/// jax/_src/nn/functions.py `log_sigmoid`: `-softplus(-x)`.
#[inline]
fn log_sigmoid(x: f32) -> f32 {
    -softplus(-x)
}

// ---------------------------------------------------------------------------
// Row-wise formulas (axis 1).
// ---------------------------------------------------------------------------

/// `jnp.max(row, initial=-inf)`, NaN-propagating like XLA's `max`.
fn row_max(row: &ArrayView1<f32>) -> f32 {
    row.iter().fold(
        f32::NEG_INFINITY,
        |m, &v| if v > m || v.is_nan() { v } else { m },
    )
}

/// jax/_src/nn/functions.py `_softmax`: `unnormalized = exp(x - x_max)`, then
/// `unnormalized / sum(unnormalized)` (a division, as there).
fn softmax_row(mut row: ArrayViewMut1<f32>) {
    let max = row_max(&row.view());
    let mut sum = 0.0f32;
    row.mapv_inplace(|v| {
        let e = exp(v - max);
        sum += e;
        e
    });
    row.mapv_inplace(|e| e / sum);
}

/// The `_softmax` custom JVP of jax/_src/nn/functions.py, transposed:
/// `dx = y * (dy - sum(y * dy))`.
fn softmax_row_grad(
    _x: ArrayView1<f32>,
    y: ArrayView1<f32>,
    dy: ArrayView1<f32>,
    mut dx: ArrayViewMut1<f32>,
) {
    let dot: f32 = y.iter().zip(dy.iter()).map(|(&y, &g)| y * g).sum();
    Zip::from(&mut dx)
        .and(&y)
        .and(&dy)
        .for_each(|d, &y, &g| *d = y * (g - dot));
}

/// jax/_src/nn/functions.py `log_softmax`: `shifted = x - x_max`, then
/// `shifted - log(sum(exp(shifted)))`.
fn log_softmax_row(mut row: ArrayViewMut1<f32>) {
    let max = row_max(&row.view());
    let sum: f32 = row.iter().map(|&v| exp(v - max)).sum();
    let lse = sum.ln();
    row.mapv_inplace(|v| (v - max) - lse);
}

/// `jax.grad` of `log_softmax` (the max is under `stop_gradient`):
/// `dx = dy - softmax(x) * sum(dy)`, with `softmax(x) = exp(y)`.
fn log_softmax_row_grad(
    _x: ArrayView1<f32>,
    y: ArrayView1<f32>,
    dy: ArrayView1<f32>,
    mut dx: ArrayViewMut1<f32>,
) {
    let total: f32 = dy.sum();
    Zip::from(&mut dx)
        .and(&y)
        .and(&dy)
        .for_each(|d, &y, &g| *d = g - y.exp() * total);
}

/// What Keras's sparsemax computes for one row before the final `maximum`.
struct SparsemaxRow {
    /// Column indices in `jnp.sort(-x)` order: descending, stable, NaN last.
    order: Vec<usize>,
    /// `support` per sorted position.
    support: Vec<bool>,
    /// `k = sum(support)`.
    k: usize,
    /// The threshold `tau`.
    tau: f32,
}

/// keras/src/backend/jax/nn.py `sparsemax`, up to `tau`:
///
/// ```text
/// logits_sorted = -1.0 * jnp.sort(logits * -1.0)
/// logits_cumsum = jnp.cumsum(logits_sorted)
/// support = logits_sorted - (logits_cumsum - 1) / r > 0      # r = 1..n
/// k = jnp.sum(support)
/// tau = (jnp.sum(jnp.where(support, logits_cumsum, 0.0)) - 1) / k
/// ```
fn sparsemax_tau(row: &ArrayView1<f32>) -> SparsemaxRow {
    let n = row.len();
    let mut order: Vec<usize> = (0..n).collect();
    // `jnp.sort` is stable; ascending on `-x` is descending on `x`, with NaN last.
    order.sort_by(|&a, &b| {
        let (a, b) = (row[a], row[b]);
        match (a.is_nan(), b.is_nan()) {
            (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
            (a_nan, b_nan) => a_nan.cmp(&b_nan),
        }
    });
    let mut support = Vec::with_capacity(n);
    let mut cumsum = 0.0f32;
    let mut support_cumsum = 0.0f32;
    let mut k = 0usize;
    for (i, &j) in order.iter().enumerate() {
        let v = row[j];
        cumsum += v;
        let inside = v - (cumsum - 1.0) / (i + 1) as f32 > 0.0;
        if inside {
            k += 1;
            support_cumsum += cumsum;
        }
        support.push(inside);
    }
    let tau = (support_cumsum - 1.0) / k as f32;
    SparsemaxRow {
        order,
        support,
        k,
        tau,
    }
}

/// keras/src/backend/jax/nn.py `sparsemax`: `maximum(logits - tau, 0.0)`.
fn sparsemax_row(mut row: ArrayViewMut1<f32>) {
    if row.is_empty() {
        return;
    }
    let tau = sparsemax_tau(&row.view()).tau;
    row.mapv_inplace(|v| relu(v - tau));
}

/// `jax.grad` of Keras's sparsemax. With `g = dy * maximum'(x - tau)` (1 above zero,
/// 1/2 at a tie, 0 below) and `G = sum(g)`: `dx_i = g_i - G * dtau/dx_i`, where
/// `dtau/d(sorted_q) = #{p >= q in the support} / k` (the sum of cumulative sums), routed
/// back through the sort permutation. The support is not differentiated (it is boolean).
fn sparsemax_row_grad(
    x: ArrayView1<f32>,
    _y: ArrayView1<f32>,
    dy: ArrayView1<f32>,
    mut dx: ArrayViewMut1<f32>,
) {
    if x.is_empty() {
        return;
    }
    let SparsemaxRow {
        order,
        support,
        k,
        tau,
    } = sparsemax_tau(&x);
    let mut total = 0.0f32;
    Zip::from(&mut dx).and(&x).and(&dy).for_each(|d, &x, &g| {
        let z = x - tau;
        *d = if z > 0.0 {
            g
        } else if z == 0.0 {
            0.5 * g
        } else {
            0.0
        };
        total += *d;
    });
    // Cotangent of each cumulative sum in the support: -G / k; that of sorted position q
    // is their sum over the support positions p >= q.
    let per_cumsum = -total / k as f32;
    let mut suffix = 0.0f32;
    for (&j, &inside) in order.iter().zip(&support).rev() {
        if inside {
            suffix += per_cumsum;
        }
        dx[j] += suffix;
    }
}

/// jax/_src/nn/functions.py `glu`: `x1 * sigmoid(x2)` with `x1, x2 = split(x, 2, axis=-1)`.
fn glu_forward(x: ArrayView2<f32>) -> Array2<f32> {
    let width = x.ncols();
    assert!(
        width.is_multiple_of(2),
        "activation `glu` needs an even feature width, found {width}"
    );
    let half = width / 2;
    let (a, b) = (x.slice(s![.., ..half]), x.slice(s![.., half..]));
    let zip = Zip::from(a).and(b);
    if x.len() >= PAR_THRESHOLD {
        zip.par_map_collect(|&a, &b| a * sigmoid(b))
    } else {
        zip.map_collect(|&a, &b| a * sigmoid(b))
    }
}

/// `jax.grad` of [`glu_forward`]: `da = dy * s`, `db = dy * a * s * (1 - s)`, `s = sigmoid(b)`.
fn glu_backward(x: ArrayView2<f32>, dy: ArrayView2<f32>) -> Array2<f32> {
    let width = x.ncols();
    assert!(
        width.is_multiple_of(2),
        "activation `glu` needs an even feature width, found {width}"
    );
    let half = width / 2;
    let mut dx = Array2::zeros(x.raw_dim());
    let (da, db) = dx.multi_slice_mut((s![.., ..half], s![.., half..]));
    let zip = Zip::from(da)
        .and(db)
        .and(x.slice(s![.., ..half]))
        .and(x.slice(s![.., half..]))
        .and(dy);
    let f = |da: &mut f32, db: &mut f32, &a: &f32, &b: &f32, &g: &f32| {
        let s = sigmoid(b);
        *da = g * s;
        *db = g * a * (s * (1.0 - s));
    };
    if x.len() >= PAR_THRESHOLD {
        zip.par_for_each(f);
    } else {
        zip.for_each(f);
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `xla_tanh` equals jax's `tanh` bit for bit (`fixtures/math/tanh.npz`,
    /// from `fixtures/generate_math.py`), on both the FMA and the software
    /// `mul_add` paths; libm's `tanhf` does not.
    #[test]
    fn tanh_is_jax_tanh_bit_for_bit() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/math/tanh.npz");
        let x = crate::data::read_npz_f32(&path, "x").unwrap();
        let y = crate::data::read_npz_f32(&path, "y").unwrap();
        let mut fast: Vec<f32> = x.iter().copied().collect();
        tanh_slice(&mut fast);
        let mut libm_differs = 0;
        for ((&x, &want), &got) in x.iter().zip(&y).zip(&fast) {
            let scalar = xla_tanh(x);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "tanh({x:e}) = {got:e}, jax {want:e}"
            );
            assert!(
                scalar.to_bits() == want.to_bits() || (scalar.is_nan() && want.is_nan()),
                "scalar tanh({x:e}) = {scalar:e}, jax {want:e}"
            );
            libm_differs += usize::from(x.tanh().to_bits() != want.to_bits());
        }
        assert!(
            libm_differs > x.len() / 10,
            "libm differs in {libm_differs}"
        );
    }
    use ndarray::{Array1, ShapeBuilder};
    use serde_json::json;

    /// `|actual - expected| <= rel * max(|actual|, |expected|, |input|)`, or `<= abs`.
    #[derive(Clone, Copy)]
    struct Tol {
        rel: f32,
        abs: f32,
    }

    /// Forward values against Keras: XLA's `exp`, `tanh`, `erfc` and libm's differ by a few
    /// ulps (1 ulp is 6e-8..1.2e-7 relative) of their intermediates, which are bounded by the
    /// input or output magnitude (`x - tanh(x)` cancels them down). The absolute floor is the
    /// subnormal range, which XLA on CPU flushes to zero.
    const FORWARD_TOL: Tol = Tol {
        rel: 1e-6,
        abs: f32::MIN_POSITIVE,
    };
    /// Gradients against `jax.grad`: derivatives such as `(1 + y) * (1 - y)` turn an ulp of
    /// `y` near 1 into an absolute error of about 1e-7.
    const GRAD_TOL: Tol = Tol {
        rel: 1e-5,
        abs: 1e-6,
    };
    /// Finite-difference step (on `f32` inputs, so noise stays well below the tolerance).
    const FD_STEP: f32 = 1e-3;
    /// Relative tolerance of finite-difference checks.
    const FD_REL_TOL: f64 = 1e-2;
    /// Absolute tolerance of finite-difference checks (f32 rounding noise / step).
    const FD_ABS_TOL: f64 = 2e-3;
    /// Kinks of the element-wise activations, kept away from in finite differences.
    const KINKS: [f32; 8] = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0];

    fn close(actual: f32, expected: f32, input: f32, tol: Tol) -> bool {
        let diff = (actual - expected).abs();
        let scale = actual.abs().max(expected.abs()).max(input.abs());
        actual == expected
            || (actual.is_nan() && expected.is_nan())
            || diff <= tol.rel * scale
            || diff <= tol.abs
    }

    /// Compare element by element; `input` (same shape) widens the relative scale.
    fn assert_all_close(
        what: &str,
        actual: &Array2<f32>,
        expected: &Array2<f32>,
        input: Option<&Array2<f32>>,
        tol: Tol,
    ) {
        assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
        for ((idx, &a), &e) in actual.indexed_iter().zip(expected.iter()) {
            let x = input.map_or(0.0, |x| x[idx]);
            assert!(
                close(a, e, x, tol),
                "{what} at {idx:?} (input {x}): got {a:e}, Keras gives {e:e} \
                 (relative error {:e})",
                ((a - e) / e).abs()
            );
        }
    }

    fn matrix<const R: usize, const C: usize>(rows: &[[f32; C]; R]) -> Array2<f32> {
        Array2::from_shape_fn((R, C), |(i, j)| rows[i][j])
    }

    fn act(name: &str) -> Activation {
        Activation::from_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// A small deterministic generator (xorshift64*), uniform in `[lo, hi)`.
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            lo + (hi - lo) * (bits as f32 / (1u64 << 24) as f32)
        }
    }

    // --- Golden values from Keras -------------------------------------------------------

    // The tables below were printed by a script running KERAS_BACKEND=jax with keras 3.15.1
    // and jax 0.10.2 (CPU), each value the shortest decimal that round-trips the f32.
    // Some outputs are close to mathematical constants (softplus(0) = ln 2, exp(1) = e).

    /// Inputs of the element-wise golden table.
    const X: [f32; 23] = [
        0.0, 0.0001, -0.0001, 0.3, -0.7, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 6.0, 7.5,
        -10.0, 10.0, -20.0, 20.0, -88.0, 88.0, -100.0, 100.0,
    ];
    /// Produced with KERAS_BACKEND=jax, keras 3.15.1, jax 0.10.2, for each `name`:
    /// `keras.activations.get(name)(np.array(X, "float32"))`.
    #[allow(clippy::approx_constant)]
    const ELEMENTWISE_GOLDEN: &[(&str, [f32; 23])] = &[
        (
            "linear",
            [
                0.0, 0.0001, -0.0001, 0.3, -0.7, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 6.0,
                7.5, -10.0, 10.0, -20.0, 20.0, -88.0, 88.0, -100.0, 100.0,
            ],
        ),
        (
            "relu",
            [
                0.0, 0.0001, 0.0, 0.3, 0.0, 0.5, 0.0, 1.0, 0.0, 2.5, 0.0, 3.0, 0.0, 6.0, 7.5, 0.0,
                10.0, 0.0, 20.0, 0.0, 88.0, 0.0, 100.0,
            ],
        ),
        (
            "leaky_relu",
            [
                0.0, 0.0001, -2e-05, 0.3, -0.14, 0.5, -0.1, 1.0, -0.2, 2.5, -0.5, 3.0, -0.6, 6.0,
                7.5, -2.0, 10.0, -4.0, 20.0, -17.6, 88.0, -20.0, 100.0,
            ],
        ),
        (
            "relu6",
            [
                0.0, 0.0001, 0.0, 0.3, 0.0, 0.5, 0.0, 1.0, 0.0, 2.5, 0.0, 3.0, 0.0, 6.0, 6.0, 0.0,
                6.0, 0.0, 6.0, 0.0, 6.0, 0.0, 6.0,
            ],
        ),
        (
            "elu",
            [
                0.0,
                0.0001,
                -9.9995e-05,
                0.3,
                -0.5034147,
                0.5,
                -0.39346933,
                1.0,
                -0.63212055,
                2.5,
                -0.917915,
                3.0,
                -0.95021296,
                6.0,
                7.5,
                -0.9999546,
                10.0,
                -1.0,
                20.0,
                -1.0,
                88.0,
                -1.0,
                100.0,
            ],
        ),
        (
            "selu",
            [
                0.0,
                0.0001050701,
                -0.00017580113,
                0.3152103,
                -0.88505304,
                0.5253505,
                -0.6917582,
                1.050701,
                -1.1113307,
                2.6267526,
                -1.6137857,
                3.152103,
                -1.6705688,
                6.304206,
                7.8802576,
                -1.7580194,
                10.50701,
                -1.7580993,
                21.01402,
                -1.7580993,
                92.46169,
                -1.7580993,
                105.0701,
            ],
        ),
        (
            "celu",
            [
                0.0,
                0.0001,
                -9.9995e-05,
                0.3,
                -0.5034147,
                0.5,
                -0.39346933,
                1.0,
                -0.63212055,
                2.5,
                -0.917915,
                3.0,
                -0.95021296,
                6.0,
                7.5,
                -0.9999546,
                10.0,
                -1.0,
                20.0,
                -1.0,
                88.0,
                -1.0,
                100.0,
            ],
        ),
        (
            "softplus",
            [
                0.6931472,
                0.6931972,
                0.6930972,
                0.8543553,
                0.40318608,
                0.974077,
                0.474077,
                1.3132617,
                0.3132617,
                2.5788898,
                0.078889735,
                3.0485873,
                0.048587352,
                6.0024757,
                7.500553,
                4.53989e-05,
                10.000046,
                2.0611537e-09,
                20.0,
                0.0,
                88.0,
                0.0,
                100.0,
            ],
        ),
        (
            "softsign",
            [
                0.0,
                9.999e-05,
                -9.999e-05,
                0.23076925,
                -0.41176468,
                0.33333334,
                -0.33333334,
                0.5,
                -0.5,
                0.71428573,
                -0.71428573,
                0.75,
                -0.75,
                0.85714287,
                0.88235295,
                -0.90909094,
                0.90909094,
                -0.95238096,
                0.95238096,
                -0.98876405,
                0.98876405,
                -0.990099,
                0.990099,
            ],
        ),
        (
            "squareplus",
            [
                1.0,
                1.00005,
                0.99995,
                1.1611874,
                0.709481,
                1.2807764,
                0.7807764,
                1.618034,
                0.618034,
                2.850781,
                0.35078108,
                3.3027756,
                0.30277562,
                6.1622777,
                7.6310434,
                0.09901953,
                10.09902,
                0.04987526,
                20.049875,
                0.011363983,
                88.01137,
                0.0099983215,
                100.009995,
            ],
        ),
        (
            "soft_shrink",
            [
                0.0,
                0.0,
                0.0,
                0.0,
                -0.19999999,
                0.0,
                0.0,
                0.5,
                -0.5,
                2.0,
                -2.0,
                2.5,
                -2.5,
                5.5,
                7.0,
                -9.5,
                9.5,
                -19.5,
                19.5,
                -87.5,
                87.5,
                -99.5,
                99.5,
            ],
        ),
        (
            "sparse_plus",
            [
                0.25, 0.25005, 0.24994999, 0.42249995, 0.0225, 0.5625, 0.0625, 1.0, 0.0, 2.5, 0.0,
                3.0, 0.0, 6.0, 7.5, 0.0, 10.0, 0.0, 20.0, 0.0, 88.0, 0.0, 100.0,
            ],
        ),
        (
            "silu",
            [
                0.0,
                5.00025e-05,
                -4.9997496e-05,
                0.17233276,
                -0.23226856,
                0.31122968,
                -0.18877034,
                0.7310586,
                -0.26894143,
                2.3103545,
                -0.18964544,
                2.8577223,
                -0.14227763,
                5.9851646,
                7.495854,
                -0.00045397872,
                9.999546,
                -4.1223075e-08,
                20.0,
                -0.0,
                88.0,
                -0.0,
                100.0,
            ],
        ),
        (
            "swish",
            [
                0.0,
                5.00025e-05,
                -4.9997496e-05,
                0.17233276,
                -0.23226856,
                0.31122968,
                -0.18877034,
                0.7310586,
                -0.26894143,
                2.3103545,
                -0.18964544,
                2.8577223,
                -0.14227763,
                5.9851646,
                7.495854,
                -0.00045397872,
                9.999546,
                -4.1223075e-08,
                20.0,
                -0.0,
                88.0,
                -0.0,
                100.0,
            ],
        ),
        (
            "gelu",
            [
                0.0,
                5.0003986e-05,
                -4.9996008e-05,
                0.18537343,
                -0.16937457,
                0.34573123,
                -0.15426877,
                0.8413447,
                -0.15865527,
                2.4844759,
                -0.015524165,
                2.9959502,
                -0.004049696,
                6.0,
                7.5,
                -7.619853e-23,
                10.0,
                -0.0,
                20.0,
                -0.0,
                88.0,
                -0.0,
                100.0,
            ],
        ),
        (
            "tanh",
            [
                0.0,
                0.0001,
                -0.0001,
                0.2913126,
                -0.6043678,
                0.46211717,
                -0.46211717,
                0.7615942,
                -0.7615942,
                0.98661435,
                -0.98661435,
                0.9950547,
                -0.9950547,
                0.9999876,
                0.9999994,
                -1.0,
                1.0,
                -1.0,
                1.0,
                -1.0,
                1.0,
                -1.0,
                1.0,
            ],
        ),
        (
            "tanh_shrink",
            [
                0.0,
                0.0,
                0.0,
                0.008687407,
                -0.095632195,
                0.037882835,
                -0.037882835,
                0.23840582,
                -0.23840582,
                1.5133857,
                -1.5133857,
                2.0049453,
                -2.0049453,
                5.0000124,
                6.5000005,
                -9.0,
                9.0,
                -19.0,
                19.0,
                -87.0,
                87.0,
                -99.0,
                99.0,
            ],
        ),
        (
            "sigmoid",
            [
                0.5,
                0.50002503,
                0.49997497,
                0.5744425,
                0.33181223,
                0.62245935,
                0.37754068,
                0.7310586,
                0.26894143,
                0.9241418,
                0.075858176,
                0.95257413,
                0.047425874,
                0.9975274,
                0.99944717,
                4.5397872e-05,
                0.9999546,
                2.0611537e-09,
                1.0,
                0.0,
                1.0,
                0.0,
                1.0,
            ],
        ),
        (
            "sparse_sigmoid",
            [
                0.5, 0.50005, 0.49995, 0.65, 0.15, 0.75, 0.25, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0,
                1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0,
            ],
        ),
        (
            "exponential",
            [
                1.0,
                1.0001,
                0.9999,
                1.3498588,
                0.4965853,
                1.6487212,
                0.60653067,
                2.7182817,
                0.36787945,
                12.182494,
                0.082085,
                20.085537,
                0.049787067,
                403.4288,
                1808.0425,
                4.539993e-05,
                22026.465,
                2.0611537e-09,
                4.851652e+08,
                0.0,
                1.6516363e+38,
                0.0,
                f32::INFINITY,
            ],
        ),
        (
            "hard_sigmoid",
            [
                0.5,
                0.5000167,
                0.49998337,
                0.55,
                0.38333333,
                0.5833334,
                0.4166667,
                0.6666667,
                0.33333334,
                0.9166667,
                0.083333336,
                1.0,
                0.0,
                1.0,
                1.0,
                0.0,
                1.0,
                0.0,
                1.0,
                0.0,
                1.0,
                0.0,
                1.0,
            ],
        ),
        (
            "hard_silu",
            [
                0.0,
                5.000167e-05,
                -4.9998336e-05,
                0.165,
                -0.26833332,
                0.2916667,
                -0.20833334,
                0.6666667,
                -0.33333334,
                2.2916667,
                -0.20833334,
                3.0,
                -0.0,
                6.0,
                7.5,
                -0.0,
                10.0,
                -0.0,
                20.0,
                -0.0,
                88.0,
                -0.0,
                100.0,
            ],
        ),
        (
            "hard_swish",
            [
                0.0,
                5.000167e-05,
                -4.9998336e-05,
                0.165,
                -0.26833332,
                0.2916667,
                -0.20833334,
                0.6666667,
                -0.33333334,
                2.2916667,
                -0.20833334,
                3.0,
                -0.0,
                6.0,
                7.5,
                -0.0,
                10.0,
                -0.0,
                20.0,
                -0.0,
                88.0,
                -0.0,
                100.0,
            ],
        ),
        (
            "hard_tanh",
            [
                0.0, 0.0001, -0.0001, 0.3, -0.7, 0.5, -0.5, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0,
                1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0,
            ],
        ),
        (
            "hard_shrink",
            [
                0.0, 0.0, 0.0, 0.0, -0.7, 0.0, 0.0, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 6.0, 7.5,
                -10.0, 10.0, -20.0, 20.0, -88.0, 88.0, -100.0, 100.0,
            ],
        ),
        (
            "mish",
            [
                0.0,
                6.0003207e-05,
                -5.99968e-05,
                0.20800136,
                -0.26787025,
                0.37524524,
                -0.22074378,
                0.8650985,
                -0.30340144,
                2.4713924,
                -0.19681618,
                2.9865355,
                -0.14564745,
                5.999927,
                7.499995,
                -0.00045398902,
                10.0,
                -4.1223075e-08,
                20.0,
                -0.0,
                88.0,
                -0.0,
                100.0,
            ],
        ),
        (
            "log_sigmoid",
            [
                -0.6931472,
                -0.6930972,
                -0.6931972,
                -0.55435526,
                -1.1031861,
                -0.474077,
                -0.974077,
                -0.3132617,
                -1.3132617,
                -0.078889735,
                -2.5788898,
                -0.048587352,
                -3.0485873,
                -0.0024756852,
                -0.00055293145,
                -10.000046,
                -4.53989e-05,
                -20.0,
                -2.0611537e-09,
                -88.0,
                -0.0,
                -100.0,
                -0.0,
            ],
        ),
    ];
    /// `keras.activations.get("softmax")(np.array(X, "float32"))` with X the input below.
    const SOFTMAX_X: [[f32; 4]; 5] = [
        [1.0, 2.0, 3.0, 4.0],
        [0.0, 0.0, 0.0, 0.0],
        [-100.0, 0.0, 100.0, 50.0],
        [1.0, 0.9, 0.0, -1.0],
        [1000.0, -1000.0, 0.0, 1.0],
    ];
    #[allow(clippy::approx_constant)]
    const SOFTMAX_Y: [[f32; 4]; 5] = [
        [0.032058604, 0.08714432, 0.23688284, 0.6439143],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 1.0, 1.9287499e-22],
        [0.41527343, 0.37575492, 0.15277056, 0.056201145],
        [1.0, 0.0, 0.0, 0.0],
    ];
    /// `keras.activations.get("log_softmax")(np.array(X, "float32"))` with X the input below.
    const LOG_SOFTMAX_X: [[f32; 4]; 5] = [
        [1.0, 2.0, 3.0, 4.0],
        [0.0, 0.0, 0.0, 0.0],
        [-100.0, 0.0, 100.0, 50.0],
        [1.0, 0.9, 0.0, -1.0],
        [1000.0, -1000.0, 0.0, 1.0],
    ];
    #[allow(clippy::approx_constant)]
    const LOG_SOFTMAX_Y: [[f32; 4]; 5] = [
        [-3.4401896, -2.4401896, -1.4401897, -0.4401897],
        [-1.3862944, -1.3862944, -1.3862944, -1.3862944],
        [-200.0, -100.0, 0.0, -50.0],
        [-0.8788181, -0.9788181, -1.878818, -2.878818],
        [0.0, -2000.0, -1000.0, -999.0],
    ];
    /// `keras.activations.get("sparsemax")(np.array(X, "float32"))` with X the input below.
    const SPARSEMAX_X: [[f32; 4]; 7] = [
        [1.0, 2.0, 3.0, 4.0],
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.9, 0.0, -1.0],
        [0.5, 0.4, 0.3, 0.2],
        [3.0, 1.0, 0.2, -1.0],
        [0.1, 0.2, 0.15, 0.05],
        [-1.0, -2.0, -1.5, -3.0],
    ];
    const SPARSEMAX_Y: [[f32; 4]; 7] = [
        [0.0, 0.0, 0.0, 1.0],
        [0.25, 0.25, 0.25, 0.25],
        [0.049999952, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.075, 0.025000006, 0.0],
        [1.25, 0.25, 0.75, 0.0],
    ];
    /// `keras.activations.get("glu")(np.array(X, "float32"))` with X the input below.
    const GLU_X: [[f32; 6]; 3] = [
        [1.0, -2.0, 0.0, 3.0, 0.0, -1.0],
        [-10.0, 5.0, 0.5, 10.0, -3.0, 100.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ];
    #[allow(clippy::approx_constant)]
    const GLU_Y: [[f32; 3]; 3] = [
        [0.95257413, -1.0, 0.0],
        [-9.999546, 0.23712936, 0.5],
        [0.0, 0.0, 0.0],
    ];

    /// Inputs of the element-wise gradient table (kinks included).
    const XG: [f32; 16] = [
        0.0, -0.5, 0.5, -1.0, 1.0, -3.0, 3.0, 6.0, -2.5, 2.5, 0.3, -0.7, 10.0, -10.0, 30.0, -30.0,
    ];
    /// Produced with KERAS_BACKEND=jax, keras 3.15.1, jax 0.10.2, for each `name`:
    /// `jax.vmap(jax.grad(keras.activations.get(name)))(np.array(XG, "float32"))`.
    #[allow(clippy::approx_constant)]
    const GRAD_GOLDEN: &[(&str, [f32; 16])] = &[
        (
            "linear",
            [
                1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            ],
        ),
        (
            "relu",
            [
                0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0,
            ],
        ),
        (
            "leaky_relu",
            [
                1.0, 0.2, 1.0, 0.2, 1.0, 0.2, 1.0, 1.0, 0.2, 1.0, 1.0, 0.2, 1.0, 0.2, 1.0, 0.2,
            ],
        ),
        (
            "relu6",
            [
                0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            ],
        ),
        (
            "elu",
            [
                1.0,
                0.60653067,
                1.0,
                0.36787945,
                1.0,
                0.049787045,
                1.0,
                1.0,
                0.08208501,
                1.0,
                1.0,
                0.4965853,
                1.0,
                4.541874e-05,
                1.0,
                0.0,
            ],
        ),
        (
            "selu",
            [
                1.7580993,
                1.0663412,
                1.050701,
                0.6467686,
                1.050701,
                0.08753057,
                1.050701,
                1.050701,
                0.1443136,
                1.050701,
                1.050701,
                0.8730463,
                1.050701,
                7.985065e-05,
                1.050701,
                0.0,
            ],
        ),
        (
            "celu",
            [
                1.0,
                0.60653067,
                1.0,
                0.36787945,
                1.0,
                0.049787045,
                1.0,
                1.0,
                0.08208501,
                1.0,
                1.0,
                0.4965853,
                1.0,
                4.541874e-05,
                1.0,
                0.0,
            ],
        ),
        (
            "softplus",
            [
                0.5,
                0.37754068,
                0.62245935,
                0.2689414,
                0.73105854,
                0.047425874,
                0.95257413,
                0.9975273,
                0.07585817,
                0.9241417,
                0.5744425,
                0.3318122,
                0.9999542,
                4.539785e-05,
                1.0,
                9.357623e-14,
            ],
        ),
        (
            "softsign",
            [
                1.0,
                0.44444448,
                0.44444448,
                0.25,
                0.25,
                0.0625,
                0.0625,
                0.020408168,
                0.081632674,
                0.081632674,
                0.59171593,
                0.34602073,
                0.008264467,
                0.008264467,
                0.0010405798,
                0.0010405798,
            ],
        ),
        (
            "squareplus",
            [
                0.5,
                0.37873217,
                0.6212678,
                0.2763932,
                0.7236068,
                0.08397485,
                0.91602516,
                0.97434163,
                0.109565586,
                0.8904344,
                0.57417023,
                0.3348248,
                0.99029034,
                0.009709664,
                0.99889255,
                0.0011074468,
            ],
        ),
        (
            "soft_shrink",
            [
                0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            ],
        ),
        (
            "sparse_plus",
            [
                0.5, 0.25, 0.75, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.65, 0.15, 1.0, 0.0, 1.0, 0.0,
            ],
        ),
        (
            "silu",
            [
                0.5,
                0.26003882,
                0.7399612,
                0.07232949,
                0.92767054,
                -0.08810411,
                1.0881041,
                1.0123262,
                -0.0994011,
                1.0994011,
                0.64778,
                0.17661323,
                1.0004088,
                -0.0004085602,
                1.0,
                -2.713711e-12,
            ],
        ),
        (
            "gelu",
            [
                0.5,
                0.13250488,
                0.8674951,
                -0.08331548,
                1.0833155,
                -0.011945652,
                1.0119456,
                1.0,
                -0.03761109,
                1.0376111,
                0.73232776,
                0.023385927,
                1.0,
                -7.6184e-22,
                1.0,
                0.0,
            ],
        ),
        (
            "tanh",
            [
                1.0,
                0.78644776,
                0.7864477,
                0.41997433,
                0.41997433,
                0.009866118,
                0.009866101,
                2.479538e-05,
                0.026592135,
                0.026592132,
                0.915137,
                0.6347395,
                0.0,
                0.0,
                0.0,
                0.0,
            ],
        ),
        (
            "tanh_shrink",
            [
                0.0, 0.21355224, 0.21355231, 0.5800257, 0.5800257, 0.9901339, 0.9901339, 0.9999752,
                0.97340786, 0.97340786, 0.08486299, 0.36526048, 1.0, 1.0, 1.0, 1.0,
            ],
        ),
        (
            "sigmoid",
            [
                0.25,
                0.23500371,
                0.23500371,
                0.19661194,
                0.19661193,
                0.04517666,
                0.045176655,
                0.0024664658,
                0.07010371,
                0.07010371,
                0.24445832,
                0.22171287,
                4.5416677e-05,
                4.539581e-05,
                0.0,
                9.3576236e-14,
            ],
        ),
        (
            "sparse_sigmoid",
            [
                0.5, 0.5, 0.5, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0,
            ],
        ),
        (
            "exponential",
            [
                1.0,
                0.60653067,
                1.6487212,
                0.36787945,
                2.7182817,
                0.049787067,
                20.085537,
                403.4288,
                0.082085,
                12.182494,
                1.3498588,
                0.4965853,
                22026.465,
                4.539993e-05,
                1.0686474e+13,
                9.357623e-14,
            ],
        ),
        (
            "hard_sigmoid",
            [
                0.16666667, 0.16666667, 0.16666667, 0.16666667, 0.16666667, 0.0, 0.0, 0.0,
                0.16666667, 0.16666667, 0.16666667, 0.16666667, 0.0, 0.0, 0.0, 0.0,
            ],
        ),
        (
            "hard_silu",
            [
                0.5,
                0.33333334,
                0.6666667,
                0.16666667,
                0.8333334,
                0.0,
                1.0,
                1.0,
                -0.33333334,
                1.3333334,
                0.6,
                0.26666665,
                1.0,
                0.0,
                1.0,
                0.0,
            ],
        ),
        (
            "hard_tanh",
            [
                1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0,
            ],
        ),
        (
            "hard_shrink",
            [
                0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            ],
        ),
        (
            "mish",
            [
                0.6,
                0.28951067,
                0.8864244,
                0.059216753,
                1.0490361,
                -0.09339313,
                1.0211061,
                1.0001334,
                -0.109743565,
                1.0411294,
                0.78282726,
                0.18441612,
                1.0,
                -0.0004085796,
                1.0,
                -2.7137108e-12,
            ],
        ),
        (
            "log_sigmoid",
            [
                0.5,
                0.62245935,
                0.37754068,
                0.73105854,
                0.2689414,
                0.95257413,
                0.047425874,
                0.002472623,
                0.9241417,
                0.07585817,
                0.42555746,
                0.66818774,
                4.539785e-05,
                0.9999542,
                9.357623e-14,
                1.0,
            ],
        ),
    ];
    /// `y, vjp = jax.vjp(keras.activations.get("softmax"), X); vjp(DY)` with the X and DY below.
    const SOFTMAX_GRAD_X: [[f32; 4]; 3] = [
        [1.0, 2.0, 3.0, 4.0],
        [0.0, 0.0, 0.0, 0.0],
        [-3.0, 0.0, 3.0, 0.5],
    ];
    const SOFTMAX_GRAD_DY: [[f32; 4]; 3] = [
        [0.5, -1.0, 2.0, 0.25],
        [1.0, -1.0, 0.5, 0.0],
        [0.3, 0.2, -0.7, 1.0],
    ];
    const SOFTMAX_GRAD_DX: [[f32; 4]; 3] = [
        [-0.002039862, -0.13626139, 0.3402516, -0.2019503],
        [0.21875, -0.28125, 0.09375, -0.03125],
        [0.0018252669, 0.03227243, -0.14519626, 0.111098625],
    ];
    /// `y, vjp = jax.vjp(keras.activations.get("log_softmax"), X); vjp(DY)` with the X and DY below.
    const LOG_SOFTMAX_GRAD_X: [[f32; 4]; 3] = [
        [1.0, 2.0, 3.0, 4.0],
        [0.0, 0.0, 0.0, 0.0],
        [-3.0, 0.0, 3.0, 0.5],
    ];
    const LOG_SOFTMAX_GRAD_DY: [[f32; 4]; 3] = [
        [0.5, -1.0, 2.0, 0.25],
        [1.0, -1.0, 0.5, 0.0],
        [0.3, 0.2, -0.7, 1.0],
    ];
    const LOG_SOFTMAX_GRAD_DX: [[f32; 4]; 3] = [
        [0.44389746, -1.1525025, 1.5854551, -0.87685],
        [0.875, -1.125, 0.375, -0.125],
        [0.29825187, 0.16488771, -1.4052492, 0.94210964],
    ];
    /// `y, vjp = jax.vjp(keras.activations.get("sparsemax"), X); vjp(DY)` with the X and DY below.
    const SPARSEMAX_GRAD_X: [[f32; 4]; 5] = [
        [0.1, 0.2, 0.15, 0.05],
        [0.0, 0.0, 0.0, 0.0],
        [-1.0, -2.0, -1.5, -3.0],
        [1.0, 2.0, 3.0, 4.0],
        [0.5, 0.7, 0.5, -1.0],
    ];
    const SPARSEMAX_GRAD_DY: [[f32; 4]; 5] = [
        [0.5, -1.0, 2.0, 0.25],
        [1.0, -1.0, 0.5, 0.0],
        [0.3, 0.2, -0.7, 1.0],
        [1.0, 2.0, 3.0, 4.0],
        [0.5, 1.0, -2.0, 3.0],
    ];
    const SPARSEMAX_GRAD_DX: [[f32; 4]; 5] = [
        [-0.5, -2.0, 1.25, -0.25],
        [0.5, -1.375, 0.25, -0.125],
        [0.5, 0.2, -0.6, 0.0],
        [0.0, 0.0, 1.5, -1.5],
        [0.0, 0.0, -0.0, 0.0],
    ];
    /// `y, vjp = jax.vjp(keras.activations.get("glu"), X); vjp(DY)` with the X and DY below.
    const GLU_GRAD_X: [[f32; 6]; 2] = [
        [1.0, -2.0, 0.0, 3.0, 0.0, -1.0],
        [-10.0, 5.0, 0.5, 10.0, -3.0, 100.0],
    ];
    const GLU_GRAD_DY: [[f32; 3]; 2] = [[0.5, -1.0, 2.0], [1.0, -0.5, 0.25]];
    #[allow(clippy::approx_constant)]
    const GLU_GRAD_DX: [[f32; 6]; 2] = [
        [0.47628707, -0.5, 0.53788286, 0.022588328, 0.5, 0.0],
        [
            0.9999546,
            -0.023712937,
            0.25,
            -0.00045416676,
            -0.112941645,
            0.0,
        ],
    ];

    #[test]
    fn elementwise_forward_matches_keras() {
        for (name, expected) in ELEMENTWISE_GOLDEN {
            let a = act(name);
            assert!(a.is_elementwise(), "{name}");
            let x = Array2::from_shape_vec((1, X.len()), X.to_vec()).unwrap();
            let y = a.forward(x.clone());
            let expected = Array2::from_shape_vec((1, X.len()), expected.to_vec()).unwrap();
            assert_all_close(name, &y, &expected, Some(&x), FORWARD_TOL);
        }
    }

    #[test]
    fn every_elementwise_activation_has_golden_values() {
        for a in Activation::ALL.iter().filter(|a| a.is_elementwise()) {
            assert!(
                ELEMENTWISE_GOLDEN.iter().any(|(n, _)| *n == a.name()),
                "{a}: no forward golden values"
            );
            assert!(
                GRAD_GOLDEN.iter().any(|(n, _)| *n == a.name()),
                "{a}: no gradient golden values"
            );
        }
    }

    #[test]
    fn elementwise_forward_in_parallel_and_any_layout() {
        // 1500 x 23 elements is above PAR_THRESHOLD.
        let rows = 1500;
        assert!(rows * X.len() >= PAR_THRESHOLD);
        let big = Array2::from_shape_fn((rows, X.len()), |(_, j)| X[j]);
        // Column-major copy: same values, non-standard layout.
        let mut fortran = Array2::zeros((rows, X.len()).f());
        fortran.assign(&big);
        for (name, expected) in ELEMENTWISE_GOLDEN {
            let expected = Array2::from_shape_fn((rows, X.len()), |(_, j)| expected[j]);
            let a = act(name);
            let y = a.forward(big.clone());
            assert_all_close(name, &y, &expected, Some(&big), FORWARD_TOL);
            let y = a.forward(fortran.clone());
            assert_all_close(name, &y, &expected, Some(&big), FORWARD_TOL);
        }
    }

    #[test]
    fn elementwise_forward_reuses_the_buffer() {
        for &a in Activation::ALL.iter().filter(|a| a.is_elementwise()) {
            for rows in [2, 2000] {
                let x = Array2::from_shape_fn((rows, 20), |(i, j)| (i as f32 - j as f32) / 7.0);
                let ptr = x.as_ptr();
                assert_eq!(a.forward(x).as_ptr(), ptr, "{a}");
            }
        }
    }

    #[test]
    fn rowwise_forward_matches_keras() {
        let cases: [(&str, Array2<f32>, Array2<f32>); 4] = [
            ("softmax", matrix(&SOFTMAX_X), matrix(&SOFTMAX_Y)),
            (
                "log_softmax",
                matrix(&LOG_SOFTMAX_X),
                matrix(&LOG_SOFTMAX_Y),
            ),
            ("sparsemax", matrix(&SPARSEMAX_X), matrix(&SPARSEMAX_Y)),
            ("glu", matrix(&GLU_X), matrix(&GLU_Y)),
        ];
        for (name, x, expected) in cases {
            let a = act(name);
            assert!(!a.is_elementwise(), "{name}");
            assert_eq!(
                a.output_width(x.ncols()).unwrap(),
                expected.ncols(),
                "{name}"
            );
            assert_all_close(name, &a.forward(x.clone()), &expected, None, FORWARD_TOL);

            // Parallel path (tiled rows) and column-major layout give the same values.
            let reps = PAR_THRESHOLD / x.len() + 1;
            let tile = |m: &Array2<f32>| {
                Array2::from_shape_fn((m.nrows() * reps, m.ncols()), |(i, j)| {
                    m[[i % m.nrows(), j]]
                })
            };
            let (big, big_expected) = (tile(&x), tile(&expected));
            let y = a.forward(big.clone());
            assert_all_close(name, &y, &big_expected, None, FORWARD_TOL);
            let mut fortran = Array2::zeros(big.raw_dim().f());
            fortran.assign(&big);
            let y = a.forward(fortran);
            assert_all_close(name, &y, &big_expected, None, FORWARD_TOL);
        }
    }

    #[test]
    fn elementwise_backward_matches_jax_grad() {
        let x = Array2::from_shape_vec((1, XG.len()), XG.to_vec()).unwrap();
        let ones = Array2::ones(x.raw_dim());
        for (name, expected) in GRAD_GOLDEN {
            let a = act(name);
            let y = a.forward(x.clone());
            let dx = a.backward(x.view(), y.view(), ones.view());
            let expected = Array2::from_shape_vec((1, XG.len()), expected.to_vec()).unwrap();
            assert_all_close(name, &dx, &expected, None, GRAD_TOL);

            // Scaling dy scales dx (dy = 3 is exact in f32).
            let dx3 = a.backward(x.view(), y.view(), (&ones * 3.0).view());
            assert_all_close(name, &dx3, &(&dx * 3.0), None, GRAD_TOL);
        }
    }

    #[test]
    fn rowwise_backward_matches_jax_vjp() {
        type Case = (&'static str, Array2<f32>, Array2<f32>, Array2<f32>);
        let cases: [Case; 4] = [
            (
                "softmax",
                matrix(&SOFTMAX_GRAD_X),
                matrix(&SOFTMAX_GRAD_DY),
                matrix(&SOFTMAX_GRAD_DX),
            ),
            (
                "log_softmax",
                matrix(&LOG_SOFTMAX_GRAD_X),
                matrix(&LOG_SOFTMAX_GRAD_DY),
                matrix(&LOG_SOFTMAX_GRAD_DX),
            ),
            (
                "sparsemax",
                matrix(&SPARSEMAX_GRAD_X),
                matrix(&SPARSEMAX_GRAD_DY),
                matrix(&SPARSEMAX_GRAD_DX),
            ),
            (
                "glu",
                matrix(&GLU_GRAD_X),
                matrix(&GLU_GRAD_DY),
                matrix(&GLU_GRAD_DX),
            ),
        ];
        for (name, x, dy, expected) in cases {
            let a = act(name);
            let y = a.forward(x.clone());
            let dx = a.backward(x.view(), y.view(), dy.view());
            assert_all_close(name, &dx, &expected, None, GRAD_TOL);

            // The parallel path gives the same bits row by row.
            let reps = PAR_THRESHOLD / x.len() + 1;
            let tile = |m: &Array2<f32>| {
                Array2::from_shape_fn((m.nrows() * reps, m.ncols()), |(i, j)| {
                    m[[i % m.nrows(), j]]
                })
            };
            let (bx, bdy) = (tile(&x), tile(&dy));
            let by = a.forward(bx.clone());
            assert_eq!(
                a.backward(bx.view(), by.view(), bdy.view()),
                tile(&dx),
                "{name}"
            );
        }
    }

    /// `sum(dy * forward(x))` in f64.
    fn weighted_sum(a: Activation, x: &Array2<f32>, dy: &Array2<f32>) -> f64 {
        let y = a.forward(x.clone());
        y.iter()
            .zip(dy)
            .map(|(&y, &g)| f64::from(y) * f64::from(g))
            .sum()
    }

    /// Keras's sparsemax in f64, returning `(tau, smallest distance to a kink)`.
    fn sparsemax_reference(row: &[f32]) -> (f64, f64) {
        let mut sorted: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let (mut cumsum, mut support_cumsum, mut k, mut margin) = (0.0, 0.0, 0.0, f64::INFINITY);
        for (i, &v) in sorted.iter().enumerate() {
            cumsum += v;
            let m = v - (cumsum - 1.0) / (i + 1) as f64;
            margin = margin.min(m.abs());
            if m > 0.0 {
                k += 1.0;
                support_cumsum += cumsum;
            }
        }
        let tau = (support_cumsum - 1.0) / k;
        for &v in &sorted {
            margin = margin.min((v - tau).abs());
        }
        (tau, margin)
    }

    /// Random inputs away from the kinks of `a`.
    fn smooth_input(a: Activation, rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
        loop {
            let x = Array2::from_shape_simple_fn((rows, cols), || {
                loop {
                    let v = if a == Activation::Sparsemax {
                        rng.uniform(-1.0, 1.0)
                    } else {
                        rng.uniform(-4.0, 7.0)
                    };
                    if !a.is_elementwise() || KINKS.iter().all(|k| (v - k).abs() > 0.02) {
                        break v;
                    }
                }
            });
            let smooth = a != Activation::Sparsemax
                || x.rows()
                    .into_iter()
                    .all(|r| sparsemax_reference(&r.to_vec()).1 > 0.05);
            if smooth {
                return x;
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &a in Activation::ALL {
            let (rows, cols) = (3, 8);
            let x = smooth_input(a, &mut rng, rows, cols);
            let out_cols = a.output_width(cols).unwrap();
            let dy = Array2::from_shape_simple_fn((rows, out_cols), || rng.uniform(-1.0, 1.0));
            let y = a.forward(x.clone());
            let dx = a.backward(x.view(), y.view(), dy.view());
            assert_eq!(dx.shape(), x.shape(), "{a}");
            for ((i, j), &analytic) in dx.indexed_iter() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[[i, j]] += FD_STEP;
                xm[[i, j]] -= FD_STEP;
                let step = f64::from(xp[[i, j]]) - f64::from(xm[[i, j]]);
                let fd = (weighted_sum(a, &xp, &dy) - weighted_sum(a, &xm, &dy)) / step;
                let analytic = f64::from(analytic);
                assert!(
                    (fd - analytic).abs() <= FD_REL_TOL * fd.abs().max(analytic.abs()) + FD_ABS_TOL,
                    "{a} at ({i}, {j}), x = {}: backward {analytic}, finite difference {fd}",
                    x[[i, j]]
                );
            }
        }
    }

    #[test]
    fn sparsemax_follows_the_keras_formula() {
        let mut rng = Rng(42);
        let x = Array2::from_shape_simple_fn((50, 7), || rng.uniform(-2.0, 2.0));
        let y = Activation::Sparsemax.forward(x.clone());
        for (xr, yr) in x.rows().into_iter().zip(y.rows()) {
            let (tau, _) = sparsemax_reference(&xr.to_vec());
            for (&xv, &yv) in xr.iter().zip(yr) {
                let expected = (f64::from(xv) - tau).max(0.0);
                assert!((f64::from(yv) - expected).abs() < 1e-5, "{xr} -> {yr}");
            }
        }
    }

    #[test]
    fn empty_batches_and_rows() {
        for &a in Activation::ALL {
            let x = Array2::<f32>::zeros((0, 4));
            let y = a.forward(x.clone());
            assert_eq!(y.shape(), &[0, a.output_width(4).unwrap()], "{a}");
            assert_eq!(
                a.backward(x.view(), y.view(), y.view()).shape(),
                &[0, 4],
                "{a}"
            );
            let x = Array2::<f32>::zeros((3, 0));
            let y = a.forward(x.clone());
            assert_eq!(y.shape(), &[3, 0], "{a}");
            assert_eq!(
                a.backward(x.view(), y.view(), y.view()).shape(),
                &[3, 0],
                "{a}"
            );
        }
    }

    #[test]
    fn nan_propagates_where_jax_propagates_it() {
        let x = Array2::from_elem((1, 2), f32::NAN);
        for a in [
            Activation::Relu,
            Activation::Relu6,
            Activation::Elu,
            Activation::Celu,
            Activation::Softplus,
            Activation::Sigmoid,
            Activation::SparseSigmoid,
            Activation::HardSigmoid,
            Activation::Softmax,
            Activation::LogSoftmax,
            Activation::Mish,
        ] {
            assert!(a.forward(x.clone()).iter().all(|v| v.is_nan()), "{a}");
        }
        // `where(x > t, .., where(x < -t, .., 0))` maps NaN to 0 in jax as well.
        assert_eq!(Activation::SoftShrink.forward(x.clone())[[0, 0]], 0.0);
        assert_eq!(Activation::HardShrink.forward(x)[[0, 0]], 0.0);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_survive_large_logits() {
        let x =
            Array2::from_shape_vec((2, 3), vec![1000.0, 999.0, -1000.0, -1e30, 0.0, 1e30]).unwrap();
        let y = Activation::Softmax.forward(x.clone());
        for row in y.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6, "{row}");
        }
        let log = Activation::LogSoftmax.forward(x);
        assert!(
            log.iter().all(|v| v.is_finite() || *v == f32::NEG_INFINITY),
            "{log}"
        );
    }

    // --- Config parsing ---------------------------------------------------------------

    #[test]
    fn names_round_trip_and_cover_the_registry() {
        assert_eq!(Activation::NAMES.len(), Activation::ALL.len() + 2);
        for &a in Activation::ALL {
            assert_eq!(Activation::from_name(a.name()).unwrap(), a);
            assert!(Activation::NAMES.contains(&a.name()), "{a}");
            assert_eq!(a.to_string(), a.name());
        }
        for name in Activation::NAMES {
            let a = act(name);
            assert_eq!(Activation::from_config(&json!(name)).unwrap(), a);
        }
    }

    #[test]
    fn from_config_accepts_strings_aliases_objects_and_null() {
        let parse = |v: Value| Activation::from_config(&v).unwrap();
        // What Keras 3.15.1 writes: `Dense(3, activation="swish").get_config()["activation"]`
        // is "silu", and "linear" for `activation=None`.
        assert_eq!(parse(json!("relu")), Activation::Relu);
        assert_eq!(parse(json!("silu")), Activation::Silu);
        assert_eq!(parse(json!("swish")), Activation::Silu);
        assert_eq!(parse(json!("hard_swish")), Activation::HardSilu);
        assert_eq!(Activation::Silu.name(), "silu");
        assert_eq!(Activation::HardSilu.name(), "hard_silu");
        assert_eq!(parse(json!("linear")), Activation::Linear);
        assert_eq!(parse(Value::Null), Activation::Linear);
        assert_eq!(
            parse(json!({
                "module": "keras.activations",
                "class_name": "function",
                "config": "relu",
                "registered_name": "function"
            })),
            Activation::Relu
        );
        assert_eq!(
            parse(json!({
                "module": "builtins",
                "class_name": "function",
                "config": "gelu",
                "registered_name": "function"
            })),
            Activation::Gelu
        );
        assert_eq!(
            parse(json!({"module": "keras.activations", "class_name": "softmax", "config": null})),
            Activation::Softmax
        );
    }

    #[test]
    fn from_config_rejects_unknown_names_listing_the_supported_ones() {
        let err = Activation::from_config(&json!("swishy")).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err.kind(), crate::error::ErrorKind::Unsupported { what: "activation", name, .. } if name == "swishy"),
            "{msg}"
        );
        assert!(msg.contains("unsupported activation `swishy`"), "{msg}");
        for name in Activation::NAMES {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }
        // Names are case-sensitive, as in `ALL_OBJECTS_DICT`.
        assert!(Activation::from_config(&json!("ReLU")).is_err());
        // A user function that only shares a name.
        let err = Activation::from_config(&json!({
            "module": "my_package.acts",
            "class_name": "function",
            "config": "relu",
            "registered_name": "function"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("`my_package.acts.relu`"), "{err}");
        // A custom registered function and a layer object.
        let err = Activation::from_config(&json!({
            "module": "builtins",
            "class_name": "function",
            "config": "my_package>my_fn",
            "registered_name": "function"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("`my_package>my_fn`"), "{err}");
        let err = Activation::from_config(&json!({
            "module": "keras.layers",
            "class_name": "ReLU",
            "config": {"name": "re_lu"}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("`ReLU`"), "{err}");
    }

    #[test]
    fn from_config_rejects_threshold_and_malformed_values() {
        let err = Activation::from_config(&json!("threshold")).unwrap_err();
        assert!(err.to_string().contains("default_value"), "{err}");
        for bad in [
            json!(1),
            json!(true),
            json!(["relu"]),
            json!({"config": "relu"}),
        ] {
            let err = Activation::from_config(&bad).unwrap_err();
            assert!(
                matches!(err.kind(), crate::error::ErrorKind::Invalid(_)),
                "{bad}: {err}"
            );
        }
        let err =
            Activation::from_config(&json!({"class_name": "function", "config": 3})).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
    }

    #[test]
    fn output_width_halves_for_glu_only() {
        for &a in Activation::ALL {
            if a == Activation::Glu {
                assert_eq!(a.output_width(8).unwrap(), 4);
                assert_eq!(a.output_width(0).unwrap(), 0);
                let err = a.output_width(7).unwrap_err();
                assert!(
                    matches!(err.kind(), crate::error::ErrorKind::Mismatch { .. }),
                    "{err}"
                );
                assert!(err.to_string().contains("width 7"), "{err}");
            } else {
                assert_eq!(a.output_width(7).unwrap(), 7, "{a}");
            }
        }
        let elementwise: Vec<_> = Activation::ALL
            .iter()
            .filter(|a| !a.is_elementwise())
            .collect();
        assert_eq!(
            elementwise,
            [
                &Activation::Glu,
                &Activation::Softmax,
                &Activation::LogSoftmax,
                &Activation::Sparsemax
            ]
        );
    }

    #[test]
    #[should_panic(expected = "even feature width")]
    fn glu_forward_panics_on_odd_width() {
        let _ = Activation::Glu.forward(Array2::zeros((2, 3)));
    }

    #[test]
    fn linear_is_identity_both_ways() {
        let x = Array2::from_shape_vec((2, 2), vec![1.0, -2.0, 3.0, f32::NAN]).unwrap();
        let y = Activation::Linear.forward(x.clone());
        assert!(y.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits()));
        let dy = Array1::from(vec![0.5f32, 2.0])
            .broadcast((2, 2))
            .unwrap()
            .to_owned();
        assert_eq!(
            Activation::Linear.backward(x.view(), y.view(), dy.view()),
            dy
        );
    }
}
