//! The training loop (`fit`) and evaluation, with Keras's semantics.
//!
//! Spec: `keras/src/backend/jax/trainer.py` (`fit`, `train_step`,
//! `test_step`, `_update_metrics_variables`: the reported `loss` is a
//! `Mean` of each batch's total loss weighted by the batch size),
//! `keras/src/trainers/data_adapters/array_slicing.py`
//! (`train_validation_split`: the last `floor(n · (1 − split))`.. rows are
//! validation data), `keras/src/optimizers/base_optimizer.py` (`apply`:
//! constraints after the update).

use ndarray::{Array2, ArrayD, ArrayView2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::backward::{
    Batch, PenaltyGradient, StepResult, VarKind, VarRef, train_step, trainable_variables,
    var_shape, weight_penalties,
};
use super::forward::{LayerInput, dense_forward, reshape_rows};
use super::fpmode::FlushDenormals;
use super::gemm::Lhs;
use super::graph;
use super::loss::Loss;
use super::metrics::Metric;
use super::optimizer::Optimizer;
use crate::data::F32Data;
use crate::error::{Error, Result};
use crate::model::layers::Mode;
use crate::model::{LayerKind, Model};

/// Inputs and targets, aligned by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Inputs `[n, input_shape...]` (possibly mapped from the data file);
    /// the first model input.
    pub x: F32Data,
    /// Targets `[n, k]` (sparse labels as `[n, 1]`); the first model output.
    pub y: Array2<f32>,
    /// The other model inputs, in `model.inputs` order.
    pub more_x: Vec<F32Data>,
    /// The other model outputs' targets, in `model.outputs` order.
    pub more_y: Vec<Array2<f32>>,
    /// For each target (the first, then the others): the rows of one
    /// sample's output (the product of the output's axes but the last), so
    /// that a batch of `b` samples is `b · lead` rows for the loss; 1 for
    /// outputs of shape `(N, k)`. Targets are stored one row per sample.
    pub target_lead: Vec<usize>,
}

/// Targets as `[n, k]`: a 1-D vector becomes a column.
fn target_matrix(y: ArrayD<f32>, n: usize, what: &str) -> Result<Array2<f32>> {
    let y = match y.ndim() {
        1 => y.insert_axis(Axis(1)),
        2 => y,
        _ => {
            return Err(Error::mismatch(
                format!("targets of shape (N,) or (N, k) for {what}"),
                format!("shape {:?}", y.shape()),
            ));
        }
    };
    let y: Array2<f32> = y
        .into_dimensionality()
        .map_err(|e| Error::invalid(e.to_string()))?;
    if y.nrows() != n {
        return Err(Error::mismatch(
            format!("{n} target rows for {what} (one per input row)"),
            y.nrows(),
        ));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "target value {i} (in C order) for {what} is not finite"
        )));
    }
    Ok(y)
}

impl Dataset {
    /// Pair inputs with targets, checking them against the model and loss:
    /// a 1-D target vector becomes a column.
    pub fn new(model: &Model, loss: &Loss, x: impl Into<F32Data>, y: ArrayD<f32>) -> Result<Self> {
        let x = x.into();
        model.check_input_shape(x.shape())?;
        let n = x.shape()[0];
        if n == 0 {
            return Err(Error::mismatch("at least one data row", "an empty array"));
        }
        let y = match y.ndim() {
            1 => y.insert_axis(Axis(1)),
            2 => y,
            _ => {
                return Err(Error::mismatch(
                    "targets of shape (N,) or (N, k)",
                    format!("shape {:?}", y.shape()),
                ));
            }
        };
        let y: Array2<f32> = y
            .into_dimensionality()
            .map_err(|e| Error::invalid(e.to_string()))?;
        if y.nrows() != n {
            return Err(Error::mismatch(
                format!("{n} target rows (one per input row)"),
                y.nrows(),
            ));
        }
        if model.output_shape().len() != 1 {
            return Err(Error::unsupported(
                "training output shape",
                format!("{:?}", model.output_shape()),
                &["one output axis (N, k)"],
            ));
        }
        loss.check_targets(y.view(), model.output_shape())?;
        let bad = |what: &str, i: Option<usize>| match i {
            Some(i) => Err(Error::invalid(format!(
                "{what} value {i} (in C order) is not finite"
            ))),
            None => Ok(()),
        };
        bad("input", x.first_non_finite())?;
        check_ids(model, 0, &x)?;
        bad("target", y.iter().position(|v| !v.is_finite()))?;
        Ok(Dataset {
            x,
            y,
            more_x: Vec::new(),
            more_y: Vec::new(),
            target_lead: vec![1],
        })
    }

