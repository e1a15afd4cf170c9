//! Weight constraints, applied after each optimizer update.
//!
//! Spec: `keras/src/constraints/constraints.py` (Keras 3.15) and
//! `keras/src/optimizers/base_optimizer.py` (`apply`: after the update,
//! `variable.assign(variable.constraint(variable))`).

use ndarray::{ArrayViewMutD, Axis};
use serde_json::Value;

use crate::error::{Error, Result};

/// `backend.epsilon()`.
const EPSILON: f32 = 1e-7;

/// A Keras weight constraint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Constraint {
    /// `w * clip(‖w‖, 0, max_value) / (ε + ‖w‖)` with norms along `axis`.
    MaxNorm {
        /// Largest norm.
        max_value: f32,
        /// Axis of the norms.
        axis: isize,
    },
    /// `max(w, 0)`.
    NonNeg,
    /// The base class `Constraint`: leaves weights unchanged.
    Identity,
    /// `w / (ε + ‖w‖)`.
    UnitNorm {
        /// Axis of the norms.
        axis: isize,
    },
    /// `w * (rate·clip(‖w‖, min, max) + (1 − rate)·‖w‖) / (ε + ‖w‖)`.
    MinMaxNorm {
        /// Smallest norm.
        min_value: f32,
        /// Largest norm.
        max_value: f32,
        /// Interpolation rate.
        rate: f32,
        /// Axis of the norms.
        axis: isize,
    },
}

/// Identifiers accepted (class names and snake case, as `constraints.get`).
pub const CONSTRAINT_NAMES: &[&str] = &[
    "MaxNorm",
    "max_norm",
    "NonNeg",
    "non_neg",
    "UnitNorm",
    "unit_norm",
    "MinMaxNorm",
    "min_max_norm",
    "Constraint",
    "constraint",
];

impl Constraint {
    /// Parse a layer config's constraint value (`null`, identifier or object).
    pub fn from_config(value: &Value) -> Result<Option<Self>> {
        let (class, config) = match value {
            Value::Null => return Ok(None),
            Value::String(s) => (s.as_str(), None),
            Value::Object(o) => (
                o.get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::missing("constraint `class_name`"))?,
                o.get("config"),
            ),
            other => return Err(Error::mismatch("a constraint identifier or object", other)),
        };
        let num = |key: &str, default: f64| -> Result<f32> {
            match config.and_then(|c| c.get(key)) {
                None | Some(Value::Null) => Ok(default as f32),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .map(|x| x as f32)
                    .ok_or_else(|| Error::mismatch(format!("a number for `{key}`"), v)),
            }
        };
        let axis = || -> Result<isize> {
            match config.and_then(|c| c.get("axis")) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v.as_i64().map(|a| a as isize).ok_or_else(|| {
                    Error::unsupported("constraint axis", v.to_string(), &["an integer"])
                }),
            }
        };
        Ok(Some(match class {
            "MaxNorm" | "max_norm" => Constraint::MaxNorm {
                max_value: num("max_value", 2.0)?,
                axis: axis()?,
            },
            "NonNeg" | "non_neg" => Constraint::NonNeg,
            "Constraint" | "constraint" => Constraint::Identity,
            "UnitNorm" | "unit_norm" => Constraint::UnitNorm { axis: axis()? },
            "MinMaxNorm" | "min_max_norm" => Constraint::MinMaxNorm {
                min_value: num("min_value", 0.0)?,
                max_value: num("max_value", 1.0)?,
                rate: num("rate", 1.0)?,
                axis: axis()?,
            },
            other => return Err(Error::unsupported("constraint", other, CONSTRAINT_NAMES)),
        }))
    }

    /// The Keras class name.
    pub fn name(self) -> &'static str {
        match self {
            Constraint::MaxNorm { .. } => "MaxNorm",
            Constraint::NonNeg => "NonNeg",
            Constraint::Identity => "Constraint",
            Constraint::UnitNorm { .. } => "UnitNorm",
            Constraint::MinMaxNorm { .. } => "MinMaxNorm",
        }
    }

    /// Apply the constraint to `w` in place.
    pub fn apply(self, mut w: ArrayViewMutD<'_, f32>) -> Result<()> {
        let scale_by_norm =
            |w: &mut ArrayViewMutD<'_, f32>, axis: isize, f: &dyn Fn(f32) -> f32| {
                let ndim = w.ndim() as isize;
                let ax = if axis < 0 { axis + ndim } else { axis };
                if ax < 0 || ax >= ndim {
                    return Err(Error::mismatch(
                        format!("a constraint axis within rank {ndim}"),
                        axis,
                    ));
                }
                let ax = Axis(ax as usize);
                let norms = w.map_axis(ax, |lane| lane.iter().map(|v| v * v).sum::<f32>().sqrt());
                for (mut lane, &n) in w.lanes_mut(ax).into_iter().zip(norms.iter()) {
                    let factor = f(n);
                    lane.mapv_inplace(|v| v * factor);
                }
                Ok(())
            };
        match self {
            Constraint::Identity => Ok(()),
            Constraint::NonNeg => {
                w.mapv_inplace(|v| v.max(0.0));
                Ok(())
            }
            Constraint::MaxNorm { max_value, axis } => {
                scale_by_norm(&mut w, axis, &|n| n.clamp(0.0, max_value) / (EPSILON + n))
            }
            Constraint::UnitNorm { axis } => scale_by_norm(&mut w, axis, &|n| 1.0 / (EPSILON + n)),
            Constraint::MinMaxNorm {
                min_value,
                max_value,
                rate,
                axis,
            } => scale_by_norm(&mut w, axis, &|n| {
                (rate * n.clamp(min_value, max_value) + (1.0 - rate) * n) / (EPSILON + n)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn max_norm_caps_columns() {
        let c = Constraint::from_config(&serde_json::json!({
            "class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 0}
        }))
        .unwrap()
        .unwrap();
        let mut w = array![[3.0f32, 0.1], [4.0, 0.0]].into_dyn();
        c.apply(w.view_mut()).unwrap();
        // Column 0 has norm 5 → scaled to norm 1; column 1 (norm 0.1) unchanged.
        assert!((w[[0, 0]] - 0.6).abs() < 1e-6 && (w[[1, 0]] - 0.8).abs() < 1e-6);
        assert!((w[[0, 1]] - 0.1).abs() < 1e-6);
    }

    #[test]
    fn non_neg_and_unknown() {
        let mut w = array![-1.0f32, 2.0].into_dyn();
        Constraint::NonNeg.apply(w.view_mut()).unwrap();
        assert_eq!(w, array![0.0f32, 2.0].into_dyn());
        assert!(Constraint::from_config(&serde_json::json!("radial")).is_err());
    }
}
