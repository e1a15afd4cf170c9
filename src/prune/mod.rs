//! Magnitude pruning of Dense and convolution weights, and sparsity
//! reports.
//!
//! Everything here goes through one parameter visitor ([`params`] /
//! [`params_mut`]): the kernels and biases of a model's Dense and convolution
//! layers (Conv, Depthwise, Separable depthwise and pointwise, Transpose), in
//! layer order, each as a flat list in C order (a Dense kernel `[in, out]`
//! row by row, a Conv2D kernel `[h, w, in, filters]` filter index fastest). A
//! position in a tensor is its index in that list, so masks, ties and
//! reports all mean the same thing.
//!
//! Pruning rules (exact and deterministic):
//! - **Threshold** `T`: a weight is pruned when `|w| < T`, comparing the
//!   float32 magnitude with `T` as a float64 (exact, no rounding of `T` to
//!   float32). NaN weights are never pruned.
//! - **Sparsity** `S` (per tensor): in a tensor of `n` weights the
//!   `k = round(S·n)` weights of smallest magnitude are pruned, where `S·n`
//!   is computed in float64 and halves round to even (Python's `round`, as
//!   PyTorch's `prune.l1_unstructured` does). Magnitudes are ordered exactly
//!   (NaN above infinity); equal magnitudes are broken by position, lower
//!   index first.
//! - **Global sparsity**: the same, with `n` the number of weights in all
//!   selected tensors together and ties broken by layer order, then kernel
//!   before bias, then position.
//!
//! A pruned weight becomes `0.0` (positive zero); every other weight keeps
//! its exact bits.

pub mod plot;
mod rank;
pub mod shrink;
pub mod sparsity;
pub(crate) mod table;

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;

use rank::smallest;
pub use rank::sparsity_count;

pub use sparsity::{FeatureRow, FeatureSelection, SparsityReport, TensorSparsity, sparsity_report};

/// Which variable of a layer with weights (Dense and the convolutions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightKind {
    /// A kernel: Dense `[in, out]`, convolution `kernel_size + (in, filters)`,
    /// depthwise `kernel_size + (in, multiplier)`, transposed
    /// `kernel_size + (filters, in)`.
    Kernel,
    /// A separable convolution's depthwise kernel.
    DepthwiseKernel,
    /// A separable convolution's pointwise kernel `(1, …, in, filters)`.
    PointwiseKernel,
    /// A recurrent layer's `recurrent_kernel` `[units, gates · units]`.
    RecurrentKernel,
    /// An `Embedding` table `[vocabulary, output_dim]` (rows are ids).
    Embeddings,
    /// A bias `[out]`.
    Bias,
}

impl WeightKind {
    /// Keras's variable name: `kernel`, `depthwise_kernel`,
    /// `pointwise_kernel` or `bias`.
    pub fn name(self) -> &'static str {
        match self {
            WeightKind::Kernel => "kernel",
            WeightKind::DepthwiseKernel => "depthwise_kernel",
            WeightKind::PointwiseKernel => "pointwise_kernel",
            WeightKind::RecurrentKernel => "recurrent_kernel",
            WeightKind::Embeddings => "embeddings",
            WeightKind::Bias => "bias",
        }
    }

    /// The kind of a variable with this Keras name, if prunable.
    pub fn from_role(role: &str) -> Option<Self> {
        Some(match role {
            "kernel" => WeightKind::Kernel,
            "depthwise_kernel" => WeightKind::DepthwiseKernel,
            "pointwise_kernel" => WeightKind::PointwiseKernel,
            "recurrent_kernel" => WeightKind::RecurrentKernel,
            "embeddings" => WeightKind::Embeddings,
            "bias" => WeightKind::Bias,
            _ => return None,
        })
    }

    /// Every kind but the bias (embedding tables included).
    pub fn is_kernel(self) -> bool {
        self != WeightKind::Bias
    }
}

impl fmt::Display for WeightKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which axes of a kernel are its input and output channels, for the
/// per-channel columns of the sparsity report and structured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelAxes {
    /// The input-channel axis.
    pub input: usize,
    /// The output-channel axes, `start..end` (adjacent; a depthwise kernel's
    /// `(in, multiplier)` pairs are its output channels).
    pub output: (usize, usize),
}

