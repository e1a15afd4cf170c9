//! Convolution layers: `Conv1D/2D/3D`, `DepthwiseConv1D/2D`,
//! `SeparableConv1D/2D` and `Conv1D/2D/3DTranspose`, forward and backward in
//! float32.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX; paths relative to `site-packages/`:
//!
//! * `keras/src/layers/convolutional/base_conv.py` (kernel
//!   `kernel_size + (in_channels / groups, filters)`, then bias, then the
//!   activation), `conv1d.py` (`padding="causal"`: left-pad the input by
//!   `dilation · (kernel − 1)`, then a valid convolution),
//!   `base_depthwise_conv.py` (kernel `kernel_size + (in_channels,
//!   depth_multiplier)`, config key `depthwise_regularizer` for it),
//!   `base_separable_conv.py` (`depthwise_kernel`, `pointwise_kernel`
//!   `(1, …, in_channels · depth_multiplier, filters)`, bias),
//!   `base_conv_transpose.py` (kernel `kernel_size + (filters, in_channels)`);
//! * `keras/src/ops/operation_utils.py` `compute_conv_output_shape`,
//!   `keras/src/backend/common/backend_utils.py`
//!   (`_convert_conv_transpose_padding_args_from_keras_to_jax`,
//!   `compute_conv_transpose_output_shape`);
//! * `keras/src/backend/jax/nn.py` (`conv`: `lax.conv_general_dilated` with
//!   `feature_group_count = in_channels / kernel_in_channels`;
//!   `depthwise_conv`: the kernel reshaped to `(…, 1, in · multiplier)` and
//!   one group per input channel, so output channel `c · m + j` reads input
//!   channel `c`; `separable_conv`: depthwise, then a 1×1 `conv`;
//!   `conv_transpose`: `lax.conv_transpose(…, transpose_kernel=True)` with
//!   the padding above), and `jax/_src/lax/convolution.py` (`padtype_to_pads`
//!   for `"same"`: `out = ⌈in / stride⌉`, total padding
//!   `max((out − 1)·stride + dilation·(kernel − 1) + 1 − in, 0)`, the smaller
//!   half before).
//!
//! # How it runs
//!
//! Tensors are turned channels-last (`channels_first` models are permuted
//! on the way in and out) and each sample's convolution becomes one matrix
//! product: `im2col` of the sample times the kernel seen as a `[taps ·
//! in_channels, filters]` matrix (see `engine::im2col`). The backward pass
//! is the two products of that matrix product and `col2im`. A transposed
//! convolution is the adjoint of a convolution from its output space to its
//! input space: `col2im` of `x · kernelᵀ`. Depthwise convolutions run as
//! direct loops over channels. Samples are split over both threads.
//!
//! Products accumulate in float32 in another order than XLA's, so results
//! differ from Keras's by rounding (well within 1e-5 on the fixtures). An
//! activation that is not element-wise (softmax over the channels) is
//! supported for `channels_last` only; `glu` and `lora_rank` are refused.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewMut2, IxDyn, s};
use serde_json::Value;

use super::pool::{channels_first, int_tuple, to_channels_first, to_channels_last};
use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Role, Saved, Var, single_shape};
use crate::engine::gemm::matmul_into;
use crate::engine::im2col::{Geometry, Span};
use crate::engine::pool::halves;
use crate::error::{Error, Result};
use crate::model::activation::Activation;
use crate::model::regularizer::Regularizer;

/// Largest im2col buffer of one sample (values), like the per-sample output
/// cap of the import pass.
const MAX_COLUMNS: usize = 1 << 28;

/// Multiply-adds per call from which samples are split over both threads.
const SPLIT_WORK: usize = 1 << 18;

/// Keras's `padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Padding {
    Valid,
    Same,
    Causal,
}

/// Which convolution.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `ConvND` with `groups`.
    Regular { groups: usize },
    /// `DepthwiseConvND`.
    Depthwise { multiplier: usize },
    /// `SeparableConvND`: depthwise then pointwise.
    Separable { multiplier: usize },
    /// `ConvNDTranspose` with `output_padding` (per axis, if given).
    Transpose { output_padding: Option<Vec<usize>> },
}

/// A convolution layer.
#[derive(Debug, Clone)]
pub struct Conv {
    class: String,
    kind: Kind,
    /// Spatial axes (1, 2 or 3).
    rank: usize,
    kernel_size: Vec<usize>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Padding,
    channels_first: bool,
    /// Input channels.
    in_channels: usize,
    /// Output channels.
    filters: usize,
    activation: Activation,
    use_bias: bool,
    activity: Option<Regularizer>,
    /// In Keras's weights order.
    vars: Vec<Var>,
}

/// A tuple option (`kernel_size`, `strides`, `dilation_rate`): an integer
/// or a list of `rank` positive integers, `default` when absent.
fn tuple(cx: &BuildCx<'_>, key: &str, rank: usize, default: Option<usize>) -> Result<Vec<usize>> {
    match cx.get(key) {
        Value::Null => default
            .map(|d| vec![d; rank])
            .ok_or_else(|| Error::missing(format!("`{key}`")).at(key.to_string())),
        v => int_tuple(v, rank, key, cx.class_name, false),
    }
}

/// `output_padding`: `null`, an integer or a list of `rank` integers ≥ 0.
fn output_padding(cx: &BuildCx<'_>, rank: usize) -> Result<Option<Vec<usize>>> {
    match cx.get("output_padding") {
        Value::Null => Ok(None),
        v => int_tuple(v, rank, "output_padding", cx.class_name, true).map(Some),
    }
}

/// A positive integer option.
fn positive(cx: &BuildCx<'_>, key: &str, default: Option<usize>) -> Result<usize> {
    match cx.get(key) {
        Value::Null => {
            default.ok_or_else(|| Error::missing(format!("`{key}`")).at(key.to_string()))
        }
        v => v
            .as_u64()
            .filter(|&n| n >= 1)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Error::mismatch(format!("a positive integer for `{key}`"), v)),
    }
}

