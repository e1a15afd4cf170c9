//! Preprocessing layers saved inside models: `Rescaling` and
//! `Normalization`.
//!
//! Spec: `keras/src/layers/preprocessing/normalization.py` (`build`: the
//! kept `axis` values; `mean`/`variance` from the config, broadcast over the
//! kept axes, or the adapted variables `mean`, `variance` (float32) and
//! `count` (int64) of the kept axes' shape; `call`: `(x - mean) /
//! maximum(sqrt(variance), epsilon)` with `epsilon = 1e-7`, or with
//! `invert` `mean + x * maximum(sqrt(variance), epsilon)`, in float32).
//! Spec of `Rescaling`: `keras/src/layers/preprocessing/rescaling.py` (`call`:
//! `cast(inputs) * scale + offset`, `scale` and `offset` floats or arrays
//! broadcast against the channels-last input; `get_config` serializes
//! arrays as `__numpy__` objects). Under `jit_compile` XLA contracts the
//! product and the sum into one fused multiply-add, which is what kerasrs
//! computes.

use ndarray::{ArrayD, Zip};
use serde_json::Value;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, Var, single_shape};
use crate::error::{Error, Result};

/// `Rescaling(scale, offset)`.
#[derive(Debug, Clone)]
pub struct Rescaling {
    scale: Vec<f32>,
    offset: Vec<f32>,
}

/// A float, a list of floats, or a serialized numpy array, as float32.
fn floats(v: &Value, key: &str) -> Result<Vec<f32>> {
    let bad = || Error::mismatch(format!("a number or a list of numbers for `{key}`"), v);
    match v {
        Value::Number(n) => Ok(vec![n.as_f64().ok_or_else(bad)? as f32]),
        Value::Array(list) => list
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(bad))
            .collect(),
        Value::Object(map)
            if map.get("class_name").and_then(Value::as_str) == Some("__numpy__") =>
        {
            let value = map
                .get("config")
                .and_then(|c| c.get("value"))
                .ok_or_else(bad)?;
            floats(value, key)
        }
        _ => Err(bad()),
    }
}

/// Builder of `Rescaling`.
pub fn build_rescaling(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let scale = floats(cx.get("scale"), "scale")?;
    let offset = match cx.get("offset") {
        Value::Null => vec![0.0],
        v => floats(v, "offset")?,
    };
    let channels = *cx.input()?.last().unwrap_or(&1);
    for (key, values) in [("scale", &scale), ("offset", &offset)] {
        if values.len() != 1 && values.len() != channels {
            return Err(Error::mismatch(
                format!("one `{key}` or one per channel ({channels})"),
                values.len(),
            ));
        }
    }
    Ok(Box::new(Rescaling { scale, offset }))
}

impl LayerOp for Rescaling {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        single_shape(inputs, "Rescaling").map(<[usize]>::to_vec)
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let mut y = x[0].as_standard_layout().into_owned();
        let c = *y.shape().last().unwrap_or(&1);
        let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i % c] };
        let values = y.as_slice_mut().expect("standard layout");
        for (i, v) in values.iter_mut().enumerate() {
            *v = v.mul_add(at(&self.scale, i), at(&self.offset, i));
        }
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let mut dx = dy.as_standard_layout().into_owned();
        let c = *dx.shape().last().unwrap_or(&1);
        let scale = &self.scale;
        let mut i = 0usize;
        Zip::from(&mut dx).for_each(|g| {
            *g *= if scale.len() == 1 {
                scale[0]
            } else {
                scale[i % c]
            };
            i += 1;
        });
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!("scale={:?}, offset={:?}", self.scale, self.offset))
    }

    crate::clone_box!();
}

/// `Normalization(axis, mean, variance, invert)`.
#[derive(Debug, Clone)]
pub struct Normalization {
    /// Per-sample shape the statistics broadcast to (kept axes full, others
    /// 1).
    broadcast: Vec<usize>,
    /// Statistics from the config, broadcast to `broadcast` (when not
    /// adapted).
    fixed: Option<(Vec<f32>, Vec<f32>)>,
    /// The adapted variables (mean, variance, count), when stored.
    vars: Vec<Var>,
    invert: bool,
}

/// Keras's `backend.epsilon()`.
const EPSILON: f32 = 1e-7;

/// Builder of `Normalization`.
pub fn build_normalization(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let rank = input.len() + 1;
    let axes: Vec<i64> = match cx.get("axis") {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|a| {
                a.as_i64()
                    .ok_or_else(|| Error::mismatch("integer axes for `axis`", a))
            })
            .collect::<Result<_>>()?,
        v => vec![
            v.as_i64()
                .ok_or_else(|| Error::mismatch("an integer `axis`", v))?,
        ],
    };
    let mut keep = Vec::new();
    for a in axes {
        let k = super::resolve_axis(a, rank, "axis")?;
        if k == 0 {
            return Err(Error::mismatch("`axis` other than the batch axis", a).at("axis"));
        }
        if !keep.contains(&k) {
            keep.push(k);
        }
    }
    keep.sort_unstable();
    let broadcast: Vec<usize> = (1..rank)
        .map(|d| if keep.contains(&d) { input[d - 1] } else { 1 })
        .collect();
    let kept: Vec<usize> = keep.iter().map(|&d| input[d - 1]).collect();
    let len: usize = super::norm::checked_product(kept.iter().copied())?;
    let invert = cx.bool_or("invert", false)?;
    let stat = |key: &str| -> Result<Option<Vec<f32>>> {
        match cx.get(key) {
            Value::Null => Ok(None),
            v => {
                let values = floats(v, key)?;
                match values.len() {
                    1 => Ok(Some(vec![values[0]; len])),
                    n if n == len => Ok(Some(values)),
                    n => Err(Error::mismatch(
                        format!("one `{key}` or {len} (the kept axes {kept:?})"),
                        n,
                    )
                    .at(key.to_string())),
                }
            }
        }
    };
    let (mean, variance) = (stat("mean")?, stat("variance")?);
    let (fixed, vars) = match (mean, variance) {
        (Some(m), Some(v)) => {
            cx.take_vars(&[])?;
            (Some((m, v)), Vec::new())
        }
        (None, None) => {
            let values = cx.take_vars(&[
                ("mean", kept.clone()),
                ("variance", kept.clone()),
                ("count", Vec::new()),
            ])?;
            let vars = ["mean", "variance", "count"]
                .into_iter()
                .zip(values)
                .map(|(role, v)| Var::state(role, v))
                .collect();
            (None, vars)
        }
        _ => {
            return Err(Error::invalid(
                "`Normalization` needs both `mean` and `variance`, or neither",
            ));
        }
    };
    Ok(Box::new(Normalization {
        broadcast,
        fixed,
        vars,
        invert,
    }))
}