/// Which channel each position of a C-order tensor is in, for channels
/// along adjacent axes `start..end`.
#[derive(Debug, Clone, Copy)]
struct ChannelIndex {
    /// Positions per step along the channel axes (the later axes' size).
    inner: usize,
    /// Number of channels.
    channels: usize,
}

impl ChannelIndex {
    fn new(shape: &[usize], (start, end): (usize, usize)) -> Self {
        ChannelIndex {
            inner: shape[end..].iter().product(),
            channels: shape[start..end].iter().product(),
        }
    }

    /// False for an empty tensor (no position has a channel).
    fn is_empty(&self) -> bool {
        self.inner == 0 || self.channels == 0
    }

    /// The channel of position `j` (C order).
    fn of(&self, j: usize) -> usize {
        (j / self.inner) % self.channels
    }
}

impl ChannelAxes {
    /// Per channel along the axes `start..end` of a C-order tensor of this
    /// shape: (`Σ|w|` in float64, count of nonzero weights).
    pub fn reduce(shape: &[usize], axes: (usize, usize), values: &[f32]) -> Vec<(f64, usize)> {
        let index = ChannelIndex::new(shape, axes);
        let mut out = vec![(0.0f64, 0usize); index.channels];
        if index.is_empty() {
            return out;
        }
        for (j, w) in values.iter().enumerate() {
            let c = index.of(j);
            out[c].0 += f64::from(w.abs());
            if *w != 0.0 {
                out[c].1 += 1;
            }
        }
        out
    }

    /// [`ChannelAxes::reduce`] over the output channels.
    pub fn outputs(&self, shape: &[usize], values: &[f32]) -> Vec<(f64, usize)> {
        Self::reduce(shape, self.output, values)
    }

    /// [`ChannelAxes::reduce`] over the input channels.
    pub fn inputs(&self, shape: &[usize], values: &[f32]) -> Vec<(f64, usize)> {
        Self::reduce(shape, (self.input, self.input + 1), values)
    }
}

/// One prunable variable, read-only.
#[derive(Debug, Clone)]
pub struct ParamView {
    /// Index of the layer in [`Model::layers`].
    pub layer: usize,
    /// The layer's name.
    pub layer_name: String,
    /// Index of the variable among the layer's weights (`vars/i`).
    pub var: usize,
    /// Kernel or bias.
    pub kind: WeightKind,
    /// The variable's shape.
    pub shape: Vec<usize>,
    /// The values in C order.
    pub values: Vec<f32>,
    /// For kernels: where the channels are.
    pub channels: Option<ChannelAxes>,
}

/// Channel axes of a kernel of `rank` axes in a layer of this class: Dense
/// `[in, out]` and convolutions `(…, in, filters)`; transposed convolutions
/// `(…, filters, in)`; depthwise kernels `(…, in, multiplier)`.
fn channel_axes(class: &str, kind: WeightKind, rank: usize) -> Option<ChannelAxes> {
    if !kind.is_kernel() || rank < 2 {
        return None;
    }
    let (r1, r2) = (rank - 1, rank - 2);
    Some(if class.ends_with("Transpose") {
        ChannelAxes {
            input: r1,
            output: (r2, r1),
        }
    } else if class.starts_with("Depthwise") || kind == WeightKind::DepthwiseKernel {
        ChannelAxes {
            input: r2,
            output: (r2, rank),
        }
    } else {
        ChannelAxes {
            input: r2,
            output: (r1, rank),
        }
    })
}

/// True when a layer has prunable weights (a Dense layer, or a layer whose
/// variables include a kernel: the convolutions).
pub fn has_weights(layer: &crate::model::Layer) -> bool {
    match layer.op() {
        Some(op) => op
            .vars()
            .iter()
            .any(|v| WeightKind::from_role(v.role).is_some_and(WeightKind::is_kernel)),
        None => layer.dense().is_some(),
    }
}