/// The spatial rank and kind of a class.
fn class_info(class: &str) -> Option<(usize, &'static str)> {
    Some(match class {
        "Conv1D" => (1, "conv"),
        "Conv2D" => (2, "conv"),
        "Conv3D" => (3, "conv"),
        "DepthwiseConv1D" => (1, "depthwise"),
        "DepthwiseConv2D" => (2, "depthwise"),
        "SeparableConv1D" => (1, "separable"),
        "SeparableConv2D" => (2, "separable"),
        "Conv1DTranspose" => (1, "transpose"),
        "Conv2DTranspose" => (2, "transpose"),
        "Conv3DTranspose" => (3, "transpose"),
        _ => return None,
    })
}

/// A kernel variable: role, shape, regularizer and constraint config keys.
type KernelSpec<'a> = (Role, Vec<usize>, &'a str, &'a str);

/// Builds any convolution class of this file.
pub fn build(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let (rank, family) = class_info(cx.class_name)
        .ok_or_else(|| Error::invalid(format!("`{}` is not a convolution class", cx.class_name)))?;
    let input = cx.input()?;
    if input.len() != rank + 1 {
        return Err(Error::mismatch(
            format!(
                "an input of rank {} (batch, {rank} spatial axes, channels) for `{}`",
                rank + 2,
                cx.class_name
            ),
            format!("rank {}", input.len() + 1),
        ));
    }
    if !matches!(cx.get("lora_rank"), Value::Null) {
        return Err(Error::invalid(format!(
            "`{}` `{}` has LoRA enabled (`lora_rank`), which kerasrs does not support",
            cx.class_name, cx.name
        ))
        .at("lora_rank"));
    }
    let channels_first = channels_first(cx)?;
    let padding = match cx.get("padding") {
        Value::Null => Padding::Valid,
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "valid" => Padding::Valid,
            "same" => Padding::Same,
            "causal" if cx.class_name == "Conv1D" => Padding::Causal,
            _ => Err(Error::mismatch(
                if cx.class_name == "Conv1D" {
                    "`padding` \"valid\", \"same\" or \"causal\""
                } else {
                    "`padding` \"valid\" or \"same\""
                },
                s.as_str(),
            ))?,
        },
        v => Err(Error::mismatch("a string for `padding`", v))?,
    };
    let kernel_size = tuple(cx, "kernel_size", rank, None)?;
    let strides = tuple(cx, "strides", rank, Some(1))?;
    let dilation = tuple(cx, "dilation_rate", rank, Some(1))?;
    let activation =
        Activation::from_config(cx.get("activation")).map_err(|e| e.at("activation"))?;
    if activation == Activation::Glu {
        return Err(Error::invalid(format!(
            "activation `glu` on `{}` `{}` is not supported (it halves the channels)",
            cx.class_name, cx.name
        ))
        .at("activation"));
    }
    if !activation.is_elementwise() && channels_first {
        return Err(Error::invalid(format!(
            "activation `{activation}` (along the last axis) on a channels_first `{}` is not supported",
            cx.class_name
        ))
        .at("activation"));
    }
    let use_bias = cx.bool_or("use_bias", true)?;
    let in_channels = if channels_first {
        input[0]
    } else {
        input[rank]
    };
    if in_channels == 0 {
        return Err(Error::mismatch(
            "an input with at least one channel",
            format!("{input:?}"),
        ));
    }
    super::norm::checked_product(kernel_size.iter().copied())?;
    let (kind, filters, kernels): (Kind, usize, Vec<KernelSpec<'_>>) = match family {
        "conv" => {
            let filters = positive(cx, "filters", None)?;
            let groups = positive(cx, "groups", Some(1))?;
            if !in_channels.is_multiple_of(groups) || !filters.is_multiple_of(groups) {
                return Err(Error::mismatch(
                    format!(
                        "`groups` dividing both the input channels ({in_channels}) and `filters` ({filters})"
                    ),
                    groups,
                )
                .at("groups"));
            }
            let mut shape = kernel_size.clone();
            shape.extend([in_channels / groups, filters]);
            (
                Kind::Regular { groups },
                filters,
                vec![("kernel", shape, "kernel_regularizer", "kernel_constraint")],
            )
        }
        "depthwise" => {
            let multiplier = positive(cx, "depth_multiplier", Some(1))?;
            let filters = in_channels
                .checked_mul(multiplier)
                .ok_or_else(|| Error::invalid("`depth_multiplier` too large"))?;
            let mut shape = kernel_size.clone();
            shape.extend([in_channels, multiplier]);
            (
                Kind::Depthwise { multiplier },
                filters,
                vec![(
                    "kernel",
                    shape,
                    "depthwise_regularizer",
                    "depthwise_constraint",
                )],
            )
        }
        "separable" => {
            let multiplier = positive(cx, "depth_multiplier", Some(1))?;
            let filters = positive(cx, "filters", None)?;
            let mid = in_channels
                .checked_mul(multiplier)
                .ok_or_else(|| Error::invalid("`depth_multiplier` too large"))?;
            let mut depthwise = kernel_size.clone();
            depthwise.extend([in_channels, multiplier]);
            let mut pointwise = vec![1; rank];
            pointwise.extend([mid, filters]);
            (
                Kind::Separable { multiplier },
                filters,
                vec![
                    (
                        "depthwise_kernel",
                        depthwise,
                        "depthwise_regularizer",
                        "depthwise_constraint",
                    ),
                    (
                        "pointwise_kernel",
                        pointwise,
                        "pointwise_regularizer",
                        "pointwise_constraint",
                    ),
                ],
            )
        }
        _ => {
            let filters = positive(cx, "filters", None)?;
            let mut shape = kernel_size.clone();
            shape.extend([filters, in_channels]);
            (
                Kind::Transpose {
                    output_padding: output_padding(cx, rank)?,
                },
                filters,
                vec![("kernel", shape, "kernel_regularizer", "kernel_constraint")],
            )
        }
    };
    let mut expected: Vec<(Role, Vec<usize>)> =
        kernels.iter().map(|(r, s, _, _)| (*r, s.clone())).collect();
    if use_bias {
        expected.push(("bias", vec![filters]));
    }
    let values = cx.take_vars(&expected)?;
    let mut vars = Vec::with_capacity(values.len());
    for ((role, _, reg, con), value) in kernels.iter().zip(values.iter()) {
        vars.push(Var {
            regularizer: cx.regularizer(reg)?,
            constraint: cx.constraint(con)?,
            ..Var::new(role, value.clone())
        });
    }
    if use_bias {
        vars.push(Var {
            regularizer: cx.regularizer("bias_regularizer")?,
            constraint: cx.constraint("bias_constraint")?,
            ..Var::new("bias", values[values.len() - 1].clone())
        });
    }
    let layer = Conv {
        class: cx.class_name.to_string(),
        kind,
        rank,
        kernel_size,
        strides,
        dilation,
        padding,
        channels_first,
        in_channels,
        filters,
        activation,
        use_bias,
        activity: cx.regularizer("activity_regularizer")?,
        vars,
    };
    // Shapes and buffer sizes are checked once here.
    let plan = layer.plan(input)?;
    let row = plan
        .geometry
        .taps()
        .checked_mul(layer.in_channels.max(layer.filters))
        .and_then(|r| {
            r.checked_mul(
                plan.geometry
                    .output_positions()
                    .max(plan.geometry.input_positions()),
            )
        });
    if row.is_none_or(|r| r > MAX_COLUMNS) {
        return Err(Error::invalid(format!(
            "`{}` `{}` on input {input:?} needs more than {MAX_COLUMNS} values of workspace per sample",
            cx.class_name, cx.name
        )));
    }
    Ok(Box::new(layer))
}

