//! Spatial reshaping layers: `ZeroPadding1D/2D/3D`, `Cropping1D/2D/3D`,
//! `UpSampling1D/2D/3D` and `Resizing`, forward and backward.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX 0.10.2; paths relative to `site-packages/`:
//!
//! * `keras/src/layers/reshaping/zero_padding{1,2,3}d.py` and
//!   `cropping{1,2,3}d.py`: `padding`/`cropping` is an integer (the same
//!   amount on both sides of every spatial axis), one entry per spatial
//!   axis (2-D, 3-D), each an integer (both sides) or a pair `(before,
//!   after)`; for 1-D an integer or one pair. Padding is `ops.pad` with
//!   zeros; cropping a slice, which must leave every axis non-empty.
//!   `Cropping1D` has no `data_format`.
//! * `keras/src/layers/reshaping/up_sampling{1,2,3}d.py`: `ops.repeat` along
//!   each spatial axis in turn (its gradient sums the repeats, the last
//!   axis first); `UpSampling2D` with another `interpolation` calls
//!   `ops.image.resize` to `(h · size[0], w · size[1])` without antialias.
//! * `keras/src/layers/preprocessing/image_preprocessing/resizing.py` and
//!   `keras/src/backend/jax/image.py` `resize`: `crop_to_aspect_ratio`
//!   (centre crop of `int(w · height / width)` rows or `int(h · width /
//!   height)` columns, clamped to [1, size]) or `pad_to_aspect_ratio` (the
//!   same sizes, at least the input; `int((padded - size) / 2)` rows or
//!   columns of `fill_value` on **both** sides), then `jax.image.resize`.
//!   `fill_mode` must be `constant`.
//! * `jax/_src/image/scale.py`: `_resize_nearest` (source index
//!   `floor((j + 0.5) · m / n)` per resized axis) and `_scale_and_translate`
//!   / `compute_weight_mat` (per axis a weight matrix from the kernel —
//!   triangle for bilinear, Keys cubic with a = -0.5 for bicubic, Lanczos
//!   3 and 5 — evaluated at `|(j + 0.5) / scale - 0.5 - i|`, divided by
//!   `max(1 / scale, 1)` with antialias, normalized by its column sums,
//!   zero for samples outside the input; then one `einsum` over the
//!   axes). Axes whose size does not change are left alone.
//!
//! # Numbers
//!
//! Everything is float32 as in JAX. The nearest source index is computed as
//! XLA folds it, `floor((j + 0.5) · (m · (1 / n)))` (checked against
//! `jax.image.resize` for all sizes up to 60). The interpolation weights
//! follow `compute_weight_mat` operation by operation; the resized image is
//! the height contraction then the width contraction, each summed over the
//! input index in order (XLA's `dot` may sum in another order: float32
//! rounding differences only). Gradients are the transposed operations:
//! slices and zero-padding for padding and cropping, sums over repeats or
//! scatter-adds for nearest, the transposed weight matrices (width first)
//! for interpolation.
//!
//! `data_format="channels_first"` is supported by moving the channels last
//! and back.

use serde_json::Value;

use super::pool::{
    MAX_OPTION, array, channels_first, check_grad, check_rank, each_sample, int_tuple,
    shape_to_first, shape_to_last, standard, to_channels_first, to_channels_last,
};
use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, keras_shape, single_shape};
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The spatial rank of a `...1D/2D/3D` class name.
fn rank_of(class: &str) -> Result<usize> {
    match class.get(class.len().saturating_sub(2)..) {
        Some("1D") => Ok(1),
        Some("2D") => Ok(2),
        Some("3D") => Ok(3),
        _ => Err(Error::invalid(format!("`{class}` is not a 1D/2D/3D layer"))),
    }
}

/// `(before, after)` amounts per spatial axis from the int / tuple /
/// tuple-of-tuples forms of `padding` and `cropping`.
fn amounts(v: &Value, dims: usize, key: &str, class: &str) -> Result<Vec<(usize, usize)>> {
    let pair = |x: &Value, what: &str| -> Result<(usize, usize)> {
        let p = int_tuple(x, 2, what, class, true)?;
        Ok((p[0], p[1]))
    };
    if dims == 1 {
        return Ok(vec![pair(v, key)?]);
    }
    match v {
        Value::Number(_) => Ok(vec![pair(v, key)?; dims]),
        Value::Array(list) if list.len() == dims => list
            .iter()
            .enumerate()
            .map(|(i, x)| pair(x, &format!("{key}[{i}]")))
            .collect(),
        _ => Err(Error::mismatch(
            format!(
                "`{key}` of `{class}`: an integer, or {dims} entries each an integer or a pair of integers"
            ),
            v,
        )),
    }
}

/// Channels-last per-sample shape as 3 spatial sizes (leading 1s) and
/// the channel count.
fn frame(shape_last: &[usize]) -> ([usize; 3], usize) {
    let dims = shape_last.len() - 1;
    let mut s = [1; 3];
    s[3 - dims..].copy_from_slice(&shape_last[..dims]);
    (s, shape_last[dims])
}

/// Per-sample shape from 3 spatial sizes (of which the last `dims` count)
/// and channels.
fn unframe(s: [usize; 3], dims: usize, c: usize) -> Vec<usize> {
    let mut v = s[3 - dims..].to_vec();
    v.push(c);
    v
}

/// Copy one sample: `dst[p] = src[p + off]` wherever both exist (per
/// spatial axis; channels last, `c` values per position).
fn shift_copy(src: &[f32], s: [usize; 3], dst: &mut [f32], d: [usize; 3], off: [i64; 3], c: usize) {
    let range = |axis: usize| {
        let lo = (-off[axis]).max(0);
        let hi = (s[axis] as i64 - off[axis]).min(d[axis] as i64);
        (lo as usize, hi.max(lo) as usize)
    };
    let (r0, r1, r2) = (range(0), range(1), range(2));
    let width = (r2.1 - r2.0) * c;
    if width == 0 {
        return;
    }
    for a in r0.0..r0.1 {
        let sa = (a as i64 + off[0]) as usize;
        for b in r1.0..r1.1 {
            let sb = (b as i64 + off[1]) as usize;
            let dst_at = ((a * d[1] + b) * d[2] + r2.0) * c;
            let src_at = ((sa * s[1] + sb) * s[2] + (r2.0 as i64 + off[2]) as usize) * c;
            dst[dst_at..dst_at + width].copy_from_slice(&src[src_at..src_at + width]);
        }
    }
}

