//! Layer wrappers: `Bidirectional` (two recurrent layers, one reading the
//! sequence backwards) and `TimeDistributed` (a layer applied to every
//! timestep).
//!
//! # Specification
//!
//! Keras 3.15.1; paths relative to `site-packages/keras/src/`:
//!
//! * `layers/rnn/bidirectional.py`: `forward_layer` is `layer`,
//!   `backward_layer` the given one or `layer` with `go_backwards=True`;
//!   both get `zero_output_for_mask = return_sequences`
//!   (`force_zero_output_for_mask`). `call`: with `return_sequences` the
//!   backward output is flipped back to input order; `merge_mode` concat
//!   (last axis), sum, ave (`(y + y_rev) / 2`), mul, or `None` (two
//!   outputs); with `return_state` the forward states then the backward
//!   states follow. `compute_mask`: the input mask for sequence outputs
//!   (twice with `merge_mode=None`), none otherwise. Variables live under
//!   `forward_layer/cell/vars` and `backward_layer/cell/vars`; the
//!   forward layer's come first in `weights`.
//! * `layers/rnn/time_distributed.py`: `call` runs `layer.call` (not
//!   `__call__`: the inner layer's activity penalty does not apply) on each
//!   timestep `inputs[:, i]` and stacks the results on axis 1; masks pass
//!   through (default `compute_mask`). Variables live under `layer/vars`.

use ndarray::{Array2, ArrayD, Axis, IxDyn};
use serde_json::{Map, Value};

use super::rnn::{RnnConfig, parse as parse_rnn};
use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Mask, Saved, Var, single_shape};
use crate::engine::gemm::matmul;
use crate::error::{Error, Result};
use crate::model::activation::Activation;

/// The `{"class_name", "config"}` of a wrapped layer.
fn inner<'a>(cx: &BuildCx<'a>, key: &str) -> Result<(&'a str, &'a Map<String, Value>)> {
    let v = cx.get(key);
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing(format!("`{key}.class_name`")))?;
    let config = v
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::missing(format!("`{key}.config`")))?;
    Ok((class, config))
}

/// `merge_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeMode {
    Concat,
    Sum,
    Ave,
    Mul,
    None,
}

/// `Bidirectional`.
#[derive(Debug, Clone)]
pub struct Bidirectional {
    forward: RnnConfig,
    backward: RnnConfig,
    merge: MergeMode,
    /// Forward variables then backward ones.
    vars: Vec<Var>,
    split: usize,
}

/// Builder of `Bidirectional`.
pub fn build_bidirectional(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let merge = match cx.get("merge_mode") {
        Value::Null => MergeMode::None,
        Value::String(m) if m == "concat" => MergeMode::Concat,
        Value::String(m) if m == "sum" => MergeMode::Sum,
        Value::String(m) if m == "ave" => MergeMode::Ave,
        Value::String(m) if m == "mul" => MergeMode::Mul,
        other => {
            return Err(Error::unsupported(
                "merge_mode",
                other.to_string(),
                &["concat", "sum", "ave", "mul", "null"],
            ));
        }
    };
    let (fclass, fcfg) = inner(cx, "layer")?;
    let mut fcfg = fcfg.clone();
    let mut bwd = match cx.get("backward_layer") {
        Value::Null => {
            let mut b = fcfg.clone();
            b.insert("go_backwards".into(), Value::Bool(true));
            (fclass, b)
        }
        _ => {
            let (c, b) = inner(cx, "backward_layer")?;
            (c, b.clone())
        }
    };
    // `force_zero_output_for_mask`.
    for cfg in [&mut fcfg, &mut bwd.1] {
        let seq = cfg
            .get("return_sequences")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        cfg.insert("zero_output_for_mask".into(), Value::Bool(seq));
    }
    let (forward, mut vars) = cx.sub(fclass, &fcfg, "forward_layer", cx.inputs, |c| {
        parse_rnn(c, input)
    })?;
    let (backward, bvars) = cx.sub(bwd.0, &bwd.1, "backward_layer", cx.inputs, |c| {
        parse_rnn(c, input)
    })?;
    let fs = forward.output_shapes(input)?;
    let bs = backward.output_shapes(input)?;
    if fs != bs || forward.return_sequences() != backward.return_sequences() {
        return Err(Error::mismatch(
            "forward and backward layers with the same output shapes",
            format!("{fs:?} and {bs:?}"),
        ));
    }
    let split = vars.len();
    vars.extend(bvars);
    let layer = Bidirectional {
        forward,
        backward,
        merge,
        vars,
        split,
    };
    layer.output_shapes(cx.inputs)?;
    Ok(Box::new(layer))
}