    /// Pair the inputs of every model input with the targets of every
    /// model output (graph models), checking shapes and values.
    pub fn multi(
        model: &Model,
        losses: &[&Loss],
        xs: Vec<F32Data>,
        ys: Vec<ArrayD<f32>>,
    ) -> Result<Self> {
        let g = &model.graph;
        if xs.len() != g.inputs.len() || ys.len() != g.outputs.len() || losses.len() != ys.len() {
            return Err(Error::mismatch(
                format!("{} inputs and {} targets", g.inputs.len(), g.outputs.len()),
                format!("{} and {}", xs.len(), ys.len()),
            ));
        }
        let shapes: Vec<&[usize]> = xs.iter().map(F32Data::shape).collect();
        let n = g.check_inputs(&shapes)?;
        if n == 0 {
            return Err(Error::mismatch("at least one data row", "an empty array"));
        }
        for (slot, x) in xs.iter().enumerate() {
            if let Some(i) = x.first_non_finite() {
                return Err(Error::invalid(format!(
                    "input `{}` value {i} (in C order) is not finite",
                    g.input_names[slot]
                )));
            }
            check_ids(model, slot, x)?;
        }
        let mut targets = Vec::with_capacity(ys.len());
        let mut target_lead = Vec::with_capacity(ys.len());
        for (slot, (y, loss)) in ys.into_iter().zip(losses).enumerate() {
            let name = &g.output_names[slot];
            let shape = g.output_shapes()[slot];
            let what = format!("output `{name}`");
            let lead = match shape.split_last() {
                Some((_, rest)) => rest.iter().product::<usize>(),
                None => 1,
            };
            let y = if lead == 1 {
                target_matrix(y, n, &what)?
            } else {
                // Sequence-like outputs `(N, ..., k)`: targets of the same
                // shape, or class labels `(N, ...)` for sparse losses; the
                // loss sees `N · lead` rows, which is how Keras's losses
                // reduce over the leading axes.
                let per_sample = if y.ndim() >= 1 && y.shape()[0] == n && n > 0 {
                    y.len() / n
                } else {
                    0
                };
                let fits = y.shape()[1..] == *shape
                    || (y.ndim() == shape.len() && y.shape()[1..] == shape[..shape.len() - 1]);
                if !fits || per_sample == 0 {
                    return Err(Error::mismatch(
                        format!(
                            "targets for {what} of shape (N, {}) or class labels (N, {})",
                            shape
                                .iter()
                                .map(usize::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            shape[..shape.len() - 1]
                                .iter()
                                .map(usize::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        format!("shape {:?}", y.shape()),
                    ));
                }
                let flat = y
                    .as_standard_layout()
                    .into_owned()
                    .into_shape_with_order((n, per_sample))
                    .map_err(|e| Error::invalid(e.to_string()))?;
                target_matrix(flat.into_dyn(), n, &what)?
            };
            let rows = y
                .view()
                .into_shape_with_order((n * lead, y.ncols() / lead))
                .map_err(|e| Error::invalid(e.to_string()))?;
            loss.check_targets(rows, shape)
                .map_err(|e| e.at(what.clone()))?;
            targets.push(y);
            target_lead.push(lead);
        }
        let mut xs = xs.into_iter();
        let mut ys = targets.into_iter();
        Ok(Dataset {
            x: xs.next().expect("one input at least"),
            y: ys.next().expect("one output at least"),
            more_x: xs.collect(),
            more_y: ys.collect(),
            target_lead,
        })
    }

    /// Every input array (the first, then the others).
    fn inputs(&self) -> impl Iterator<Item = &F32Data> {
        std::iter::once(&self.x).chain(&self.more_x)
    }

    /// Every target matrix.
    fn targets(&self) -> impl Iterator<Item = &Array2<f32>> {
        std::iter::once(&self.y).chain(&self.more_y)
    }

    /// Rows `idx` of every input as `[rows, ...]` arrays (graph models).
    fn batch_inputs(&self, idx: &[usize]) -> Vec<ArrayD<f32>> {
        self.inputs()
            .map(|x| {
                let mut values = vec![0.0; idx.len() * x.row_len()];
                x.gather_rows_into(idx, &mut values);
                let mut shape = x.shape().to_vec();
                shape[0] = idx.len();
                ArrayD::from_shape_vec(shape, values).expect("rows of the input's shape")
            })
            .collect()
    }

    /// Rows `idx` of every target, as the loss sees them (`rows · lead`
    /// rows for sequence-like outputs).
    fn batch_targets(&self, idx: &[usize]) -> Vec<Array2<f32>> {
        self.targets()
            .zip(&self.target_lead)
            .map(|(y, &lead)| {
                let rows = y.select(Axis(0), idx);
                if lead == 1 {
                    return rows;
                }
                let width = rows.ncols() / lead;
                rows.into_shape_with_order((idx.len() * lead, width))
                    .expect("a sample's target holds lead rows")
            })
            .collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.nrows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Split off the last part as validation data, as Keras's
    /// `validation_split` does (before any shuffling).
    pub fn split_validation(self, fraction: f64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::mismatch("a validation split in (0, 1)", fraction));
        }
        let n = self.len();
        let split_at = (n as f64 * (1.0 - fraction)).floor() as usize;
        if split_at == 0 || split_at == n {
            return Err(Error::invalid(format!(
                "validation split {fraction} of {n} rows leaves one side empty"
            )));
        }
        let rows_x = |x: &F32Data, r: std::ops::Range<usize>| x.slice_rows(r);
        let rows_y =
            |y: &Array2<f32>, r: std::ops::Range<usize>| y.slice_axis(Axis(0), r.into()).to_owned();
        let part = |r: std::ops::Range<usize>| Dataset {
            x: rows_x(&self.x, r.clone()),
            y: rows_y(&self.y, r.clone()),
            more_x: self.more_x.iter().map(|x| rows_x(x, r.clone())).collect(),
            more_y: self.more_y.iter().map(|y| rows_y(y, r.clone())).collect(),
            target_lead: self.target_lead.clone(),
        };
        Ok((part(0..split_at), part(split_at..n)))
    }

    /// Rows `idx` as a 2-D input batch `[rows · lead, last]`: where they lie
    /// when they are consecutive rows (no shuffling), else copied into
    /// `buffer` (reused from batch to batch).
    fn batch_x<'b>(&'b self, idx: &[usize], buffer: &'b mut Vec<f32>) -> Lhs<'b> {
        let consecutive = idx.windows(2).all(|w| w[1] == w[0] + 1);
        if let (true, Some(&first)) = (consecutive, idx.first())
            && let Some(rows) = self.x.rows_in_place(first..first + idx.len())
        {
            return rows;
        }
        let per_row = self.x.row_len();
        let len = idx.len() * per_row;
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        self.x.gather_rows_into(idx, &mut buffer[..len]);
        let last = *self.x.shape().last().unwrap_or(&1);
        Lhs::View(
            ArrayView2::from_shape((len / last.max(1), last), &buffer[..len]).expect("batch shape"),
        )
    }
}

/// Settings of a `fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Epochs to run.
    pub epochs: usize,
    /// Rows per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Shuffle the training rows each epoch (seeded).
    pub shuffle: bool,
    /// Seed for shuffling and dropout masks.
    pub seed: u64,
    /// How L1 penalties enter the update.
    pub penalty_gradient: PenaltyGradient,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            penalty_gradient: PenaltyGradient::Keras,
        }
    }
}

