//! Layers that `keras.applications` models define for themselves and save
//! in their configs: `LayerScale` (ConvNeXt).
//!
//! Spec: `keras/src/applications/convnext.py` (`LayerScale`: one trainable
//! variable `gamma` of shape `(projection_dim,)`, `call`: `x * gamma` over
//! the last axis).

use ndarray::ArrayD;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, Var, single_shape};
use crate::error::{Error, Result};

/// ConvNeXt's `LayerScale`.
#[derive(Debug, Clone)]
pub struct LayerScale {
    vars: Vec<Var>,
}

/// Builder of `LayerScale`.
pub fn build_layer_scale(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let dim = match cx.get("projection_dim") {
        v if v.is_null() => *input.last().unwrap_or(&0),
        v => v
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| Error::mismatch("an integer `projection_dim`", v))?,
    };
    if input.last() != Some(&dim) {
        return Err(Error::mismatch(
            format!("an input whose last axis is `projection_dim` ({dim})"),
            format!("{input:?}"),
        ));
    }
    let mut values = cx.take_vars(&[("gamma", vec![dim])])?;
    Ok(Box::new(LayerScale {
        vars: vec![Var::new("gamma", values.remove(0))],
    }))
}

impl LayerOp for LayerScale {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        single_shape(inputs, "LayerScale").map(<[usize]>::to_vec)
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let g = self.vars[0].value.as_slice().expect("standard layout");
        let mut y = x[0].as_standard_layout().into_owned();
        for row in y
            .as_slice_mut()
            .expect("standard layout")
            .chunks_mut(g.len().max(1))
        {
            row.iter_mut().zip(g).for_each(|(v, &s)| *v *= s);
        }
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let g = self.vars[0].value.as_slice().expect("standard layout");
        let d = g.len().max(1);
        let xs = x[0].as_standard_layout();
        let mut dx = dy.as_standard_layout().into_owned();
        let mut dg = vec![0.0f64; g.len()];
        let xv = xs.as_slice().expect("standard layout");
        for (i, v) in dx
            .as_slice_mut()
            .expect("standard layout")
            .iter_mut()
            .enumerate()
        {
            dg[i % d] += f64::from(*v) * f64::from(xv[i]);
            *v *= g[i % d];
        }
        let dg = ArrayD::from_shape_vec(vec![g.len()], dg.into_iter().map(|v| v as f32).collect())
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Backward {
            inputs: vec![dx],
            vars: vec![Some(dg)],
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
    fn layer_scale_gradients() {
        let op = build(
            build_layer_scale,
            "LayerScale",
            json!({"init_values": 1e-6, "projection_dim": 3}),
            &[vec![2, 3]],
            &[(vec![3], vec![0.5, -1.0, 2.0])],
        );
        gradients(op.as_ref(), &[values(&[2, 2, 3], 1)], Mode::Training, 1e-2);
    }
}