/// The geometry of one call.
struct Plan {
    /// For a convolution: input → output windows; for a transposed one:
    /// output space → input positions (the adjoint).
    geometry: Geometry,
    /// Spatial output dims.
    out_dims: Vec<usize>,
}

impl Conv {
    /// Spatial input dims of a per-sample shape in the layer's format.
    fn spatial<'a>(&self, shape: &'a [usize]) -> &'a [usize] {
        if self.channels_first {
            &shape[1..]
        } else {
            &shape[..self.rank]
        }
    }

    fn plan(&self, input: &[usize]) -> Result<Plan> {
        if input.len() != self.rank + 1 {
            return Err(Error::mismatch(
                format!("an input of rank {} for `{}`", self.rank + 2, self.class),
                format!("rank {}", input.len() + 1),
            ));
        }
        let channels = if self.channels_first {
            input[0]
        } else {
            input[self.rank]
        };
        if channels != self.in_channels {
            return Err(Error::mismatch(
                format!("{} input channels for `{}`", self.in_channels, self.class),
                channels,
            ));
        }
        let dims = self.spatial(input);
        let mut spans = Vec::with_capacity(self.rank);
        let mut out_dims = Vec::with_capacity(self.rank);
        for a in 0..self.rank {
            let (i, k, st, d) = (
                dims[a],
                self.kernel_size[a],
                self.strides[a],
                self.dilation[a],
            );
            let eff = (k - 1)
                .checked_mul(d)
                .and_then(|e| e.checked_add(1))
                .ok_or_else(|| Error::invalid("kernel size times dilation overflows"))?;
            let too_small = || {
                Error::mismatch(
                    format!(
                        "a spatial size of at least {eff} on axis {} for `{}` (kernel {k}, dilation {d})",
                        a + 1,
                        self.class
                    ),
                    i,
                )
            };
            if let Kind::Transpose { output_padding } = &self.kind {
                // Keras's (left, right) padding for lax.conv_transpose.
                let op = output_padding.as_ref().map(|p| p[a]);
                let (lo, hi) = match self.padding {
                    Padding::Valid => {
                        let op = op.unwrap_or(eff.max(st) - eff);
                        (eff - 1, eff - 1 + op)
                    }
                    _ => {
                        let len = match op {
                            None => st + eff - 2,
                            Some(op) => eff + eff % 2 - 2 + op,
                        };
                        let lo = (len / 2 + len % 2).min(eff - 1);
                        (lo, len - lo)
                    }
                };
                // Output of lax.conv_transpose: (i − 1)·s + 1 + lo + hi − (eff − 1).
                let out = i
                    .checked_sub(1)
                    .and_then(|v| v.checked_mul(st))
                    .and_then(|v| v.checked_add(1 + lo + hi))
                    .and_then(|v| v.checked_sub(eff - 1))
                    .filter(|&o| o > 0)
                    .ok_or_else(too_small)?;
                spans.push(Span {
                    input: out,
                    output: i,
                    kernel: k,
                    stride: st,
                    dilation: d,
                    pad: eff - 1 - lo,
                });
                out_dims.push(out);
                continue;
            }
            let (out, pad) = match self.padding {
                Padding::Valid => {
                    if i < eff {
                        return Err(too_small());
                    }
                    ((i - eff) / st + 1, 0)
                }
                Padding::Same => {
                    let out = i.div_ceil(st);
                    let need = ((out - 1) * st + eff).saturating_sub(i);
                    (out, need / 2)
                }
                Padding::Causal => ((i.max(1) - 1) / st + 1, eff - 1),
            };
            if i == 0 {
                return Err(too_small());
            }
            spans.push(Span {
                input: i,
                output: out,
                kernel: k,
                stride: st,
                dilation: d,
                pad,
            });
            out_dims.push(out);
        }
        Ok(Plan {
            geometry: Geometry::new(&spans),
            out_dims,
        })
    }

    /// The kernel (first variable) as `[rows, cols]`.
    fn matrix(&self, var: usize, rows: usize) -> ArrayView2<'_, f32> {
        let v = &self.vars[var].value;
        let data = v.as_slice().expect("variables are in standard layout");
        ArrayView2::from_shape((rows, data.len() / rows), data).expect("kernel matrix")
    }

    fn bias(&self) -> Option<&[f32]> {
        self.use_bias.then(|| {
            self.vars
                .last()
                .and_then(|v| v.value.as_slice())
                .expect("bias in standard layout")
        })
    }

    /// A channels-last result back in the layer's format.
    fn to_format(&self, y: ArrayD<f32>) -> ArrayD<f32> {
        if self.channels_first {
            to_channels_first(&y)
        } else {
            y
        }
    }
}