/// Named values logged for one epoch (`loss`, metrics, `val_*`), in order.
pub type Logs = Vec<(String, f32)>;

/// Observer of training progress (a progress bar, a quiet no-op, ...).
pub trait Progress {
    /// An epoch starts with `steps` batches.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A batch finished; `logs` holds the running epoch values.
    fn step(&mut self, _step: usize, _logs: &Logs) {}
    /// An epoch finished with its final logs.
    fn epoch_end(&mut self, _epoch: usize, _logs: &Logs) {}
    /// True when training should stop now (the user interrupted it).
    fn interrupted(&self) -> bool {
        false
    }
}

/// A [`Progress`] that reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// The shape of a `fit`, as a [`StepHook`] sees it when training starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitPlan {
    /// Epochs to run.
    pub epochs: usize,
    /// Optimizer steps (batches) per epoch.
    pub steps_per_epoch: usize,
}

/// Work done around each optimizer step, beyond Keras's `fit` (masked
/// updates, gradual pruning, proximal L1: see [`super::sparsify`]). The
/// default methods do nothing, so a no-op hook trains exactly as Keras.
pub trait StepHook {
    /// Training starts: `vars` are the trainable variables in optimizer
    /// order (the optimizer is built for them).
    fn start(
        &mut self,
        _model: &mut Model,
        _optimizer: &mut Optimizer,
        _vars: &[VarRef],
        _plan: FitPlan,
    ) -> Result<()> {
        Ok(())
    }
    /// Step `step` (counted from 1 over the whole fit) was applied by the
    /// optimizer; constraints come after this call.
    fn after_update(
        &mut self,
        _model: &mut Model,
        _optimizer: &mut Optimizer,
        _vars: &[VarRef],
        _step: usize,
    ) -> Result<()> {
        Ok(())
    }
    /// An epoch ended: extra values may be appended to its logs.
    fn epoch_end(&mut self, _model: &Model, _logs: &mut Logs) {}
}

