//! Keras losses: parsed from `compile_config["loss"]`, evaluated per sample,
//! reduced like `model.fit` reduces them, and differentiated like `jax.grad`.
//!
//! # Specification
//!
//! Keras 3.15.1 on the JAX backend (jax 0.10.2); paths relative to
//! `site-packages/`:
//!
//! * `keras/src/losses/losses.py`: the loss functions (the formulas below) and
//!   the `Loss` classes with their options and `get_config`;
//! * `keras/src/losses/loss.py`: `Loss.__call__` and `reduce_values` — the
//!   default reduction `sum_over_batch_size` is `sum(per_sample) / batch`
//!   (`divide_no_nan`, so an empty batch gives 0);
//! * `keras/src/losses/__init__.py`: the identifiers (`ALL_OBJECTS_DICT`:
//!   class names, function names, aliases `mse`, `MSE`, `mae`, `MAE`, `mape`,
//!   `MAPE`, `msle`, `MSLE`, `bce`, `BCE`, `kld`, `KLD`);
//! * `keras/src/trainers/compile_utils.py` (`get_loss`): the identifiers
//!   `"crossentropy"`/`"ce"` (any case) pick binary, sparse or categorical
//!   crossentropy from the target and output shapes
//!   ([`Loss::from_config_with_shapes`]);
//! * `keras/src/backend/jax/nn.py`: `binary_crossentropy`,
//!   `categorical_crossentropy`, `sparse_categorical_crossentropy` (the
//!   `epsilon()` clipping, the renormalisation `output / sum(output)`, the
//!   `from_logits` paths through `jax.nn.log_sigmoid` and `log_softmax`);
//! * `keras/src/saving/serialization_lib.py`: how serialized loss objects and
//!   functions resolve.
//!
//! # Config form
//!
//! Keras 3.15.1 writes `compile(loss="mse")` as the string itself (`"mse"`), a
//! loss object as `{"module": "keras.losses", "class_name": "Huber", "config":
//! {"name": "huber_loss", "reduction": "sum_over_batch_size"}, "registered_name":
//! null}` and a loss function such as `keras.losses.huber` as `{"module":
//! "builtins", "class_name": "function", "config": "huber", "registered_name":
//! "function"}`. Note that `Huber.get_config` does not write `delta`: a model
//! compiled with `Huber(delta=2.0)` is reloaded by Keras with `delta=1.0`, and
//! [`Loss::from_config`] does the same (it reads `delta` when present).
//!
//! # Numerics and gradients
//!
//! Everything is `f32` in Keras's order of operations: element-wise losses
//! take the mean over the last axis (`sum / width`), then the reduction sums
//! over the batch and divides by the batch size. [`Loss::loss_and_grad`]
//! follows the JVP rules jax transposes: `jnp.clip` is
//! `minimum(hi, maximum(lo, x))`, so the gradient is 0 outside the clip range
//! and 1/2 exactly at a bound (`lax.max`'s balanced tie rule); `abs` has
//! gradient `+1` at 0; `maximum(z, 0)` ties give 1/2; `softplus` uses the
//! `logaddexp` JVP `exp(x - softplus(x))`; `max` over a row splits the
//! gradient between tied maxima; the categorical renormalisation passes the
//! gradient through `output / sum(output)`.

use std::f32::consts::LN_2;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// `keras.backend.epsilon()` (keras/src/backend/config.py, `1e-7`) as the `f32`
/// jax converts it to.
pub const EPSILON: f32 = 1e-7;

/// The upper clip bound `1.0 - epsilon()` of keras/src/backend/jax/nn.py: computed
/// as a Python `float`, then rounded to `f32` (jax weak typing).
const ONE_MINUS_EPSILON: f32 = (1.0f64 - 1e-7f64) as f32;

/// A Keras loss. Closed set; parsed from config; one `match` per evaluation.
///
/// Each variant documents the per-element or per-row formula it follows. For
/// the element-wise ones the per-sample loss is the mean of that formula over
/// the last axis, unless noted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// `mean(square(y_true - y_pred))` (keras/src/losses/losses.py `mean_squared_error`).
    MeanSquaredError,
    /// `mean(abs(y_true - y_pred))` (keras/src/losses/losses.py `mean_absolute_error`).
    MeanAbsoluteError,
    /// `100 * mean(abs((y_true - y_pred) / maximum(abs(y_true), epsilon)))`
    /// (keras/src/losses/losses.py `mean_absolute_percentage_error`).
    MeanAbsolutePercentageError,
    /// `mean(square(log(maximum(y_pred, eps) + 1) - log(maximum(y_true, eps) + 1)))`
    /// (keras/src/losses/losses.py `mean_squared_logarithmic_error`).
    MeanSquaredLogarithmicError,
    /// With `error = y_pred - y_true`: `mean(where(|error| <= delta, 0.5 * error²,
    /// delta * |error| - 0.5 * delta²))` (keras/src/losses/losses.py `huber`).
    Huber {
        /// The switch point between the quadratic and the linear part (Keras default 1.0).
        delta: f32,
    },
    /// With `x = y_pred - y_true`: `mean(x + softplus(-2x) - log(2))`
    /// (keras/src/losses/losses.py `log_cosh`).
    LogCosh,
    /// `mean(-(t * log(o) + (1 - t) * log(1 - o)))` with `o = clip(y_pred, eps, 1 - eps)`,
    /// or from logits `mean(-t * log_sigmoid(x) - (1 - t) * log_sigmoid(-x))`;
    /// smoothing `t = y_true * (1 - ls) + 0.5 * ls` (keras/src/losses/losses.py
    /// `binary_crossentropy`, keras/src/backend/jax/nn.py `binary_crossentropy`).
    BinaryCrossentropy {
        /// `y_pred` holds logits rather than probabilities.
        from_logits: bool,
        /// Label smoothing `ls` in `[0, 1]`.
        label_smoothing: f32,
    },
    /// `mean(w * (1 - p_t)^gamma * bce)` with `bce` the element-wise binary
    /// crossentropy of the (sigmoid of the) prediction, `p_t = t * p + (1 - t) * (1 - p)`
    /// and `w = t * alpha + (1 - t) * (1 - alpha)` when balancing, else 1
    /// (keras/src/losses/losses.py `binary_focal_crossentropy`).
    BinaryFocalCrossentropy {
        /// Weight the classes with `alpha` / `1 - alpha`.
        apply_class_balancing: bool,
        /// Class-balancing weight of the positive class (Keras default 0.25).
        alpha: f32,
        /// Focusing exponent (Keras default 2.0).
        gamma: f32,
        /// `y_pred` holds logits rather than probabilities.
        from_logits: bool,
        /// Label smoothing as in [`Loss::BinaryCrossentropy`].
        label_smoothing: f32,
    },
    /// Per row: `-sum(t * log(clip(y_pred / sum(y_pred), eps, 1 - eps)))`, or from
    /// logits `-sum(t * log_softmax(y_pred))`; smoothing `t = y_true * (1 - ls) + ls / k`
    /// (keras/src/losses/losses.py `categorical_crossentropy`,
    /// keras/src/backend/jax/nn.py `categorical_crossentropy`).
    CategoricalCrossentropy {
        /// `y_pred` holds logits rather than probabilities.
        from_logits: bool,
        /// Label smoothing `ls` in `[0, 1]`.
        label_smoothing: f32,
    },
    /// Per row: `sum(alpha * (1 - o)^gamma * -t * log(o))` with
    /// `o = clip(p / sum(p), eps, 1 - eps)`, `p = softmax(y_pred)` from logits
    /// (keras/src/losses/losses.py `categorical_focal_crossentropy`).
    CategoricalFocalCrossentropy {
        /// Weight of every class (Keras default 0.25).
        alpha: f32,
        /// Focusing exponent (Keras default 2.0).
        gamma: f32,
        /// `y_pred` holds logits rather than probabilities.
        from_logits: bool,
        /// Label smoothing as in [`Loss::CategoricalCrossentropy`].
        label_smoothing: f32,
    },
    /// [`Loss::CategoricalCrossentropy`] of `one_hot(int32(y_true))`, labels of
    /// shape `[batch, 1]` (keras/src/losses/losses.py `sparse_categorical_crossentropy`,
    /// keras/src/backend/jax/nn.py `sparse_categorical_crossentropy`).
    SparseCategoricalCrossentropy {
        /// `y_pred` holds logits rather than probabilities.
        from_logits: bool,
    },
    /// Per row: `sum(t * log(t / p))` with `t`, `p` clipped to `[eps, 1]`; a sum,
    /// not a mean (keras/src/losses/losses.py `kl_divergence`).
    KLDivergence,
    /// `mean(y_pred - y_true * log(y_pred + eps))` (keras/src/losses/losses.py `poisson`).
    Poisson,
    /// `mean(maximum(1 - t * y_pred, 0))` where `t = 2 * y_true - 1` if every target
    /// of the batch is 0 or 1, else `y_true` (keras/src/losses/losses.py `hinge`,
    /// `convert_binary_labels_to_hinge`).
    Hinge,
    /// `mean(square(maximum(1 - t * y_pred, 0)))`, `t` as for [`Loss::Hinge`]
    /// (keras/src/losses/losses.py `squared_hinge`).
    SquaredHinge,
    /// Per row: `maximum(max((1 - t) * p) - sum(t * p) + 1, 0)`
    /// (keras/src/losses/losses.py `categorical_hinge`).
    CategoricalHinge,
}

/// The loss functions of keras/src/losses/losses.py without their options: what
/// an identifier names before the options are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LossFn {
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Huber,
    LogCosh,
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    SparseCategoricalCrossentropy,
    KLDivergence,
    Poisson,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
}

impl LossFn {
    /// Every supported function, in the order of [`Loss::NAMES`].
    const ALL: [LossFn; 16] = [
        LossFn::MeanSquaredError,
        LossFn::MeanAbsoluteError,
        LossFn::MeanAbsolutePercentageError,
        LossFn::MeanSquaredLogarithmicError,
        LossFn::Huber,
        LossFn::LogCosh,
        LossFn::BinaryCrossentropy,
        LossFn::BinaryFocalCrossentropy,
        LossFn::CategoricalCrossentropy,
        LossFn::CategoricalFocalCrossentropy,
        LossFn::SparseCategoricalCrossentropy,
        LossFn::KLDivergence,
        LossFn::Poisson,
        LossFn::Hinge,
        LossFn::SquaredHinge,
        LossFn::CategoricalHinge,
    ];