/// Channels-last values of `x` (moved when `channels_first`).
fn last_values<'a>(x: &'a ndarray::ArrayD<f32>, cf: bool) -> std::borrow::Cow<'a, [f32]> {
    if cf {
        std::borrow::Cow::Owned(to_channels_last(x).into_raw_vec_and_offset().0)
    } else {
        standard(x)
    }
}

/// A channels-last result `[n, shape_last...]` in the layer's layout.
fn layout(
    n: usize,
    shape_last: &[usize],
    data: Vec<f32>,
    cf: bool,
) -> Result<ndarray::ArrayD<f32>> {
    let mut shape = vec![n];
    shape.extend_from_slice(shape_last);
    let y = array(shape, data)?;
    Ok(if cf { to_channels_first(&y) } else { y })
}

/// The channels-last per-sample input shape, after checking the rank.
fn input_last(per_sample: &[usize], dims: usize, cf: bool, class: &str) -> Result<Vec<usize>> {
    check_rank(per_sample, dims, class)?;
    Ok(if cf {
        shape_to_last(per_sample)
    } else {
        per_sample.to_vec()
    })
}

fn output_layout(shape_last: Vec<usize>, cf: bool) -> Vec<usize> {
    if cf {
        shape_to_first(&shape_last)
    } else {
        shape_last
    }
}

// ---------------------------------------------------------------------------
// ZeroPadding / Cropping
// ---------------------------------------------------------------------------

/// (input frame, output frame, channels, offset of the output in the
/// input) of a padding or cropping.
type Shift = ([usize; 3], [usize; 3], usize, [i64; 3]);

/// `ZeroPadding1D/2D/3D` (`crop == false`) or `Cropping1D/2D/3D`.
#[derive(Debug, Clone)]
pub struct PadCrop {
    class: String,
    crop: bool,
    amounts: Vec<(usize, usize)>,
    channels_first: bool,
}

/// Builder of `ZeroPadding1D/2D/3D` and `Cropping1D/2D/3D`.
pub fn build_pad_crop(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let class = cx.class_name;
    let dims = rank_of(class)?;
    let crop = class.starts_with("Cropping");
    let key = if crop { "cropping" } else { "padding" };
    let default = match (crop, dims) {
        (true, 2) => 0,
        _ => 1,
    };
    let amounts = match cx.config.get(key) {
        None => vec![(default, default); dims],
        Some(v) => amounts(v, dims, key, class)?,
    };
    let channels_first = if crop && dims == 1 {
        false
    } else {
        channels_first(cx)?
    };
    let layer = PadCrop {
        class: class.to_string(),
        crop,
        amounts,
        channels_first,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl PadCrop {
    /// (input frame, output frame, channels, offset of output in input).
    fn geometry(&self, per_sample: &[usize]) -> Result<Shift> {
        let dims = self.amounts.len();
        let input = input_last(per_sample, dims, self.channels_first, &self.class)?;
        let (s, c) = frame(&input);
        let mut d = s;
        let mut off = [0i64; 3];
        for (a, &(lo, hi)) in self.amounts.iter().enumerate() {
            let axis = 3 - dims + a;
            if self.crop {
                let keep = s[axis].checked_sub(lo).and_then(|v| v.checked_sub(hi));
                d[axis] = match keep {
                    Some(k) if k > 0 => k,
                    _ => {
                        return Err(Error::mismatch(
                            format!(
                                "`cropping` of `{}` smaller than the input {} along each axis",
                                self.class,
                                keras_shape(per_sample)
                            ),
                            format!("{:?}", self.amounts),
                        ));
                    }
                };
                off[axis] = lo as i64;
            } else {
                d[axis] = s[axis]
                    .checked_add(lo)
                    .and_then(|v| v.checked_add(hi))
                    .filter(|&v| v as i64 <= MAX_OPTION * 4)
                    .ok_or_else(|| {
                        Error::limit("max_dim", format!("`padding` of `{}`", self.class))
                    })?;
                off[axis] = -(lo as i64);
            }
        }
        Ok((s, d, c, off))
    }
}

impl LayerOp for PadCrop {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let (_, d, c, _) = self.geometry(single_shape(inputs, &self.class)?)?;
        Ok(output_layout(
            unframe(d, self.amounts.len(), c),
            self.channels_first,
        ))
    }

    fn forward(&self, x: &[&ndarray::ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = super::norm::single(x, &self.class)?;
        let n = x.shape()[0];
        let (s, d, c, off) = self.geometry(&x.shape()[1..])?;
        let xs = last_values(x, self.channels_first);
        let (in_ps, out_ps) = (
            s.iter().product::<usize>() * c,
            d.iter().product::<usize>() * c,
        );
        let mut y = vec![0f32; n * out_ps];
        each_sample(&xs, in_ps, &mut y, out_ps, |xb, yb| {
            shift_copy(xb, s, yb, d, off, c)
        });
        let y = layout(
            n,
            &unframe(d, self.amounts.len(), c),
            y,
            self.channels_first,
        )?;
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ndarray::ArrayD<f32>],
        y: &ndarray::ArrayD<f32>,
        _saved: &Saved,
        dy: ndarray::ArrayD<f32>,
    ) -> Result<Backward> {
        let x = super::norm::single(x, &self.class)?;
        check_grad(&dy, y.shape())?;
        let n = x.shape()[0];
        let (s, d, c, off) = self.geometry(&x.shape()[1..])?;
        let dys = last_values(&dy, self.channels_first);
        let (in_ps, out_ps) = (
            s.iter().product::<usize>() * c,
            d.iter().product::<usize>() * c,
        );
        let mut dx = vec![0f32; n * in_ps];
        let back = [-off[0], -off[1], -off[2]];
        each_sample(&dys, out_ps, &mut dx, in_ps, |gb, db| {
            shift_copy(gb, d, db, s, back, c)
        });
        let dx = layout(
            n,
            &unframe(s, self.amounts.len(), c),
            dx,
            self.channels_first,
        )?;
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!(
            "{}={:?}",
            if self.crop { "cropping" } else { "padding" },
            self.amounts
        ))
    }

    crate::clone_box!();
}

