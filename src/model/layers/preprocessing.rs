//! Preprocessing layers saved inside models: `Rescaling`.
//!
//! Spec: `keras/src/layers/preprocessing/rescaling.py` (`call`:
//! `cast(inputs) * scale + offset`, `scale` and `offset` floats or arrays
//! broadcast against the channels-last input; `get_config` serializes
//! arrays as `__numpy__` objects). Under `jit_compile` XLA contracts the
//! product and the sum into one fused multiply-add, which is what kerasrs
//! computes.

use ndarray::{ArrayD, Zip};
use serde_json::Value;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, single_shape};
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
        };
        assert!(build_rescaling(&cx).is_err());
    }
}
