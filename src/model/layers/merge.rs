//! Merging layers: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`,
//! `Minimum`, `Concatenate`, `Dot`.
//!
//! Spec: `keras/src/layers/merging/base_merge.py` (inputs of one rank
//! whose axes agree or are 1 broadcast as the backend ops do; Keras's
//! reshaping of inputs of different ranks is refused with a clear error), `add.py`, `subtract.py`, `multiply.py`, `average.py` (the sum in
//! input order, then `/ len(inputs)`), `maximum.py`, `minimum.py`
//! (`ops.maximum(output, inputs[i])` in input order; JAX gives a tie half
//! the gradient on each side), `concatenate.py`, `dot.py` (`batch_dot` after
//! an optional `normalize`, see [`l2_normalize`]).

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, resolve_axis};
use crate::error::{Error, Result};

/// Which elementwise merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOp {
    /// Sum.
    Add,
    /// `a - b` (two inputs).
    Subtract,
    /// Product.
    Multiply,
    /// Sum divided by the number of inputs.
    Average,
    /// Elementwise maximum.
    Maximum,
    /// Elementwise minimum.
    Minimum,
}

/// The OR of masks of one shape; an input without a mask counts as all
/// true when `missing_true`, else makes the result `None`.
fn or_masks(masks: &[Option<&super::Mask>], missing_true: bool) -> Result<Option<super::Mask>> {
    let Some(first) = masks.iter().flatten().next() else {
        return Ok(None);
    };
    if masks.iter().any(Option::is_none) {
        return Ok(missing_true.then(|| super::Mask::from_elem(first.raw_dim(), true)));
    }
    let mut out = (*first).clone();
    for m in masks.iter().flatten().skip(1) {
        if m.shape() != out.shape() {
            return Err(Error::mismatch(
                format!("input masks of shape {:?}", out.shape()),
                format!("{:?}", m.shape()),
            ));
        }
        ndarray::Zip::from(&mut out)
            .and(*m)
            .for_each(|a, &b| *a |= b);
    }
    Ok(Some(out))
}

/// An elementwise merge of inputs of one shape.
#[derive(Debug, Clone)]
pub struct Merge {
    op: MergeOp,
}

/// Builder of the elementwise merges.
pub fn build(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let op = match cx.class_name {
        "Add" => MergeOp::Add,
        "Subtract" => MergeOp::Subtract,
        "Multiply" => MergeOp::Multiply,
        "Average" => MergeOp::Average,
        "Maximum" => MergeOp::Maximum,
        "Minimum" => MergeOp::Minimum,
        other => return Err(Error::invalid(format!("`{other}` is not a merge layer"))),
    };
    let layer = Merge { op };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

/// The output shape of an elementwise merge: inputs of one rank whose
/// axes agree or are 1 (broadcast, as `ops.add`/`ops.multiply` do in
/// Keras's merge loop; squeeze-and-excitation multiplies `[h, w, c]` by
/// `[1, 1, c]`).
fn same_shapes(class: &str, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
    let first = inputs
        .first()
        .ok_or_else(|| Error::mismatch(format!("at least 2 inputs for `{class}`"), 0))?;
    if inputs.len() < 2 {
        return Err(Error::mismatch(
            format!("at least 2 inputs for `{class}`"),
            inputs.len(),
        ));
    }
    let mut out = first.clone();
    for other in &inputs[1..] {
        if other.len() != out.len() {
            return Err(Error::unsupported(
                "merge of different ranks",
                format!("`{class}` of {first:?} and {other:?}"),
                &["inputs of one rank (axes equal or 1)"],
            ));
        }
        for (o, &d) in out.iter_mut().zip(other) {
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(Error::mismatch(
                    format!("inputs of `{class}` whose axes agree or are 1"),
                    format!("{first:?} and {other:?}"),
                ));
            }
        }
    }
    Ok(out)
}

