//! Keras metrics as `model.fit` reports them: resolved from
//! `compile_config["metrics"]` (and `weighted_metrics`), accumulated over the
//! batches of an epoch, named as in Keras's logs.
//!
//! # Specification
//!
//! Keras 3.15.1 on the JAX backend; paths relative to `site-packages/`:
//!
//! * `keras/src/trainers/compile_utils.py`: `get_metric` (the strings
//!   `"accuracy"`/`"acc"`, in any case, become `BinaryAccuracy` when the output
//!   has width 1, `SparseCategoricalAccuracy` when the targets are labels,
//!   `CategoricalAccuracy` otherwise; a string metric is named by the string
//!   itself, an object by its `name`, a function by its `__name__`), and
//!   `CompileMetrics.result` (a repeated name gets `_1`, `_2`, ...; a weighted
//!   metric whose name is taken becomes `weighted_<name>`);
//! * `keras/src/metrics/__init__.py`: the identifiers (`ALL_OBJECTS_DICT`: class
//!   names, their snake_case forms, and `mse`, `MSE`, `mae`, `MAE`, `mape`,
//!   `MAPE`, `msle`, `MSLE`, `bce`, `BCE`);
//! * `keras/src/metrics/reduction_metrics.py`: `Mean` and `MeanMetricWrapper`
//!   (per-sample values — a 2-D result is first averaged over its last axis —
//!   are summed into a `float32` `total`, the batch size into a `float32`
//!   `count`; the result is `total / count`, 0 when `count` is 0);
//! * `keras/src/metrics/accuracy_metrics.py`, `regression_metrics.py`,
//!   `probabilistic_metrics.py`, `hinge_metrics.py`: the metric functions and
//!   classes;
//! * `keras/src/backend/jax/numpy.py` `argmax` (on CPU, `-0.0` is replaced by
//!   `-tiny` first) and `keras/src/backend/jax/math.py` `in_top_k`.
//!
//! # Config form
//!
//! Keras 3.15.1 writes string metrics verbatim (`["accuracy", "mse"]`), metric
//! objects as `{"module": "keras.metrics", "class_name": "BinaryAccuracy",
//! "config": {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5},
//! "registered_name": null}` and metric functions as `{"module": "builtins",
//! "class_name": "function", "config": "binary_accuracy", "registered_name":
//! "function"}`. The logs of `fit` then hold `"accuracy"` for `["accuracy"]`,
//! `"acc"` for `["acc"]`, `"mse"` for `["mse"]`, `"mae"` for `["mae"]`,
//! `"binary_accuracy"` for `[BinaryAccuracy()]`, `"mean_squared_error"` for
//! `[keras.metrics.mean_squared_error]` (checked with Keras, also after
//! `save`/`load_model`).
//!
//! # Targets
//!
//! The metrics see the same `[batch, k]` targets as the loss: `k = 1` labels
//! for a sparse loss, `k = output width` otherwise (see
//! [`Loss::check_targets`]). A metric that needs the other form is rejected by
//! [`Metric::from_config`], except where Keras's broadcasting is well defined
//! (`BinaryAccuracy`/`Accuracy` against width-1 targets, `CategoricalAccuracy`
//! and `TopKCategoricalAccuracy`, which take the argmax of any target row).

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde_json::{Map, Value};

use crate::engine::loss::{Loss, LossFn, Options, is_keras_module};
use crate::error::{Error, Result};

/// What a metric computes per sample. Closed set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    /// `mean(y_true == y_pred)` over the last axis (keras/src/metrics/accuracy_metrics.py
    /// `accuracy`). Only reachable as a `keras.metrics.Accuracy` object: the strings
    /// `"accuracy"`/`"Accuracy"` are resolved by shape.
    Accuracy,
    /// `mean(y_true == cast(y_pred > threshold))` over the last axis
    /// (keras/src/metrics/accuracy_metrics.py `binary_accuracy`).
    BinaryAccuracy {
        /// Decision threshold (Keras default 0.5).
        threshold: f32,
    },
    /// `argmax(y_true) == argmax(y_pred)` (keras/src/metrics/accuracy_metrics.py
    /// `categorical_accuracy`).
    CategoricalAccuracy,
    /// `y_true == argmax(y_pred)` for labels `[batch, 1]`
    /// (keras/src/metrics/accuracy_metrics.py `sparse_categorical_accuracy`).
    SparseCategoricalAccuracy,
    /// `in_top_k(argmax(y_true), y_pred, k)` (keras/src/metrics/accuracy_metrics.py
    /// `top_k_categorical_accuracy`).
    TopKCategoricalAccuracy {
        /// How many top predictions count (Keras default 5).
        k: usize,
    },
    /// `in_top_k(int32(y_true), y_pred, k)` for labels `[batch, 1]`
    /// (keras/src/metrics/accuracy_metrics.py `sparse_top_k_categorical_accuracy`).
    SparseTopKCategoricalAccuracy {
        /// How many top predictions count (Keras default 5).
        k: usize,
    },
    /// `sqrt(total / count)` of the per-sample mean squared errors
    /// (keras/src/metrics/regression_metrics.py `RootMeanSquaredError`).
    RootMeanSquaredError,
    /// A `MeanMetricWrapper` of a loss function: its per-sample values
    /// ([`Loss::per_sample`]), e.g. `"mse"`, `"mae"`, `BinaryCrossentropy`
    /// (keras/src/metrics/regression_metrics.py, probabilistic_metrics.py,
    /// hinge_metrics.py).
    Loss(Loss),
}

/// One metric with its running state, as a Keras `Mean` metric keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The key in the logs, as Keras names it: the string identifier itself
    /// (`"accuracy"`, `"acc"`, `"mse"`), an object's `name` (`"binary_accuracy"`),
    /// a function's name (`"mean_squared_error"`); made unique by
    /// [`metrics_from_compile_config`].
    pub name: String,
    kind: MetricKind,
    weighted: bool,
    total: f32,
    count: f32,
}

/// Where a metric class takes its options and what it is called by default.
struct MetricClass {
    class_name: &'static str,
    snake_name: &'static str,
    default_name: &'static str,
    options: &'static [&'static str],
    kind: fn(&Options<'_>) -> Result<MetricKind>,
}

