//! Sparsity while training, beyond Keras's `fit`: masked updates
//! (`--keep-sparsity`), gradual magnitude pruning (`--prune-to`) and the
//! proximal L1 step (`--l1-mode proximal`). A [`Sparsifier`] is a
//! [`StepHook`]: the training loop calls it after every optimizer update
//! (before constraints, which all keep exact zeros at zero: they clip or
//! rescale) and at the end of every epoch.
//!
//! Order of work after the optimizer's update of step `n` (counted from 1
//! over the whole fit):
//!
//! 1. **proximal L1** (when [`L1Mode::Proximal`]): each trainable variable
//!    whose regularizer has an L1 factor `λ` gets the soft-threshold step
//!    `w ← sign(w)·max(|w| − lr·λ, 0)` in float32, `lr` being the learning
//!    rate the optimizer just used ([`Optimizer::last_learning_rate`], a
//!    schedule evaluated at that step). The L1 term is then left out of the
//!    gradient ([`PenaltyGradient::ProximalL1`]); L2 terms stay in it. The
//!    reported loss still includes the whole penalty. A weight the step
//!    zeroes is not masked: the next update may move it again.
//! 2. **pruning** (when a [`PruneSchedule`] is set): on a pruning turn the
//!    masks are recomputed by magnitude, per variable, with the rule of
//!    [`crate::prune`] (`round(s·n)` smallest magnitudes, ties by position)
//!    at the sparsity `s_n` of TFMOT's `PolynomialDecay` schedule.
//! 3. **masks**: every masked weight is set to `0.0` and the optimizer's
//!    slot variables at masked positions are reset to their initial values
//!    ([`Optimizer::reset_slots_at`]), so the saved state is that of a model
//!    whose pruned weights the optimizer never saw. The mask of a variable
//!    is the union of its `--keep-sparsity` mask (weights exactly zero when
//!    training starts) and its current pruning mask.
//!
//! Only trainable Dense and convolution variables are touched: kernels, and biases with
//! `mask_bias` (a zero-initialized bias is the norm, not a pruned weight,
//! so biases are free by default). Frozen layers get no update anyway and
//! are never pruned here.

use super::backward::{PenaltyGradient, VarKind, VarRef, var_values_mut};
use super::optimizer::Optimizer;
use super::train::{FitPlan, Logs, StepHook};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::prune::{PruneSpec, WeightKind, prune};

/// How the L1 part of weight regularizers enters training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L1Mode {
    /// As Keras: `l1·sign(w)` is added to the gradient (weights approach
    /// zero but almost never reach it).
    #[default]
    Keras,
    /// Proximal gradient: L1 leaves the gradient and a soft-threshold step
    /// follows each update (weights reach exact zeros).
    Proximal,
}

impl L1Mode {
    /// How penalties enter the gradient in this mode.
    pub fn penalty_gradient(self) -> PenaltyGradient {
        match self {
            L1Mode::Keras => PenaltyGradient::Keras,
            L1Mode::Proximal => PenaltyGradient::ProximalL1,
        }
    }
}

/// TFMOT's gradual pruning (`tfmot.sparsity.keras.PolynomialDecay` with
/// `power = 3`), with steps counted in optimizer updates of this fit.
///
/// With `b = begin_epoch · steps_per_epoch` and `e = end_epoch ·
/// steps_per_epoch`, after `n` updates (`n = 0` is the start) the target
/// sparsity is `s_n = s_f + (s_i − s_f)(1 − p)³`, `p = (n − b)/(e − b)`
/// clamped to `[0, 1]`. Masks are recomputed when `b ≤ n ≤ e` and
/// `(n − b)` is a multiple of `frequency`, and always at `n = e`, so the
/// final sparsity is reached whatever the frequency. After `e` the masks
/// are held to the end of training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneSchedule {
    /// `s_f`: the sparsity every pruned variable ends with, in `[0, 1]`.
    pub final_sparsity: f64,
    /// `s_i`: the sparsity at `begin_epoch`, in `[0, final_sparsity]`.
    pub initial_sparsity: f64,
    /// The epoch (counted from 0: before its first update) pruning starts.
    pub begin_epoch: usize,
    /// The epoch whose start (`epochs` = the end of training) the final
    /// sparsity is reached; `None`: the end of training.
    pub end_epoch: Option<usize>,
    /// Recompute the masks every this many updates (at least 1).
    pub frequency: usize,
}