/// A [`StepHook`] that does nothing (plain Keras `fit`).
pub struct NoHook;
impl StepHook for NoHook {}

/// Keras's `Mean` metric as the loss tracker uses it (float32 total and count).
#[derive(Debug, Default, Clone, Copy)]
struct MeanTracker {
    total: f32,
    count: f32,
}

impl MeanTracker {
    fn update(&mut self, value: f32, weight: f32) {
        self.total += value * weight;
        self.count += weight;
    }
    fn result(&self) -> f32 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }
}

/// What training needs besides the model: loss, metrics, optimizer.
pub struct Trainer {
    /// The loss minimized (plus the model's penalties).
    pub loss: Loss,
    /// Metrics reported per epoch.
    pub metrics: Vec<Metric>,
    /// The optimizer, with its state.
    pub optimizer: Optimizer,
    /// For models with several outputs: one loss (with its weight and
    /// metrics) per output, in `model.outputs` order; empty otherwise.
    pub heads: Vec<OutputHead>,
}

/// The loss, weight and metrics of one output of a multi-output model
/// (`keras/src/trainers/compile_utils.py`: `CompileLoss` sums
/// `loss_weight · loss` over the outputs and tracks each *unweighted* loss
/// as `<output>_loss`; metrics are named `<output>_<metric>`).
pub struct OutputHead {
    /// The output's name.
    pub name: String,
    /// Its loss.
    pub loss: Loss,
    /// Its `loss_weights` entry.
    pub weight: Option<f32>,
    /// Its metrics (names already prefixed with the output name).
    pub metrics: Vec<Metric>,
    tracker: MeanTracker,
}

impl OutputHead {
    /// A head for output `name`.
    pub fn new(name: String, loss: Loss, weight: Option<f32>, metrics: Vec<Metric>) -> Self {
        OutputHead {
            name,
            loss,
            weight,
            metrics,
            tracker: MeanTracker::default(),
        }
    }
}

fn logs_of(loss: f32, metrics: &[Metric]) -> Logs {
    let mut logs = vec![("loss".to_string(), loss)];
    logs.extend(metrics.iter().map(|m| (m.name.clone(), m.result())));
    logs
}

fn head_logs(loss: f32, heads: &[OutputHead]) -> Logs {
    let mut logs = vec![("loss".to_string(), loss)];
    for h in heads {
        logs.push((format!("{}_loss", h.name), h.tracker.result()));
        logs.extend(h.metrics.iter().map(|m| (m.name.clone(), m.result())));
    }
    logs
}

fn reset_heads(heads: &mut [OutputHead]) {
    for h in heads {
        h.tracker = MeanTracker::default();
        for m in &mut h.metrics {
            m.reset();
        }
    }
}

/// Inference forward pass that also sums activity penalties (Keras adds
/// them on every call, also in `evaluate`).
fn forward_with_activity(model: &Model, n: usize, x: Lhs<'_>) -> Result<(Array2<f32>, f32)> {
    let mut h = LayerInput::Batch(x);
    let mut activity = 0.0f32;
    for layer in &model.layers {
        h = match &layer.kind {
            LayerKind::Input | LayerKind::Dropout { .. } => h,
            LayerKind::Dense(d) => {
                let y = dense_forward(d, h.lhs());
                if let Some(r) = d.activity_regularizer {
                    let p = r.penalty(y.view().into_dyn())?;
                    activity += if n == 0 { 0.0 } else { p / n as f32 };
                }
                LayerInput::Array(y)
            }
            LayerKind::Activation(a) => LayerInput::Array(a.forward(h.into_array())),
            LayerKind::Flatten => {
                let h = h.into_array();
                let width = h.len() / n.max(1);
                LayerInput::Array(reshape_rows(h, n, width))
            }
            LayerKind::Op(_) => unreachable!("chain models have no op layers (Model::is_chain)"),
        };
    }
    Ok((h.into_array(), activity))
}

