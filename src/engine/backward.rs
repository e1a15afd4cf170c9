//! One training step's forward pass (training mode) and backward pass over
//! a chain model: the minimized loss and its gradient for every trainable
//! variable.
//!
//! Spec: `keras/src/backend/jax/trainer.py` (`compute_loss_and_updates`,
//! `train_step`: `jax.value_and_grad` of the total loss),
//! `keras/src/trainers/trainer.py` (`compute_loss`: compiled loss plus every
//! entry of `model.losses`, summed), `keras/src/layers/layer.py` (`losses`:
//! activity penalties from the call, then one penalty per *trainable* weight
//! that has a regularizer; `__call__`: the activity penalty is
//! `regularizer(output) / batch_size`).

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMut1, ArrayViewMut2, Axis};
use rand::Rng;

use super::forward::{LayerInput, dense_affine, reshape_rows};
use super::gemm::{Lhs, matmul, matmul_into};
use super::loss::Loss;
use super::pool;
use crate::error::Result;
use crate::model::{LayerKind, Model, Regularizer};

/// Which weight of a layer a trainable variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// A Dense kernel `[in, units]`.
    Kernel,
    /// A Dense bias `[units]`.
    Bias,
    /// Variable `i` of a layer implemented through `LayerOp` (its
    /// `vars()[i]`: BatchNormalization's gamma, PReLU's alpha, ...).
    Op(usize),
}

/// A trainable variable: a layer (index into `model.layers`) and a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarRef {
    /// Index of the layer in `model.layers`.
    pub layer: usize,
    /// Which weight.
    pub kind: VarKind,
}

/// The model's trainable variables in Keras's `model.trainable_variables`
/// order: layers in order, each layer's kernel then bias.
pub fn trainable_variables(model: &Model) -> Vec<VarRef> {
    let mut vars = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        if let (true, Some(op)) = (layer.trainable, layer.op()) {
            for (v, var) in op.vars().iter().enumerate() {
                if var.trainable {
                    vars.push(VarRef {
                        layer: i,
                        kind: VarKind::Op(v),
                    });
                }
            }
            continue;
        }
        if let (true, Some(d)) = (layer.trainable, layer.dense()) {
            vars.push(VarRef {
                layer: i,
                kind: VarKind::Kernel,
            });
            if d.bias.is_some() {
                vars.push(VarRef {
                    layer: i,
                    kind: VarKind::Bias,
                });
            }
        }
    }
    vars
}

/// The variable reference of weight `index` (`vars/index`) of layer
/// `layer`: a Dense layer's kernel (0) or bias (1), else the layer's own
/// variable.
pub fn var_ref(model: &Model, layer: usize, index: usize) -> VarRef {
    let kind = match (model.layers[layer].op(), index) {
        (Some(_), i) => VarKind::Op(i),
        (None, 0) => VarKind::Kernel,
        (None, _) => VarKind::Bias,
    };
    VarRef { layer, kind }
}

/// The shape of a trainable variable.
pub fn var_shape(model: &Model, v: VarRef) -> Vec<usize> {
    if let (VarKind::Op(i), Some(op)) = (v.kind, model.layers[v.layer].op()) {
        return op.vars()[i].value.shape().to_vec();
    }
    let d = model.layers[v.layer]
        .dense()
        .expect("trainable variables belong to Dense layers");
    match v.kind {
        VarKind::Kernel => d.kernel.shape().to_vec(),
        VarKind::Bias | VarKind::Op(_) => vec![d.units],
    }
}

/// The values of a trainable variable, mutably (C order).
pub fn var_values_mut(model: &mut Model, v: VarRef) -> &mut [f32] {
    if let VarKind::Op(i) = v.kind {
        let op = model.layers[v.layer]
            .op_mut()
            .expect("op variables belong to op layers");
        return op.vars_mut()[i]
            .value
            .as_slice_mut()
            .expect("variables are stored in standard layout");
    }
    let d = model.layers[v.layer]
        .dense_mut()
        .expect("trainable variables belong to Dense layers");
    match v.kind {
        VarKind::Kernel => d.kernel.as_slice_mut(),
        VarKind::Bias | VarKind::Op(_) => d.bias.as_mut().and_then(|b| b.as_slice_mut()),
    }
    .expect("weights are stored in standard layout")
}

