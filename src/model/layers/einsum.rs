//! `EinsumDense`: a kernel contracted with the input along an einsum
//! equation, plus a bias and an activation; also the projections inside
//! the attention layers (`attention.rs`).
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX; `keras/src/layers/core/einsum_dense.py`:
//!
//! * `_analyze_split_string`: the kernel has one axis per letter of its
//!   spec, sized by the output shape for letters of the output and by the
//!   input shape for the others; the bias covers the output spec from the
//!   first letter in `bias_axes` on, with size 1 for letters not in it.
//! * `call`: `einsum(equation, inputs, kernel)`, then `+ bias`, then the
//!   activation.
//!
//! Supported are equations without `...` whose letters are each either
//! *free* (in the input and the output: the batch axis and any other axis
//! carried through), *contracted* (in the input and the kernel) or *kernel
//! outputs* (in the kernel and the output), with the input's first letter
//! (the batch axis) free: `ab,bc->ac`, `abc,cd->abd`, `abc,cde->abde` and
//! `abcd,cde->abe` (MultiHeadAttention's projections), `bqm,muh->bquh`, ...
//! The product is a matrix product of the input laid out as
//! `[free, contracted]` with the kernel laid out as
//! `[contracted, kernel outputs]`; other equations are refused with an
//! error naming them.

use ndarray::{ArrayD, Axis, IxDyn};
use serde_json::Value;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Mask, Role, Saved, Var, single_shape};
use crate::engine::gemm::matmul;
use crate::error::{Error, Result};
use crate::model::activation::Activation;

/// A parsed einsum equation of an `EinsumDense` kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Equation {
    /// The equation as written.
    pub text: String,
    input: Vec<char>,
    kernel: Vec<char>,
    output: Vec<char>,
}

impl Equation {
    /// Parse `in,kernel->out`, checking that the equation is of the
    /// supported form (see the module documentation).
    pub fn parse(text: &str) -> Result<Self> {
        let refuse = |why: &str| {
            Error::invalid(format!(
                "unsupported `EinsumDense` equation `{text}`: {why} (supported: equations \
                 `in,kernel->out` of letters without `...`, each letter in exactly two of the \
                 three terms, the input's first letter being the batch axis, as in `ab,bc->ac`, \
                 `abc,cd->abd`, `abc,cde->abde`, `abcd,cde->abe`)"
            ))
        };
        let (lhs, out) = text.split_once("->").ok_or_else(|| refuse("no `->`"))?;
        let (inp, ker) = lhs.split_once(',').ok_or_else(|| refuse("no `,`"))?;
        let letters = |s: &str| -> Result<Vec<char>> {
            let v: Vec<char> = s.trim().chars().collect();
            if v.is_empty() || !v.iter().all(char::is_ascii_alphabetic) {
                return Err(refuse("a term that is not letters only"));
            }
            let mut sorted = v.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != v.len() {
                return Err(refuse("a letter repeated within a term"));
            }
            Ok(v)
        };
        let (input, kernel, output) = (letters(inp)?, letters(ker)?, letters(out)?);
        for c in input.iter().chain(&kernel).chain(&output) {
            let n = [&input, &kernel, &output]
                .iter()
                .filter(|t| t.contains(c))
                .count();
            if n != 2 {
                return Err(refuse(&format!(
                    "letter `{c}` appears in {n} of the three terms"
                )));
            }
        }
        if kernel.contains(&input[0]) {
            return Err(refuse("the input's first (batch) letter is contracted"));
        }
        Ok(Equation {
            text: text.to_string(),
            input,
            kernel,
            output,
        })
    }

    fn free(&self) -> Vec<char> {
        self.input
            .iter()
            .copied()
            .filter(|c| self.output.contains(c))
            .collect()
    }

    fn contracted(&self) -> Vec<char> {
        self.kernel
            .iter()
            .copied()
            .filter(|c| self.input.contains(c))
            .collect()
    }

    fn kernel_out(&self) -> Vec<char> {
        self.kernel
            .iter()
            .copied()
            .filter(|c| self.output.contains(c))
            .collect()
    }