/// Collect mutable slices of the trainable variables, in `vars` order.
fn param_slices<'m>(model: &'m mut Model, vars: &[VarRef]) -> Vec<&'m mut [f32]> {
    let mut out = Vec::with_capacity(vars.len());
    for (i, layer) in model.layers.iter_mut().enumerate() {
        if !vars.iter().any(|v| v.layer == i) {
            continue;
        }
        match &mut layer.kind {
            LayerKind::Dense(d) => {
                out.push(d.kernel.as_slice_mut().expect("standard layout"));
                if let Some(b) = d.bias.as_mut() {
                    out.push(b.as_slice_mut().expect("standard layout"));
                }
            }
            LayerKind::Op(op) => {
                for var in op.vars_mut().iter_mut().filter(|v| v.trainable) {
                    out.push(var.value.as_slice_mut().expect("standard layout"));
                }
            }
            _ => {}
        }
    }
    out
}

fn apply_constraints(model: &mut Model, vars: &[VarRef]) -> Result<()> {
    for v in vars {
        if let VarKind::Op(i) = v.kind {
            let op = model.layers[v.layer].op_mut().expect("op layer");
            let var = &mut op.vars_mut()[i];
            if let Some(c) = var.constraint {
                c.apply(var.value.view_mut())?;
            }
            continue;
        }
        let d = model.layers[v.layer].dense_mut().expect("dense");
        match v.kind {
            VarKind::Kernel => {
                if let Some(c) = d.kernel_constraint {
                    c.apply(d.kernel.view_mut().into_dyn())?;
                }
            }
            VarKind::Bias => {
                if let (Some(c), Some(b)) = (d.bias_constraint, d.bias.as_mut()) {
                    c.apply(b.view_mut().into_dyn())?;
                }
            }
            VarKind::Op(_) => {}
        }
    }
    Ok(())
}

impl Trainer {
    /// The loss of each model output, in `model.outputs` order.
    pub fn output_losses(&self) -> Vec<&Loss> {
        if self.heads.is_empty() {
            vec![&self.loss]
        } else {
            self.heads.iter().map(|h| &h.loss).collect()
        }
    }

