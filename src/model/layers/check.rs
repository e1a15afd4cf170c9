//! Test helpers for layers: finite-difference checks of a [`LayerOp`]'s
//! backward pass (input and variable gradients) against its forward pass.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{BuildCx, Builder, Ctx, LayerOp, Mode};

/// Deterministic values in [-1, 1) of the given shape.
pub fn values(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_fn(shape.to_vec(), |_| rng.random::<f32>() * 2.0 - 1.0)
}

/// Build a layer from a JSON config for per-sample input shapes, with the
/// given stored variables.
pub fn build(
    builder: Builder,
    class_name: &str,
    config: serde_json::Value,
    inputs: &[Vec<usize>],
    stored: &[(Vec<usize>, Vec<f32>)],
) -> Box<dyn LayerOp> {
    let config = config.as_object().expect("config object").clone();
    builder(&BuildCx {
        class_name,
        name: "test",
        config: &config,
        inputs,
        stored,
        vars_path: "layers/test/vars",
        group: None,
    })
    .expect("layer builds")
}

/// `sum(forward(x) * r)` in float64.
fn objective(op: &dyn LayerOp, x: &[ArrayD<f32>], r: &ArrayD<f32>, mode: Mode) -> f64 {
    let mut rng = StdRng::seed_from_u64(7);
    let mut cx = Ctx {
        mode,
        rng: &mut rng,
    };
    let refs: Vec<&ArrayD<f32>> = x.iter().collect();
    let y = op.forward(&refs, &mut cx).expect("forward").y;
    y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// Check the backward pass of `op` at `x` (in `mode`) against central
/// differences of `sum(y · r)`, for every input and trainable variable.
/// `tol` is relative to `max(1, |gradient|)`.
pub fn gradients(op: &dyn LayerOp, x: &[ArrayD<f32>], mode: Mode, tol: f64) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut cx = Ctx {
        mode,
        rng: &mut rng,
    };
    let refs: Vec<&ArrayD<f32>> = x.iter().collect();
    let fwd = op.forward(&refs, &mut cx).expect("forward");
    let r = values(fwd.y.shape(), 99);
    let back = op
        .backward(&refs, &fwd.y, &fwd.saved, r.clone())
        .expect("backward");
    assert_eq!(back.inputs.len(), x.len(), "one gradient per input");
    let eps = 1e-3f32;
    for (i, xi) in x.iter().enumerate() {
        assert_eq!(
            back.inputs[i].shape(),
            xi.shape(),
            "input {i} gradient shape"
        );
        for j in 0..xi.len() {
            let mut plus = x.to_vec();
            let mut minus = x.to_vec();
            plus[i].as_slice_mut().unwrap()[j] += eps;
            minus[i].as_slice_mut().unwrap()[j] -= eps;
            let num = (objective(op, &plus, &r, mode) - objective(op, &minus, &r, mode))
                / (2.0 * f64::from(eps));
            let got = f64::from(back.inputs[i].as_slice().unwrap()[j]);
            assert!(
                (num - got).abs() <= tol * num.abs().max(1.0),
                "input {i} element {j}: numeric {num}, backward {got}"
            );
        }
    }
    let mut op_mut = op.clone_box();
    for (v, var) in op.vars().iter().enumerate() {
        if !var.trainable {
            continue;
        }
        let g = back.vars[v]
            .as_ref()
            .expect("trainable variable has a gradient");
        assert_eq!(g.shape(), var.value.shape(), "variable {v} gradient shape");
        for j in 0..var.value.len() {
            let base = var.value.as_slice().unwrap()[j];
            op_mut.vars_mut()[v].value.as_slice_mut().unwrap()[j] = base + eps;
            let p = objective(op_mut.as_ref(), x, &r, mode);
            op_mut.vars_mut()[v].value.as_slice_mut().unwrap()[j] = base - eps;
            let m = objective(op_mut.as_ref(), x, &r, mode);
            op_mut.vars_mut()[v].value.as_slice_mut().unwrap()[j] = base;
            let num = (p - m) / (2.0 * f64::from(eps));
            let got = f64::from(g.as_slice().unwrap()[j]);
            assert!(
                (num - got).abs() <= tol * num.abs().max(1.0),
                "variable {v} ({}) element {j}: numeric {num}, backward {got}",
                var.role
            );
        }
    }
}

/// A layer seen through fixed input masks, with all its outputs flattened
/// into one `[n, Σ sizes]` output, so that [`gradients`] checks masked
/// calls and every output of a layer with several.
#[derive(Debug, Clone)]
pub struct Masked {
    /// The layer.
    pub inner: Box<dyn LayerOp>,
    /// One mask per input.
    pub masks: Vec<Option<super::Mask>>,
}

impl LayerOp for Masked {
    fn output_shape(&self, _inputs: &[Vec<usize>]) -> crate::error::Result<Vec<usize>> {
        unreachable!("not built into a graph")
    }

    fn vars(&self) -> &[super::Var] {
        self.inner.vars()
    }

    fn vars_mut(&mut self) -> &mut [super::Var] {
        self.inner.vars_mut()
    }

    fn forward(
        &self,
        x: &[&ArrayD<f32>],
        cx: &mut Ctx<'_>,
    ) -> crate::error::Result<super::Forward> {
        let masks: Vec<Option<&super::Mask>> = self.masks.iter().map(Option::as_ref).collect();
        let f = self.inner.forward_masked(x, &masks, cx)?;
        let n = f.y.shape()[0];
        let mut parts = vec![f.y.clone()];
        parts.extend(f.extra.iter().cloned());
        let flat: Vec<ndarray::Array2<f32>> = parts
            .into_iter()
            .map(|p| {
                let k = p.len() / n.max(1);
                p.into_shape_with_order((n, k)).expect("rows")
            })
            .collect();
        let views: Vec<_> = flat.iter().map(|a| a.view()).collect();
        let y = ndarray::concatenate(ndarray::Axis(1), &views)
            .expect("same rows")
            .into_dyn();
        let shapes: Vec<Vec<usize>> = std::iter::once(f.y.shape().to_vec())
            .chain(f.extra.iter().map(|e| e.shape().to_vec()))
            .collect();
        Ok(super::Forward {
            y,
            extra: Vec::new(),
            saved: Some(Box::new((shapes, f.saved))),
            updates: Vec::new(),
        })
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &super::Saved,
        dy: ArrayD<f32>,
    ) -> crate::error::Result<super::Backward> {
        type Inner = (Vec<Vec<usize>>, super::Saved);
        let (shapes, inner) = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Inner>())
            .expect("saved by forward");
        let n = dy.shape()[0];
        let mut at = 0;
        let mut dys = Vec::new();
        let mut ys = Vec::new();
        for s in shapes {
            let k: usize = s[1..].iter().product();
            let part = dy
                .view()
                .into_shape_with_order((n, dy.len() / n.max(1)))
                .expect("rows")
                .slice(ndarray::s![.., at..at + k])
                .to_owned()
                .into_shape_with_order(ndarray::IxDyn(s))
                .expect("shape");
            ys.push(ArrayD::zeros(ndarray::IxDyn(s)));
            dys.push(Some(part));
            at += k;
        }
        let y_refs: Vec<&ArrayD<f32>> = ys.iter().collect();
        self.inner.backward_multi(x, &y_refs, inner, dys, true)
    }

    fn clone_box(&self) -> Box<dyn LayerOp> {
        Box::new(self.clone())
    }
}
