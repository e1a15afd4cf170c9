//! Normalization layers: `BatchNormalization`, `LayerNormalization` and
//! `UnitNormalization`, in float32 with the order of operations of Keras's
//! JAX backend.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX 0.10.2; paths relative to `site-packages/`:
//!
//! * `keras/src/layers/normalization/batch_normalization.py` (`build`,
//!   `call`, `_moments`), `layer_normalization.py`, `unit_normalization.py`;
//! * `keras/src/backend/jax/nn.py` `batch_normalization` and `moments`
//!   (`jnp.mean`, `jnp.var`), `keras/src/ops/nn.py` `_layer_normalization`
//!   and `_normalize`;
//! * `jax/_src/numpy/reductions.py` (`_mean`: `sum / count`; `_var`:
//!   `sum(square(x - mean(x))) / count`) and `jax/_src/lax/lax.py` (the JVPs
//!   of `rsqrt`, `min`/`max`, `square`, `div`).
//!
//! # Formulas
//!
//! * BatchNormalization (`backend/jax/nn.py` `batch_normalization`):
//!   `inv = rsqrt(var + ε) [* gamma]`, `res = -mean * inv [+ beta]`,
//!   `y = x * inv + res`. In training (and only if the layer is trainable)
//!   `mean, var = jnp.mean(x, axes), jnp.var(x, axes)` over every axis but
//!   `axis` (the biased variance), and the moving statistics become
//!   `moving * momentum + batch_stat * (1.0 - momentum)` (returned as
//!   [`Forward::updates`]; `1.0 - momentum` is computed on the Python float).
//!   A layer with `trainable: false` runs in inference mode even when
//!   training (Keras 3: `if training and self.trainable`) and updates nothing.
//! * LayerNormalization (`ops/nn.py` `_layer_normalization`): the same
//!   `x * inv + res` form with the moments of each sample over `axis`;
//!   with `rms_scaling=True` (deprecated in Keras, kept as Keras computes it)
//!   `y = x * rsqrt(var + ε) * gamma`: the input is divided by its standard
//!   deviation, not its root mean square, and not centred; `gamma` exists
//!   when `scale` or `rms_scaling`, `beta` only when `center` and not
//!   `rms_scaling`. Variables have the shape `input_shape[a]` for `a` in
//!   `sorted(axis)` as written (so `[-1, 1]` gives `(d₂, d₁)`); the call
//!   reshapes them to the broadcast shape in axis order, which is what the
//!   flat (C-order) data here is indexed by.
//! * UnitNormalization (`ops/nn.py` `_normalize`, order 2, ε = 1e-12):
//!   `y = x * minimum(rsqrt(sum(x²)), 1 / ε)`.
//!
//! # Numerics
//!
//! `model.predict` and `model.fit` run XLA-compiled code, which contracts a
//! multiply feeding an add into one FMA: `res = fma(-mean, inv, beta)`,
//! `y = fma(x, inv, res)` and `moving = fma(moving, momentum, stat * (1 -
//! momentum))` (checked bit for bit against a compiled Keras
//! BatchNormalization). `rsqrt` is XLA's (the `rsqrtss` estimate plus one
//! Newton step, [`xla_rsqrt`]). Sums are accumulated in f64 and rounded
//! once; XLA's reduction order is not reproduced, so means and variances can
//! differ from Keras by an ulp.
//!
//! # Gradients
//!
//! What `jax.grad` of the Keras computation gives: in training, through the
//! batch mean and variance (including the term of `jnp.var`'s inner mean,
//! which is zero in exact arithmetic); at inference, `dx = dy * inv`.
//! UnitNormalization follows `jnp.minimum`'s JVP (a tie with `1 / ε` halves
//! the gradient of the norm path) and `rsqrt`'s (`-0.5 * r / s`), so a
//! sample whose normalized slice is all zeros gets a NaN gradient, as in
//! Keras (`0 * -inf`).

use ndarray::{Array2, ArrayD, IxDyn};
use serde_json::Value;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, Var, resolve_axis, single_shape};
use crate::engine::schedule::xla_rsqrt;
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Shared helpers (also used by `activations`).
// ---------------------------------------------------------------------------

/// A tensor seen as a matrix of rows: the axes in `axes` (resolved indices
/// of the batched tensor, ascending) are moved last and flattened into the
/// row (C order), the remaining axes, in order, number the rows.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rows {
    /// Axis permutation (other axes, then `axes`).
    perm: Vec<usize>,
    /// Shape after the permutation.
    moved: Vec<usize>,
    /// Number of rows.
    pub(super) rows: usize,
    /// Row length.
    pub(super) len: usize,
}

impl Rows {
    /// The row view of a tensor of shape `shape` reduced over `axes`.
    pub(super) fn new(shape: &[usize], axes: &[usize]) -> Result<Rows> {
        let perm: Vec<usize> = (0..shape.len())
            .filter(|a| !axes.contains(a))
            .chain(axes.iter().copied())
            .collect();
        let moved: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let len = checked_product(axes.iter().map(|&a| shape[a]))?;
        let rows = checked_product(
            (0..shape.len())
                .filter(|a| !axes.contains(a))
                .map(|a| shape[a]),
        )?;
        Ok(Rows {
            perm,
            moved,
            rows,
            len,
        })
    }

    fn identity(&self) -> bool {
        self.perm.iter().enumerate().all(|(i, &p)| i == p)
    }

    /// The rows of `x` (a copy).
    pub(super) fn gather(&self, x: &ArrayD<f32>) -> Result<Array2<f32>> {
        if x.shape() != self.shape().as_slice() {
            return Err(Error::mismatch(
                format!("a tensor of shape {:?}", self.shape()),
                format!("shape {:?}", x.shape()),
            ));
        }
        let moved = x.view().permuted_axes(IxDyn(&self.perm));
        let owned = moved.as_standard_layout().into_owned();
        owned
            .into_shape_with_order((self.rows, self.len))
            .map_err(|e| Error::invalid(e.to_string()))
    }

    /// The tensor (standard layout) whose rows are `rows`.
    pub(super) fn scatter(&self, rows: Array2<f32>) -> Result<ArrayD<f32>> {
        let moved = rows
            .into_shape_with_order(IxDyn(&self.moved))
            .map_err(|e| Error::invalid(e.to_string()))?;
        if self.identity() {
            return Ok(moved);
        }
        let mut inverse = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inverse[p] = i;
        }
        let back = moved.permuted_axes(IxDyn(&inverse));
        Ok(if back.is_standard_layout() {
            back
        } else {
            back.as_standard_layout().into_owned()
        })
    }

    /// The shape of the tensor these rows come from.
    fn shape(&self) -> Vec<usize> {
        let mut shape = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            shape[p] = self.moved[i];
        }
        shape
    }
}

/// The product of dimensions, with overflow as an error.
pub(super) fn checked_product(dims: impl IntoIterator<Item = usize>) -> Result<usize> {
    dims.into_iter().try_fold(1usize, |acc, d| {
        acc.checked_mul(d)
            .ok_or_else(|| Error::invalid("tensor size overflows usize"))
    })
}

/// Sum of f32 values accumulated in f64, rounded once.
#[inline]
pub(super) fn sum_f32(values: impl Iterator<Item = f32>) -> f32 {
    values.map(f64::from).sum::<f64>() as f32
}