    /// Rank of the input including the batch axis.
    pub fn input_rank(&self) -> usize {
        self.input.len()
    }

    /// The kernel's axes that are contracted with the input, and those that
    /// reach the output (positions in the kernel).
    pub fn kernel_axes(&self) -> (Vec<usize>, Vec<usize>) {
        let pos = |cs: Vec<char>| -> Vec<usize> {
            cs.iter()
                .map(|c| {
                    self.kernel
                        .iter()
                        .position(|k| k == c)
                        .expect("kernel letter")
                })
                .collect()
        };
        (pos(self.contracted()), pos(self.kernel_out()))
    }
}

/// Gradients of a projection: (input if wanted, kernel, bias if any).
pub type ProjectionGrads = (Option<ArrayD<f32>>, ArrayD<f32>, Option<ArrayD<f32>>);

/// One einsum projection with its shapes resolved: the kernel shape, the
/// bias shape and the output shape (per sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The equation.
    pub eq: Equation,
    /// Per-sample input shape.
    pub input: Vec<usize>,
    /// Per-sample output shape.
    pub output: Vec<usize>,
    /// Kernel shape.
    pub kernel: Vec<usize>,
    /// Bias shape (`None` without a bias).
    pub bias: Option<Vec<usize>>,
}

impl Projection {
    /// Resolve the shapes of `eq` for a per-sample `input` shape, the
    /// (partial, per-sample) `output_shape` and the `bias_axes`, as Keras's
    /// `_analyze_split_string` does.
    pub fn new(
        eq: Equation,
        input: &[usize],
        output_shape: &[Option<usize>],
        bias_axes: Option<&str>,
    ) -> Result<Self> {
        if input.len() + 1 != eq.input.len() {
            return Err(Error::mismatch(
                format!(
                    "an input of rank {} for equation `{}`",
                    eq.input.len(),
                    eq.text
                ),
                format!("rank {}", input.len() + 1),
            ));
        }
        if output_shape.len() + 1 != eq.output.len() {
            return Err(Error::mismatch(
                format!(
                    "an `output_shape` of {} axes for equation `{}`",
                    eq.output.len() - 1,
                    eq.text
                ),
                format!("{output_shape:?}"),
            ));
        }
        if eq.output.iter().position(|&c| c == eq.input[0]) != Some(0) {
            return Err(Error::invalid(format!(
                "unsupported `EinsumDense` equation `{}`: the batch letter must come first in \
                 the output",
                eq.text
            )));
        }
        let in_dim = |c: char| -> Option<usize> {
            let i = eq.input.iter().position(|&k| k == c)?;
            (i > 0).then(|| input[i - 1])
        };
        let mut output = Vec::with_capacity(output_shape.len());
        for (i, &c) in eq.output.iter().enumerate().skip(1) {
            let given = output_shape[i - 1];
            let dim = match (in_dim(c), given) {
                (Some(d), Some(g)) if d != g => {
                    return Err(Error::mismatch(
                        format!("output dimension `{c}` equal to the input's ({d})"),
                        g,
                    ));
                }
                (Some(d), _) => d,
                (None, Some(g)) if g > 0 => g,
                (None, _) => {
                    return Err(Error::mismatch(
                        format!("a positive `output_shape` entry for kernel axis `{c}`"),
                        format!("{given:?}"),
                    ));
                }
            };
            output.push(dim);
        }
        let out_dim = |c: char| -> Option<usize> {
            let i = eq.output.iter().position(|&k| k == c)?;
            (i > 0).then(|| output[i - 1])
        };
        let kernel: Vec<usize> = eq
            .kernel
            .iter()
            .map(|&c| {
                out_dim(c)
                    .or_else(|| in_dim(c))
                    .expect("every kernel letter sized")
            })
            .collect();
        let bias = match bias_axes {
            None | Some("") => None,
            Some(axes) => {
                for c in axes.chars() {
                    if !eq.output.contains(&c) {
                        return Err(Error::mismatch(
                            format!("bias axes among the output letters `{}`", eq.text),
                            format!("`{c}`"),
                        ));
                    }
                }
                let first = axes
                    .chars()
                    .filter_map(|c| eq.output.iter().position(|&k| k == c))
                    .min()
                    .unwrap_or(0);
                if first == 0 {
                    return Err(Error::invalid(format!(
                        "a bias along the batch axis of `{}`",
                        eq.text
                    )));
                }
                Some(
                    eq.output[first..]
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if axes.contains(*c) {
                                output[first + i - 1]
                            } else {
                                1
                            }
                        })
                        .collect(),
                )
            }
        };
        Ok(Projection {
            eq,
            input: input.to_vec(),
            output,
            kernel,
            bias,
        })
    }

    /// Permutation of the batched input to `[free..., contracted...]` and
    /// the sizes of the two groups.
    fn input_layout(&self, n: usize) -> (Vec<usize>, usize, usize) {
        let eq = &self.eq;
        let mut perm = Vec::new();
        let mut f = 1usize;
        let mut k = 1usize;
        let dim = |i: usize| if i == 0 { n } else { self.input[i - 1] };
        for c in eq.free() {
            let i = eq.input.iter().position(|&x| x == c).expect("free letter");
            perm.push(i);
            f *= dim(i);
        }
        for c in eq.contracted() {
            let i = eq.input.iter().position(|&x| x == c).expect("contracted");
            perm.push(i);
            k *= dim(i);
        }
        (perm, f, k)
    }

    /// Permutation of the kernel to `[contracted..., outputs...]`.
    fn kernel_layout(&self) -> (Vec<usize>, usize, usize) {
        let (c, o) = self.eq.kernel_axes();
        let k = c.iter().map(|&i| self.kernel[i]).product();
        let m = o.iter().map(|&i| self.kernel[i]).product();
        let mut perm = c;
        perm.extend(o);
        (perm, k, m)
    }

    /// The output letters in product order (`[free..., outputs...]`) as
    /// positions of the output, and the batched shape in that order.
    fn product_layout(&self, n: usize) -> (Vec<usize>, Vec<usize>) {
        let eq = &self.eq;
        let mut order: Vec<char> = eq.free();
        order.extend(eq.kernel_out());
        let pos: Vec<usize> = order
            .iter()
            .map(|c| {
                eq.output
                    .iter()
                    .position(|x| x == c)
                    .expect("output letter")
            })
            .collect();
        let shape = pos
            .iter()
            .map(|&i| if i == 0 { n } else { self.output[i - 1] })
            .collect();
        (pos, shape)
    }

    /// `einsum(eq, x, kernel) + bias` on a batched input.
    pub fn forward(
        &self,
        x: &ArrayD<f32>,
        kernel: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
    ) -> Result<ArrayD<f32>> {
        let n = x.shape()[0];
        if x.shape()[1..] != self.input[..] {
            return Err(Error::mismatch(
                format!("an input of shape {:?} for `{}`", self.input, self.eq.text),
                format!("{:?}", &x.shape()[1..]),
            ));
        }
        let (perm, f, k) = self.input_layout(n);
        let x2 = x.view().permuted_axes(IxDyn(&perm));
        let x2 = x2.as_standard_layout();
        let x2 = x2
            .view()
            .into_shape_with_order((f, k))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let (kperm, kk, m) = self.kernel_layout();
        let w = kernel.view().permuted_axes(IxDyn(&kperm));
        let w = w.as_standard_layout();
        let w2 = w
            .view()
            .into_shape_with_order((kk, m))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let y2 = matmul(x2, w2);
        let (pos, pshape) = self.product_layout(n);
        let y = y2
            .into_dyn()
            .into_shape_with_order(IxDyn(&pshape))
            .map_err(|e| Error::invalid(e.to_string()))?;
        // Product order -> output order.
        let mut inv = vec![0; pos.len()];
        for (j, &p) in pos.iter().enumerate() {
            inv[p] = j;
        }
        let mut y = y
            .permuted_axes(IxDyn(&inv))
            .as_standard_layout()
            .into_owned();
        if let Some(b) = bias {
            let tail = b.ndim();
            let lead: usize = y.shape()[..y.ndim() - tail].iter().product();
            let bs = b.as_slice().expect("standard layout");
            let ys = y.as_slice_mut().expect("standard layout");
            let per = bs.len();
            if per > 0 && lead * per == ys.len() {
                for chunk in ys.chunks_exact_mut(per) {
                    for (v, &bb) in chunk.iter_mut().zip(bs) {
                        *v += bb;
                    }
                }
            } else {
                // Bias with size-1 axes: broadcast.
                let bv = b
                    .broadcast(IxDyn(&y.shape()[y.ndim() - tail..]))
                    .ok_or_else(|| Error::mismatch("a bias broadcastable to the output", "none"))?
                    .to_owned();
                for mut lane in y
                    .view_mut()
                    .into_shape_with_order(IxDyn(&[lead, bv.len()]))
                    .map_err(|e| Error::invalid(e.to_string()))?
                    .outer_iter_mut()
                {
                    for (v, &bb) in lane.iter_mut().zip(bv.iter()) {
                        *v += bb;
                    }
                }
            }
        }
        Ok(y)
    }

    /// Gradients of `einsum(eq, x, kernel) + bias` for the output gradient
    /// `dy`: (input gradient if wanted, kernel gradient, bias gradient).
    pub fn backward(
        &self,
        x: &ArrayD<f32>,
        kernel: &ArrayD<f32>,
        dy: &ArrayD<f32>,
        want_input: bool,
    ) -> Result<ProjectionGrads> {
        let n = x.shape()[0];
        let (pos, pshape) = self.product_layout(n);
        let d = dy.view().permuted_axes(IxDyn(&pos));
        let d = d.as_standard_layout();
        let rows: usize = pshape[..self.eq.free().len()].iter().product();
        let d2 = d
            .view()
            .into_shape_with_order((rows, pshape.iter().product::<usize>() / rows.max(1)))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let (perm, f, k) = self.input_layout(n);
        let x2 = x.view().permuted_axes(IxDyn(&perm));
        let x2 = x2.as_standard_layout();
        let x2 = x2
            .view()
            .into_shape_with_order((f, k))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let (kperm, kk, m) = self.kernel_layout();
        // Kernel gradient: x2ᵀ · d2 in [contracted, outputs] layout.
        let dw2 = matmul(x2.t(), d2.view());
        let kshape: Vec<usize> = kperm.iter().map(|&i| self.kernel[i]).collect();
        let mut kinv = vec![0; kperm.len()];
        for (j, &p) in kperm.iter().enumerate() {
            kinv[p] = j;
        }
        let dw = dw2
            .into_dyn()
            .into_shape_with_order(IxDyn(&kshape))
            .map_err(|e| Error::invalid(e.to_string()))?
            .permuted_axes(IxDyn(&kinv))
            .as_standard_layout()
            .into_owned();
        let dx = if want_input {
            let w = kernel.view().permuted_axes(IxDyn(&kperm));
            let w = w.as_standard_layout();
            let w2 = w
                .view()
                .into_shape_with_order((kk, m))
                .map_err(|e| Error::invalid(e.to_string()))?;
            let dx2 = matmul(d2.view(), w2.t());
            let xshape: Vec<usize> = perm
                .iter()
                .map(|&i| if i == 0 { n } else { self.input[i - 1] })
                .collect();
            let mut inv = vec![0; perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                inv[p] = j;
            }
            Some(
                dx2.into_dyn()
                    .into_shape_with_order(IxDyn(&xshape))
                    .map_err(|e| Error::invalid(e.to_string()))?
                    .permuted_axes(IxDyn(&inv))
                    .as_standard_layout()
                    .into_owned(),
            )
        } else {
            None
        };
        let db = self.bias.as_ref().map(|bshape| {
            // Sum over the leading axes and the size-1 bias axes.
            let tail = bshape.len();
            let lead: usize = dy.shape()[..dy.ndim() - tail].iter().product();
            let tshape = &dy.shape()[dy.ndim() - tail..];
            let dys = dy.as_standard_layout();
            let flat = dys
                .view()
                .into_shape_with_order(IxDyn(
                    &std::iter::once(lead)
                        .chain(tshape.iter().copied())
                        .collect::<Vec<_>>(),
                ))
                .expect("same element count")
                .sum_axis(Axis(0));
            let mut g = flat;
            for (a, (&bd, &td)) in bshape.iter().zip(tshape).enumerate() {
                if bd == 1 && td != 1 {
                    g = g.sum_axis(Axis(a)).insert_axis(Axis(a));
                }
            }
            g
        });
        Ok((dx, dw, db))
    }
}