// ---------------------------------------------------------------------------
// Resampling along one axis
// ---------------------------------------------------------------------------

/// An interpolation of `jax.image.resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// `nearest`.
    Nearest,
    /// `bilinear` (triangle kernel).
    Bilinear,
    /// `bicubic` (Keys cubic kernel, a = -0.5).
    Bicubic,
    /// `lanczos3`.
    Lanczos3,
    /// `lanczos5`.
    Lanczos5,
}

const INTERPOLATIONS: &[&str] = &["nearest", "bilinear", "bicubic", "lanczos3", "lanczos5"];

impl Interpolation {
    fn parse(v: &Value, default: Interpolation, class: &str) -> Result<Interpolation> {
        let s = match v {
            Value::Null => return Ok(default),
            Value::String(s) => s.as_str(),
            other => {
                return Err(Error::mismatch(
                    format!("`interpolation` of `{class}`: one of {INTERPOLATIONS:?}"),
                    other,
                ));
            }
        };
        Ok(match s {
            "nearest" => Interpolation::Nearest,
            "bilinear" => Interpolation::Bilinear,
            "bicubic" => Interpolation::Bicubic,
            "lanczos3" => Interpolation::Lanczos3,
            "lanczos5" => Interpolation::Lanczos5,
            other => {
                return Err(Error::unsupported("interpolation", other, INTERPOLATIONS));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
            Interpolation::Lanczos3 => "lanczos3",
            Interpolation::Lanczos5 => "lanczos5",
        }
    }

    /// The kernel of `jax/_src/image/scale.py` at `x ≥ 0`, in float32.
    fn kernel(self, x: f32) -> f32 {
        use std::f32::consts::PI;
        match self {
            Interpolation::Nearest => 0.0,
            Interpolation::Bilinear => (1.0 - x.abs()).max(0.0),
            Interpolation::Bicubic => {
                if x >= 2.0 {
                    0.0
                } else if x >= 1.0 {
                    ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
                } else {
                    ((1.5 * x - 2.5) * x) * x + 1.0
                }
            }
            Interpolation::Lanczos3 | Interpolation::Lanczos5 => {
                let r: f32 = if self == Interpolation::Lanczos3 {
                    3.0
                } else {
                    5.0
                };
                if x > r {
                    0.0
                } else if x > 1e-3 {
                    let y = r * (PI * x).sin() * (PI * x / r).sin();
                    y / ((std::f64::consts::PI * std::f64::consts::PI) as f32 * (x * x))
                } else {
                    1.0
                }
            }
        }
    }
}

/// How one spatial axis of size `m` becomes size `n`.
#[derive(Debug, Clone)]
enum AxisMap {
    /// Unchanged.
    Same,
    /// Output `j` copies input `idx[j]`.
    Gather(Vec<usize>),
    /// Output `j` is `Σ_i w[j][i - start[j]] · input i` over the kernel's
    /// support (the weights elsewhere are exactly zero).
    Weights { start: Vec<usize>, w: Vec<Vec<f32>> },
}

/// The support radius of a kernel.
fn radius(interp: Interpolation) -> f64 {
    match interp {
        Interpolation::Nearest | Interpolation::Bilinear => 1.0,
        Interpolation::Bicubic => 2.0,
        Interpolation::Lanczos3 => 3.0,
        Interpolation::Lanczos5 => 5.0,
    }
}

/// `compute_weight_mat` (no translation, no edge padding), in float32, for
/// the inputs near each sample position (the others weigh exactly zero, so
/// sums over the support equal JAX's sums over the whole axis).
fn weight_rows(
    m: usize,
    n: usize,
    interp: Interpolation,
    antialias: bool,
) -> (Vec<usize>, Vec<Vec<f32>>) {
    let scale = n as f64 / m as f64;
    let inv = 1.0 / scale;
    let inv32 = inv as f32;
    let kernel_scale = if antialias { inv32.max(1.0) } else { 1.0 };
    let reach = radius(interp) * f64::from(kernel_scale) + 2.0;
    let limit = 1000.0 * f32::EPSILON;
    let upper = (m as f64 - 0.5) as f32;
    let mut starts = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    for j in 0..n {
        let sample = (j as f32 + 0.5) * inv32 - 0.5;
        let centre = f64::from(sample);
        let lo = (centre - reach).floor().max(0.0).min(m as f64) as usize;
        let hi = (centre + reach).ceil().max(0.0).min(m as f64) as usize;
        let mut row: Vec<f32> = (lo..hi.max(lo))
            .map(|i| interp.kernel((sample - i as f32).abs() / kernel_scale))
            .collect();
        let mut total = 0f32;
        for &v in &row {
            total += v;
        }
        let inside = (-0.5..=upper).contains(&sample);
        for v in &mut row {
            *v = if total.abs() > limit && inside {
                *v / if total != 0.0 { total } else { 1.0 }
            } else {
                0.0
            };
        }
        starts.push(lo);
        rows.push(row);
    }
    (starts, rows)
}

impl AxisMap {
    fn new(m: usize, n: usize, interp: Interpolation, antialias: bool) -> AxisMap {
        if m == n {
            return AxisMap::Same;
        }
        match interp {
            Interpolation::Nearest => {
                // `floor((j + 0.5) * m / n)`, as XLA folds the constants.
                let ratio = m as f32 * (1.0 / n as f32);
                AxisMap::Gather(
                    (0..n)
                        .map(|j| (((j as f32 + 0.5) * ratio).floor() as usize).min(m - 1))
                        .collect(),
                )
            }
            _ => {
                let (start, w) = weight_rows(m, n, interp, antialias);
                AxisMap::Weights { start, w }
            }
        }
    }

    /// Resample `[outer, m, inner]` → `[outer, n, inner]` (one sample).
    fn apply(&self, x: &[f32], outer: usize, m: usize, inner: usize, y: &mut [f32]) {
        match self {
            AxisMap::Same => y.copy_from_slice(x),
            AxisMap::Gather(idx) => {
                let n = idx.len();
                for o in 0..outer {
                    for (j, &i) in idx.iter().enumerate() {
                        let src = (o * m + i) * inner;
                        let dst = (o * n + j) * inner;
                        y[dst..dst + inner].copy_from_slice(&x[src..src + inner]);
                    }
                }
            }
            AxisMap::Weights { start, w } => {
                let n = w.len();
                y.fill(0.0);
                for o in 0..outer {
                    for (j, (&lo, row)) in start.iter().zip(w).enumerate() {
                        let dst = (o * n + j) * inner;
                        let acc = &mut y[dst..dst + inner];
                        for (i, &wij) in (lo..).zip(row) {
                            let src = (o * m + i) * inner;
                            for (a, &v) in acc.iter_mut().zip(&x[src..src + inner]) {
                                *a += wij * v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The transpose: `[outer, n, inner]` gradients → `[outer, m, inner]`.
    fn transpose(&self, dy: &[f32], outer: usize, m: usize, inner: usize, dx: &mut [f32]) {
        match self {
            AxisMap::Same => dx.copy_from_slice(dy),
            AxisMap::Gather(idx) => {
                let n = idx.len();
                dx.fill(0.0);
                for o in 0..outer {
                    for (j, &i) in idx.iter().enumerate() {
                        let src = (o * n + j) * inner;
                        let dst = (o * m + i) * inner;
                        for (a, &v) in dx[dst..dst + inner].iter_mut().zip(&dy[src..src + inner]) {
                            *a += v;
                        }
                    }
                }
            }
            AxisMap::Weights { start, w } => {
                let n = w.len();
                dx.fill(0.0);
                for o in 0..outer {
                    for (j, (&lo, row)) in start.iter().zip(w).enumerate() {
                        let src = (o * n + j) * inner;
                        for (i, &wij) in (lo..).zip(row) {
                            let dst = (o * m + i) * inner;
                            for (a, &v) in
                                dx[dst..dst + inner].iter_mut().zip(&dy[src..src + inner])
                            {
                                *a += wij * v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A resize of the spatial axes of channels-last samples: one map per axis
/// (3 axes, leading ones of size 1 unchanged).
#[derive(Debug, Clone)]
struct Resample {
    inp: [usize; 3],
    out: [usize; 3],
    c: usize,
    maps: [AxisMap; 3],
}

impl Resample {
    fn new(
        inp: [usize; 3],
        out: [usize; 3],
        c: usize,
        interp: Interpolation,
        antialias: bool,
    ) -> Self {
        let map = |a: usize| AxisMap::new(inp[a], out[a], interp, antialias);
        Resample {
            inp,
            out,
            c,
            maps: [map(0), map(1), map(2)],
        }
    }

    fn in_len(&self) -> usize {
        self.inp.iter().product::<usize>() * self.c
    }

    fn out_len(&self) -> usize {
        self.out.iter().product::<usize>() * self.c
    }

    /// One sample, axis 0 first.
    fn forward(&self, x: &[f32], y: &mut [f32]) {
        let mut cur = x.to_vec();
        let mut dims = self.inp;
        for a in 0..3 {
            if matches!(self.maps[a], AxisMap::Same) {
                continue;
            }
            let outer: usize = dims[..a].iter().product();
            let inner: usize = dims[a + 1..].iter().product::<usize>() * self.c;
            let mut next = vec![0f32; outer * self.out[a] * inner];
            self.maps[a].apply(&cur, outer, dims[a], inner, &mut next);
            dims[a] = self.out[a];
            cur = next;
        }
        y.copy_from_slice(&cur);
    }

    /// One sample's gradient, last axis first.
    fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        let mut cur = dy.to_vec();
        let mut dims = self.out;
        for a in (0..3).rev() {
            if matches!(self.maps[a], AxisMap::Same) {
                continue;
            }
            let outer: usize = dims[..a].iter().product();
            let inner: usize = dims[a + 1..].iter().product::<usize>() * self.c;
            let mut next = vec![0f32; outer * self.inp[a] * inner];
            self.maps[a].transpose(&cur, outer, self.inp[a], inner, &mut next);
            dims[a] = self.inp[a];
            cur = next;
        }
        dx.copy_from_slice(&cur);
    }
}

// ---------------------------------------------------------------------------
// UpSampling
// ---------------------------------------------------------------------------

/// `UpSampling1D/2D/3D`.
#[derive(Debug, Clone)]
pub struct UpSampling {
    class: String,
    size: Vec<usize>,
    interpolation: Interpolation,
    channels_first: bool,
}

/// Builder of `UpSampling1D/2D/3D`.
pub fn build_up_sampling(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let class = cx.class_name;
    let dims = rank_of(class)?;
    let size = match (cx.config.get("size"), dims) {
        (None, _) => vec![2; dims],
        // `UpSampling1D` takes a plain integer only.
        (Some(v @ Value::Number(_)), 1) => int_tuple(v, 1, "size", class, false)?,
        (Some(v), 1) => {
            return Err(Error::mismatch(
                format!("`size` of `{class}`: a positive integer"),
                v,
            ));
        }
        (Some(v), _) => int_tuple(v, dims, "size", class, false)?,
    };
    let interpolation = if dims == 2 {
        let v = match cx.get("interpolation") {
            Value::String(s) => Value::String(s.to_lowercase()),
            other => other.clone(),
        };
        Interpolation::parse(&v, Interpolation::Nearest, class)?
    } else {
        Interpolation::Nearest
    };
    let channels_first = if dims == 1 {
        false
    } else {
        channels_first(cx)?
    };
    let layer = UpSampling {
        class: class.to_string(),
        size,
        interpolation,
        channels_first,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl UpSampling {
    fn geometry(&self, per_sample: &[usize]) -> Result<([usize; 3], [usize; 3], usize)> {
        let dims = self.size.len();
        let input = input_last(per_sample, dims, self.channels_first, &self.class)?;
        let (s, c) = frame(&input);
        let mut d = s;
        for (a, &k) in self.size.iter().enumerate() {
            let axis = 3 - dims + a;
            d[axis] = s[axis]
                .checked_mul(k)
                .filter(|&v| v as i64 <= MAX_OPTION)
                .ok_or_else(|| Error::limit("max_dim", format!("`size` of `{}`", self.class)))?;
        }
        Ok((s, d, c))
    }
}

/// `ops.repeat` along every axis (one sample).
fn repeat_sample(x: &[f32], s: [usize; 3], k: [usize; 3], c: usize, y: &mut [f32]) {
    let d = [s[0] * k[0], s[1] * k[1], s[2] * k[2]];
    for a in 0..d[0] {
        for b in 0..d[1] {
            let src_row = ((a / k[0]) * s[1] + b / k[1]) * s[2];
            let dst_row = (a * d[1] + b) * d[2];
            for e in 0..d[2] {
                let src = (src_row + e / k[2]) * c;
                let dst = (dst_row + e) * c;
                y[dst..dst + c].copy_from_slice(&x[src..src + c]);
            }
        }
    }
}

/// The gradient of [`repeat_sample`]: repeats summed, the last axis first.
fn repeat_grad_sample(dy: &[f32], s: [usize; 3], k: [usize; 3], c: usize, dx: &mut [f32]) {
    let d = [s[0] * k[0], s[1] * k[1], s[2] * k[2]];
    let mut acc_b = vec![0f32; c];
    let mut acc_e = vec![0f32; c];
    for p in 0..s[0] {
        for q in 0..s[1] {
            for r in 0..s[2] {
                let out = ((p * s[1] + q) * s[2] + r) * c;
                let total = &mut dx[out..out + c];
                total.fill(0.0);
                for a in p * k[0]..(p + 1) * k[0] {
                    acc_b.fill(0.0);
                    for b in q * k[1]..(q + 1) * k[1] {
                        acc_e.fill(0.0);
                        for e in r * k[2]..(r + 1) * k[2] {
                            let src = ((a * d[1] + b) * d[2] + e) * c;
                            for (t, &v) in acc_e.iter_mut().zip(&dy[src..src + c]) {
                                *t += v;
                            }
                        }
                        for (t, &v) in acc_b.iter_mut().zip(&acc_e) {
                            *t += v;
                        }
                    }
                    for (t, &v) in total.iter_mut().zip(&acc_b) {
                        *t += v;
                    }
                }
            }
        }
    }
}

impl LayerOp for UpSampling {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let (_, d, c) = self.geometry(single_shape(inputs, &self.class)?)?;
        Ok(output_layout(
            unframe(d, self.size.len(), c),
            self.channels_first,
        ))
    }

    fn forward(&self, x: &[&ndarray::ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = super::norm::single(x, &self.class)?;
        let n = x.shape()[0];
        let (s, d, c) = self.geometry(&x.shape()[1..])?;
        let xs = last_values(x, self.channels_first);
        let (in_ps, out_ps) = (
            s.iter().product::<usize>() * c,
            d.iter().product::<usize>() * c,
        );
        let mut y = vec![0f32; n * out_ps];
        if self.interpolation == Interpolation::Nearest {
            let k = frame(&unframe_sizes(&self.size)).0;
            each_sample(&xs, in_ps, &mut y, out_ps, |xb, yb| {
                repeat_sample(xb, s, k, c, yb)
            });
        } else {
            let r = Resample::new(s, d, c, self.interpolation, false);
            each_sample(&xs, in_ps, &mut y, out_ps, |xb, yb| r.forward(xb, yb));
        }
        let y = layout(n, &unframe(d, self.size.len(), c), y, self.channels_first)?;
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ndarray::ArrayD<f32>],
        y: &ndarray::ArrayD<f32>,
        _saved: &Saved,
        dy: ndarray::ArrayD<f32>,
    ) -> Result<Backward> {
        let x = super::norm::single(x, &self.class)?;
        check_grad(&dy, y.shape())?;
        let n = x.shape()[0];
        let (s, d, c) = self.geometry(&x.shape()[1..])?;
        let dys = last_values(&dy, self.channels_first);
        let (in_ps, out_ps) = (
            s.iter().product::<usize>() * c,
            d.iter().product::<usize>() * c,
        );
        let mut dx = vec![0f32; n * in_ps];
        if self.interpolation == Interpolation::Nearest {
            let k = frame(&unframe_sizes(&self.size)).0;
            each_sample(&dys, out_ps, &mut dx, in_ps, |gb, db| {
                repeat_grad_sample(gb, s, k, c, db)
            });
        } else {
            let r = Resample::new(s, d, c, self.interpolation, false);
            each_sample(&dys, out_ps, &mut dx, in_ps, |gb, db| r.backward(gb, db));
        }
        let dx = layout(n, &unframe(s, self.size.len(), c), dx, self.channels_first)?;
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!(
            "size={:?}, interpolation={}",
            self.size,
            self.interpolation.name()
        ))
    }

    crate::clone_box!();
}

/// Sizes as a per-sample shape with one (ignored) channel, for [`frame`].
fn unframe_sizes(size: &[usize]) -> Vec<usize> {
    let mut v = size.to_vec();
    v.push(1);
    v
}

// ---------------------------------------------------------------------------
// Resizing
// ---------------------------------------------------------------------------

/// What `Resizing` does before resizing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Aspect {
    /// Stretch.
    Stretch,
    /// `crop_to_aspect_ratio`.
    Crop,
    /// `pad_to_aspect_ratio` with this `fill_value`.
    Pad(f32),
}

/// `Resizing(height, width, ...)`.
#[derive(Debug, Clone)]
pub struct Resizing {
    height: usize,
    width: usize,
    interpolation: Interpolation,
    antialias: bool,
    aspect: Aspect,
    channels_first: bool,
}

/// Builder of `Resizing`.
pub fn build_resizing(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let size = |key: &str| -> Result<usize> {
        match cx.get(key).as_i64() {
            Some(v) if (1..=MAX_OPTION).contains(&v) => Ok(v as usize),
            _ => Err(Error::mismatch(
                format!("`{key}` of `Resizing`: an integer in 1..={MAX_OPTION}"),
                cx.get(key),
            )),
        }
    };
    let (height, width) = (size("height")?, size("width")?);
    let interpolation =
        Interpolation::parse(cx.get("interpolation"), Interpolation::Bilinear, "Resizing")?;
    match cx.get("fill_mode") {
        Value::Null => {}
        Value::String(s) if s == "constant" => {}
        v => {
            return Err(Error::mismatch(
                "`fill_mode` of `Resizing`: \"constant\" (the only mode Keras's JAX backend resizes with)",
                v,
            ));
        }
    }
    let crop = cx.bool_or("crop_to_aspect_ratio", false)?;
    let pad = cx.bool_or("pad_to_aspect_ratio", false)?;
    let fill = cx.f64_or("fill_value", 0.0)?;
    let aspect = match (crop, pad) {
        (true, true) => {
            return Err(Error::mismatch(
                "at most one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` for `Resizing`",
                "both true",
            ));
        }
        (true, false) => Aspect::Crop,
        (false, true) => Aspect::Pad(fill as f32),
        (false, false) => Aspect::Stretch,
    };
    let antialias = match cx.get("antialias") {
        Value::Null => false,
        Value::Bool(b) => *b,
        // `bool(antialias)` in Keras's constructor.
        Value::Number(n) => n.as_f64() != Some(0.0),
        v => {
            return Err(Error::mismatch(
                "a boolean for `antialias` of `Resizing`",
                v,
            ));
        }
    };
    let layer = Resizing {
        height,
        width,
        interpolation,
        antialias,
        aspect,
        channels_first: channels_first(cx)?,
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

/// Resizing's plan for one input size: crop or pad, then resample.
struct Plan {
    /// Input frame.
    inp: [usize; 3],
    /// Frame after the crop or pad.
    mid: [usize; 3],
    /// Offset of `mid` in the input (`mid[p] = in[p + off]`).
    off: [i64; 3],
    /// Fill value of padded positions (only with padding).
    fill: Option<f32>,
    /// Channels.
    c: usize,
}

impl Resizing {
    fn plan(&self, per_sample: &[usize]) -> Result<Plan> {
        let input = input_last(per_sample, 2, self.channels_first, "Resizing")?;
        let (inp, c) = frame(&input);
        let (h, w) = (inp[1], inp[2]);
        let (th, tw) = (self.height, self.width);
        // Python's `int(float(a) / b)` of non-negative values.
        let ratio = |a: usize, b: usize, d: usize| (a as f64 * b as f64 / d as f64) as usize;
        let mut mid = inp;
        let mut off = [0i64; 3];
        let mut fill = None;
        match self.aspect {
            Aspect::Stretch => {}
            Aspect::Crop => {
                let ch = ratio(w, th, tw).min(h).max(1);
                let cw = ratio(h, tw, th).min(w).max(1);
                mid[1] = ch;
                mid[2] = cw;
                off[1] = ((h - ch) as f64 / 2.0) as i64;
                off[2] = ((w - cw) as f64 / 2.0) as i64;
            }
            Aspect::Pad(v) => {
                let ph = ratio(w, th, tw).max(h);
                let pw = ratio(h, tw, th).max(w);
                let hs = ((ph - h) as f64 / 2.0) as usize;
                let ws = ((pw - w) as f64 / 2.0) as usize;
                // Keras pads `hs` rows on both sides if `hs > 0`, else `ws`
                // columns on both sides.
                if hs > 0 {
                    mid[1] = h.saturating_add(hs.saturating_mul(2));
                    off[1] = -(hs as i64);
                } else if ws > 0 {
                    mid[2] = w.saturating_add(ws.saturating_mul(2));
                    off[2] = -(ws as i64);
                }
                fill = Some(v);
            }
        }
        let elements = mid.iter().try_fold(c, |a, &d| a.checked_mul(d));
        if elements.is_none_or(|v| v > 1 << 28) {
            return Err(Error::limit("max_sample_elements", "`Resizing` padding"));
        }
        Ok(Plan {
            inp,
            mid,
            off,
            fill,
            c,
        })
    }

    /// The resampling of a plan (built only to run: its weights take
    /// memory proportional to the output size).
    fn resample(&self, p: &Plan) -> Resample {
        Resample::new(
            p.mid,
            [1, self.height, self.width],
            p.c,
            self.interpolation,
            self.antialias,
        )
    }
}

impl LayerOp for Resizing {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let input = single_shape(inputs, "Resizing")?;
        let p = self.plan(input)?;
        Ok(output_layout(
            vec![self.height, self.width, p.c],
            self.channels_first,
        ))
    }

    fn forward(&self, x: &[&ndarray::ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = super::norm::single(x, "Resizing")?;
        let n = x.shape()[0];
        let p = self.plan(&x.shape()[1..])?;
        let (c, r) = (p.c, self.resample(&p));
        let xs = last_values(x, self.channels_first);
        let (in_ps, out_ps) = (p.inp.iter().product::<usize>() * c, r.out_len());
        let mid_ps = r.in_len();
        let mut y = vec![0f32; n * out_ps];
        each_sample(&xs, in_ps, &mut y, out_ps, |xb, yb| {
            if p.mid == p.inp {
                r.forward(xb, yb);
            } else {
                let mut mid = vec![p.fill.unwrap_or(0.0); mid_ps];
                shift_copy(xb, p.inp, &mut mid, p.mid, p.off, c);
                r.forward(&mid, yb);
            }
        });
        let y = layout(n, &[self.height, self.width, c], y, self.channels_first)?;
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ndarray::ArrayD<f32>],
        y: &ndarray::ArrayD<f32>,
        _saved: &Saved,
        dy: ndarray::ArrayD<f32>,
    ) -> Result<Backward> {
        let x = super::norm::single(x, "Resizing")?;
        check_grad(&dy, y.shape())?;
        let n = x.shape()[0];
        let p = self.plan(&x.shape()[1..])?;
        let (c, r) = (p.c, self.resample(&p));
        let dys = last_values(&dy, self.channels_first);
        let (in_ps, out_ps) = (p.inp.iter().product::<usize>() * c, r.out_len());
        let mid_ps = r.in_len();
        let mut dx = vec![0f32; n * in_ps];
        let back = [-p.off[0], -p.off[1], -p.off[2]];
        each_sample(&dys, out_ps, &mut dx, in_ps, |gb, db| {
            if p.mid == p.inp {
                r.backward(gb, db);
            } else {
                let mut mid = vec![0f32; mid_ps];
                r.backward(gb, &mut mid);
                shift_copy(&mid, p.mid, db, p.inp, back, c);
            }
        });
        let dx = layout(n, &[p.inp[1], p.inp[2], c], dx, self.channels_first)?;
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!(
            "{}x{}, interpolation={}",
            self.height,
            self.width,
            self.interpolation.name()
        ))
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{build, gradients, values};
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use rand::SeedableRng;
    use serde_json::json;

    fn builder(class: &str) -> super::super::Builder {
        match class {
            c if c.starts_with("UpSampling") => build_up_sampling,
            "Resizing" => build_resizing,
            _ => build_pad_crop,
        }
    }

    fn try_build(
        class: &str,
        config: serde_json::Value,
        input: &[usize],
    ) -> Result<Box<dyn LayerOp>> {
        let config = config.as_object().unwrap().clone();
        builder(class)(&BuildCx {
            class_name: class,
            name: "s",
            config: &config,
            inputs: &[input.to_vec()],
            stored: &[],
            vars_path: "layers/s/vars",
            group: None,
        })
    }

    fn forward(op: &dyn LayerOp, x: &ArrayD<f32>) -> ArrayD<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        op.forward(&[x], &mut cx).unwrap().y
    }

    #[test]
    fn padding_and_cropping_forms() {
        for (class, cfg, input, out) in [
            ("ZeroPadding1D", json!({}), vec![3, 2], vec![5, 2]),
            (
                "ZeroPadding1D",
                json!({"padding": [0, 2]}),
                vec![3, 2],
                vec![5, 2],
            ),
            (
                "ZeroPadding2D",
                json!({"padding": 1}),
                vec![3, 2, 1],
                vec![5, 4, 1],
            ),
            (
                "ZeroPadding2D",
                json!({"padding": [2, 1]}),
                vec![3, 2, 1],
                vec![7, 4, 1],
            ),
            (
                "ZeroPadding2D",
                json!({"padding": [[1, 0], 2]}),
                vec![3, 2, 1],
                vec![4, 6, 1],
            ),
            (
                "ZeroPadding3D",
                json!({}),
                vec![1, 1, 1, 2],
                vec![3, 3, 3, 2],
            ),
            (
                "ZeroPadding2D",
                json!({"padding": 1, "data_format": "channels_first"}),
                vec![2, 3, 2],
                vec![2, 5, 4],
            ),
            ("Cropping1D", json!({}), vec![5, 2], vec![3, 2]),
            ("Cropping2D", json!({}), vec![3, 2, 1], vec![3, 2, 1]),
            (
                "Cropping2D",
                json!({"cropping": [[1, 0], [0, 1]]}),
                vec![3, 2, 1],
                vec![2, 1, 1],
            ),
            ("Cropping3D", json!({}), vec![3, 4, 5, 1], vec![1, 2, 3, 1]),
            ("UpSampling1D", json!({"size": 3}), vec![2, 2], vec![6, 2]),
            (
                "UpSampling2D",
                json!({"size": [1, 3]}),
                vec![2, 2, 1],
                vec![2, 6, 1],
            ),
            (
                "UpSampling3D",
                json!({}),
                vec![1, 2, 1, 1],
                vec![2, 4, 2, 1],
            ),
            (
                "Resizing",
                json!({"height": 4, "width": 3}),
                vec![2, 5, 2],
                vec![4, 3, 2],
            ),
        ] {
            let op = try_build(class, cfg.clone(), &input).unwrap();
            assert_eq!(op.output_shape(&[input]).unwrap(), out, "{class} {cfg}");
        }
        let op = try_build("ZeroPadding1D", json!({"padding": [1, 2]}), &[2, 1]).unwrap();
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 2, 1]), vec![3.0, 4.0]).unwrap();
        assert_eq!(
            forward(op.as_ref(), &x).as_slice().unwrap(),
            [0.0, 3.0, 4.0, 0.0, 0.0]
        );
        let op = try_build("Cropping1D", json!({"cropping": [1, 0]}), &[2, 1]).unwrap();
        assert_eq!(forward(op.as_ref(), &x).as_slice().unwrap(), [4.0]);
    }

    #[test]
    fn nearest_and_bilinear_values() {
        // jax.image.resize([0, 1, 2], 5, "nearest") = [0, 0, 1, 2, 2].
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 3, 1, 1]), vec![0.0, 1.0, 2.0]).unwrap();
        let op = try_build(
            "Resizing",
            json!({"height": 5, "width": 1, "interpolation": "nearest"}),
            &[3, 1, 1],
        )
        .unwrap();
        assert_eq!(
            forward(op.as_ref(), &x).as_slice().unwrap(),
            [0.0, 0.0, 1.0, 2.0, 2.0]
        );
        // Bilinear 3 -> 6: sample points (j + 0.5) / 2 - 0.5, edges clamp.
        let op = try_build("Resizing", json!({"height": 6, "width": 1}), &[3, 1, 1]).unwrap();
        assert_eq!(
            forward(op.as_ref(), &x).as_slice().unwrap(),
            [0.0, 0.25, 0.75, 1.25, 1.75, 2.0]
        );
        let op = try_build(
            "UpSampling2D",
            json!({"size": 2, "interpolation": "bilinear"}),
            &[3, 1, 1],
        )
        .unwrap();
        let y = forward(op.as_ref(), &x);
        assert_eq!(y.shape(), [1, 6, 2, 1]);
        assert_eq!(y.as_slice().unwrap()[..4], [0.0, 0.0, 0.25, 0.25]);
    }

    #[test]
    fn spatial_gradients() {
        for (class, cfg, input) in [
            ("ZeroPadding1D", json!({"padding": [2, 1]}), vec![3, 2]),
            (
                "ZeroPadding2D",
                json!({"padding": [[1, 0], [0, 2]]}),
                vec![2, 3, 2],
            ),
            (
                "ZeroPadding3D",
                json!({"padding": 1, "data_format": "channels_first"}),
                vec![2, 2, 1, 2],
            ),
            ("Cropping1D", json!({"cropping": [0, 2]}), vec![5, 2]),
            (
                "Cropping2D",
                json!({"cropping": [1, [0, 1]]}),
                vec![4, 3, 2],
            ),
            (
                "Cropping3D",
                json!({"cropping": [[1, 0], 0, [0, 1]]}),
                vec![3, 2, 3, 1],
            ),
            ("UpSampling1D", json!({"size": 3}), vec![2, 2]),
            ("UpSampling2D", json!({"size": [2, 3]}), vec![2, 2, 2]),
            (
                "UpSampling2D",
                json!({"size": [2, 1], "interpolation": "bicubic"}),
                vec![3, 2, 1],
            ),
            ("UpSampling3D", json!({"size": [1, 2, 2]}), vec![2, 1, 2, 1]),
            ("Resizing", json!({"height": 4, "width": 2}), vec![3, 5, 2]),
            (
                "Resizing",
                json!({"height": 2, "width": 3, "antialias": true, "interpolation": "lanczos3"}),
                vec![5, 4, 1],
            ),
            (
                "Resizing",
                json!({"height": 5, "width": 3, "interpolation": "nearest"}),
                vec![3, 4, 1],
            ),
            (
                "Resizing",
                json!({"height": 3, "width": 3, "crop_to_aspect_ratio": true}),
                vec![4, 5, 1],
            ),
            (
                "Resizing",
                json!({"height": 2, "width": 4, "pad_to_aspect_ratio": true, "fill_value": 1.0, "data_format": "channels_first"}),
                vec![2, 3, 3],
            ),
        ] {
            let op = build(
                builder(class),
                class,
                cfg,
                std::slice::from_ref(&input),
                &[],
            );
            let mut shape = vec![2];
            shape.extend(&input);
            gradients(op.as_ref(), &[values(&shape, 5)], Mode::Training, 1e-2);
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        for (class, cfg, input, needle) in [
            (
                "ZeroPadding2D",
                json!({"padding": -1}),
                vec![3, 3, 1],
                "padding",
            ),
            (
                "ZeroPadding2D",
                json!({"padding": [1, 2, 3]}),
                vec![3, 3, 1],
                "padding",
            ),
            (
                "ZeroPadding2D",
                json!({"padding": null}),
                vec![3, 3, 1],
                "padding",
            ),
            (
                "ZeroPadding1D",
                json!({"padding": [[1, 1]]}),
                vec![3, 1],
                "padding",
            ),
            (
                "ZeroPadding3D",
                json!({"padding": [1, [2, "x"], 0]}),
                vec![3, 3, 3, 1],
                "padding[1]",
            ),
            (
                "ZeroPadding2D",
                json!({"padding": 1u64 << 40}),
                vec![3, 3, 1],
                "padding",
            ),
            (
                "Cropping2D",
                json!({"cropping": [2, 1]}),
                vec![4, 2, 1],
                "cropping",
            ),
            (
                "Cropping1D",
                json!({"cropping": [3, 3]}),
                vec![5, 1],
                "cropping",
            ),
            ("Cropping3D", json!({}), vec![2, 3, 3, 1], "cropping"),
            ("UpSampling1D", json!({"size": [2]}), vec![3, 1], "size"),
            ("UpSampling1D", json!({"size": 0}), vec![3, 1], "size"),
            (
                "UpSampling2D",
                json!({"size": [2, 0]}),
                vec![3, 3, 1],
                "size",
            ),
            (
                "UpSampling2D",
                json!({"interpolation": "area"}),
                vec![3, 3, 1],
                "interpolation",
            ),
            (
                "UpSampling2D",
                json!({"data_format": "channels_sideways"}),
                vec![3, 3, 1],
                "data_format",
            ),
            (
                "UpSampling3D",
                json!({"size": 1u64 << 31}),
                vec![3, 3, 3, 1],
                "size",
            ),
            (
                "Resizing",
                json!({"height": 0, "width": 2}),
                vec![3, 3, 1],
                "height",
            ),
            ("Resizing", json!({"height": 2}), vec![3, 3, 1], "width"),
            (
                "Resizing",
                json!({"height": 2, "width": 2, "interpolation": "area"}),
                vec![3, 3, 1],
                "interpolation",
            ),
            (
                "Resizing",
                json!({"height": 2, "width": 2, "fill_mode": "reflect"}),
                vec![3, 3, 1],
                "fill_mode",
            ),
            (
                "Resizing",
                json!({"height": 2, "width": 2, "crop_to_aspect_ratio": true, "pad_to_aspect_ratio": true}),
                vec![3, 3, 1],
                "aspect",
            ),
            (
                "Resizing",
                json!({"height": 2, "width": 2}),
                vec![3, 3],
                "rank 4",
            ),
        ] {
            let err = match try_build(class, cfg.clone(), &input) {
                Ok(_) => panic!("{class} {cfg} built"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(needle), "{class} {cfg}: {err}");
        }
        // A huge target size is accepted by the builder without allocating
        // (the model importer's size limit refuses it).
        let op = try_build(
            "Resizing",
            json!({"height": 1 << 30, "width": 1 << 30}),
            &[3, 3, 1],
        )
        .unwrap();
        assert_eq!(
            op.output_shape(&[vec![3, 3, 1]]).unwrap(),
            [1 << 30, 1 << 30, 1]
        );
    }
}