/// An `axis` option: an integer or a list of integers, as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AxisOption {
    /// `axis: -1`.
    One(i64),
    /// `axis: [1, 2]`.
    List(Vec<i64>),
}

impl AxisOption {
    /// Parse `axis` (absent: `default`).
    pub(super) fn parse(cx: &BuildCx<'_>, key: &str, default: i64) -> Result<AxisOption> {
        match cx.get(key) {
            Value::Null => Ok(AxisOption::One(default)),
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_i64().ok_or_else(|| {
                        Error::mismatch(format!("integers in `{key}`"), v).at(key.to_string())
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(AxisOption::List),
            v => v.as_i64().map(AxisOption::One).ok_or_else(|| {
                Error::mismatch(format!("an integer or a list of integers for `{key}`"), v)
            }),
        }
    }

    /// The axes as written.
    pub(super) fn raw(&self) -> Vec<i64> {
        match self {
            AxisOption::One(a) => vec![*a],
            AxisOption::List(l) => l.clone(),
        }
    }

    /// Resolved against a batched tensor of `rank` axes, ascending; repeated
    /// axes are an error.
    pub(super) fn resolve(&self, rank: usize, key: &str) -> Result<Vec<usize>> {
        let mut axes = self
            .raw()
            .iter()
            .map(|&a| resolve_axis(a, rank, key))
            .collect::<Result<Vec<_>>>()?;
        axes.sort_unstable();
        if axes.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::mismatch(
                format!("distinct axes in `{key}`"),
                self.to_string(),
            ));
        }
        Ok(axes)
    }
}

impl std::fmt::Display for AxisOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AxisOption::One(a) => write!(f, "{a}"),
            AxisOption::List(l) => write!(f, "{l:?}"),
        }
    }
}

/// One input, as the single-input layers here take.
pub(super) fn single<'a>(x: &[&'a ArrayD<f32>], class: &str) -> Result<&'a ArrayD<f32>> {
    match x {
        [one] => Ok(one),
        more => Err(Error::mismatch(
            format!("one input for `{class}`"),
            format!("{} inputs", more.len()),
        )),
    }
}

/// The saved values of a forward call, of the type the layer stored.
fn saved_as<'a, T: 'static>(saved: &'a Saved, class: &str) -> Result<&'a T> {
    saved
        .as_ref()
        .and_then(|s| s.downcast_ref::<T>())
        .ok_or_else(|| {
            Error::invalid(format!(
                "`{class}` backward called without the values of its forward pass"
            ))
        })
}

/// A positive `epsilon` option.
fn epsilon(cx: &BuildCx<'_>, default: f64) -> Result<f64> {
    let eps = cx.f64_or("epsilon", default)?;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(Error::mismatch("a positive finite `epsilon`", eps));
    }
    Ok(eps)
}

/// A 1-D array.
fn vector(v: Vec<f32>) -> ArrayD<f32> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-D shape matches its data")
}

// ---------------------------------------------------------------------------
// BatchNormalization
// ---------------------------------------------------------------------------

/// `keras.layers.BatchNormalization` (without `renorm`, `synchronized` or a
/// mask).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// `axis` as written.
    axis_option: i64,
    /// The normalized axis of the batched tensor (≥ 1).
    axis: usize,
    /// Per-sample input shape.
    input: Vec<usize>,
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
    /// The layer's `trainable` flag: if false, training runs in inference
    /// mode (Keras 3).
    trainable: bool,
    /// `gamma` (if `scale`), `beta` (if `center`), `moving_mean`,
    /// `moving_variance`.
    vars: Vec<Var>,
}

/// What BatchNormalization keeps for its backward pass.
#[derive(Debug)]
struct BnSaved {
    /// Batch statistics were used (gradients flow through them).
    batch: bool,
    /// The mean used, per channel.
    mean: Vec<f32>,
    /// `var + ε` per channel.
    var_eps: Vec<f32>,
    /// `rsqrt(var + ε)` per channel.
    r: Vec<f32>,
}

/// Builds `BatchNormalization`.
pub fn build_batch_norm(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?.to_vec();
    let rank = input.len() + 1;
    // Keras 3.15 stores `int(axis)`; a one-element list (older writers) is
    // the same axis.
    let axis_option = match AxisOption::parse(cx, "axis", -1)? {
        AxisOption::One(a) => a,
        AxisOption::List(l) if l.len() == 1 => l[0],
        AxisOption::List(l) => {
            return Err(Error::unsupported(
                "BatchNormalization axis",
                format!("{l:?}"),
                &["one integer axis"],
            ));
        }
    };
    let axis = resolve_axis(axis_option, rank, "axis")?;
    if axis == 0 {
        return Err(Error::unsupported(
            "BatchNormalization axis",
            "the batch axis",
            &["feature axes"],
        ));
    }
    if cx.bool_or("renorm", false)? {
        return Err(Error::unsupported(
            "BatchNormalization option",
            "renorm=True",
            &["renorm=False"],
        ));
    }
    if cx.bool_or("synchronized", false)? {
        // Keras itself rejects it outside TensorFlow.
        return Err(Error::unsupported(
            "BatchNormalization option",
            "synchronized=True",
            &["synchronized=False"],
        ));
    }
    let momentum = cx.f64_or("momentum", 0.99)?;
    if !momentum.is_finite() {
        return Err(Error::mismatch("a finite `momentum`", momentum));
    }
    let epsilon = epsilon(cx, 1e-3)?;
    let center = cx.bool_or("center", true)?;
    let scale = cx.bool_or("scale", true)?;
    let trainable = cx.bool_or("trainable", true)?;
    let channels = input[axis - 1];
    let mut expected = Vec::new();
    if scale {
        expected.push(("gamma", vec![channels]));
    }
    if center {
        expected.push(("beta", vec![channels]));
    }
    expected.push(("moving_mean", vec![channels]));
    expected.push(("moving_variance", vec![channels]));
    let values = cx.take_vars(&expected)?;
    let mut vars = Vec::with_capacity(values.len());
    let mut values = values.into_iter();
    if scale {
        let mut v = Var::new("gamma", values.next().expect("gamma taken"));
        v.regularizer = cx.regularizer("gamma_regularizer")?;
        v.constraint = cx.constraint("gamma_constraint")?;
        vars.push(v);
    }
    if center {
        let mut v = Var::new("beta", values.next().expect("beta taken"));
        v.regularizer = cx.regularizer("beta_regularizer")?;
        v.constraint = cx.constraint("beta_constraint")?;
        vars.push(v);
    }
    vars.push(Var::state(
        "moving_mean",
        values.next().expect("mean taken"),
    ));
    vars.push(Var::state(
        "moving_variance",
        values.next().expect("variance taken"),
    ));
    Ok(Box::new(BatchNorm {
        axis_option,
        axis,
        input,
        momentum,
        epsilon,
        center,
        scale,
        trainable,
        vars,
    }))
}

impl BatchNorm {
    fn channels(&self) -> usize {
        self.input[self.axis - 1]
    }