/// The metric classes of keras/src/metrics/__init__.py `ALL_OBJECTS` that are
/// supported, with their default `name` and `get_config` options.
const CLASSES: &[MetricClass] = &[
    MetricClass {
        class_name: "Accuracy",
        snake_name: "accuracy",
        default_name: "accuracy",
        options: &[],
        kind: |_| Ok(MetricKind::Accuracy),
    },
    MetricClass {
        class_name: "BinaryAccuracy",
        snake_name: "binary_accuracy",
        default_name: "binary_accuracy",
        options: &["threshold"],
        kind: |o| {
            Ok(MetricKind::BinaryAccuracy {
                threshold: o.f32("threshold", 0.5)?,
            })
        },
    },
    MetricClass {
        class_name: "CategoricalAccuracy",
        snake_name: "categorical_accuracy",
        default_name: "categorical_accuracy",
        options: &[],
        kind: |_| Ok(MetricKind::CategoricalAccuracy),
    },
    MetricClass {
        class_name: "SparseCategoricalAccuracy",
        snake_name: "sparse_categorical_accuracy",
        default_name: "sparse_categorical_accuracy",
        options: &[],
        kind: |_| Ok(MetricKind::SparseCategoricalAccuracy),
    },
    MetricClass {
        class_name: "TopKCategoricalAccuracy",
        snake_name: "top_k_categorical_accuracy",
        default_name: "top_k_categorical_accuracy",
        options: &["k"],
        kind: |o| {
            Ok(MetricKind::TopKCategoricalAccuracy {
                k: o.usize("k", 5)?,
            })
        },
    },
    MetricClass {
        class_name: "SparseTopKCategoricalAccuracy",
        snake_name: "sparse_top_k_categorical_accuracy",
        default_name: "sparse_top_k_categorical_accuracy",
        options: &["k", "from_sorted_ids"],
        kind: |o| {
            Ok(MetricKind::SparseTopKCategoricalAccuracy {
                k: o.usize("k", 5)?,
            })
        },
    },
    MetricClass {
        class_name: "RootMeanSquaredError",
        snake_name: "root_mean_squared_error",
        default_name: "root_mean_squared_error",
        options: &[],
        kind: |_| Ok(MetricKind::RootMeanSquaredError),
    },
    MetricClass {
        class_name: "MeanSquaredError",
        snake_name: "mean_squared_error",
        default_name: "mean_squared_error",
        options: &[],
        kind: |o| LossFn::MeanSquaredError.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "MeanAbsoluteError",
        snake_name: "mean_absolute_error",
        default_name: "mean_absolute_error",
        options: &[],
        kind: |o| LossFn::MeanAbsoluteError.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "MeanAbsolutePercentageError",
        snake_name: "mean_absolute_percentage_error",
        default_name: "mean_absolute_percentage_error",
        options: &[],
        kind: |o| {
            LossFn::MeanAbsolutePercentageError
                .build(o)
                .map(MetricKind::Loss)
        },
    },
    MetricClass {
        class_name: "MeanSquaredLogarithmicError",
        snake_name: "mean_squared_logarithmic_error",
        default_name: "mean_squared_logarithmic_error",
        options: &[],
        kind: |o| {
            LossFn::MeanSquaredLogarithmicError
                .build(o)
                .map(MetricKind::Loss)
        },
    },
    MetricClass {
        class_name: "LogCoshError",
        snake_name: "log_cosh_error",
        default_name: "logcosh",
        options: &[],
        kind: |o| LossFn::LogCosh.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "BinaryCrossentropy",
        snake_name: "binary_crossentropy",
        default_name: "binary_crossentropy",
        options: &["from_logits", "label_smoothing"],
        kind: |o| LossFn::BinaryCrossentropy.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "CategoricalCrossentropy",
        snake_name: "categorical_crossentropy",
        default_name: "categorical_crossentropy",
        options: &["from_logits", "label_smoothing", "axis"],
        kind: |o| {
            LossFn::CategoricalCrossentropy
                .build(o)
                .map(MetricKind::Loss)
        },
    },
    MetricClass {
        class_name: "SparseCategoricalCrossentropy",
        snake_name: "sparse_categorical_crossentropy",
        default_name: "sparse_categorical_crossentropy",
        options: &["from_logits", "ignore_class", "axis"],
        kind: |o| {
            LossFn::SparseCategoricalCrossentropy
                .build(o)
                .map(MetricKind::Loss)
        },
    },
    MetricClass {
        class_name: "KLDivergence",
        snake_name: "kl_divergence",
        default_name: "kl_divergence",
        options: &[],
        kind: |o| LossFn::KLDivergence.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "Poisson",
        snake_name: "poisson",
        default_name: "poisson",
        options: &[],
        kind: |o| LossFn::Poisson.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "Hinge",
        snake_name: "hinge",
        default_name: "hinge",
        options: &[],
        kind: |o| LossFn::Hinge.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "SquaredHinge",
        snake_name: "squared_hinge",
        default_name: "squared_hinge",
        options: &[],
        kind: |o| LossFn::SquaredHinge.build(o).map(MetricKind::Loss),
    },
    MetricClass {
        class_name: "CategoricalHinge",
        snake_name: "categorical_hinge",
        default_name: "categorical_hinge",
        options: &[],
        kind: |o| LossFn::CategoricalHinge.build(o).map(MetricKind::Loss),
    },
];

/// The options every metric class config has (keras/src/metrics/metric.py).
const METRIC_KEYS: [&str; 2] = ["name", "dtype"];

/// The metric functions of keras/src/metrics/accuracy_metrics.py that a serialized
/// function or a `MeanMetricWrapper` `fn` may name, with their keyword arguments.
fn accuracy_function(name: &str, opts: &Options<'_>) -> Option<Result<MetricKind>> {
    let kind = match name {
        "binary_accuracy" => opts
            .f32("threshold", 0.5)
            .map(|threshold| MetricKind::BinaryAccuracy { threshold }),
        "categorical_accuracy" => Ok(MetricKind::CategoricalAccuracy),
        "sparse_categorical_accuracy" => Ok(MetricKind::SparseCategoricalAccuracy),
        "top_k_categorical_accuracy" => opts
            .usize("k", 5)
            .map(|k| MetricKind::TopKCategoricalAccuracy { k }),
        "sparse_top_k_categorical_accuracy" => opts
            .usize("k", 5)
            .map(|k| MetricKind::SparseTopKCategoricalAccuracy { k }),
        _ => return None,
    };
    Some(kind)
}

/// The keyword arguments of the accuracy functions.
fn accuracy_function_kwargs(name: &str) -> &'static [&'static str] {
    match name {
        "binary_accuracy" => &["threshold"],
        "top_k_categorical_accuracy" => &["k"],
        "sparse_top_k_categorical_accuracy" => &["k", "from_sorted_ids"],
        _ => &[],
    }
}