/// What the forward pass keeps.
struct ConvSaved {
    /// Channels-last input (for `channels_first` layers; else the input).
    x_last: Option<ArrayD<f32>>,
    /// Separable: the depthwise result `[n · positions, in · multiplier]`.
    mid: Option<Array2<f32>>,
    /// Pre-activation `[n · positions, filters]` (non-trivial activations).
    z: Option<Array2<f32>>,
    /// Channels-last output rows (activations that need it).
    y: Option<Array2<f32>>,
}

/// `a += b` element-wise.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x += y);
}

impl Conv {
    /// Regular convolution: `[n, P_out, filters]` rows, without bias, or
    /// with `epilogue` (bias, ReLU) applied to each sample right after its
    /// product (while it is in cache).
    fn conv_forward(
        &self,
        x: &[f32],
        n: usize,
        g: &Geometry,
        groups: usize,
        epilogue: Option<(Option<&[f32]>, bool)>,
    ) -> Array2<f32> {
        let (pin, pout, taps) = (g.input_positions(), g.output_positions(), g.taps());
        let (c, f) = (self.in_channels, self.filters);
        let (cg, fg) = (c / groups, f / groups);
        let mut z = Array2::<f32>::zeros((n * pout, f));
        let w = self.matrix(0, taps * cg);
        let finish = |rows: &mut [f32]| {
            let Some((bias, relu)) = epilogue else { return };
            for row in rows.chunks_exact_mut(f) {
                if let Some(b) = bias {
                    row.iter_mut().zip(b).for_each(|(v, &bv)| *v += bv);
                }
                if relu {
                    // jax.nn.relu: maximum(x, 0), NaN kept.
                    row.iter_mut().for_each(|v| {
                        if *v < 0.0 {
                            *v = 0.0;
                        }
                    });
                }
            }
        };
        if groups == 1 && g.is_pointwise() {
            let xm = ArrayView2::from_shape((n * pin, c), x).expect("input rows");
            matmul_into(xm, w, z.view_mut());
            finish(z.as_slice_mut().expect("fresh array"));
            return z;
        }
        let work = n * pout * taps * cg * f;
        let zs = z.as_slice_mut().expect("fresh array");
        halves(n, pout * f, zs, work >= SPLIT_WORK, &|range, out| {
            let mut cols = vec![0.0f32; pout * taps * cg];
            for (i, s) in range.enumerate() {
                let xs = &x[s * pin * c..(s + 1) * pin * c];
                let ys = &mut out[i * pout * f..(i + 1) * pout * f];
                for gi in 0..groups {
                    g.im2col(xs, c, gi * cg, cg, &mut cols);
                    let a = ArrayView2::from_shape((pout, taps * cg), &cols[..]).expect("cols");
                    let mut y = ArrayViewMut2::from_shape((pout, f), &mut ys[..]).expect("rows");
                    let b = w.slice(s![.., gi * fg..(gi + 1) * fg]);
                    matmul_into(a, b, y.slice_mut(s![.., gi * fg..(gi + 1) * fg]));
                }
                finish(ys);
            }
        });
        z
    }

    /// Gradients of [`Conv::conv_forward`]: (`∂L/∂x`, `∂L/∂kernel`).
    fn conv_backward(
        &self,
        x: &[f32],
        dz: &Array2<f32>,
        n: usize,
        g: &Geometry,
        groups: usize,
        want_dx: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let (pin, pout, taps) = (g.input_positions(), g.output_positions(), g.taps());
        let (c, f) = (self.in_channels, self.filters);
        let (cg, fg) = (c / groups, f / groups);
        let kc = taps * cg;
        let w = self.matrix(0, kc);
        // Wᵀ per group, row-major, for the input gradient.
        let wt: Vec<Array2<f32>> = (0..groups)
            .map(|gi| {
                w.slice(s![.., gi * fg..(gi + 1) * fg])
                    .t()
                    .as_standard_layout()
                    .into_owned()
            })
            .collect();
        let dzs = dz.as_slice().expect("standard layout");
        let mut dx = vec![0.0f32; if want_dx { n * pin * c } else { 0 }];
        if groups == 1 && g.is_pointwise() {
            let xm = ArrayView2::from_shape((n * pin, c), x).expect("input rows");
            let mut dw = Array2::<f32>::zeros((c, f));
            matmul_into(xm.t(), dz.view(), dw.view_mut());
            if want_dx {
                let mut dxm = ArrayViewMut2::from_shape((n * pin, c), &mut dx[..]).expect("rows");
                matmul_into(dz.view(), wt[0].view(), dxm.view_mut());
            }
            return (dx, dw.into_raw_vec_and_offset().0);
        }
        let work = n * pout * kc * f * (1 + usize::from(want_dx));
        let per = if want_dx { pin * c } else { 0 };
        let (d1, d2) = halves(n, per, &mut dx, work >= SPLIT_WORK, &|range, out| {
            let mut dw = vec![0.0f32; kc * f];
            let mut part = Array2::<f32>::zeros((kc, fg));
            let mut cols = vec![0.0f32; pout * kc];
            let mut dcols = vec![0.0f32; if want_dx { pout * kc } else { 0 }];
            for (i, s) in range.enumerate() {
                let xs = &x[s * pin * c..(s + 1) * pin * c];
                let dzn = ArrayView2::from_shape((pout, f), &dzs[s * pout * f..(s + 1) * pout * f])
                    .expect("rows");
                for gi in 0..groups {
                    let dzg = dzn.slice(s![.., gi * fg..(gi + 1) * fg]);
                    g.im2col(xs, c, gi * cg, cg, &mut cols);
                    let a = ArrayView2::from_shape((pout, kc), &cols[..]).expect("cols");
                    matmul_into(a.t(), dzg, part.view_mut());
                    for (r, row) in part.rows().into_iter().enumerate() {
                        let dst = &mut dw[r * f + gi * fg..r * f + (gi + 1) * fg];
                        dst.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
                    }
                    if want_dx {
                        let dxs = &mut out[i * pin * c..(i + 1) * pin * c];
                        let mut dc =
                            ArrayViewMut2::from_shape((pout, kc), &mut dcols[..]).expect("cols");
                        matmul_into(dzg, wt[gi].view(), dc.view_mut());
                        g.col2im(&dcols, c, gi * cg, cg, dxs);
                    }
                }
            }
            dw
        });
        let mut dw = d1;
        add_into(&mut dw, &d2);
        (dx, dw)
    }

