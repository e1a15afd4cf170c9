//! Activation layers: `ReLU`, `LeakyReLU`, `PReLU`, `ELU` and `Softmax`, in
//! float32 with the order of operations of Keras's JAX backend, and the
//! gradients `jax.grad` gives, including at kinks and ties.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX 0.10.2; paths relative to `site-packages/`:
//!
//! * `keras/src/layers/activations/relu.py`, `leaky_relu.py`, `prelu.py`,
//!   `elu.py`, `softmax.py`;
//! * `keras/src/activations/activations.py` (`ReLU.static_call`, the
//!   piecewise `relu` with `negative_slope`, `max_value`, `threshold`);
//! * `keras/src/backend/jax/nn.py` and `jax/_src/nn/functions.py` (`relu`
//!   with `relu'(0) = 0`, `relu6` with zero gradient at 0 and 6,
//!   `leaky_relu = where(x >= 0, x, s * x)`, `elu`, `_softmax_deprecated`,
//!   which JAX uses while `jax_softmax_custom_jvp` is off, its default);
//! * `jax/_src/numpy/lax_numpy.py` `clip` (`minimum(max, maximum(min, x))`),
//!   `jax/_src/lax/lax.py` (`max`/`min` JVPs: `_balanced_eq` halves the
//!   gradient at a tie), `jax/_src/ops/special.py` `logsumexp`.
//!
//! # ReLU
//!
//! With `s = negative_slope`, `m = max_value`, `t = threshold`, Keras's
//! `ReLU.static_call` computes:
//!
//! * `s != 0`, no `m`, `t == 0`: `leaky_relu(x, s) = where(x >= 0, x, s·x)`
//!   (gradient 1 at 0);
//! * otherwise `x₁ = where(x > t, x, 0)` if `t != 0`, else `relu6(x)` if
//!   `m == 6`, else `relu(x)`; then `x₁ = clip(x₁, 0, m)` if `m` is given
//!   (and not consumed by `relu6`); then `y = x₁ - s · relu(-x + t)` if
//!   `s != 0`.
//!
//! So the gradient is 0 at `x == t` (the `where` and the inner `relu` both
//! give 0 there), 0 at 0 when `t == 0`, and at `x == m` it is 0 when `m == 6`
//! (relu6's custom JVP) but ½ for any other `m` (the tie of `clip`'s
//! `minimum`); ties of `clip`'s `maximum` with 0 only occur where the inner
//! gradient is already 0.
//!
//! # Others
//!
//! * LeakyReLU: `where(x >= 0, x, s·x)`, `s = negative_slope` (Keras 3's
//!   name, default 0.3); the deprecated `alpha` key overrides it as in
//!   Keras's constructor.
//! * PReLU: `relu(x) + (-alpha) · relu(-x)`; `alpha` has the per-sample
//!   input shape with `shared_axes` set to 1, indexed as Keras's `build` does
//!   (`param_shape[i - 1] = 1`, so an axis ≤ 0 counts from the end the
//!   Python way). Gradient 0 at 0 for `x`.
//! * ELU: `where(x > 0, x, alpha · expm1(x))`, gradient `alpha · (expm1(x) +
//!   1)` for `x ≤ 0` (jax's `expm1` JVP); Keras's `ELU.get_config` does not
//!   write `alpha`, so saved models always have 1.
//! * Softmax over one axis (an integer or a one-element list):
//!   `exp(x - max) / sum(exp(x - max))`; over several axes, Keras's
//!   `exp(x - logsumexp(x, axes))`. The layer's `mask` call argument is not
//!   supported (the graph passes none).
//!
//! Element-wise layers run on the rayon pool from
//! [`PAR_THRESHOLD`] elements on. As elsewhere in kerasrs (see
//! `model::activation`), `exp` results below the normal range are flushed to
//! zero like XLA on CPU.

use ndarray::{ArrayD, Axis, IxDyn, Zip};
use serde_json::Value;

use super::norm::{AxisOption, Rows, checked_product, single, sum_f32};
use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, Var, keras_shape, single_shape};
use crate::error::{Error, Result};
use crate::model::activation::PAR_THRESHOLD;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `jnp.maximum` (NaN-propagating).
#[inline]
fn maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a > b {
        a
    } else {
        b
    }
}

/// `jnp.minimum` (NaN-propagating).
#[inline]
fn minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a < b {
        a
    } else {
        b
    }
}

/// `jax.nn.relu` = `maximum(x, 0)`.
#[inline]
fn relu(x: f32) -> f32 {
    maximum(x, 0.0)
}

/// `jax.nn.relu6` = `minimum(maximum(x, 0), 6)`.
#[inline]
fn relu6(x: f32) -> f32 {
    minimum(maximum(x, 0.0), 6.0)
}

/// The share of the gradient `lax.max`/`lax.min` give operand `x` with
/// result `z` and other operand `y` (`_balanced_eq`: ½ at a tie).
#[inline]
fn balanced_eq(x: f32, z: f32, y: f32) -> f32 {
    (if x == z { 1.0 } else { 0.0 }) / (if y == z { 2.0 } else { 1.0 })
}

/// `exp` with XLA's flush of results below the normal range.
#[inline]
fn exp(x: f32) -> f32 {
    let v = x.exp();
    if v < f32::MIN_POSITIVE { 0.0 } else { v }
}

