//! The graph engine: forward (inference and training) and backward passes
//! over a model's nodes, on N-D float32 tensors with the batch axis first.
//! Models that are plain Dense chains take the Dense fast path instead
//! (`engine::forward`, `engine::backward`); both compute the same numbers.
//!
//! Spec: `keras/src/ops/function.py` (`_run_through_graph`: each node reads
//! its inputs' values), `keras/src/layers/core/dense.py` (`matmul` on the
//! last axis, then bias, then activation), `keras/src/layers/layer.py`
//! (`__call__`: activity penalty `regularizer(output) / batch_size`),
//! `keras/src/backend/jax/trainer.py` (non-trainable variable updates from
//! the forward pass are applied after the optimizer step).

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis, IxDyn};
use rand::RngCore;

use super::forward::dense_affine;
use super::gemm::matmul;
use crate::error::{Error, Result};
use crate::model::layers::{Ctx, Mask, Mode, Saved, with_batch};
use crate::model::{LayerKind, Model};

/// What a node kept from the forward pass.
enum Kept {
    None,
    /// Dense: the pre-activation `z` as rows × units.
    Dense(Array2<f32>),
    /// Dropout: the scaled mask.
    Mask(ArrayD<f32>),
    /// A [`crate::model::layers::LayerOp`]'s own values.
    Op(Saved),
}

/// The values of one forward pass.
pub struct Trace {
    /// Each node's output, `[n, ...]`.
    pub values: Vec<ArrayD<f32>>,
    /// Each node's Keras mask, if it carries one.
    pub masks: Vec<Option<Mask>>,
    kept: Vec<Kept>,
    /// Activity penalties (already divided by the batch size), summed.
    pub activity: f32,
    /// New values of non-trainable variables: (layer, variable, value).
    pub updates: Vec<(usize, usize, ArrayD<f32>)>,
    /// Samples in the batch.
    pub n: usize,
}

impl Trace {
    /// The model's outputs, in `model.outputs` order.
    pub fn outputs<'t>(&'t self, model: &Model) -> Vec<&'t ArrayD<f32>> {
        model
            .graph
            .outputs
            .iter()
            .map(|&o| &self.values[o])
            .collect()
    }
}

impl Trace {
    /// The Keras masks of the model's outputs, in `model.outputs` order, as
    /// one flag per row of [`output_rows`] (`None`: the output carries no
    /// mask). The loss and the metrics of a masked output weigh its rows by
    /// the mask (keras/src/losses/loss.py `apply_mask`). A mask covers the
    /// leading axes of its output (`[n, t]` for `[n, t, units]`), so each
    /// flag repeats over the rows of the axes it does not cover.
    pub fn output_row_masks(&self, model: &Model) -> Result<Vec<Option<Vec<bool>>>> {
        let g = &model.graph;
        g.outputs
            .iter()
            .zip(&g.output_names)
            .map(|(&o, name)| {
                let Some(mask) = self.masks.get(o).and_then(Option::as_ref) else {
                    return Ok(None);
                };
                let shape = self.values[o].shape();
                let lead = &shape[..shape.len().saturating_sub(1)];
                let covered = mask.ndim() <= lead.len() && lead[..mask.ndim()] == *mask.shape();
                if !covered || mask.is_empty() {
                    return Err(Error::mismatch(
                        format!(
                            "a mask over the leading axes of output `{name}` {:?}",
                            shape
                        ),
                        format!("a mask of shape {:?}", mask.shape()),
                    ));
                }
                let rows = rows(&self.values[o]).nrows();
                let repeat = rows / mask.len();
                let flags: Vec<bool> = mask.iter().copied().collect();
                Ok(Some((0..rows).map(|r| flags[r / repeat.max(1)]).collect()))
            })
            .collect()
    }
}

/// A model output as the loss and metrics see it: rows × last axis.
pub(crate) fn output_rows(o: &ArrayD<f32>) -> Array2<f32> {
    rows(o).to_owned()
}

/// `x` as rows × last axis (a view when it is in standard layout).
fn rows(x: &ArrayD<f32>) -> ArrayView2<'_, f32> {
    let last = *x.shape().last().unwrap_or(&1);
    let n = x.len() / last.max(1);
    x.view()
        .into_shape_with_order((n, last))
        .expect("tensors are kept in standard layout")
}

