//! From a model's compile configuration (or overrides) to a ready
//! [`Trainer`], and from a trained model back to an archive Keras resumes
//! from: optimizer state in Keras's order and a matching `compile_config`.
//!
//! Spec: `keras/src/saving/saving_lib.py` (a compiled model is recompiled
//! from `compile_config` on load, then `optimizer/vars` are loaded into the
//! optimizer's variables), `keras/src/trainers/trainer.py`
//! (`get_compile_config`).

use serde_json::{Value, json};

use super::loss::Loss;
use super::metrics::metrics_from_compile_config;
use super::optimizer::Optimizer;
use super::train::{OutputHead, Trainer};
use crate::error::{Error, Result};
use crate::model::Model;

/// Command-line overrides of the compile configuration.
#[derive(Debug, Clone, Default)]
pub struct CompileOverrides {
    /// Optimizer identifier (`adam`, `sgd`, ...), replacing the compiled one.
    pub optimizer: Option<String>,
    /// Constant learning rate.
    pub learning_rate: Option<f32>,
    /// Loss identifier, replacing the compiled one.
    pub loss: Option<String>,
}

/// A trainer ready for `fit`, and what was decided on the way.
pub struct Prepared {
    /// Loss, metrics and optimizer (with restored state when possible).
    pub trainer: Trainer,
    /// Human-readable notes (state restored or not, and why).
    pub notes: Vec<String>,
}

fn compile_config(model: &Model) -> Option<&Value> {
    model
        .source()
        .config
        .get("compile_config")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
}

/// Build the trainer for `model`: loss, metrics and optimizer from the
/// compile configuration unless overridden; the optimizer state from the
/// archive when it fits the model's trainable variables. For evaluation
/// only (`for_training` false) a model without a compiled optimizer is fine.
pub fn prepare(model: &Model, o: &CompileOverrides, for_training: bool) -> Result<Prepared> {
    let cc = compile_config(model);
    let heads = if model.graph.outputs.len() > 1 {
        output_heads(model, cc, o)?
    } else {
        Vec::new()
    };
    let loss = match (
        &o.loss,
        cc.and_then(|c| c.get("loss")).filter(|v| !v.is_null()),
    ) {
        _ if !heads.is_empty() => heads[0].loss,
        (Some(name), _) => Loss::from_config(&Value::String(name.clone()))?,
        (None, Some(v)) => Loss::from_config(v).map_err(|e| e.at("compile_config.loss"))?,
        (None, None) => {
            return Err(Error::missing(
                "a loss: the model has no compiled loss; pass `--loss NAME` (e.g. `--loss mse`)",
            ));
        }
    };
    let mut optimizer = match (
        &o.optimizer,
        cc.and_then(|c| c.get("optimizer")).filter(|v| !v.is_null()),
    ) {
        (Some(name), _) => Optimizer::by_name(name)?,
        (None, Some(v)) => {
            Optimizer::from_config(v).map_err(|e| e.at("compile_config.optimizer"))?
        }
        (None, None) if !for_training => Optimizer::by_name("sgd")?,
        (None, None) => {
            return Err(Error::missing(
                "an optimizer: the model has no compiled optimizer; pass `--optimizer NAME` (e.g. `--optimizer adam`)",
            ));
        }
    };
    let width = model.output_shape().last().copied().unwrap_or(1);
    let metrics = if heads.is_empty() {
        metrics_from_compile_config(cc.unwrap_or(&Value::Null), &loss, width)?
    } else {
        Vec::new()
    };
    let mut notes = Vec::new();
    let shapes: Vec<Vec<usize>> = super::backward::trainable_variables(model)
        .into_iter()
        .map(|v| super::backward::var_shape(model, v))
        .collect();
    optimizer.build(&shapes);
    match (model.optimizer_state(), o.optimizer.is_some()) {
        (Some(_), true) => {
            notes.push("starting a new optimizer state (optimizer overridden)".into())
        }
        (Some(state), false) => match optimizer.load_state(&state.variables) {
            Ok(()) => notes.push(format!(
                "resuming the stored optimizer state at iteration {}",
                optimizer.iterations()
            )),
            Err(e) => {
                optimizer.build(&shapes);
                notes.push(format!(
                    "stored optimizer state not used ({e}); starting afresh"
                ));
            }
        },
        (None, _) => {}
    }
    if let Some(lr) = o.learning_rate {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::mismatch("a positive learning rate", lr));
        }
        optimizer.set_learning_rate(lr);
    }
    Ok(Prepared {
        trainer: Trainer {
            loss,
            metrics,
            optimizer,
            heads,
        },
        notes,
    })
}