/// A metric function named `name` (keras.metrics.* or keras.losses.*, as
/// keras/src/saving/serialization_lib.py resolves `builtins` functions) with the
/// keyword arguments `kwargs` (minus the keys in `skip`).
fn function_kind(
    name: &str,
    kwargs: Option<&Map<String, Value>>,
    skip: &[&'static str],
) -> Result<MetricKind> {
    let owner = format!("metric function `{name}`");
    if let Some(func) = LossFn::from_function_name(name) {
        let mut allowed = skip.to_vec();
        allowed.extend_from_slice(func.kwargs());
        return func
            .build(&Options::new(owner, kwargs, allowed))
            .map(MetricKind::Loss);
    }
    let mut allowed = skip.to_vec();
    allowed.extend_from_slice(accuracy_function_kwargs(name));
    let opts = Options::new(owner, kwargs, allowed);
    match accuracy_function(name, &opts) {
        Some(kind) => {
            opts.check_keys()?;
            opts.check_common()?;
            kind
        }
        None => Err(Error::unsupported("metric function", name, Metric::NAMES)),
    }
}

impl MetricKind {
    /// The per-sample values `[batch]` a Keras `Mean` metric accumulates: the metric
    /// function's result, averaged over the last axis when it is 2-D
    /// (keras/src/metrics/reduction_metrics.py `reduce_to_samplewise_values`).
    ///
    /// # Panics
    ///
    /// If the shapes do not fit (a wrong target width for a loss metric, or
    /// batch sizes that differ).
    pub fn values(&self, y_pred: ArrayView2<f32>, y_true: ArrayView2<f32>) -> Array1<f32> {
        assert_eq!(
            y_pred.nrows(),
            y_true.nrows(),
            "metric: targets and outputs have different batch sizes"
        );
        let rows = || y_pred.outer_iter().zip(y_true.outer_iter());
        match *self {
            MetricKind::Accuracy => rows().map(|(p, t)| row_mean_matches(p, t, |p| p)).collect(),
            MetricKind::BinaryAccuracy { threshold } => rows()
                .map(|(p, t)| row_mean_matches(p, t, |p| if p > threshold { 1.0 } else { 0.0 }))
                .collect(),
            MetricKind::CategoricalAccuracy => rows()
                .map(|(p, t)| matches(argmax(t) == argmax(p)))
                .collect(),
            MetricKind::SparseCategoricalAccuracy => rows()
                // `equal(y_true, cast(argmax(y_pred), float32))`: a float comparison.
                .map(|(p, t)| matches(t[0] == argmax(p) as f32))
                .collect(),
            MetricKind::TopKCategoricalAccuracy { k } => rows()
                .map(|(p, t)| matches(in_top_k(argmax(t) as i64, p, k)))
                .collect(),
            MetricKind::SparseTopKCategoricalAccuracy { k } => rows()
                // `convert_to_tensor(y_true, dtype="int32")` truncates.
                .map(|(p, t)| matches(in_top_k(t[0] as i32 as i64, p, k)))
                .collect(),
            MetricKind::RootMeanSquaredError => Loss::MeanSquaredError.per_sample(y_pred, y_true),
            MetricKind::Loss(loss) => loss.per_sample(y_pred, y_true),
        }
    }

    /// The target width the metric needs, given the model's: `Ok(None)` if any
    /// width works, `Ok(Some(k))` for exactly `k`.
    fn target_width(&self, output_width: usize) -> Option<usize> {
        match self {
            MetricKind::Accuracy | MetricKind::BinaryAccuracy { .. } => None,
            MetricKind::CategoricalAccuracy | MetricKind::TopKCategoricalAccuracy { .. } => None,
            MetricKind::SparseCategoricalAccuracy
            | MetricKind::SparseTopKCategoricalAccuracy { .. } => Some(1),
            MetricKind::RootMeanSquaredError => Some(output_width),
            MetricKind::Loss(loss) if loss.is_sparse() => Some(1),
            MetricKind::Loss(_) => Some(output_width),
        }
    }
}

/// `1.0` or `0.0`, as `cast(equal(..), float32)`.
#[inline]
fn matches(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// `mean(equal(y_true, f(y_pred)))` over a row, a width-1 target broadcast
/// against the whole row as Keras broadcasts it.
fn row_mean_matches(p: ArrayView1<f32>, t: ArrayView1<f32>, f: impl Fn(f32) -> f32) -> f32 {
    let k = p.len().max(t.len());
    let at = |a: &ArrayView1<f32>, j: usize| if a.len() == 1 { a[0] } else { a[j] };
    let sum = (0..k).fold(0.0f32, |acc, j| acc + matches(at(&t, j) == f(at(&p, j))));
    sum / k as f32
}

/// keras/src/backend/jax/numpy.py `argmax` on CPU: `-0.0` becomes `-tiny`, then
/// `jnp.argmax` (the first maximum; NaN counts as the maximum).
fn argmax(row: ArrayView1<f32>) -> usize {
    let key = |v: f32| {
        if v == 0.0 && v.is_sign_negative() {
            -f32::MIN_POSITIVE
        } else {
            v
        }
    };
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (j, &v) in row.iter().enumerate() {
        let v = key(v);
        if v.is_nan() {
            return j;
        }
        if j == 0 || v > best_v {
            best = j;
            best_v = v;
        }
    }
    best
}

/// keras/src/backend/jax/math.py `in_top_k`: the prediction at the label (`-inf`
/// if NaN or, as jax's `take_along_axis` fills it, out of range) ranks
/// `1 + count(predictions > it)`; in the top `k` if that is at most `k`.
fn in_top_k(label: i64, p: ArrayView1<f32>, k: usize) -> bool {
    let width = p.len() as i64;
    let index = if label < 0 { label + width } else { label };
    let at_label = if (0..width).contains(&index) {
        p[index as usize]
    } else {
        f32::NAN
    };
    let at_label = if at_label.is_nan() {
        f32::NEG_INFINITY
    } else {
        at_label
    };
    let rank = 1 + p.iter().filter(|&&v| v > at_label).count();
    rank <= k
}

impl Metric {
    /// Accepted string identifiers: `accuracy`/`acc` (any case, resolved by shape),
    /// then the supported class names and snake_case names of
    /// keras/src/metrics/__init__.py `ALL_OBJECTS_DICT`, then its aliases.
    pub const NAMES: &'static [&'static str] = &[
        "accuracy",
        "acc",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "root_mean_squared_error",
        "mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "log_cosh_error",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "kl_divergence",
        "poisson",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "BinaryAccuracy",
        "CategoricalAccuracy",
        "SparseCategoricalAccuracy",
        "TopKCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy",
        "RootMeanSquaredError",
        "MeanSquaredError",
        "MeanAbsoluteError",
        "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError",
        "LogCoshError",
        "BinaryCrossentropy",
        "CategoricalCrossentropy",
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
    ];

    /// A metric named `name` computing `kind`, with an empty state.
    pub fn new(name: impl Into<String>, kind: MetricKind) -> Self {
        Metric {
            name: name.into(),
            kind,
            weighted: false,
            total: 0.0,
            count: 0.0,
        }
    }

    /// What the metric computes.
    pub fn kind(&self) -> &MetricKind {
        &self.kind
    }

    /// Whether it came from `weighted_metrics` (without sample weights it computes
    /// the same as an unweighted one).
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }

    /// Resolve one entry of `compile_config["metrics"]` (a string, a serialized
    /// metric object, a serialized function, or a `MeanMetricWrapper`) for a model
    /// compiled with `loss` whose output has width `output_width`, as
    /// keras/src/trainers/compile_utils.py `get_metric` does. The targets are
    /// taken to be what `loss` accepts (labels `[batch, 1]` for a sparse loss, else
    /// like the output): `"accuracy"` becomes binary accuracy for width 1, sparse
    /// categorical accuracy for a sparse loss, categorical accuracy otherwise. A
    /// metric that cannot use those targets is an error.
    pub fn from_config(v: &Value, loss: &Loss, output_width: usize) -> Result<Self> {
        let target_width = if loss.is_sparse() { 1 } else { output_width };
        let (name, kind) = match v {
            Value::String(s)
                if s.eq_ignore_ascii_case("accuracy") || s.eq_ignore_ascii_case("acc") =>
            {
                let kind = if output_width == 1 {
                    MetricKind::BinaryAccuracy { threshold: 0.5 }
                } else if target_width == 1 {
                    MetricKind::SparseCategoricalAccuracy
                } else {
                    MetricKind::CategoricalAccuracy
                };
                (s.clone(), kind)
            }
            Value::String(s) => {
                let class = CLASSES
                    .iter()
                    .find(|c| c.class_name == s || c.snake_name == s)
                    .or_else(|| {
                        let class_name = match s.as_str() {
                            "mse" | "MSE" => "MeanSquaredError",
                            "mae" | "MAE" => "MeanAbsoluteError",
                            "mape" | "MAPE" => "MeanAbsolutePercentageError",
                            "msle" | "MSLE" => "MeanSquaredLogarithmicError",
                            "bce" | "BCE" => "BinaryCrossentropy",
                            _ => return None,
                        };
                        CLASSES.iter().find(|c| c.class_name == class_name)
                    })
                    .ok_or_else(|| Error::unsupported("metric", s.as_str(), Self::NAMES))?;
                let opts = Options::new(format!("metric `{s}`"), None, Vec::new());
                (s.clone(), (class.kind)(&opts)?)
            }
            Value::Object(map) => Self::from_object(map)?,
            other => {
                return Err(Error::invalid(format!(
                    "a metric must be a string or a serialized metric, found `{other}`"
                )));
            }
        };
        if let Some(needed) = kind.target_width(output_width)
            && needed != target_width
        {
            let targets = if target_width == 1 && output_width != 1 {
                format!("integer labels [batch, 1] (loss `{}`)", loss.name())
            } else {
                format!(
                    "targets shaped like the output [batch, {output_width}] (loss `{}`)",
                    loss.name()
                )
            };
            let wanted = if needed == 1 {
                "integer labels [batch, 1]".to_string()
            } else {
                format!("targets shaped like the output [batch, {output_width}]")
            };
            return Err(Error::mismatch(
                format!("metric `{name}` to take {wanted}"),
                targets,
            ));
        }
        Ok(Metric::new(name, kind))
    }

    fn from_object(map: &Map<String, Value>) -> Result<(String, MetricKind)> {
        let class_name = map
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("serialized metric has no string `class_name`"))?;
        let module = map.get("module");
        if !is_keras_module(module) {
            let name = match map.get("config") {
                Some(Value::String(fn_name)) if class_name == "function" => fn_name.as_str(),
                _ => class_name,
            };
            let full = format!("{}.{name}", module.and_then(Value::as_str).unwrap_or("?"));
            return Err(Error::unsupported("metric", full, Self::NAMES));
        }
        let config = match map.get("config") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(c),
            Some(Value::String(fn_name)) if class_name == "function" => {
                let kind = function_kind(fn_name, None, &[])?;
                return Ok((fn_name.clone(), kind));
            }
            Some(other) => {
                return Err(Error::invalid(format!(
                    "metric `{class_name}`: `config` must be an object, found `{other}`"
                )));
            }
        };
        if class_name == "function" {
            return Err(Error::invalid(
                "serialized metric function has no string `config` (its name)",
            ));
        }
        if module
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("losses"))
        {
            return Err(Error::invalid(format!(
                "a loss object (`{class_name}`) used as a metric is not supported; \
                 use the metric class or the loss function instead"
            )));
        }
        let name_of = |default: &str| -> String {
            config
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        if class_name == "MeanMetricWrapper" {
            // keras/src/metrics/reduction_metrics.py `MeanMetricWrapper.get_config`:
            // `name`, `dtype`, `fn` (a serialized function) and the function's kwargs.
            let fn_name = config
                .and_then(|c| c.get("fn"))
                .and_then(|f| match f {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) if is_keras_module(o.get("module")) => {
                        o.get("config").and_then(Value::as_str)
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::invalid("`MeanMetricWrapper` has no built-in function `fn`")
                })?;
            let kind = function_kind(fn_name, config, &["name", "dtype", "fn"])?;
            return Ok((name_of("mean_metric_wrapper"), kind));
        }
        let class = CLASSES
            .iter()
            .find(|c| c.class_name == class_name)
            .ok_or_else(|| Error::unsupported("metric", class_name, Self::NAMES))?;
        let mut allowed = METRIC_KEYS.to_vec();
        allowed.extend_from_slice(class.options);
        let opts = Options::new(format!("metric `{class_name}`"), config, allowed);
        opts.check_keys()?;
        opts.check_common()?;
        Ok((name_of(class.default_name), (class.kind)(&opts)?))
    }

    /// Accumulate one batch: `total += sum(values)`, `count += batch`, in `f32`
    /// (keras/src/metrics/reduction_metrics.py `Mean.update_state`).
    ///
    /// # Panics
    ///
    /// If the shapes do not fit (see [`MetricKind::values`]).
    pub fn update(&mut self, y_pred: ArrayView2<f32>, y_true: ArrayView2<f32>) {
        let values = self.kind.values(y_pred, y_true);
        let sum = values.iter().fold(0.0f32, |acc, &v| acc + v);
        self.total += sum;
        self.count += values.len() as f32;
    }

    /// [`Metric::update`] for an output that carries a Keras mask, one flag
    /// per row (`None`: unmasked). `MeanMetricWrapper.update_state` turns the
    /// mask into 0/1 sample weights (`apply_mask` with reduction `sum`), and
    /// `Mean.update_state` adds `sum(values * weights)` and `sum(weights)`.
    ///
    /// # Panics
    ///
    /// If the shapes do not fit (see [`MetricKind::values`]) or `mask` does
    /// not have one flag per row.
    pub fn update_masked(
        &mut self,
        y_pred: ArrayView2<f32>,
        y_true: ArrayView2<f32>,
        mask: Option<&[bool]>,
    ) {
        let Some(mask) = mask else {
            return self.update(y_pred, y_true);
        };
        let values = self.kind.values(y_pred, y_true);
        assert_eq!(mask.len(), values.len(), "one mask flag per row");
        let (mut sum, mut count) = (0.0f32, 0.0f32);
        for (&v, &m) in values.iter().zip(mask) {
            let w = if m { 1.0 } else { 0.0 };
            sum += v * w;
            count += w;
        }
        self.total += sum;
        self.count += count;
    }

    /// `total / count` (`divide_no_nan`: 0 before any sample), its square root for
    /// [`MetricKind::RootMeanSquaredError`].
    pub fn result(&self) -> f32 {
        let mean = if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        };
        match self.kind {
            MetricKind::RootMeanSquaredError => mean.sqrt(),
            _ => mean,
        }
    }

    /// Forget the accumulated batches (start of an epoch).
    pub fn reset(&mut self) {
        self.total = 0.0;
        self.count = 0.0;
    }
}