    /// The Python function's `__name__` (keras/src/losses/losses.py).
    pub(crate) fn function_name(self) -> &'static str {
        match self {
            LossFn::MeanSquaredError => "mean_squared_error",
            LossFn::MeanAbsoluteError => "mean_absolute_error",
            LossFn::MeanAbsolutePercentageError => "mean_absolute_percentage_error",
            LossFn::MeanSquaredLogarithmicError => "mean_squared_logarithmic_error",
            LossFn::Huber => "huber",
            LossFn::LogCosh => "log_cosh",
            LossFn::BinaryCrossentropy => "binary_crossentropy",
            LossFn::BinaryFocalCrossentropy => "binary_focal_crossentropy",
            LossFn::CategoricalCrossentropy => "categorical_crossentropy",
            LossFn::CategoricalFocalCrossentropy => "categorical_focal_crossentropy",
            LossFn::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            LossFn::KLDivergence => "kl_divergence",
            LossFn::Poisson => "poisson",
            LossFn::Hinge => "hinge",
            LossFn::SquaredHinge => "squared_hinge",
            LossFn::CategoricalHinge => "categorical_hinge",
        }
    }

    /// The `Loss` class wrapping the function (keras/src/losses/losses.py).
    fn class_name(self) -> &'static str {
        match self {
            LossFn::MeanSquaredError => "MeanSquaredError",
            LossFn::MeanAbsoluteError => "MeanAbsoluteError",
            LossFn::MeanAbsolutePercentageError => "MeanAbsolutePercentageError",
            LossFn::MeanSquaredLogarithmicError => "MeanSquaredLogarithmicError",
            LossFn::Huber => "Huber",
            LossFn::LogCosh => "LogCosh",
            LossFn::BinaryCrossentropy => "BinaryCrossentropy",
            LossFn::BinaryFocalCrossentropy => "BinaryFocalCrossentropy",
            LossFn::CategoricalCrossentropy => "CategoricalCrossentropy",
            LossFn::CategoricalFocalCrossentropy => "CategoricalFocalCrossentropy",
            LossFn::SparseCategoricalCrossentropy => "SparseCategoricalCrossentropy",
            LossFn::KLDivergence => "KLDivergence",
            LossFn::Poisson => "Poisson",
            LossFn::Hinge => "Hinge",
            LossFn::SquaredHinge => "SquaredHinge",
            LossFn::CategoricalHinge => "CategoricalHinge",
        }
    }

    /// The function named `name` (a function `__name__`, as in serialized functions).
    pub(crate) fn from_function_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.function_name() == name)
    }

    /// The function whose `Loss` class is `name`.
    fn from_class_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.class_name() == name)
    }

    /// A string identifier as keras/src/losses/__init__.py `get` resolves it: class
    /// names, function names and the aliases of `ALL_OBJECTS_DICT` (case-sensitive).
    fn from_identifier(name: &str) -> Option<Self> {
        let alias = match name {
            "mse" | "MSE" => Some(LossFn::MeanSquaredError),
            "mae" | "MAE" => Some(LossFn::MeanAbsoluteError),
            "mape" | "MAPE" => Some(LossFn::MeanAbsolutePercentageError),
            "msle" | "MSLE" => Some(LossFn::MeanSquaredLogarithmicError),
            "bce" | "BCE" => Some(LossFn::BinaryCrossentropy),
            "kld" | "KLD" => Some(LossFn::KLDivergence),
            _ => None,
        };
        alias
            .or_else(|| Self::from_function_name(name))
            .or_else(|| Self::from_class_name(name))
    }

    /// The keyword arguments of the function (keras/src/losses/losses.py
    /// signatures), which are also the options of its `Loss` class.
    pub(crate) fn kwargs(self) -> &'static [&'static str] {
        match self {
            LossFn::Huber => &["delta"],
            LossFn::BinaryCrossentropy | LossFn::CategoricalCrossentropy => {
                &["from_logits", "label_smoothing", "axis"]
            }
            LossFn::SparseCategoricalCrossentropy => &["from_logits", "ignore_class", "axis"],
            LossFn::BinaryFocalCrossentropy => &[
                "apply_class_balancing",
                "alpha",
                "gamma",
                "from_logits",
                "label_smoothing",
                "axis",
            ],
            LossFn::CategoricalFocalCrossentropy => {
                &["alpha", "gamma", "from_logits", "label_smoothing", "axis"]
            }
            _ => &[],
        }
    }

    /// The loss with the options in `opts` (absent options take Keras's defaults).
    pub(crate) fn build(self, opts: &Options<'_>) -> Result<Loss> {
        opts.check_keys()?;
        opts.check_common()?;
        Ok(match self {
            LossFn::MeanSquaredError => Loss::MeanSquaredError,
            LossFn::MeanAbsoluteError => Loss::MeanAbsoluteError,
            LossFn::MeanAbsolutePercentageError => Loss::MeanAbsolutePercentageError,
            LossFn::MeanSquaredLogarithmicError => Loss::MeanSquaredLogarithmicError,
            LossFn::Huber => Loss::Huber {
                delta: opts.f32("delta", 1.0)?,
            },
            LossFn::LogCosh => Loss::LogCosh,
            LossFn::BinaryCrossentropy => Loss::BinaryCrossentropy {
                from_logits: opts.bool("from_logits", false)?,
                label_smoothing: opts.f32("label_smoothing", 0.0)?,
            },
            LossFn::BinaryFocalCrossentropy => Loss::BinaryFocalCrossentropy {
                apply_class_balancing: opts.bool("apply_class_balancing", false)?,
                alpha: opts.f32("alpha", 0.25)?,
                gamma: opts.f32("gamma", 2.0)?,
                from_logits: opts.bool("from_logits", false)?,
                label_smoothing: opts.f32("label_smoothing", 0.0)?,
            },
            LossFn::CategoricalCrossentropy => Loss::CategoricalCrossentropy {
                from_logits: opts.bool("from_logits", false)?,
                label_smoothing: opts.f32("label_smoothing", 0.0)?,
            },
            LossFn::CategoricalFocalCrossentropy => Loss::CategoricalFocalCrossentropy {
                alpha: opts.f32("alpha", 0.25)?,
                gamma: opts.f32("gamma", 2.0)?,
                from_logits: opts.bool("from_logits", false)?,
                label_smoothing: opts.f32("label_smoothing", 0.0)?,
            },
            LossFn::SparseCategoricalCrossentropy => Loss::SparseCategoricalCrossentropy {
                from_logits: opts.bool("from_logits", false)?,
            },
            LossFn::KLDivergence => Loss::KLDivergence,
            LossFn::Poisson => Loss::Poisson,
            LossFn::Hinge => Loss::Hinge,
            LossFn::SquaredHinge => Loss::SquaredHinge,
            LossFn::CategoricalHinge => Loss::CategoricalHinge,
        })
    }
}

/// The options of one serialized Keras object (a class `config` or a function's
/// keyword arguments): checked against the accepted keys, read with defaults.
pub(crate) struct Options<'a> {
    /// What the options belong to, for messages (``loss `Huber` ``).
    owner: String,
    map: Option<&'a Map<String, Value>>,
    allowed: Vec<&'static str>,
}

impl<'a> Options<'a> {
    /// Options `map` (absent: none) of `owner`, accepting the keys `allowed`.
    pub(crate) fn new(
        owner: impl Into<String>,
        map: Option<&'a Map<String, Value>>,
        allowed: Vec<&'static str>,
    ) -> Self {
        Options {
            owner: owner.into(),
            map,
            allowed,
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key))
    }

    /// Every key must be accepted (Keras passes them as keyword arguments, so an
    /// unknown one is a `TypeError` there).
    pub(crate) fn check_keys(&self) -> Result<()> {
        for key in self.map.into_iter().flat_map(Map::keys) {
            if !self.allowed.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "{}: unknown option `{key}` (accepted: {})",
                    self.owner,
                    self.allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The options every loss and metric may carry: `name` (any string),
    /// `reduction` (`sum_over_batch_size`, or the equivalent `mean`), `dtype`
    /// (`float32`), `axis` (-1), `ignore_class` (null), `from_sorted_ids` (false).
    pub(crate) fn check_common(&self) -> Result<()> {
        if let Some(name) = self.get("name")
            && !(name.is_string() || name.is_null())
        {
            return Err(self.bad("name", "a string", name));
        }
        if let Some(reduction) = self.get("reduction") {
            // keras/src/losses/loss.py `reduce_values`: "mean" takes the same branch as
            // "sum_over_batch_size"; "mean_with_sample_weight" differs once sample weights
            // are used, "sum" and None do not average.
            match reduction.as_str() {
                Some("sum_over_batch_size" | "mean") => {}
                Some(other) => {
                    return Err(Error::unsupported(
                        "loss reduction",
                        other,
                        &["sum_over_batch_size", "mean"],
                    ));
                }
                None => {
                    return Err(Error::unsupported(
                        "loss reduction",
                        reduction.to_string(),
                        &["sum_over_batch_size", "mean"],
                    ));
                }
            }
        }
        if let Some(dtype) = self.get("dtype") {
            let name = match dtype {
                Value::Null => Some("float32"),
                Value::String(s) => Some(s.as_str()),
                // A serialized `DTypePolicy`: {"class_name": "DTypePolicy", "config": {"name": ..}}.
                Value::Object(o) => o
                    .get("config")
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str),
                _ => None,
            };
            if name != Some("float32") {
                return Err(Error::unsupported(
                    "loss or metric dtype",
                    dtype.to_string(),
                    &["float32"],
                ));
            }
        }
        if let Some(axis) = self.get("axis")
            && axis.as_i64() != Some(-1)
        {
            return Err(Error::invalid(format!(
                "{}: option `axis` = {axis} is not supported (only -1, the last axis)",
                self.owner
            )));
        }
        if let Some(ignore) = self.get("ignore_class")
            && !ignore.is_null()
        {
            return Err(Error::invalid(format!(
                "{}: option `ignore_class` = {ignore} is not supported (only null)",
                self.owner
            )));
        }
        if let Some(sorted) = self.get("from_sorted_ids")
            && sorted.as_bool() != Some(false)
        {
            return Err(Error::invalid(format!(
                "{}: option `from_sorted_ids` = {sorted} is not supported (only false)",
                self.owner
            )));
        }
        Ok(())
    }

    fn bad(&self, key: &str, expected: &str, found: &Value) -> Error {
        Error::invalid(format!(
            "{}: option `{key}` must be {expected}, found `{found}`",
            self.owner
        ))
    }

    /// A boolean option.
    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.bad(key, "true or false", other)),
        }
    }

    /// A finite number option, as `f32` (Keras converts it to a `float32` tensor).
    pub(crate) fn f32(&self, key: &str, default: f32) -> Result<f32> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(x as f32),
                _ => Err(self.bad(key, "a finite number", v)),
            },
        }
    }

    /// A positive integer option.
    pub(crate) fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_u64() {
                Some(x) if x > 0 => {
                    usize::try_from(x).map_err(|_| self.bad(key, "a small integer", v))
                }
                _ => Err(self.bad(key, "a positive integer", v)),
            },
        }
    }
}

/// Whether a serialized object's `module` lets Keras resolve a built-in from it:
/// absent (resolved by name), `builtins` (functions) or a `keras` module.
pub(crate) fn is_keras_module(module: Option<&Value>) -> bool {
    match module {
        None => true,
        Some(Value::String(m)) => m == "builtins" || m == "keras" || m.starts_with("keras."),
        Some(_) => false,
    }
}

/// The options common to every `Loss` class config (keras/src/losses/loss.py
/// `Loss.get_config` and `__init__`).
const CLASS_KEYS: [&str; 3] = ["name", "reduction", "dtype"];