impl PruneSchedule {
    /// TFMOT's default pruning frequency (`PolynomialDecay(frequency=100)`).
    pub const DEFAULT_FREQUENCY: usize = 100;

    /// Prune to `final_sparsity` from the start to the end of training.
    pub fn to(final_sparsity: f64) -> Self {
        PruneSchedule {
            final_sparsity,
            initial_sparsity: 0.0,
            begin_epoch: 0,
            end_epoch: None,
            frequency: Self::DEFAULT_FREQUENCY,
        }
    }

    /// The target sparsity after `n` updates for a schedule running from
    /// update `begin` to update `end` (`begin < end`).
    pub fn sparsity_at(&self, n: usize, begin: usize, end: usize) -> f64 {
        let p = if end <= begin {
            1.0
        } else {
            ((n as f64 - begin as f64) / (end - begin) as f64).clamp(0.0, 1.0)
        };
        let (si, sf) = (self.initial_sparsity, self.final_sparsity);
        sf + (si - sf) * (1.0 - p).powi(3)
    }

    fn check(&self, epochs: usize) -> Result<()> {
        let frac = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(format!(
                    "{name} must be between 0 and 1, found {v}"
                )))
            }
        };
        frac("the final pruning sparsity", self.final_sparsity)?;
        frac("the initial pruning sparsity", self.initial_sparsity)?;
        if self.initial_sparsity > self.final_sparsity {
            return Err(Error::invalid(format!(
                "the initial pruning sparsity {} is above the final sparsity {}",
                self.initial_sparsity, self.final_sparsity
            )));
        }
        if self.frequency == 0 {
            return Err(Error::invalid("the pruning frequency must be at least 1"));
        }
        let end = self.end_epoch.unwrap_or(epochs);
        if end > epochs {
            return Err(Error::invalid(format!(
                "pruning cannot end at epoch {end}: training runs {epochs} epoch(s)"
            )));
        }
        if self.begin_epoch >= end {
            return Err(Error::invalid(format!(
                "pruning must begin before it ends: begin epoch {}, end epoch {end}",
                self.begin_epoch
            )));
        }
        Ok(())
    }
}

/// What to do about sparsity while training; the default does nothing
/// (Keras's `fit`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SparsifyOptions {
    /// Hold every trainable weight that is exactly zero at the start at
    /// zero (masked updates).
    pub keep_sparsity: bool,
    /// Gradual magnitude pruning.
    pub prune: Option<PruneSchedule>,
    /// Masks (keep-sparsity and pruning) cover biases too.
    pub mask_bias: bool,
    /// How L1 penalties act.
    pub l1_mode: L1Mode,
}

impl SparsifyOptions {
    /// True when any option differs from Keras's plain `fit`.
    pub fn is_active(&self) -> bool {
        self.keep_sparsity || self.prune.is_some() || self.l1_mode == L1Mode::Proximal
    }

    /// Check the options against a fit of `epochs` epochs.
    pub fn validate(&self, epochs: usize) -> Result<()> {
        if let Some(p) = &self.prune {
            p.check(epochs)?;
        }
        if self.mask_bias && !self.keep_sparsity && self.prune.is_none() {
            return Err(Error::invalid(
                "masking biases needs `--keep-sparsity` or `--prune-to`",
            ));
        }
        Ok(())
    }
}

/// The fraction of exact zeros (`0.0` or `-0.0`) over all Dense and
/// convolution kernels (frozen ones included); 0 for a model without any.
pub fn kernel_sparsity(model: &Model) -> f64 {
    let (mut zeros, mut total) = (0usize, 0usize);
    for layer in &model.layers {
        if !crate::prune::has_weights(layer) {
            continue;
        }
        if let Some(d) = layer.dense() {
            zeros += d.kernel.iter().filter(|w| **w == 0.0).count();
            total += d.kernel.len();
        }
        for var in layer.op().map(|op| op.vars()).unwrap_or_default() {
            if WeightKind::from_role(var.role).is_some_and(WeightKind::is_kernel) {
                zeros += var.value.iter().filter(|w| **w == 0.0).count();
                total += var.value.len();
            }
        }
    }
    if total == 0 {
        0.0
    } else {
        zeros as f64 / total as f64
    }
}