/// The prunable variables of a model (Dense and convolution kernels and
/// biases), in layer order and each layer's weights order (kernels before
/// the bias), values in C order.
pub fn params(model: &Model) -> Vec<ParamView> {
    let mut out = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        if !has_weights(layer) {
            continue;
        }
        let view = |var: usize, kind: WeightKind, shape: &[usize], values: Vec<f32>| ParamView {
            layer: index,
            layer_name: layer.name.clone(),
            var,
            kind,
            shape: shape.to_vec(),
            values,
            channels: channel_axes(&layer.class_name, kind, shape.len()),
        };
        if let Some(op) = layer.op() {
            for (v, var) in op.vars().iter().enumerate() {
                if let Some(kind) = WeightKind::from_role(var.role) {
                    let mut p = view(
                        v,
                        kind,
                        var.value.shape(),
                        var.value.iter().copied().collect(),
                    );
                    if let (true, Some((input, output))) = (kind.is_kernel(), op.channel_axes(v)) {
                        p.channels = Some(ChannelAxes { input, output });
                    }
                    if let Some(scope) = op.var_scope(v) {
                        // An attention layer's `mha/query` (Keras's path).
                        p.layer_name = format!("{}/{scope}", layer.name);
                    }
                    out.push(p);
                }
            }
            continue;
        }
        let Some(dense) = layer.dense() else { continue };
        out.push(view(
            0,
            WeightKind::Kernel,
            dense.kernel.shape(),
            dense.kernel.iter().copied().collect(),
        ));
        if let Some(bias) = &dense.bias {
            out.push(view(1, WeightKind::Bias, bias.shape(), bias.to_vec()));
        }
    }
    out
}

/// Visit one prunable variable mutably: `f` gets its values in C order.
/// Returns `false` when layer `layer` has no such variable.
pub fn params_mut(
    model: &mut Model,
    layer: usize,
    var: usize,
    kind: WeightKind,
    f: impl FnOnce(&mut dyn Iterator<Item = &mut f32>),
) -> bool {
    let Some(l) = model.layers.get_mut(layer) else {
        return false;
    };
    if !has_weights(l) {
        return false;
    }
    if let Some(op) = l.op_mut() {
        // By index: a Bidirectional layer has two kernels.
        let Some(var) = op
            .vars_mut()
            .get_mut(var)
            .filter(|v| WeightKind::from_role(v.role) == Some(kind))
        else {
            return false;
        };
        f(&mut var.value.iter_mut());
        return true;
    }
    let Some(dense) = l.dense_mut() else {
        return false;
    };
    match kind {
        WeightKind::Bias => match &mut dense.bias {
            Some(b) => f(&mut b.iter_mut()),
            None => return false,
        },
        WeightKind::Kernel => f(&mut dense.kernel.iter_mut()),
        _ => return false,
    }
    true
}

/// How weights are chosen for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PruneCriterion {
    /// Prune every weight with `|w| < threshold`.
    Threshold {
        /// The bound (finite, ≥ 0).
        threshold: f64,
    },
    /// Prune the `round(sparsity·n)` smallest-magnitude weights.
    Sparsity {
        /// Fraction in `[0, 1]`.
        sparsity: f64,
        /// One ranking across all selected tensors instead of one per tensor.
        global: bool,
    },
}

/// What to prune.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneSpec {
    /// How weights are chosen.
    pub criterion: PruneCriterion,
    /// Names of the layers to prune; `None` means every Dense and
    /// convolution layer (frozen ones too: trainability does not matter to
    /// pruning).
    pub layers: Option<Vec<String>>,
    /// Prune biases too (kernels only by default).
    pub include_bias: bool,
    /// Prune whole output channels (Dense units, convolution filters) by
    /// the L1 norm of their weights instead of single weights.
    pub structured: bool,
}

impl PruneSpec {
    /// Prune every kernel by threshold.
    pub fn threshold(threshold: f64) -> Self {
        PruneSpec {
            criterion: PruneCriterion::Threshold { threshold },
            layers: None,
            include_bias: false,
            structured: false,
        }
    }

    /// Prune every kernel to a sparsity, per tensor or globally.
    pub fn sparsity(sparsity: f64, global: bool) -> Self {
        PruneSpec {
            criterion: PruneCriterion::Sparsity { sparsity, global },
            layers: None,
            include_bias: false,
            structured: false,
        }
    }