    /// `gamma`, `beta` (when present), moving mean and variance, each of
    /// `channels` values.
    fn params(&self) -> Result<BnParams> {
        let c = self.channels();
        let take = |i: usize| -> Result<Vec<f32>> {
            let v = &self.vars[i];
            if v.value.len() != c {
                return Err(Error::mismatch(
                    format!("`{}` of {c} values", v.role),
                    v.value.len(),
                ));
            }
            Ok(v.value.iter().copied().collect())
        };
        let mi = self.moving_index();
        Ok(BnParams {
            gamma: self.scale.then(|| take(0)).transpose()?,
            beta: self
                .center
                .then(|| take(usize::from(self.scale)))
                .transpose()?,
            moving_mean: take(mi)?,
            moving_var: take(mi + 1)?,
        })
    }

    fn moving_index(&self) -> usize {
        usize::from(self.scale) + usize::from(self.center)
    }

    fn check_input(&self, x: &ArrayD<f32>) -> Result<()> {
        if x.ndim() != self.input.len() + 1 || x.shape()[self.axis] != self.channels() {
            return Err(Error::mismatch(
                format!(
                    "an input of rank {} with {} channels on axis {}",
                    self.input.len() + 1,
                    self.channels(),
                    self.axis
                ),
                format!("shape {:?}", x.shape()),
            ));
        }
        Ok(())
    }
}

/// BatchNormalization's variables, read out.
struct BnParams {
    gamma: Option<Vec<f32>>,
    beta: Option<Vec<f32>>,
    moving_mean: Vec<f32>,
    moving_var: Vec<f32>,
}

/// Per-channel `inv = rsqrt(var + ε) [* gamma]`.
fn scaled(r: &[f32], gamma: Option<&[f32]>) -> Vec<f32> {
    match gamma {
        Some(g) => r.iter().zip(g).map(|(&r, &g)| r * g).collect(),
        None => r.to_vec(),
    }
}

impl LayerOp for BatchNorm {
    fn supports_masking(&self) -> bool {
        true
    }

    /// Freeze or unfreeze the layer (Keras's `layer.trainable = ...`).
    fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = single_shape(inputs, "BatchNormalization")?;
        if s.len() != self.input.len() || s[self.axis - 1] != self.channels() {
            return Err(Error::mismatch(
                format!(
                    "an input of rank {} with {} channels on axis {}",
                    self.input.len() + 1,
                    self.channels(),
                    self.axis
                ),
                super::keras_shape(s),
            ));
        }
        Ok(s.to_vec())
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "BatchNormalization")?;
        self.check_input(x)?;
        let p = self.params()?;
        let rows = Rows::new(x.shape(), &[self.axis])?;
        let mut m = rows.gather(x)?;
        let c = rows.len;
        let n = rows.rows;
        let batch = cx.training() && self.trainable;
        let (mean, var) = if batch {
            // jnp.mean: sum / count; jnp.var: sum(square(x - mean)) / count.
            let count = n as f32;
            let mut sums = vec![0f64; c];
            for row in m.rows() {
                for (s, &v) in sums.iter_mut().zip(row) {
                    *s += f64::from(v);
                }
            }
            let mean: Vec<f32> = sums.iter().map(|&s| s as f32 / count).collect();
            let mut sq = vec![0f64; c];
            for row in m.rows() {
                for ((s, &v), &mu) in sq.iter_mut().zip(row).zip(&mean) {
                    let d = v - mu;
                    *s += f64::from(d * d);
                }
            }
            let var: Vec<f32> = sq.iter().map(|&s| s as f32 / count).collect();
            (mean, var)
        } else {
            (p.moving_mean.clone(), p.moving_var.clone())
        };
        let eps = self.epsilon as f32;
        let var_eps: Vec<f32> = var.iter().map(|&v| v + eps).collect();
        let r: Vec<f32> = var_eps.iter().map(|&v| xla_rsqrt(v)).collect();
        let inv = scaled(&r, p.gamma.as_deref());
        let res: Vec<f32> = match &p.beta {
            Some(b) => (0..c).map(|k| (-mean[k]).mul_add(inv[k], b[k])).collect(),
            None => (0..c).map(|k| -mean[k] * inv[k]).collect(),
        };
        for mut row in m.rows_mut() {
            for ((v, &i), &r0) in row.iter_mut().zip(&inv).zip(&res) {
                *v = v.mul_add(i, r0);
            }
        }
        let y = rows.scatter(m)?;
        let mut updates = Vec::new();
        if batch && n > 0 {
            // moving * momentum + stat * (1.0 - momentum), contracted by XLA
            // to fma(moving, momentum, stat * (1 - momentum)).
            let mom = self.momentum as f32;
            let rest = (1.0 - self.momentum) as f32;
            let update = |moving: &[f32], stat: &[f32]| {
                vector(
                    moving
                        .iter()
                        .zip(stat)
                        .map(|(&mv, &s)| mv.mul_add(mom, s * rest))
                        .collect(),
                )
            };
            let mi = self.moving_index();
            updates.push((mi, update(&p.moving_mean, &mean)));
            updates.push((mi + 1, update(&p.moving_var, &var)));
        }
        Ok(Forward {
            extra: Vec::new(),
            y,
            saved: Some(Box::new(BnSaved {
                batch,
                mean,
                var_eps,
                r,
            })),
            updates,
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "BatchNormalization")?;
        self.check_input(x)?;
        let s: &BnSaved = saved_as(saved, "BatchNormalization")?;
        let p = self.params()?;
        let rows = Rows::new(x.shape(), &[self.axis])?;
        let xm = rows.gather(x)?;
        let mut g = rows.gather(&dy)?;
        let c = rows.len;
        let n = rows.rows;
        if s.r.len() != c {
            return Err(Error::mismatch(
                format!("saved statistics for {c} channels"),
                s.r.len(),
            ));
        }
        let inv = scaled(&s.r, p.gamma.as_deref());
        // y = x * inv + res, res = (-mean) * inv + beta.
        let mut sum_dy = vec![0f64; c];
        let mut sum_dyx = vec![0f64; c];
        for (xr, gr) in xm.rows().into_iter().zip(g.rows()) {
            for k in 0..c {
                sum_dy[k] += f64::from(gr[k]);
                sum_dyx[k] += f64::from(gr[k] * xr[k]);
            }
        }
        let ct_res: Vec<f32> = sum_dy.iter().map(|&v| v as f32).collect();
        // ct(inv) = Σ dy·x + ct(res)·(-mean).
        let ct_inv: Vec<f32> = (0..c)
            .map(|k| sum_dyx[k] as f32 + ct_res[k] * -s.mean[k])
            .collect();
        let mut grads: Vec<Option<ArrayD<f32>>> = Vec::with_capacity(self.vars.len());
        if self.scale {
            grads.push(Some(vector((0..c).map(|k| ct_inv[k] * s.r[k]).collect())));
        }
        if self.center {
            grads.push(Some(vector(ct_res.clone())));
        }
        grads.push(None);
        grads.push(None);
        if s.batch && n > 0 {
            let count = n as f32;
            // ct(mean) from res; ct(var) through r = rsqrt(var + ε).
            let ct_mean: Vec<f32> = (0..c).map(|k| -(ct_res[k] * inv[k])).collect();
            let ct_r: Vec<f32> = match &p.gamma {
                Some(gm) => (0..c).map(|k| ct_inv[k] * gm[k]).collect(),
                None => ct_inv.clone(),
            };
            let ct_var: Vec<f32> = (0..c)
                .map(|k| ct_r[k] * (-0.5 * (s.r[k] / s.var_eps[k])))
                .collect();
            // jnp.var: ct(centered) = ct_var / n * 2 * (x - mean'); its inner
            // mean' gets -Σ ct(centered).
            let per: Vec<f32> = ct_var.iter().map(|&v| v / count).collect();
            let mut centered_sum = vec![0f64; c];
            for xr in xm.rows() {
                for k in 0..c {
                    centered_sum[k] += f64::from(per[k] * (2.0 * (xr[k] - s.mean[k])));
                }
            }
            let shift: Vec<f32> = (0..c)
                .map(|k| (ct_mean[k] - centered_sum[k] as f32) / count)
                .collect();
            for (xr, mut gr) in xm.rows().into_iter().zip(g.rows_mut()) {
                for k in 0..c {
                    let centered = per[k] * (2.0 * (xr[k] - s.mean[k]));
                    gr[k] = gr[k] * inv[k] + centered + shift[k];
                }
            }
        } else {
            for mut gr in g.rows_mut() {
                for (v, &i) in gr.iter_mut().zip(&inv) {
                    *v *= i;
                }
            }
        }
        Ok(Backward {
            inputs: vec![rows.scatter(g)?],
            vars: grads,
        })
    }

    fn detail(&self) -> Option<String> {
        Some(format!("axis={}", self.axis_option))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// LayerNormalization
// ---------------------------------------------------------------------------

/// `keras.layers.LayerNormalization`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `axis` as written.
    axis_option: AxisOption,
    /// Normalized axes of the batched tensor, ascending.
    axes: Vec<usize>,
    /// Per-sample input shape.
    input: Vec<usize>,
    /// Shape of `gamma`/`beta` (Keras's `build`).
    param_shape: Vec<usize>,
    epsilon: f64,
    rms_scaling: bool,
    has_gamma: bool,
    has_beta: bool,
    /// `gamma` (if `scale` or `rms_scaling`), `beta` (if `center` and not
    /// `rms_scaling`).
    vars: Vec<Var>,
}