    /// Depthwise convolution (no bias): `[n · P_out, c · m]`.
    fn depthwise_forward(&self, x: &[f32], n: usize, g: &Geometry, m: usize) -> Array2<f32> {
        let (pin, pout) = (g.input_positions(), g.output_positions());
        let c = self.in_channels;
        let cm = c * m;
        let k = self.vars[0].value.as_slice().expect("standard layout");
        let mut z = Array2::<f32>::zeros((n * pout, cm));
        let work = n * pout * g.taps() * cm;
        let zs = z.as_slice_mut().expect("fresh array");
        halves(n, pout * cm, zs, work >= SPLIT_WORK, &|range, out| {
            for (i, s) in range.enumerate() {
                g.depthwise(
                    &x[s * pin * c..(s + 1) * pin * c],
                    k,
                    c,
                    m,
                    &mut out[i * pout * cm..(i + 1) * pout * cm],
                );
            }
        });
        z
    }

    /// Gradients of [`Conv::depthwise_forward`].
    fn depthwise_backward(
        &self,
        x: &[f32],
        dz: &[f32],
        n: usize,
        g: &Geometry,
        m: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (pin, pout) = (g.input_positions(), g.output_positions());
        let c = self.in_channels;
        let cm = c * m;
        let k = self.vars[0].value.as_slice().expect("standard layout");
        let mut dx = vec![0.0f32; n * pin * c];
        let work = n * pout * g.taps() * cm * 2;
        let (d1, d2) = halves(n, pin * c, &mut dx, work >= SPLIT_WORK, &|range, out| {
            let mut dk = vec![0.0f32; k.len()];
            for (i, s) in range.enumerate() {
                g.depthwise_backward(
                    &x[s * pin * c..(s + 1) * pin * c],
                    k,
                    &dz[s * pout * cm..(s + 1) * pout * cm],
                    (c, m),
                    Some(&mut out[i * pin * c..(i + 1) * pin * c]),
                    &mut dk,
                );
            }
            dk
        });
        let mut dk = d1;
        add_into(&mut dk, &d2);
        (dx, dk)
    }

    /// Transposed convolution (no bias): `[n · P_out, filters]`, where the
    /// geometry reads the output space.
    fn transpose_forward(&self, x: &[f32], n: usize, g: &Geometry) -> Array2<f32> {
        // The geometry's "input" is this layer's output and vice versa.
        let (pout, pin, taps) = (g.input_positions(), g.output_positions(), g.taps());
        let (c, f) = (self.in_channels, self.filters);
        let kf = taps * f;
        // kernel [taps · filters, in_channels]; x_n · Wᵀ gives the columns.
        let wt = self.matrix(0, kf).t().as_standard_layout().into_owned();
        let mut z = Array2::<f32>::zeros((n * pout, f));
        let work = n * pin * kf * c;
        let zs = z.as_slice_mut().expect("fresh array");
        halves(n, pout * f, zs, work >= SPLIT_WORK, &|range, out| {
            let mut cols = Array2::<f32>::zeros((pin, kf));
            for (i, s) in range.enumerate() {
                let xs = ArrayView2::from_shape((pin, c), &x[s * pin * c..(s + 1) * pin * c])
                    .expect("rows");
                matmul_into(xs, wt.view(), cols.view_mut());
                g.col2im(
                    cols.as_slice().expect("standard layout"),
                    f,
                    0,
                    f,
                    &mut out[i * pout * f..(i + 1) * pout * f],
                );
            }
        });
        z
    }

    /// Gradients of [`Conv::transpose_forward`].
    fn transpose_backward(
        &self,
        x: &[f32],
        dz: &[f32],
        n: usize,
        g: &Geometry,
    ) -> (Vec<f32>, Vec<f32>) {
        let (pout, pin, taps) = (g.input_positions(), g.output_positions(), g.taps());
        let (c, f) = (self.in_channels, self.filters);
        let kf = taps * f;
        let w = self.matrix(0, kf);
        let mut dx = vec![0.0f32; n * pin * c];
        let work = n * pin * kf * c * 2;
        let (d1, d2) = halves(n, pin * c, &mut dx, work >= SPLIT_WORK, &|range, out| {
            let mut dw = Array2::<f32>::zeros((kf, c));
            let mut part = Array2::<f32>::zeros((kf, c));
            let mut cols = vec![0.0f32; pin * kf];
            for (i, s) in range.enumerate() {
                g.im2col(&dz[s * pout * f..(s + 1) * pout * f], f, 0, f, &mut cols);
                let a = ArrayView2::from_shape((pin, kf), &cols[..]).expect("cols");
                let mut dxs =
                    ArrayViewMut2::from_shape((pin, c), &mut out[i * pin * c..(i + 1) * pin * c])
                        .expect("rows");
                matmul_into(a, w, dxs.view_mut());
                let xs = ArrayView2::from_shape((pin, c), &x[s * pin * c..(s + 1) * pin * c])
                    .expect("rows");
                matmul_into(a.t(), xs, part.view_mut());
                dw += &part;
            }
            dw.into_raw_vec_and_offset().0
        });
        let mut dw = d1;
        add_into(&mut dw, &d2);
        (dx, dw)
    }

    /// Output positions of one sample: the geometry's windows for a
    /// convolution, the space it reads for a transposed one.
    fn windows(&self, g: &Geometry) -> usize {
        match self.kind {
            Kind::Transpose { .. } => g.input_positions(),
            _ => g.output_positions(),
        }
    }