impl Loss {
    /// Accepted identifiers: function names, class names, then the aliases of
    /// keras/src/losses/__init__.py `ALL_OBJECTS_DICT`. (`"crossentropy"` and
    /// `"ce"` also resolve, through [`Loss::from_config_with_shapes`].)
    pub const NAMES: &'static [&'static str] = &[
        "mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "huber",
        "log_cosh",
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "categorical_crossentropy",
        "categorical_focal_crossentropy",
        "sparse_categorical_crossentropy",
        "kl_divergence",
        "poisson",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "MeanSquaredError",
        "MeanAbsoluteError",
        "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError",
        "Huber",
        "LogCosh",
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
        "CategoricalCrossentropy",
        "CategoricalFocalCrossentropy",
        "SparseCategoricalCrossentropy",
        "KLDivergence",
        "Poisson",
        "Hinge",
        "SquaredHinge",
        "CategoricalHinge",
        "mse",
        "MSE",
        "mae",
        "MAE",
        "mape",
        "MAPE",
        "msle",
        "MSLE",
        "bce",
        "BCE",
        "kld",
        "KLD",
    ];

    /// Parse `compile_config["loss"]`: a string identifier, a serialized `Loss`
    /// object or a serialized loss function (see the module docs), or a list holding
    /// one of these (one output).
    ///
    /// Unknown names give [`Error::unsupported`] listing [`Loss::NAMES`]; unsupported
    /// options (`axis` other than -1, `ignore_class`, a reduction other than
    /// `sum_over_batch_size`/`mean`, a dtype other than `float32`) and unknown option
    /// keys give a clear error. `"crossentropy"`/`"ce"` need the shapes: see
    /// [`Loss::from_config_with_shapes`].
    pub fn from_config(v: &Value) -> Result<Self> {
        match v {
            Value::String(name) => {
                if is_auto_crossentropy(name) {
                    return Err(Error::invalid(format!(
                        "loss `{name}` picks binary, sparse or categorical crossentropy from \
                         the shapes of the targets and outputs; resolve it with \
                         `Loss::from_config_with_shapes`"
                    )));
                }
                LossFn::from_identifier(name)
                    .ok_or_else(|| Error::unsupported("loss", name.as_str(), Self::NAMES))?
                    .build(&Options::new(format!("loss `{name}`"), None, Vec::new()))
            }
            Value::Object(map) => Self::from_object(map),
            Value::Array(items) if items.len() == 1 => Self::from_config(&items[0]),
            Value::Array(items) => Err(Error::invalid(format!(
                "a list of {} losses (one per output) is not supported: only single-output models",
                items.len()
            ))),
            Value::Null => Err(Error::missing("loss (the model was compiled without one)")),
            other => Err(Error::invalid(format!(
                "`loss` must be a string or a serialized loss, found `{other}`"
            ))),
        }
    }

    /// [`Loss::from_config`], also resolving `"crossentropy"`/`"ce"` (any case) as
    /// keras/src/trainers/compile_utils.py `get_loss` does: binary crossentropy when
    /// the output has width 1, sparse categorical when the targets have width 1 (a
    /// 1-D label vector counts as width 1), categorical otherwise.
    pub fn from_config_with_shapes(
        v: &Value,
        output_width: usize,
        target_width: usize,
    ) -> Result<Self> {
        match v {
            Value::String(name) if is_auto_crossentropy(name) => Ok(if output_width == 1 {
                Loss::BinaryCrossentropy {
                    from_logits: false,
                    label_smoothing: 0.0,
                }
            } else if target_width == 1 {
                Loss::SparseCategoricalCrossentropy { from_logits: false }
            } else {
                Loss::CategoricalCrossentropy {
                    from_logits: false,
                    label_smoothing: 0.0,
                }
            }),
            _ => Self::from_config(v),
        }
    }

    fn from_object(map: &Map<String, Value>) -> Result<Self> {
        let class_name = map
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("serialized loss has no string `class_name`"))?;
        let module = map.get("module");
        if class_name == "function" {
            let name = map.get("config").and_then(Value::as_str).ok_or_else(|| {
                Error::invalid("serialized loss function has no string `config` (its name)")
            })?;
            let func = LossFn::from_function_name(name).filter(|_| is_keras_module(module));
            return match func {
                Some(func) => func.build(&Options::new(format!("loss `{name}`"), None, Vec::new())),
                None => {
                    let full = match module.and_then(Value::as_str) {
                        Some(m) if m != "builtins" => format!("{m}.{name}"),
                        _ => name.to_string(),
                    };
                    Err(Error::unsupported("loss function", full, Self::NAMES))
                }
            };
        }
        let keras_losses = match module {
            None => true,
            Some(Value::String(m)) => m.starts_with("keras") && m.contains("losses"),
            Some(_) => false,
        };
        let func = LossFn::from_class_name(class_name)
            .filter(|_| keras_losses)
            .ok_or_else(|| {
                let full = match module.and_then(Value::as_str) {
                    Some(m) if !keras_losses => format!("{m}.{class_name}"),
                    _ => class_name.to_string(),
                };
                Error::unsupported("loss", full, Self::NAMES)
            })?;
        let config = match map.get("config") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(c),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "loss `{class_name}`: `config` must be an object, found `{other}`"
                )));
            }
        };
        let mut allowed = CLASS_KEYS.to_vec();
        allowed.extend_from_slice(func.kwargs());
        func.build(&Options::new(
            format!("loss `{class_name}`"),
            config,
            allowed,
        ))
    }

    /// Keras's function name, e.g. `"mean_squared_error"`, `"huber"`,
    /// `"sparse_categorical_crossentropy"`.
    pub fn name(&self) -> &'static str {
        self.function().function_name()
    }

    /// The Keras function this loss evaluates.
    pub(crate) fn function(&self) -> LossFn {
        match self {
            Loss::MeanSquaredError => LossFn::MeanSquaredError,
            Loss::MeanAbsoluteError => LossFn::MeanAbsoluteError,
            Loss::MeanAbsolutePercentageError => LossFn::MeanAbsolutePercentageError,
            Loss::MeanSquaredLogarithmicError => LossFn::MeanSquaredLogarithmicError,
            Loss::Huber { .. } => LossFn::Huber,
            Loss::LogCosh => LossFn::LogCosh,
            Loss::BinaryCrossentropy { .. } => LossFn::BinaryCrossentropy,
            Loss::BinaryFocalCrossentropy { .. } => LossFn::BinaryFocalCrossentropy,
            Loss::CategoricalCrossentropy { .. } => LossFn::CategoricalCrossentropy,
            Loss::CategoricalFocalCrossentropy { .. } => LossFn::CategoricalFocalCrossentropy,
            Loss::SparseCategoricalCrossentropy { .. } => LossFn::SparseCategoricalCrossentropy,
            Loss::KLDivergence => LossFn::KLDivergence,
            Loss::Poisson => LossFn::Poisson,
            Loss::Hinge => LossFn::Hinge,
            Loss::SquaredHinge => LossFn::SquaredHinge,
            Loss::CategoricalHinge => LossFn::CategoricalHinge,
        }
    }

    /// Whether the targets are integer class labels `[batch, 1]` rather than
    /// arrays shaped like the output.
    pub fn is_sparse(&self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy { .. })
    }

    /// Check targets fit a model output of per-sample shape `output` (its
    /// last axis is the width the loss sees). `y_true` is 2-D `[rows, k]`;
    /// sparse labels come as `[rows, 1]` (a 1-D label vector reshaped by the
    /// caller) and must be integers in `[0, width)`. Every other loss needs
    /// `k == width` (Keras would broadcast a width-1 target against a wider
    /// output, which is almost always a mistake and is rejected here).
    /// Messages give the model's output shape as Keras prints it,
    /// `(None, 10)`.
    pub fn check_targets(&self, y_true: ArrayView2<f32>, output: &[usize]) -> Result<()> {
        let (rows, k) = y_true.dim();
        let output_width = output.last().copied().unwrap_or(1);
        let shape = crate::model::layers::keras_shape(output);
        if output_width == 0 {
            return Err(Error::invalid(format!(
                "loss `{}`: the model output {shape} has width 0",
                self.name()
            )));
        }
        if !self.is_sparse() {
            if k != output_width {
                return Err(Error::mismatch(
                    format!(
                        "targets of shape [{rows}, {output_width}] like the model output \
                         {shape} for loss `{}`",
                        self.name()
                    ),
                    format!("targets of shape [{rows}, {k}]"),
                ));
            }
            return Ok(());
        }
        if k != 1 {
            return Err(Error::mismatch(
                format!(
                    "integer class labels of shape [{rows}] or [{rows}, 1] for loss `{}` \
                     (model output {shape})",
                    self.name()
                ),
                format!("targets of shape [{rows}, {k}]"),
            ));
        }
        for (row, &label) in y_true.iter().enumerate() {
            if !(label.fract() == 0.0 && label >= 0.0 && label < output_width as f32) {
                return Err(Error::mismatch(
                    format!(
                        "integer class labels in [0, {output_width}) for loss `{}` \
                         (model output {shape})",
                        self.name()
                    ),
                    format!("label {label} in row {row}"),
                ));
            }
        }
        Ok(())
    }

    /// Per-sample loss values `[batch]` exactly as Keras computes them before the
    /// reduction (the Keras loss *function*, e.g. `keras.losses.get("mse")(y_true,
    /// y_pred)`).
    ///
    /// # Panics
    ///
    /// If the shapes do not fit (see [`Loss::check_targets`]).
    pub fn per_sample(&self, y_pred: ArrayView2<f32>, y_true: ArrayView2<f32>) -> Array1<f32> {
        self.evaluate(y_pred, y_true, None, Scale::Uniform(0.0))
    }

    /// The reduced loss (`sum_over_batch_size`: the sum of the per-sample values
    /// divided by the batch size, 0 for an empty batch) and its gradient with
    /// respect to `y_pred` (same shape), i.e. what `jax.grad` of the Keras loss gives:
    /// zero where the epsilon clip is active (half at a clip bound), the gradient
    /// through the categorical renormalisation, the `jnp.abs`/`maximum`/`max`
    /// tie rules of jax.
    ///
    /// # Panics
    ///
    /// If the shapes do not fit (see [`Loss::check_targets`]).
    pub fn loss_and_grad(
        &self,
        y_pred: ArrayView2<f32>,
        y_true: ArrayView2<f32>,
    ) -> (f32, Array2<f32>) {
        let batch = y_pred.nrows();
        let mut grad = Array2::zeros(y_pred.raw_dim());
        if batch == 0 {
            return (0.0, grad);
        }
        // keras/src/losses/loss.py `reduce_values`: `sum(values) / batch`; the
        // cotangent of each per-sample value is `1 / batch` (the `div` JVP).
        let divisor = batch as f32;
        let g = 1.0 / divisor;
        let values = self.evaluate(y_pred, y_true, Some(grad.view_mut()), Scale::Uniform(g));
        (values.sum() / divisor, grad)
    }

    /// [`Loss::loss_and_grad`] of an output that carries a Keras mask, one
    /// flag per row (`None`: unmasked). keras/src/losses/loss.py `apply_mask`
    /// weighs the kept rows by `total / valid` (`divide_no_nan`: 0 when no row
    /// is kept) and the others by 0; `reduce_values` then divides the sum of
    /// the weighted values by the number of rows, so the loss is the mean over
    /// the kept rows. The cotangent of row `i` is `(1 / total) * w_i`.
    ///
    /// # Panics
    ///
    /// If the shapes do not fit (see [`Loss::check_targets`]) or `mask` does
    /// not have one flag per row.
    pub fn loss_and_grad_masked(
        &self,
        y_pred: ArrayView2<f32>,
        y_true: ArrayView2<f32>,
        mask: Option<&[bool]>,
    ) -> (f32, Array2<f32>) {
        let Some(mask) = mask else {
            return self.loss_and_grad(y_pred, y_true);
        };
        let batch = y_pred.nrows();
        assert_eq!(mask.len(), batch, "one mask flag per row");
        let mut grad = Array2::zeros(y_pred.raw_dim());
        if batch == 0 {
            return (0.0, grad);
        }
        let total = batch as f32;
        let valid = mask.iter().filter(|&&m| m).count() as f32;
        let kept = if valid == 0.0 { 0.0 } else { total / valid };
        let weights: Vec<f32> = mask.iter().map(|&m| if m { kept } else { 0.0 }).collect();
        let g = 1.0 / total;
        let scales: Vec<f32> = weights.iter().map(|&w| g * w).collect();
        let values = self.evaluate(y_pred, y_true, Some(grad.view_mut()), Scale::Rows(&scales));
        ((values * &Array1::from(weights)).sum() / total, grad)
    }

    /// The per-sample values; with `grad`, also the gradient of `sum(g * values)`
    /// with respect to `y_pred`.
    fn evaluate(
        &self,
        y_pred: ArrayView2<f32>,
        y_true: ArrayView2<f32>,
        mut grad: Option<ArrayViewMut2<f32>>,
        g: Scale<'_>,
    ) -> Array1<f32> {
        let (batch, width) = y_pred.dim();
        let expected_true = if self.is_sparse() { 1 } else { width };
        assert!(
            y_true.dim() == (batch, expected_true),
            "loss `{}`: targets of shape {:?} do not fit outputs of shape {:?}",
            self.name(),
            y_true.shape(),
            y_pred.shape()
        );
        let targets = self.prepare_targets(y_true);
        let mut out = Array1::zeros(batch);
        for i in 0..batch {
            let p = y_pred.row(i);
            let t = targets.row(i);
            let dp = grad.as_mut().map(|gr| gr.row_mut(i));
            let g = match g {
                Scale::Uniform(g) => g,
                Scale::Rows(gs) => gs[i],
            };
            out[i] = self.row(p, t, dp, g);
        }
        out
    }

    /// The targets after the transformations Keras applies to the whole batch:
    /// label smoothing and the hinge conversion of 0/1 labels to -1/1.
    fn prepare_targets(&self, y_true: ArrayView2<f32>) -> Array2<f32> {
        match *self {
            Loss::BinaryCrossentropy {
                label_smoothing, ..
            }
            | Loss::BinaryFocalCrossentropy {
                label_smoothing, ..
            } if label_smoothing != 0.0 => {
                // `y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing`: both
                // factors are Python floats, rounded to f32 by jax's weak typing.
                let ls = f64::from(label_smoothing);
                let scale = (1.0 - ls) as f32;
                let shift = (0.5 * ls) as f32;
                y_true.mapv(|t| t * scale + shift)
            }
            Loss::CategoricalCrossentropy {
                label_smoothing, ..
            }
            | Loss::CategoricalFocalCrossentropy {
                label_smoothing, ..
            } if label_smoothing != 0.0 => {
                // `y_true * (1.0 - label_smoothing) + (label_smoothing / num_classes)`
                // with `num_classes` a float32 tensor: the shift is an f32 division.
                let scale = (1.0 - f64::from(label_smoothing)) as f32;
                let shift = label_smoothing / y_true.ncols() as f32;
                y_true.mapv(|t| t * scale + shift)
            }
            Loss::Hinge | Loss::SquaredHinge => {
                // keras/src/losses/losses.py `convert_binary_labels_to_hinge`: over the
                // whole batch, `2 * y_true - 1` when every label is 0 or 1.
                if y_true.iter().all(|&t| t == 0.0 || t == 1.0) {
                    y_true.mapv(|t| 2.0 * t - 1.0)
                } else {
                    y_true.to_owned()
                }
            }
            _ => y_true.to_owned(),
        }
    }

    /// One row: the per-sample value; with `dp`, its gradient times `g`.
    fn row(
        &self,
        p: ArrayView1<f32>,
        t: ArrayView1<f32>,
        dp: Option<ArrayViewMut1<f32>>,
        g: f32,
    ) -> f32 {
        match *self {
            Loss::MeanSquaredError => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| {
                    let x = t - p;
                    x * x
                },
                // `square` JVP `g * (2 * x)`, then the `sub` transpose negates.
                |p, t, ct| -(ct * (2.0 * (t - p))),
            ),
            Loss::MeanAbsoluteError => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| (t - p).abs(),
                // `abs` JVP `select(x >= 0, g, -g)`.
                |p, t, ct| -abs_grad(t - p, ct),
            ),
            Loss::MeanAbsolutePercentageError => {
                // `100.0 * mean(diff)`: the cotangent of the mean is `g * 100`.
                let k = p.len() as f32;
                let sum = elementwise(p, t, dp, (g * 100.0) / k, mape, mape_grad);
                100.0 * (sum / k)
            }
            Loss::MeanSquaredLogarithmicError => mean_row(p, t, dp, g, msle, msle_grad),
            Loss::Huber { delta } => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| huber(p, t, delta),
                |p, t, ct| huber_grad(p, t, delta, ct),
            ),
            Loss::LogCosh => mean_row(p, t, dp, g, log_cosh, log_cosh_grad),
            Loss::BinaryCrossentropy {
                from_logits: false, ..
            } => mean_row(p, t, dp, g, |p, t| bce(t, p), |p, t, ct| bce_grad(t, p, ct)),
            Loss::BinaryCrossentropy {
                from_logits: true, ..
            } => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| bce_logits(t, p),
                |p, t, ct| bce_logits_grad(t, p, ct),
            ),
            Loss::BinaryFocalCrossentropy {
                apply_class_balancing,
                alpha,
                gamma,
                from_logits,
                ..
            } => {
                let focal = BinaryFocal {
                    balancing: apply_class_balancing,
                    alpha,
                    gamma,
                    from_logits,
                };
                mean_row(
                    p,
                    t,
                    dp,
                    g,
                    |p, t| focal.value(p, t),
                    |p, t, ct| focal.grad(p, t, ct),
                )
            }
            Loss::CategoricalCrossentropy { from_logits, .. } => {
                crossentropy_row(p, |j| t[j], from_logits, dp, g)
            }
            Loss::SparseCategoricalCrossentropy { from_logits } => {
                // `jnp.array(target, dtype="int32")` truncates; `one_hot` of it.
                let label = t[0] as i32;
                crossentropy_row(
                    p,
                    |j| if j as i32 == label { 1.0 } else { 0.0 },
                    from_logits,
                    dp,
                    g,
                )
            }
            Loss::CategoricalFocalCrossentropy {
                alpha,
                gamma,
                from_logits,
                ..
            } => categorical_focal_row(p, t, alpha, gamma, from_logits, dp, g),
            Loss::KLDivergence => elementwise(p, t, dp, g, kld, kld_grad),
            Loss::Poisson => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| p - t * (p + EPSILON).ln(),
                // `sub` sends `-ct` to `t * log(p + eps)`; `log` JVP `g / x`.
                |p, t, ct| ct + ((-ct) * t) / (p + EPSILON),
            ),
            Loss::Hinge => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| maximum(1.0 - t * p, 0.0),
                |p, t, ct| -(ct * max_grad(1.0 - t * p, 0.0)) * t,
            ),
            Loss::SquaredHinge => mean_row(
                p,
                t,
                dp,
                g,
                |p, t| {
                    let m = maximum(1.0 - t * p, 0.0);
                    m * m
                },
                |p, t, ct| {
                    let z = 1.0 - t * p;
                    let m = maximum(z, 0.0);
                    -((ct * (2.0 * m)) * max_grad(z, 0.0)) * t
                },
            ),
            Loss::CategoricalHinge => categorical_hinge_row(p, t, dp, g),
        }
    }
}