impl LayerOp for Bidirectional {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        Ok(self.output_shapes(inputs)?.remove(0))
    }

    fn output_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        let input = single_shape(inputs, "Bidirectional")?;
        let f = self.forward.output_shapes(input)?;
        let b = self.backward.output_shapes(input)?;
        let mut out = match self.merge {
            MergeMode::Concat => {
                let mut s = f[0].clone();
                if let (Some(l), Some(r)) = (s.last_mut(), b[0].last()) {
                    *l += r;
                }
                vec![s]
            }
            MergeMode::None => vec![f[0].clone(), b[0].clone()],
            _ => vec![f[0].clone()],
        };
        out.extend(f[1..].iter().cloned());
        out.extend(b[1..].iter().cloned());
        Ok(out)
    }

    fn compute_mask(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        let mask = masks.first().copied().flatten();
        let seq = self
            .forward
            .return_sequences()
            .then(|| mask.cloned())
            .flatten();
        let shapes = self.output_shapes(&[x[0].shape()[1..].to_vec()])?;
        let mut out = vec![None; shapes.len()];
        out[0] = seq.clone();
        if self.merge == MergeMode::None {
            out[1] = seq;
        }
        Ok(out)
    }

    fn var_path(&self, i: usize) -> String {
        if i < self.split {
            format!("forward_layer/cell/vars/{i}")
        } else {
            format!("backward_layer/cell/vars/{}", i - self.split)
        }
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        self.forward_masked(x, &[None], cx)
    }

    fn forward_masked(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<Forward> {
        let x = super::norm::single(x, "Bidirectional")?;
        let mask = masks.first().copied().flatten();
        // The masks are drawn in the order of a run of one direction after
        // the other; the two directions then run on both threads.
        let fdrops = self.forward.dropout_masks(x.shape(), cx);
        let bdrops = self.backward.dropout_masks(x.shape(), cx);
        let (fvars, bvars) = self.vars.split_at(self.split);
        let (f, b) = crate::engine::pool::join(
            || self.forward.run_with(fvars, x, mask, fdrops),
            || self.backward.run_with(bvars, x, mask, bdrops),
        );
        let ((mut fo, ftape), (mut bo, btape)) = (f?, b?);
        let y = fo.remove(0);
        let mut y_rev = bo.remove(0);
        if self.backward.return_sequences() {
            y_rev.invert_axis(Axis(1));
            y_rev = y_rev.as_standard_layout().into_owned();
        }
        let mut outs = match self.merge {
            MergeMode::Concat => {
                let last = y.ndim() - 1;
                vec![
                    ndarray::concatenate(Axis(last), &[y.view(), y_rev.view()])
                        .map_err(|e| Error::invalid(e.to_string()))?,
                ]
            }
            MergeMode::Sum => vec![&y + &y_rev],
            // `(y + y_rev) / 2`.
            MergeMode::Ave => vec![(&y + &y_rev).mapv(|v| v / 2.0)],
            MergeMode::Mul => vec![&y * &y_rev],
            MergeMode::None => vec![y.clone(), y_rev.clone()],
        };
        outs.extend(fo);
        outs.extend(bo);
        let first = outs.remove(0);
        Ok(Forward {
            y: first,
            extra: outs,
            saved: Some(Box::new((ftape, btape, y, y_rev))),
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
        self.backward_multi(x, &[y], saved, vec![Some(dy)], true)
    }

    fn backward_multi(
        &self,
        x: &[&ArrayD<f32>],
        _ys: &[&ArrayD<f32>],
        saved: &Saved,
        dys: Vec<Option<ArrayD<f32>>>,
        _inputs_needed: bool,
    ) -> Result<Backward> {
        type Kept = (super::rnn::Tape, super::rnn::Tape, ArrayD<f32>, ArrayD<f32>);
        let (ftape, btape, y, y_rev) = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Kept>())
            .ok_or_else(|| Error::training("`Bidirectional` has no forward tape"))?;
        let mut dys = dys.into_iter();
        let d0 = dys.next().flatten();
        let (dy, mut dy_rev) = match self.merge {
            MergeMode::None => (d0, dys.next().flatten()),
            _ => match d0 {
                None => (None, None),
                Some(g) => match self.merge {
                    MergeMode::Concat => {
                        let last = g.ndim() - 1;
                        let w = y.shape()[last];
                        (
                            Some(g.slice_axis(Axis(last), (..w).into()).to_owned()),
                            Some(g.slice_axis(Axis(last), (w..).into()).to_owned()),
                        )
                    }
                    MergeMode::Sum => (Some(g.clone()), Some(g)),
                    MergeMode::Ave => {
                        let h = g.mapv(|v| v / 2.0);
                        (Some(h.clone()), Some(h))
                    }
                    MergeMode::Mul => (Some(&g * y_rev), Some(&g * y)),
                    MergeMode::None => unreachable!("handled above"),
                },
            },
        };
        if self.backward.return_sequences()
            && let Some(g) = dy_rev.as_mut()
        {
            g.invert_axis(Axis(1));
            *g = g.as_standard_layout().into_owned();
        }
        let rest: Vec<Option<ArrayD<f32>>> = dys.collect();
        let nf = rest.len() / 2;
        let mut fd = vec![dy];
        fd.extend(rest[..nf].iter().cloned());
        let mut bd = vec![dy_rev];
        bd.extend(rest[nf..].iter().cloned());
        let (fvars, bvars) = self.vars.split_at(self.split);
        let shape = x[0].shape();
        let (f, b) = crate::engine::pool::join(
            || self.forward.back(fvars, shape, ftape, &fd),
            || self.backward.back(bvars, shape, btape, &bd),
        );
        let ((dxf, gf), (dxb, gb)) = (f?, b?);
        Ok(Backward {
            inputs: vec![dxf + &dxb],
            vars: gf.into_iter().chain(gb).map(Some).collect(),
        })
    }

    fn detail(&self) -> Option<String> {
        Some(format!("{:?}", self.merge).to_lowercase())
    }

    crate::clone_box!();
}

/// `Dense` as the wrapped layer of `TimeDistributed`.
#[derive(Debug, Clone)]
struct InnerDense {
    activation: Activation,
    vars: Vec<Var>,
}

fn build_inner_dense(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let d = *input
        .last()
        .ok_or_else(|| Error::mismatch("an input with a feature axis", "a scalar"))?;
    let units = cx.get("units");
    let units = units
        .as_u64()
        .filter(|&u| u > 0 && u <= 1 << 31)
        .map(|u| u as usize)
        .ok_or_else(|| Error::mismatch("a positive integer `units`", units))?;
    for key in ["quantization_config", "lora_rank"] {
        let v = cx.get(key);
        if !v.is_null() && v != &Value::from(0) {
            return Err(Error::unsupported("Dense option", key, &["plain Dense"]));
        }
    }
    let activation = Activation::from_config(cx.get("activation"))?;
    activation.output_width(units)?;
    if !activation.is_elementwise() && activation != Activation::Softmax {
        return Err(Error::unsupported(
            "TimeDistributed Dense activation",
            activation.name(),
            &["element-wise activations", "softmax"],
        ));
    }
    let mut expected = vec![("kernel", vec![d, units])];
    if cx.bool_or("use_bias", true)? {
        expected.push(("bias", vec![units]));
    }
    let values = cx.take_vars(&expected)?;
    let keys = [
        ("kernel_regularizer", "kernel_constraint"),
        ("bias_regularizer", "bias_constraint"),
    ];
    let vars = values
        .into_iter()
        .zip(expected)
        .zip(keys)
        .map(|((value, (role, _)), (reg, con))| {
            let mut v = Var::new(role, value);
            v.regularizer = cx.regularizer(reg)?;
            v.constraint = cx.constraint(con)?;
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(InnerDense { activation, vars }))
}

fn rows_of(x: &ArrayD<f32>) -> Result<Array2<f32>> {
    let last = *x.shape().last().unwrap_or(&1);
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order((x.len() / last.max(1), last))
        .map_err(|e| Error::invalid(e.to_string()))
}

impl LayerOp for InnerDense {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let mut s = single_shape(inputs, "Dense")?.to_vec();
        let k = self.vars[0].value.shape();
        match s.last_mut() {
            Some(l) if *l == k[0] => *l = k[1],
            _ => {
                return Err(Error::mismatch(
                    format!("last axis {}", k[0]),
                    format!("{s:?}"),
                ));
            }
        }
        Ok(s)
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        // `keras/src/layers/core/dense.py`: matmul, bias, activation.
        let k = self.vars[0]
            .value
            .view()
            .into_dimensionality()
            .map_err(|e| Error::invalid(e.to_string()))?;
        let mut z = matmul(rows_of(x[0])?.view(), k);
        if let Some(b) = self.vars.get(1) {
            let b = b
                .value
                .view()
                .into_dimensionality::<ndarray::Ix1>()
                .map_err(|e| Error::invalid(e.to_string()))?;
            z += &b;
        }
        let y = self.activation.forward(z.clone());
        let mut shape = x[0].shape().to_vec();
        if let Some(l) = shape.last_mut() {
            *l = y.ncols();
        }
        let y = y
            .into_dyn()
            .into_shape_with_order(IxDyn(&shape))
            .map_err(|e| Error::invalid(e.to_string()))?;
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
        let z = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Array2<f32>>())
            .ok_or_else(|| Error::training("Dense has no saved pre-activation"))?;
        let dz = self
            .activation
            .backward(z.view(), rows_of(y)?.view(), rows_of(&dy)?.view());
        let xr = rows_of(x[0])?;
        let k = self.vars[0]
            .value
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| Error::invalid(e.to_string()))?;
        let mut vars = vec![Some(matmul(xr.t(), dz.view()).into_dyn())];
        if self.vars.len() > 1 {
            vars.push(Some(dz.sum_axis(Axis(0)).into_dyn()));
        }
        let dx = matmul(dz.view(), k.t())
            .into_dyn()
            .into_shape_with_order(IxDyn(x[0].shape()))
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Backward {
            inputs: vec![dx],
            vars,
        })
    }

    crate::clone_box!();
}

