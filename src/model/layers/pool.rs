//! Pooling layers: `MaxPooling1D/2D/3D`, `AveragePooling1D/2D/3D`,
//! `GlobalMaxPooling1D/2D/3D` and `GlobalAveragePooling1D/2D/3D`, forward
//! and backward as `jax.grad` computes them under Keras.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX 0.10.2; paths relative to `site-packages/`:
//!
//! * `keras/src/layers/pooling/base_pooling.py` (`pool_size` and `strides`
//!   through `standardize_tuple`, `strides=None` means `pool_size`),
//!   `max_pooling{1,2,3}d.py`, `average_pooling{1,2,3}d.py`;
//! * `keras/src/ops/operation_utils.py` `compute_pooling_output_shape`
//!   (`valid`: `floor((in - k) / s) + 1`, an error when ≤ 0; `same`:
//!   `floor((in - 1) / s) + 1`);
//! * `keras/src/backend/jax/nn.py` `max_pool`, `average_pool`, `_pool`
//!   (`lax.reduce_window` with `-inf` / `lax.max`, or `0` / `lax.add`; the
//!   average divides the window sums by `prod(pool_size)` for `valid`, and
//!   by the number of real (unpadded) elements of each window, itself a
//!   `reduce_window` sum of ones, for `same`);
//! * `jax/_src/lax/lax.py` `padtype_to_pads` (`same`: `out = ceil(in / s)`,
//!   total padding `max((out - 1) * s + k - in, 0)`, the smaller half
//!   before);
//! * `jax/_src/lax/windowed_reductions.py`: the JVP of `reduce_window_max`
//!   is `_select_and_gather_add` with `select_prim = ge`, its transpose
//!   `_select_and_scatter_add` (XLA `SelectAndScatter`);
//! * `keras/src/layers/pooling/base_global_pooling.py`,
//!   `global_{max,average}_pooling{1,2,3}d.py` (`ops.max` / `ops.mean` over
//!   the spatial axes, `keepdims`), and `jax/_src/lax/lax.py`
//!   `_reduce_chooser_jvp_rule` (the gradient of `reduce_max`).
//!
//! # Numbers
//!
//! * Max pooling: XLA's `SelectAndScatter` visits each window in row-major
//!   order, starts from its first element and moves to a later element `v`
//!   only when `!(selected >= v)`. So among equal maxima the **first** in
//!   row-major window order (the lowest index) receives the whole gradient
//!   (an all-zero window after a ReLU sends it to its top-left element);
//!   padded positions are never selected; windows that overlap add their
//!   gradients into the elements they selected. The forward value is the
//!   NaN-propagating maximum.
//! * Average pooling: XLA folds the division by a constant into a
//!   multiplication by its float32 reciprocal: `y = sum · (1 / count)` with
//!   `count = prod(pool_size)` (`valid`) or the number of real elements in
//!   the window (`same`: padding is not counted). The window sum runs in
//!   row-major order; for `valid` windows XLA's CPU backend sums each row
//!   (the last spatial axis) first, then adds the rows, which is what
//!   kerasrs does. The gradient is `dy · (1 / count)` added to every real
//!   element of the window.
//! * Global max: `reduce_max`; its gradient is split evenly between tied
//!   maxima: `dx = (x == y) · (dy / count_of_ties)`.
//! * Global average: `jnp.mean` = the sum times the float32 reciprocal of
//!   the element count; gradient `dy · (1 / count)` everywhere.
//!
//! `data_format="channels_first"` is supported by moving the channels last
//! and back (pure copies; the arithmetic is the same).
//!
//! Large tensors run in two halves of the samples on both threads
//! (`engine::pool::halves`; the worker runs in the caller's floating-point
//! mode, and on a busy machine the caller takes a half back rather than
//! wait for a descheduled worker).

use ndarray::{ArrayD, IxDyn};
use serde_json::Value;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, keras_shape, single_shape};
use crate::engine::pool::{self, halves};
use crate::error::{Error, Result};
use crate::model::activation::PAR_THRESHOLD;

// ---------------------------------------------------------------------------
// Shared helpers (also used by `spatial`)
// ---------------------------------------------------------------------------

/// The largest size, stride or padding accepted (no input can be larger).
pub(super) const MAX_OPTION: i64 = 1 << 31;

/// `standardize_tuple`: an integer (repeated `n` times) or a list of `n`
/// integers, each ≥ 1 (≥ 0 with `allow_zero`).
pub(super) fn int_tuple(
    v: &Value,
    n: usize,
    key: &str,
    class: &str,
    allow_zero: bool,
) -> Result<Vec<usize>> {
    let low = i64::from(!allow_zero);
    let bad = || {
        Error::mismatch(
            format!(
                "`{key}` of `{class}`: an integer or a list of {n} integers, each in {low}..={MAX_OPTION}"
            ),
            v,
        )
    };
    let one = |x: &Value| -> Result<usize> {
        match x.as_i64() {
            Some(i) if (low..=MAX_OPTION).contains(&i) => Ok(i as usize),
            _ => Err(bad()),
        }
    };
    match v {
        Value::Number(_) => Ok(vec![one(v)?; n]),
        Value::Array(list) if list.len() == n => list.iter().map(one).collect(),
        _ => Err(bad()),
    }
}