/// `"crossentropy"`/`"ce"` in any case (keras/src/trainers/compile_utils.py `get_loss`).
/// The cotangent of each row's value: one for all rows, or one per row.
#[derive(Clone, Copy)]
enum Scale<'a> {
    Uniform(f32),
    Rows(&'a [f32]),
}

fn is_auto_crossentropy(name: &str) -> bool {
    name.eq_ignore_ascii_case("crossentropy") || name.eq_ignore_ascii_case("ce")
}

// ---------------------------------------------------------------------------
// Row drivers.
// ---------------------------------------------------------------------------

/// `sum(f(p, t))` over a row; with `dp`, `dp[j] = df(p[j], t[j], ct)`.
fn elementwise(
    p: ArrayView1<f32>,
    t: ArrayView1<f32>,
    dp: Option<ArrayViewMut1<f32>>,
    ct: f32,
    f: impl Fn(f32, f32) -> f32,
    df: impl Fn(f32, f32, f32) -> f32,
) -> f32 {
    if let Some(mut dp) = dp {
        Zip::from(&mut dp)
            .and(&p)
            .and(&t)
            .for_each(|d, &p, &t| *d = df(p, t, ct));
    }
    p.iter()
        .zip(t.iter())
        .fold(0.0f32, |s, (&p, &t)| s + f(p, t))
}

/// `jnp.mean(f(p, t), axis=-1)` = `sum / width`; the element cotangent is `g / width`.
fn mean_row(
    p: ArrayView1<f32>,
    t: ArrayView1<f32>,
    dp: Option<ArrayViewMut1<f32>>,
    g: f32,
    f: impl Fn(f32, f32) -> f32,
    df: impl Fn(f32, f32, f32) -> f32,
) -> f32 {
    let k = p.len() as f32;
    elementwise(p, t, dp, g / k, f, df) / k
}

// ---------------------------------------------------------------------------
// Element-wise formulas and their `jax.grad`s. `ct` is the cotangent of the
// element's value; NaN propagates like XLA's `max`/`min`.
// ---------------------------------------------------------------------------

/// Flush a subnormal result to (signed) zero, as XLA on CPU does.
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

/// `jnp.maximum(x, b)`: NaN propagates.
#[inline]
fn maximum(x: f32, b: f32) -> f32 {
    if x.is_nan() || x >= b { x } else { b }
}

/// `jnp.clip(x, lo, hi)` = `minimum(hi, maximum(lo, x))`: NaN propagates.
#[inline]
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    let m = maximum(x, lo);
    if m.is_nan() || m <= hi { m } else { hi }
}

/// The factor `lax.max` passes to `x` in `maximum(x, b)` (jax/_src/lax/lax.py
/// `_balanced_eq`): 1 when `x` wins, 1/2 on a tie, 0 otherwise (and for NaN).
#[inline]
fn max_grad(x: f32, b: f32) -> f32 {
    if x > b {
        1.0
    } else if x == b {
        0.5
    } else {
        0.0
    }
}

/// The factor `jnp.clip(x, lo, hi)` passes to `x`: the `maximum` then the `minimum`
/// tie rule.
#[inline]
fn clip_grad(x: f32, lo: f32, hi: f32) -> f32 {
    let m = maximum(x, lo);
    let inner = max_grad(x, lo);
    let outer = if m < hi {
        1.0
    } else if m == hi {
        0.5
    } else {
        0.0
    };
    inner * outer
}

/// `abs` JVP (jax/_src/lax/lax.py `_abs_jvp_rule`): `select(x >= 0, g, -g)`.
#[inline]
fn abs_grad(x: f32, g: f32) -> f32 {
    if x >= 0.0 { g } else { -g }
}

/// jax/_src/lax/other.py `logaddexp(x, 0)` = `jax.nn.softplus`:
/// `max(x, 0) + log1p(exp(-|x|))`, or `x + 0` when `x` is NaN.
#[inline]
fn softplus(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    maximum(x, 0.0) + exp(-x.abs()).ln_1p()
}

/// `±inf → 0`, as `_replace_inf` in jax/_src/lax/other.py.
#[inline]
fn replace_inf(v: f32) -> f32 {
    if v.is_infinite() { 0.0 } else { v }
}

/// The `logaddexp` JVP factor of jax/_src/lax/other.py for `softplus(x)`:
/// `exp(replace_inf(x) - replace_inf(softplus(x)))`.
#[inline]
fn softplus_grad(x: f32) -> f32 {
    exp(replace_inf(x) - replace_inf(softplus(x)))
}

/// `jax.nn.sigmoid` = `lax.logistic`, which XLA expands to `1 / (1 + exp(-x))`.
#[inline]
fn sigmoid(x: f32) -> f32 {
    ftz(1.0 / (1.0 + (-x).exp()))
}

/// keras/src/losses/losses.py `mean_absolute_percentage_error`, one element:
/// `abs((t - p) / maximum(abs(t), eps))`.
#[inline]
fn mape(p: f32, t: f32) -> f32 {
    ((t - p) / maximum(t.abs(), EPSILON)).abs()
}

/// `jax.grad` of [`mape`] in `p`: `abs` JVP, `div` by the denominator, `sub` negates.
#[inline]
fn mape_grad(p: f32, t: f32, ct: f32) -> f32 {
    let den = maximum(t.abs(), EPSILON);
    -(abs_grad((t - p) / den, ct) / den)
}

/// keras/src/losses/losses.py `mean_squared_logarithmic_error`, one element:
/// `square(log(maximum(p, eps) + 1) - log(maximum(t, eps) + 1))`.
#[inline]
fn msle(p: f32, t: f32) -> f32 {
    let x = (maximum(p, EPSILON) + 1.0).ln() - (maximum(t, EPSILON) + 1.0).ln();
    x * x
}

/// `jax.grad` of [`msle`] in `p`: `square`, `log` (`g / x`), then the `maximum` tie rule.
#[inline]
fn msle_grad(p: f32, t: f32, ct: f32) -> f32 {
    let a = maximum(p, EPSILON) + 1.0;
    let x = a.ln() - (maximum(t, EPSILON) + 1.0).ln();
    ((ct * (2.0 * x)) / a) * max_grad(p, EPSILON)
}

/// keras/src/losses/losses.py `huber`, one element, `error = p - t`:
/// `where(|error| <= delta, 0.5 * square(error), delta * |error| - 0.5 * square(delta))`.
#[inline]
fn huber(p: f32, t: f32, delta: f32) -> f32 {
    let error = p - t;
    let abs_error = error.abs();
    if abs_error <= delta {
        0.5 * (error * error)
    } else {
        delta * abs_error - 0.5 * (delta * delta)
    }
}

/// `jax.grad` of [`huber`] in `p`: the taken branch only (`where` transposes to a
/// `select`).
#[inline]
fn huber_grad(p: f32, t: f32, delta: f32, ct: f32) -> f32 {
    let error = p - t;
    if error.abs() <= delta {
        (ct * 0.5) * (2.0 * error)
    } else {
        abs_grad(error, ct * delta)
    }
}

/// keras/src/losses/losses.py `log_cosh`, one element, `x = p - t`:
/// `x + softplus(x * -2.0) - log(2)` (`ops.log(2.0)` in f32 is `LN_2`).
#[inline]
fn log_cosh(p: f32, t: f32) -> f32 {
    let x = p - t;
    x + softplus(x * -2.0) - LN_2
}

/// `jax.grad` of [`log_cosh`] in `p`: `ct + (ct * softplus'(z)) * -2`.
#[inline]
fn log_cosh_grad(p: f32, t: f32, ct: f32) -> f32 {
    let z = (p - t) * -2.0;
    ct + (ct * softplus_grad(z)) * -2.0
}

/// keras/src/backend/jax/nn.py `binary_crossentropy` on probabilities, one element:
/// `o = clip(p, eps, 1 - eps)`, `-(t * log(o) + (1 - t) * log(1 - o))`.
#[inline]
fn bce(t: f32, p: f32) -> f32 {
    let o = clip(p, EPSILON, ONE_MINUS_EPSILON);
    let mut b = t * o.ln();
    b += (1.0 - t) * (1.0 - o).ln();
    -b
}

/// `jax.grad` of [`bce`] in `p`: both `log` terms, then the clip (0 outside
/// `[eps, 1 - eps]`, half at a bound).
#[inline]
fn bce_grad(t: f32, p: f32, ct: f32) -> f32 {
    let o = clip(p, EPSILON, ONE_MINUS_EPSILON);
    let c = -ct;
    let d_o = (c * t) / o - (c * (1.0 - t)) / (1.0 - o);
    d_o * clip_grad(p, EPSILON, ONE_MINUS_EPSILON)
}

/// keras/src/backend/jax/nn.py `binary_crossentropy` from logits, one element:
/// `-1.0 * t * log_sigmoid(x) - (1 - t) * log_sigmoid(-x)`, with
/// `log_sigmoid(x) = -softplus(-x)` (jax/_src/nn/functions.py).
#[inline]
fn bce_logits(t: f32, x: f32) -> f32 {
    let log_logits = -softplus(-x);
    let log_neg_logits = -softplus(x);
    // `-1.0 * t` is exactly `-t`.
    (-t) * log_logits - (1.0 - t) * log_neg_logits
}

/// `jax.grad` of [`bce_logits`] in `x`, through the `logaddexp` JVPs.
#[inline]
fn bce_logits_grad(t: f32, x: f32, ct: f32) -> f32 {
    (ct * -t) * softplus_grad(-x) + (ct * (1.0 - t)) * softplus_grad(x)
}

/// keras/src/losses/losses.py `binary_focal_crossentropy`, one element.
#[derive(Clone, Copy)]
struct BinaryFocal {
    balancing: bool,
    alpha: f32,
    gamma: f32,
    from_logits: bool,
}

impl BinaryFocal {
    /// `focal_factor * bce`, times the class weight when balancing.
    fn value(self, x: f32, t: f32) -> f32 {
        let p = if self.from_logits { sigmoid(x) } else { x };
        let bce = bce(t, p);
        let p_t = t * p + (1.0 - t) * (1.0 - p);
        let focal_factor = (1.0 - p_t).powf(self.gamma);
        let focal_bce = focal_factor * bce;
        if self.balancing {
            self.weight(t) * focal_bce
        } else {
            focal_bce
        }
    }

    /// `y_true * alpha + (1 - y_true) * (1 - alpha)`.
    fn weight(self, t: f32) -> f32 {
        t * self.alpha + (1.0 - t) * (1.0 - self.alpha)
    }

    /// `jax.grad` of [`BinaryFocal::value`] in `x`: the product rule over
    /// `focal_factor * bce`, the `pow` JVP `gamma * u^(gamma - 1)`, `p_t`'s two
    /// terms, the clipped [`bce_grad`], and the `logistic` JVP `p * (1 - p)`.
    fn grad(self, x: f32, t: f32, ct: f32) -> f32 {
        let p = if self.from_logits { sigmoid(x) } else { x };
        let bce = bce(t, p);
        let p_t = t * p + (1.0 - t) * (1.0 - p);
        let u = 1.0 - p_t;
        let focal_factor = u.powf(self.gamma);
        let ct_focal = if self.balancing {
            ct * self.weight(t)
        } else {
            ct
        };
        let ct_factor = ct_focal * bce;
        let ct_bce = ct_focal * focal_factor;
        let ct_pt = -(ct_factor * (self.gamma * u.powf(self.gamma - 1.0)));
        let dp = (ct_pt * t - ct_pt * (1.0 - t)) + bce_grad(t, p, ct_bce);
        if self.from_logits {
            dp * (p * (1.0 - p))
        } else {
            dp
        }
    }
}

/// keras/src/losses/losses.py `kl_divergence`, one element: `t * log(t / p)` with
/// both clipped to `[eps, 1]`.
#[inline]
fn kld(p: f32, t: f32) -> f32 {
    let t = clip(t, EPSILON, 1.0);
    let p = clip(p, EPSILON, 1.0);
    t * (t / p).ln()
}

/// `jax.grad` of [`kld`] in `p`: `log` (`g / q`), the `div` JVP in the denominator
/// `-g * t * p^-2` (`integer_pow(p, -2) = 1 / (p * p)`), then the clip.
#[inline]
fn kld_grad(p: f32, t: f32, ct: f32) -> f32 {
    let tc = clip(t, EPSILON, 1.0);
    let pc = clip(p, EPSILON, 1.0);
    let ct_q = (ct * tc) / (tc / pc);
    ((-ct_q) * tc) * (1.0 / (pc * pc)) * clip_grad(p, EPSILON, 1.0)
}

// ---------------------------------------------------------------------------
// Row-wise formulas.
// ---------------------------------------------------------------------------

/// `jnp.max` of a row (`-inf` for an empty row), NaN-propagating like XLA's `max`.
fn row_max(row: &ArrayView1<f32>) -> f32 {
    row.iter().fold(
        f32::NEG_INFINITY,
        |m, &v| if v > m || v.is_nan() { v } else { m },
    )
}