/// Per-row statistics LayerNormalization keeps for its backward pass.
#[derive(Debug)]
struct LnSaved {
    mean: Vec<f32>,
    var_eps: Vec<f32>,
    r: Vec<f32>,
}

/// Builds `LayerNormalization`.
pub fn build_layer_norm(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?.to_vec();
    let rank = input.len() + 1;
    let axis_option = AxisOption::parse(cx, "axis", -1)?;
    let axes = axis_option.resolve(rank, "axis")?;
    let epsilon = epsilon(cx, 1e-3)?;
    let center = cx.bool_or("center", true)?;
    let scale = cx.bool_or("scale", true)?;
    let rms_scaling = cx.bool_or("rms_scaling", false)?;
    let has_gamma = scale || rms_scaling;
    let has_beta = center && !rms_scaling;
    if (has_gamma || has_beta) && axes.contains(&0) {
        // Keras's build would give the variables a `None` dimension.
        return Err(Error::unsupported(
            "LayerNormalization axis",
            "the batch axis (with `gamma` or `beta`)",
            &["feature axes"],
        ));
    }
    // build: shape = tuple(input_shape[dim] for dim in sorted(axis)), with
    // the axes as written (negative ones sort first).
    let mut written = axis_option.raw();
    written.sort_unstable();
    let param_shape: Vec<usize> = written
        .iter()
        .map(|&a| resolve_axis(a, rank, "axis").map(|a| input[a - 1]))
        .collect::<Result<_>>()?;
    checked_product(param_shape.iter().copied())?;
    let mut expected = Vec::new();
    if has_gamma {
        expected.push(("gamma", param_shape.clone()));
    }
    if has_beta {
        expected.push(("beta", param_shape.clone()));
    }
    let mut values = cx.take_vars(&expected)?.into_iter();
    let mut vars = Vec::new();
    if has_gamma {
        let mut v = Var::new("gamma", values.next().expect("gamma taken"));
        v.regularizer = cx.regularizer("gamma_regularizer")?;
        v.constraint = cx.constraint("gamma_constraint")?;
        vars.push(v);
    }
    if has_beta {
        let mut v = Var::new("beta", values.next().expect("beta taken"));
        v.regularizer = cx.regularizer("beta_regularizer")?;
        v.constraint = cx.constraint("beta_constraint")?;
        vars.push(v);
    }
    Ok(Box::new(LayerNorm {
        axis_option,
        axes,
        input,
        param_shape,
        epsilon,
        rms_scaling,
        has_gamma,
        has_beta,
        vars,
    }))
}

impl LayerNorm {
    /// `gamma` and `beta` (when present), each of one row's length.
    #[allow(clippy::type_complexity)]
    fn params(&self, len: usize) -> Result<(Option<Vec<f32>>, Option<Vec<f32>>)> {
        let take = |i: usize| -> Result<Vec<f32>> {
            let v = &self.vars[i];
            if v.value.len() != len {
                return Err(Error::mismatch(
                    format!("`{}` of {len} values", v.role),
                    v.value.len(),
                ));
            }
            Ok(v.value.iter().copied().collect())
        };
        Ok((
            self.has_gamma.then(|| take(0)).transpose()?,
            self.has_beta
                .then(|| take(usize::from(self.has_gamma)))
                .transpose()?,
        ))
    }

    fn check_input(&self, x: &ArrayD<f32>) -> Result<()> {
        let ok = x.ndim() == self.input.len() + 1
            && self
                .axes
                .iter()
                .all(|&a| a == 0 || x.shape()[a] == self.input[a - 1]);
        if !ok {
            return Err(Error::mismatch(
                format!("an input of shape {}", super::keras_shape(&self.input)),
                format!("shape {:?}", x.shape()),
            ));
        }
        Ok(())
    }

    /// Per-row mean, `var + ε` and `rsqrt(var + ε)` (jnp.mean, jnp.var).
    fn moments(&self, m: &Array2<f32>) -> LnSaved {
        let k = m.ncols() as f32;
        let eps = self.epsilon as f32;
        let mut out = LnSaved {
            mean: Vec::with_capacity(m.nrows()),
            var_eps: Vec::with_capacity(m.nrows()),
            r: Vec::with_capacity(m.nrows()),
        };
        for row in m.rows() {
            let mean = sum_f32(row.iter().copied()) / k;
            let var = sum_f32(row.iter().map(|&v| {
                let d = v - mean;
                d * d
            })) / k;
            let ve = var + eps;
            out.mean.push(mean);
            out.var_eps.push(ve);
            out.r.push(xla_rsqrt(ve));
        }
        out
    }
}