    /// Activations that need the pre-activation in their backward pass.
    fn keeps_z(&self) -> bool {
        !matches!(self.activation, Activation::Linear | Activation::Relu)
    }
}

impl LayerOp for Conv {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let input = single_shape(inputs, &self.class)?;
        let plan = self.plan(input)?;
        let mut out = Vec::with_capacity(self.rank + 1);
        if self.channels_first {
            out.push(self.filters);
            out.extend(&plan.out_dims);
        } else {
            out.extend(&plan.out_dims);
            out.push(self.filters);
        }
        Ok(out)
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let [x] = x else {
            return Err(Error::mismatch(
                format!("one input for `{}`", self.class),
                x.len(),
            ));
        };
        let n = x.shape()[0];
        let plan = self.plan(&x.shape()[1..])?;
        let g = &plan.geometry;
        let xl = if self.channels_first {
            ndarray::CowArray::from(to_channels_last(x))
        } else {
            x.as_standard_layout()
        };
        let xs = xl.as_slice().expect("standard layout");
        let mut mid = None;
        // Bias and ReLU fused into the product's loop where possible.
        let fused = matches!(self.kind, Kind::Regular { .. })
            && matches!(self.activation, Activation::Linear | Activation::Relu);
        let epilogue = fused.then(|| (self.bias(), self.activation == Activation::Relu));
        let mut z = match &self.kind {
            Kind::Regular { groups } => self.conv_forward(xs, n, g, *groups, epilogue),
            Kind::Depthwise { multiplier } => self.depthwise_forward(xs, n, g, *multiplier),
            Kind::Separable { multiplier } => {
                let d = self.depthwise_forward(xs, n, g, *multiplier);
                let pw = self.matrix(1, self.in_channels * multiplier);
                let mut z = Array2::<f32>::zeros((d.nrows(), self.filters));
                matmul_into(d.view(), pw, z.view_mut());
                mid = Some(d);
                z
            }
            Kind::Transpose { .. } => self.transpose_forward(xs, n, g),
        };
        if let (Some(b), false) = (self.bias(), fused) {
            for mut row in z.rows_mut() {
                row.iter_mut().zip(b).for_each(|(v, &bv)| *v += bv);
            }
        }
        let keep_z = self.keeps_z().then(|| z.clone());
        let y = if fused { z } else { self.activation.forward(z) };
        let y_rows =
            (keep_z.is_some() || self.activation == Activation::Relu) && self.channels_first;
        let saved = ConvSaved {
            x_last: self.channels_first.then(|| xl.into_owned()),
            mid,
            z: keep_z,
            y: y_rows.then(|| y.clone()),
        };
        let mut shape = vec![n];
        shape.extend(&plan.out_dims);
        shape.push(self.filters);
        let y = y
            .into_shape_with_order(IxDyn(&shape))
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Forward {
            extra: Vec::new(),
            y: self.to_format(y),
            saved: Some(Box::new(saved)),
            updates: Vec::new(),
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.backward_impl(x, y, saved, dy, true)
    }

    fn backward_vars(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.backward_impl(x, y, saved, dy, false)
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        self.activity
    }

    fn detail(&self) -> Option<String> {
        let k: Vec<String> = self.kernel_size.iter().map(usize::to_string).collect();
        let mut d = format!("{} {}", k.join("×"), self.activation);
        if self.strides.iter().any(|&s| s > 1) {
            let st: Vec<String> = self.strides.iter().map(usize::to_string).collect();
            d.push_str(&format!(", strides {}", st.join("×")));
        }
        Some(d)
    }

    crate::clone_box!();
}