fn standard(x: ArrayD<f32>) -> ArrayD<f32> {
    if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    }
}

fn shaped(x: Array2<f32>, shape: &[usize]) -> ArrayD<f32> {
    standard(x.into_dyn())
        .into_shape_with_order(IxDyn(shape))
        .expect("same element count")
}

/// Run the graph on `inputs` (one `[n, ...]` array per model input, in
/// `model.inputs` order).
pub fn forward(
    model: &Model,
    inputs: &[ArrayViewD<'_, f32>],
    mode: Mode,
    rng: &mut dyn RngCore,
) -> Result<Trace> {
    let g = &model.graph;
    let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
    let n = g.check_inputs(&shapes)?;
    let training = mode == Mode::Training;
    let mut trace = Trace {
        values: Vec::with_capacity(g.nodes.len()),
        masks: Vec::with_capacity(g.nodes.len()),
        kept: Vec::with_capacity(g.nodes.len()),
        activity: 0.0,
        updates: Vec::new(),
        n,
    };
    // Outputs after the first of calls with several, until their nodes
    // take them: call node -> (outputs 1.., their masks).
    type Extra = (Vec<Option<ArrayD<f32>>>, Vec<Option<Mask>>);
    let mut extra: std::collections::HashMap<usize, Extra> = Default::default();
    for node in &g.nodes {
        if let Some(slot) = node.input_slot {
            trace
                .values
                .push(inputs[slot].as_standard_layout().into_owned());
            trace.masks.push(None);
            trace.kept.push(Kept::None);
            continue;
        }
        if let Some((call, k)) = node.source {
            let (ys, ms) = extra
                .get_mut(&call)
                .ok_or_else(|| Error::invalid("a layer output read before its call"))?;
            let y = ys
                .get_mut(k - 1)
                .and_then(Option::take)
                .ok_or_else(|| Error::invalid(format!("layer output {k} read twice")))?;
            let m = ms.get_mut(k).and_then(Option::take);
            trace.values.push(y);
            trace.masks.push(m);
            trace.kept.push(Kept::None);
            continue;
        }
        let li = node.layer.expect("non-input nodes call a layer");
        let layer = &model.layers[li];
        let xs: Vec<&ArrayD<f32>> = node.inputs.iter().map(|&i| &trace.values[i]).collect();
        let in_masks: Vec<Option<&Mask>> = node
            .inputs
            .iter()
            .map(|&i| trace.masks[i].as_ref())
            .collect();
        // Dense, Activation and Dropout pass the mask on; Flatten ends it.
        let mut out_mask = match &layer.kind {
            LayerKind::Dense(_) | LayerKind::Activation(_) | LayerKind::Dropout { .. } => {
                in_masks.first().copied().flatten().cloned()
            }
            _ => None,
        };
        let out_shape = with_batch(n, &node.output_shape);
        let mut activity_of =
            |y: &ArrayD<f32>, r: Option<crate::model::Regularizer>| -> Result<()> {
                if let Some(r) = r {
                    let p = r.penalty(y.view())?;
                    trace.activity += if n == 0 { 0.0 } else { p / n as f32 };
                }
                Ok(())
            };
        let (y, kept) = match &layer.kind {
            LayerKind::Input => (xs[0].clone(), Kept::None),
            LayerKind::Dense(d) => {
                let z = dense_affine(d, rows(xs[0]));
                let y = shaped(d.activation.forward(z.clone()), &out_shape);
                activity_of(&y, d.activity_regularizer)?;
                (y, if training { Kept::Dense(z) } else { Kept::None })
            }
            LayerKind::Activation(a) => {
                let y = a.forward(rows(xs[0]).to_owned());
                (shaped(y, &out_shape), Kept::None)
            }
            LayerKind::Dropout { rate } if training && *rate > 0.0 => {
                use rand::Rng;
                let keep = 1.0 - *rate;
                let scale = (1.0 / keep) as f32;
                let mask = ArrayD::from_shape_fn(xs[0].raw_dim(), |_| {
                    if rng.random::<f64>() >= *rate {
                        scale
                    } else {
                        0.0
                    }
                });
                (xs[0] * &mask, Kept::Mask(mask))
            }
            LayerKind::Dropout { .. } => (xs[0].clone(), Kept::None),
            LayerKind::Flatten => (
                standard(xs[0].clone())
                    .into_shape_with_order(IxDyn(&out_shape))
                    .map_err(|e| Error::invalid(e.to_string()))?,
                Kept::None,
            ),
            LayerKind::Op(op) => {
                let mut cx = Ctx {
                    mode,
                    rng: &mut *rng,
                };
                let f = op
                    .forward_masked(&xs, &in_masks, &mut cx)
                    .map_err(|e| e.at(format!("layer `{}`", layer.name)))?;
                let mut masks = op
                    .compute_mask(&xs, &in_masks)
                    .map_err(|e| e.at(format!("layer `{}`", layer.name)))?;
                out_mask = masks.first_mut().and_then(Option::take);
                if !f.extra.is_empty() {
                    let ys = f.extra.into_iter().map(|y| Some(standard(y))).collect();
                    extra.insert(trace.values.len(), (ys, masks));
                }
                let y = standard(f.y);
                activity_of(&y, op.activity_regularizer())?;
                if training {
                    trace
                        .updates
                        .extend(f.updates.into_iter().map(|(v, value)| (li, v, value)));
                }
                (y, Kept::Op(f.saved))
            }
        };
        if y.shape() != out_shape.as_slice() {
            return Err(Error::mismatch(
                format!("output of shape {out_shape:?} from layer `{}`", layer.name),
                format!("{:?}", y.shape()),
            ));
        }
        trace.values.push(y);
        trace.masks.push(out_mask);
        trace.kept.push(kept);
    }
    Ok(trace)
}

/// Run the graph in inference mode on a batch and return its outputs.
pub fn predict_batch(model: &Model, inputs: &[ArrayViewD<'_, f32>]) -> Result<Vec<ArrayD<f32>>> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let trace = forward(model, inputs, Mode::Inference, &mut rng)?;
    let mut values: Vec<Option<ArrayD<f32>>> = trace.values.into_iter().map(Some).collect();
    Ok(model
        .graph
        .outputs
        .iter()
        .map(|&o| match values[o].take() {
            Some(v) => v,
            None => values.iter().flatten().next().cloned().unwrap_or_default(),
        })
        .collect())
}

/// Gradients of one backward pass.
pub struct Grads {
    /// Gradient of each layer variable that has one: `[layer][var]`. Dense
    /// layers use index 0 for the kernel and 1 for the bias.
    pub vars: Vec<Vec<Option<ArrayD<f32>>>>,
}

fn accumulate(slot: &mut Option<ArrayD<f32>>, g: ArrayD<f32>) {
    match slot {
        Some(s) => *s += &g,
        None => *slot = Some(g),
    }
}

/// The backward pass from `output_grads` (the loss's gradient for each
/// model output) through the graph: gradients for the variables of
/// trainable layers (activity penalties included).
pub fn backward(model: &Model, trace: Trace, output_grads: Vec<ArrayD<f32>>) -> Result<Grads> {
    let g = &model.graph;
    let n = trace.n;
    let mut node_grads: Vec<Option<ArrayD<f32>>> = vec![None; g.nodes.len()];
    for (&o, dy) in g.outputs.iter().zip(output_grads) {
        accumulate(&mut node_grads[o], dy);
    }
    let mut vars: Vec<Vec<Option<ArrayD<f32>>>> = model
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Dense(_) => vec![None, None],
            LayerKind::Op(op) => vec![None; op.vars().len()],
            _ => Vec::new(),
        })
        .collect();
    // Nodes whose input gradients are needed: those that lead back to a
    // trainable variable.
    let mut needs = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        let own = node.layer.is_some_and(|l| {
            let layer = &model.layers[l];
            layer.trainable && layer.param_count() > 0
        });
        needs[i] = own || node.inputs.iter().any(|&j| needs[j]);
    }
    let Trace {
        values, mut kept, ..
    } = trace;
    // Gradients for outputs after the first of calls with several.
    let mut extra_grads: std::collections::HashMap<usize, Vec<Option<ArrayD<f32>>>> =
        Default::default();
    for (i, node) in g.nodes.iter().enumerate().rev() {
        if let Some((call, k)) = node.source {
            if let Some(dy) = node_grads[i].take() {
                let slots = extra_grads.entry(call).or_default();
                if slots.len() < k {
                    slots.resize(k, None);
                }
                accumulate(&mut slots[k - 1], dy);
            }
            continue;
        }
        let extra_dys = extra_grads.remove(&i);
        let mut dy = match node_grads[i].take() {
            Some(dy) => dy,
            None if extra_dys.is_some() => ArrayD::zeros(values[i].raw_dim()),
            None => continue,
        };
        if !needs[i] || node.input_slot.is_some() {
            continue;
        }
        let li = node.layer.expect("non-input nodes call a layer");
        let layer = &model.layers[li];
        let y = &values[i];
        let xs: Vec<&ArrayD<f32>> = node.inputs.iter().map(|&j| &values[j]).collect();
        let activity = match &layer.kind {
            LayerKind::Dense(d) => d.activity_regularizer,
            LayerKind::Op(op) => op.activity_regularizer(),
            _ => None,
        };
        if let Some(r) = activity {
            let scale = if n == 0 { 0.0 } else { 1.0 / n as f32 };
            r.add_gradient(y.view(), dy.view_mut(), scale)?;
        }
        let input_grads: Vec<ArrayD<f32>> =
            match (&layer.kind, std::mem::replace(&mut kept[i], Kept::None)) {
                (LayerKind::Dense(d), Kept::Dense(z)) => {
                    let x2 = rows(xs[0]);
                    let g2 = rows(&dy);
                    let dz = d.activation.backward(z.view(), rows(y), g2);
                    if layer.trainable {
                        accumulate(&mut vars[li][0], matmul(x2.t(), dz.view()).into_dyn());
                        if d.bias.is_some() {
                            accumulate(&mut vars[li][1], dz.sum_axis(Axis(0)).into_dyn());
                        }
                    }
                    vec![shaped(matmul(dz.view(), d.kernel.t()), xs[0].shape())]
                }
                (LayerKind::Activation(a), _) => {
                    let dx = a.backward(rows(xs[0]), rows(y), rows(&dy));
                    vec![shaped(dx, xs[0].shape())]
                }
                (LayerKind::Dropout { .. }, Kept::Mask(mask)) => vec![dy * &mask],
                (LayerKind::Dropout { .. } | LayerKind::Input, _) => vec![dy],
                (LayerKind::Flatten, _) => vec![
                    dy.into_shape_with_order(IxDyn(xs[0].shape()))
                        .map_err(|e| Error::invalid(e.to_string()))?,
                ],
                (LayerKind::Op(op), Kept::Op(saved)) => {
                    let inputs_needed = node.inputs.iter().any(|&j| needs[j]);
                    let b = match extra_dys {
                        None if inputs_needed => op.backward(&xs, y, &saved, dy),
                        None => op.backward_vars(&xs, y, &saved, dy),
                        Some(more) => {
                            // The values of the later outputs, in order.
                            let mut ys = vec![y];
                            ys.extend(
                                g.nodes
                                    .iter()
                                    .enumerate()
                                    .filter(|(_, n)| n.source.is_some_and(|(c, _)| c == i))
                                    .map(|(j, _)| &values[j]),
                            );
                            let mut dys = vec![Some(dy)];
                            dys.extend(more);
                            dys.resize(ys.len(), None);
                            op.backward_multi(&xs, &ys, &saved, dys, inputs_needed)
                        }
                    }
                    .map_err(|e| e.at(format!("layer `{}`", layer.name)))?;
                    if layer.trainable {
                        for (v, grad) in b.vars.into_iter().enumerate() {
                            if let (Some(grad), true) = (grad, op.vars()[v].trainable) {
                                accumulate(&mut vars[li][v], grad);
                            }
                        }
                    }
                    b.inputs
                }
                (LayerKind::Dense(_) | LayerKind::Op(_), _) => {
                    return Err(Error::training(format!(
                        "layer `{}` was not run in training mode",
                        layer.name
                    )));
                }
            };
        for (&j, gx) in node.inputs.iter().zip(input_grads) {
            if needs[j] {
                accumulate(&mut node_grads[j], gx);
            }
        }
    }
    Ok(Grads { vars })
}