/// The soft-threshold (proximal operator of `t·|w|`):
/// `w ← sign(w)·max(|w| − t, 0)`, in float32; thresholded weights become
/// `+0.0`. NaN stays NaN.
pub fn soft_threshold(values: &mut [f32], t: f32) {
    for w in values {
        let m = w.abs() - t;
        if m > 0.0 {
            *w = m.copysign(*w);
        } else if !w.is_nan() {
            *w = 0.0;
        }
    }
}

/// The [`StepHook`] carrying out [`SparsifyOptions`]; the column `sparsity`
/// ([`kernel_sparsity`]) is appended to every epoch's logs.
#[derive(Debug, Clone)]
pub struct Sparsifier {
    options: SparsifyOptions,
    /// Per trainable variable: masked by `--keep-sparsity` (fixed).
    keep: Vec<Option<Vec<bool>>>,
    /// Per trainable variable: the current pruning mask.
    pruned: Vec<Option<Vec<bool>>>,
    /// L1 factor per trainable variable (float32, 0 when none).
    l1: Vec<f32>,
    /// Pruning runs from update `begin` to update `end`.
    begin: usize,
    end: usize,
    /// Layer names of the variables pruning covers.
    prune_layers: Vec<String>,
}

impl Sparsifier {
    /// A hook for these options (checked against the fit when it starts).
    pub fn new(options: SparsifyOptions) -> Self {
        Sparsifier {
            options,
            keep: Vec::new(),
            pruned: Vec::new(),
            l1: Vec::new(),
            begin: 0,
            end: 0,
            prune_layers: Vec::new(),
        }
    }

    fn covers(&self, model: &Model, v: VarRef) -> bool {
        let kind = match v.kind {
            VarKind::Kernel => Some(WeightKind::Kernel),
            VarKind::Bias => Some(WeightKind::Bias),
            VarKind::Op(i) => {
                let layer = &model.layers[v.layer];
                layer
                    .op()
                    .filter(|_| crate::prune::has_weights(layer))
                    .and_then(|op| WeightKind::from_role(op.vars()[i].role))
            }
        };
        kind.is_some_and(|k| k.is_kernel() || self.options.mask_bias)
    }

    /// Recompute the pruning masks at sparsity `s` (zeroing weights).
    fn prune_to(&mut self, model: &mut Model, vars: &[VarRef], s: f64) -> Result<()> {
        if self.prune_layers.is_empty() {
            return Ok(());
        }
        let spec = PruneSpec {
            layers: Some(self.prune_layers.clone()),
            include_bias: self.options.mask_bias,
            ..PruneSpec::sparsity(s, false)
        };
        let report = prune(model, &spec)?;
        for mask in report.masks {
            let var = super::backward::var_ref(model, mask.layer, mask.var);
            if let Some(i) = vars.iter().position(|v| *v == var) {
                self.pruned[i] = Some(mask.pruned);
            }
        }
        Ok(())
    }

    /// Zero the masked weights and reset the optimizer's slots there.
    fn apply_masks(&self, model: &mut Model, optimizer: &mut Optimizer, vars: &[VarRef]) {
        for (i, &v) in vars.iter().enumerate() {
            let masks = [&self.keep[i], &self.pruned[i]];
            for mask in masks.into_iter().flatten() {
                let values = var_values_mut(model, v);
                for (w, &m) in values.iter_mut().zip(mask) {
                    if m {
                        *w = 0.0;
                    }
                }
                optimizer.reset_slots_at(i, mask);
            }
        }
    }

    fn prune_turn(&self, n: usize) -> bool {
        let Some(p) = &self.options.prune else {
            return false;
        };
        n >= self.begin
            && n <= self.end
            && ((n - self.begin).is_multiple_of(p.frequency) || n == self.end)
    }

    fn maybe_prune(&mut self, model: &mut Model, vars: &[VarRef], n: usize) -> Result<()> {
        if let Some(p) = self.options.prune
            && self.prune_turn(n)
        {
            self.prune_to(model, vars, p.sparsity_at(n, self.begin, self.end))?;
        }
        Ok(())
    }
}