impl Conv {
    /// The backward pass; input gradients only when `want_dx`.
    fn backward_impl(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
        want_dx: bool,
    ) -> Result<Backward> {
        let [x] = x else {
            return Err(Error::mismatch(
                format!("one input for `{}`", self.class),
                x.len(),
            ));
        };
        let saved = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<ConvSaved>())
            .ok_or_else(|| {
                Error::invalid(format!("`{}` backward without its forward", self.class))
            })?;
        let n = x.shape()[0];
        let plan = self.plan(&x.shape()[1..])?;
        let g = &plan.geometry;
        let rows = n * self.windows(g);
        let f = self.filters;
        let dyl = if self.channels_first {
            to_channels_last(&dy)
        } else if dy.is_standard_layout() {
            dy
        } else {
            dy.as_standard_layout().into_owned()
        };
        let dy2 = dyl
            .into_shape_with_order((rows, f))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let dz = match self.activation {
            Activation::Linear => dy2,
            Activation::Relu if saved.y.is_none() && y.is_standard_layout() => {
                // relu'(z) = [z > 0] = [y > 0], in place.
                let mut dz = dy2;
                let ys = y.as_slice().expect("standard layout");
                dz.as_slice_mut()
                    .expect("standard layout")
                    .iter_mut()
                    .zip(ys)
                    .for_each(|(g, &v)| {
                        if v <= 0.0 || v.is_nan() {
                            *g = 0.0;
                        }
                    });
                dz
            }
            act => {
                let y_last;
                let y2 = match &saved.y {
                    Some(y) => y.view(),
                    None => {
                        y_last = y.as_standard_layout();
                        y_last
                            .view()
                            .into_shape_with_order((rows, f))
                            .map_err(|e| Error::invalid(e.to_string()))?
                    }
                };
                let z = saved.z.as_ref().map_or(y2, |z| z.view());
                act.backward(z, y2, dy2.view())
            }
        };
        let mut grads: Vec<Option<ArrayD<f32>>> = Vec::with_capacity(self.vars.len());
        let xl;
        let xs = match &saved.x_last {
            Some(x) => x.as_slice().expect("standard layout"),
            None => {
                xl = x.as_standard_layout();
                xl.as_slice().expect("standard layout")
            }
        };
        let shape_of = |i: usize| self.vars[i].value.raw_dim();
        let as_var = |i: usize, v: Vec<f32>| -> Result<Option<ArrayD<f32>>> {
            ArrayD::from_shape_vec(shape_of(i), v)
                .map(Some)
                .map_err(|e| Error::invalid(e.to_string()))
        };
        let dx = match &self.kind {
            Kind::Regular { groups } => {
                let (dx, dw) = self.conv_backward(xs, &dz, n, g, *groups, want_dx);
                grads.push(as_var(0, dw)?);
                dx
            }
            Kind::Depthwise { multiplier } => {
                let (dx, dk) = self.depthwise_backward(
                    xs,
                    dz.as_slice().expect("standard"),
                    n,
                    g,
                    *multiplier,
                );
                grads.push(as_var(0, dk)?);
                dx
            }
            Kind::Separable { multiplier } => {
                let mid = saved
                    .mid
                    .as_ref()
                    .ok_or_else(|| Error::invalid("separable backward without its forward"))?;
                let pw = self.matrix(1, self.in_channels * multiplier);
                let mut dpw = Array2::<f32>::zeros(pw.raw_dim());
                matmul_into(mid.t(), dz.view(), dpw.view_mut());
                let mut dmid = Array2::<f32>::zeros(mid.raw_dim());
                let pwt = pw.t().as_standard_layout().into_owned();
                matmul_into(dz.view(), pwt.view(), dmid.view_mut());
                let (dx, dk) = self.depthwise_backward(
                    xs,
                    dmid.as_slice().expect("standard"),
                    n,
                    g,
                    *multiplier,
                );
                grads.push(as_var(0, dk)?);
                grads.push(as_var(1, dpw.into_raw_vec_and_offset().0)?);
                dx
            }
            Kind::Transpose { .. } => {
                let (dx, dw) = self.transpose_backward(xs, dz.as_slice().expect("standard"), n, g);
                grads.push(as_var(0, dw)?);
                dx
            }
        };
        if self.use_bias {
            // Per sample in float32, then across samples in float64.
            let mut db = vec![0.0f64; f];
            let mut part = vec![0.0f32; f];
            let per = (rows / n.max(1)).max(1) * f;
            for sample in dz.as_slice().expect("standard layout").chunks(per) {
                part.fill(0.0);
                for row in sample.chunks_exact(f) {
                    part.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
                }
                db.iter_mut()
                    .zip(&part)
                    .for_each(|(d, &v)| *d += f64::from(v));
            }
            grads.push(as_var(
                self.vars.len() - 1,
                db.into_iter().map(|v| v as f32).collect(),
            )?);
        }
        let mut in_shape = vec![n];
        let pin_dims: Vec<usize> = self.spatial(&x.shape()[1..]).to_vec();
        in_shape.extend(pin_dims);
        in_shape.push(self.in_channels);
        if !want_dx && dx.is_empty() {
            return Ok(Backward {
                inputs: Vec::new(),
                vars: grads,
            });
        }
        let dx = ArrayD::from_shape_vec(IxDyn(&in_shape), dx)
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Backward {
            inputs: vec![self.to_format(dx)],
            vars: grads,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::check;
    use super::super::{Ctx, Mode};
    use super::*;

    fn forward(op: &dyn LayerOp, x: &ArrayD<f32>) -> ArrayD<f32> {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        op.forward(&[x], &mut cx).expect("forward").y
    }

    fn layer(
        class: &str,
        config: serde_json::Value,
        input: &[usize],
        shapes: &[Vec<usize>],
    ) -> Box<dyn LayerOp> {
        let stored: Vec<(Vec<usize>, Vec<f32>)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let v = check::values(s, 10 + i as u64);
                (s.clone(), v.iter().copied().collect())
            })
            .collect();
        check::build(build, class, config, &[input.to_vec()], &stored)
    }

    /// Direct 2-D convolution, channels last, one sample, explicit padding.
    #[allow(clippy::too_many_arguments)]
    fn reference_conv2d(
        x: &ArrayD<f32>,
        k: &ArrayD<f32>,
        stride: [usize; 2],
        dil: [usize; 2],
        pad: [usize; 2],
        out: [usize; 2],
        groups: usize,
    ) -> Vec<f32> {
        let (h, w, c) = (x.shape()[1], x.shape()[2], x.shape()[3]);
        let (kh, kw, cg, f) = (k.shape()[0], k.shape()[1], k.shape()[2], k.shape()[3]);
        let fg = f / groups;
        let mut y = vec![0.0f32; out[0] * out[1] * f];
        for oy in 0..out[0] {
            for ox in 0..out[1] {
                for fo in 0..f {
                    let g = fo / fg;
                    let mut acc = 0.0f64;
                    for a in 0..kh {
                        for b in 0..kw {
                            let iy = (oy * stride[0] + a * dil[0]) as isize - pad[0] as isize;
                            let ix = (ox * stride[1] + b * dil[1]) as isize - pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for ci in 0..cg {
                                acc += f64::from(x[[0, iy as usize, ix as usize, g * cg + ci]])
                                    * f64::from(k[[a, b, ci, fo]]);
                            }
                        }
                    }
                    let _ = c;
                    y[(oy * out[1] + ox) * f + fo] = acc as f32;
                }
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{i}: {x} vs {y}");
        }
    }

    #[test]
    fn conv2d_matches_a_direct_convolution() {
        // same padding with stride 2 on an odd size (padding 1 before, 1
        // after for 7 → 4 with kernel 3), groups 2, and valid with dilation.
        let x = check::values(&[1, 7, 6, 4], 1);
        for (config, stride, dil, pad, out, groups) in [
            (
                json!({"filters": 6, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "groups": 2, "use_bias": false}),
                [2, 2],
                [1, 1],
                // 7 → 4: total padding 2, one before; 6 → 3: total 1, none before.
                [1, 0],
                [4, 3],
                2,
            ),
            (
                json!({"filters": 3, "kernel_size": [2, 3], "dilation_rate": [2, 1], "use_bias": false}),
                [1, 1],
                [2, 1],
                [0, 0],
                [5, 4],
                1,
            ),
        ] {
            let kshape = vec![
                config["kernel_size"][0].as_u64().unwrap() as usize,
                config["kernel_size"][1].as_u64().unwrap() as usize,
                4 / groups,
                config["filters"].as_u64().unwrap() as usize,
            ];
            let op = layer("Conv2D", config, &[7, 6, 4], &[kshape]);
            let y = forward(op.as_ref(), &x);
            assert_eq!(
                y.shape(),
                &[1, out[0], out[1], op.vars()[0].value.shape()[3]]
            );
            let expect = reference_conv2d(&x, &op.vars()[0].value, stride, dil, pad, out, groups);
            close(y.as_slice().unwrap(), &expect);
        }
    }

    /// Class, config, per-sample input shape, variable shapes.
    type Case = (&'static str, serde_json::Value, Vec<usize>, Vec<Vec<usize>>);

    #[test]
    fn gradients_of_every_kind() {
        let l1 = json!({"class_name": "L1", "config": {"l1": 0.01}});
        let cases: Vec<Case> = vec![
            (
                "Conv2D",
                json!({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh", "groups": 2, "kernel_regularizer": l1}),
                vec![5, 4, 2],
                vec![vec![3, 3, 1, 4], vec![4]],
            ),
            (
                "Conv1D",
                json!({"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2, "activation": "relu"}),
                vec![6, 2],
                vec![vec![3, 2, 3], vec![3]],
            ),
            (
                "Conv1D",
                json!({"filters": 3, "kernel_size": 1, "activation": "softmax"}),
                vec![4, 2],
                vec![vec![1, 2, 3], vec![3]],
            ),
            (
                "Conv3D",
                json!({"filters": 2, "kernel_size": [2, 2, 1], "padding": "same", "data_format": "channels_first"}),
                vec![2, 3, 3, 2],
                vec![vec![2, 2, 1, 2, 2], vec![2]],
            ),
            (
                "DepthwiseConv2D",
                json!({"kernel_size": 2, "depth_multiplier": 2, "padding": "same", "activation": "sigmoid"}),
                vec![3, 4, 2],
                vec![vec![2, 2, 2, 2], vec![4]],
            ),
            (
                "SeparableConv2D",
                json!({"filters": 3, "kernel_size": 2, "strides": 2, "depth_multiplier": 1}),
                vec![5, 4, 2],
                vec![vec![2, 2, 2, 1], vec![1, 1, 2, 3], vec![3]],
            ),
            (
                "SeparableConv1D",
                json!({"filters": 2, "kernel_size": 3, "depth_multiplier": 2, "use_bias": false, "padding": "same"}),
                vec![5, 2],
                vec![vec![3, 2, 2], vec![1, 4, 2]],
            ),
            (
                "Conv2DTranspose",
                json!({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}),
                vec![3, 2, 2],
                vec![vec![3, 3, 2, 2], vec![2]],
            ),
            (
                "Conv1DTranspose",
                json!({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "valid", "output_padding": 1, "activation": "elu"}),
                vec![3, 2],
                vec![vec![3, 2, 2], vec![2]],
            ),
        ];
        for (class, config, input, shapes) in cases {
            let op = layer(class, config, &input, &shapes);
            let mut shape = vec![2];
            shape.extend(&input);
            let x = check::values(&shape, 3);
            check::gradients(op.as_ref(), &[x], Mode::Training, 1e-2);
        }
    }

    #[test]
    fn transposed_output_sizes_follow_keras() {
        // compute_conv_transpose_output_shape: valid (i-1)s + k + op, same i·s,
        // same with output_padding (i-1)s + k%2 + op.
        for (config, expect) in [
            (json!({"filters": 1, "kernel_size": 3, "strides": 2}), 9),
            (json!({"filters": 1, "kernel_size": 2, "strides": 3}), 12),
            (
                json!({"filters": 1, "kernel_size": 3, "strides": 2, "padding": "same"}),
                8,
            ),
            (
                json!({"filters": 1, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1}),
                8,
            ),
            (
                json!({"filters": 1, "kernel_size": 4, "strides": 2, "padding": "same", "output_padding": 0}),
                6,
            ),
        ] {
            let k = config["kernel_size"].as_u64().unwrap() as usize;
            let op = layer(
                "Conv1DTranspose",
                config.clone(),
                &[4, 1],
                &[vec![k, 1, 1], vec![1]],
            );
            assert_eq!(
                op.output_shape(&[vec![4, 1]]).unwrap(),
                vec![expect, 1],
                "{config}"
            );
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = json!({"filters": 2, "kernel_size": 3});
        let bad = [
            json!({"filters": 0, "kernel_size": 3}),
            json!({"filters": 2, "kernel_size": [3, 3]}),
            json!({"filters": 2, "kernel_size": -1}),
            json!({"filters": 2, "kernel_size": 3, "strides": 0}),
            json!({"filters": 2, "kernel_size": 3, "padding": "full"}),
            json!({"filters": 2, "kernel_size": 3, "groups": 2}),
            json!({"filters": 2, "kernel_size": 9}),
            json!({"filters": 2, "kernel_size": 3, "dilation_rate": 4611686018427387904u64}),
            json!({"filters": 2, "kernel_size": 3, "lora_rank": 2}),
            json!({"filters": 2, "kernel_size": 3, "activation": "glu"}),
            json!({"filters": 2, "kernel_size": 3, "data_format": "nchw"}),
        ];
        let stored = [(vec![3, 3, 2], vec![0.0; 18]), (vec![2], vec![0.0; 2])];
        let cfg = ok.as_object().unwrap().clone();
        assert!(
            build(&BuildCx {
                class_name: "Conv1D",
                name: "c",
                config: &cfg,
                inputs: &[vec![5, 3]],
                stored: &stored,
                vars_path: "layers/conv1d/vars",
                group: None,
            })
            .is_ok()
        );
        for b in bad {
            let cfg = b.as_object().unwrap().clone();
            let r = build(&BuildCx {
                class_name: "Conv1D",
                name: "c",
                config: &cfg,
                inputs: &[vec![5, 3]],
                stored: &stored,
                vars_path: "layers/conv1d/vars",
                group: None,
            });
            assert!(r.is_err(), "{b}");
        }
    }
}