impl LayerOp for LayerNorm {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = single_shape(inputs, "LayerNormalization")?;
        let ok = s.len() == self.input.len()
            && self
                .axes
                .iter()
                .all(|&a| a == 0 || s[a - 1] == self.input[a - 1]);
        if !ok {
            return Err(Error::mismatch(
                format!("an input of shape {}", super::keras_shape(&self.input)),
                super::keras_shape(s),
            ));
        }
        Ok(s.to_vec())
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "LayerNormalization")?;
        self.check_input(x)?;
        let rows = Rows::new(x.shape(), &self.axes)?;
        let mut m = rows.gather(x)?;
        let st = self.moments(&m);
        let (gamma, beta) = self.params(rows.len)?;
        let (gamma, beta) = (gamma.as_deref(), beta.as_deref());
        for (i, mut row) in m.rows_mut().into_iter().enumerate() {
            let (mean, r) = (st.mean[i], st.r[i]);
            if self.rms_scaling {
                // outputs = x * inv; outputs = outputs * gamma.
                let g = gamma.expect("rms_scaling has gamma");
                for (v, &gk) in row.iter_mut().zip(g) {
                    *v = (*v * r) * gk;
                }
                continue;
            }
            for (k, v) in row.iter_mut().enumerate() {
                let inv = gamma.map_or(r, |g| r * g[k]);
                let res = match beta {
                    Some(b) => (-mean).mul_add(inv, b[k]),
                    None => -mean * inv,
                };
                *v = v.mul_add(inv, res);
            }
        }
        Ok(Forward {
            extra: Vec::new(),
            y: rows.scatter(m)?,
            saved: Some(Box::new(st)),
            updates: Vec::new(),
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "LayerNormalization")?;
        self.check_input(x)?;
        let st: &LnSaved = saved_as(saved, "LayerNormalization")?;
        let rows = Rows::new(x.shape(), &self.axes)?;
        let xm = rows.gather(x)?;
        let mut g = rows.gather(&dy)?;
        let len = rows.len;
        let count = len as f32;
        if st.r.len() != rows.rows {
            return Err(Error::mismatch(
                format!("saved statistics for {} rows", rows.rows),
                st.r.len(),
            ));
        }
        let (gamma, _) = self.params(len)?;
        let gamma = gamma.as_deref();
        let mut d_gamma = vec![0f64; if self.has_gamma { len } else { 0 }];
        let mut d_beta = vec![0f64; if self.has_beta { len } else { 0 }];
        let mut ct_inv = vec![0f32; len];
        let mut inv = vec![0f32; len];
        for (i, (xr, mut gr)) in xm.rows().into_iter().zip(g.rows_mut()).enumerate() {
            let (mean, r, ve) = (st.mean[i], st.r[i], st.var_eps[i]);
            // ct(r) and ct(mean) for this row; dx's direct term goes in gr.
            let mut ct_r = 0f64;
            let mut ct_mean = 0f32;
            if self.rms_scaling {
                let gm = gamma.expect("rms_scaling has gamma");
                for k in 0..len {
                    let ct_out1 = gr[k] * gm[k];
                    d_gamma[k] += f64::from(gr[k] * (xr[k] * r));
                    ct_r += f64::from(ct_out1 * xr[k]);
                    gr[k] = ct_out1 * r;
                }
            } else {
                let mut ct_neg_mean = 0f64;
                for k in 0..len {
                    inv[k] = gamma.map_or(r, |gm| r * gm[k]);
                    ct_inv[k] = gr[k] * xr[k] + gr[k] * -mean;
                    if self.has_beta {
                        d_beta[k] += f64::from(gr[k]);
                    }
                    ct_neg_mean += f64::from(gr[k] * inv[k]);
                    ct_r += f64::from(gamma.map_or(ct_inv[k], |gm| ct_inv[k] * gm[k]));
                    if self.has_gamma {
                        d_gamma[k] += f64::from(ct_inv[k] * r);
                    }
                    gr[k] *= inv[k];
                }
                ct_mean = -(ct_neg_mean as f32);
            }
            let ct_var = ct_r as f32 * (-0.5 * (r / ve));
            let per = ct_var / count;
            let mut centered_sum = 0f64;
            for k in 0..len {
                let centered = per * (2.0 * (xr[k] - mean));
                centered_sum += f64::from(centered);
                gr[k] += centered;
            }
            let shift = (ct_mean - centered_sum as f32) / count;
            for v in gr.iter_mut() {
                *v += shift;
            }
        }
        let to_param = |acc: Vec<f64>| -> Result<ArrayD<f32>> {
            ArrayD::from_shape_vec(
                IxDyn(&self.param_shape),
                acc.into_iter().map(|v| v as f32).collect(),
            )
            .map_err(|e| Error::invalid(e.to_string()))
        };
        let mut grads = Vec::new();
        if self.has_gamma {
            grads.push(Some(to_param(d_gamma)?));
        }
        if self.has_beta {
            grads.push(Some(to_param(d_beta)?));
        }
        Ok(Backward {
            inputs: vec![rows.scatter(g)?],
            vars: grads,
        })
    }

    fn detail(&self) -> Option<String> {
        Some(format!(
            "axis={}{}",
            self.axis_option,
            if self.rms_scaling {
                ", rms_scaling"
            } else {
                ""
            }
        ))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// UnitNormalization
// ---------------------------------------------------------------------------

/// `epsilon` of `UnitNormalization.call` (`ops.normalize(..., epsilon=1e-12)`).
const UNIT_NORM_EPSILON: f64 = 1e-12;

/// `keras.layers.UnitNormalization`.
#[derive(Debug, Clone)]
pub struct UnitNorm {
    /// `axis` as written.
    axis_option: AxisOption,
    /// Normalized axes of the batched tensor, ascending.
    axes: Vec<usize>,
    /// Per-sample rank.
    rank: usize,
}

/// Per-row values UnitNormalization keeps for its backward pass.
#[derive(Debug)]
struct UnitSaved {
    /// `sum(x²)`.
    square_sum: Vec<f32>,
    /// `rsqrt(sum(x²))`.
    r: Vec<f32>,
    /// `minimum(r, 1 / ε)`.
    inv: Vec<f32>,
}

/// Builds `UnitNormalization`.
pub fn build_unit_norm(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let axis_option = AxisOption::parse(cx, "axis", -1)?;
    let axes = axis_option.resolve(input.len() + 1, "axis")?;
    cx.take_vars(&[])?;
    Ok(Box::new(UnitNorm {
        axis_option,
        axes,
        rank: input.len(),
    }))
}

/// `jnp.minimum` (NaN-propagating).
#[inline]
fn minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || a < b { a } else { b }
}

