//! Read-only views of the compile configuration and the stored optimizer
//! state.
//!
//! Spec: `keras/src/trainers/trainer.py` (`get_compile_config`),
//! `keras/src/optimizers/base_optimizer.py` (`save_own_variables`: variable 0
//! is `iterations`, 1 is `learning_rate` unless it is a schedule, then the slot
//! variables in trainable-variable order).

use serde::Serialize;
use serde_json::Value;

use crate::archive::{H5Dataset, H5Group};

/// What a model was compiled with, as far as a summary needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompileInfo {
    /// Optimizer class (`Adam`, `SGD`, ...) or identifier.
    pub optimizer: Option<String>,
    /// The optimizer's learning rate when it is a number.
    pub learning_rate: Option<f64>,
    /// The learning-rate schedule class when the rate is a schedule.
    pub learning_rate_schedule: Option<String>,
    /// Loss identifier or class.
    pub loss: Option<String>,
    /// Metric identifiers or classes.
    pub metrics: Vec<String>,
}

/// A serialized Keras object's name: the string itself, or its `class_name`.
pub fn object_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("class_name")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// A loss, or one loss per output (`{"priority": "binary_crossentropy",
/// ...}` or a list) as `priority: binary_crossentropy, ...`.
fn loss_names(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) if !o.contains_key("class_name") => Some(
            o.iter()
                .map(|(k, l)| format!("{k}: {}", object_name(l).unwrap_or_else(|| "none".into())))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Value::Array(list) => Some(
            list.iter()
                .map(|l| object_name(l).unwrap_or_else(|| "none".into()))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => object_name(other),
    }
}

impl CompileInfo {
    /// Read the view from a `compile_config` value.
    pub fn from_config(cc: &Value) -> Self {
        let optimizer = cc.get("optimizer");
        let lr = optimizer
            .and_then(|o| o.get("config"))
            .and_then(|c| c.get("learning_rate"));
        let metrics = match cc.get("metrics") {
            Some(Value::Array(items)) => items.iter().filter_map(object_name).collect(),
            Some(v) => object_name(v).into_iter().collect(),
            None => Vec::new(),
        };
        CompileInfo {
            optimizer: optimizer.and_then(object_name),
            learning_rate: lr.and_then(Value::as_f64),
            learning_rate_schedule: lr.filter(|v| v.is_object()).and_then(object_name),
            loss: cc.get("loss").and_then(loss_names),
            metrics,
        }
    }
}

/// The optimizer variables stored under `optimizer/vars`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// The optimizer's `name` attribute (`adam`, ...).
    pub name: Option<String>,
    /// The variables `0..n` in order.
    pub variables: Vec<H5Dataset>,
}

impl OptimizerState {
    /// Read the state from a weights tree; `None` when no variables are stored.
    pub fn from_weights(weights: &H5Group) -> Option<Self> {
        let vars = weights.group("optimizer/vars")?;
        let mut variables = Vec::new();
        while let Some(ds) = vars.dataset(&variables.len().to_string()) {
            variables.push(ds.clone());
        }
        if variables.is_empty() {
            return None;
        }
        Some(OptimizerState {
            name: vars
                .attr("name")
                .and_then(|a| a.as_str())
                .map(str::to_string),
            variables,
        })
    }

    /// The step counter (`iterations`, variable 0).
    pub fn iterations(&self) -> Option<i64> {
        self.variables.first()?.scalar_i64()
    }

    /// Refuse state no optimizer can have written: a negative `iterations`
    /// (variable 0), a NaN or infinite scalar (the learning rate, variable
    /// 1, is one). Resumed, such state only shows much later, as a loss that
    /// became NaN.
    pub fn validate(&self) -> crate::Result<()> {
        let at = |i: usize| format!("optimizer/vars/{i}");
        if let Some(n) = self.iterations()
            && n < 0
        {
            return Err(crate::Error::invalid(format!(
                "the stored optimizer step count `iterations` is {n}, but it counts updates \
                 and is never negative: the optimizer state is corrupt"
            ))
            .at(at(0)));
        }
        for (i, v) in self.variables.iter().enumerate().skip(1) {
            if let Some(x) = v.scalar_f64()
                && !x.is_finite()
            {
                let what = if i == 1 {
                    "the stored learning rate (or first optimizer variable)"
                } else {
                    "a stored optimizer scalar"
                };
                return Err(crate::Error::invalid(format!(
                    "{what} is {x}, not a finite number: the optimizer state is corrupt"
                ))
                .at(at(i)));
            }
        }
        Ok(())
    }
}