/// `jax.nn.softmax` (jax/_src/nn/functions.py `_softmax`): `exp(x - max) / sum`.
fn softmax(x: &ArrayView1<f32>) -> Array1<f32> {
    let max = row_max(x);
    let e = x.mapv(|v| exp(v - max));
    let sum = e.sum();
    e.mapv(|v| v / sum)
}

/// keras/src/backend/jax/nn.py `categorical_crossentropy` for one row, targets
/// `t(j)`: from logits `-sum(t * log_softmax(x))`, else
/// `-sum(t * log(clip(p / sum(p), eps, 1 - eps)))`.
///
/// Gradient (`ct = g`): `c = -g * t`; from logits, the `log_softmax` of
/// jax/_src/nn/functions.py (`shifted - log(sum(exp(shifted)))`, the max under
/// `stop_gradient`) gives `dx = c + (sum(-c) / S) * exp(shifted)`; from
/// probabilities, `log` gives `c / o`, the clip masks it to `dr`, and the
/// renormalisation `r = p / s` gives `dp = dr / s + sum((-dr) * p) * (1 / s²)`.
fn crossentropy_row(
    x: ArrayView1<f32>,
    t: impl Fn(usize) -> f32,
    from_logits: bool,
    dp: Option<ArrayViewMut1<f32>>,
    g: f32,
) -> f32 {
    let k = x.len();
    if from_logits {
        let max = row_max(&x);
        with_scratch(k, |e| {
            for (e, &v) in e.iter_mut().zip(&x) {
                *e = exp(v - max);
            }
            let s = ArrayView1::from(&*e).sum();
            let lse = s.ln();
            let value = -(0..k).fold(0.0f32, |acc, j| acc + t(j) * ((x[j] - max) - lse));
            if let Some(mut dp) = dp {
                let c = |j: usize| (-g) * t(j);
                let ct_s = (0..k).fold(0.0f32, |acc, j| acc + -c(j)) / s;
                for j in 0..k {
                    dp[j] = c(j) + ct_s * e[j];
                }
            }
            value
        })
    } else {
        let s = x.sum();
        let r = |j: usize| x[j] / s;
        let o = |j: usize| clip(r(j), EPSILON, ONE_MINUS_EPSILON);
        // A zero target adds `0 · log(o)` = ±0 (o is clipped, so the log is
        // finite unless o is NaN): the sum is the same without it.
        let value = -(0..k).fold(0.0f32, |acc, j| {
            let (t, o) = (t(j), o(j));
            if t == 0.0 && !o.is_nan() {
                acc
            } else {
                acc + t * o.ln()
            }
        });
        if let Some(mut dp) = dp {
            // `dr` is kept in `dp` until the renormalization gradient
            // replaces it.
            for j in 0..k {
                dp[j] = (((-g) * t(j)) / o(j)) * clip_grad(r(j), EPSILON, ONE_MINUS_EPSILON);
            }
            renormalization_grad(&x, s, &mut dp);
        }
        value
    }
}

/// Run `f` on `k` scratch values (on the stack when few).
fn with_scratch<R>(k: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    const STACK: usize = 64;
    if k <= STACK {
        f(&mut [0.0f32; STACK][..k])
    } else {
        f(&mut vec![0.0f32; k])
    }
}

/// The gradient through `r = p / sum(p)` (the `div` JVP in both operands): `dr / s`
/// plus, for every element, `sum((-dr) * p) * (1 / s²)` (`integer_pow(s, -2)`).
/// `d` holds `dr` on entry and the gradient on return.
fn renormalization_grad(p: &ArrayView1<f32>, s: f32, d: &mut ArrayViewMut1<f32>) {
    let inv_s2 = 1.0 / (s * s);
    let ds = d
        .iter()
        .zip(p.iter())
        .fold(0.0f32, |acc, (&d, &p)| acc + ((-d) * p) * inv_s2);
    d.map_inplace(|d| *d = *d / s + ds);
}

/// keras/src/losses/losses.py `categorical_focal_crossentropy` for one row:
/// `p = softmax(x)` from logits; `o = clip(p / sum(p), eps, 1 - eps)`;
/// `sum(((1 - o)^gamma * alpha) * (-t * log(o)))`.
fn categorical_focal_row(
    x: ArrayView1<f32>,
    t: ArrayView1<f32>,
    alpha: f32,
    gamma: f32,
    from_logits: bool,
    dp: Option<ArrayViewMut1<f32>>,
    g: f32,
) -> f32 {
    let p = if from_logits {
        softmax(&x)
    } else {
        x.to_owned()
    };
    let s = p.sum();
    let r = p.mapv(|v| v / s);
    let o = r.mapv(|v| clip(v, EPSILON, ONE_MINUS_EPSILON));
    let cce = Zip::from(&t).and(&o).map_collect(|&t, &o| -t * o.ln());
    let weighting = o.mapv(|o| (1.0 - o).powf(gamma) * alpha);
    let value = Zip::from(&weighting)
        .and(&cce)
        .fold(0.0f32, |acc, &w, &c| acc + w * c);
    if let Some(mut dp) = dp {
        // Cotangents: `g` to every `weighting * cce`; the `pow` JVP `gamma * u^(gamma-1)`;
        // `log` gives `/ o`; then the clip and the renormalisation.
        let mut dq: Array1<f32> = (0..o.len())
            .map(|j| {
                let ct_weighting = g * cce[j];
                let ct_cce = g * weighting[j];
                let ct_modulating = ct_weighting * alpha;
                let from_modulating = -(ct_modulating * (gamma * (1.0 - o[j]).powf(gamma - 1.0)));
                let from_log = (ct_cce * -t[j]) / o[j];
                (from_modulating + from_log) * clip_grad(r[j], EPSILON, ONE_MINUS_EPSILON)
            })
            .collect();
        renormalization_grad(&p.view(), s, &mut dq.view_mut());
        if from_logits {
            // The `_softmax` custom JVP `y * (x_dot - sum(y * x_dot))`, transposed.
            let a: Array1<f32> = Zip::from(&p).and(&dq).map_collect(|&y, &d| y * d);
            let neg_sum = a.iter().fold(0.0f32, |acc, &a| acc + -a);
            Zip::from(&mut dp)
                .and(&a)
                .and(&p)
                .for_each(|d, &a, &y| *d = a + y * neg_sum);
        } else {
            dp.assign(&dq);
        }
    }
    value
}

/// keras/src/losses/losses.py `categorical_hinge` for one row:
/// `maximum(max((1 - t) * p) - sum(t * p) + 1, 0)`. The gradient of the row `max`
/// is split evenly between tied maxima (jax/_src/lax/lax.py `_reduce_chooser_jvp_rule`).
fn categorical_hinge_row(
    p: ArrayView1<f32>,
    t: ArrayView1<f32>,
    dp: Option<ArrayViewMut1<f32>>,
    g: f32,
) -> f32 {
    let pos = Zip::from(&t)
        .and(&p)
        .fold(0.0f32, |acc, &t, &p| acc + t * p);
    let negs = Zip::from(&t).and(&p).map_collect(|&t, &p| (1.0 - t) * p);
    let neg = row_max(&negs.view());
    let h = neg - pos + 1.0;
    if let Some(mut dp) = dp {
        let ct_h = g * max_grad(h, 0.0);
        let ct_pos = -ct_h;
        let count = negs.iter().filter(|&&v| v == neg).count() as f32;
        let ct_each = ct_h / count;
        Zip::from(&mut dp).and(&t).and(&negs).for_each(|d, &t, &v| {
            let at_max = if v == neg { 1.0 } else { 0.0 };
            *d = ct_pos * t + (ct_each * at_max) * (1.0 - t);
        });
    }
    maximum(h, 0.0)
}

#[cfg(test)]
// Golden values are pasted as Keras printed them; some happen to be close to
// `ln 2` and similar constants.
#[allow(clippy::approx_constant)]
mod tests {
    use ndarray::{Array2, array};
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind;

    /// Relative tolerance of values and gradients against Keras/jax (XLA's `log`,
    /// `exp`, `pow` and summation order differ from Rust's by a few ulps).
    const KERAS_REL_TOL: f32 = 1e-5;
    /// Absolute slack for values that are (nearly) zero.
    const KERAS_ABS_TOL: f32 = 1e-7;
    /// Tolerance of central finite differences in `f64` of the `f32` loss.
    const FD_REL_TOL: f64 = 2e-3;
    /// Absolute slack of the finite differences (f32 rounding of the loss / step).
    const FD_ABS_TOL: f64 = 2e-4;

    fn close(actual: f32, expected: f32) -> bool {
        (actual - expected).abs() <= KERAS_REL_TOL * expected.abs() + KERAS_ABS_TOL
            || (actual.is_nan() && expected.is_nan())
    }

    fn arr(rows: &[&[f32]]) -> Array2<f32> {
        let cols = rows.first().map_or(0, |r| r.len());
        Array2::from_shape_fn((rows.len(), cols), |(i, j)| rows[i][j])
    }