/// One training step of a graph model: forward in training mode, the
/// compiled loss of every output (weighted and summed as Keras's
/// `CompileLoss`), activity and weight penalties, and the gradient of the
/// total for every variable in `vars`, written into `grads`.
pub struct GraphStep {
    /// Model outputs (training mode), each as rows × last axis.
    pub y_pred: Vec<Array2<f32>>,
    /// Each output's compiled loss (unweighted).
    pub output_losses: Vec<f32>,
    /// The total loss Keras minimizes and reports.
    pub loss: f32,
    /// Non-trainable variable updates to apply after the optimizer step.
    pub updates: Vec<(usize, usize, ArrayD<f32>)>,
}

/// A loss for one output with its weight (`loss_weights`, 1 by default).
pub struct OutputLoss<'a> {
    /// The loss.
    pub loss: &'a super::loss::Loss,
    /// Its weight in the total.
    pub weight: Option<f32>,
}

/// See [`GraphStep`].
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: &Model,
    vars: &[super::backward::VarRef],
    losses: &[OutputLoss<'_>],
    inputs: &[ArrayViewD<'_, f32>],
    targets: &[ArrayView2<'_, f32>],
    penalty_gradient: super::backward::PenaltyGradient,
    rng: &mut dyn RngCore,
    grads: &mut [Vec<f32>],
) -> Result<GraphStep> {
    use super::backward::{VarKind, var_regularizer};
    let trace = forward(model, inputs, Mode::Training, rng)?;
    let row_masks = trace.output_row_masks(model)?;
    let activity = trace.activity;
    let mut output_grads = Vec::with_capacity(losses.len());
    let mut y_pred = Vec::with_capacity(losses.len());
    let mut output_losses = Vec::with_capacity(losses.len());
    // `CompileLoss.call`: `sum(loss_weight * loss_i)` in output order.
    let mut compiled = 0.0f32;
    let outputs = trace.outputs(model).into_iter().zip(&row_masks);
    for (((o, mask), spec), target) in outputs.zip(losses).zip(targets) {
        let y2 = output_rows(o);
        let (value, mut dy) = spec
            .loss
            .loss_and_grad_masked(y2.view(), *target, mask.as_deref());
        output_losses.push(value);
        match spec.weight {
            Some(w) => {
                compiled += value * w;
                dy.mapv_inplace(|g| g * w);
            }
            None => compiled += value,
        }
        output_grads.push(shaped(dy, o.shape()));
        y_pred.push(y2);
    }
    let mut trace = trace;
    let updates = std::mem::take(&mut trace.updates);
    let mut per_layer = backward(model, trace, output_grads)?.vars;
    let mut penalties = 0.0f32;
    for (k, v) in vars.iter().enumerate() {
        let index = match v.kind {
            VarKind::Kernel => 0,
            VarKind::Bias => 1,
            VarKind::Op(i) => i,
        };
        let dst = &mut grads[k];
        match per_layer[v.layer].get_mut(index).and_then(Option::take) {
            Some(g) => {
                let g = standard(g);
                dst.copy_from_slice(g.as_slice().expect("standard layout"));
            }
            None => dst.iter_mut().for_each(|x| *x = 0.0),
        }
        let (reg, values) = var_regularizer(model, *v);
        if let Some(r) = reg {
            let gview = ndarray::ArrayViewMutD::from_shape(IxDyn(values.shape()), &mut dst[..])
                .map_err(|e| Error::invalid(e.to_string()))?;
            penalties += r.penalty_and_gradient(penalty_gradient.of(r), values, gview)?;
        }
    }
    Ok(GraphStep {
        y_pred,
        output_losses,
        loss: compiled + activity + penalties,
        updates,
    })
}

/// Apply non-trainable variable updates (after the optimizer step).
pub fn apply_updates(model: &mut Model, updates: Vec<(usize, usize, ArrayD<f32>)>) {
    for (layer, var, value) in updates {
        if let Some(op) = model.layers[layer].op_mut() {
            op.vars_mut()[var].value = standard(value);
        }
    }
}