    fn graph_losses(&self) -> Vec<graph::OutputLoss<'_>> {
        if self.heads.is_empty() {
            return vec![graph::OutputLoss {
                loss: &self.loss,
                weight: None,
            }];
        }
        self.heads
            .iter()
            .map(|h| graph::OutputLoss {
                loss: &h.loss,
                weight: h.weight,
            })
            .collect()
    }

    /// Per-output bookkeeping of a multi-output step.
    fn update_heads(
        &mut self,
        n: usize,
        losses: &[f32],
        y_pred: &[Array2<f32>],
        masks: &[Option<Vec<bool>>],
        ys: &[Array2<f32>],
    ) {
        let outputs = y_pred.iter().zip(masks).zip(ys);
        for ((h, &l), ((yp, mask), yt)) in self.heads.iter_mut().zip(losses).zip(outputs) {
            h.tracker.update(l, n as f32);
            for m in &mut h.metrics {
                m.update_masked(yp.view(), yt.view(), mask.as_deref());
            }
        }
    }

    /// Prepare the optimizer for the model's trainable variables.
    pub fn build(&mut self, model: &Model) {
        let shapes: Vec<Vec<usize>> = trainable_variables(model)
            .into_iter()
            .map(|v| var_shape(model, v))
            .collect();
        self.optimizer.build(&shapes);
    }

    /// `model.evaluate`: the loss (with penalties) and metrics over `data`.
    pub fn evaluate(&mut self, model: &Model, data: &Dataset, batch_size: usize) -> Result<Logs> {
        let _mode = FlushDenormals::enter();
        let vars = trainable_variables(model);
        let penalties = weight_penalties(model, &vars)?;
        let mut tracker = MeanTracker::default();
        for m in &mut self.metrics {
            m.reset();
        }
        let idx: Vec<usize> = (0..data.len()).collect();
        let mut x_buffer = Vec::new();
        let chain = model.is_chain();
        if !self.heads.is_empty() {
            reset_heads(&mut self.heads);
            for chunk in idx.chunks(batch_size.max(1)) {
                let xs = data.batch_inputs(chunk);
                let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
                let ys = data.batch_targets(chunk);
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
                let trace = graph::forward(model, &views, Mode::Inference, &mut rng)?;
                let masks = trace.output_row_masks(model)?;
                let mut compiled = 0.0f32;
                let mut losses = Vec::new();
                let mut preds = Vec::new();
                let outputs = trace.outputs(model).into_iter().zip(&masks);
                for (((o, mask), h), yt) in outputs.zip(&self.heads).zip(&ys) {
                    let y = graph::output_rows(o);
                    let l = h
                        .loss
                        .loss_and_grad_masked(y.view(), yt.view(), mask.as_deref())
                        .0;
                    compiled += h.weight.map_or(l, |w| l * w);
                    losses.push(l);
                    preds.push(y);
                }
                tracker.update(compiled + trace.activity + penalties, chunk.len() as f32);
                self.update_heads(chunk.len(), &losses, &preds, &masks, &ys);
            }
            return Ok(head_logs(tracker.result(), &self.heads));
        }
        for chunk in idx.chunks(batch_size.max(1)) {
            let yb = if chain {
                data.y.select(Axis(0), chunk)
            } else {
                data.batch_targets(chunk).swap_remove(0)
            };
            let (y_pred, activity, mask) = if chain {
                let xb = data.batch_x(chunk, &mut x_buffer);
                let (y, activity) = forward_with_activity(model, chunk.len(), xb)?;
                (y, activity, None)
            } else {
                let xs = data.batch_inputs(chunk);
                let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
                let trace = graph::forward(model, &views, Mode::Inference, &mut rng)?;
                let mask = trace.output_row_masks(model)?.swap_remove(0);
                (
                    graph::output_rows(trace.outputs(model)[0]),
                    trace.activity,
                    mask,
                )
            };
            let compiled = self
                .loss
                .loss_and_grad_masked(y_pred.view(), yb.view(), mask.as_deref())
                .0;
            let loss = compiled + activity + penalties;
            tracker.update(loss, chunk.len() as f32);
            update_metrics(&mut self.metrics, y_pred.view(), mask.as_deref(), yb.view());
        }
        Ok(logs_of(tracker.result(), &self.metrics))
    }

    /// `model.fit`: train `model` in place; returns the per-epoch logs.
    /// A non-finite loss stops training with an error.
    pub fn fit(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        validation: Option<&Dataset>,
        options: &FitOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<Logs>> {
        self.fit_with_hook(model, train, validation, options, progress, &mut NoHook)
    }

    /// [`Trainer::fit`] with `hook` called after every optimizer update
    /// (before constraints) and at the end of every epoch (after
    /// validation).
    pub fn fit_with_hook(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        validation: Option<&Dataset>,
        options: &FitOptions,
        progress: &mut dyn Progress,
        hook: &mut dyn StepHook,
    ) -> Result<Vec<Logs>> {
        let vars = trainable_variables(model);
        if vars.is_empty() {
            return Err(Error::training("the model has no trainable weights"));
        }
        // Compute as XLA does under Keras (see `fpmode`).
        let _mode = FlushDenormals::enter();
        let batch_size = options.batch_size.max(1);
        let mut rng = StdRng::seed_from_u64(options.seed);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let steps = train.len().div_ceil(batch_size);
        let chain = model.is_chain();
        let mut history = Vec::with_capacity(options.epochs);
        self.build(model);
        let plan = FitPlan {
            epochs: options.epochs,
            steps_per_epoch: steps,
        };
        hook.start(model, &mut self.optimizer, &vars, plan)?;
        let mut global_step = 0usize;
        // Buffers reused from step to step (see `train_step`).
        let mut x_buffer = Vec::new();
        let mut grads: Vec<Vec<f32>> = vars
            .iter()
            .map(|&v| vec![0.0; var_shape(model, v).iter().product()])
            .collect();
        for epoch in 0..options.epochs {
            if options.shuffle {
                order.shuffle(&mut rng);
            }
            for m in &mut self.metrics {
                m.reset();
            }
            reset_heads(&mut self.heads);
            let mut tracker = MeanTracker::default();
            progress.epoch_start(epoch, options.epochs, steps);
            for (step, chunk) in order.chunks(batch_size).enumerate() {
                let ys = if chain {
                    Vec::new()
                } else {
                    train.batch_targets(chunk)
                };
                let yb = match ys.first() {
                    Some(y) => y.clone(),
                    None => train.y.select(Axis(0), chunk),
                };
                let mut updates = Vec::new();
                let result = if chain {
                    let xb = train.batch_x(chunk, &mut x_buffer);
                    let batch = Batch {
                        n: chunk.len(),
                        x: xb,
                        y_true: yb.view(),
                    };
                    train_step(
                        model,
                        &vars,
                        &self.loss,
                        batch,
                        options.penalty_gradient,
                        &mut rng,
                        &mut grads,
                    )?
                } else {
                    let xs = train.batch_inputs(chunk);
                    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
                    let targets: Vec<_> = ys.iter().map(|y| y.view()).collect();
                    let losses = self.graph_losses();
                    let step = graph::train_step(
                        model,
                        &vars,
                        &losses,
                        &views,
                        &targets,
                        options.penalty_gradient,
                        &mut rng,
                        &mut grads,
                    )?;
                    updates = step.updates;
                    drop(losses);
                    // The loss of a masked output is masked, but the training
                    // metrics are not: keras/src/backend/jax/trainer.py
                    // `train_step` gets `y_pred` back from `jax.value_and_grad`,
                    // which drops its Keras mask, while `test_step` computes
                    // the metrics on the traced `y_pred` that still carries it.
                    let unmasked = vec![None; step.y_pred.len()];
                    if !self.heads.is_empty() {
                        self.update_heads(
                            chunk.len(),
                            &step.output_losses,
                            &step.y_pred,
                            &unmasked,
                            &ys,
                        );
                    }
                    StepResult {
                        y_pred: step.y_pred.into_iter().next().expect("one output"),
                        loss: step.loss,
                    }
                };
                if !result.loss.is_finite() {
                    return Err(Error::training(format!(
                        "the loss became {} at epoch {}, step {} (iteration {}): \
                         try a smaller learning rate",
                        result.loss,
                        epoch + 1,
                        step + 1,
                        self.optimizer.iterations() + 1
                    )));
                }
                {
                    let mut params = param_slices(model, &vars);
                    self.optimizer.apply(&mut params, &mut grads);
                }
                global_step += 1;
                hook.after_update(model, &mut self.optimizer, &vars, global_step)?;
                apply_constraints(model, &vars)?;
                graph::apply_updates(model, updates);
                tracker.update(result.loss, chunk.len() as f32);
                let logs = if self.heads.is_empty() {
                    update_metrics(&mut self.metrics, result.y_pred.view(), None, yb.view());
                    logs_of(tracker.result(), &self.metrics)
                } else {
                    head_logs(tracker.result(), &self.heads)
                };
                progress.step(step, &logs);
                if progress.interrupted() {
                    return Err(Error::training(
                        "interrupted: training stopped early and nothing was written",
                    ));
                }
            }
            let mut logs = if self.heads.is_empty() {
                logs_of(tracker.result(), &self.metrics)
            } else {
                head_logs(tracker.result(), &self.heads)
            };
            if let Some(val) = validation {
                let val_logs = self.evaluate(model, val, batch_size)?;
                logs.extend(val_logs.into_iter().map(|(k, v)| (format!("val_{k}"), v)));
            }
            hook.epoch_end(model, &mut logs);
            progress.epoch_end(epoch, &logs);
            history.push(logs);
        }
        Ok(history)
    }
}

fn update_metrics(
    metrics: &mut [Metric],
    y_pred: ArrayView2<'_, f32>,
    mask: Option<&[bool]>,
    y_true: ArrayView2<'_, f32>,
) {
    for m in metrics {
        m.update_masked(y_pred, y_true, mask);
    }
}

/// The ids of model input `slot`, when an `Embedding` reads it, are
/// integers within its vocabulary (an error names the row and the id).
fn check_ids(model: &Model, slot: usize, x: &F32Data) -> Result<()> {
    let g = &model.graph;
    let feeds_embedding = g.inputs.get(slot).is_some_and(|&input| {
        g.nodes.iter().any(|node| {
            node.inputs.contains(&input)
                && node
                    .layer
                    .is_some_and(|l| model.layers[l].class_name == "Embedding")
        })
    });
    if feeds_embedding {
        model.check_ids(slot, x.to_array().view())?;
    }
    Ok(())
}