impl Projection {
    /// The kernel's channel axes: the first contracted axis is the input
    /// channel, the kernel-output axes (when adjacent; else the last) the
    /// output channels.
    pub fn channel_axes(&self) -> (usize, (usize, usize)) {
        let (c, o) = self.eq.kernel_axes();
        let input = c.first().copied().unwrap_or(0);
        let output = match (o.first(), o.last()) {
            (Some(&a), Some(&b)) if b + 1 - a == o.len() => (a, b + 1),
            (_, Some(&b)) => (b, b + 1),
            _ => (input, input + 1),
        };
        (input, output)
    }
}

/// The kernel and bias of a projection, as variables with the layer's
/// regularizers and constraints.
pub fn projection_vars(
    cx: &BuildCx<'_>,
    p: &Projection,
    values: Vec<ArrayD<f32>>,
) -> Result<Vec<Var>> {
    let mut out = Vec::with_capacity(values.len());
    for (value, role) in values.into_iter().zip(["kernel", "bias"]) {
        let mut v = Var::new(role, value);
        let key = if role == "kernel" { "kernel" } else { "bias" };
        v.regularizer = cx.regularizer(&format!("{key}_regularizer"))?;
        v.constraint = cx.constraint(&format!("{key}_constraint"))?;
        out.push(v);
    }
    if out.len() != 1 + usize::from(p.bias.is_some()) {
        return Err(Error::invalid("a projection's kernel and bias"));
    }
    Ok(out)
}