/// `data_format`: true for `channels_first`; absent or `null` is Keras's
/// default, `channels_last`.
pub(super) fn channels_first(cx: &BuildCx<'_>) -> Result<bool> {
    match cx.get("data_format") {
        Value::Null => Ok(false),
        Value::String(s) if s == "channels_last" => Ok(false),
        Value::String(s) if s == "channels_first" => Ok(true),
        v => Err(Error::mismatch(
            format!(
                "`data_format` of `{}`: \"channels_last\" or \"channels_first\"",
                cx.class_name
            ),
            v,
        )),
    }
}

/// The input must have `spatial` spatial axes and a channel axis.
pub(super) fn check_rank(input: &[usize], spatial: usize, class: &str) -> Result<()> {
    if input.len() != spatial + 1 {
        return Err(Error::mismatch(
            format!(
                "an input of rank {} for `{class}` (batch, {spatial} spatial axes, channels)",
                spatial + 2
            ),
            format!("input of shape {}", keras_shape(input)),
        ));
    }
    if input.contains(&0) {
        return Err(Error::mismatch(
            format!("an input without empty axes for `{class}`"),
            format!("input of shape {}", keras_shape(input)),
        ));
    }
    Ok(())
}

/// A per-sample `[c, s...]` shape as `[s..., c]`.
pub(super) fn shape_to_last(shape: &[usize]) -> Vec<usize> {
    let mut s = shape[1..].to_vec();
    s.push(shape[0]);
    s
}

/// A per-sample `[s..., c]` shape as `[c, s...]`.
pub(super) fn shape_to_first(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![shape[shape.len() - 1]];
    s.extend_from_slice(&shape[..shape.len() - 1]);
    s
}

/// `[n, c, s...]` → `[n, s..., c]` (standard layout).
pub(super) fn to_channels_last(x: &ArrayD<f32>) -> ArrayD<f32> {
    let r = x.ndim();
    let mut order = vec![0];
    order.extend(2..r);
    order.push(1);
    x.view()
        .permuted_axes(IxDyn(&order))
        .as_standard_layout()
        .into_owned()
}

/// `[n, s..., c]` → `[n, c, s...]` (standard layout).
pub(super) fn to_channels_first(x: &ArrayD<f32>) -> ArrayD<f32> {
    let r = x.ndim();
    let mut order = vec![0, r - 1];
    order.extend(1..r - 1);
    x.view()
        .permuted_axes(IxDyn(&order))
        .as_standard_layout()
        .into_owned()
}

/// `x` in standard layout (a copy only when it is not).
pub(super) fn standard(x: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

/// Run `f(input of sample i, output of sample i)` for every sample; on the
/// rayon pool (in the caller's floating-point mode) for large tensors.
pub(super) fn each_sample<T: Send>(
    x: &[f32],
    in_ps: usize,
    out: &mut [T],
    out_ps: usize,
    f: impl Fn(&[f32], &mut [T]) + Sync + Send,
) {
    if in_ps == 0 || out_ps == 0 {
        return;
    }
    let n = (x.len() / in_ps).min(out.len() / out_ps);
    let split = x.len().max(out.len()) >= PAR_THRESHOLD;
    halves(n, out_ps, out, split, &|range, o| {
        for (k, s) in range.enumerate() {
            f(
                &x[s * in_ps..(s + 1) * in_ps],
                &mut o[k * out_ps..(k + 1) * out_ps],
            );
        }
    });
}

/// A `[n, ...]` array from a flat buffer.
pub(super) fn array(shape: Vec<usize>, data: Vec<f32>) -> Result<ArrayD<f32>> {
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::invalid(e.to_string()))
}