/// The entries of a `metrics`/`weighted_metrics` value: null or absent gives none;
/// a list (nested lists flattened, as `tree.flatten` does for one output); a dict
/// with a single output's entry. A bare string or a dict naming several outputs is
/// an error.
fn metric_entries<'a>(key: &str, v: Option<&'a Value>, out: &mut Vec<&'a Value>) -> Result<()> {
    fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            Value::Null => {}
            other => out.push(other),
        }
    }
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(v @ Value::Array(_)) => {
            flatten(v, out);
            Ok(())
        }
        Some(Value::Object(map)) if !map.contains_key("class_name") => {
            if map.len() > 1 {
                return Err(Error::invalid(format!(
                    "`{key}` per output ({}) is not supported: only single-output models",
                    map.keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            map.values().for_each(|v| flatten(v, out));
            Ok(())
        }
        Some(other) => Err(Error::invalid(format!(
            "`{key}` must be a list, found `{other}` (Keras rejects anything else)"
        ))),
    }
}

/// All metrics of a compile config, in log order: `metrics` then
/// `weighted_metrics`, named as keras/src/trainers/compile_utils.py
/// `CompileMetrics.result` names them (a repeated name gets `_1`, `_2`, ...; a
/// weighted metric whose name is taken is called `weighted_<name>`).
pub fn metrics_from_compile_config(
    cc: &Value,
    loss: &Loss,
    output_width: usize,
) -> Result<Vec<Metric>> {
    let mut plain = Vec::new();
    metric_entries("metrics", cc.get("metrics"), &mut plain)?;
    let mut weighted = Vec::new();
    metric_entries(
        "weighted_metrics",
        cc.get("weighted_metrics"),
        &mut weighted,
    )?;

    let mut counters: Vec<(String, usize)> = Vec::new();
    let mut claim = |name: &str| -> Option<usize> {
        match counters.iter_mut().find(|(n, _)| n == name) {
            Some((_, count)) => {
                let index = *count;
                *count += 1;
                Some(index)
            }
            None => {
                counters.push((name.to_string(), 1));
                None
            }
        }
    };
    let mut metrics = Vec::with_capacity(plain.len() + weighted.len());
    for (i, v) in plain.iter().enumerate() {
        let mut m =
            Metric::from_config(v, loss, output_width).map_err(|e| e.at(format!("metrics/{i}")))?;
        if let Some(index) = claim(&m.name) {
            m.name = format!("{}_{index}", m.name);
        }
        metrics.push(m);
    }
    for (i, v) in weighted.iter().enumerate() {
        let mut m = Metric::from_config(v, loss, output_width)
            .map_err(|e| e.at(format!("weighted_metrics/{i}")))?;
        m.weighted = true;
        if claim(&m.name).is_some() {
            let name = format!("weighted_{}", m.name);
            m.name = match claim(&name) {
                Some(index) => format!("{name}_{index}"),
                None => name,
            };
        }
        metrics.push(m);
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind;

    /// Relative tolerance of metric results against Keras (`f32` accumulation in the
    /// same order; the loss-based metrics differ from XLA by a few ulps).
    const KERAS_REL_TOL: f32 = 1e-6;

    fn arr(rows: &[&[f32]]) -> Array2<f32> {
        let cols = rows.first().map_or(0, |r| r.len());
        Array2::from_shape_fn((rows.len(), cols), |(i, j)| rows[i][j])
    }

    type Batch = (&'static [&'static [f32]], &'static [&'static [f32]], f32);

    /// Two `update_state` calls and the `result()` after each, from Keras 3.15.1
    /// (`KERAS_BACKEND=jax`), inputs as `float32` NumPy arrays.
    struct MetricGolden {
        kind: MetricKind,
        /// `(y_true, y_pred, result after this batch)`.
        batches: [Batch; 2],
    }

    /// `m = keras.metrics.BinaryAccuracy()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const BINARY_ACCURACY: MetricGolden = MetricGolden {
        kind: MetricKind::BinaryAccuracy { threshold: 0.5 },
        batches: [
            (
                &[&[1.0], &[0.0], &[1.0], &[0.7]],
                &[&[0.5], &[0.2], &[0.9], &[0.8]],
                0.5,
            ),
            (&[&[0.0], &[1.0]], &[&[0.6], &[0.4]], 0.33333334),
        ],
    };

    /// `m = keras.metrics.BinaryAccuracy(threshold=0.3)`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const BINARY_ACCURACY_WIDE: MetricGolden = MetricGolden {
        kind: MetricKind::BinaryAccuracy { threshold: 0.3 },
        batches: [
            (
                &[&[1.0, 0.0, 1.0], &[0.0, 0.0, 1.0]],
                &[&[0.35, 0.3, 0.1], &[0.2, 0.9, 0.31]],
                0.6666667,
            ),
            (
                &[&[1.0, 1.0, 1.0], &[0.0, 1.0, 0.0], &[1.0, 0.0, 0.0]],
                &[&[0.9, 0.8, 0.7], &[0.0, 0.5, 0.5], &[0.3, 0.2, 0.1]],
                0.7333334,
            ),
        ],
    };

    /// `m = keras.metrics.CategoricalAccuracy()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const CATEGORICAL_ACCURACY: MetricGolden = MetricGolden {
        kind: MetricKind::CategoricalAccuracy,
        batches: [
            (
                &[
                    &[0.0, 1.0, 0.0],
                    &[1.0, 0.0, 0.0],
                    &[0.2, 0.3, 0.5],
                    &[0.0, 0.0, 1.0],
                ],
                &[
                    &[0.1, 0.8, 0.1],
                    &[0.4, 0.4, 0.2],
                    &[0.5, 0.2, 0.3],
                    &[-0.0, 0.0, -1.0],
                ],
                0.5,
            ),
            (
                &[&[0.0, 1.0, 0.0], &[0.5, 0.5, 0.0]],
                &[&[0.3, 0.3, 0.4], &[0.2, 0.7, 0.1]],
                0.33333334,
            ),
        ],
    };

    /// `m = keras.metrics.SparseCategoricalAccuracy()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const SPARSE_CATEGORICAL_ACCURACY: MetricGolden = MetricGolden {
        kind: MetricKind::SparseCategoricalAccuracy,
        batches: [
            (
                &[&[1.0], &[0.0], &[2.0], &[1.0]],
                &[
                    &[0.1, 0.8, 0.1],
                    &[0.4, 0.4, 0.2],
                    &[0.5, 0.2, 0.3],
                    &[-0.0, 0.0, -1.0],
                ],
                0.75,
            ),
            (
                &[&[2.0], &[1.0]],
                &[&[0.3, 0.3, 0.4], &[0.2, 0.7, 0.1]],
                0.8333333,
            ),
        ],
    };

    /// `m = keras.metrics.Accuracy()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const ACCURACY: MetricGolden = MetricGolden {
        kind: MetricKind::Accuracy,
        batches: [
            (
                &[&[1.0, 2.0], &[3.0, 4.0]],
                &[&[1.0, 2.5], &[3.0, 4.0]],
                0.75,
            ),
            (&[&[0.0, 0.0]], &[&[-0.0, 1.0]], 0.6666667),
        ],
    };

    /// `m = keras.metrics.TopKCategoricalAccuracy(k=2)`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const TOP_K: MetricGolden = MetricGolden {
        kind: MetricKind::TopKCategoricalAccuracy { k: 2 },
        batches: [
            (
                &[
                    &[0.0, 1.0, 0.0, 0.0],
                    &[0.0, 0.0, 0.0, 1.0],
                    &[1.0, 0.0, 0.0, 0.0],
                ],
                &[
                    &[0.1, 0.2, 0.3, 0.4],
                    &[0.4, 0.3, 0.3, 0.3],
                    &[0.25, 0.25, 0.25, 0.25],
                ],
                0.6666667,
            ),
            (&[&[0.0, 0.0, 1.0, 0.0]], &[&[0.9, 0.05, 0.05, 0.0]], 0.75),
        ],
    };

    /// `m = keras.metrics.SparseTopKCategoricalAccuracy(k=2)`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const SPARSE_TOP_K: MetricGolden = MetricGolden {
        kind: MetricKind::SparseTopKCategoricalAccuracy { k: 2 },
        batches: [
            (
                &[&[1.0], &[3.0], &[0.0]],
                &[
                    &[0.1, 0.2, 0.3, 0.4],
                    &[0.4, 0.3, 0.3, 0.3],
                    &[0.25, 0.25, 0.25, 0.25],
                ],
                0.6666667,
            ),
            (&[&[2.0]], &[&[0.9, 0.05, 0.05, 0.0]], 0.75),
        ],
    };

    /// `m = keras.metrics.RootMeanSquaredError()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const RMSE: MetricGolden = MetricGolden {
        kind: MetricKind::RootMeanSquaredError,
        batches: [
            (
                &[&[0.0, 1.0, 2.5], &[-1.5, 0.25, 3.0]],
                &[&[0.5, 0.75, 2.0], &[-1.0, 1.25, -0.5]],
                1.5309311,
            ),
            (&[&[1.0, 2.0, 3.0]], &[&[1.5, 1.0, 0.0]], 1.6435903),
        ],
    };

    /// `m = keras.metrics.MeanSquaredError()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const MSE: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::MeanSquaredError),
        batches: [
            (
                &[&[0.0, 1.0, 2.5], &[-1.5, 0.25, 3.0]],
                &[&[0.5, 0.75, 2.0], &[-1.0, 1.25, -0.5]],
                2.34375,
            ),
            (&[&[1.0, 2.0, 3.0]], &[&[1.5, 1.0, 0.0]], 2.701389),
        ],
    };

    /// `m = keras.metrics.MeanAbsoluteError()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const MAE: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::MeanAbsoluteError),
        batches: [
            (
                &[&[0.0, 1.0, 2.5], &[-1.5, 0.25, 3.0]],
                &[&[0.5, 0.75, 2.0], &[-1.0, 1.25, -0.5]],
                1.0416667,
            ),
            (&[&[1.0, 2.0, 3.0]], &[&[1.5, 1.0, 0.0]], 1.1944445),
        ],
    };

    /// `m = keras.metrics.LogCoshError()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const LOG_COSH: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::LogCosh),
        batches: [
            (
                &[&[0.0, 1.0, 2.5], &[-1.5, 0.25, 3.0]],
                &[&[0.5, 0.75, 2.0], &[-1.0, 1.25, -0.5]],
                0.6054697,
            ),
            (&[&[1.0, 2.0, 3.0]], &[&[1.5, 1.0, 0.0]], 0.7217825),
        ],
    };

    /// `m = keras.metrics.BinaryCrossentropy(from_logits=True)`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const BCE_LOGITS: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::BinaryCrossentropy {
            from_logits: true,
            label_smoothing: 0.0,
        }),
        batches: [
            (
                &[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]],
                &[&[0.9, 0.0], &[2.0, -1.0], &[0.3, 0.7]],
                0.90533876,
            ),
            (&[&[0.0, 0.0]], &[&[-3.0, 1.0]], 0.8492352),
        ],
    };

    /// `m = keras.metrics.CategoricalCrossentropy(label_smoothing=0.2)`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const CCE_SMOOTH: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.2,
        }),
        batches: [
            (
                &[
                    &[0.0, 1.0, 0.0],
                    &[1.0, 0.0, 0.0],
                    &[0.2, 0.3, 0.5],
                    &[0.0, 0.0, 1.0],
                ],
                &[
                    &[0.1, 0.8, 0.1],
                    &[0.4, 0.4, 0.2],
                    &[0.5, 0.2, 0.3],
                    &[0.0, 0.0, 1.0],
                ],
                1.2061276,
            ),
            (
                &[&[0.0, 1.0, 0.0], &[0.5, 0.5, 0.0]],
                &[&[0.3, 0.3, 0.4], &[0.2, 0.7, 0.1]],
                1.1800549,
            ),
        ],
    };

    /// `m = keras.metrics.SparseCategoricalCrossentropy()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const SCCE: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::SparseCategoricalCrossentropy { from_logits: false }),
        batches: [
            (
                &[&[1.0], &[0.0], &[2.0], &[1.0]],
                &[
                    &[0.1, 0.8, 0.1],
                    &[0.4, 0.4, 0.2],
                    &[0.5, 0.2, 0.3],
                    &[0.0, 0.0, 1.0],
                ],
                4.6153755,
            ),
            (
                &[&[2.0], &[1.0]],
                &[&[0.3, 0.3, 0.4], &[0.2, 0.7, 0.1]],
                3.289078,
            ),
        ],
    };

    /// `m = keras.metrics.KLDivergence()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const KLD: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::KLDivergence),
        batches: [
            (
                &[
                    &[0.0, 1.0, 0.0],
                    &[1.0, 0.0, 0.0],
                    &[0.2, 0.3, 0.5],
                    &[0.0, 0.0, 1.0],
                ],
                &[
                    &[0.1, 0.8, 0.1],
                    &[0.4, 0.4, 0.2],
                    &[0.5, 0.2, 0.3],
                    &[0.0, 0.0, 1.0],
                ],
                0.33330572,
            ),
            (
                &[&[0.0, 1.0, 0.0], &[0.5, 0.5, 0.0]],
                &[&[0.3, 0.3, 0.4], &[0.2, 0.7, 0.1]],
                0.47118342,
            ),
        ],
    };

    /// `m = keras.metrics.Hinge()`; `m.update_state(y_true_1, y_pred_1)`; `m.result()`;
    /// `m.update_state(y_true_2, y_pred_2)`; `m.result()`.
    const HINGE: MetricGolden = MetricGolden {
        kind: MetricKind::Loss(Loss::Hinge),
        batches: [
            (
                &[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]],
                &[&[0.9, 0.0], &[2.0, -1.0], &[0.3, 0.7]],
                1.1833333,
            ),
            (&[&[0.0, 0.0]], &[&[-3.0, 1.0]], 1.1375),
        ],
    };

    const GOLDENS: &[(&str, MetricGolden)] = &[
        ("BINARY_ACCURACY", BINARY_ACCURACY),
        ("BINARY_ACCURACY_WIDE", BINARY_ACCURACY_WIDE),
        ("CATEGORICAL_ACCURACY", CATEGORICAL_ACCURACY),
        ("SPARSE_CATEGORICAL_ACCURACY", SPARSE_CATEGORICAL_ACCURACY),
        ("ACCURACY", ACCURACY),
        ("TOP_K", TOP_K),
        ("SPARSE_TOP_K", SPARSE_TOP_K),
        ("RMSE", RMSE),
        ("MSE", MSE),
        ("MAE", MAE),
        ("LOG_COSH", LOG_COSH),
        ("BCE_LOGITS", BCE_LOGITS),
        ("CCE_SMOOTH", CCE_SMOOTH),
        ("SCCE", SCCE),
        ("KLD", KLD),
        ("HINGE", HINGE),
    ];

    #[test]
    fn results_match_keras_over_two_batches() {
        for (label, golden) in GOLDENS {
            let mut metric = Metric::new(*label, golden.kind);
            assert_eq!(metric.result(), 0.0, "{label}: empty");
            for (i, (y_true, y_pred, expected)) in golden.batches.iter().enumerate() {
                metric.update(arr(y_pred).view(), arr(y_true).view());
                let r = metric.result();
                assert!(
                    (r - expected).abs() <= KERAS_REL_TOL * expected.abs(),
                    "{label}: result after batch {i} = {r}, Keras {expected}"
                );
            }
            metric.reset();
            assert_eq!(metric.result(), 0.0, "{label}: reset");
        }
    }

    fn bce() -> Loss {
        Loss::BinaryCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        }
    }

    fn cce() -> Loss {
        Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        }
    }

    fn scce() -> Loss {
        Loss::SparseCategoricalCrossentropy { from_logits: true }
    }

    fn resolve(v: Value, loss: Loss, width: usize) -> (String, MetricKind) {
        let m = Metric::from_config(&v, &loss, width).unwrap();
        (m.name.clone(), *m.kind())
    }

    /// `model.compile(loss=..., metrics=[...])`, `model.fit(...)`: the history keys
    /// checked with Keras 3.15.1 were `accuracy`, `acc` (binary, categorical and
    /// sparse models), `mse`, `mae`, `MeanSquaredError`, `mean_squared_error`,
    /// `Accuracy`, `ACC`, `binary_accuracy`, `auc`, `rmse` for
    /// `RootMeanSquaredError(name="rmse")`, `logcosh` for `LogCoshError()`,
    /// `mean_metric_wrapper` for `MeanMetricWrapper(keras.losses.huber, delta=2.0)`.
    #[test]
    fn from_config_resolves_like_compile_utils() {
        let binary = MetricKind::BinaryAccuracy { threshold: 0.5 };
        assert_eq!(
            resolve(json!("accuracy"), bce(), 1),
            ("accuracy".into(), binary)
        );
        assert_eq!(
            resolve(json!("acc"), Loss::MeanSquaredError, 1),
            ("acc".into(), binary)
        );
        assert_eq!(
            resolve(json!("accuracy"), cce(), 3),
            ("accuracy".into(), MetricKind::CategoricalAccuracy)
        );
        assert_eq!(
            resolve(json!("Accuracy"), scce(), 3),
            ("Accuracy".into(), MetricKind::SparseCategoricalAccuracy)
        );
        assert_eq!(
            resolve(json!("ACC"), Loss::MeanSquaredError, 3),
            ("ACC".into(), MetricKind::CategoricalAccuracy)
        );
        // A sparse loss on a width-1 output: Keras checks "binary" first.
        assert_eq!(resolve(json!("acc"), scce(), 1), ("acc".into(), binary));
        assert_eq!(
            resolve(json!("mse"), Loss::MeanSquaredError, 2),
            ("mse".into(), MetricKind::Loss(Loss::MeanSquaredError))
        );
        assert_eq!(
            resolve(json!("MAE"), Loss::MeanSquaredError, 2),
            ("MAE".into(), MetricKind::Loss(Loss::MeanAbsoluteError))
        );
        assert_eq!(
            resolve(json!("MeanSquaredError"), Loss::MeanSquaredError, 2),
            (
                "MeanSquaredError".into(),
                MetricKind::Loss(Loss::MeanSquaredError)
            )
        );
        assert_eq!(
            resolve(json!("log_cosh_error"), Loss::MeanSquaredError, 2),
            ("log_cosh_error".into(), MetricKind::Loss(Loss::LogCosh))
        );
        assert_eq!(
            resolve(json!("sparse_categorical_crossentropy"), scce(), 3),
            (
                "sparse_categorical_crossentropy".into(),
                MetricKind::Loss(Loss::SparseCategoricalCrossentropy { from_logits: false })
            )
        );
        // Objects as Keras 3.15.1 writes them.
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "BinaryAccuracy",
                    "config": {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.3},
                    "registered_name": null}),
                bce(),
                1
            ),
            (
                "binary_accuracy".into(),
                MetricKind::BinaryAccuracy { threshold: 0.3 }
            )
        );
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "MeanSquaredError",
                    "config": {"name": "mean_squared_error", "dtype": "float32"},
                    "registered_name": null}),
                Loss::Huber { delta: 1.0 },
                1
            ),
            (
                "mean_squared_error".into(),
                MetricKind::Loss(Loss::MeanSquaredError)
            )
        );
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "Accuracy",
                    "config": {"name": "accuracy", "dtype": "float32"}, "registered_name": null}),
                Loss::MeanSquaredError,
                2
            ),
            ("accuracy".into(), MetricKind::Accuracy)
        );
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "LogCoshError",
                    "config": {"name": "logcosh", "dtype": "float32"}, "registered_name": null}),
                Loss::MeanSquaredError,
                2
            ),
            ("logcosh".into(), MetricKind::Loss(Loss::LogCosh))
        );
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "RootMeanSquaredError",
                    "config": {"name": "rmse", "dtype": "float32"}, "registered_name": null}),
                Loss::MeanSquaredError,
                2
            ),
            ("rmse".into(), MetricKind::RootMeanSquaredError)
        );
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "CategoricalCrossentropy",
                    "config": {"name": "categorical_crossentropy", "dtype": "float32",
                        "from_logits": false, "label_smoothing": 0.2, "axis": -1},
                    "registered_name": null}),
                cce(),
                3
            ),
            (
                "categorical_crossentropy".into(),
                MetricKind::Loss(Loss::CategoricalCrossentropy {
                    from_logits: false,
                    label_smoothing: 0.2
                })
            )
        );
        assert_eq!(
            resolve(
                json!({"module": "keras.metrics", "class_name": "MeanMetricWrapper",
                    "config": {"name": "mean_metric_wrapper", "dtype": "float32",
                        "fn": {"module": "builtins", "class_name": "function",
                            "config": "huber", "registered_name": "function"},
                        "delta": 2.0},
                    "registered_name": null}),
                Loss::MeanSquaredError,
                1
            ),
            (
                "mean_metric_wrapper".into(),
                MetricKind::Loss(Loss::Huber { delta: 2.0 })
            )
        );
        // Functions: `metrics=[keras.metrics.mean_squared_error, keras.metrics.binary_accuracy]`.
        assert_eq!(
            resolve(
                json!({"module": "builtins", "class_name": "function",
                    "config": "mean_squared_error", "registered_name": "function"}),
                bce(),
                1
            ),
            (
                "mean_squared_error".into(),
                MetricKind::Loss(Loss::MeanSquaredError)
            )
        );
        assert_eq!(
            resolve(
                json!({"module": "builtins", "class_name": "function",
                    "config": "binary_accuracy", "registered_name": "function"}),
                bce(),
                1
            ),
            ("binary_accuracy".into(), binary)
        );
        assert_eq!(
            resolve(
                json!({"module": "builtins", "class_name": "function",
                    "config": "sparse_categorical_accuracy", "registered_name": "function"}),
                scce(),
                3
            ),
            (
                "sparse_categorical_accuracy".into(),
                MetricKind::SparseCategoricalAccuracy
            )
        );
    }

    #[test]
    fn from_config_rejects_unknown_and_incompatible_metrics() {
        // `keras.metrics.AUC()` as Keras 3.15.1 writes it.
        let auc = json!({"module": "keras.metrics", "class_name": "AUC",
            "config": {"name": "auc", "dtype": "float32", "num_thresholds": 200,
                "curve": "ROC", "summation_method": "interpolation", "multi_label": false,
                "num_labels": null, "label_weights": null, "from_logits": false},
            "registered_name": null});
        let err = Metric::from_config(&auc, &bce(), 1).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err.kind(), ErrorKind::Unsupported { what: "metric", name, .. } if name == "AUC"),
            "{msg}"
        );
        for name in Metric::NAMES {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }
        let fails = |v: Value, loss: Loss, width: usize, needle: &str| {
            let msg = Metric::from_config(&v, &loss, width)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        };
        fails(json!("auc"), bce(), 1, "unsupported metric `auc`");
        fails(json!("huber"), bce(), 1, "unsupported metric `huber`");
        fails(json!(3), bce(), 1, "must be a string");
        fails(
            json!("mse"),
            scce(),
            3,
            "metric `mse` to take targets shaped like the output",
        );
        fails(
            json!("sparse_categorical_accuracy"),
            cce(),
            3,
            "metric `sparse_categorical_accuracy` to take integer labels",
        );
        fails(
            json!({"module": "keras.metrics", "class_name": "BinaryAccuracy",
                "config": {"name": "binary_accuracy", "threshold": 0.5, "axis": 0}}),
            bce(),
            1,
            "unknown option `axis`",
        );
        fails(
            json!({"module": "keras.metrics", "class_name": "MeanSquaredError",
                "config": {"name": "mse", "dtype": "float64"}}),
            Loss::MeanSquaredError,
            1,
            "unsupported loss or metric dtype",
        );
        fails(
            json!({"module": "keras.losses", "class_name": "MeanSquaredError",
                "config": {"name": "mean_squared_error", "reduction": "sum_over_batch_size"},
                "registered_name": null}),
            Loss::MeanSquaredError,
            1,
            "a loss object (`MeanSquaredError`) used as a metric",
        );
        fails(
            json!({"module": "my_pkg", "class_name": "function", "config": "f1"}),
            bce(),
            1,
            "unsupported metric `my_pkg.f1`",
        );
    }

    #[test]
    fn accuracy_broadcasts_width_one_targets_like_keras() {
        // `keras.metrics.BinaryAccuracy()(y_true[:, :1], y_pred)` broadcasts the labels.
        let mut m = Metric::new(
            "binary_accuracy",
            MetricKind::BinaryAccuracy { threshold: 0.5 },
        );
        m.update(
            array![[0.9, 0.2], [0.1, 0.7]].view(),
            array![[1.0], [0.0]].view(),
        );
        assert_eq!(m.result(), 0.5);
    }

    /// `compile(loss="mse", metrics=["mse", "mse", "mae"], weighted_metrics=["mse",
    /// "mae", "mse"])` logs `mse`, `mse_1`, `mae`, `weighted_mse`, `weighted_mae`,
    /// `weighted_mse_1` in Keras 3.15.1.
    #[test]
    fn compile_config_names_are_made_unique_like_keras() {
        let cc = json!({"loss": "mse", "metrics": ["mse", "mse", "mae"],
            "weighted_metrics": ["mse", "mae", "mse"], "loss_weights": null});
        let metrics = metrics_from_compile_config(&cc, &Loss::MeanSquaredError, 1).unwrap();
        let names: Vec<_> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mse",
                "mse_1",
                "mae",
                "weighted_mse",
                "weighted_mae",
                "weighted_mse_1"
            ]
        );
        assert!(!metrics[2].is_weighted() && metrics[3].is_weighted());

        let none = json!({"loss": "mse", "metrics": null});
        assert!(
            metrics_from_compile_config(&none, &Loss::MeanSquaredError, 1)
                .unwrap()
                .is_empty()
        );
        let nested = json!({"metrics": [["acc"], "mae"]});
        let names: Vec<_> = metrics_from_compile_config(&nested, &bce(), 1)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["acc", "mae"]);
        let one_output = json!({"metrics": {"dense": ["accuracy"]}});
        assert_eq!(
            metrics_from_compile_config(&one_output, &bce(), 1)
                .unwrap()
                .len(),
            1
        );

        let multi = json!({"metrics": {"out_a": ["accuracy"], "out_b": ["mse"]}});
        let msg = metrics_from_compile_config(&multi, &bce(), 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("only single-output models"), "{msg}");
        let bare = json!({"metrics": "accuracy"});
        assert!(metrics_from_compile_config(&bare, &bce(), 1).is_err());
        let bad = json!({"metrics": ["accuracy", "auc"]});
        let msg = metrics_from_compile_config(&bad, &bce(), 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("at `metrics/1`"), "{msg}");
    }
}