impl StepHook for Sparsifier {
    fn start(
        &mut self,
        model: &mut Model,
        optimizer: &mut Optimizer,
        vars: &[VarRef],
        plan: FitPlan,
    ) -> Result<()> {
        self.options.validate(plan.epochs)?;
        self.keep = vars
            .iter()
            .map(|&v| {
                (self.options.keep_sparsity && self.covers(model, v))
                    .then(|| var_values_mut(model, v).iter().map(|w| *w == 0.0).collect())
            })
            .collect();
        self.pruned = vec![None; vars.len()];
        self.l1 = vars
            .iter()
            .map(|&v| {
                let reg = super::backward::var_regularizer(model, v).0;
                reg.map_or(0.0, |r| r.l1() as f32)
            })
            .collect();
        if let Some(p) = &self.options.prune {
            self.begin = p.begin_epoch * plan.steps_per_epoch;
            self.end = p.end_epoch.unwrap_or(plan.epochs) * plan.steps_per_epoch;
            let mut layers: Vec<String> = Vec::new();
            for v in vars {
                let name = &model.layers[v.layer].name;
                if !layers.contains(name) {
                    layers.push(name.clone());
                }
            }
            self.prune_layers = layers;
        }
        self.maybe_prune(model, vars, 0)?;
        self.apply_masks(model, optimizer, vars);
        Ok(())
    }

    fn after_update(
        &mut self,
        model: &mut Model,
        optimizer: &mut Optimizer,
        vars: &[VarRef],
        step: usize,
    ) -> Result<()> {
        if self.options.l1_mode == L1Mode::Proximal {
            let lr = optimizer.last_learning_rate();
            for (&v, &l1) in vars.iter().zip(&self.l1) {
                if l1 > 0.0 {
                    soft_threshold(var_values_mut(model, v), lr * l1);
                }
            }
        }
        self.maybe_prune(model, vars, step)?;
        self.apply_masks(model, optimizer, vars);
        Ok(())
    }

    fn epoch_end(&mut self, model: &Model, logs: &mut Logs) {
        logs.push(("sparsity".to_string(), kernel_sparsity(model) as f32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_threshold_shrinks_towards_zero() {
        let mut w = [0.5f32, -0.5, 0.05, -0.05, 0.0, -0.0, 0.1, f32::NAN];
        soft_threshold(&mut w, 0.1);
        assert_eq!(w[0], 0.4);
        assert_eq!(w[1], -0.4);
        for (i, &z) in [2usize, 3, 4, 5, 6].iter().zip([0.0f32; 5].iter()) {
            assert_eq!(w[*i].to_bits(), z.to_bits(), "{i}");
        }
        assert!(w[7].is_nan());
    }

    #[test]
    fn polynomial_schedule_matches_tfmot() {
        let s = PruneSchedule {
            initial_sparsity: 0.2,
            ..PruneSchedule::to(0.8)
        };
        // s_f + (s_i − s_f)(1 − p)³ at p = 0, 1/4, 1/2, 1, and clamped
        // outside [begin, end] (float64: within an ulp or two).
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(s.sparsity_at(10, 10, 30), 0.2);
        close(s.sparsity_at(15, 10, 30), 0.8 - 0.6 * 0.421875);
        close(s.sparsity_at(20, 10, 30), 0.8 - 0.6 * 0.125);
        assert_eq!(s.sparsity_at(30, 10, 30), 0.8);
        close(s.sparsity_at(5, 10, 30), 0.2);
        assert_eq!(s.sparsity_at(40, 10, 30), 0.8);
        // A degenerate range is the final sparsity.
        assert_eq!(s.sparsity_at(0, 10, 10), 0.8);
    }

    #[test]
    fn schedules_are_checked() {
        let ok = PruneSchedule::to(0.5);
        assert!(ok.check(3).is_ok());
        let bad = [
            PruneSchedule::to(1.5),
            PruneSchedule {
                initial_sparsity: 0.6,
                ..ok
            },
            PruneSchedule { frequency: 0, ..ok },
            PruneSchedule {
                end_epoch: Some(4),
                ..ok
            },
            PruneSchedule {
                begin_epoch: 2,
                end_epoch: Some(2),
                ..ok
            },
        ];
        for b in bad {
            assert!(b.check(3).is_err(), "{b:?}");
        }
        let opts = SparsifyOptions {
            mask_bias: true,
            ..SparsifyOptions::default()
        };
        assert!(opts.validate(1).is_err());
        assert!(!SparsifyOptions::default().is_active());
    }
}