/// The gradient must have the output's shape.
pub(super) fn check_grad(dy: &ArrayD<f32>, want: &[usize]) -> Result<()> {
    if dy.shape() != want {
        return Err(Error::mismatch(
            format!("an output gradient of shape {want:?}"),
            format!("shape {:?}", dy.shape()),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Window geometry
// ---------------------------------------------------------------------------

/// One pooling configuration applied to one input shape, with 1-D and 2-D
/// pooling written as 3-D (leading axes of size 1).
#[derive(Debug, Clone)]
struct Geom {
    inp: [usize; 3],
    out: [usize; 3],
    c: usize,
    /// Per axis, the real (unpadded) input range `[lo, hi)` of each window.
    ranges: [Vec<(usize, usize)>; 3],
}

impl Geom {
    fn in_len(&self) -> usize {
        self.inp.iter().product::<usize>() * self.c
    }

    fn out_len(&self) -> usize {
        self.out.iter().product::<usize>() * self.c
    }
}

/// The output size of one axis (`compute_pooling_output_shape`).
fn out_size(input: usize, k: usize, s: usize, same: bool) -> Option<usize> {
    if same {
        Some((input - 1) / s + 1)
    } else if input >= k {
        Some((input - k) / s + 1)
    } else {
        None
    }
}

/// Window geometry of `pool`/`strides` on the channels-last per-sample
/// `input` (spatial axes, channels).
fn geometry(
    input: &[usize],
    pool: &[usize],
    strides: &[usize],
    same: bool,
    class: &str,
) -> Result<Geom> {
    let dims = pool.len();
    check_rank(input, dims, class)?;
    let lead = 3 - dims;
    let mut g = Geom {
        inp: [1; 3],
        out: [1; 3],
        c: input[dims],
        ranges: [vec![(0, 1)], vec![(0, 1)], vec![(0, 1)]],
    };
    for a in 0..dims {
        let (i, k, s) = (input[a], pool[a], strides[a]);
        if s == 0 {
            return Err(Error::mismatch(
                format!("positive `strides` for `{class}`"),
                format!("{strides:?}"),
            ));
        }
        let o = out_size(i, k, s, same).ok_or_else(|| {
            Error::mismatch(
                format!(
                    "`pool_size` {pool:?} with `padding=\"valid\"` fitting the input {} of `{class}` (the output would be empty)",
                    keras_shape(input)
                ),
                format!("pool_size {pool:?}"),
            )
        })?;
        // `padtype_to_pads`; all values fit in i64 (sizes ≤ 2^31).
        let pad = if same {
            ((o as i64 - 1) * s as i64 + k as i64 - i as i64).max(0) / 2
        } else {
            0
        };
        let ranges = (0..o)
            .map(|j| {
                let start = j as i64 * s as i64 - pad;
                let lo = start.max(0) as usize;
                let hi = (start + k as i64).min(i as i64).max(0) as usize;
                (lo, hi.max(lo))
            })
            .collect();
        g.inp[lead + a] = i;
        g.out[lead + a] = o;
        g.ranges[lead + a] = ranges;
    }
    Ok(g)
}

// ---------------------------------------------------------------------------
// Kernels (one sample, channels last)
// ---------------------------------------------------------------------------

/// XLA's `SelectAndScatter` with `select = ge`: the selection moves from
/// `selected` to a later element `v` only when `selected >= v` is false
/// (so a tie keeps the earlier element, and NaN comparisons move it).
#[inline]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn moves_to(selected: f32, v: f32) -> bool {
    !(selected >= v)
}

/// Max pooling of one sample; with `ARG`, the selected input index of every
/// output element (XLA's `SelectAndScatter` rule) goes to `arg`.
fn max_sample<const ARG: bool>(g: &Geom, x: &[f32], y: &mut [f32], arg: &mut [u32]) {
    let c = g.c;
    let mut o = 0;
    for &(d0, d1) in &g.ranges[0] {
        for &(h0, h1) in &g.ranges[1] {
            for &(w0, w1) in &g.ranges[2] {
                let yb = &mut y[o..o + c];
                let mut first = true;
                for d in d0..d1 {
                    for h in h0..h1 {
                        let row = (d * g.inp[1] + h) * g.inp[2];
                        for w in w0..w1 {
                            let off = (row + w) * c;
                            let xs = &x[off..off + c];
                            if first {
                                first = false;
                                yb.copy_from_slice(xs);
                                if ARG {
                                    for (j, a) in arg[o..o + c].iter_mut().enumerate() {
                                        *a = (off + j) as u32;
                                    }
                                }
                            } else if ARG {
                                select_with_arg(yb, &mut arg[o..o + c], xs, off as u32);
                            } else {
                                for (b, &v) in yb.iter_mut().zip(xs) {
                                    let m = 0u32.wrapping_sub(u32::from(moves_to(*b, v)));
                                    *b = f32::from_bits((v.to_bits() & m) | (b.to_bits() & !m));
                                }
                            }
                        }
                    }
                }
                o += c;
            }
        }
    }
    if has_nan(x) {
        propagate_nan(g, x, y);
    }
}

/// One step of the selection over a window position for every channel:
/// `y`/`arg` move to `x`/`base + j` where [`moves_to`] says so.
#[inline]
fn select_with_arg(y: &mut [f32], arg: &mut [u32], x: &[f32], base: u32) {
    // Common length, so that the loop has no bounds checks and vectorizes.
    let n = y.len().min(arg.len()).min(x.len());
    let (y, arg, x) = (&mut y[..n], &mut arg[..n], &x[..n]);
    // Bit masks instead of branches: ties and zeros (ReLU outputs) make
    // the comparison unpredictable.
    for j in 0..n {
        let (b, v) = (y[j], x[j]);
        let m = 0u32.wrapping_sub(u32::from(moves_to(b, v)));
        y[j] = f32::from_bits((v.to_bits() & m) | (b.to_bits() & !m));
        arg[j] = (base.wrapping_add(j as u32) & m) | (arg[j] & !m);
    }
}

/// Whether `x` holds a NaN (branch-free over blocks, so it vectorizes).
fn has_nan(x: &[f32]) -> bool {
    x.chunks(256)
        .any(|block| block.iter().fold(false, |acc, v| acc | v.is_nan()))
}

/// `lax.max` propagates NaN, which the selection rule may step over: every
/// window holding a NaN gives NaN (rarely needed, so a separate pass).
fn propagate_nan(g: &Geom, x: &[f32], y: &mut [f32]) {
    let c = g.c;
    let mut o = 0;
    for &(d0, d1) in &g.ranges[0] {
        for &(h0, h1) in &g.ranges[1] {
            for &(w0, w1) in &g.ranges[2] {
                for d in d0..d1 {
                    for h in h0..h1 {
                        let row = (d * g.inp[1] + h) * g.inp[2];
                        for w in w0..w1 {
                            let off = (row + w) * c;
                            for (b, &v) in y[o..o + c].iter_mut().zip(&x[off..off + c]) {
                                if v.is_nan() {
                                    *b = v;
                                }
                            }
                        }
                    }
                }
                o += c;
            }
        }
    }
}

/// The float32 reciprocal of a window's element count.
#[inline]
fn reciprocal(count: usize) -> f32 {
    1.0 / count as f32
}

/// Average pooling of one sample.
fn avg_sample(g: &Geom, same: bool, x: &[f32], y: &mut [f32]) {
    let c = g.c;
    let mut row_acc = vec![0f32; c];
    let mut o = 0;
    for &(d0, d1) in &g.ranges[0] {
        for &(h0, h1) in &g.ranges[1] {
            for &(w0, w1) in &g.ranges[2] {
                let acc = &mut y[o..o + c];
                acc.fill(0.0);
                for d in d0..d1 {
                    for h in h0..h1 {
                        let row = (d * g.inp[1] + h) * g.inp[2];
                        if same {
                            // Row-major order, one element at a time.
                            for w in w0..w1 {
                                let off = (row + w) * c;
                                for (a, &v) in acc.iter_mut().zip(&x[off..off + c]) {
                                    *a += v;
                                }
                            }
                        } else {
                            // Each row summed first, then added.
                            row_acc.fill(0.0);
                            for w in w0..w1 {
                                let off = (row + w) * c;
                                for (a, &v) in row_acc.iter_mut().zip(&x[off..off + c]) {
                                    *a += v;
                                }
                            }
                            for (a, &r) in acc.iter_mut().zip(&row_acc) {
                                *a += r;
                            }
                        }
                    }
                }
                let inv = reciprocal((d1 - d0) * (h1 - h0) * (w1 - w0));
                for a in acc.iter_mut() {
                    *a *= inv;
                }
                o += c;
            }
        }
    }
}

/// The gradient of average pooling for one sample (`dx` zeroed).
fn avg_grad_sample(g: &Geom, dy: &[f32], dx: &mut [f32]) {
    let c = g.c;
    let mut scaled = vec![0f32; c];
    let mut o = 0;
    for &(d0, d1) in &g.ranges[0] {
        for &(h0, h1) in &g.ranges[1] {
            for &(w0, w1) in &g.ranges[2] {
                let inv = reciprocal((d1 - d0) * (h1 - h0) * (w1 - w0));
                for (s, &v) in scaled.iter_mut().zip(&dy[o..o + c]) {
                    *s = v * inv;
                }
                for d in d0..d1 {
                    for h in h0..h1 {
                        let row = (d * g.inp[1] + h) * g.inp[2];
                        for w in w0..w1 {
                            let off = (row + w) * c;
                            for (a, &s) in dx[off..off + c].iter_mut().zip(&scaled) {
                                *a += s;
                            }
                        }
                    }
                }
                o += c;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// MaxPooling / AveragePooling
// ---------------------------------------------------------------------------

/// `MaxPooling1D/2D/3D` or `AveragePooling1D/2D/3D`.
#[derive(Debug, Clone)]
pub struct Pool {
    class: String,
    max: bool,
    pool: Vec<usize>,
    strides: Vec<usize>,
    same: bool,
    channels_first: bool,
}

/// The spatial rank of a `...1D/2D/3D` class name.
fn spatial_rank(class: &str) -> Result<usize> {
    match class.get(class.len().saturating_sub(2)..) {
        Some("1D") => Ok(1),
        Some("2D") => Ok(2),
        Some("3D") => Ok(3),
        _ => Err(Error::invalid(format!("`{class}` is not a 1D/2D/3D layer"))),
    }
}

/// Builder of `MaxPooling1D/2D/3D` and `AveragePooling1D/2D/3D`.
pub fn build_pooling(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let class = cx.class_name;
    let dims = spatial_rank(class)?;
    let pool = match cx.config.get("pool_size") {
        None => vec![2; dims],
        Some(v) => int_tuple(v, dims, "pool_size", class, false)?,
    };
    let strides = match cx.get("strides") {
        Value::Null => pool.clone(),
        v => int_tuple(v, dims, "strides", class, false)?,
    };
    let same = match cx.get("padding") {
        Value::Null => false,
        Value::String(s) if s == "valid" => false,
        Value::String(s) if s == "same" => true,
        v => {
            return Err(Error::mismatch(
                format!("`padding` of `{class}`: \"valid\" or \"same\""),
                v,
            ));
        }
    };
    let layer = Pool {
        class: class.to_string(),
        max: class.starts_with("Max"),
        pool,
        strides,
        same,
        channels_first: channels_first(cx)?,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

/// What max pooling keeps for its backward pass.
struct MaxSaved {
    /// Per output element, the selected input index within its sample.
    arg: Vec<u32>,
}

impl Pool {
    fn geometry(&self, per_sample: &[usize]) -> Result<Geom> {
        let input = if self.channels_first {
            check_rank(per_sample, self.pool.len(), &self.class)?;
            shape_to_last(per_sample)
        } else {
            per_sample.to_vec()
        };
        geometry(&input, &self.pool, &self.strides, self.same, &self.class)
    }

    /// The input as channels-last values.
    fn last<'a>(&self, x: &'a ArrayD<f32>) -> std::borrow::Cow<'a, [f32]> {
        if self.channels_first {
            std::borrow::Cow::Owned(to_channels_last(x).into_raw_vec_and_offset().0)
        } else {
            standard(x)
        }
    }

    /// A channels-last result as the layer's output layout.
    fn shaped(&self, n: usize, spatial_last: Vec<usize>, data: Vec<f32>) -> Result<ArrayD<f32>> {
        let mut shape = vec![n];
        shape.extend(spatial_last);
        let y = array(shape, data)?;
        Ok(if self.channels_first {
            to_channels_first(&y)
        } else {
            y
        })
    }

    fn out_last(g: &Geom, dims: usize) -> Vec<usize> {
        let mut s = g.out[3 - dims..].to_vec();
        s.push(g.c);
        s
    }

    fn in_last(g: &Geom, dims: usize) -> Vec<usize> {
        let mut s = g.inp[3 - dims..].to_vec();
        s.push(g.c);
        s
    }

    /// Max pooling with the selected indices.
    fn max_with_arg(&self, g: &Geom, n: usize, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let (in_ps, out_ps) = (g.in_len(), g.out_len());
        let mut y = vec![0f32; n * out_ps];
        let mut arg = vec![0u32; n * out_ps];
        if in_ps > 0 && out_ps > 0 {
            let work = |((yb, ab), xb): ((&mut [f32], &mut [u32]), &[f32])| {
                max_sample::<true>(g, xb, yb, ab)
            };
            if x.len() >= PAR_THRESHOLD && n >= 2 {
                // Both threads, one half of the samples each.
                let h = n / 2;
                let (y1, y2) = y.split_at_mut(h * out_ps);
                let (a1, a2) = arg.split_at_mut(h * out_ps);
                let (x1, x2) = x.split_at(h * in_ps);
                let run = |ys: &mut [f32], args: &mut [u32], xs: &[f32]| {
                    ys.chunks_mut(out_ps)
                        .zip(args.chunks_mut(out_ps))
                        .zip(xs.chunks(in_ps))
                        .for_each(work);
                };
                pool::join(|| run(y1, a1, x1), || run(y2, a2, x2));
            } else {
                y.chunks_mut(out_ps)
                    .zip(arg.chunks_mut(out_ps))
                    .zip(x.chunks(in_ps))
                    .for_each(work);
            }
        }
        (y, arg)
    }
}

impl LayerOp for Pool {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let g = self.geometry(single_shape(inputs, &self.class)?)?;
        let out = Self::out_last(&g, self.pool.len());
        Ok(if self.channels_first {
            shape_to_first(&out)
        } else {
            out
        })
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = super::norm::single(x, &self.class)?;
        let n = x.shape()[0];
        let g = self.geometry(&x.shape()[1..])?;
        let xs = self.last(x);
        let out_ps = g.out_len();
        let dims = self.pool.len();
        if self.max && cx.training() {
            let (y, arg) = self.max_with_arg(&g, n, &xs);
            let y = self.shaped(n, Self::out_last(&g, dims), y)?;
            return Ok(Forward {
                extra: Vec::new(),
                y,
                saved: Some(Box::new(MaxSaved { arg })),
                updates: Vec::new(),
            });
        }
        let mut y = vec![0f32; n * out_ps];
        if self.max {
            each_sample(&xs, g.in_len(), &mut y, out_ps, |xb, yb| {
                max_sample::<false>(&g, xb, yb, &mut [])
            });
        } else {
            each_sample(&xs, g.in_len(), &mut y, out_ps, |xb, yb| {
                avg_sample(&g, self.same, xb, yb)
            });
        }
        Ok(Forward::plain(self.shaped(
            n,
            Self::out_last(&g, dims),
            y,
        )?))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = super::norm::single(x, &self.class)?;
        check_grad(&dy, y.shape())?;
        let n = x.shape()[0];
        let g = self.geometry(&x.shape()[1..])?;
        let dims = self.pool.len();
        let dys = self.last(&dy);
        let (in_ps, out_ps) = (g.in_len(), g.out_len());
        let mut dx = vec![0f32; n * in_ps];
        if self.max {
            let recomputed;
            let arg: &[u32] = match saved.as_ref().and_then(|s| s.downcast_ref::<MaxSaved>()) {
                Some(s) if s.arg.len() == n * out_ps => &s.arg,
                _ => {
                    recomputed = self.max_with_arg(&g, n, &self.last(x)).1;
                    &recomputed
                }
            };
            if in_ps > 0 && out_ps > 0 {
                let work = |((dxb, ab), dyb): ((&mut [f32], &[u32]), &[f32])| {
                    for (&a, &v) in ab.iter().zip(dyb) {
                        dxb[a as usize] += v;
                    }
                };
                if dx.len() >= PAR_THRESHOLD {
                    halves(n, in_ps, &mut dx, true, &|range, d| {
                        d.chunks_mut(in_ps)
                            .zip(arg[range.start * out_ps..range.end * out_ps].chunks(out_ps))
                            .zip(dys[range.start * out_ps..range.end * out_ps].chunks(out_ps))
                            .for_each(work);
                    });
                } else {
                    dx.chunks_mut(in_ps)
                        .zip(arg.chunks(out_ps))
                        .zip(dys.chunks(out_ps))
                        .for_each(work);
                }
            }
        } else {
            each_sample(&dys, out_ps, &mut dx, in_ps, |dyb, dxb| {
                avg_grad_sample(&g, dyb, dxb)
            });
        }
        let dx = self.shaped(n, Self::in_last(&g, dims), dx)?;
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!(
            "pool_size={:?}, strides={:?}, padding={}",
            self.pool,
            self.strides,
            if self.same { "same" } else { "valid" }
        ))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// Global pooling
// ---------------------------------------------------------------------------

/// `GlobalMaxPooling1D/2D/3D` or `GlobalAveragePooling1D/2D/3D`.
#[derive(Debug, Clone)]
pub struct GlobalPool {
    class: String,
    max: bool,
    dims: usize,
    keepdims: bool,
    channels_first: bool,
}

/// Builder of `GlobalMaxPooling1D/2D/3D` and `GlobalAveragePooling1D/2D/3D`.
pub fn build_global_pooling(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let class = cx.class_name;
    let layer = GlobalPool {
        class: class.to_string(),
        max: class.starts_with("GlobalMax"),
        dims: spatial_rank(class)?,
        keepdims: cx.bool_or("keepdims", false)?,
        channels_first: channels_first(cx)?,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl GlobalPool {
    /// (positions per sample, channels) of a per-sample shape.
    fn split(&self, per_sample: &[usize]) -> Result<(usize, usize)> {
        check_rank(per_sample, self.dims, &self.class)?;
        let input = if self.channels_first {
            shape_to_last(per_sample)
        } else {
            per_sample.to_vec()
        };
        Ok((input[..self.dims].iter().product(), input[self.dims]))
    }

    fn last<'a>(&self, x: &'a ArrayD<f32>) -> std::borrow::Cow<'a, [f32]> {
        if self.channels_first {
            std::borrow::Cow::Owned(to_channels_last(x).into_raw_vec_and_offset().0)
        } else {
            standard(x)
        }
    }
}

/// The mask a masked `GlobalAveragePooling1D` call saved.
struct MaskSaved(Vec<f32>, Vec<f32>);

impl GlobalPool {
    /// `keras/src/layers/pooling/global_average_pooling1d.py` `call` with a
    /// mask: `sum(where(mask, x, 0), steps) / sum(float(mask), steps)`.
    fn masked_mean(&self, x: &ArrayD<f32>, mask: &super::Mask) -> Result<Forward> {
        let n = x.shape()[0];
        let (positions, c) = self.split(&x.shape()[1..])?;
        if mask.shape() != [n, positions] {
            return Err(Error::mismatch(
                format!("a mask of shape [{n}, {positions}]"),
                format!("{:?}", mask.shape()),
            ));
        }
        let flags: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
        let xs = self.last(x);
        let mut y = vec![0f32; n * c];
        let mut counts = vec![0f32; n];
        for s in 0..n {
            let yb = &mut y[s * c..(s + 1) * c];
            for p in 0..positions {
                if flags[s * positions + p] != 0.0 {
                    let xb = &xs[(s * positions + p) * c..(s * positions + p + 1) * c];
                    for (a, &v) in yb.iter_mut().zip(xb) {
                        *a += v;
                    }
                }
            }
            counts[s] = sum_flags(&flags[s * positions..(s + 1) * positions]);
            for a in yb.iter_mut() {
                *a /= counts[s];
            }
        }
        let mut shape = vec![n];
        shape.extend(self.output_shape(&[x.shape()[1..].to_vec()])?);
        Ok(Forward {
            saved: Some(Box::new(MaskSaved(flags, counts))),
            ..Forward::plain(array(shape, y)?)
        })
    }
}

fn sum_flags(flags: &[f32]) -> f32 {
    flags.iter().sum()
}

impl LayerOp for GlobalPool {
    fn forward_masked(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&super::Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<Forward> {
        match masks.first().copied().flatten() {
            // Only GlobalAveragePooling1D reads masks; the others drop them.
            Some(mask) if !self.max && self.dims == 1 => {
                self.masked_mean(super::norm::single(x, &self.class)?, mask)
            }
            _ => self.forward(x, cx),
        }
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let input = single_shape(inputs, &self.class)?;
        let (_, c) = self.split(input)?;
        Ok(match (self.keepdims, self.channels_first) {
            (false, _) => vec![c],
            (true, false) => {
                let mut s = vec![1; self.dims];
                s.push(c);
                s
            }
            (true, true) => {
                let mut s = vec![c];
                s.extend(std::iter::repeat_n(1, self.dims));
                s
            }
        })
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = super::norm::single(x, &self.class)?;
        let n = x.shape()[0];
        let (positions, c) = self.split(&x.shape()[1..])?;
        let xs = self.last(x);
        let mut y = vec![0f32; n * c];
        let max = self.max;
        each_sample(&xs, positions * c, &mut y, c, |xb, yb| {
            if max {
                yb.copy_from_slice(&xb[..c]);
                for p in 1..positions {
                    for (m, &v) in yb.iter_mut().zip(&xb[p * c..(p + 1) * c]) {
                        // `lax.max`, NaN-propagating.
                        if v.is_nan() || v > *m {
                            *m = if m.is_nan() { *m } else { v };
                        }
                    }
                }
            } else {
                for p in 0..positions {
                    for (a, &v) in yb.iter_mut().zip(&xb[p * c..(p + 1) * c]) {
                        *a += v;
                    }
                }
                let inv = reciprocal(positions);
                for a in yb.iter_mut() {
                    *a *= inv;
                }
            }
        });
        let mut shape = vec![n];
        shape.extend(self.output_shape(&[x.shape()[1..].to_vec()])?);
        Ok(Forward::plain(array(shape, y)?))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let x = super::norm::single(x, &self.class)?;
        check_grad(&dy, y.shape())?;
        let n = x.shape()[0];
        let (positions, c) = self.split(&x.shape()[1..])?;
        let dys = standard(&dy);
        let mut dx = vec![0f32; n * positions * c];
        if let Some(MaskSaved(flags, counts)) =
            _saved.as_ref().and_then(|s| s.downcast_ref::<MaskSaved>())
        {
            for s in 0..n {
                for p in 0..positions {
                    if flags[s * positions + p] == 0.0 {
                        continue;
                    }
                    let base = (s * positions + p) * c;
                    for j in 0..c {
                        dx[base + j] = dys[s * c + j] / counts[s];
                    }
                }
            }
        } else if self.max {
            let xs = self.last(x);
            let ys = standard(y);
            let mut q = vec![0f32; n * c];
            // Ties share the gradient: `dy / count`, then the indicator.
            for s in 0..n {
                let xb = &xs[s * positions * c..(s + 1) * positions * c];
                let yb = &ys[s * c..(s + 1) * c];
                let qb = &mut q[s * c..(s + 1) * c];
                for p in 0..positions {
                    for ((cnt, &v), &m) in qb.iter_mut().zip(&xb[p * c..(p + 1) * c]).zip(yb) {
                        if v == m {
                            *cnt += 1.0;
                        }
                    }
                }
                for (cnt, &g) in qb.iter_mut().zip(&dys[s * c..(s + 1) * c]) {
                    *cnt = g / *cnt;
                }
            }
            for s in 0..n {
                let base = s * positions * c;
                for p in 0..positions {
                    for j in 0..c {
                        let i = base + p * c + j;
                        let hit = f32::from(u8::from(xs[i] == ys[s * c + j]));
                        dx[i] = hit * q[s * c + j];
                    }
                }
            }
        } else {
            let inv = reciprocal(positions);
            each_sample(&dys, c, &mut dx, positions * c, |dyb, dxb| {
                for p in 0..positions {
                    for (d, &g) in dxb[p * c..(p + 1) * c].iter_mut().zip(dyb) {
                        *d = g * inv;
                    }
                }
            });
        }
        let mut shape = vec![n];
        let input_last = if self.channels_first {
            shape_to_last(&x.shape()[1..])
        } else {
            x.shape()[1..].to_vec()
        };
        shape.extend(input_last);
        let dx = array(shape, dx)?;
        let dx = if self.channels_first {
            to_channels_first(&dx)
        } else {
            dx
        };
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        self.keepdims.then(|| "keepdims".to_string())
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode as RunMode;
    use super::super::check::{build, gradients, values};
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn run(op: &dyn LayerOp, x: &ArrayD<f32>, mode: RunMode) -> Forward {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode,
            rng: &mut rng,
        };
        op.forward(&[x], &mut cx).unwrap()
    }

    fn try_build(
        class: &str,
        config: serde_json::Value,
        input: &[usize],
    ) -> Result<Box<dyn LayerOp>> {
        let config = config.as_object().unwrap().clone();
        let builder = if class.starts_with("Global") {
            build_global_pooling
        } else {
            build_pooling
        };
        builder(&BuildCx {
            class_name: class,
            name: "p",
            config: &config,
            inputs: &[input.to_vec()],
            stored: &[],
            vars_path: "layers/p/vars",
            group: None,
        })
    }

    #[test]
    fn max_pooling_2d_values_and_shapes() {
        let op = build(
            build_pooling,
            "MaxPooling2D",
            json!({"pool_size": [2, 2]}),
            &[vec![5, 4, 1]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![5, 4, 1]]).unwrap(), [2, 2, 1]);
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 5, 4, 1]), (0..20).map(|v| v as f32).collect())
            .unwrap();
        let y = run(op.as_ref(), &x, RunMode::Inference).y;
        assert_eq!(y.as_slice().unwrap(), [5.0, 7.0, 13.0, 15.0]);
        let op = build(
            build_pooling,
            "MaxPooling2D",
            json!({"pool_size": 3, "strides": 2, "padding": "same"}),
            &[vec![5, 4, 1]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![5, 4, 1]]).unwrap(), [3, 2, 1]);
    }

    #[test]
    fn max_pool_ties_go_to_the_first_element() {
        // All-zero windows: the top-left element of each gets the gradient.
        let op = build(
            build_pooling,
            "MaxPooling2D",
            json!({"pool_size": 2, "strides": 1}),
            &[vec![3, 3, 1]],
            &[],
        );
        let x = ArrayD::zeros(IxDyn(&[1, 3, 3, 1]));
        for mode in [RunMode::Training, RunMode::Inference] {
            let f = run(op.as_ref(), &x, mode);
            let dy =
                ArrayD::from_shape_vec(IxDyn(&[1, 2, 2, 1]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
            let b = op.backward(&[&x], &f.y, &f.saved, dy).unwrap();
            assert_eq!(
                b.inputs[0].as_slice().unwrap(),
                [1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]
            );
        }
        // A later equal maximum does not take over; a later larger one does.
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2, 2, 1]), vec![0.0, 1.0, 1.0, 0.0]).unwrap();
        let op = build(
            build_pooling,
            "MaxPooling2D",
            json!({}),
            &[vec![2, 2, 1]],
            &[],
        );
        let f = run(op.as_ref(), &x, RunMode::Training);
        let b = op
            .backward(&[&x], &f.y, &f.saved, ArrayD::ones(IxDyn(&[1, 1, 1, 1])))
            .unwrap();
        assert_eq!(b.inputs[0].as_slice().unwrap(), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn max_pool_propagates_nan() {
        let op = build(build_pooling, "MaxPooling1D", json!({}), &[vec![4, 1]], &[]);
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 4, 1]), vec![f32::NAN, 1.0, 2.0, 3.0]).unwrap();
        for mode in [RunMode::Training, RunMode::Inference] {
            let y = run(op.as_ref(), &x, mode).y;
            assert!(y[[0, 0, 0]].is_nan());
            assert_eq!(y[[0, 1, 0]], 3.0);
        }
    }

    #[test]
    fn same_average_excludes_padding() {
        let op = build(
            build_pooling,
            "AveragePooling1D",
            json!({"pool_size": 3, "strides": 1, "padding": "same"}),
            &[vec![3, 1]],
            &[],
        );
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 3, 1]), vec![1.0, 2.0, 6.0]).unwrap();
        let y = run(op.as_ref(), &x, RunMode::Inference).y;
        assert_eq!(y.as_slice().unwrap(), [1.5, 3.0, 4.0]);
    }

    #[test]
    fn pooling_gradients() {
        for (class, cfg, input) in [
            (
                "MaxPooling1D",
                json!({"pool_size": 2, "strides": 1}),
                vec![5, 2],
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": [3, 2], "strides": [2, 1], "padding": "same"}),
                vec![5, 4, 2],
            ),
            (
                "MaxPooling3D",
                json!({"pool_size": 2, "padding": "same"}),
                vec![3, 3, 2, 2],
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": 2, "data_format": "channels_first"}),
                vec![2, 4, 5],
            ),
            (
                "AveragePooling1D",
                json!({"pool_size": 3, "strides": 2, "padding": "same"}),
                vec![6, 2],
            ),
            (
                "AveragePooling2D",
                json!({"pool_size": [2, 3], "strides": 1}),
                vec![4, 4, 2],
            ),
            (
                "AveragePooling3D",
                json!({"pool_size": 2, "strides": 1, "padding": "same", "data_format": "channels_first"}),
                vec![2, 3, 2, 3],
            ),
            ("GlobalMaxPooling2D", json!({}), vec![3, 3, 2]),
            (
                "GlobalAveragePooling1D",
                json!({"keepdims": true}),
                vec![4, 3],
            ),
            (
                "GlobalAveragePooling3D",
                json!({"data_format": "channels_first"}),
                vec![2, 2, 2, 3],
            ),
            (
                "GlobalMaxPooling1D",
                json!({"keepdims": true, "data_format": "channels_first"}),
                vec![2, 5],
            ),
        ] {
            let builder = if class.starts_with("Global") {
                build_global_pooling
            } else {
                build_pooling
            };
            let op = build(builder, class, cfg, std::slice::from_ref(&input), &[]);
            let mut shape = vec![2];
            shape.extend(&input);
            // Distinct values: no ties, so the gradient is smooth.
            gradients(op.as_ref(), &[values(&shape, 11)], RunMode::Training, 1e-2);
            gradients(op.as_ref(), &[values(&shape, 12)], RunMode::Inference, 1e-2);
        }
    }

    #[test]
    fn global_max_splits_ties() {
        let op = build(
            build_global_pooling,
            "GlobalMaxPooling1D",
            json!({}),
            &[vec![4, 1]],
            &[],
        );
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 4, 1]), vec![0.0, 2.0, 2.0, 1.0]).unwrap();
        let f = run(op.as_ref(), &x, RunMode::Training);
        let b = op
            .backward(&[&x], &f.y, &f.saved, ArrayD::ones(IxDyn(&[1, 1])))
            .unwrap();
        assert_eq!(b.inputs[0].as_slice().unwrap(), [0.0, 0.5, 0.5, 0.0]);
    }

    #[test]
    fn bad_configs_are_refused() {
        for (class, cfg, input, needle) in [
            (
                "MaxPooling2D",
                json!({"pool_size": 0}),
                vec![4, 4, 1],
                "pool_size",
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": -3}),
                vec![4, 4, 1],
                "pool_size",
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": [2]}),
                vec![4, 4, 1],
                "pool_size",
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": "2"}),
                vec![4, 4, 1],
                "pool_size",
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": null}),
                vec![4, 4, 1],
                "pool_size",
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": 1u64 << 40}),
                vec![4, 4, 1],
                "pool_size",
            ),
            (
                "MaxPooling2D",
                json!({"pool_size": 5}),
                vec![4, 4, 1],
                "empty",
            ),
            (
                "MaxPooling2D",
                json!({"strides": 0}),
                vec![4, 4, 1],
                "strides",
            ),
            (
                "AveragePooling1D",
                json!({"padding": "causal"}),
                vec![4, 1],
                "padding",
            ),
            (
                "AveragePooling1D",
                json!({"data_format": "channels_middle"}),
                vec![4, 1],
                "data_format",
            ),
            ("MaxPooling3D", json!({}), vec![4, 4, 1], "rank 5"),
            (
                "GlobalMaxPooling2D",
                json!({"keepdims": 3}),
                vec![4, 4, 1],
                "keepdims",
            ),
            ("GlobalAveragePooling1D", json!({}), vec![4, 4, 1], "rank 3"),
        ] {
            let err = try_build(class, cfg.clone(), &input)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{class} {cfg}: {err}");
        }
        // Same padding never empties; huge strides are fine.
        let op = try_build(
            "MaxPooling2D",
            json!({"pool_size": 5, "strides": 1u64 << 31, "padding": "same"}),
            &[4, 4, 1],
        )
        .unwrap();
        assert_eq!(op.output_shape(&[vec![4, 4, 1]]).unwrap(), [1, 1, 1]);
        let x = values(&[1, 4, 4, 1], 3);
        let y = run(op.as_ref(), &x, RunMode::Training).y;
        assert_eq!(y.len(), 1);
    }
}