    /// Check the numbers: a threshold must be finite and ≥ 0, a sparsity in
    /// `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        match self.criterion {
            PruneCriterion::Threshold { threshold } => {
                if !(threshold.is_finite() && threshold >= 0.0) {
                    return Err(Error::invalid(format!(
                        "threshold must be a finite number >= 0, found {threshold}"
                    )));
                }
            }
            PruneCriterion::Sparsity { sparsity, .. } => {
                if !(0.0..=1.0).contains(&sparsity) {
                    return Err(Error::invalid(format!(
                        "sparsity must be between 0 and 1, found {sparsity}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The positions pruned in one variable: the optimizer's slot variables for
/// it must be zeroed at the same positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedMask {
    /// Index of the layer in [`Model::layers`].
    pub layer: usize,
    /// Index of the variable among the layer's weights (`vars/i`).
    pub var: usize,
    /// Which variable.
    pub kind: WeightKind,
    /// One flag per weight, in C order: `true` where the weight was pruned.
    pub pruned: Vec<bool>,
}

/// One pruned variable in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneRow {
    /// Layer name.
    pub layer: String,
    /// Index of the layer in the model.
    pub layer_index: usize,
    /// Kernel or bias.
    pub weight: WeightKind,
    /// Number of weights.
    pub weights: usize,
    /// Exact zeros before pruning.
    pub zeros_before: usize,
    /// Exact zeros after pruning.
    pub zeros_after: usize,
    /// Weights the criterion selected (some may already have been zero).
    pub pruned: usize,
    /// `zeros_after / weights` (0 for an empty variable).
    pub sparsity_after: f64,
    /// The magnitude bound used: `T` for a threshold (pruned when `|w| < T`);
    /// for a sparsity, the largest pruned magnitude (pruned weights have
    /// `|w| <= t`), `None` when nothing was pruned.
    pub threshold: Option<f64>,
    /// Whether `threshold` is inclusive (`<=`, sparsity) or strict (`<`).
    /// With structured pruning a threshold bounds each channel's `Σ|w|`.
    pub threshold_inclusive: bool,
    /// Structured pruning: output channels (units, filters) cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned_channels: Option<usize>,
}

/// What [`prune`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    /// The criterion applied.
    pub criterion: PruneCriterion,
    /// One row per selected variable, in layer order (kernel before bias).
    pub rows: Vec<PruneRow>,
    /// The pruned positions per selected variable, in the order of `rows`.
    #[serde(skip)]
    pub masks: Vec<PrunedMask>,
}

impl PruneReport {
    /// Total weights in the selected variables.
    pub fn total_weights(&self) -> usize {
        self.rows.iter().map(|r| r.weights).sum()
    }

    /// Total exact zeros after pruning in the selected variables.
    pub fn total_zeros_after(&self) -> usize {
        self.rows.iter().map(|r| r.zeros_after).sum()
    }
}

fn count_zeros(values: &[f32]) -> usize {
    values.iter().filter(|v| **v == 0.0).count()
}

/// Which layers a spec selects (indices of layers with weights, in order).
fn selected_layers(model: &Model, spec: &PruneSpec) -> Result<Vec<usize>> {
    let weighted: Vec<usize> = model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| has_weights(l))
        .map(|(i, _)| i)
        .collect();
    let Some(names) = &spec.layers else {
        return Ok(weighted);
    };
    let weighted_names = || {
        weighted
            .iter()
            .map(|&i| model.layers[i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut chosen = Vec::new();
    for name in names {
        let Some(index) = model.layers.iter().position(|l| &l.name == name) else {
            let all: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
            return Err(Error::missing(format!(
                "layer `{name}` (layers: {})",
                all.join(", ")
            )));
        };
        if !weighted.contains(&index) {
            return Err(Error::invalid(format!(
                "layer `{name}` is a `{}` layer: only Dense and convolution weights can be \
                 pruned (layers with kernels: {})",
                model.layers[index].class_name,
                weighted_names()
            )));
        }
        chosen.push(index);
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// Prune a model's Dense and convolution weights in place. Returns the per-variable report and
/// the masks of pruned positions (see the module docs for the exact rules).
///
/// Only the weights change: call [`zero_optimizer_slots`] before saving a
/// model that has stored optimizer state.
pub fn prune(model: &mut Model, spec: &PruneSpec) -> Result<PruneReport> {
    spec.validate()?;
    let layers = selected_layers(model, spec)?;
    let selected: Vec<ParamView> = params(model)
        .into_iter()
        .filter(|p| layers.contains(&p.layer))
        .filter(|p| spec.include_bias || p.kind.is_kernel())
        .collect();
    let values: Vec<&[f32]> = selected.iter().map(|p| &p.values[..]).collect();
    let masks: Vec<Vec<bool>> = if spec.structured {
        structured_masks(&selected, spec.criterion)
    } else {
        match spec.criterion {
            PruneCriterion::Threshold { threshold } => values
                .iter()
                .map(|v| v.iter().map(|w| f64::from(w.abs()) < threshold).collect())
                .collect(),
            PruneCriterion::Sparsity {
                sparsity,
                global: false,
            } => values
                .iter()
                .map(|v| Ok(smallest(&[v], sparsity_count(sparsity, v.len()))?.remove(0)))
                .collect::<Result<_>>()?,
            PruneCriterion::Sparsity {
                sparsity,
                global: true,
            } => {
                let n = values.iter().map(|v| v.len()).sum();
                smallest(&values, sparsity_count(sparsity, n))?
            }
        }
    };
    let global_bound = match spec.criterion {
        PruneCriterion::Sparsity { global: true, .. } => values
            .iter()
            .zip(&masks)
            .filter_map(|(v, m)| largest_pruned(v, m))
            .reduce(f64::max),
        _ => None,
    };
    let mut rows = Vec::with_capacity(selected.len());
    let mut out_masks = Vec::with_capacity(selected.len());
    for (p, mask) in selected.into_iter().zip(masks) {
        let (layer, kind, n) = (p.layer, p.kind, p.values.len());
        let zeros_before = count_zeros(&p.values);
        let bound = largest_pruned(&p.values, &mask);
        let mut zeros_after = 0;
        params_mut(model, layer, p.var, kind, |it| {
            for (w, &p) in it.zip(&mask) {
                if p {
                    *w = 0.0;
                }
                if *w == 0.0 {
                    zeros_after += 1;
                }
            }
        });
        let pruned_channels =
            (spec.structured && p.kind.is_kernel()).then(|| channels_cut(&p, &mask));
        let (threshold, threshold_inclusive) = match spec.criterion {
            PruneCriterion::Threshold { threshold } => (Some(threshold), false),
            // Channels were ranked by their norms, not weights by magnitude.
            PruneCriterion::Sparsity { .. } if spec.structured => (None, true),
            PruneCriterion::Sparsity { global: true, .. } => (global_bound, true),
            PruneCriterion::Sparsity { global: false, .. } => (bound, true),
        };
        rows.push(PruneRow {
            layer: p.layer_name,
            layer_index: layer,
            weight: kind,
            weights: n,
            zeros_before,
            zeros_after,
            pruned: mask.iter().filter(|p| **p).count(),
            sparsity_after: if n == 0 {
                0.0
            } else {
                zeros_after as f64 / n as f64
            },
            threshold,
            threshold_inclusive,
            pruned_channels,
        });
        out_masks.push(PrunedMask {
            layer,
            var: p.var,
            kind,
            pruned: mask,
        });
    }
    Ok(PruneReport {
        criterion: spec.criterion,
        rows,
        masks: out_masks,
    })
}

/// The masks of structured pruning: whole output channels of each selected
/// kernel, ranked by their L1 norm `Σ|w|` (float64): with a threshold `T`
/// every channel with `Σ|w| < T`, with a sparsity `S` the `round(S·F)`
/// channels of smallest norm among a kernel's `F` (or among all selected
/// kernels' channels with `global`; ties: layer order, then channel index).
/// A selected bias loses the entries of its layer's pruned output channels
/// (the last kernel's, when it has one per bias entry).
fn structured_masks(selected: &[ParamView], criterion: PruneCriterion) -> Vec<Vec<bool>> {
    let norms: Vec<Option<Vec<f64>>> = selected
        .iter()
        .map(|p| {
            p.channels.map(|axes| {
                axes.outputs(&p.shape, &p.values)
                    .into_iter()
                    .map(|c| c.0)
                    .collect()
            })
        })
        .collect();
    let mut cut: Vec<Option<Vec<bool>>> = norms
        .iter()
        .map(|n| n.as_ref().map(|n| vec![false; n.len()]))
        .collect();
    let rank = |list: &mut Vec<(f64, usize, usize)>, k: usize, cut: &mut Vec<Option<Vec<bool>>>| {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for &(_, t, c) in list.iter().take(k) {
            if let Some(m) = &mut cut[t] {
                m[c] = true;
            }
        }
    };
    match criterion {
        PruneCriterion::Threshold { threshold } => {
            for (n, m) in norms.iter().zip(&mut cut) {
                if let (Some(n), Some(m)) = (n, m) {
                    for (flag, &v) in m.iter_mut().zip(n) {
                        *flag = v < threshold;
                    }
                }
            }
        }
        PruneCriterion::Sparsity { sparsity, global } => {
            let entries = |t: usize| {
                norms[t]
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(move |(c, &v)| (v, t, c))
            };
            if global {
                let mut all: Vec<(f64, usize, usize)> =
                    (0..norms.len()).flat_map(entries).collect();
                let k = sparsity_count(sparsity, all.len());
                rank(&mut all, k, &mut cut);
            } else {
                for t in 0..norms.len() {
                    let mut list: Vec<(f64, usize, usize)> = entries(t).collect();
                    let k = sparsity_count(sparsity, list.len());
                    rank(&mut list, k, &mut cut);
                }
            }
        }
    }
    selected
        .iter()
        .enumerate()
        .map(|(t, p)| match (&cut[t], p.channels) {
            (Some(m), Some(axes)) => {
                let index = ChannelIndex::new(&p.shape, axes.output);
                (0..p.values.len())
                    .map(|j| !index.is_empty() && m[index.of(j)])
                    .collect()
            }
            _ if p.kind == WeightKind::Bias => {
                // The layer's last kernel with one output channel per bias
                // entry (a separable layer's pointwise kernel).
                let owner = (0..selected.len()).rev().find(|&o| {
                    selected[o].layer == p.layer
                        && cut[o].as_ref().is_some_and(|m| m.len() == p.values.len())
                        && selected[o].kind != WeightKind::DepthwiseKernel
                });
                match owner.and_then(|o| cut[o].clone()) {
                    Some(m) => m,
                    None => vec![false; p.values.len()],
                }
            }
            _ => vec![false; p.values.len()],
        })
        .collect()
}

/// Output channels of a kernel whose every weight is in `mask`.
fn channels_cut(p: &ParamView, mask: &[bool]) -> usize {
    let Some(axes) = p.channels else { return 0 };
    let index = ChannelIndex::new(&p.shape, axes.output);
    if index.is_empty() {
        return 0;
    }
    let mut all = vec![true; index.channels];
    for (j, &m) in mask.iter().enumerate() {
        all[index.of(j)] &= m;
    }
    all.iter().filter(|&&a| a).count()
}

/// The largest magnitude among the pruned positions, if any.
fn largest_pruned(values: &[f32], mask: &[bool]) -> Option<f64> {
    values
        .iter()
        .zip(mask)
        .filter(|(_, p)| **p)
        .map(|(w, _)| f64::from(w.abs()))
        .reduce(f64::max)
}

/// Zero the optimizer's slot variables (Adam's `m` and `v`, momentum, ...) at
/// the pruned positions, so that resumed training does not move pruned
/// weights away from zero on stale moments. Slots go back to their initial
/// values (0, or the accumulators' `initial_accumulator_value`).
///
/// The stored state is read with the compiled optimizer's own layout
/// (`crate::engine::optimizer`), edited and written back in Keras's order.
/// Succeeds without change when no optimizer state is stored or nothing was
/// pruned; frozen layers have no slots.
pub fn zero_optimizer_slots(model: &mut Model, masks: &[PrunedMask]) -> Result<()> {
    use crate::engine::backward::{trainable_variables, var_ref, var_shape};
    use crate::engine::optimizer::Optimizer;
    let Some(state) = model.optimizer_state() else {
        return Ok(());
    };
    if masks.iter().all(|m| !m.pruned.contains(&true)) {
        return Ok(());
    }
    let in_h5 = |e: Error| {
        e.at("optimizer/vars")
            .in_member(crate::archive::WEIGHTS_MEMBER)
    };
    let config = model
        .source()
        .config
        .get("compile_config")
        .and_then(|c| c.get("optimizer"))
        .filter(|v| !v.is_null())
        .cloned()
        .ok_or_else(|| {
            in_h5(Error::missing(
                "a compiled optimizer to interpret the stored optimizer state",
            ))
        })?;
    let mut optimizer = Optimizer::from_config(&config)?;
    let vars = trainable_variables(model);
    let shapes: Vec<Vec<usize>> = vars.iter().map(|&v| var_shape(model, v)).collect();
    optimizer.build(&shapes);
    optimizer.load_state(&state.variables).map_err(in_h5)?;
    for mask in masks {
        let var = var_ref(model, mask.layer, mask.var);
        if let Some(index) = vars.iter().position(|v| *v == var) {
            optimizer.reset_slots_at(index, &mask.pruned);
        }
    }
    let name = state
        .name
        .clone()
        .unwrap_or_else(|| optimizer.instance_name().to_string());
    model.set_optimizer_state(&name, optimizer.state())
}

fn threshold_text(row: &PruneRow) -> String {
    let Some(t) = row.threshold else {
        return "-".to_string();
    };
    // A weight magnitude is a float32: print it as one (shortest digits).
    let t = if f64::from(t as f32) == t {
        (t as f32).to_string()
    } else {
        t.to_string()
    };
    if row.threshold_inclusive {
        format!("<= {t}")
    } else {
        format!("< {t}")
    }
}

/// A fraction as a percentage with two decimals.
pub(crate) fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    format!("{:.2}%", 100.0 * part as f64 / whole as f64)
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::model::summary::thousands;
        let structured = self.rows.iter().any(|r| r.pruned_channels.is_some());
        let mut headers = vec![
            "Layer",
            "Weight",
            "Weights",
            "Zeros before",
            "Zeros after",
            "Sparsity after",
            "Threshold",
        ];
        if structured {
            headers.push("Channels cut");
        }
        let mut rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.layer.clone(),
                    r.weight.to_string(),
                    thousands(r.weights),
                    thousands(r.zeros_before),
                    thousands(r.zeros_after),
                    percent(r.zeros_after, r.weights),
                    threshold_text(r),
                ];
                if structured {
                    row.push(r.pruned_channels.map_or("-".into(), thousands));
                }
                row
            })
            .collect();
        let before: usize = self.rows.iter().map(|r| r.zeros_before).sum();
        let mut total = vec![
            "total".into(),
            String::new(),
            thousands(self.total_weights()),
            thousands(before),
            thousands(self.total_zeros_after()),
            percent(self.total_zeros_after(), self.total_weights()),
            String::new(),
        ];
        if structured {
            total.push(thousands(
                self.rows.iter().filter_map(|r| r.pruned_channels).sum(),
            ));
        }
        rows.push(total);
        let mut right = vec![false, false, true, true, true, true, false];
        if structured {
            right.push(true);
        }
        f.write_str(&table::render(
            &headers,
            &rows,
            &right,
            Some(rows.len() - 1),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_specs_are_refused() {
        for t in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(PruneSpec::threshold(t).validate().is_err(), "{t}");
        }
        for s in [-0.1, 1.5, f64::NAN] {
            assert!(PruneSpec::sparsity(s, false).validate().is_err(), "{s}");
        }
        assert!(PruneSpec::threshold(0.0).validate().is_ok());
        assert!(PruneSpec::sparsity(1.0, true).validate().is_ok());
    }
}