impl LayerOp for UnitNorm {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = single_shape(inputs, "UnitNormalization")?;
        if s.len() != self.rank {
            return Err(Error::mismatch(
                format!("an input of rank {}", self.rank + 1),
                super::keras_shape(s),
            ));
        }
        Ok(s.to_vec())
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "UnitNormalization")?;
        if x.ndim() != self.rank + 1 {
            return Err(Error::mismatch(
                format!("an input of rank {}", self.rank + 1),
                format!("shape {:?}", x.shape()),
            ));
        }
        let cap = (1.0 / UNIT_NORM_EPSILON) as f32;
        let rows = Rows::new(x.shape(), &self.axes)?;
        let mut m = rows.gather(x)?;
        let mut st = UnitSaved {
            square_sum: Vec::with_capacity(rows.rows),
            r: Vec::with_capacity(rows.rows),
            inv: Vec::with_capacity(rows.rows),
        };
        for mut row in m.rows_mut() {
            let ss = sum_f32(row.iter().map(|&v| v * v));
            let r = xla_rsqrt(ss);
            let inv = minimum(r, cap);
            row.mapv_inplace(|v| v * inv);
            st.square_sum.push(ss);
            st.r.push(r);
            st.inv.push(inv);
        }
        Ok(Forward {
            extra: Vec::new(),
            y: rows.scatter(m)?,
            saved: Some(Box::new(st)),
            updates: Vec::new(),
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "UnitNormalization")?;
        let st: &UnitSaved = saved_as(saved, "UnitNormalization")?;
        let cap = (1.0 / UNIT_NORM_EPSILON) as f32;
        let rows = Rows::new(x.shape(), &self.axes)?;
        if st.r.len() != rows.rows {
            return Err(Error::mismatch(
                format!("saved norms for {} rows", rows.rows),
                st.r.len(),
            ));
        }
        let xm = rows.gather(x)?;
        let mut g = rows.gather(&dy)?;
        for (i, (xr, mut gr)) in xm.rows().into_iter().zip(g.rows_mut()).enumerate() {
            let (ss, r, inv) = (st.square_sum[i], st.r[i], st.inv[i]);
            let ct_inv = sum_f32(xr.iter().zip(gr.iter()).map(|(&x, &g)| g * x));
            // lax.min JVP: _balanced_eq(r, inv, cap).
            let share = if r == inv { 1.0 } else { 0.0 } / if cap == inv { 2.0 } else { 1.0 };
            let ct_r = ct_inv * share;
            // rsqrt JVP: g * (-0.5 * (r / s)); square: g * (2 * x).
            let ct_ss = ct_r * (-0.5 * (r / ss));
            for (gv, &xv) in gr.iter_mut().zip(xr) {
                *gv = *gv * inv + ct_ss * (2.0 * xv);
            }
        }
        Ok(Backward::inputs(vec![rows.scatter(g)?]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!("axis={}", self.axis_option))
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use ndarray::ArrayD;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    use super::super::{Builder, Mode, check};
    use super::*;

    fn run(op: &dyn LayerOp, x: &ArrayD<f32>, mode: Mode) -> Forward {
        let mut rng = StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode,
            rng: &mut rng,
        };
        op.forward(&[x], &mut cx).expect("forward")
    }

    fn arr(shape: &[usize], v: &[f32]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap()
    }

    fn stored(vs: &[&[f32]]) -> Vec<(Vec<usize>, Vec<f32>)> {
        vs.iter().map(|v| (vec![v.len()], v.to_vec())).collect()
    }

    fn build_err(
        builder: Builder,
        class: &str,
        config: serde_json::Value,
        inputs: &[Vec<usize>],
        stored: &[(Vec<usize>, Vec<f32>)],
    ) -> String {
        let config = config.as_object().unwrap().clone();
        builder(&BuildCx {
            class_name: class,
            name: "test",
            config: &config,
            inputs,
            stored,
            vars_path: "layers/test/vars",
            group: None,
        })
        .expect_err("config is rejected")
        .to_string()
    }

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    // ---- BatchNormalization ------------------------------------------------

    fn bn(config: serde_json::Value, input: &[usize], vars: &[&[f32]]) -> Box<dyn LayerOp> {
        check::build(
            build_batch_norm,
            "BatchNormalization",
            config,
            &[input.to_vec()],
            &stored(vars),
        )
    }

    #[test]
    fn batch_norm_inference_uses_moving_statistics() {
        // gamma 2, beta 1, moving mean 3, moving variance 4 - ε (ε = 1e-3) on
        // channel 0; channel 1 the identity (gamma 1, beta 0, mean 0, var 1 - ε).
        // inv = rsqrt(4) * 2 = 1, res = -3 * 1 + 1 = -2, y = x * 1 - 2.
        let eps = 1e-3f32;
        let op = bn(
            json!({"epsilon": 1e-3}),
            &[2],
            &[
                &[2.0, 1.0],
                &[1.0, 0.0],
                &[3.0, 0.0],
                &[4.0 - eps, 1.0 - eps],
            ],
        );
        let x = arr(&[2, 2], &[5.0, 0.5, -1.0, -0.25]);
        let f = run(op.as_ref(), &x, Mode::Inference);
        assert!(f.updates.is_empty());
        let y = f.y.as_slice().unwrap();
        for (got, want) in y.iter().zip([3.0, 0.5, -3.0, -0.25]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
    }

    #[test]
    fn batch_norm_training_uses_batch_moments_and_returns_updates() {
        // One channel, batch [1, 2, 3, 6]: mean 3, biased variance
        // (4 + 1 + 0 + 9) / 4 = 3.5. ε = 0.5 gives rsqrt(4) = 0.5, so with
        // gamma 2, beta 1: y = (x - 3) * 0.5 * 2 + 1 = x - 2.
        // momentum 0.75: moving_mean = 1 * 0.75 + 3 * 0.25 = 1.5,
        // moving_variance = 2 * 0.75 + 3.5 * 0.25 = 2.375.
        let op = bn(
            json!({"epsilon": 0.5, "momentum": 0.75}),
            &[1],
            &[&[2.0], &[1.0], &[1.0], &[2.0]],
        );
        let x = arr(&[4, 1], &[1.0, 2.0, 3.0, 6.0]);
        let f = run(op.as_ref(), &x, Mode::Training);
        let y = f.y.as_slice().unwrap();
        for (got, want) in y.iter().zip([-1.0, 0.0, 1.0, 4.0]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
        assert_eq!(f.updates.len(), 2);
        assert_eq!(f.updates[0].0, 2, "moving_mean is vars()[2]");
        assert_eq!(f.updates[1].0, 3, "moving_variance is vars()[3]");
        assert!(close(f.updates[0].1[[0]], 1.5, 1e-6));
        assert!(close(f.updates[1].1[[0]], 2.375, 1e-6));
        // The variables themselves are not changed by forward.
        assert_eq!(op.vars()[2].value[[0]], 1.0);
    }

    #[test]
    fn batch_norm_frozen_runs_in_inference_mode_when_training() {
        // trainable: false → moving statistics (mean 1, var 4 - ε: y = (x - 1) / 2)
        // and no updates, in training mode too.
        let eps = 1e-3f32;
        let op = bn(
            json!({"trainable": false, "center": false, "scale": false}),
            &[1],
            &[&[1.0], &[4.0 - eps]],
        );
        let x = arr(&[3, 1], &[1.0, 3.0, 5.0]);
        let f = run(op.as_ref(), &x, Mode::Training);
        assert!(f.updates.is_empty());
        let y = f.y.as_slice().unwrap();
        for (got, want) in y.iter().zip([0.0, 1.0, 2.0]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
        check::gradients(op.as_ref(), &[x], Mode::Training, 2e-2);
    }

    #[test]
    fn batch_norm_gradients_inference_and_training() {
        let x = check::values(&[5, 3], 1);
        let gamma = [1.5f32, -0.7, 0.9];
        let beta = [0.1f32, 0.2, -0.3];
        let mm = [0.2f32, -0.1, 0.05];
        let mv = [0.8f32, 1.3, 0.6];
        let op = bn(json!({}), &[3], &[&gamma, &beta, &mm, &mv]);
        check::gradients(op.as_ref(), std::slice::from_ref(&x), Mode::Inference, 1e-2);
        check::gradients(op.as_ref(), &[x], Mode::Training, 2e-2);
    }

    #[test]
    fn batch_norm_gradients_other_axis_and_options() {
        // axis 1 of a rank-3 input (channels first), without beta / gamma.
        let x = check::values(&[3, 2, 4], 2);
        let eps = 0.01;
        let only_scale = bn(
            json!({"axis": 1, "center": false, "epsilon": eps}),
            &[2, 4],
            &[&[1.2, 0.8], &[0.1, -0.2], &[0.9, 1.1]],
        );
        check::gradients(
            only_scale.as_ref(),
            std::slice::from_ref(&x),
            Mode::Training,
            2e-2,
        );
        check::gradients(
            only_scale.as_ref(),
            std::slice::from_ref(&x),
            Mode::Inference,
            1e-2,
        );
        let only_center = bn(
            json!({"axis": [-2], "scale": false, "epsilon": eps}),
            &[2, 4],
            &[&[0.3, -0.3], &[0.1, -0.2], &[0.9, 1.1]],
        );
        check::gradients(
            only_center.as_ref(),
            std::slice::from_ref(&x),
            Mode::Training,
            2e-2,
        );
        // Channels on the last axis of a rank-3 input.
        let last = bn(
            json!({}),
            &[2, 4],
            &[
                &[1.0, 2.0, 0.5, 1.5],
                &[0.0, 0.1, 0.2, 0.3],
                &[0.0; 4],
                &[1.0; 4],
            ],
        );
        check::gradients(last.as_ref(), &[x], Mode::Training, 2e-2);
    }

    #[test]
    fn batch_norm_variables_regularizers_and_trainability() {
        let op = bn(
            json!({
                "gamma_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
                "beta_constraint": {"class_name": "NonNeg", "config": {}},
            }),
            &[2],
            &[&[1.0, 1.0], &[0.0, 0.0], &[0.0, 0.0], &[1.0, 1.0]],
        );
        let roles: Vec<_> = op.vars().iter().map(|v| (v.role, v.trainable)).collect();
        assert_eq!(
            roles,
            [
                ("gamma", true),
                ("beta", true),
                ("moving_mean", false),
                ("moving_variance", false)
            ]
        );
        assert!(op.vars()[0].regularizer.is_some());
        assert!(op.vars()[1].constraint.is_some());
        assert!(op.vars()[1].regularizer.is_none());
        assert_eq!(op.output_shape(&[vec![2]]).unwrap(), vec![2]);
        assert!(op.output_shape(&[vec![3]]).is_err());
        assert!(op.output_shape(&[vec![2], vec![2]]).is_err());
    }

    #[test]
    fn batch_norm_rejects_bad_configs() {
        let vars = stored(&[&[1.0, 1.0], &[0.0, 0.0], &[0.0, 0.0], &[1.0, 1.0]]);
        let input = [vec![2]];
        let err = |config| {
            build_err(
                build_batch_norm,
                "BatchNormalization",
                config,
                &input,
                &vars,
            )
        };
        assert!(err(json!({"axis": 2})).contains("`axis` within a tensor of rank 2"));
        assert!(err(json!({"axis": 0})).contains("batch axis"));
        assert!(err(json!({"axis": [1, 1]})).contains("one integer axis"));
        assert!(err(json!({"axis": "x"})).contains("integer"));
        assert!(err(json!({"epsilon": 0.0})).contains("epsilon"));
        assert!(err(json!({"epsilon": -1e-3})).contains("epsilon"));
        assert!(err(json!({"renorm": true})).contains("renorm"));
        assert!(err(json!({"synchronized": true})).contains("synchronized"));
        assert!(err(json!({"center": "yes"})).contains("boolean"));
        assert!(err(json!({"gamma_regularizer": {"class_name": "L7"}})).contains("L7"));
        // Stored variables must match scale/center.
        assert!(err(json!({"center": false})).contains("3 variables"));
        let wrong_shape = stored(&[&[1.0], &[0.0], &[0.0], &[1.0]]);
        let msg = build_err(
            build_batch_norm,
            "BatchNormalization",
            json!({}),
            &input,
            &wrong_shape,
        );
        assert!(msg.contains("gamma of shape [2]"), "{msg}");
    }

    #[test]
    fn batch_norm_forward_checks_the_input() {
        let op = bn(
            json!({}),
            &[2],
            &[&[1.0; 2], &[0.0; 2], &[0.0; 2], &[1.0; 2]],
        );
        let mut rng = StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let bad = ArrayD::zeros(IxDyn(&[2, 3]));
        assert!(op.forward(&[&bad], &mut cx).is_err());
        let good = ArrayD::zeros(IxDyn(&[2, 2]));
        assert!(op.forward(&[&good, &good], &mut cx).is_err());
        let f = op.forward(&[&good], &mut cx).unwrap();
        assert!(op.backward(&[&good], &f.y, &None, f.y.clone()).is_err());
    }

    // ---- LayerNormalization ------------------------------------------------

    fn ln(
        config: serde_json::Value,
        input: &[usize],
        vars: &[(Vec<usize>, Vec<f32>)],
    ) -> Box<dyn LayerOp> {
        check::build(
            build_layer_norm,
            "LayerNormalization",
            config,
            &[input.to_vec()],
            vars,
        )
    }

    #[test]
    fn layer_norm_values_by_hand() {
        // Row [1, 2, 3, 6]: mean 3, var 3.5; ε = 0.5 → rsqrt(4) = 0.5.
        // gamma [1, 2, 1, 2], beta [0, 1, 0, 1]:
        // y = (x - 3) * 0.5 * gamma + beta = [-1, 0, 0, 4].
        // rms_scaling: y = x * 0.5 * gamma = [0.5, 2, 1.5, 6] (not centred).
        let gamma = (vec![4], vec![1.0, 2.0, 1.0, 2.0]);
        let beta = (vec![4], vec![0.0, 1.0, 0.0, 1.0]);
        let x = arr(&[1, 4], &[1.0, 2.0, 3.0, 6.0]);
        let op = ln(json!({"epsilon": 0.5}), &[4], &[gamma.clone(), beta]);
        let y = run(op.as_ref(), &x, Mode::Inference).y;
        for (got, want) in y.iter().zip([-1.0, 0.0, 0.0, 4.0]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
        let rms = ln(json!({"epsilon": 0.5, "rms_scaling": true}), &[4], &[gamma]);
        assert_eq!(rms.vars().len(), 1, "rms_scaling has gamma only");
        let y = run(rms.as_ref(), &x, Mode::Inference).y;
        for (got, want) in y.iter().zip([0.5, 2.0, 1.5, 6.0]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
    }

    #[test]
    fn layer_norm_multi_axis_parameter_layout() {
        // Input (2, 3) per sample, axis [-1, 1]: Keras's gamma has shape
        // (input_shape[-1], input_shape[1]) = (3, 2) and is reshaped to
        // (1, 2, 3): flat element k scales position (k / 3, k % 3).
        // Sample: x = [[0, 0, 0], [2, 2, 2]]: mean 1, var 1, ε = 3 → r = 0.5;
        // normalized [[-0.5]*3, [0.5]*3]; gamma flat [1..6]:
        // y = [[-0.5, -1, -1.5], [2, 2.5, 3]].
        let gamma = (vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let op = ln(
            json!({"axis": [-1, 1], "epsilon": 3.0, "center": false}),
            &[2, 3],
            &[gamma],
        );
        let x = arr(&[1, 2, 3], &[0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
        let y = run(op.as_ref(), &x, Mode::Inference).y;
        for (got, want) in y.iter().zip([-0.5, -1.0, -1.5, 2.0, 2.5, 3.0]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
    }

    #[test]
    fn layer_norm_gradients() {
        let x = check::values(&[3, 4], 3);
        let g4 = (vec![4], vec![1.1f32, -0.6, 0.8, 1.4]);
        let b4 = (vec![4], vec![0.1f32, 0.0, -0.2, 0.3]);
        let op = ln(json!({}), &[4], &[g4.clone(), b4]);
        check::gradients(op.as_ref(), std::slice::from_ref(&x), Mode::Training, 2e-2);
        let plain = ln(json!({"center": false, "scale": false}), &[4], &[]);
        check::gradients(
            plain.as_ref(),
            std::slice::from_ref(&x),
            Mode::Inference,
            2e-2,
        );
        let rms = ln(json!({"rms_scaling": true}), &[4], &[g4]);
        check::gradients(rms.as_ref(), &[x], Mode::Inference, 2e-2);
        // Middle axis of a rank-3 input, and two axes.
        let x3 = check::values(&[2, 3, 2], 4);
        let mid = ln(
            json!({"axis": 1}),
            &[3, 2],
            &[
                (vec![3], vec![0.9, 1.2, -0.8]),
                (vec![3], vec![0.0, 0.5, 0.1]),
            ],
        );
        check::gradients(
            mid.as_ref(),
            std::slice::from_ref(&x3),
            Mode::Inference,
            2e-2,
        );
        let both = ln(
            json!({"axis": [1, 2], "center": false}),
            &[3, 2],
            &[(vec![3, 2], vec![0.9, 1.2, -0.8, 1.0, 0.7, 1.3])],
        );
        check::gradients(both.as_ref(), &[x3], Mode::Inference, 2e-2);
    }

    #[test]
    fn layer_norm_rejects_bad_configs() {
        let g = [(vec![4], vec![1.0; 4]), (vec![4], vec![0.0; 4])];
        let input = [vec![4]];
        let err = |config| build_err(build_layer_norm, "LayerNormalization", config, &input, &g);
        assert!(err(json!({"axis": 2})).contains("rank 2"));
        assert!(err(json!({"axis": 0})).contains("batch axis"));
        assert!(err(json!({"axis": [1, -1]})).contains("distinct"));
        assert!(err(json!({"axis": [1.5]})).contains("integers"));
        assert!(err(json!({"epsilon": 0})).contains("epsilon"));
        assert!(err(json!({"scale": false})).contains("1 variables"));
        assert!(err(json!({"beta_constraint": {"class_name": "Nope"}})).contains("Nope"));
    }

    // ---- UnitNormalization -------------------------------------------------

    fn unit(config: serde_json::Value, input: &[usize]) -> Box<dyn LayerOp> {
        check::build(
            build_unit_norm,
            "UnitNormalization",
            config,
            &[input.to_vec()],
            &[],
        )
    }

    #[test]
    fn unit_norm_values_by_hand() {
        // [3, 4] has norm 5 → [0.6, 0.8]; over axes [1, 2] of [[3], [4]] too.
        let y = run(
            unit(json!({}), &[2]).as_ref(),
            &arr(&[1, 2], &[3.0, 4.0]),
            Mode::Inference,
        )
        .y;
        assert!(
            close(y[[0, 0]], 0.6, 1e-6) && close(y[[0, 1]], 0.8, 1e-6),
            "{y:?}"
        );
        let op = unit(json!({"axis": [1, 2]}), &[2, 1]);
        let y = run(op.as_ref(), &arr(&[1, 2, 1], &[3.0, 4.0]), Mode::Inference).y;
        assert!(close(y[[0, 0, 0]], 0.6, 1e-6) && close(y[[0, 1, 0]], 0.8, 1e-6));
        // Axis 1 of a [1, 2, 2] input normalizes columns: [[3, 1], [4, 0]] →
        // [[0.6, 1], [0.8, 0]].
        let op = unit(json!({"axis": 1}), &[2, 2]);
        let y = run(
            op.as_ref(),
            &arr(&[1, 2, 2], &[3.0, 1.0, 4.0, 0.0]),
            Mode::Inference,
        )
        .y;
        for (got, want) in y.iter().zip([0.6, 1.0, 0.8, 0.0]) {
            assert!(close(*got, want, 1e-6), "{y:?}");
        }
        // A tiny row: rsqrt(1e-30) = 1e15 exceeds 1 / 1e-12, so y = x * 1e12.
        let y = run(
            unit(json!({}), &[1]).as_ref(),
            &arr(&[1, 1], &[1e-15]),
            Mode::Inference,
        )
        .y;
        assert!((y[[0, 0]] - 1e-3).abs() < 1e-8, "{y:?}");
    }

    #[test]
    fn unit_norm_gradients_and_the_zero_row() {
        let x = check::values(&[3, 4], 5);
        check::gradients(unit(json!({}), &[4]).as_ref(), &[x], Mode::Inference, 2e-2);
        let x3 = check::values(&[2, 3, 2], 6);
        let op = unit(json!({"axis": [1, 2]}), &[3, 2]);
        check::gradients(op.as_ref(), &[x3], Mode::Inference, 2e-2);
        // An all-zero row: y = 0, and jax.grad gives NaN (0 * -inf in the
        // rsqrt JVP); a row with a value gets an ordinary gradient.
        let op = unit(json!({}), &[2]);
        let x = arr(&[2, 2], &[0.0, 0.0, 3.0, 4.0]);
        let f = run(op.as_ref(), &x, Mode::Inference);
        assert_eq!(f.y[[0, 0]], 0.0);
        let b = op
            .backward(&[&x], &f.y, &f.saved, ArrayD::ones(IxDyn(&[2, 2])))
            .unwrap();
        assert!(b.inputs[0][[0, 0]].is_nan() && b.inputs[0][[0, 1]].is_nan());
        assert!(b.inputs[0][[1, 0]].is_finite());
    }

    #[test]
    fn unit_norm_rejects_bad_configs() {
        let input = [vec![3]];
        let err = |config, stored: &[(Vec<usize>, Vec<f32>)]| {
            build_err(build_unit_norm, "UnitNormalization", config, &input, stored)
        };
        assert!(err(json!({"axis": 3}), &[]).contains("rank 2"));
        assert!(err(json!({"axis": [1, 1]}), &[]).contains("distinct"));
        assert!(err(json!({"axis": {"a": 1}}), &[]).contains("integer"));
        assert!(err(json!({}), &[(vec![3], vec![0.0; 3])]).contains("0 variables"));
        assert!(unit(json!({}), &[3]).output_shape(&[vec![3, 1]]).is_err());
    }

    #[test]
    fn rows_round_trip() {
        let x = check::values(&[2, 3, 4, 5], 9);
        for axes in [
            vec![3],
            vec![1],
            vec![1, 3],
            vec![0, 2],
            vec![],
            vec![0, 1, 2, 3],
        ] {
            let rows = Rows::new(x.shape(), &axes).unwrap();
            let m = rows.gather(&x).unwrap();
            assert_eq!(m.len(), x.len());
            let back = rows.scatter(m).unwrap();
            assert!(back.is_standard_layout());
            assert_eq!(back, x, "axes {axes:?}");
        }
    }
}
