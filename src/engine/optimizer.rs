//! Keras optimizers: configuration, slot state and the update step, in
//! float32 with Keras's order of operations.
//!
//! Spec: `keras/src/optimizers/base_optimizer.py` (`apply`,
//! `_backend_apply_gradients`, `_clip_gradients`, `_apply_weight_decay`,
//! `add_optimizer_variables`, `save_own_variables`) and the JAX override
//! `keras/src/backend/jax/optimizer.py` (same order without EMA or gradient
//! accumulation). One step is:
//!
//! 1. the learning rate is read (a schedule is evaluated at `iterations`);
//! 2. gradients are clipped (`clipnorm`, else `global_clipnorm`, else
//!    `clipvalue`);
//! 3. weight decay `v - v * wd * lr` is applied to every variable (Keras
//!    excludes nothing unless `exclude_from_weight_decay` was called, which is
//!    not serialized);
//! 4. the optimizer's `update_step` runs for each variable in order;
//! 5. `iterations += 1`.
//!
//! The saved state (`optimizer/vars/0..n`) is `iterations` (int32 under JAX),
//! the learning rate (float32 scalar, only when it is not a schedule), then
//! the slot variables in the order `build` creates them: for each call of
//! `add_optimizer_variables(vars, [names...])` the names are interleaved per
//! trainable variable (`kernel_momentum, kernel_velocity, bias_momentum, ...`).
//!
//! Hyperparameters are kept as the Python floats of the config (f64). Where
//! Keras computes with them in Python before they meet a tensor (`1 -
//! self.beta_1`) the f64 result is rounded to float32, otherwise the value is
//! rounded first, as JAX does with weakly typed Python scalars.
//!
//! # Matching XLA's float32 arithmetic
//!
//! The same Keras operations round differently when XLA compiles them, and
//! `model.fit` compiles its train step. [`Arithmetic`] selects which to
//! reproduce: `Compiled` (the default, `model.fit` with `jit_compile`) or
//! `Eager` (`run_eagerly=True`, or calling `optimizer.apply` directly). Both
//! were verified bit for bit against Keras 3.15.1 / JAX 0.10.2 on x86-64.
//! What XLA does on CPU, and the `rules` submodule reproduces:
//!
//! - a tensor divided by a broadcast scalar with a single use becomes a
//!   multiplication by its reciprocal (eagerly always; compiled not for
//!   Ftrl's learning rate, which has several uses);
//! - compiled: a multiply feeding an add or subtract is fused into one FMA
//!   when the product has a single use (LLVM's contraction rules), including
//!   the clipping scale recomputed inside each consumer (`g - m` becomes
//!   `fma(g, scale, -m)`);
//! - compiled: `x / sqrt(y)` becomes `x * rsqrt(y)`, XLA's `rsqrt` being the
//!   `rsqrtss` estimate plus one Newton step;
//! - compiled: chains of scalar factors are folded first (`v * wd * lr` is
//!   `v * (lr * wd)`, `g * clipnorm / max(norm, clipnorm)` is
//!   `g * (clipnorm / max(..))`) and a tensor's `pow(x, 0.5)` is `sqrt(x)`.
//!
//! Not reproduced: the order in which XLA sums the squares for `clipnorm` and
//! `global_clipnorm` (a tree of partial sums); kerasrs sums in f64, so the
//! norm can differ by an ulp.

mod config;
mod rules;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use super::schedule::Arithmetic;
use super::schedule::Schedule;
use crate::archive::{H5Dataset, NumericType};
use crate::error::{Error, Result};

/// A learning rate: constant or a schedule evaluated at `iterations` (as
/// Keras does in its `learning_rate` property).
#[derive(Debug, Clone, PartialEq)]
pub enum LearningRate {
    /// A float32 variable (saved as `optimizer/vars/1`).
    Constant(f32),
    /// A schedule (not saved as a variable).
    Schedule(Schedule),
}

