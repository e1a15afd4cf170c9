//! Magnitude pruning of Dense weights, and sparsity reports.
//!
//! Everything here goes through one parameter visitor ([`params`] /
//! [`params_mut`]): the Dense kernels and biases of a model, in layer order,
//! each as a flat list in C order (a kernel `[in, out]` row by row). A
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
pub mod sparsity;
pub(crate) mod table;

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{LayerKind, Model};

use rank::smallest;
pub use rank::sparsity_count;

pub use sparsity::{FeatureRow, FeatureSelection, SparsityReport, TensorSparsity, sparsity_report};

/// Which variable of a Dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightKind {
    /// The kernel `[in, out]` (`vars/0`).
    Kernel,
    /// The bias `[out]` (`vars/1`).
    Bias,
}

impl WeightKind {
    /// `kernel` or `bias`.
    pub fn name(self) -> &'static str {
        match self {
            WeightKind::Kernel => "kernel",
            WeightKind::Bias => "bias",
        }
    }
}

impl fmt::Display for WeightKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Dense variable, read-only.
#[derive(Debug, Clone)]
pub struct ParamView {
    /// Index of the layer in [`Model::layers`].
    pub layer: usize,
    /// The layer's name.
    pub layer_name: String,
    /// Kernel or bias.
    pub kind: WeightKind,
    /// The variable's shape.
    pub shape: Vec<usize>,
    /// The values in C order.
    pub values: Vec<f32>,
}

/// The Dense kernels and biases of a model, in layer order (kernel before
/// bias), values in C order.
pub fn params(model: &Model) -> Vec<ParamView> {
    let mut out = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        let Some(dense) = layer.dense() else { continue };
        out.push(ParamView {
            layer: index,
            layer_name: layer.name.clone(),
            kind: WeightKind::Kernel,
            shape: dense.kernel.shape().to_vec(),
            values: dense.kernel.iter().copied().collect(),
        });
        if let Some(bias) = &dense.bias {
            out.push(ParamView {
                layer: index,
                layer_name: layer.name.clone(),
                kind: WeightKind::Bias,
                shape: bias.shape().to_vec(),
                values: bias.to_vec(),
            });
        }
    }
    out
}

/// Visit one Dense variable mutably: `f` gets its values in C order.
/// Returns `false` when layer `layer` has no such variable.
pub fn params_mut(
    model: &mut Model,
    layer: usize,
    kind: WeightKind,
    f: impl FnOnce(&mut dyn Iterator<Item = &mut f32>),
) -> bool {
    let Some(dense) = model.layers.get_mut(layer).and_then(|l| l.dense_mut()) else {
        return false;
    };
    match kind {
        WeightKind::Kernel => f(&mut dense.kernel.iter_mut()),
        WeightKind::Bias => match &mut dense.bias {
            Some(b) => f(&mut b.iter_mut()),
            None => return false,
        },
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
    /// Names of the Dense layers to prune; `None` means every Dense layer
    /// (frozen ones too: trainability does not matter to pruning).
    pub layers: Option<Vec<String>>,
    /// Prune biases too (kernels only by default).
    pub include_bias: bool,
}

impl PruneSpec {
    /// Prune every Dense kernel by threshold.
    pub fn threshold(threshold: f64) -> Self {
        PruneSpec {
            criterion: PruneCriterion::Threshold { threshold },
            layers: None,
            include_bias: false,
        }
    }

    /// Prune every Dense kernel to a sparsity, per tensor or globally.
    pub fn sparsity(sparsity: f64, global: bool) -> Self {
        PruneSpec {
            criterion: PruneCriterion::Sparsity { sparsity, global },
            layers: None,
            include_bias: false,
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
    /// `false` for the kernel, `true` for the bias.
    pub bias: bool,
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
    pub threshold_inclusive: bool,
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

/// Which layers a spec selects (indices of Dense layers, in order).
fn selected_layers(model: &Model, spec: &PruneSpec) -> Result<Vec<usize>> {
    let dense: Vec<usize> = model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.kind, LayerKind::Dense(_)))
        .map(|(i, _)| i)
        .collect();
    let Some(names) = &spec.layers else {
        return Ok(dense);
    };
    let dense_names = || {
        dense
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
        if !dense.contains(&index) {
            return Err(Error::invalid(format!(
                "layer `{name}` is a `{}` layer: only Dense weights can be pruned \
                 (Dense layers: {})",
                model.layers[index].class_name,
                dense_names()
            )));
        }
        chosen.push(index);
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// Prune a model's Dense weights in place. Returns the per-variable report and
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
        .filter(|p| spec.include_bias || p.kind == WeightKind::Kernel)
        .collect();
    let values: Vec<&[f32]> = selected.iter().map(|p| &p.values[..]).collect();
    let masks: Vec<Vec<bool>> = match spec.criterion {
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
        params_mut(model, layer, kind, |it| {
            for (w, &p) in it.zip(&mask) {
                if p {
                    *w = 0.0;
                }
                if *w == 0.0 {
                    zeros_after += 1;
                }
            }
        });
        let (threshold, threshold_inclusive) = match spec.criterion {
            PruneCriterion::Threshold { threshold } => (Some(threshold), false),
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
        });
        out_masks.push(PrunedMask {
            layer,
            bias: kind == WeightKind::Bias,
            pruned: mask,
        });
    }
    Ok(PruneReport {
        criterion: spec.criterion,
        rows,
        masks: out_masks,
    })
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
    use crate::engine::backward::{VarKind, trainable_variables, var_shape};
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
        let kind = if mask.bias {
            VarKind::Bias
        } else {
            VarKind::Kernel
        };
        if let Some(index) = vars
            .iter()
            .position(|v| v.layer == mask.layer && v.kind == kind)
        {
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
        let headers = [
            "Layer",
            "Weight",
            "Weights",
            "Zeros before",
            "Zeros after",
            "Sparsity after",
            "Threshold",
        ];
        let mut rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.layer.clone(),
                    r.weight.to_string(),
                    thousands(r.weights),
                    thousands(r.zeros_before),
                    thousands(r.zeros_after),
                    percent(r.zeros_after, r.weights),
                    threshold_text(r),
                ]
            })
            .collect();
        let before: usize = self.rows.iter().map(|r| r.zeros_before).sum();
        rows.push(vec![
            "total".into(),
            String::new(),
            thousands(self.total_weights()),
            thousands(before),
            thousands(self.total_zeros_after()),
            percent(self.total_zeros_after(), self.total_weights()),
            String::new(),
        ]);
        let right = [false, false, true, true, true, true, false];
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