impl Normalization {
    /// Mean and `maximum(sqrt(variance), epsilon)` over the broadcast shape.
    fn stats(&self) -> (Vec<f32>, Vec<f32>) {
        let (mean, var): (&[f32], &[f32]) = match &self.fixed {
            Some((m, v)) => (m, v),
            None => (
                self.vars[0].value.as_slice().expect("standard layout"),
                self.vars[1].value.as_slice().expect("standard layout"),
            ),
        };
        let scale = var
            .iter()
            .map(|v| {
                let s = v.sqrt();
                if s.is_nan() || s > EPSILON {
                    s
                } else {
                    EPSILON
                }
            })
            .collect();
        (mean.to_vec(), scale)
    }

    /// The statistics' index for each element of a sample.
    fn index_map(&self, shape: &[usize]) -> Vec<usize> {
        let n: usize = shape.iter().product();
        let mut out = Vec::with_capacity(n);
        for j in 0..n {
            let (mut rem, mut idx, mut mul) = (j, 0usize, 1usize);
            for (d, &b) in shape.iter().zip(&self.broadcast).rev() {
                let c = rem % d;
                rem /= d;
                if b != 1 {
                    idx += c * mul;
                    mul *= b;
                }
            }
            out.push(idx);
        }
        out
    }
}

impl LayerOp for Normalization {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let shape = single_shape(inputs, "Normalization")?;
        if shape.len() != self.broadcast.len()
            || shape
                .iter()
                .zip(&self.broadcast)
                .any(|(&d, &b)| b != 1 && b != d)
        {
            return Err(Error::mismatch(
                format!(
                    "an input matching the statistics' shape {:?}",
                    self.broadcast
                ),
                format!("{shape:?}"),
            ));
        }
        Ok(shape.to_vec())
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let mut y = x[0].as_standard_layout().into_owned();
        let (mean, scale) = self.stats();
        let map = self.index_map(&y.shape()[1..]);
        let per = map.len().max(1);
        for (i, v) in y
            .as_slice_mut()
            .expect("standard layout")
            .iter_mut()
            .enumerate()
        {
            let k = map[i % per];
            *v = if self.invert {
                mean[k] + *v * scale[k]
            } else {
                (*v - mean[k]) / scale[k]
            };
        }
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let mut dx = dy.as_standard_layout().into_owned();
        let (_, scale) = self.stats();
        let map = self.index_map(&dx.shape()[1..]);
        let per = map.len().max(1);
        for (i, g) in dx
            .as_slice_mut()
            .expect("standard layout")
            .iter_mut()
            .enumerate()
        {
            let k = map[i % per];
            *g = if self.invert {
                *g * scale[k]
            } else {
                *g / scale[k]
            };
        }
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(if self.fixed.is_some() {
            "mean/variance from config".into()
        } else {
            "adapted mean/variance".into()
        })
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{build, gradients, values};
    use super::*;
    use serde_json::json;

    #[test]
    fn rescaling_values_and_gradients() {
        // Keras: Rescaling(1/255)(x) == x / 255 · ... = x * (1/255) + 0.
        let op = build(
            build_rescaling,
            "Rescaling",
            json!({"scale": 0.5, "offset": -1.0}),
            &[vec![2]],
            &[],
        );
        let x = ArrayD::from_shape_vec(vec![1, 2], vec![4.0, 1.0]).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let y = op.forward(&[&x], &mut cx).unwrap().y;
        assert_eq!(y.as_slice().unwrap(), &[1.0, -0.5]);
        let op = build(
            build_rescaling,
            "Rescaling",
            json!({"scale": {"class_name": "__numpy__", "config": {"value": [1.0, 2.0, 3.0], "dtype": "float32"}}, "offset": [0.0, 1.0, 2.0]}),
            &[vec![4, 3]],
            &[],
        );
        gradients(op.as_ref(), &[values(&[2, 4, 3], 1)], Mode::Inference, 1e-2);
        let cfg = json!({"scale": [1.0, 2.0]});
        let cx = BuildCx {
            class_name: "Rescaling",
            name: "r",
            config: cfg.as_object().unwrap(),
            inputs: &[vec![4, 3]],
            stored: &[],
            vars_path: "layers/rescaling/vars",
            group: None,
        };
        assert!(build_rescaling(&cx).is_err());
    }
}