    /// One golden case from Keras 3.15.1 (jax 0.10.2), produced by
    ///
    /// ```python
    /// import functools, jax, jax.numpy as jnp, keras   # KERAS_BACKEND=jax
    /// y_true, y_pred = jnp.asarray(y_true, "float32"), jnp.asarray(y_pred, "float32")
    /// per_sample = fn(y_true, y_pred)          # the loss function, see each case
    /// value = loss_obj(y_true, y_pred)         # the Loss object (sum_over_batch_size)
    /// grad = jax.grad(lambda p: loss_obj(y_true, p))(y_pred)
    /// ```
    struct Golden {
        loss: Loss,
        y_true: &'static [&'static [f32]],
        y_pred: &'static [&'static [f32]],
        per_sample: &'static [f32],
        value: f32,
        grad: &'static [&'static [f32]],
    }

    /// `per_sample`: `keras.losses.get("mse")(y_true, y_pred)`; `loss`: `keras.losses.MeanSquaredError()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.MeanSquaredError()(y_true, p))(y_pred)`.
    const MSE: Golden = Golden {
        loss: Loss::MeanSquaredError,
        y_true: &[&[0.0, 1.0, 2.5], &[-1.5, 0.25, 3.0]],
        y_pred: &[&[0.5, 0.75, 2.0], &[-1.0, 1.25, -0.5]],
        per_sample: &[0.1875, 4.5],
        value: 2.34375,
        grad: &[
            &[0.16666667, -0.083333336, -0.16666667],
            &[0.16666667, 0.33333334, -1.1666667],
        ],
    };

    /// `per_sample`: `keras.losses.get("mae")(y_true, y_pred)`; `loss`: `keras.losses.MeanAbsoluteError()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.MeanAbsoluteError()(y_true, p))(y_pred)`.
    const MAE: Golden = Golden {
        loss: Loss::MeanAbsoluteError,
        y_true: &[&[1.0, 2.0, -3.0], &[0.5, 0.5, 0.5]],
        y_pred: &[&[1.0, 2.5, -2.0], &[0.25, 0.5, 1.5]],
        per_sample: &[0.5, 0.4166667],
        value: 0.45833334,
        grad: &[
            &[-0.16666667, 0.16666667, 0.16666667],
            &[-0.16666667, -0.16666667, 0.16666667],
        ],
    };

    /// `per_sample`: `keras.losses.get("huber")(y_true, y_pred)`; `loss`: `keras.losses.Huber()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.Huber()(y_true, p))(y_pred)`.
    const HUBER: Golden = Golden {
        loss: Loss::Huber { delta: 1.0 },
        y_true: &[&[0.0, 1.0, 2.0, -1.0], &[3.0, 0.5, 0.0, 0.0]],
        y_pred: &[&[0.3, 2.0, 0.3, 1.5], &[0.5, 0.5, -1.0, 4.0]],
        per_sample: &[0.93625003, 1.5],
        value: 1.218125,
        grad: &[
            &[0.0375, 0.125, -0.125, 0.125],
            &[-0.125, 0.0, -0.125, 0.125],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.huber, delta=2.0)(y_true, y_pred)`; `loss`: `keras.losses.Huber(delta=2.0)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.Huber(delta=2.0)(y_true, p))(y_pred)`.
    const HUBER_DELTA_2: Golden = Golden {
        loss: Loss::Huber { delta: 2.0 },
        y_true: &[&[0.0, 1.0, 2.0, -1.0], &[3.0, 0.5, 0.0, 0.0]],
        y_pred: &[&[0.3, 2.0, 0.3, 1.5], &[0.5, 0.5, -1.0, 4.0]],
        per_sample: &[1.2475, 2.375],
        value: 1.81125,
        grad: &[&[0.0375, 0.125, -0.2125, 0.25], &[-0.25, 0.0, -0.125, 0.25]],
    };

    /// `per_sample`: `keras.losses.get("binary_crossentropy")(y_true, y_pred)`; `loss`: `keras.losses.BinaryCrossentropy()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryCrossentropy()(y_true, p))(y_pred)`.
    const BCE: Golden = Golden {
        loss: Loss::BinaryCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[0.0, 1.0, 0.5],
            &[1e-07, 0.3, 0.999],
            &[0.9999999, 1e-09, 0.7],
        ],
        per_sample: &[0.23104915, 7.7941794, 11.003421],
        value: 6.3428826,
        grad: &[
            &[0.0, -0.0, -0.22222224],
            &[-555555.56, 0.15873018, 111.11255],
            &[466033.8, -0.0, 0.2116402],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.binary_crossentropy, label_smoothing=0.1)(y_true, y_pred)`; `loss`: `keras.losses.BinaryCrossentropy(label_smoothing=0.1)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryCrossentropy(label_smoothing=0.1)(y_true, p))(y_pred)`.
    const BCE_SMOOTH: Golden = Golden {
        loss: Loss::BinaryCrossentropy {
            from_logits: false,
            label_smoothing: 0.1,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[0.0, 1.0, 0.5],
            &[1e-07, 0.3, 0.999],
            &[0.9999999, 1e-09, 0.7],
        ],
        per_sample: &[0.7653906, 7.424554, 10.46343],
        value: 6.217791,
        grad: &[
            &[-0.0, 0.0, -0.20000002],
            &[-527777.8, 0.13227515, 105.55136],
            &[442732.12, -0.0, 0.20105816],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.binary_crossentropy, from_logits=True)(y_true, y_pred)`; `loss`: `keras.losses.BinaryCrossentropy(from_logits=True)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryCrossentropy(from_logits=True)(y_true, p))(y_pred)`.
    const BCE_LOGITS: Golden = Golden {
        loss: Loss::BinaryCrossentropy {
            from_logits: true,
            label_smoothing: 0.0,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[-3.0, 0.0, 2.5],
            &[30.0, -30.0, 100.0],
            &[-100.0, 0.5, 7.0],
        ],
        per_sample: &[0.27354142, 33.333336, 1.7916626],
        value: 11.799514,
        grad: &[
            &[0.005269542, -0.05555556, -0.008428686],
            &[-1.039736e-14, 1.039736e-14, 0.11111112],
            &[0.0, -0.041948967, 0.07767657],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.binary_crossentropy, from_logits=True, label_smoothing=0.2)(y_true, y_pred)`; `loss`: `keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)(y_true, p))(y_pred)`.
    const BCE_LOGITS_SMOOTH: Golden = Golden {
        loss: Loss::BinaryCrossentropy {
            from_logits: true,
            label_smoothing: 0.2,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[-3.0, 0.0, 2.5],
            &[30.0, -30.0, 100.0],
            &[-100.0, 0.5, 7.0],
        ],
        per_sample: &[0.45687473, 32.0, 5.0483294],
        value: 12.501735,
        grad: &[
            &[-0.0058415704, -0.04444445, 0.002682421],
            &[0.011111108, -0.011111112, 0.1],
            &[-0.011111112, -0.030837856, 0.07323213],
        ],
    };

    /// `per_sample`: `keras.losses.get("binary_crossentropy")(y_true, y_pred)`; `loss`: `keras.losses.BinaryCrossentropy()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryCrossentropy()(y_true, p))(y_pred)`.
    const BCE_ONE_COLUMN: Golden = Golden {
        loss: Loss::BinaryCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        },
        y_true: &[&[1.0], &[0.0], &[1.0], &[0.0]],
        y_pred: &[&[0.9], &[0.2], &[0.0], &[1.0]],
        per_sample: &[0.105360545, 0.22314353, 16.118095, 15.942385],
        value: 8.097246,
        grad: &[&[-0.2777778], &[0.3125], &[-0.0], &[0.0]],
    };

    /// `per_sample`: `keras.losses.get("categorical_crossentropy")(y_true, y_pred)`; `loss`: `keras.losses.CategoricalCrossentropy()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalCrossentropy()(y_true, p))(y_pred)`.
    const CCE: Golden = Golden {
        loss: Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        },
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.2, 0.3, 0.5],
            &[1.0, 0.0, 0.0],
        ],
        y_pred: &[
            &[0.2, 0.3, 0.1],
            &[0.0, 1.0, 0.0],
            &[0.5, 0.5, 0.5],
            &[2.0, 1.0, 1.0],
        ],
        per_sample: &[0.6931472, 16.118095, 1.0986123, 0.6931472],
        value: 4.6507506,
        grad: &[
            &[0.41666666, -0.41666666, 0.41666666],
            &[-0.0, -0.0, -0.0],
            &[0.06666666, 0.01666665, -0.08333334],
            &[-0.0625, 0.0625, 0.0625],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.categorical_crossentropy, label_smoothing=0.2)(y_true, y_pred)`; `loss`: `keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(y_true, p))(y_pred)`.
    const CCE_SMOOTH: Golden = Golden {
        loss: Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.2,
        },
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.2, 0.3, 0.5],
            &[1.0, 0.0, 0.0],
        ],
        y_pred: &[
            &[0.2, 0.3, 0.1],
            &[0.0, 1.0, 0.0],
            &[0.5, 0.5, 0.5],
            &[2.0, 1.0, 1.0],
        ],
        per_sample: &[0.793419, 15.043556, 1.0986123, 0.7855668],
        value: 4.4302883,
        grad: &[
            &[0.33333334, -0.30555552, 0.25],
            &[-0.0, -0.0, -0.0],
            &[0.053333342, 0.01333335, -0.06666665],
            &[-0.045833334, 0.045833334, 0.045833334],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.categorical_crossentropy, from_logits=True)(y_true, y_pred)`; `loss`: `keras.losses.CategoricalCrossentropy(from_logits=True)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalCrossentropy(from_logits=True)(y_true, p))(y_pred)`.
    const CCE_LOGITS: Golden = Golden {
        loss: Loss::CategoricalCrossentropy {
            from_logits: true,
            label_smoothing: 0.0,
        },
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.2, 0.3, 0.5],
            &[1.0, 0.0, 0.0],
        ],
        y_pred: &[
            &[1.0, -2.0, 0.5],
            &[20.0, -20.0, 0.0],
            &[0.0, 0.0, 0.0],
            &[-1.5, 3.0, 2.0],
        ],
        per_sample: &[3.504597, -0.0, 1.0986123, 4.82135],
        value: 2.35614,
        grad: &[
            &[0.15093723, -0.24248528, 0.091548055],
            &[0.0, 1.0620885e-18, 5.152884e-10],
            &[0.033333335, 0.008333333, -0.041666664],
            &[-0.24798602, 0.1812923, 0.06669371],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.categorical_crossentropy, from_logits=True, label_smoothing=0.1)(y_true, y_pred)`; `loss`: `keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(y_true, p))(y_pred)`.
    const CCE_LOGITS_SMOOTH: Golden = Golden {
        loss: Loss::CategoricalCrossentropy {
            from_logits: true,
            label_smoothing: 0.1,
        },
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.2, 0.3, 0.5],
            &[1.0, 0.0, 0.0],
        ],
        y_pred: &[
            &[1.0, -2.0, 0.5],
            &[20.0, -20.0, 0.0],
            &[0.0, 0.0, 0.0],
            &[-1.5, 3.0, 2.0],
        ],
        per_sample: &[3.3212638, 2.0, 1.0986123, 4.554683],
        value: 2.74364,
        grad: &[
            &[0.14260389, -0.22581862, 0.08321472],
            &[0.016666666, -0.008333334, -0.008333333],
            &[0.030000005, 0.0075000003, -0.037499994],
            &[-0.23131935, 0.17295896, 0.058360375],
        ],
    };

    /// `per_sample`: `keras.losses.get("sparse_categorical_crossentropy")(y_true, y_pred)`; `loss`: `keras.losses.SparseCategoricalCrossentropy()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.SparseCategoricalCrossentropy()(y_true, p))(y_pred)`.
    const SCCE: Golden = Golden {
        loss: Loss::SparseCategoricalCrossentropy { from_logits: false },
        y_true: &[&[1.0], &[0.0], &[2.0], &[0.0]],
        y_pred: &[
            &[0.2, 0.3, 0.1],
            &[0.0, 1.0, 0.0],
            &[0.5, 0.5, 0.5],
            &[2.0, 1.0, 1.0],
        ],
        per_sample: &[0.6931472, 16.118095, 1.0986123, 0.6931472],
        value: 4.6507506,
        grad: &[
            &[0.41666666, -0.41666666, 0.41666666],
            &[-0.0, -0.0, -0.0],
            &[0.16666667, 0.16666667, -0.3333333],
            &[-0.0625, 0.0625, 0.0625],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.sparse_categorical_crossentropy, from_logits=True)(y_true, y_pred)`; `loss`: `keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_true, p))(y_pred)`.
    const SCCE_LOGITS: Golden = Golden {
        loss: Loss::SparseCategoricalCrossentropy { from_logits: true },
        y_true: &[&[1.0], &[0.0], &[2.0], &[0.0]],
        y_pred: &[
            &[1.0, -2.0, 0.5],
            &[20.0, -20.0, 0.0],
            &[0.0, 0.0, 0.0],
            &[-1.5, 3.0, 2.0],
        ],
        per_sample: &[3.504597, -0.0, 1.0986123, 4.82135],
        value: 2.35614,
        grad: &[
            &[0.15093723, -0.24248528, 0.091548055],
            &[0.0, 1.0620885e-18, 5.152884e-10],
            &[0.083333336, 0.083333336, -0.16666666],
            &[-0.24798602, 0.1812923, 0.06669371],
        ],
    };

    /// `per_sample`: `keras.losses.get("mape")(y_true, y_pred)`; `loss`: `keras.losses.MeanAbsolutePercentageError()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.MeanAbsolutePercentageError()(y_true, p))(y_pred)`.
    const MAPE: Golden = Golden {
        loss: Loss::MeanAbsolutePercentageError,
        y_true: &[&[1.0, 0.0, -2.0], &[4.0, 0.5, 1e-09]],
        y_pred: &[&[1.5, 0.1, -2.0], &[3.0, -0.5, 0.2]],
        per_sample: &[3.333335e+07, 6.6666744e+07],
        value: 5.000005e+07,
        grad: &[
            &[16.666668, 1.6666667e+08, -8.333334],
            &[-4.166667, -33.333336, 1.6666667e+08],
        ],
    };

    /// `per_sample`: `keras.losses.get("msle")(y_true, y_pred)`; `loss`: `keras.losses.MeanSquaredLogarithmicError()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.MeanSquaredLogarithmicError()(y_true, p))(y_pred)`.
    const MSLE: Golden = Golden {
        loss: Loss::MeanSquaredLogarithmicError,
        y_true: &[&[1.0, 0.0, 2.0], &[4.0, -0.5, 0.3]],
        y_pred: &[&[1.5, 0.1, -2.0], &[3.0, 0.5, 0.0]],
        per_sample: &[0.42194197, 0.094343275],
        value: 0.25814262,
        grad: &[
            &[0.029752478, 0.028881842, -0.0],
            &[-0.018595299, 0.09010333, -0.0],
        ],
    };

    /// `per_sample`: `keras.losses.get("log_cosh")(y_true, y_pred)`; `loss`: `keras.losses.LogCosh()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.LogCosh()(y_true, p))(y_pred)`.
    const LOG_COSH: Golden = Golden {
        loss: Loss::LogCosh,
        y_true: &[&[1.0, 0.0, 2.0], &[4.0, -0.5, 0.3]],
        y_pred: &[&[1.5, 0.1, -2.0], &[30.0, 0.5, -60.0]],
        per_sample: &[1.1440983, 28.449163],
        value: 14.796631,
        grad: &[
            &[0.077019535, 0.016611338, -0.1665548],
            &[0.16666667, 0.12693237, -0.16666667],
        ],
    };

    /// `per_sample`: `keras.losses.get("kld")(y_true, y_pred)`; `loss`: `keras.losses.KLDivergence()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.KLDivergence()(y_true, p))(y_pred)`.
    const KLD: Golden = Golden {
        loss: Loss::KLDivergence,
        y_true: &[&[0.2, 0.8, 0.0], &[0.5, 0.25, 0.25], &[1.5, 0.0, 0.3]],
        y_pred: &[&[0.3, 0.6, 0.1], &[0.0, 0.5, 2.0], &[0.4, 0.4, 0.3]],
        per_sample: &[0.1490512, 7.1926136, 0.9162892],
        value: 2.7526512,
        grad: &[
            &[-0.22222224, -0.44444448, -3.3333333e-07],
            &[-0.0, -0.16666667, -0.0],
            &[-0.8333333, -8.333333e-08, -0.33333337],
        ],
    };

    /// `per_sample`: `keras.losses.get("poisson")(y_true, y_pred)`; `loss`: `keras.losses.Poisson()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.Poisson()(y_true, p))(y_pred)`.
    const POISSON: Golden = Golden {
        loss: Loss::Poisson,
        y_true: &[&[1.0, 0.0, 2.0], &[4.0, 3.0, 0.3]],
        y_pred: &[&[1.5, 0.1, 2.0], &[3.0, 0.0, 0.5]],
        per_sample: &[0.60274684, 15.889261],
        value: 8.246004,
        grad: &[
            &[0.055555567, 0.16666667, 0.0],
            &[-0.055555552, -5e+06, 0.066666685],
        ],
    };

    /// `per_sample`: `keras.losses.get("hinge")(y_true, y_pred)`; `loss`: `keras.losses.Hinge()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.Hinge()(y_true, p))(y_pred)`.
    const HINGE_01: Golden = Golden {
        loss: Loss::Hinge,
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0]],
        y_pred: &[&[0.3, 1.0, -0.5], &[2.0, -1.0, 0.4]],
        per_sample: &[0.93333334, 0.46666667],
        value: 0.7,
        grad: &[
            &[0.16666667, -0.083333336, -0.16666667],
            &[-0.0, 0.083333336, 0.16666667],
        ],
    };

    /// `per_sample`: `keras.losses.get("hinge")(y_true, y_pred)`; `loss`: `keras.losses.Hinge()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.Hinge()(y_true, p))(y_pred)`.
    const HINGE_PM1: Golden = Golden {
        loss: Loss::Hinge,
        y_true: &[&[-1.0, 1.0, 1.0], &[1.0, -1.0, 0.0]],
        y_pred: &[&[0.3, 1.0, -0.5], &[2.0, -1.0, 0.4]],
        per_sample: &[0.93333334, 0.33333334],
        value: 0.6333333,
        grad: &[
            &[0.16666667, -0.083333336, -0.16666667],
            &[-0.0, 0.083333336, -0.0],
        ],
    };

    /// `per_sample`: `keras.losses.get("squared_hinge")(y_true, y_pred)`; `loss`: `keras.losses.SquaredHinge()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.SquaredHinge()(y_true, p))(y_pred)`.
    const SQUARED_HINGE: Golden = Golden {
        loss: Loss::SquaredHinge,
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0]],
        y_pred: &[&[0.3, 1.0, -0.5], &[2.0, -1.0, 0.4]],
        per_sample: &[1.3133333, 0.6533333],
        value: 0.9833333,
        grad: &[&[0.43333334, -0.0, -0.5], &[-0.0, 0.0, 0.46666667]],
    };

    /// `per_sample`: `keras.losses.get("categorical_hinge")(y_true, y_pred)`; `loss`: `keras.losses.CategoricalHinge()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalHinge()(y_true, p))(y_pred)`.
    const CATEGORICAL_HINGE: Golden = Golden {
        loss: Loss::CategoricalHinge,
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.0, 0.0, 1.0],
            &[0.0, 1.0, 0.0],
        ],
        y_pred: &[
            &[0.3, 0.6, 0.3],
            &[-0.2, -0.5, -0.1],
            &[0.1, 0.2, 0.3],
            &[0.2, 0.9, 0.1],
        ],
        per_sample: &[0.7, 1.2, 0.9, 0.3],
        value: 0.77500004,
        grad: &[
            &[0.125, -0.25, 0.125],
            &[-0.25, 0.0, 0.0],
            &[0.0, 0.25, -0.25],
            &[0.25, -0.25, 0.0],
        ],
    };

    /// `per_sample`: `keras.losses.get("binary_focal_crossentropy")(y_true, y_pred)`; `loss`: `keras.losses.BinaryFocalCrossentropy()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryFocalCrossentropy()(y_true, p))(y_pred)`.
    const BINARY_FOCAL: Golden = Golden {
        loss: Loss::BinaryFocalCrossentropy {
            apply_class_balancing: false,
            alpha: 0.25,
            gamma: 2.0,
            from_logits: false,
            label_smoothing: 0.0,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[0.0, 1.0, 0.5],
            &[1e-07, 0.3, 0.999],
            &[0.9999999, 1e-09, 0.7],
        ],
        per_sample: &[0.057762265, 7.681384, 10.793329],
        value: 6.1774917,
        grad: &[
            &[0.0, 0.0, -0.13257192],
            &[-555559.0, 0.038064048, 112.42396],
            &[466037.22, -3.5817993, 0.120162375],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.binary_focal_crossentropy, apply_class_balancing=True, alpha=0.4, gamma=3.0, label_smoothing=0.1)(y_true, y_pred)`; `loss`: `keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=3.0, label_smoothing=0.1)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=3.0, label_smoothing=0.1)(y_true, p))(y_pred)`.
    const BINARY_FOCAL_BALANCED: Golden = Golden {
        loss: Loss::BinaryFocalCrossentropy {
            apply_class_balancing: true,
            alpha: 0.4,
            gamma: 3.0,
            from_logits: false,
            label_smoothing: 0.1,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[0.0, 1.0, 0.5],
            &[1e-07, 0.3, 0.999],
            &[0.9999999, 1e-09, 0.7],
        ],
        per_sample: &[0.011874694, 2.9001665, 4.3791404],
        value: 2.430394,
        grad: &[
            &[0.00035661305, -0.00024511435, -0.03156428],
            &[-185528.1, 0.009789812, 54.288],
            &[223958.92, -1.6997681, 0.039799623],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.binary_focal_crossentropy, from_logits=True, gamma=1.5)(y_true, y_pred)`; `loss`: `keras.losses.BinaryFocalCrossentropy(from_logits=True, gamma=1.5)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.BinaryFocalCrossentropy(from_logits=True, gamma=1.5)(y_true, p))(y_pred)`.
    const BINARY_FOCAL_LOGITS: Golden = Golden {
        loss: Loss::BinaryFocalCrossentropy {
            apply_class_balancing: false,
            alpha: 0.25,
            gamma: 1.5,
            from_logits: true,
            label_smoothing: 0.0,
        },
        y_true: &[&[0.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.3]],
        y_pred: &[
            &[-3.0, 0.0, 2.5],
            &[30.0, -30.0, 100.0],
            &[-100.0, 0.5, 7.0],
        ],
        per_sample: &[0.08240487, 5.3141284, 0.9926785],
        value: 2.1297374,
        grad: &[
            &[0.00013409446, -0.040063903, -0.0004299717],
            &[0.0, 0.0, 0.0],
            &[0.0, -0.021140382, 0.04570543],
        ],
    };

    /// `per_sample`: `keras.losses.get("categorical_focal_crossentropy")(y_true, y_pred)`; `loss`: `keras.losses.CategoricalFocalCrossentropy()(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalFocalCrossentropy()(y_true, p))(y_pred)`.
    const CATEGORICAL_FOCAL: Golden = Golden {
        loss: Loss::CategoricalFocalCrossentropy {
            alpha: 0.25,
            gamma: 2.0,
            from_logits: false,
            label_smoothing: 0.0,
        },
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.2, 0.3, 0.5],
            &[1.0, 0.0, 0.0],
        ],
        y_pred: &[
            &[0.2, 0.3, 0.1],
            &[0.0, 1.0, 0.0],
            &[0.5, 0.5, 0.5],
            &[2.0, 1.0, 1.0],
        ],
        per_sample: &[0.0433217, 4.029523, 0.12206802, 0.0433217],
        value: 1.0595585,
        grad: &[
            &[0.062143084, -0.062143076, 0.062143084],
            &[-0.0, -0.0, -0.0],
            &[0.015545275, 0.0038863197, -0.019431595],
            &[-0.009321462, 0.009321462, 0.009321462],
        ],
    };

    /// `per_sample`: `functools.partial(keras.losses.categorical_focal_crossentropy, alpha=0.5, gamma=1.0, from_logits=True, label_smoothing=0.1)(y_true, y_pred)`; `loss`: `keras.losses.CategoricalFocalCrossentropy(alpha=0.5, gamma=1.0, from_logits=True, label_smoothing=0.1)(y_true, y_pred)`;
    /// `grad`: `jax.grad(lambda p: keras.losses.CategoricalFocalCrossentropy(alpha=0.5, gamma=1.0, from_logits=True, label_smoothing=0.1)(y_true, p))(y_pred)`.
    const CATEGORICAL_FOCAL_LOGITS: Golden = Golden {
        loss: Loss::CategoricalFocalCrossentropy {
            alpha: 0.5,
            gamma: 1.0,
            from_logits: true,
            label_smoothing: 0.1,
        },
        y_true: &[
            &[0.0, 1.0, 0.0],
            &[1.0, 0.0, 0.0],
            &[0.2, 0.3, 0.5],
            &[1.0, 0.0, 0.0],
        ],
        y_pred: &[
            &[1.0, -2.0, 0.5],
            &[20.0, -20.0, 0.0],
            &[0.0, 0.0, 0.0],
            &[-1.5, 3.0, 2.0],
        ],
        per_sample: &[1.6002625, 0.53726983, 0.36620408, 2.2494571],
        value: 1.1882983,
        grad: &[
            &[0.077102914, -0.12146585, 0.044362925],
            &[-0.0, -0.0, -0.0],
            &[0.015493063, 0.003873264, -0.019366326],
            &[-0.119235896, 0.08990653, 0.029329367],
        ],
    };

    const GOLDENS: &[(&str, Golden)] = &[
        ("MSE", MSE),
        ("MAE", MAE),
        ("HUBER", HUBER),
        ("HUBER_DELTA_2", HUBER_DELTA_2),
        ("BCE", BCE),
        ("BCE_SMOOTH", BCE_SMOOTH),
        ("BCE_LOGITS", BCE_LOGITS),
        ("BCE_LOGITS_SMOOTH", BCE_LOGITS_SMOOTH),
        ("BCE_ONE_COLUMN", BCE_ONE_COLUMN),
        ("CCE", CCE),
        ("CCE_SMOOTH", CCE_SMOOTH),
        ("CCE_LOGITS", CCE_LOGITS),
        ("CCE_LOGITS_SMOOTH", CCE_LOGITS_SMOOTH),
        ("SCCE", SCCE),
        ("SCCE_LOGITS", SCCE_LOGITS),
        ("MAPE", MAPE),
        ("MSLE", MSLE),
        ("LOG_COSH", LOG_COSH),
        ("KLD", KLD),
        ("POISSON", POISSON),
        ("HINGE_01", HINGE_01),
        ("HINGE_PM1", HINGE_PM1),
        ("SQUARED_HINGE", SQUARED_HINGE),
        ("CATEGORICAL_HINGE", CATEGORICAL_HINGE),
        ("BINARY_FOCAL", BINARY_FOCAL),
        ("BINARY_FOCAL_BALANCED", BINARY_FOCAL_BALANCED),
        ("BINARY_FOCAL_LOGITS", BINARY_FOCAL_LOGITS),
        ("CATEGORICAL_FOCAL", CATEGORICAL_FOCAL),
        ("CATEGORICAL_FOCAL_LOGITS", CATEGORICAL_FOCAL_LOGITS),
    ];

    #[test]
    fn per_sample_values_and_reduced_loss_match_keras() {
        for (label, golden) in GOLDENS {
            let y_true = arr(golden.y_true);
            let y_pred = arr(golden.y_pred);
            let width = y_pred.ncols();
            golden.loss.check_targets(y_true.view(), &[width]).unwrap();
            let per = golden.loss.per_sample(y_pred.view(), y_true.view());
            assert_eq!(per.len(), golden.per_sample.len(), "{label}");
            for (i, (&a, &e)) in per.iter().zip(golden.per_sample).enumerate() {
                assert!(close(a, e), "{label}: per_sample[{i}] = {a}, Keras {e}");
            }
            let (value, _) = golden.loss.loss_and_grad(y_pred.view(), y_true.view());
            assert!(
                close(value, golden.value),
                "{label}: loss {value}, Keras {}",
                golden.value
            );
        }
    }

    /// Includes the clipped probabilities (gradient 0 outside `[eps, 1 - eps]`, half
    /// exactly at `1e-7` and at `0.9999999`), the categorical renormalisation, the
    /// `abs`/`maximum`/row-`max` tie rules, and the logits paths.
    #[test]
    fn gradients_match_jax_grad() {
        for (label, golden) in GOLDENS {
            let y_true = arr(golden.y_true);
            let y_pred = arr(golden.y_pred);
            let (_, grad) = golden.loss.loss_and_grad(y_pred.view(), y_true.view());
            let expected = arr(golden.grad);
            assert_eq!(grad.dim(), expected.dim(), "{label}");
            for ((ij, &a), &e) in grad.indexed_iter().zip(expected.iter()) {
                assert!(close(a, e), "{label}: grad{ij:?} = {a}, jax.grad {e}");
            }
        }
    }

    /// The loss as an `f64` function of one element of `y_pred`.
    fn perturbed(
        loss: &Loss,
        y_pred: &Array2<f32>,
        y_true: &Array2<f32>,
        ij: (usize, usize),
        h: f32,
    ) -> f64 {
        let mut p = y_pred.clone();
        p[ij] += h;
        let per = loss.per_sample(p.view(), y_true.view());
        per.iter().map(|&v| f64::from(v)).sum::<f64>() / per.len() as f64
    }

    fn finite_difference_check(loss: Loss, y_pred: Array2<f32>, y_true: Array2<f32>) {
        let (_, grad) = loss.loss_and_grad(y_pred.view(), y_true.view());
        for (ij, &analytic) in grad.indexed_iter() {
            let h = 1e-2 * y_pred[ij].abs().max(0.1);
            let numeric = (perturbed(&loss, &y_pred, &y_true, ij, h)
                - perturbed(&loss, &y_pred, &y_true, ij, -h))
                / (2.0 * f64::from(h));
            let analytic = f64::from(analytic);
            assert!(
                (numeric - analytic).abs() <= FD_REL_TOL * analytic.abs() + FD_ABS_TOL,
                "{loss:?}: grad{ij:?} = {analytic}, finite difference {numeric}"
            );
        }
    }

    /// Probabilities away from the clip bounds.
    fn probs() -> Array2<f32> {
        array![
            [0.2, 0.7, 0.45, 0.6],
            [0.35, 0.15, 0.8, 0.55],
            [0.65, 0.3, 0.25, 0.75]
        ]
    }

    /// Soft targets in `[0, 1]`.
    fn soft_targets() -> Array2<f32> {
        array![
            [0.0, 1.0, 0.3, 1.0],
            [1.0, 0.0, 0.5, 0.0],
            [0.2, 0.9, 0.0, 1.0]
        ]
    }

    /// Class distributions (rows sum to 1).
    fn categorical_targets() -> Array2<f32> {
        array![
            [0.0, 1.0, 0.0, 0.0],
            [0.1, 0.2, 0.3, 0.4],
            [0.0, 0.0, 0.0, 1.0]
        ]
    }

    fn logits() -> Array2<f32> {
        array![
            [1.5, -0.5, 0.3, 2.0],
            [-1.2, 0.8, 0.1, -2.5],
            [0.4, 3.0, -0.7, 1.1]
        ]
    }

    /// Regression targets (no zeros, for MAPE).
    fn regression_targets() -> Array2<f32> {
        array![
            [0.5, -1.2, 2.0, 0.3],
            [1.5, 0.6, -0.7, 2.2],
            [-2.0, 0.9, 1.1, -0.4]
        ]
    }

    /// Regression predictions: errors away from 0, ±1 and ±2 (the MAE and Huber kinks).
    fn regression_predictions() -> Array2<f32> {
        regression_targets()
            + array![
                [0.3, -0.45, 1.7, -2.6],
                [0.8, -0.2, 0.55, -1.3],
                [2.4, 0.35, -0.6, 0.15]
            ]
    }

    #[test]
    fn gradients_match_finite_differences() {
        let bce = |from_logits, label_smoothing| Loss::BinaryCrossentropy {
            from_logits,
            label_smoothing,
        };
        let cce = |from_logits, label_smoothing| Loss::CategoricalCrossentropy {
            from_logits,
            label_smoothing,
        };
        for loss in [
            Loss::MeanSquaredError,
            Loss::MeanAbsoluteError,
            Loss::MeanAbsolutePercentageError,
            Loss::Huber { delta: 1.0 },
            Loss::Huber { delta: 2.0 },
            Loss::LogCosh,
        ] {
            finite_difference_check(loss, regression_predictions(), regression_targets());
        }
        for loss in [Loss::MeanSquaredLogarithmicError, Loss::Poisson] {
            finite_difference_check(loss, probs() * 3.0, soft_targets());
        }
        for loss in [Loss::KLDivergence, bce(false, 0.0), bce(false, 0.1)] {
            finite_difference_check(loss, probs(), soft_targets());
        }
        finite_difference_check(bce(true, 0.0), logits(), soft_targets());
        finite_difference_check(bce(true, 0.2), logits(), soft_targets());
        for (from_logits, y_pred) in [(false, probs()), (true, logits())] {
            finite_difference_check(cce(from_logits, 0.0), y_pred.clone(), categorical_targets());
            finite_difference_check(cce(from_logits, 0.1), y_pred.clone(), categorical_targets());
            finite_difference_check(
                Loss::SparseCategoricalCrossentropy { from_logits },
                y_pred.clone(),
                array![[1.0], [2.0], [3.0]],
            );
            finite_difference_check(
                Loss::CategoricalFocalCrossentropy {
                    alpha: 0.25,
                    gamma: 2.0,
                    from_logits,
                    label_smoothing: 0.1,
                },
                y_pred.clone(),
                categorical_targets(),
            );
            finite_difference_check(
                Loss::BinaryFocalCrossentropy {
                    apply_class_balancing: true,
                    alpha: 0.4,
                    gamma: 3.0,
                    from_logits,
                    label_smoothing: 0.1,
                },
                y_pred.clone(),
                soft_targets(),
            );
        }
        let binary = array![
            [0.0, 1.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0, 1.0]
        ];
        finite_difference_check(Loss::Hinge, logits(), binary.clone());
        finite_difference_check(Loss::SquaredHinge, logits(), binary);
        finite_difference_check(
            Loss::CategoricalHinge,
            logits(),
            array![
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0]
            ],
        );
    }

    #[test]
    fn empty_batch_gives_zero() {
        let empty = Array2::<f32>::zeros((0, 3));
        let (value, grad) = Loss::MeanSquaredError.loss_and_grad(empty.view(), empty.view());
        assert_eq!(value, 0.0);
        assert_eq!(grad.dim(), (0, 3));
    }

    #[test]
    fn from_config_accepts_strings_aliases_and_objects() {
        let parse = |v: Value| Loss::from_config(&v).unwrap();
        // What Keras 3.15.1 writes for `compile(loss="mse")`: the string itself.
        assert_eq!(parse(json!("mse")), Loss::MeanSquaredError);
        assert_eq!(parse(json!("MSE")), Loss::MeanSquaredError);
        assert_eq!(parse(json!("mean_squared_error")), Loss::MeanSquaredError);
        assert_eq!(parse(json!("MeanSquaredError")), Loss::MeanSquaredError);
        assert_eq!(parse(json!("mae")), Loss::MeanAbsoluteError);
        assert_eq!(parse(json!("mape")), Loss::MeanAbsolutePercentageError);
        assert_eq!(parse(json!("MSLE")), Loss::MeanSquaredLogarithmicError);
        assert_eq!(parse(json!("kld")), Loss::KLDivergence);
        assert_eq!(parse(json!("huber")), Loss::Huber { delta: 1.0 });
        assert_eq!(parse(json!("Huber")), Loss::Huber { delta: 1.0 });
        assert_eq!(parse(json!("log_cosh")), Loss::LogCosh);
        assert_eq!(
            parse(json!("bce")),
            Loss::BinaryCrossentropy {
                from_logits: false,
                label_smoothing: 0.0
            }
        );
        assert_eq!(
            parse(json!("sparse_categorical_crossentropy")),
            Loss::SparseCategoricalCrossentropy { from_logits: false }
        );
        assert_eq!(parse(json!(["hinge"])), Loss::Hinge);
        // `compile(loss=keras.losses.Huber(delta=2.0))`: Keras 3.15.1 does not write `delta`.
        assert_eq!(
            parse(json!({"module": "keras.losses", "class_name": "Huber",
                "config": {"name": "huber_loss", "reduction": "sum_over_batch_size"},
                "registered_name": null})),
            Loss::Huber { delta: 1.0 }
        );
        assert_eq!(
            parse(json!({"module": "keras.losses", "class_name": "Huber",
                "config": {"name": "huber_loss", "reduction": "sum_over_batch_size", "delta": 2.0}})),
            Loss::Huber { delta: 2.0 }
        );
        // `compile(loss=keras.losses.get("mse"))` / `keras.losses.huber`: function objects.
        assert_eq!(
            parse(json!({"module": "builtins", "class_name": "function",
                "config": "mean_squared_error", "registered_name": "function"})),
            Loss::MeanSquaredError
        );
        assert_eq!(
            parse(json!({"module": "builtins", "class_name": "function",
                "config": "huber", "registered_name": "function"})),
            Loss::Huber { delta: 1.0 }
        );
        // Written by Keras 3.15.1 for the objects with options.
        assert_eq!(
            parse(
                json!({"module": "keras.losses", "class_name": "BinaryCrossentropy",
                "config": {"name": "binary_crossentropy", "reduction": "sum_over_batch_size",
                    "from_logits": true, "label_smoothing": 0.1, "axis": -1},
                "registered_name": null})
            ),
            Loss::BinaryCrossentropy {
                from_logits: true,
                label_smoothing: 0.1
            }
        );
        assert_eq!(
            parse(
                json!({"module": "keras.losses", "class_name": "CategoricalCrossentropy",
                "config": {"name": "categorical_crossentropy", "reduction": "sum_over_batch_size",
                    "from_logits": true, "label_smoothing": 0.1, "axis": -1},
                "registered_name": null})
            ),
            Loss::CategoricalCrossentropy {
                from_logits: true,
                label_smoothing: 0.1
            }
        );
        assert_eq!(
            parse(
                json!({"module": "keras.losses", "class_name": "SparseCategoricalCrossentropy",
                "config": {"name": "sparse_categorical_crossentropy",
                    "reduction": "sum_over_batch_size", "from_logits": true, "ignore_class": null},
                "registered_name": null})
            ),
            Loss::SparseCategoricalCrossentropy { from_logits: true }
        );
        assert_eq!(
            parse(
                json!({"module": "keras.losses", "class_name": "BinaryFocalCrossentropy",
                "config": {"name": "binary_focal_crossentropy", "reduction": "sum_over_batch_size",
                    "from_logits": false, "label_smoothing": 0.0, "axis": -1,
                    "apply_class_balancing": true, "alpha": 0.25, "gamma": 3.0},
                "registered_name": null})
            ),
            Loss::BinaryFocalCrossentropy {
                apply_class_balancing: true,
                alpha: 0.25,
                gamma: 3.0,
                from_logits: false,
                label_smoothing: 0.0
            }
        );
        assert_eq!(
            parse(
                json!({"module": "keras.losses", "class_name": "CategoricalFocalCrossentropy",
                "config": {"name": "categorical_focal_crossentropy",
                    "reduction": "sum_over_batch_size", "from_logits": false,
                    "label_smoothing": 0.0, "axis": -1, "alpha": 0.25, "gamma": 2.0},
                "registered_name": null})
            ),
            Loss::CategoricalFocalCrossentropy {
                alpha: 0.25,
                gamma: 2.0,
                from_logits: false,
                label_smoothing: 0.0
            }
        );
        // `keras.losses.get({"class_name": ..., "config": ...})` form without module.
        assert_eq!(
            parse(
                json!({"class_name": "CategoricalCrossentropy", "config": {"from_logits": true}})
            ),
            Loss::CategoricalCrossentropy {
                from_logits: true,
                label_smoothing: 0.0
            }
        );
        assert_eq!(
            parse(json!({"module": "keras.losses", "class_name": "LogCosh",
            "config": {"name": "log_cosh", "reduction": "mean"}})),
            Loss::LogCosh
        );
    }

    #[test]
    fn names_are_keras_function_names() {
        assert_eq!(Loss::MeanSquaredError.name(), "mean_squared_error");
        assert_eq!(Loss::Huber { delta: 2.0 }.name(), "huber");
        assert_eq!(Loss::KLDivergence.name(), "kl_divergence");
        assert_eq!(
            Loss::SparseCategoricalCrossentropy { from_logits: true }.name(),
            "sparse_categorical_crossentropy"
        );
        // Every listed name parses, and every loss's name is listed.
        for name in Loss::NAMES {
            let loss = Loss::from_config(&json!(name)).unwrap();
            assert!(Loss::NAMES.contains(&loss.name()), "{name}");
        }
    }

    #[test]
    fn crossentropy_resolves_by_shape() {
        let v = json!("crossentropy");
        assert!(Loss::from_config(&v).is_err());
        assert_eq!(
            Loss::from_config_with_shapes(&v, 1, 1).unwrap(),
            Loss::BinaryCrossentropy {
                from_logits: false,
                label_smoothing: 0.0
            }
        );
        assert_eq!(
            Loss::from_config_with_shapes(&json!("CE"), 4, 1).unwrap(),
            Loss::SparseCategoricalCrossentropy { from_logits: false }
        );
        assert_eq!(
            Loss::from_config_with_shapes(&json!("Crossentropy"), 4, 4).unwrap(),
            Loss::CategoricalCrossentropy {
                from_logits: false,
                label_smoothing: 0.0
            }
        );
        assert_eq!(
            Loss::from_config_with_shapes(&json!("mse"), 4, 4).unwrap(),
            Loss::MeanSquaredError
        );
    }

    #[test]
    fn from_config_rejects_unknown_names_and_unsupported_options() {
        let err = Loss::from_config(&json!("cosine_similarity")).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err.kind(), ErrorKind::Unsupported { what: "loss", name, .. } if name == "cosine_similarity"),
            "{msg}"
        );
        for name in Loss::NAMES {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }
        // Identifiers are case-sensitive, as in `ALL_OBJECTS_DICT`.
        assert!(Loss::from_config(&json!("Mse")).is_err());
        let unsupported = |v: Value, needle: &str| {
            let msg = Loss::from_config(&v).unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        };
        unsupported(
            json!({"module": "keras.losses", "class_name": "Dice", "config": {}}),
            "unsupported loss `Dice`",
        );
        unsupported(
            json!({"module": "my_pkg", "class_name": "function", "config": "mse_plus",
                "registered_name": "my_pkg>mse_plus"}),
            "unsupported loss function `my_pkg.mse_plus`",
        );
        unsupported(
            json!({"module": "keras.losses", "class_name": "SparseCategoricalCrossentropy",
                "config": {"ignore_class": 0}}),
            "`ignore_class` = 0 is not supported",
        );
        unsupported(
            json!({"module": "keras.losses", "class_name": "BinaryCrossentropy",
                "config": {"axis": 0}}),
            "`axis` = 0 is not supported",
        );
        unsupported(
            json!({"module": "keras.losses", "class_name": "MeanSquaredError",
                "config": {"reduction": "sum"}}),
            "unsupported loss reduction `sum`",
        );
        unsupported(
            json!({"module": "keras.losses", "class_name": "MeanSquaredError",
                "config": {"reduction": null}}),
            "unsupported loss reduction `null`",
        );
        unsupported(
            json!({"module": "keras.losses", "class_name": "MeanSquaredError",
                "config": {"delta": 2.0}}),
            "unknown option `delta`",
        );
        unsupported(
            json!({"module": "keras.losses", "class_name": "Huber", "config": {"delta": "2"}}),
            "`delta` must be a finite number",
        );
        unsupported(json!(["mse", "mae"]), "only single-output models");
        unsupported(json!(null), "compiled without one");
        unsupported(json!("crossentropy"), "from_config_with_shapes");
    }

    #[test]
    fn check_targets_names_both_shapes() {
        let cce = Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        };
        let msg = cce
            .check_targets(Array2::zeros((4, 1)).view(), &[3])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("[4, 3]") && msg.contains("[4, 1]"), "{msg}");
        assert!(msg.contains("model output (None, 3)"), "{msg}");
        let scce = Loss::SparseCategoricalCrossentropy { from_logits: false };
        scce.check_targets(array![[0.0], [2.0]].view(), &[3])
            .unwrap();
        let msg = scce
            .check_targets(Array2::zeros((4, 3)).view(), &[3])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("[4, 1]") && msg.contains("[4, 3]"), "{msg}");
        for bad in [3.0, -1.0, 1.5, f32::NAN] {
            let msg = scce
                .check_targets(array![[0.0], [bad]].view(), &[3])
                .unwrap_err()
                .to_string();
            assert!(msg.contains("[0, 3)") && msg.contains("row 1"), "{msg}");
        }
    }
}