/// `f(x)` for every element (standard layout, in parallel when large).
fn map(x: &ArrayD<f32>, f: impl Fn(f32) -> f32 + Sync + Send) -> ArrayD<f32> {
    let mut y = x.as_standard_layout().into_owned();
    if y.len() >= PAR_THRESHOLD {
        y.par_mapv_inplace(f);
    } else {
        y.mapv_inplace(f);
    }
    y
}

/// `f(x, dy)` for every element (standard layout, in parallel when large).
fn map_grad(
    x: &ArrayD<f32>,
    dy: ArrayD<f32>,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> Result<ArrayD<f32>> {
    if x.shape() != dy.shape() {
        return Err(Error::mismatch(
            format!("an output gradient of shape {:?}", x.shape()),
            format!("shape {:?}", dy.shape()),
        ));
    }
    let mut dx = if dy.is_standard_layout() {
        dy
    } else {
        dy.as_standard_layout().into_owned()
    };
    let zip = Zip::from(&mut dx).and(x);
    if x.len() >= PAR_THRESHOLD {
        zip.par_for_each(|d, &x| *d = f(x, *d));
    } else {
        zip.for_each(|d, &x| *d = f(x, *d));
    }
    Ok(dx)
}

/// A number option: absent gives `default`, `null` gives `None`.
fn number(cx: &BuildCx<'_>, key: &str, default: Option<f64>) -> Result<Option<f64>> {
    match cx.config.get(key) {
        None => Ok(default),
        Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::mismatch(format!("a number for `{key}`"), v)),
    }
}

/// A number option that must be ≥ 0 (`null` is an error, as in Keras).
fn non_negative(cx: &BuildCx<'_>, key: &str, default: f64) -> Result<f64> {
    match number(cx, key, Some(default))? {
        Some(v) if v >= 0.0 && v.is_finite() => Ok(v),
        Some(v) => Err(Error::mismatch(format!("a finite `{key}` >= 0"), v)),
        None => Err(Error::mismatch(
            format!("a number >= 0 for `{key}`"),
            "null",
        )),
    }
}

/// Shape of an element-wise layer's output: its single input's.
fn same_shape(inputs: &[Vec<usize>], class: &str) -> Result<Vec<usize>> {
    Ok(single_shape(inputs, class)?.to_vec())
}

// ---------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------

/// `keras.layers.ReLU`.
#[derive(Debug, Clone)]
pub struct Relu {
    /// `negative_slope` (Python float).
    negative_slope: f64,
    /// `max_value` (Python float), if any.
    max_value: Option<f64>,
    /// `threshold` (Python float).
    threshold: f64,
}

/// Builds `ReLU`.
pub fn build_relu(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    cx.input()?;
    let max_value = number(cx, "max_value", None)?;
    if let Some(m) = max_value
        && !(m >= 0.0 && m.is_finite())
    {
        return Err(Error::mismatch("a finite `max_value` >= 0 or null", m));
    }
    let negative_slope = non_negative(cx, "negative_slope", 0.0)?;
    let threshold = non_negative(cx, "threshold", 0.0)?;
    cx.take_vars(&[])?;
    Ok(Box::new(Relu {
        negative_slope,
        max_value,
        threshold,
    }))
}

impl Relu {
    /// Keras's `leaky_relu` shortcut (`s != 0`, no `max_value`, `t == 0`).
    fn leaky(&self) -> bool {
        self.negative_slope != 0.0 && self.max_value.is_none() && self.threshold == 0.0
    }

    /// `relu6` replaces `relu` and the clip (`t == 0`, `max_value == 6`).
    fn uses_relu6(&self) -> bool {
        self.threshold == 0.0 && self.max_value == Some(6.0)
    }

    /// The clip bound, when `clip(x₁, 0, max_value)` is applied.
    fn clip(&self) -> Option<f32> {
        match self.max_value {
            Some(m) if !self.uses_relu6() => Some(m as f32),
            _ => None,
        }
    }

    /// `x₁` before the clip, and whether its gradient passes.
    #[inline]
    fn base(&self, x: f32) -> (f32, bool) {
        if self.threshold != 0.0 {
            let t = self.threshold as f32;
            if x > t { (x, true) } else { (0.0, false) }
        } else if self.uses_relu6() {
            (relu6(x), x > 0.0 && x < 6.0)
        } else {
            (relu(x), x > 0.0)
        }
    }

    /// The argument of the negative part, `-x + t` (or `-x`).
    #[inline]
    fn negative_arg(&self, x: f32) -> f32 {
        if self.threshold != 0.0 {
            -x + self.threshold as f32
        } else {
            -x
        }
    }

    #[inline]
    fn value(&self, x: f32) -> f32 {
        let s = self.negative_slope as f32;
        if self.leaky() {
            return if x >= 0.0 { x } else { s * x };
        }
        let (mut x1, _) = self.base(x);
        if let Some(m) = self.clip() {
            // jnp.clip: minimum(max, maximum(min, x)).
            x1 = minimum(m, maximum(0.0, x1));
        }
        if self.negative_slope != 0.0 {
            x1 - s * relu(self.negative_arg(x))
        } else {
            x1
        }
    }