/// A trainable variable's regularizer and current values.
pub fn var_regularizer(model: &Model, v: VarRef) -> (Option<Regularizer>, ArrayViewD<'_, f32>) {
    if let (VarKind::Op(i), Some(op)) = (v.kind, model.layers[v.layer].op()) {
        let var = &op.vars()[i];
        return (var.regularizer, var.value.view());
    }
    let d = model.layers[v.layer]
        .dense()
        .expect("trainable variables belong to Dense layers");
    match v.kind {
        VarKind::Kernel => (d.kernel_regularizer, d.kernel.view().into_dyn()),
        VarKind::Bias | VarKind::Op(_) => (
            d.bias_regularizer,
            d.bias.as_ref().expect("bias").view().into_dyn(),
        ),
    }
}

/// The sum of the weight penalties of `vars` (Keras adds one per trainable
/// weight that has a regularizer; frozen weights have none).
pub fn weight_penalties(model: &Model, vars: &[VarRef]) -> Result<f32> {
    let mut total = 0.0f32;
    for &v in vars {
        if let (Some(r), values) = var_regularizer(model, v) {
            total += r.penalty(values)?;
        }
    }
    Ok(total)
}

/// How weight regularizers enter the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PenaltyGradient {
    /// As Keras: the (sub)gradient of every penalty is added to the gradient.
    #[default]
    Keras,
    /// L1 terms are left out of the gradient (a proximal step applies them
    /// after the update); L2 terms stay.
    ProximalL1,
}

impl PenaltyGradient {
    /// The regularizer whose gradient enters the training gradient for a
    /// weight regularized by `r` (none when nothing of it remains).
    pub(crate) fn of(self, r: Regularizer) -> Option<Regularizer> {
        match self {
            PenaltyGradient::Keras => Some(r),
            PenaltyGradient::ProximalL1 => r.without_l1(),
        }
    }
}

/// Per-layer values kept for the backward pass.
enum Cache<'x> {
    None,
    Dense {
        x: LayerInput<'x>,
        z: Array2<f32>,
        y: Array2<f32>,
    },
    Activation {
        x: Array2<f32>,
        y: Array2<f32>,
    },
    Dropout {
        mask: Array2<f32>,
    },
    Flatten {
        rows: usize,
        cols: usize,
    },
}

/// The result of one step's forward and backward pass.
pub struct StepResult {
    /// Model output on the batch (training mode), `[n·lead, out]`.
    pub y_pred: Array2<f32>,
    /// The loss Keras minimizes and reports: compiled loss + penalties.
    pub loss: f32,
}