/// The algorithm and its own hyperparameters.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        amsgrad: bool,
        /// `AdamW`: the same update; only the class and default weight decay
        /// differ.
        decoupled: bool,
    },
    RmsProp {
        rho: f64,
        momentum: f64,
        epsilon: f64,
        centered: bool,
    },
    Adagrad {
        initial_accumulator_value: f64,
        epsilon: f64,
    },
    Adamax {
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
    },
    Nadam {
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
    },
    Adadelta {
        rho: f64,
        epsilon: f64,
    },
    Lion {
        beta_1: f64,
        beta_2: f64,
    },
    Ftrl {
        learning_rate_power: f64,
        initial_accumulator_value: f64,
        l1_regularization_strength: f64,
        l2_regularization_strength: f64,
        l2_shrinkage_regularization_strength: f64,
        beta: f64,
    },
}

/// Which of `clipnorm`, `global_clipnorm`, `clipvalue` is set (Keras allows
/// at most one).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Clip {
    None,
    Norm(f64),
    GlobalNorm(f64),
    Value(f64),
}

/// A Keras optimizer with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    kind: Kind,
    /// The instance `name` (`adam`, `adam_1`, ...).
    instance_name: String,
    learning_rate: LearningRate,
    /// True once `set_learning_rate` replaced the configured rate.
    lr_overridden: bool,
    weight_decay: Option<f64>,
    clip: Clip,
    ema_momentum: f64,
    ema_overwrite_frequency: Value,
    loss_scale_factor: Option<f64>,
    iterations: i64,
    /// The stored `iterations` was int64 (TensorFlow backend): write it back so.
    iterations_int64: bool,
    shapes: Vec<Vec<usize>>,
    /// `slots[variable][k]`: the k-th slot name of [`Optimizer::slot_groups`]
    /// (flattened) for that trainable variable.
    slots: Vec<Vec<Vec<f32>>>,
    /// Nadam's `_u_product` (saved last).
    u_product: f32,
    built: bool,
    last_lr: Option<f32>,
    arithmetic: Arithmetic,
    /// A `LossScaleOptimizer` wrapping this one.
    loss_scale: Option<Box<LossScale>>,
}

/// The state of Keras's `LossScaleOptimizer`
/// (`keras/src/optimizers/loss_scale_optimizer.py`) around the optimizer it
/// wraps. The loss is multiplied by `dynamic_scale` (a power of two) and the
/// gradients divided by it, which is exact in floating point short of
/// overflow; so kerasrs computes unscaled gradients and only reproduces the
/// state: after a step with finite scaled gradients the counter counts up
/// and the scale doubles every `dynamic_growth_steps` steps; a step whose
/// scaled gradients overflow is skipped and halves the scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScale {
    /// The serialized wrapper, written back with the current inner config.
    config: Value,
    /// Its instance name (the `optimizer/vars` group's `name`).
    name: String,
    growth_steps: i64,
    step_counter: i64,
    dynamic_scale: f32,
    /// The wrapper's own `iterations` and learning rate (Keras never
    /// updates them: its `stateless_apply` returns them unchanged).
    own: Vec<H5Dataset>,
}

impl LossScale {
    pub(crate) fn new(config: Value, name: String, initial_scale: f32, growth_steps: i64) -> Self {
        LossScale {
            config,
            name,
            growth_steps,
            step_counter: 0,
            dynamic_scale: initial_scale,
            own: vec![
                H5Dataset {
                    datatype: hdf5_pure::make_i32_type(),
                    shape: Vec::new(),
                    raw: 0i32.to_le_bytes().to_vec(),
                    attrs: Vec::new(),
                },
                H5Dataset::from_f32(&[], &[0.0]),
            ],
        }
    }

    /// The wrapper's four leading variables: `iteration`, `learning_rate`,
    /// `step_counter`, `dynamic_scale`.
    fn state(&self) -> Vec<H5Dataset> {
        let mut out = self.own.clone();
        out.push(H5Dataset {
            datatype: hdf5_pure::make_i32_type(),
            shape: Vec::new(),
            raw: (self.step_counter as i32).to_le_bytes().to_vec(),
            attrs: Vec::new(),
        });
        out.push(H5Dataset::from_f32(&[], &[self.dynamic_scale]));
        out
    }