/// The expected variables of a projection (for `take_vars`).
pub fn expected_vars(p: &Projection) -> Vec<(Role, Vec<usize>)> {
    let mut e = vec![("kernel", p.kernel.clone())];
    if let Some(b) = &p.bias {
        e.push(("bias", b.clone()));
    }
    e
}

/// Refuse options of an einsum layer that kerasrs does not implement.
pub fn refuse_unsupported(cx: &BuildCx<'_>, keys: &[&str]) -> Result<()> {
    for key in keys {
        let v = cx.get(key);
        let set = match v {
            Value::Null | Value::Bool(false) => false,
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if set {
            return Err(Error::mismatch(
                format!(
                    "`{}` layer `{}` without `{key}` (not supported)",
                    cx.class_name, cx.name
                ),
                format!("`{key}` = {v}"),
            ));
        }
    }
    Ok(())
}

/// A partial output shape (`output_shape`: an integer or a list with
/// `null`s).
fn partial_shape(v: &Value) -> Result<Vec<Option<usize>>> {
    let one = |d: &Value| -> Result<Option<usize>> {
        match d {
            Value::Null => Ok(None),
            d => d
                .as_u64()
                .filter(|&d| d > 0 && d <= 1 << 31)
                .map(|d| Some(d as usize))
                .ok_or_else(|| Error::mismatch("a positive integer or null in `output_shape`", d)),
        }
    };
    match v {
        Value::Array(list) => list.iter().map(one).collect(),
        Value::Number(_) => Ok(vec![one(v)?]),
        other => Err(Error::mismatch(
            "`output_shape` as a list or an integer",
            other,
        )),
    }
}

/// `EinsumDense`.
#[derive(Debug, Clone)]
pub struct EinsumDense {
    proj: Projection,
    activation: Activation,
    vars: Vec<Var>,
}

/// Builder of `EinsumDense`.
pub fn build_einsum_dense(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    refuse_unsupported(
        cx,
        &[
            "lora_rank",
            "quantization_config",
            "gptq_unpacked_column_size",
            "activity_regularizer",
        ],
    )?;
    let equation = cx
        .get("equation")
        .as_str()
        .ok_or_else(|| Error::mismatch("an `equation` string", cx.get("equation")))?;
    let eq = Equation::parse(equation)?;
    let output_shape = partial_shape(cx.get("output_shape"))?;
    let bias_axes = match cx.get("bias_axes") {
        Value::Null => None,
        Value::String(s) => Some(s.as_str()),
        other => return Err(Error::mismatch("`bias_axes` as a string or null", other)),
    };
    let proj = Projection::new(eq, input, &output_shape, bias_axes)?;
    let activation = Activation::from_config(cx.get("activation"))?;
    if !activation.is_elementwise() {
        return Err(Error::mismatch(
            "an element-wise `activation` for `EinsumDense`",
            activation.name(),
        ));
    }
    let values = cx.take_vars(&expected_vars(&proj))?;
    let vars = projection_vars(cx, &proj, values)?;
    Ok(Box::new(EinsumDense {
        proj,
        activation,
        vars,
    }))
}

/// Apply an element-wise activation to an N-D array (as rows).
pub fn activate(a: Activation, z: &ArrayD<f32>) -> ArrayD<f32> {
    if a == Activation::Linear {
        return z.clone();
    }
    let shape = z.shape().to_vec();
    let n = shape.iter().product::<usize>();
    let z2 = z
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((1, n))
        .expect("same element count");
    a.forward(z2)
        .into_dyn()
        .into_shape_with_order(IxDyn(&shape))
        .expect("same element count")
}

/// The gradient through an element-wise activation.
pub fn activate_backward(
    a: Activation,
    z: &ArrayD<f32>,
    y: &ArrayD<f32>,
    dy: ArrayD<f32>,
) -> ArrayD<f32> {
    if a == Activation::Linear {
        return dy;
    }
    let shape = z.shape().to_vec();
    let n = shape.iter().product::<usize>();
    let flat = |v: &ArrayD<f32>| {
        v.as_standard_layout()
            .into_owned()
            .into_shape_with_order((1, n))
            .expect("same element count")
    };
    a.backward(flat(z).view(), flat(y).view(), flat(&dy).view())
        .into_dyn()
        .into_shape_with_order(IxDyn(&shape))
        .expect("same element count")
}

impl EinsumDense {
    fn bias(&self) -> Option<&ArrayD<f32>> {
        self.vars.get(1).map(|v| &v.value)
    }
}

impl LayerOp for EinsumDense {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = single_shape(inputs, "EinsumDense")?;
        if s != self.proj.input.as_slice() {
            return Err(Error::mismatch(
                format!("an input of shape {:?}", self.proj.input),
                format!("{s:?}"),
            ));
        }
        Ok(self.proj.output.clone())
    }

    fn supports_masking(&self) -> bool {
        // `Layer` default: no `supports_masking`, the mask ends here.
        false
    }

    fn compute_mask(
        &self,
        _x: &[&ArrayD<f32>],
        _masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        Ok(vec![None])
    }

    fn channel_axes(&self, i: usize) -> Option<(usize, (usize, usize))> {
        (i == 0).then(|| self.proj.channel_axes())
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let z = self.proj.forward(x[0], &self.vars[0].value, self.bias())?;
        if self.activation == Activation::Linear {
            return Ok(Forward::plain(z));
        }
        let y = activate(self.activation, &z);
        Ok(Forward {
            saved: Some(Box::new(z)),
            ..Forward::plain(y)
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.grads(x, y, saved, dy, true)
    }

    fn backward_vars(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.grads(x, y, saved, dy, false)
    }

    fn detail(&self) -> Option<String> {
        Some(self.proj.eq.text.clone())
    }

    crate::clone_box!();
}

impl EinsumDense {
    fn grads(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
        want_input: bool,
    ) -> Result<Backward> {
        let dz = if self.activation == Activation::Linear {
            dy
        } else {
            let z = saved
                .as_ref()
                .and_then(|s| s.downcast_ref::<ArrayD<f32>>())
                .ok_or_else(|| Error::training("`EinsumDense` was not run in training mode"))?;
            activate_backward(self.activation, z, y, dy)
        };
        let (dx, dw, db) = self
            .proj
            .backward(x[0], &self.vars[0].value, &dz, want_input)?;
        let mut vars = vec![Some(dw)];
        if db.is_some() {
            vars.push(db);
        }
        Ok(Backward {
            inputs: vec![dx.unwrap_or_else(|| ArrayD::zeros(x[0].raw_dim()))],
            vars,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{build, gradients, values};
    use super::*;
    use serde_json::json;

    fn stored(shapes: &[&[usize]], seed: u64) -> Vec<(Vec<usize>, Vec<f32>)> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.to_vec(),
                    values(s, seed + i as u64).iter().copied().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn equations_are_checked() {
        for good in ["ab,bc->ac", "abc,cd->abd", "abc,cde->abde", "abcd,cde->abe"] {
            Equation::parse(good).unwrap();
        }
        for (bad, why) in [
            ("...b,bc->...c", "letters only"),
            ("ab,bc->abc", "appears in 3"),
            ("ab,bc->a", "appears in 1"),
            ("ab,ac->bc", "batch"),
            ("abb,bc->ac", "repeated"),
            ("ab.bc", "no `->`"),
        ] {
            let err = Equation::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn dense_form_matches_a_matrix_product() {
        let op = build(
            build_einsum_dense,
            "EinsumDense",
            json!({"equation": "abc,cd->abd", "output_shape": [null, 3], "bias_axes": "d"}),
            &[vec![2, 4]],
            &stored(&[&[4, 3], &[3]], 1),
        );
        let x = values(&[2, 2, 4], 5);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let y = op.forward(&[&x], &mut cx).unwrap().y;
        let (k, b) = (&op.vars()[0].value, &op.vars()[1].value);
        for i in 0..2 {
            for t in 0..2 {
                for d in 0..3 {
                    let want: f32 = (0..4).map(|c| x[[i, t, c]] * k[[c, d]]).sum::<f32>() + b[[d]];
                    assert!((y[[i, t, d]] - want).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases
    fn finite_differences_of_every_form() {
        let cases: Vec<(serde_json::Value, Vec<usize>, Vec<&[usize]>)> = vec![
            (
                json!({"equation": "ab,bc->ac", "output_shape": 3, "bias_axes": "c",
                       "activation": "tanh"}),
                vec![4],
                vec![&[4, 3], &[3]],
            ),
            (
                json!({"equation": "abc,cde->abde", "output_shape": [null, 2, 3],
                       "bias_axes": "de"}),
                vec![3, 4],
                vec![&[4, 2, 3], &[2, 3]],
            ),
            (
                json!({"equation": "abcd,cde->abe", "output_shape": [null, 5],
                       "bias_axes": "e"}),
                vec![3, 2, 3],
                vec![&[2, 3, 5], &[5]],
            ),
            (
                // A bias over one of two kernel-output axes (size-1 axis).
                json!({"equation": "abc,cde->abde", "output_shape": [null, 2, 3],
                       "bias_axes": "d"}),
                vec![3, 4],
                vec![&[4, 2, 3], &[2, 1]],
            ),
            (
                // Output axes in another order than the product's.
                json!({"equation": "abc,cd->adb", "output_shape": [3, null]}),
                vec![2, 4],
                vec![&[4, 3]],
            ),
        ];
        for (cfg, input, shapes) in cases {
            let op = build(
                build_einsum_dense,
                "EinsumDense",
                cfg.clone(),
                std::slice::from_ref(&input),
                &stored(&shapes, 3),
            );
            let mut shape = vec![2];
            shape.extend(&input);
            gradients(op.as_ref(), &[values(&shape, 9)], Mode::Training, 2e-2);
        }
    }

    #[test]
    fn unsupported_options_name_the_layer() {
        let config = json!({"equation": "ab,bc->ac", "output_shape": 3, "lora_rank": 2})
            .as_object()
            .unwrap()
            .clone();
        let err = build_einsum_dense(&BuildCx {
            class_name: "EinsumDense",
            name: "proj",
            config: &config,
            inputs: &[vec![4]],
            stored: &[],
            vars_path: "layers/einsum_dense/vars",
            group: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`EinsumDense` layer `proj`") && err.contains("lora_rank"),
            "{err}"
        );
    }
}