/// Forward pass in training mode, keeping what the backward pass needs.
/// Dropout draws its masks from `rng`.
fn forward_train<'x, R: Rng>(
    model: &Model,
    n: usize,
    x: Lhs<'x>,
    rng: &mut R,
) -> (Array2<f32>, Vec<Cache<'x>>, f32) {
    let mut h = LayerInput::Batch(x);
    let mut caches = Vec::with_capacity(model.layers.len());
    let mut activity = 0.0f32;
    for layer in &model.layers {
        let (out, cache) = match &layer.kind {
            LayerKind::Input => (h, Cache::None),
            LayerKind::Dense(d) => {
                let z = dense_affine(d, h.lhs());
                let y = d.activation.forward(z.clone());
                if let Some(r) = d.activity_regularizer {
                    // `ops.divide_no_nan(regularizer(output), batch_size)`.
                    let p = r.penalty(y.view().into_dyn()).unwrap_or(0.0);
                    activity += if n == 0 { 0.0 } else { p / n as f32 };
                }
                (LayerInput::Array(y.clone()), Cache::Dense { x: h, z, y })
            }
            LayerKind::Activation(a) => {
                let x = h.into_array();
                let y = a.forward(x.clone());
                (LayerInput::Array(y.clone()), Cache::Activation { x, y })
            }
            LayerKind::Dropout { rate } => {
                // `backend.random.dropout`: keep with probability 1 - rate,
                // scale kept values by 1 / (1 - rate).
                let h = h.into_array();
                let keep = 1.0 - *rate as f32;
                let scale = 1.0 / keep;
                let mask = Array2::from_shape_fn(h.raw_dim(), |_| {
                    if rng.random::<f32>() < keep {
                        scale
                    } else {
                        0.0
                    }
                });
                (LayerInput::Array(h * &mask), Cache::Dropout { mask })
            }
            LayerKind::Op(_) => unreachable!("chain models have no op layers (Model::is_chain)"),
            LayerKind::Flatten => {
                let h = h.into_array();
                let (rows, cols) = h.dim();
                let width = h.len() / n.max(1);
                (
                    LayerInput::Array(reshape_rows(h, n, width)),
                    Cache::Flatten { rows, cols },
                )
            }
        };
        h = out;
        caches.push(cache);
    }
    (h.into_array(), caches, activity)
}

/// One batch: `n` samples, inputs as `[n · lead, last]`, targets `[n, k]`.
pub struct Batch<'a> {
    /// Number of samples.
    pub n: usize,
    /// Inputs (an array, or rows where they lie in the data file).
    pub x: Lhs<'a>,
    /// Targets.
    pub y_true: ArrayView2<'a, f32>,
}

/// A Dense kernel's gradient `xᵀ dz`, written into `dw`, together with its
/// elementwise `penalty` (value, returned) and `gradient`'s gradient (added),
/// in one pass: each thread computes half of the kernel's rows and handles
/// the penalty of exactly those rows while they are in its cache (the same
/// half it updates in the optimizer).
fn kernel_gradient_with_penalty(
    x: Lhs<'_>,
    dz: ArrayView2<'_, f32>,
    kernel: ArrayView2<'_, f32>,
    penalty: Regularizer,
    gradient: Option<Regularizer>,
    dw: ArrayViewMut2<'_, f32>,
) -> f32 {
    let (rows, cols) = kernel.dim();
    let w = kernel.as_standard_layout();
    let w = w.as_slice().expect("standard layout");
    let mid = if rows * cols >= PARALLEL_KERNEL {
        rows / 2
    } else {
        0
    };
    let part = |x: Lhs<'_>, w: &[f32], mut dw: ArrayViewMut2<'_, f32>| {
        matmul_into(x, dz, dw.view_mut());
        let g = dw.as_slice_mut().expect("rows of a C-order array");
        penalty.pass(gradient, w, g)
    };
    let (x1, x2) = x.t().split_at(Axis(0), mid);
    let (w1, w2) = w.split_at(mid * cols);
    let (dw1, dw2) = dw.split_at(Axis(0), mid);
    let (a, b) = pool::join_if(mid > 0, || part(x1, w1, dw1), || part(x2, w2, dw2));
    penalty.penalty_of(&[a, b])
}

/// Kernels with at least this many values have their gradient and penalty
/// computed on two threads.
const PARALLEL_KERNEL: usize = 1 << 13;