/// `TimeDistributed`.
#[derive(Debug, Clone)]
pub struct TimeDistributed {
    inner: Box<dyn LayerOp>,
    class: String,
}

/// Builder of `TimeDistributed`.
pub fn build_time_distributed(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let Some((_, step)) = input.split_first() else {
        return Err(Error::mismatch(
            "an input with a time axis for `TimeDistributed`",
            format!("{input:?}"),
        ));
    };
    let (class, config) = inner(cx, "layer")?;
    let builder = match class {
        "Dense" => build_inner_dense as super::Builder,
        other if matches!(other, "Bidirectional" | "TimeDistributed") || other.ends_with("RNN") => {
            return Err(Error::unsupported(
                "TimeDistributed layer",
                other,
                &["Dense and the stateless layers of the registry"],
            ));
        }
        other => super::builder(other).ok_or_else(|| {
            Error::unsupported("TimeDistributed layer", other, &["Dense", "Conv2D", "..."])
        })?,
    };
    if let Some(rate) = config.get("rate").and_then(Value::as_f64)
        && rate > 0.0
    {
        return Err(Error::unsupported(
            "TimeDistributed layer",
            format!("`{class}` with a random training behaviour"),
            &["deterministic layers"],
        ));
    }
    let op = cx.sub(class, config, "layer", &[step.to_vec()], builder)?;
    if op.vars().iter().any(|v| !v.trainable) {
        return Err(Error::unsupported(
            "TimeDistributed layer",
            format!("`{class}` with non-trainable state"),
            &["layers without state"],
        ));
    }
    let layer = TimeDistributed {
        inner: op,
        class: class.to_string(),
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl LayerOp for TimeDistributed {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let input = single_shape(inputs, "TimeDistributed")?;
        let (&t, step) = input
            .split_first()
            .ok_or_else(|| Error::mismatch("an input with a time axis", "a scalar"))?;
        let mut out = vec![t];
        out.extend(self.inner.output_shape(&[step.to_vec()])?);
        Ok(out)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn var_path(&self, i: usize) -> String {
        format!("layer/{}", self.inner.var_path(i))
    }

    fn vars(&self) -> &[Var] {
        self.inner.vars()
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        self.inner.vars_mut()
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = super::norm::single(x, "TimeDistributed")?;
        let t = *x
            .shape()
            .get(1)
            .ok_or_else(|| Error::mismatch("an input with a time axis", "a matrix"))?;
        let mut ys = Vec::with_capacity(t);
        let mut saved = Vec::with_capacity(t);
        for i in 0..t {
            let xi = x.slice_axis(Axis(1), (i..=i).into()).remove_axis(Axis(1));
            let xi = xi.as_standard_layout().into_owned();
            let f = self.inner.forward(&[&xi], cx)?;
            ys.push(f.y.as_standard_layout().into_owned());
            saved.push(f.saved);
        }
        let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
        let y = ndarray::stack(Axis(1), &views).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Forward {
            saved: Some(Box::new((ys, saved))),
            ..Forward::plain(y)
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        type Kept = (Vec<ArrayD<f32>>, Vec<Saved>);
        let (ys, steps) = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Kept>())
            .ok_or_else(|| Error::training("`TimeDistributed` has no saved steps"))?;
        let x = x[0];
        let mut dx = ArrayD::<f32>::zeros(x.raw_dim());
        let mut grads: Vec<Option<ArrayD<f32>>> = vec![None; self.inner.vars().len()];
        for (i, (yi, si)) in ys.iter().zip(steps).enumerate() {
            let xi = x
                .slice_axis(Axis(1), (i..=i).into())
                .remove_axis(Axis(1))
                .as_standard_layout()
                .into_owned();
            let gi = dy
                .slice_axis(Axis(1), (i..=i).into())
                .remove_axis(Axis(1))
                .as_standard_layout()
                .into_owned();
            let b = self.inner.backward(&[&xi], yi, si, gi)?;
            if let Some(g) = b.inputs.into_iter().next() {
                let mut slot = dx.slice_axis_mut(Axis(1), (i..=i).into());
                slot.assign(&g.insert_axis(Axis(1)));
            }
            for (acc, g) in grads.iter_mut().zip(b.vars) {
                if let Some(g) = g {
                    match acc {
                        Some(a) => *a += &g,
                        None => *acc = Some(g),
                    }
                }
            }
        }
        Ok(Backward {
            inputs: vec![dx],
            vars: grads,
        })
    }

    fn detail(&self) -> Option<String> {
        Some(self.class.clone())
    }

    crate::clone_box!();
}