/// The inputs broadcast to `shape` (copies only for those that differ).
fn broadcast_all<'a>(
    x: &[&'a ArrayD<f32>],
    shape: &[usize],
) -> Result<Vec<ndarray::CowArray<'a, f32, IxDyn>>> {
    x.iter()
        .map(|a| {
            if a.shape() == shape {
                Ok(ndarray::CowArray::from(a.view()))
            } else {
                a.broadcast(IxDyn(shape))
                    .map(|b| ndarray::CowArray::from(b.to_owned()))
                    .ok_or_else(|| {
                        Error::mismatch(
                            format!("an input broadcastable to {shape:?}"),
                            format!("{:?}", a.shape()),
                        )
                    })
            }
        })
        .collect()
}

/// A gradient at the broadcast shape summed back to an input's shape.
fn reduce_to(g: ArrayD<f32>, shape: &[usize]) -> ArrayD<f32> {
    if g.shape() == shape {
        return g;
    }
    let mut g = g;
    for (axis, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[axis] != 1 {
            g = g.sum_axis(Axis(axis)).insert_axis(Axis(axis));
        }
    }
    g
}

impl Merge {
    fn class(&self) -> &'static str {
        match self.op {
            MergeOp::Add => "Add",
            MergeOp::Subtract => "Subtract",
            MergeOp::Multiply => "Multiply",
            MergeOp::Average => "Average",
            MergeOp::Maximum => "Maximum",
            MergeOp::Minimum => "Minimum",
        }
    }

    /// The running value after each input (`partial[i]` = merge of inputs
    /// 0..=i), as Keras's loop computes it.
    fn partials(&self, x: &[&ArrayD<f32>]) -> Vec<ArrayD<f32>> {
        let mut out: Vec<ArrayD<f32>> = Vec::with_capacity(x.len());
        let mut acc = x[0].clone();
        out.push(acc.clone());
        for xi in &x[1..] {
            match self.op {
                MergeOp::Add | MergeOp::Average => acc += *xi,
                MergeOp::Subtract => acc -= *xi,
                MergeOp::Multiply => acc *= *xi,
                MergeOp::Maximum => Zip::from(&mut acc).and(*xi).for_each(|a, &b| {
                    *a = max_f32(*a, b);
                }),
                MergeOp::Minimum => Zip::from(&mut acc).and(*xi).for_each(|a, &b| {
                    *a = min_f32(*a, b);
                }),
            }
            out.push(acc.clone());
        }
        out
    }
}

/// `jnp.maximum`: NaN propagates.
fn max_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a >= b {
        a
    } else {
        b
    }
}

fn min_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a <= b {
        a
    } else {
        b
    }
}