/// One training step on a batch: forward (training mode), total loss, and
/// the gradient of the total loss for each variable in `vars`, written into
/// `grads` (one vector of the variable's size per variable, in `vars`
/// order; reusing them from step to step keeps each half of a large
/// gradient in the cache of the thread that computes and applies it).
pub fn train_step<R: Rng>(
    model: &Model,
    vars: &[VarRef],
    loss_fn: &Loss,
    batch: Batch<'_>,
    penalty_gradient: PenaltyGradient,
    rng: &mut R,
    grads: &mut [Vec<f32>],
) -> Result<StepResult> {
    let Batch { n, x, y_true } = batch;
    let (y_pred, caches, activity) = forward_train(model, n, x, rng);
    let (compiled, dy) = loss_fn.loss_and_grad(y_pred.view(), y_true);

    // Weight penalties of trainable variables (layer.py `losses`) are
    // computed with their gradients below, in one pass over each weight, and
    // summed in variable order (zero without a regularizer).
    let mut penalties = vec![0.0f32; vars.len()];
    // Where each layer's kernel and bias gradients go in `grads`.
    let mut slots: Vec<(Option<usize>, Option<usize>)> = vec![(None, None); model.layers.len()];
    for (slot, v) in vars.iter().enumerate() {
        match v.kind {
            VarKind::Kernel => slots[v.layer].0 = Some(slot),
            VarKind::Bias => slots[v.layer].1 = Some(slot),
            VarKind::Op(_) => {}
        }
    }

    // Backward.
    let first_trainable = vars.iter().map(|v| v.layer).min();
    let mut g = dy;
    for (i, (layer, cache)) in model.layers.iter().zip(&caches).enumerate().rev() {
        let Some(first) = first_trainable else { break };
        if i < first {
            break;
        }
        let need_dx = i > first;
        g = match (&layer.kind, cache) {
            (LayerKind::Dense(d), Cache::Dense { x, z, y }) => {
                if let Some(r) = d.activity_regularizer {
                    let scale = if n == 0 { 0.0 } else { 1.0 / n as f32 };
                    let mut gd = g.into_dyn();
                    r.add_gradient(y.view().into_dyn(), gd.view_mut(), scale)?;
                    g = gd
                        .into_dimensionality()
                        .expect("activity gradient keeps rank 2");
                }
                let dz = d.activation.backward(z.view(), y.view(), g.view());
                if let (true, (Some(k), b)) = (layer.trainable, slots[i]) {
                    let dw = ArrayViewMut2::from_shape(d.kernel.dim(), &mut grads[k][..])
                        .expect("gradient storage has the kernel's size");
                    let gradient = d.kernel_regularizer.and_then(|r| penalty_gradient.of(r));
                    match d.kernel_regularizer {
                        Some(r) if r.fuses_with(gradient) => {
                            penalties[k] = kernel_gradient_with_penalty(
                                x.lhs(),
                                dz.view(),
                                d.kernel.view(),
                                r,
                                gradient,
                                dw,
                            );
                        }
                        Some(r) => {
                            let mut dw = dw;
                            matmul_into(x.lhs().t(), dz.view(), dw.view_mut());
                            penalties[k] = r.penalty_and_gradient(
                                gradient,
                                d.kernel.view().into_dyn(),
                                dw.into_dyn(),
                            )?;
                        }
                        None => matmul_into(x.lhs().t(), dz.view(), dw),
                    }
                    if let (Some(b), Some(bias)) = (b, &d.bias) {
                        let db = &mut grads[b];
                        for (o, s) in db.iter_mut().zip(dz.sum_axis(Axis(0))) {
                            *o = s;
                        }
                        if let Some(r) = d.bias_regularizer {
                            let gradient = penalty_gradient.of(r);
                            penalties[b] = r.penalty_and_gradient(
                                gradient,
                                bias.view().into_dyn(),
                                ArrayViewMut1::from(&mut db[..]).into_dyn(),
                            )?;
                        }
                    }
                }
                if need_dx {
                    matmul(dz.view(), d.kernel.t())
                } else {
                    dz
                }
            }
            (LayerKind::Activation(a), Cache::Activation { x, y }) => {
                if need_dx {
                    a.backward(x.view(), y.view(), g.view())
                } else {
                    g
                }
            }
            (LayerKind::Dropout { .. }, Cache::Dropout { mask }) => g * mask,
            (LayerKind::Flatten, Cache::Flatten { rows, cols }) => reshape_rows(g, *rows, *cols),
            _ => g,
        };
    }
    let weight_penalty = penalties.iter().fold(0.0f32, |sum, &p| sum + p);
    Ok(StepResult {
        y_pred,
        loss: compiled + activity + weight_penalty,
    })
}