    #[inline]
    fn grad(&self, x: f32, g: f32) -> f32 {
        let s = self.negative_slope as f32;
        if self.leaky() {
            return if x >= 0.0 { g } else { s * g };
        }
        let (x1, passes) = self.base(x);
        let mut ct = g;
        if let Some(m) = self.clip() {
            let z = maximum(0.0, x1);
            let z2 = minimum(m, z);
            ct *= balanced_eq(z, z2, m);
            ct *= balanced_eq(x1, z, 0.0);
        }
        let main = if passes { ct } else { 0.0 };
        if self.negative_slope != 0.0 && self.negative_arg(x) > 0.0 {
            main + g * s
        } else {
            main
        }
    }
}

impl LayerOp for Relu {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        same_shape(inputs, "ReLU")
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "ReLU")?;
        Ok(Forward::plain(map(x, |v| self.value(v))))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "ReLU")?;
        Ok(Backward::inputs(vec![map_grad(x, dy, |x, g| {
            self.grad(x, g)
        })?]))
    }

    fn detail(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(m) = self.max_value {
            parts.push(format!("max_value={m}"));
        }
        if self.negative_slope != 0.0 {
            parts.push(format!("negative_slope={}", self.negative_slope));
        }
        if self.threshold != 0.0 {
            parts.push(format!("threshold={}", self.threshold));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// LeakyReLU
// ---------------------------------------------------------------------------

/// `keras.layers.LeakyReLU`.
#[derive(Debug, Clone)]
pub struct LeakyRelu {
    /// `negative_slope` (Python float).
    negative_slope: f64,
}

/// Builds `LeakyReLU`.
pub fn build_leaky_relu(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    cx.input()?;
    // `alpha` (deprecated) replaces `negative_slope` when present.
    let key = if cx.config.contains_key("alpha") {
        "alpha"
    } else {
        "negative_slope"
    };
    let negative_slope = non_negative(cx, key, 0.3)?;
    cx.take_vars(&[])?;
    Ok(Box::new(LeakyRelu { negative_slope }))
}

impl LayerOp for LeakyRelu {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        same_shape(inputs, "LeakyReLU")
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "LeakyReLU")?;
        let s = self.negative_slope as f32;
        Ok(Forward::plain(map(x, |v| if v >= 0.0 { v } else { s * v })))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "LeakyReLU")?;
        let s = self.negative_slope as f32;
        Ok(Backward::inputs(vec![map_grad(x, dy, |x, g| {
            if x >= 0.0 { g } else { s * g }
        })?]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!("negative_slope={}", self.negative_slope))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// PReLU
// ---------------------------------------------------------------------------

/// `keras.layers.PReLU`.
#[derive(Debug, Clone)]
pub struct Prelu {
    /// `shared_axes` as written.
    shared_axes: Option<Vec<i64>>,
    /// `alpha`, of the per-sample shape with the shared axes set to 1.
    vars: Vec<Var>,
}

/// Builds `PReLU`.
pub fn build_prelu(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?.to_vec();
    let shared_axes = match cx.get("shared_axes") {
        Value::Null => None,
        _ => Some(AxisOption::parse(cx, "shared_axes", 0)?.raw()),
    };
    // build: param_shape = list(input_shape[1:]); param_shape[i - 1] = 1,
    // with Python's indexing (negative indices count from the end).
    let mut param_shape = input.clone();
    let r = param_shape.len() as i64;
    for &i in shared_axes.iter().flatten() {
        let idx = i - 1;
        let idx = if idx < 0 { idx + r } else { idx };
        if !(0..r).contains(&idx) {
            return Err(Error::mismatch(
                format!("`shared_axes` within the input's axes 1..={}", input.len()),
                i,
            ));
        }
        param_shape[idx as usize] = 1;
    }
    checked_product(param_shape.iter().copied())?;
    let alpha = cx
        .take_vars(&[("alpha", param_shape)])?
        .pop()
        .expect("one variable taken");
    let mut var = Var::new("alpha", alpha);
    var.regularizer = cx.regularizer("alpha_regularizer")?;
    var.constraint = cx.constraint("alpha_constraint")?;
    Ok(Box::new(Prelu {
        shared_axes,
        vars: vec![var],
    }))
}

impl Prelu {
    fn alpha(&self) -> &ArrayD<f32> {
        &self.vars[0].value
    }

    /// Whether `alpha` broadcasts against a per-sample shape.
    fn fits(&self, s: &[usize]) -> bool {
        let a = self.alpha().shape();
        a.len() == s.len() && a.iter().zip(s).all(|(&a, &d)| a == d || a == 1)
    }

    fn check_input(&self, x: &ArrayD<f32>) -> Result<()> {
        if x.ndim() == 0 || !self.fits(&x.shape()[1..]) {
            return Err(Error::mismatch(
                format!(
                    "an input to which `alpha` of shape {:?} broadcasts",
                    self.alpha().shape()
                ),
                format!("shape {:?}", x.shape()),
            ));
        }
        Ok(())
    }
}

impl LayerOp for Prelu {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = single_shape(inputs, "PReLU")?;
        if !self.fits(s) {
            return Err(Error::mismatch(
                format!(
                    "an input to which `alpha` of shape {:?} broadcasts",
                    self.alpha().shape()
                ),
                keras_shape(s),
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
        let x = single(x, "PReLU")?;
        self.check_input(x)?;
        let alpha = self
            .alpha()
            .broadcast(x.shape())
            .ok_or_else(|| Error::invalid("`alpha` does not broadcast to the input"))?;
        let mut y = x.as_standard_layout().into_owned();
        // pos + neg with pos = relu(x), neg = -alpha * relu(-x).
        let zip = Zip::from(&mut y).and(&alpha);
        let f = |v: &mut f32, &a: &f32| *v = relu(*v) + -a * relu(-*v);
        if x.len() >= PAR_THRESHOLD {
            zip.par_for_each(f);
        } else {
            zip.for_each(f);
        }
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "PReLU")?;
        self.check_input(x)?;
        if dy.shape() != x.shape() {
            return Err(Error::mismatch(
                format!("an output gradient of shape {:?}", x.shape()),
                format!("shape {:?}", dy.shape()),
            ));
        }
        let alpha = self
            .alpha()
            .broadcast(x.shape())
            .ok_or_else(|| Error::invalid("`alpha` does not broadcast to the input"))?;
        // ct(-alpha) = dy * relu(-x), summed over the broadcast axes.
        let mut d_alpha: ArrayD<f64> = Zip::from(&dy)
            .and(x)
            .map_collect(|&g, &v| f64::from(g * relu(-v)));
        d_alpha = d_alpha.sum_axis(Axis(0));
        let a_shape = self.alpha().shape().to_vec();
        for (i, &a) in a_shape.iter().enumerate() {
            if a == 1 && d_alpha.shape()[i] != 1 {
                d_alpha = d_alpha.sum_axis(Axis(i)).insert_axis(Axis(i));
            }
        }
        let d_alpha = d_alpha.mapv(|v| -(v as f32));
        let mut dx = dy.as_standard_layout().into_owned();
        Zip::from(&mut dx).and(x).and(&alpha).for_each(|g, &v, &a| {
            let pos = if v > 0.0 { *g } else { 0.0 };
            let neg = if -v > 0.0 { -(-a * *g) } else { 0.0 };
            *g = pos + neg;
        });
        Ok(Backward {
            inputs: vec![dx],
            vars: vec![Some(
                d_alpha
                    .into_shape_with_order(IxDyn(&a_shape))
                    .map_err(|e| Error::invalid(e.to_string()))?,
            )],
        })
    }

    fn detail(&self) -> Option<String> {
        self.shared_axes
            .as_ref()
            .map(|s| format!("shared_axes={s:?}"))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// ELU
// ---------------------------------------------------------------------------

/// `keras.layers.ELU`.
#[derive(Debug, Clone)]
pub struct Elu {
    /// `alpha` (Python float).
    alpha: f64,
}

/// Builds `ELU`.
pub fn build_elu(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    cx.input()?;
    let alpha = match number(cx, "alpha", Some(1.0))? {
        Some(a) if a.is_finite() => a,
        Some(a) => return Err(Error::mismatch("a finite `alpha`", a)),
        None => return Err(Error::mismatch("a number for `alpha`", "null")),
    };
    cx.take_vars(&[])?;
    Ok(Box::new(Elu { alpha }))
}

impl LayerOp for Elu {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        same_shape(inputs, "ELU")
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "ELU")?;
        let a = self.alpha as f32;
        // where(x > 0, x, alpha * expm1(where(x > 0, 0, x))).
        Ok(Forward::plain(map(x, |v| {
            if v > 0.0 { v } else { a * v.exp_m1() }
        })))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = single(x, "ELU")?;
        let a = self.alpha as f32;
        // expm1's JVP: g * (expm1(x) + 1).
        Ok(Backward {
            inputs: vec![map_grad(x, dy, |x, g| {
                if x > 0.0 {
                    g
                } else {
                    (g * a) * (x.exp_m1() + 1.0)
                }
            })?],
            vars: Vec::new(),
        })
    }

    fn detail(&self) -> Option<String> {
        Some(format!("alpha={}", self.alpha))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// Softmax
// ---------------------------------------------------------------------------

/// `keras.layers.Softmax` (without a mask).
#[derive(Debug, Clone)]
pub struct Softmax {
    /// `axis` as written.
    axis_option: AxisOption,
    /// Axes of the batched tensor, ascending.
    axes: Vec<usize>,
    /// Several axes: Keras's `exp(x - logsumexp(x))` path.
    logsumexp: bool,
    /// Per-sample rank.
    rank: usize,
}

/// Per-row values Softmax keeps for its backward pass.
#[derive(Debug)]
struct SoftmaxSaved {
    /// The row maximum (`logsumexp`: replaced by 0 when not finite).
    max: Vec<f32>,
    /// `sum(exp(x - max))`.
    sum: Vec<f32>,
}

/// Builds `Softmax`.
pub fn build_softmax(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let axis_option = AxisOption::parse(cx, "axis", -1)?;
    let logsumexp = match &axis_option {
        AxisOption::List(l) if l.is_empty() => {
            // Keras indexes `self.axis[0]` and fails.
            return Err(Error::mismatch("at least one axis in `axis`", "[]"));
        }
        AxisOption::List(l) => l.len() > 1,
        AxisOption::One(_) => false,
    };
    let axes = axis_option.resolve(input.len() + 1, "axis")?;
    cx.take_vars(&[])?;
    Ok(Box::new(Softmax {
        axis_option,
        axes,
        logsumexp,
        rank: input.len(),
    }))
}

/// `jnp.max(row, initial=-inf)`, NaN-propagating.
fn row_max<'a>(row: impl Iterator<Item = &'a f32>) -> f32 {
    row.fold(f32::NEG_INFINITY, |m, &v| {
        if m.is_nan() || v.is_nan() {
            f32::NAN
        } else if v > m {
            v
        } else {
            m
        }
    })
}

impl LayerOp for Softmax {
    fn forward_masked(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&super::Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<Forward> {
        if masks.iter().any(Option::is_some) {
            // `keras/src/layers/activations/softmax.py` adds the mask to
            // the logits; not implemented.
            return Err(Error::unsupported(
                "Softmax input",
                "a masked input",
                &["unmasked inputs"],
            ));
        }
        self.forward(x, cx)
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = single_shape(inputs, "Softmax")?;
        if s.len() != self.rank {
            return Err(Error::mismatch(
                format!("an input of rank {}", self.rank + 1),
                keras_shape(s),
            ));
        }
        Ok(s.to_vec())
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = single(x, "Softmax")?;
        if x.ndim() != self.rank + 1 {
            return Err(Error::mismatch(
                format!("an input of rank {}", self.rank + 1),
                format!("shape {:?}", x.shape()),
            ));
        }
        let rows = Rows::new(x.shape(), &self.axes)?;
        let mut m = rows.gather(x)?;
        let mut saved = SoftmaxSaved {
            max: Vec::with_capacity(rows.rows),
            sum: Vec::with_capacity(rows.rows),
        };
        for mut row in m.rows_mut() {
            let mut max = row_max(row.iter());
            if self.logsumexp {
                // logsumexp: amax = stop_gradient(where(isfinite(amax), amax, 0));
                // out = log(|sum(exp(x - amax))|) + amax; y = exp(x - out).
                if !max.is_finite() {
                    max = 0.0;
                }
                let sum = sum_f32(row.iter().map(|&v| exp(v - max)));
                let lse = sum.abs().ln() + max;
                row.mapv_inplace(|v| exp(v - lse));
                saved.max.push(max);
                saved.sum.push(sum);
            } else {
                // _softmax_deprecated: unnormalized = exp(x - max);
                // unnormalized / sum(unnormalized).
                row.mapv_inplace(|v| exp(v - max));
                let sum = sum_f32(row.iter().copied());
                row.mapv_inplace(|u| u / sum);
                saved.max.push(max);
                saved.sum.push(sum);
            }
        }
        Ok(Forward {
            extra: Vec::new(),
            y: rows.scatter(m)?,
            saved: Some(Box::new(saved)),
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
        let x = single(x, "Softmax")?;
        let st = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<SoftmaxSaved>())
            .ok_or_else(|| {
                Error::invalid("`Softmax` backward called without the values of its forward pass")
            })?;
        let rows = Rows::new(x.shape(), &self.axes)?;
        if st.max.len() != rows.rows {
            return Err(Error::mismatch(
                format!("saved values for {} rows", rows.rows),
                st.max.len(),
            ));
        }
        let xm = rows.gather(x)?;
        let mut g = rows.gather(&dy)?;
        for (i, (xr, mut gr)) in xm.rows().into_iter().zip(g.rows_mut()).enumerate() {
            let (max, sum) = (st.max[i], st.sum[i]);
            if self.logsumexp {
                // y = exp(x - lse): ct(x) = dy * y; ct(lse) = -Σ dy * y;
                // lse = log(s) + amax: ct(s) = ct(lse) / s; ct(x) += ct(s) * e.
                let lse = sum.abs().ln() + max;
                let ct_z: Vec<f32> = xr
                    .iter()
                    .zip(gr.iter())
                    .map(|(&v, &d)| d * exp(v - lse))
                    .collect();
                let ct_s = -sum_f32(ct_z.iter().copied()) / sum.abs();
                for ((gv, &v), &cz) in gr.iter_mut().zip(xr).zip(&ct_z) {
                    *gv = cz + ct_s * exp(v - max);
                }
            } else {
                // y = u / s, u = exp(x - max) (max under stop_gradient):
                // ct(s) = Σ -dy * u * s⁻², ct(u) = dy / s + ct(s), ct(x) = ct(u) * u.
                let inv_sq = 1.0 / (sum * sum);
                let ct_s = sum_f32(
                    xr.iter()
                        .zip(gr.iter())
                        .map(|(&v, &d)| -d * exp(v - max) * inv_sq),
                );
                for (gv, &v) in gr.iter_mut().zip(xr) {
                    let u = exp(v - max);
                    *gv = (*gv / sum + ct_s) * u;
                }
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

    fn build(
        builder: Builder,
        class: &str,
        config: serde_json::Value,
        input: &[usize],
    ) -> Box<dyn LayerOp> {
        check::build(builder, class, config, &[input.to_vec()], &[])
    }

    fn build_err(
        builder: Builder,
        class: &str,
        config: serde_json::Value,
        input: &[usize],
        stored: &[(Vec<usize>, Vec<f32>)],
    ) -> String {
        let config = config.as_object().unwrap().clone();
        builder(&BuildCx {
            class_name: class,
            name: "test",
            config: &config,
            inputs: &[input.to_vec()],
            stored,
            vars_path: "layers/test/vars",
            group: None,
        })
        .expect_err("config is rejected")
        .to_string()
    }

    fn forward(op: &dyn LayerOp, x: &ArrayD<f32>) -> ArrayD<f32> {
        let mut rng = StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        op.forward(&[x], &mut cx).expect("forward").y
    }

    /// Forward values and backward gradients (for dy = 1) at `xs`.
    fn values_and_grads(op: &dyn LayerOp, xs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let x = ArrayD::from_shape_vec(IxDyn(&[1, xs.len()]), xs.to_vec()).unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let f = op.forward(&[&x], &mut cx).unwrap();
        let b = op
            .backward(&[&x], &f.y, &f.saved, ArrayD::ones(x.raw_dim()))
            .unwrap();
        (
            f.y.iter().copied().collect(),
            b.inputs[0].iter().copied().collect(),
        )
    }

    /// Smooth test points away from every kink of the options used (0, 1,
    /// 5, 6).
    fn smooth(shape: &[usize], seed: u64) -> ArrayD<f32> {
        check::values(shape, seed).mapv(|v| {
            let v = v * 4.0;
            let frac = v - v.round();
            if frac.abs() < 0.05 { v + 0.1 } else { v }
        }) + 1.5
    }

    fn assert_vec(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "got {got:?}, want {want:?}"
            );
        }
    }

    // ---- ReLU ---------------------------------------------------------------

    const KINKS: [f32; 8] = [-1.0, 0.0, 0.5, 1.0, 2.0, 5.0, 6.0, 7.0];

    #[test]
    fn relu_plain_values_and_gradient_at_zero() {
        // max(x, 0); jax's relu'(0) = 0.
        let op = build(build_relu, "ReLU", json!({}), &[8]);
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[0.0, 0.0, 0.5, 1.0, 2.0, 5.0, 6.0, 7.0]);
        assert_vec(&g, &[0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn relu_negative_slope_alone_is_leaky_relu() {
        // leaky_relu: where(x >= 0, x, 0.5 x): gradient 1 at 0.
        let op = build(build_relu, "ReLU", json!({"negative_slope": 0.5}), &[8]);
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[-0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 6.0, 7.0]);
        assert_vec(&g, &[0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn relu_max_value_clips_with_half_gradient_at_the_tie() {
        // relu then clip(0, 5): minimum's tie at 5 gives 1/2.
        let op = build(build_relu, "ReLU", json!({"max_value": 5.0}), &[8]);
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[0.0, 0.0, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]);
        assert_vec(&g, &[0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]);
    }

    #[test]
    fn relu_max_value_six_is_relu6_with_zero_gradient_at_six() {
        // max_value == 6 (an integer in the config too) takes jax's relu6.
        let op = build(build_relu, "ReLU", json!({"max_value": 6}), &[8]);
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[0.0, 0.0, 0.5, 1.0, 2.0, 5.0, 6.0, 6.0]);
        assert_vec(&g, &[0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn relu_max_value_and_slope() {
        // clip(relu(x), 0, 5) - 0.5 relu(-x): -1 → -0.5 (slope 1/2), 0 → 0
        // with gradient 0 (both relus), 5 → 5 with 1/2.
        let op = build(
            build_relu,
            "ReLU",
            json!({"max_value": 5.0, "negative_slope": 0.5}),
            &[8],
        );
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[-0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]);
        assert_vec(&g, &[0.5, 0.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]);
    }

    #[test]
    fn relu_threshold() {
        // where(x > 1, x, 0): 1 → 0 with gradient 0.
        let op = build(build_relu, "ReLU", json!({"threshold": 1.0}), &[8]);
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[0.0, 0.0, 0.0, 0.0, 2.0, 5.0, 6.0, 7.0]);
        assert_vec(&g, &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        // With slope 0.5 and max 5: below 1, -0.5 (1 - x): -1 → -1, 0 → -0.5,
        // 0.5 → -0.25, 1 → 0 (gradient 0: where and relu(0)); 5 → 5 (1/2).
        let op = build(
            build_relu,
            "ReLU",
            json!({"threshold": 1.0, "negative_slope": 0.5, "max_value": 5.0}),
            &[8],
        );
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[-1.0, -0.5, -0.25, 0.0, 2.0, 5.0, 5.0, 5.0]);
        assert_vec(&g, &[0.5, 0.5, 0.5, 0.0, 1.0, 0.5, 0.0, 0.0]);
        // max_value 0: everything 0, no gradient.
        let op = build(build_relu, "ReLU", json!({"max_value": 0.0}), &[8]);
        let (y, g) = values_and_grads(op.as_ref(), &KINKS);
        assert_vec(&y, &[0.0; 8]);
        assert_vec(&g, &[0.0; 8]);
    }

    #[test]
    fn relu_finite_differences() {
        let x = smooth(&[3, 5], 1) * 2.0 - 3.0;
        for config in [
            json!({}),
            json!({"negative_slope": 0.3}),
            json!({"max_value": 5.0, "negative_slope": 0.2}),
            json!({"max_value": 6.0}),
            json!({"threshold": 1.0, "negative_slope": 0.1, "max_value": 5.0}),
        ] {
            let op = build(build_relu, "ReLU", config, &[5]);
            check::gradients(op.as_ref(), std::slice::from_ref(&x), Mode::Training, 1e-2);
        }
    }

    #[test]
    fn relu_rejects_bad_configs() {
        let err = |c| build_err(build_relu, "ReLU", c, &[3], &[]);
        assert!(err(json!({"max_value": -1.0})).contains("max_value"));
        assert!(err(json!({"negative_slope": -0.1})).contains("negative_slope"));
        assert!(err(json!({"negative_slope": null})).contains("negative_slope"));
        assert!(err(json!({"threshold": -1})).contains("threshold"));
        assert!(err(json!({"threshold": "1"})).contains("a number for `threshold`"));
        assert!(
            build_err(build_relu, "ReLU", json!({}), &[3], &[(vec![1], vec![0.0])])
                .contains("0 variables")
        );
    }

    // ---- LeakyReLU ----------------------------------------------------------

    #[test]
    fn leaky_relu_values_default_and_alpha_key() {
        // Default slope 0.3; gradient 1 at 0 (where(x >= 0, ..)).
        let op = build(build_leaky_relu, "LeakyReLU", json!({}), &[3]);
        let (y, g) = values_and_grads(op.as_ref(), &[-2.0, 0.0, 3.0]);
        assert_vec(&y, &[-0.6, 0.0, 3.0]);
        assert_vec(&g, &[0.3, 1.0, 1.0]);
        // The deprecated `alpha` wins over `negative_slope`, as in Keras.
        let op = build(
            build_leaky_relu,
            "LeakyReLU",
            json!({"alpha": 0.5, "negative_slope": 0.1}),
            &[3],
        );
        let (y, _) = values_and_grads(op.as_ref(), &[-2.0, 0.0, 3.0]);
        assert_vec(&y, &[-1.0, 0.0, 3.0]);
        let x = smooth(&[2, 3, 2], 2) - 1.5;
        check::gradients(op.as_ref(), &[x], Mode::Training, 1e-2);
    }

    #[test]
    fn leaky_relu_rejects_bad_configs() {
        let err = |c| build_err(build_leaky_relu, "LeakyReLU", c, &[3], &[]);
        assert!(err(json!({"negative_slope": -0.2})).contains("negative_slope"));
        assert!(err(json!({"alpha": null})).contains("alpha"));
        assert!(err(json!({"negative_slope": [1]})).contains("a number"));
    }

    // ---- PReLU --------------------------------------------------------------

    #[test]
    fn prelu_values_shared_axes_and_gradients() {
        // Input (2, 3) per sample, shared_axes [1]: alpha shape (1, 3).
        // x = [[-2, 1, -4], [3, -1, 0]], alpha [0.5, 2, 0.25]:
        // y = [[-1, 1, -1], [3, -2, 0]].
        let op = check::build(
            build_prelu,
            "PReLU",
            json!({"shared_axes": [1]}),
            &[vec![2, 3]],
            &[(vec![1, 3], vec![0.5, 2.0, 0.25])],
        );
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2, 3]), vec![-2.0, 1.0, -4.0, 3.0, -1.0, 0.0])
            .unwrap();
        let y = forward(op.as_ref(), &x);
        assert_vec(y.as_slice().unwrap(), &[-1.0, 1.0, -1.0, 3.0, -2.0, 0.0]);
        // dy = 1: dx = 1 (x > 0), alpha (x < 0), 0 at 0 (both relus);
        // d_alpha = Σ over the shared axis and batch of x where x < 0:
        // column 0: -2, column 1: -1, column 2: -4.
        let mut rng = StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Training,
            rng: &mut rng,
        };
        let f = op.forward(&[&x], &mut cx).unwrap();
        let b = op
            .backward(&[&x], &f.y, &f.saved, ArrayD::ones(x.raw_dim()))
            .unwrap();
        assert_vec(
            b.inputs[0].as_slice().unwrap(),
            &[0.5, 1.0, 0.25, 1.0, 2.0, 0.0],
        );
        let da = b.vars[0].as_ref().unwrap();
        assert_eq!(da.shape(), &[1, 3]);
        assert_vec(da.as_slice().unwrap(), &[-2.0, -1.0, -4.0]);
        let xs = smooth(&[3, 2, 3], 3) - 1.5;
        check::gradients(op.as_ref(), &[xs], Mode::Training, 1e-2);
        // Unshared alpha of the full per-sample shape.
        let full = check::build(
            build_prelu,
            "PReLU",
            json!({"alpha_regularizer": {"class_name": "L1", "config": {"l1": 0.1}}}),
            &[vec![4]],
            &[(vec![4], vec![0.1, 0.2, -0.3, 0.4])],
        );
        assert!(full.vars()[0].regularizer.is_some());
        let xs = smooth(&[3, 4], 4) - 1.5;
        check::gradients(full.as_ref(), &[xs], Mode::Training, 1e-2);
    }

    #[test]
    fn prelu_shared_axes_index_like_keras() {
        // Keras sets param_shape[i - 1] = 1 with Python indexing: for a
        // (2, 3, 4) input, shared_axes [-1] is param_shape[-2] (axis 2 of the
        // batched tensor) and 0 is param_shape[-1].
        let shape = |shared: serde_json::Value, alpha: Vec<usize>| {
            let n = alpha.iter().product();
            let op = check::build(
                build_prelu,
                "PReLU",
                json!({ "shared_axes": shared }),
                &[vec![2, 3, 4]],
                &[(alpha, vec![0.0; n])],
            );
            op.vars()[0].value.shape().to_vec()
        };
        assert_eq!(shape(json!([1, 2]), vec![1, 1, 4]), [1, 1, 4]);
        assert_eq!(shape(json!(3), vec![2, 3, 1]), [2, 3, 1]);
        assert_eq!(shape(json!([-1]), vec![2, 1, 4]), [2, 1, 4]);
        assert_eq!(shape(json!([0]), vec![2, 3, 1]), [2, 3, 1]);
        assert_eq!(shape(json!(null), vec![2, 3, 4]), [2, 3, 4]);
    }

    #[test]
    fn prelu_rejects_bad_configs() {
        let alpha = [(vec![3], vec![0.0; 3])];
        let err =
            |c, stored: &[(Vec<usize>, Vec<f32>)]| build_err(build_prelu, "PReLU", c, &[3], stored);
        assert!(err(json!({"shared_axes": [2]}), &alpha).contains("shared_axes"));
        assert!(err(json!({"shared_axes": [-1]}), &alpha).contains("shared_axes"));
        assert!(err(json!({"shared_axes": "x"}), &alpha).contains("integer"));
        assert!(err(json!({}), &[]).contains("1 variables"));
        assert!(err(json!({"shared_axes": [1]}), &alpha).contains("alpha of shape [1]"));
        assert!(
            err(json!({"alpha_constraint": {"class_name": "Bogus"}}), &alpha).contains("Bogus")
        );
        let op = check::build(build_prelu, "PReLU", json!({}), &[vec![3]], &alpha);
        assert!(op.output_shape(&[vec![4]]).is_err());
        assert_eq!(op.output_shape(&[vec![3]]).unwrap(), [3]);
    }

    // ---- ELU ----------------------------------------------------------------

    #[test]
    fn elu_values_and_gradients() {
        // alpha 0.5: x ≤ 0 → 0.5 (e^x - 1), gradient 0.5 e^x (0.5 at 0).
        let op = build(build_elu, "ELU", json!({"alpha": 0.5}), &[3]);
        let (y, g) = values_and_grads(op.as_ref(), &[-1.0, 0.0, 2.0]);
        let e = (-1.0f32).exp();
        assert_vec(&y, &[0.5 * (e - 1.0), 0.0, 2.0]);
        assert_vec(&g, &[0.5 * e, 0.5, 1.0]);
        // Keras's get_config omits alpha: default 1.
        let op = build(build_elu, "ELU", json!({}), &[3]);
        let (y, _) = values_and_grads(op.as_ref(), &[-1.0, 0.0, 2.0]);
        assert_vec(&y, &[e - 1.0, 0.0, 2.0]);
        let x = smooth(&[3, 4], 5) - 1.5;
        check::gradients(op.as_ref(), &[x], Mode::Training, 1e-2);
        assert!(build_err(build_elu, "ELU", json!({"alpha": "a"}), &[3], &[]).contains("alpha"));
        assert!(build_err(build_elu, "ELU", json!({"alpha": null}), &[3], &[]).contains("alpha"));
    }

    // ---- Softmax ------------------------------------------------------------

    #[test]
    fn softmax_values_by_hand() {
        // [0, ln 3] → [1/4, 3/4]; [ln 2, ln 2] → [1/2, 1/2].
        let l3 = 3f32.ln();
        let l2 = 2f32.ln();
        let op = build(build_softmax, "Softmax", json!({}), &[2]);
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.0, l3, l2, l2]).unwrap();
        assert_vec(
            forward(op.as_ref(), &x).as_slice().unwrap(),
            &[0.25, 0.75, 0.5, 0.5],
        );
        // axis 1 of a [1, 2, 2] input: columns [0, ln 3] and [ln 2, ln 2].
        let op = build(build_softmax, "Softmax", json!({"axis": [1]}), &[2, 2]);
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2, 2]), vec![0.0, l2, l3, l2]).unwrap();
        assert_vec(
            forward(op.as_ref(), &x).as_slice().unwrap(),
            &[0.25, 0.5, 0.75, 0.5],
        );
        // Over both axes: [0, ln 3, 0, ln 3] → [1/8, 3/8, 1/8, 3/8].
        let op = build(build_softmax, "Softmax", json!({"axis": [-1, 1]}), &[2, 2]);
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2, 2]), vec![0.0, l3, 0.0, l3]).unwrap();
        let y = forward(op.as_ref(), &x);
        assert_vec(y.as_slice().unwrap(), &[0.125, 0.375, 0.125, 0.375]);
        // Large logits do not overflow.
        let op = build(build_softmax, "Softmax", json!({}), &[2]);
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![1000.0, 1000.0]).unwrap();
        assert_vec(forward(op.as_ref(), &x).as_slice().unwrap(), &[0.5, 0.5]);
    }

    #[test]
    fn softmax_finite_differences() {
        let x = check::values(&[2, 3, 4], 6) * 2.0;
        for axis in [
            json!(-1),
            json!(1),
            json!([2]),
            json!([1, 2]),
            json!([2, 1]),
        ] {
            let op = build(build_softmax, "Softmax", json!({ "axis": axis }), &[3, 4]);
            check::gradients(op.as_ref(), std::slice::from_ref(&x), Mode::Inference, 1e-2);
        }
    }

    #[test]
    fn softmax_rejects_bad_configs() {
        let err = |c| build_err(build_softmax, "Softmax", c, &[3], &[]);
        assert!(err(json!({"axis": []})).contains("at least one axis"));
        assert!(err(json!({"axis": 2})).contains("rank 2"));
        assert!(err(json!({"axis": [1, -1]})).contains("distinct"));
        assert!(err(json!({"axis": 1.5})).contains("integer"));
        let op = build(build_softmax, "Softmax", json!({}), &[3]);
        assert!(op.output_shape(&[vec![3, 1]]).is_err());
        assert!(op.output_shape(&[vec![3], vec![3]]).is_err());
    }
}