    /// Whether every gradient stays finite once scaled (`check_finite`).
    fn finite(&self, grads: &[Vec<f32>]) -> bool {
        grads
            .iter()
            .all(|g| g.iter().all(|&x| (x * self.dynamic_scale).is_finite()))
    }
}

/// Variables with at least this many values are updated on two threads.
const PARALLEL_UPDATE: usize = 1 << 13;

impl Optimizer {
    /// The optimizer identifiers kerasrs supports (Keras's
    /// `keras.optimizers.get` names, case-insensitive).
    pub const NAMES: &'static [&'static str] = &[
        "adadelta", "adagrad", "adam", "adamax", "adamw", "ftrl", "lion", "nadam", "rmsprop", "sgd",
    ];

    /// From `compile_config["optimizer"]`: string identifier ("adam",
    /// "sgd", ...) or serialized object.
    pub fn from_config(v: &Value) -> Result<Self> {
        config::from_config(v)
    }

    /// Default-configured optimizer by name (for `--optimizer NAME` when the
    /// archive is uncompiled). Case-insensitive, as in Keras.
    pub fn by_name(name: &str) -> Result<Self> {
        config::from_parts(name, None)
    }

    /// The serialized object Keras writes in compile_config (so a changed
    /// learning rate or a new optimizer is recorded).
    pub fn to_config(&self) -> Value {
        config::to_config(self)
    }

    /// The identifier of the algorithm, one of [`Optimizer::NAMES`].
    pub fn name(&self) -> &'static str {
        match &self.kind {
            Kind::Sgd { .. } => "sgd",
            Kind::Adam {
                decoupled: false, ..
            } => "adam",
            Kind::Adam {
                decoupled: true, ..
            } => "adamw",
            Kind::RmsProp { .. } => "rmsprop",
            Kind::Adagrad { .. } => "adagrad",
            Kind::Adamax { .. } => "adamax",
            Kind::Nadam { .. } => "nadam",
            Kind::Adadelta { .. } => "adadelta",
            Kind::Lion { .. } => "lion",
            Kind::Ftrl { .. } => "ftrl",
        }
    }

    /// The Keras class name (`Adam`, `SGD`, `RMSprop`, ...).
    pub fn class_name(&self) -> &'static str {
        config::class_name(&self.kind)
    }

    /// The instance name from the config (`adam`, `adam_1`, ...).
    pub fn instance_name(&self) -> &str {
        &self.instance_name
    }

    /// The step counter (`iterations`).
    pub fn iterations(&self) -> i64 {
        self.iterations
    }

    /// The configured learning rate.
    pub fn learning_rate(&self) -> &LearningRate {
        &self.learning_rate
    }

    /// Current learning rate (the schedule evaluated at iterations, or the
    /// constant).
    pub fn current_learning_rate(&self) -> f32 {
        match &self.learning_rate {
            LearningRate::Constant(lr) => *lr,
            LearningRate::Schedule(s) => s.evaluate(self.iterations, self.arithmetic),
        }
    }

    /// How multiply-adds round: [`Arithmetic::Compiled`] (the default)
    /// reproduces `model.fit`'s XLA-compiled train step, [`Arithmetic::Eager`]
    /// an eager `optimizer.apply` (or `run_eagerly=True`).
    pub fn set_arithmetic(&mut self, arithmetic: Arithmetic) {
        self.arithmetic = arithmetic;
    }

    /// The arithmetic mode (see [`Optimizer::set_arithmetic`]).
    pub fn arithmetic(&self) -> Arithmetic {
        self.arithmetic
    }

    /// Override the learning rate with a constant (CLI `--learning-rate`).
    ///
    /// A schedule is replaced, so the state gains the learning-rate variable
    /// (as a Keras optimizer created with a float rate has). A later
    /// [`Optimizer::load_state`] keeps this rate instead of the stored one
    /// and accepts state saved with or without a learning-rate variable.
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = LearningRate::Constant(lr);
        self.lr_overridden = true;
    }

    /// True once [`Optimizer::build`] ran.
    pub fn is_built(&self) -> bool {
        self.built
    }

    /// Create zeroed slot variables for trainable variables with these
    /// shapes (Keras `build`; accumulators start at
    /// `initial_accumulator_value`). Building again with the same shapes
    /// keeps the state, as Keras's `build` returns early once built.
    pub fn build(&mut self, shapes: &[Vec<usize>]) {
        if self.built && self.shapes == shapes {
            return;
        }
        let inits: Vec<f32> = self
            .slot_names()
            .iter()
            .map(|name| self.initial_value(name))
            .collect();
        self.slots = shapes
            .iter()
            .map(|shape| {
                let n: usize = shape.iter().product();
                inits.iter().map(|&init| vec![init; n]).collect()
            })
            .collect();
        self.shapes = shapes.to_vec();
        self.u_product = 1.0;
        self.built = true;
    }

    /// Reset the slot variables of trainable variable `var` to their
    /// initial values (0, or `initial_accumulator_value` for Adagrad's and
    /// Ftrl's accumulators) where `mask` is true: those positions look as if
    /// the optimizer had never seen them (used after pruning).
    pub fn reset_slots_at(&mut self, var: usize, mask: &[bool]) {
        let inits: Vec<f32> = self
            .slot_names()
            .iter()
            .map(|name| self.initial_value(name))
            .collect();
        let Some(slots) = self.slots.get_mut(var) else {
            return;
        };
        for (slot, init) in slots.iter_mut().zip(inits) {
            for (v, &m) in slot.iter_mut().zip(mask) {
                if m {
                    *v = init;
                }
            }
        }
    }

    /// The calls of `add_optimizer_variables` in `build`, in order: each a
    /// list of slot names, interleaved per trainable variable.
    fn slot_groups(&self) -> Vec<&'static [&'static str]> {
        match &self.kind {
            Kind::Sgd { momentum, .. } if *momentum != 0.0 => vec![&["momentum"]],
            Kind::Sgd { .. } => vec![],
            Kind::Adam { amsgrad, .. } => {
                let mut g: Vec<&'static [&'static str]> = vec![&["momentum", "velocity"]];
                if *amsgrad {
                    g.push(&["velocity_hat"]);
                }
                g
            }
            Kind::RmsProp {
                momentum, centered, ..
            } => {
                let mut g: Vec<&'static [&'static str]> = vec![&["velocity"]];
                if *momentum > 0.0 {
                    g.push(&["momentum"]);
                }
                if *centered {
                    g.push(&["average_gradient"]);
                }
                g
            }
            Kind::Adagrad { .. } => vec![&["accumulator"]],
            Kind::Adamax { .. } => vec![&["momentum", "norm"]],
            Kind::Nadam { .. } => vec![&["momentum", "velocity"]],
            Kind::Adadelta { .. } => vec![&["accumulated_grad", "accumulated_delta_var"]],
            Kind::Lion { .. } => vec![&["momentum"]],
            Kind::Ftrl { .. } => vec![&["accumulator", "linear"]],
        }
    }

    /// Initial value of slot `name`: `initial_accumulator_value` for the
    /// accumulators of Adagrad and Ftrl (`initializers.Constant`), else zero.
    fn initial_value(&self, name: &str) -> f32 {
        match (&self.kind, name) {
            (
                Kind::Adagrad {
                    initial_accumulator_value,
                    ..
                }
                | Kind::Ftrl {
                    initial_accumulator_value,
                    ..
                },
                "accumulator",
            ) => *initial_accumulator_value as f32,
            _ => 0.0,
        }
    }

    /// Slot names flattened in per-variable order.
    fn slot_names(&self) -> Vec<&'static str> {
        self.slot_groups().concat()
    }

    /// Number of variables before the slots (iterations, learning rate).
    fn leading_vars(&self) -> usize {
        match self.learning_rate {
            LearningRate::Constant(_) => 2,
            LearningRate::Schedule(_) => 1,
        }
    }

    /// Number of variables after the slots (Nadam's `u_product`).
    fn trailing_vars(&self) -> usize {
        usize::from(matches!(self.kind, Kind::Nadam { .. }))
    }

    /// For each saved slot variable in Keras's order: (variable index, slot k).
    fn slot_order(&self) -> Vec<(usize, usize)> {
        let mut order = Vec::new();
        let mut base = 0;
        for group in self.slot_groups() {
            for var in 0..self.shapes.len() {
                for j in 0..group.len() {
                    order.push((var, base + j));
                }
            }
            base += group.len();
        }
        order
    }

    /// For each saved variable (`optimizer/vars/i`, in Keras's order) the
    /// trainable variable it is a slot of (`None` for `iterations`, the
    /// learning rate and Nadam's `u_product`), as [`Optimizer::load_state`]
    /// reads them.
    pub fn slot_variables(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.leading_vars()];
        out.extend(self.slot_order().into_iter().map(|(var, _)| Some(var)));
        out.extend(std::iter::repeat_n(None, self.trailing_vars()));
        out
    }

    /// The names Keras gives the saved variables, given the trainable
    /// variables' paths (`dense/kernel`): `iteration`, `learning_rate`,
    /// `dense_kernel_momentum`, ... (without the optimizer name prefix).
    pub fn variable_names(&self, variable_paths: &[&str]) -> Vec<String> {
        let mut names = vec!["iteration".to_string()];
        if self.leading_vars() == 2 {
            names.push("learning_rate".to_string());
        }
        let slot_names = self.slot_names();
        for (var, k) in self.slot_order() {
            let path = variable_paths.get(var).copied().unwrap_or("var");
            names.push(format!("{}_{}", path.replace('/', "_"), slot_names[k]));
        }
        if self.trailing_vars() == 1 {
            names.push("variable".to_string());
        }
        names
    }

    /// Restore state from the archive's `optimizer/vars` datasets (index
    /// order). Errors (naming the variable index, expected and found shape)
    /// if the count or shapes don't fit the built variables.
    ///
    /// As in Keras (`load_own_variables`), a store holding only the
    /// variables of an unbuilt optimizer (`iterations` and the learning rate,
    /// as saved by a compiled but never fitted model) is skipped, leaving the
    /// state as it is. The stored learning rate replaces the configured one
    /// unless [`Optimizer::set_learning_rate`] was called.
    pub fn load_state(&mut self, vars: &[H5Dataset]) -> Result<()> {
        if let Some(ls) = self.loss_scale.take() {
            let result = self.load_loss_scale_state(*ls, vars);
            return result;
        }
        self.load_own_state(vars)
    }

    /// A `LossScaleOptimizer`'s store: its four variables, then the inner
    /// optimizer's (a wrapper never fitted stores only two).
    fn load_loss_scale_state(&mut self, mut ls: LossScale, vars: &[H5Dataset]) -> Result<()> {
        let at = |i: usize| format!("optimizer/vars/{i}");
        if vars.len() <= 2 {
            self.loss_scale = Some(Box::new(ls));
            return Ok(());
        }
        let outcome = (|| {
            if vars.len() < 4 {
                return Err(Error::mismatch(
                    "a LossScaleOptimizer's iteration, learning_rate, step_counter and \
                     dynamic_scale before the inner optimizer's variables",
                    format!("{} variables", vars.len()),
                )
                .at("optimizer/vars"));
            }
            let counter = vars[2]
                .scalar_i64()
                .filter(|n| (0..ls.growth_steps).contains(n))
                .ok_or_else(|| {
                    Error::mismatch(
                        format!("a step counter in 0..{}", ls.growth_steps),
                        vars[2].dtype_name(),
                    )
                    .at(at(2))
                })?;
            let scale = vars[3]
                .to_f32()
                .ok()
                .and_then(|v| v.first().copied())
                .filter(|s| s.is_finite() && *s > 0.0 && vars[3].len() == 1)
                .ok_or_else(|| {
                    Error::mismatch("a positive finite dynamic_scale scalar", "another value")
                        .at(at(3))
                })?;
            self.load_own_state(&vars[4..]).map_err(|e| {
                let msg = e
                    .to_string()
                    .replace("optimizer/vars/", "inner optimizer/vars/");
                Error::invalid(msg)
            })?;
            ls.step_counter = counter;
            ls.dynamic_scale = scale;
            ls.own = vars[..2].to_vec();
            Ok(())
        })();
        self.loss_scale = Some(Box::new(ls));
        outcome
    }

    fn load_own_state(&mut self, vars: &[H5Dataset]) -> Result<()> {
        if !self.built {
            return Err(Error::invalid(
                "the optimizer must be built before its state is loaded",
            ));
        }
        let slots = self.slot_order();
        let tail = self.trailing_vars();
        let lead = if self.lr_overridden {
            // Either layout: the count tells which one was saved.
            if vars.len() == 1 + slots.len() + tail || vars.len() == 1 {
                1
            } else {
                2
            }
        } else {
            self.leading_vars()
        };
        let expected = lead + slots.len() + tail;
        if vars.len() != expected {
            if vars.len() == lead && expected != lead {
                return Ok(());
            }
            return Err(Error::mismatch(
                format!(
                    "{expected} optimizer variables for {} ({})",
                    self.class_name(),
                    self.layout_summary(lead)
                ),
                format!("{} variables", vars.len()),
            )
            .at("optimizer/vars"));
        }
        let at = |i: usize| format!("optimizer/vars/{i}");
        // Validate everything before changing anything.
        let iterations = scalar_check(&vars[0], 0)?;
        let iterations_value = match iterations.numeric_type() {
            Some(NumericType::Int(_) | NumericType::UInt(_)) => iterations.scalar_i64(),
            _ => None,
        }
        .ok_or_else(|| {
            Error::mismatch("an integer `iterations` scalar", iterations.dtype_name()).at(at(0))
        })?;
        let lr = if lead == 2 {
            let ds = scalar_check(&vars[1], 1)?;
            let lr = ds.to_f32().map_err(|e| e.at(at(1)))?[0];
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(Error::mismatch("a finite, non-negative learning rate", lr).at(at(1)));
            }
            Some(lr)
        } else {
            None
        };
        let mut values = Vec::with_capacity(slots.len());
        for (j, &(var, _)) in slots.iter().enumerate() {
            let i = lead + j;
            let ds = &vars[i];
            let shape: Vec<u64> = self.shapes[var].iter().map(|&d| d as u64).collect();
            if ds.shape != shape {
                return Err(Error::mismatch(
                    format!("shape {:?}", self.shapes[var]),
                    format!("shape {:?}", ds.shape),
                )
                .at(at(i)));
            }
            values.push(ds.to_f32().map_err(|e| e.at(at(i)))?);
        }
        let u_product = if tail == 1 {
            let i = lead + slots.len();
            Some(
                scalar_check(&vars[i], i)?
                    .to_f32()
                    .map_err(|e| e.at(at(i)))?[0],
            )
        } else {
            None
        };

        self.iterations = iterations_value;
        self.iterations_int64 = iterations.numeric_type() == Some(NumericType::Int(8));
        if let Some(lr) = lr
            && !self.lr_overridden
        {
            self.learning_rate = LearningRate::Constant(lr);
        }
        for (&(var, k), v) in slots.iter().zip(values) {
            self.slots[var][k] = v;
        }
        if let Some(u) = u_product {
            self.u_product = u;
        }
        Ok(())
    }

    fn layout_summary(&self, lead: usize) -> String {
        let mut parts = vec!["iterations".to_string()];
        if lead == 2 {
            parts.push("learning_rate".into());
        }
        let names = self.slot_names();
        if !names.is_empty() {
            parts.push(format!(
                "{} per trainable variable x {} variables",
                names.join(", "),
                self.shapes.len()
            ));
        }
        if self.trailing_vars() == 1 {
            parts.push("u_product".into());
        }
        parts.join(", ")
    }

    /// The state as Keras saves it: datasets for `optimizer/vars/0..n` in
    /// Keras's order: `iterations` as an int32 scalar (what Keras 3 writes
    /// under JAX; int64 if the loaded state had int64), the learning rate as
    /// a float32 scalar unless it is a schedule, then the float32 slots.
    pub fn state(&self) -> Vec<H5Dataset> {
        self.state_like(&[])
    }

    /// [`Optimizer::state`] with each slot stored in the type of its
    /// variable as the archive stores it (`templates[v]`, in
    /// trainable-variable order): Keras creates slots with their variable's
    /// dtype, so a float16 model's Adam moments are float16 (bfloat16:
    /// opaque data tagged `bfloat16`).
    pub fn state_like(&self, templates: &[Option<&H5Dataset>]) -> Vec<H5Dataset> {
        let mut out = Vec::new();
        if let Some(ls) = &self.loss_scale {
            out.extend(ls.state());
        }
        out.extend(self.own_state_like(templates));
        out
    }

    /// For a `LossScaleOptimizer`, the inner optimizer's instance name and
    /// its variables, which Keras saves a second time under
    /// `optimizer/inner_optimizer/vars` (and loads last, so both copies must
    /// agree).
    pub fn inner_state_like(
        &self,
        templates: &[Option<&H5Dataset>],
    ) -> Option<(String, Vec<H5Dataset>)> {
        self.loss_scale.as_ref()?;
        Some((self.instance_name.clone(), self.own_state_like(templates)))
    }

    fn own_state_like(&self, templates: &[Option<&H5Dataset>]) -> Vec<H5Dataset> {
        let mut out = Vec::with_capacity(self.leading_vars() + self.slot_order().len() + 1);
        out.push(if self.iterations_int64 {
            H5Dataset {
                datatype: hdf5_pure::make_i64_type(),
                shape: Vec::new(),
                raw: self.iterations.to_le_bytes().to_vec(),
                attrs: Vec::new(),
            }
        } else {
            H5Dataset {
                datatype: hdf5_pure::make_i32_type(),
                shape: Vec::new(),
                // JAX's int32 counter wraps the same way.
                raw: (self.iterations as i32).to_le_bytes().to_vec(),
                attrs: Vec::new(),
            }
        });
        if let LearningRate::Constant(lr) = self.learning_rate {
            out.push(H5Dataset::from_f32(&[], &[lr]));
        }
        for (var, k) in self.slot_order() {
            let shape: Vec<u64> = self.shapes[var].iter().map(|&d| d as u64).collect();
            let low = templates.get(var).copied().flatten().filter(|t| {
                matches!(t.numeric_type(), Some(NumericType::F16 | NumericType::BF16))
                    && t.shape == shape
            });
            let stored = low.and_then(|t| {
                let mut d = t.clone();
                d.set_f32(&self.slots[var][k]).ok().map(|()| d)
            });
            out.push(stored.unwrap_or_else(|| H5Dataset::from_f32(&shape, &self.slots[var][k])));
        }
        if self.trailing_vars() == 1 {
            out.push(H5Dataset::from_f32(&[], &[self.u_product]));
        }
        out
    }

    /// One optimizer step over all trainable variables (flat f32 slices, in
    /// trainable-variable order, with `grads` of the same lengths; `shapes`
    /// as given to build): clipping, weight decay, update, iterations += 1 —
    /// in Keras's order. Gradients may be modified in place (clipping).
    ///
    /// # Panics
    /// If the optimizer is not built or the slices do not match the shapes
    /// given to [`Optimizer::build`].
    pub fn apply(&mut self, params: &mut [&mut [f32]], grads: &mut [Vec<f32>]) {
        assert!(self.built, "optimizer applied before `build`");
        assert!(
            params.len() == self.shapes.len() && grads.len() == self.shapes.len(),
            "optimizer built for {} variables, applied to {} variables and {} gradients",
            self.shapes.len(),
            params.len(),
            grads.len()
        );
        for (i, shape) in self.shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            assert!(
                params[i].len() == n && grads[i].len() == n,
                "variable {i}: optimizer built for shape {shape:?} ({n} values), \
                 got {} values and {} gradients",
                params[i].len(),
                grads[i].len()
            );
        }
        // A LossScaleOptimizer skips a step whose scaled gradients
        // overflow, halving the scale; otherwise it counts the step and
        // doubles the scale every `dynamic_growth_steps` (its
        // `_stateless_handle_finite_grads`, after the inner update).
        if let Some(ls) = self.loss_scale.as_deref_mut() {
            if !ls.finite(grads) {
                ls.step_counter = 0;
                ls.dynamic_scale *= 0.5;
                return;
            }
            if ls.step_counter == ls.growth_steps - 1 {
                ls.step_counter = 0;
                ls.dynamic_scale *= 2.0;
            } else {
                ls.step_counter += 1;
            }
        }
        // `loss_scale_factor` is only accepted as a power of two, for which
        // scaling the loss and unscaling the gradients is exact: no-op here.
        let lr = self.current_learning_rate();
        let step = rules::Step::new(self.iterations, lr, self.arithmetic);
        let scales = rules::clip_gradients(self.clip, self.arithmetic, grads);
        if let Some(wd) = self.weight_decay {
            rules::apply_weight_decay(wd, &step, params);
        }
        if let Kind::Nadam { beta_1, .. } = self.kind {
            self.u_product = rules::nadam_u_product(self.u_product, beta_1, &step);
        }
        // Every rule is elementwise, so a large variable is updated in two
        // halves, one on each thread; the calling thread also updates the
        // small variables while the worker does its half of the first large
        // one (the order of independent updates does not matter).
        let (kind, u_product, step) = (&self.kind, self.u_product, &step);
        let update = |p: &mut [f32], g: &[f32], scale: Option<f32>, slots: &mut [&mut [f32]]| {
            rules::update_step(
                kind,
                step,
                u_product,
                p,
                rules::Grad { raw: g, scale },
                slots,
            )
        };
        type Var<'v> = (&'v mut [f32], &'v [f32], Option<f32>, Vec<&'v mut [f32]>);
        let (large, mut small): (Vec<Var<'_>>, Vec<Var<'_>>) = params
            .iter_mut()
            .zip(grads.iter())
            .zip(&mut self.slots)
            .zip(&scales)
            .map(|(((p, g), slots), &scale)| {
                let slots: Vec<&mut [f32]> = slots.iter_mut().map(Vec::as_mut_slice).collect();
                (&mut **p, g.as_slice(), scale, slots)
            })
            .partition(|(p, ..)| p.len() >= PARALLEL_UPDATE && super::pool::parallel());
        for (p, g, scale, slots) in large {
            let mid = p.len() / 2;
            let (p1, p2) = p.split_at_mut(mid);
            let (g1, g2) = g.split_at(mid);
            let (mut s1, mut s2): (Vec<&mut [f32]>, Vec<&mut [f32]>) =
                slots.into_iter().map(|s| s.split_at_mut(mid)).unzip();
            // The first large variable takes the small ones along.
            let small = std::mem::take(&mut small);
            super::pool::join(
                || {
                    update(p1, g1, scale, &mut s1);
                    for (p, g, scale, mut slots) in small {
                        update(p, g, scale, &mut slots);
                    }
                },
                || update(p2, g2, scale, &mut s2),
            );
        }
        for (p, g, scale, mut slots) in small {
            update(p, g, scale, &mut slots);
        }
        // Leave the clipped gradients in `grads`.
        for (g, scale) in grads.iter_mut().zip(scales) {
            if let Some(s) = scale {
                g.iter_mut().for_each(|x| *x *= s);
            }
        }
        self.iterations += 1;
        self.last_lr = Some(lr);
    }

    /// The per-step effective learning rate used by the last apply (for an L1
    /// proximal step later); the current rate before the first apply.
    pub fn last_learning_rate(&self) -> f32 {
        self.last_lr.unwrap_or_else(|| self.current_learning_rate())
    }
}

/// Check that a stored variable is a scalar (shape `[]`).
fn scalar_check(ds: &H5Dataset, i: usize) -> Result<&H5Dataset> {
    if ds.shape.is_empty() {
        Ok(ds)
    } else {
        Err(Error::mismatch("shape []", format!("shape {:?}", ds.shape))
            .at(format!("optimizer/vars/{i}")))
    }
}