/// The entry of a per-output setting (`loss`, `loss_weights`, `metrics`)
/// for output `slot` named `name`: a dict keyed by output name, a list in
/// output order, or one value for every output.
fn per_output<'v>(v: &'v Value, slot: usize, name: &str, outputs: usize) -> Option<&'v Value> {
    match v {
        Value::Object(map) if !map.contains_key("class_name") => map.get(name),
        Value::Array(list) if list.len() == outputs => list.get(slot),
        Value::Null => None,
        other => Some(other),
    }
}

/// One loss, weight and metric list per output of a multi-output model
/// (`keras/src/trainers/compile_utils.py`, `CompileLoss` and
/// `CompileMetrics`).
fn output_heads(
    model: &Model,
    cc: Option<&Value>,
    o: &CompileOverrides,
) -> Result<Vec<OutputHead>> {
    let g = &model.graph;
    let outputs = g.outputs.len();
    let null = Value::Null;
    let cc = cc.unwrap_or(&null);
    let loss_cfg = match &o.loss {
        Some(name) => Value::String(name.clone()),
        None => cc.get("loss").cloned().unwrap_or(Value::Null),
    };
    if loss_cfg.is_null() {
        return Err(Error::missing(
            "a loss: the model has no compiled loss; pass `--loss NAME` (e.g. `--loss mse`)",
        ));
    }
    let weights = cc.get("loss_weights").unwrap_or(&null);
    let metrics = cc.get("metrics").unwrap_or(&null);
    let mut heads = Vec::with_capacity(outputs);
    for (slot, name) in g.output_names.iter().enumerate() {
        let at = format!("compile_config.loss[`{name}`]");
        let entry = per_output(&loss_cfg, slot, name, outputs)
            .ok_or_else(|| Error::missing(format!("a loss for output `{name}`")).at(at.clone()))?;
        let loss = Loss::from_config(entry).map_err(|e| e.at(at))?;
        let weight = match per_output(weights, slot, name, outputs) {
            None => None,
            Some(w) => Some(w.as_f64().ok_or_else(|| {
                Error::mismatch(format!("a number in `loss_weights` for `{name}`"), w)
            })? as f32),
        };
        let width = g.output_shapes()[slot].last().copied().unwrap_or(1);
        let own = per_output(metrics, slot, name, outputs).cloned();
        let sub = serde_json::json!({ "metrics": own });
        let mut list = metrics_from_compile_config(&sub, &loss, width)
            .map_err(|e| e.at(format!("compile_config.metrics[`{name}`]")))?;
        for m in &mut list {
            m.name = format!("{name}_{}", m.name);
        }
        heads.push(OutputHead::new(name.clone(), loss, weight, list));
    }
    Ok(heads)
}

/// Record the trained state in the model's archive: the optimizer
/// variables, and the compile configuration when it was overridden or
/// absent, so that Keras recompiles the same optimizer and loads the state.
pub fn store(model: &mut Model, trainer: &Trainer, o: &CompileOverrides) -> Result<()> {
    let opt_config = trainer.optimizer.to_config();
    let name = opt_config
        .get("config")
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .unwrap_or(trainer.optimizer.name())
        .to_string();
    use crate::engine::backward::{VarKind, trainable_variables};
    // Slots are stored in their variable's stored type (float16 stays
    // float16).
    let state = {
        let templates: Vec<Option<&crate::archive::H5Dataset>> = trainable_variables(model)
            .iter()
            .map(|r| {
                let index = match r.kind {
                    VarKind::Kernel => 0,
                    VarKind::Bias => 1,
                    VarKind::Op(i) => i,
                };
                model.stored_variable(r.layer, index)
            })
            .collect();
        (
            trainer.optimizer.state_like(&templates),
            trainer.optimizer.inner_state_like(&templates),
        )
    };
    let (state, inner) = state;
    if let Some((inner_name, inner_state)) = inner {
        model.set_optimizer_state_at("optimizer/inner_optimizer/vars", &inner_name, inner_state)?;
    }
    model.set_optimizer_state(&name, state)?;
    let existing = compile_config(model).cloned();
    let changed = existing.is_none()
        || o.optimizer.is_some()
        || o.learning_rate.is_some()
        || o.loss.is_some();
    if changed {
        let mut cc = existing.unwrap_or_else(|| {
            json!({
                "optimizer": null, "loss": null, "loss_weights": null, "metrics": null,
                "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1,
                "jit_compile": true
            })
        });
        if cc.get("optimizer").is_none_or(Value::is_null)
            || o.optimizer.is_some()
            || o.learning_rate.is_some()
        {
            cc["optimizer"] = opt_config;
        }
        if let Some(loss) = &o.loss {
            cc["loss"] = Value::String(loss.clone());
        }
        model.set_compile_config(cc);
    }
    Ok(())
}