impl LayerOp for Merge {
    /// `keras/src/layers/merging/base_merge.py` `compute_mask`: the OR of
    /// the inputs' masks, none if any input has none. Maximum and Minimum
    /// also use the masks in the values (`_apply_merge_op_and_or_mask`),
    /// which is not implemented: they refuse masked inputs.
    fn compute_mask(
        &self,
        _x: &[&ArrayD<f32>],
        masks: &[Option<&super::Mask>],
    ) -> Result<Vec<Option<super::Mask>>> {
        if matches!(self.op, MergeOp::Maximum | MergeOp::Minimum)
            && masks.iter().any(Option::is_some)
        {
            return Err(Error::unsupported(
                "Maximum/Minimum input",
                "a masked input",
                &["unmasked inputs"],
            ));
        }
        Ok(vec![or_masks(masks, false)?])
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        if self.op == MergeOp::Subtract && inputs.len() != 2 {
            return Err(Error::mismatch(
                "exactly 2 inputs for `Subtract`",
                inputs.len(),
            ));
        }
        same_shapes(self.class(), inputs)
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let shapes: Vec<Vec<usize>> = x.iter().map(|a| a.shape().to_vec()).collect();
        let shape = same_shapes(self.class(), &shapes)?;
        let full = broadcast_all(x, &shape)?;
        let owned: Vec<ArrayD<f32>>;
        let refs: Vec<&ArrayD<f32>> = if full.iter().all(|c| c.is_view()) {
            x.to_vec()
        } else {
            owned = full.into_iter().map(|c| c.into_owned()).collect();
            owned.iter().collect()
        };
        let x = &refs[..];
        let mut y = self.partials(x).pop().expect("at least one input");
        if self.op == MergeOp::Average {
            let n = x.len() as f32;
            y.mapv_inplace(|v| v / n);
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
        let shapes: Vec<Vec<usize>> = x.iter().map(|a| a.shape().to_vec()).collect();
        let full = broadcast_all(x, dy.shape())?;
        let owned: Vec<ArrayD<f32>>;
        let refs: Vec<&ArrayD<f32>> = if full.iter().all(|c| c.is_view()) {
            x.to_vec()
        } else {
            owned = full.into_iter().map(|c| c.into_owned()).collect();
            owned.iter().collect()
        };
        let x = &refs[..];
        let inputs = match self.op {
            MergeOp::Add => vec![dy; x.len()],
            MergeOp::Subtract => vec![dy.clone(), -dy],
            MergeOp::Average => {
                let n = x.len() as f32;
                vec![dy.mapv(|g| g / n); x.len()]
            }
            MergeOp::Multiply => {
                // d/dx_i of a left-to-right product: the product of all the
                // other inputs (computed as prefix · suffix).
                let partials = self.partials(x);
                let mut grads = vec![ArrayD::zeros(dy.raw_dim()); x.len()];
                let mut suffix = dy;
                for i in (0..x.len()).rev() {
                    grads[i] = if i == 0 {
                        suffix.clone()
                    } else {
                        &suffix * &partials[i - 1]
                    };
                    if i > 0 {
                        suffix = &suffix * x[i];
                    }
                }
                grads
            }
            MergeOp::Maximum | MergeOp::Minimum => {
                let partials = self.partials(x);
                let mut grads = vec![ArrayD::zeros(dy.raw_dim()); x.len()];
                let mut g = dy;
                let wins = |a: f32, b: f32| {
                    if self.op == MergeOp::Maximum {
                        a > b
                    } else {
                        a < b
                    }
                };
                for i in (1..x.len()).rev() {
                    let mut to_prev = ArrayD::zeros(g.raw_dim());
                    let mut to_x = ArrayD::zeros(g.raw_dim());
                    Zip::from(&mut to_prev)
                        .and(&mut to_x)
                        .and(&g)
                        .and(&partials[i - 1])
                        .and(x[i])
                        .for_each(|p, q, &g, &a, &b| {
                            if a == b {
                                *p = g * 0.5;
                                *q = g * 0.5;
                            } else if wins(a, b) {
                                *p = g;
                            } else {
                                *q = g;
                            }
                        });
                    grads[i] = to_x;
                    g = to_prev;
                }
                grads[0] = g;
                grads
            }
        };
        let inputs = inputs
            .into_iter()
            .zip(&shapes)
            .map(|(g, s)| reduce_to(g, s))
            .collect();
        Ok(Backward::inputs(inputs))
    }

    crate::clone_box!();
}

/// `Concatenate(axis)`.
#[derive(Debug, Clone)]
pub struct Concatenate {
    axis: i64,
}

/// Builder of `Concatenate`.
pub fn build_concatenate(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let layer = Concatenate {
        axis: cx.i64_or("axis", -1)?,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl Concatenate {
    /// The concatenation axis as an index into a batched tensor.
    fn batched_axis(&self, rank: usize) -> Result<usize> {
        let a = resolve_axis(self.axis, rank + 1, "axis")?;
        if a == 0 {
            return Err(Error::unsupported(
                "Concatenate axis",
                "0 (the batch axis)",
                &["a feature axis"],
            ));
        }
        Ok(a)
    }
}

impl LayerOp for Concatenate {
    /// `keras/src/layers/merging/concatenate.py` `compute_mask`: masks of
    /// the inputs (all-true for unmasked ones) concatenated and reduced
    /// with `any` over the last axis: on the last axis, their OR.
    fn compute_mask(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&super::Mask>],
    ) -> Result<Vec<Option<super::Mask>>> {
        if masks.iter().all(Option::is_none) {
            return Ok(vec![None]);
        }
        let rank = x.first().map_or(1, |t| t.ndim());
        if self.batched_axis(rank.saturating_sub(1))? + 1 != rank {
            return Err(Error::unsupported(
                "masked Concatenate",
                format!("axis {}", self.axis),
                &["the last axis"],
            ));
        }
        Ok(vec![or_masks(masks, true)?])
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let first = inputs
            .first()
            .ok_or_else(|| Error::mismatch("at least 1 input for `Concatenate`", 0))?;
        let a = self.batched_axis(first.len())? - 1;
        let mut out = first.clone();
        out[a] = 0;
        for s in inputs {
            let same_rest = s.len() == first.len()
                && s.iter()
                    .zip(first)
                    .enumerate()
                    .all(|(i, (p, q))| i == a || p == q);
            if !same_rest {
                return Err(Error::mismatch(
                    format!("inputs matching {first:?} except on axis {}", self.axis),
                    format!("{s:?}"),
                ));
            }
            out[a] = out[a]
                .checked_add(s[a])
                .ok_or_else(|| Error::limit("max_dim", "concatenated size"))?;
        }
        Ok(out)
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let a = self.batched_axis(x[0].ndim() - 1)?;
        let views: Vec<_> = x.iter().map(|v| v.view()).collect();
        let y = ndarray::concatenate(Axis(a), &views).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let a = self.batched_axis(x[0].ndim() - 1)?;
        let mut start = 0;
        let inputs = x
            .iter()
            .map(|xi| {
                let w = xi.shape()[a];
                let part = dy.slice_axis(Axis(a), (start..start + w).into()).to_owned();
                start += w;
                part
            })
            .collect();
        Ok(Backward::inputs(inputs))
    }

    fn detail(&self) -> Option<String> {
        Some(format!("axis={}", self.axis))
    }

    crate::clone_box!();
}

/// `Dot(axes, normalize)`: `batch_dot` of two inputs.
#[derive(Debug, Clone)]
pub struct Dot {
    axes: [i64; 2],
    normalize: bool,
}

/// Builder of `Dot`.
pub fn build_dot(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let axes = match cx.get("axes") {
        serde_json::Value::Number(n) => {
            let a = n
                .as_i64()
                .ok_or_else(|| Error::mismatch("integer `axes`", n))?;
            [a, a]
        }
        serde_json::Value::Array(list) if list.len() == 2 => {
            let mut out = [0i64; 2];
            for (o, v) in out.iter_mut().zip(list) {
                *o = v
                    .as_i64()
                    .ok_or_else(|| Error::mismatch("integer `axes`", v))?;
            }
            out
        }
        other => return Err(Error::mismatch("`axes` as an integer or a pair", other)),
    };
    let layer = Dot {
        axes,
        normalize: cx.bool_or("normalize", false)?,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

/// `keras.ops.normalize(x, axis, order=2)` (`keras/src/ops/nn.py`
/// `_normalize`): `x * min(rsqrt(Σx²), 1 / ε)` with ε = `backend.epsilon()`.
/// Returns the output and the factor.
fn l2_normalize(x: &ArrayD<f32>, axis: usize) -> (ArrayD<f32>, ArrayD<f32>) {
    let sq = x
        .mapv(|v| v * v)
        .sum_axis(Axis(axis))
        .insert_axis(Axis(axis));
    let inv = sq.mapv(|s| crate::engine::schedule::xla_rsqrt(s).min(1.0 / NORMALIZE_EPSILON));
    (x * &inv, inv)
}

/// `backend.epsilon()`.
const NORMALIZE_EPSILON: f32 = 1e-7;

/// Gradient of `l2_normalize` along `axis` given the output gradient `g`.
fn l2_normalize_backward(
    x: &ArrayD<f32>,
    inv: &ArrayD<f32>,
    g: &ArrayD<f32>,
    axis: usize,
) -> ArrayD<f32> {
    // y = x · r, r = rsqrt(s), dr/dx = -x · r³ (where the cap is not active).
    let dot = (g * x).sum_axis(Axis(axis)).insert_axis(Axis(axis));
    let coef = Zip::from(&dot).and(inv).map_collect(|&d, &r| {
        if r < 1.0 / NORMALIZE_EPSILON {
            d * r * r * r
        } else {
            0.0
        }
    });
    let mut out = g * inv;
    out -= &(x * &coef);
    out
}

impl Dot {
    /// Resolved axes (indices into batched tensors of the given ranks).
    fn resolved(&self, r1: usize, r2: usize) -> Result<[usize; 2]> {
        let a = resolve_axis(self.axes[0], r1, "axes")?;
        let b = resolve_axis(self.axes[1], r2, "axes")?;
        if a == 0 || b == 0 {
            return Err(Error::unsupported(
                "Dot axes",
                "the batch axis",
                &["feature axes"],
            ));
        }
        Ok([a, b])
    }

    /// `batch_dot(x1, x2, axes)` for batched tensors of rank 2 or 3.
    fn batch_dot(x1: &ArrayD<f32>, x2: &ArrayD<f32>, [a, b]: [usize; 2]) -> ArrayD<f32> {
        // Move the contracted axis last on x1 and first (after batch) on x2:
        // y[n, i, j] = Σ_k x1[n, i, k] · x2[n, k, j].
        let n = x1.shape()[0];
        let p1 = moved_last(x1, a);
        let p2 = moved_first(x2, b);
        let (i, k) = (
            p1.len() / n / p1.shape()[p1.ndim() - 1],
            p1.shape()[p1.ndim() - 1],
        );
        let j = p2.len() / n / k;
        let p1 = p1.into_shape_with_order((n, i, k)).expect("contiguous");
        let p2 = p2.into_shape_with_order((n, k, j)).expect("contiguous");
        let mut y = ndarray::Array3::<f32>::zeros((n, i, j));
        for s in 0..n {
            let prod = p1.index_axis(Axis(0), s).dot(&p2.index_axis(Axis(0), s));
            y.index_axis_mut(Axis(0), s).assign(&prod);
        }
        let mut shape = vec![n];
        shape.extend(
            x1.shape()
                .iter()
                .enumerate()
                .skip(1)
                .filter(|&(d, _)| d != a)
                .map(|(_, &s)| s),
        );
        shape.extend(
            x2.shape()
                .iter()
                .enumerate()
                .skip(1)
                .filter(|&(d, _)| d != b)
                .map(|(_, &s)| s),
        );
        if shape.len() == 1 {
            shape.push(1);
        }
        y.into_dyn()
            .into_shape_with_order(IxDyn(&shape))
            .expect("same element count")
    }
}

/// `x` with axis `a` moved to the end, in standard layout.
fn moved_last(x: &ArrayD<f32>, a: usize) -> ArrayD<f32> {
    let mut order: Vec<usize> = (0..x.ndim()).filter(|&d| d != a).collect();
    order.push(a);
    x.view()
        .permuted_axes(IxDyn(&order))
        .as_standard_layout()
        .into_owned()
}

/// `x` with axis `a` moved right after the batch axis, in standard layout.
fn moved_first(x: &ArrayD<f32>, a: usize) -> ArrayD<f32> {
    let mut order = vec![0, a];
    order.extend((1..x.ndim()).filter(|&d| d != a));
    x.view()
        .permuted_axes(IxDyn(&order))
        .as_standard_layout()
        .into_owned()
}

impl LayerOp for Dot {
    fn supports_masking(&self) -> bool {
        // `keras/src/layers/merging/dot.py`: `compute_mask` returns None.
        false
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let [s1, s2] = inputs else {
            return Err(Error::mismatch("exactly 2 inputs for `Dot`", inputs.len()));
        };
        if s1.len() > 2 || s2.len() > 2 {
            return Err(Error::unsupported(
                "Dot input rank",
                format!("{s1:?} and {s2:?}"),
                &["inputs of shape (N, d) or (N, a, d)"],
            ));
        }
        let [a, b] = self.resolved(s1.len() + 1, s2.len() + 1)?;
        if s1[a - 1] != s2[b - 1] {
            return Err(Error::mismatch(
                format!("equal sizes on the dot axes of {s1:?} and {s2:?}"),
                format!("{} and {}", s1[a - 1], s2[b - 1]),
            ));
        }
        let mut out: Vec<usize> = s1
            .iter()
            .enumerate()
            .filter(|&(d, _)| d != a - 1)
            .map(|(_, &s)| s)
            .collect();
        out.extend(
            s2.iter()
                .enumerate()
                .filter(|&(d, _)| d != b - 1)
                .map(|(_, &s)| s),
        );
        if out.is_empty() {
            out.push(1);
        }
        Ok(out)
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let axes = self.resolved(x[0].ndim(), x[1].ndim())?;
        let (x1, x2) = if self.normalize {
            (l2_normalize(x[0], axes[0]).0, l2_normalize(x[1], axes[1]).0)
        } else {
            (x[0].clone(), x[1].clone())
        };
        Ok(Forward::plain(Dot::batch_dot(&x1, &x2, axes)))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let [a, b] = self.resolved(x[0].ndim(), x[1].ndim())?;
        let (x1, n1) = if self.normalize {
            let (v, n) = l2_normalize(x[0], a);
            (v, Some(n))
        } else {
            (x[0].clone(), None)
        };
        let (x2, n2) = if self.normalize {
            let (v, n) = l2_normalize(x[1], b);
            (v, Some(n))
        } else {
            (x[1].clone(), None)
        };
        let n = x1.shape()[0];
        let p1 = moved_last(&x1, a);
        let p2 = moved_first(&x2, b);
        let k = p1.shape()[p1.ndim() - 1];
        let i = p1.len() / n / k;
        let j = p2.len() / n / k;
        let p1m = p1
            .clone()
            .into_shape_with_order((n, i, k))
            .expect("contiguous");
        let p2m = p2
            .clone()
            .into_shape_with_order((n, k, j))
            .expect("contiguous");
        let g = dy
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((n, i, j))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let mut d1 = ndarray::Array3::<f32>::zeros((n, i, k));
        let mut d2 = ndarray::Array3::<f32>::zeros((n, k, j));
        for s in 0..n {
            let gs = g.index_axis(Axis(0), s);
            d1.index_axis_mut(Axis(0), s)
                .assign(&gs.dot(&p2m.index_axis(Axis(0), s).t()));
            d2.index_axis_mut(Axis(0), s)
                .assign(&p1m.index_axis(Axis(0), s).t().dot(&gs));
        }
        // Undo the axis moves.
        let d1 = d1
            .into_dyn()
            .into_shape_with_order(IxDyn(p1.shape()))
            .expect("same count");
        let d2 = d2
            .into_dyn()
            .into_shape_with_order(IxDyn(p2.shape()))
            .expect("same count");
        let mut back1: Vec<usize> = vec![0; x1.ndim()];
        let mut order1: Vec<usize> = (0..x1.ndim()).filter(|&d| d != a).collect();
        order1.push(a);
        for (pos, &orig) in order1.iter().enumerate() {
            back1[orig] = pos;
        }
        let mut order2 = vec![0, b];
        order2.extend((1..x2.ndim()).filter(|&d| d != b));
        let mut back2: Vec<usize> = vec![0; x2.ndim()];
        for (pos, &orig) in order2.iter().enumerate() {
            back2[orig] = pos;
        }
        let mut g1 = d1
            .permuted_axes(IxDyn(&back1))
            .as_standard_layout()
            .into_owned();
        let mut g2 = d2
            .permuted_axes(IxDyn(&back2))
            .as_standard_layout()
            .into_owned();
        if let (Some(n1), Some(n2)) = (n1, n2) {
            g1 = l2_normalize_backward(x[0], &n1, &g1, a);
            g2 = l2_normalize_backward(x[1], &n2, &g2, b);
        }
        Ok(Backward::inputs(vec![g1, g2]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!(
            "axes=({}, {}){}",
            self.axes[0],
            self.axes[1],
            if self.normalize { ", normalize" } else { "" }
        ))
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{build, gradients, values};
    use super::*;
    use serde_json::json;

    #[test]
    fn elementwise_merges_have_exact_gradients() {
        for class in [
            "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
        ] {
            let n_inputs = if class == "Subtract" { 2 } else { 3 };
            let shapes = vec![vec![3, 2]; n_inputs];
            let op = build(super::build, class, json!({}), &shapes, &[]);
            let x: Vec<_> = (0..n_inputs)
                .map(|i| values(&[2, 3, 2], i as u64))
                .collect();
            gradients(op.as_ref(), &x, Mode::Inference, 1e-2);
        }
    }

    #[test]
    fn maximum_and_average_values() {
        let op = build(super::build, "Maximum", json!({}), &[vec![2], vec![2]], &[]);
        let a = ArrayD::from_shape_vec(vec![1, 2], vec![1.0, -3.0]).unwrap();
        let b = ArrayD::from_shape_vec(vec![1, 2], vec![0.5, 2.0]).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let y = op.forward(&[&a, &b], &mut cx).unwrap().y;
        assert_eq!(y.as_slice().unwrap(), &[1.0, 2.0]);
        let op = build(super::build, "Average", json!({}), &[vec![2], vec![2]], &[]);
        let y = op.forward(&[&a, &b], &mut cx).unwrap().y;
        assert_eq!(y.as_slice().unwrap(), &[0.75, -0.5]);
    }

    #[test]
    fn concatenate_any_axis() {
        let op = build(
            build_concatenate,
            "Concatenate",
            json!({"axis": 1}),
            &[vec![2, 3], vec![1, 3]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![2, 3], vec![1, 3]]).unwrap(), [3, 3]);
        gradients(
            op.as_ref(),
            &[values(&[2, 2, 3], 1), values(&[2, 1, 3], 2)],
            Mode::Inference,
            1e-2,
        );
        let op = build(
            build_concatenate,
            "Concatenate",
            json!({"axis": -1}),
            &[vec![2], vec![3]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![2], vec![3]]).unwrap(), [5]);
    }

    #[test]
    fn dot_shapes_and_gradients() {
        let op = build(
            build_dot,
            "Dot",
            json!({"axes": 1}),
            &[vec![4], vec![4]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![4], vec![4]]).unwrap(), [1]);
        gradients(
            op.as_ref(),
            &[values(&[3, 4], 1), values(&[3, 4], 2)],
            Mode::Inference,
            1e-2,
        );
        let op = build(
            build_dot,
            "Dot",
            json!({"axes": 1, "normalize": true}),
            &[vec![4], vec![4]],
            &[],
        );
        gradients(
            op.as_ref(),
            &[values(&[3, 4], 3), values(&[3, 4], 4)],
            Mode::Inference,
            1e-2,
        );
        let op = build(
            build_dot,
            "Dot",
            json!({"axes": [2, 2]}),
            &[vec![3, 4], vec![2, 4]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![3, 4], vec![2, 4]]).unwrap(), [3, 2]);
        gradients(
            op.as_ref(),
            &[values(&[2, 3, 4], 5), values(&[2, 2, 4], 6)],
            Mode::Inference,
            1e-2,
        );
    }

    #[test]
    fn bad_merges_are_errors() {
        let cfg = json!({}).as_object().unwrap().clone();
        let cx = BuildCx {
            class_name: "Add",
            name: "add",
            config: &cfg,
            inputs: &[vec![2], vec![3]],
            stored: &[],
            vars_path: "layers/add/vars",
            group: None,
        };
        assert!(super::build(&cx).is_err());
        let cx = BuildCx {
            class_name: "Subtract",
            inputs: &[vec![2], vec![2], vec![2]],
            ..cx
        };
        assert!(super::build(&cx).is_err());
    }
}
