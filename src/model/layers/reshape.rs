//! Shape layers: `Reshape`, `Permute`, `RepeatVector`, `Identity`
//! (`Flatten` has the Dense chain's fast path, see `model::layer`).
//!
//! Spec: `keras/src/layers/reshaping/reshape.py` (`target_shape` may hold
//! one `-1`, resolved from the element count), `permute.py` (`dims` are
//! 1-based axes of the per-sample shape), `repeat_vector.py` (`(N, d)` →
//! `(N, n, d)`), `layers/core/identity.py`.

use ndarray::{ArrayD, Axis, IxDyn};
use serde_json::Value;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, single_shape, with_batch};
use crate::error::{Error, Result};

/// `Reshape(target_shape)`.
#[derive(Debug, Clone)]
pub struct Reshape {
    target: Vec<i64>,
}

fn int_list(v: &Value, what: &str) -> Result<Vec<i64>> {
    v.as_array()
        .ok_or_else(|| Error::mismatch(format!("a list `{what}`"), v))?
        .iter()
        .map(|d| {
            d.as_i64()
                .ok_or_else(|| Error::mismatch(format!("integers in `{what}`"), d))
        })
        .collect()
}

/// Builder of `Reshape`.
pub fn build_reshape(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let target = int_list(cx.get("target_shape"), "target_shape")?;
    let layer = Reshape { target };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl LayerOp for Reshape {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let [input] = inputs else {
            return Err(Error::mismatch("one input for `Reshape`", inputs.len()));
        };
        let count = input
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::limit("max_dim", format!("input {input:?}")))?;
        let unknown = self.target.iter().filter(|&&d| d == -1).count();
        if unknown > 1 || self.target.iter().any(|&d| d == 0 || d < -1) {
            return Err(Error::mismatch(
                "`target_shape` of positive sizes and at most one -1",
                format!("{:?}", self.target),
            ));
        }
        let known = self
            .target
            .iter()
            .filter(|&&d| d > 0)
            .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
            .ok_or_else(|| Error::limit("max_dim", "target_shape"))?;
        let fits = if unknown == 1 {
            count % known == 0
        } else {
            count == known
        };
        if !fits {
            return Err(Error::mismatch(
                format!("a `target_shape` holding {count} values (input {input:?})"),
                format!("{:?}", self.target),
            ));
        }
        Ok(self
            .target
            .iter()
            .map(|&d| if d == -1 { count / known } else { d as usize })
            .collect())
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let per_sample: Vec<usize> = x[0].shape()[1..].to_vec();
        let out = self.output_shape(&[per_sample])?;
        let y = reshaped(x[0], &with_batch(x[0].shape()[0], &out))?;
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![reshaped(&dy, x[0].shape())?]))
    }

    crate::clone_box!();
}

/// `x` in C order with a new shape of the same element count.
pub fn reshaped(x: &ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>> {
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|e| Error::invalid(format!("reshape to {shape:?}: {e}")))
}

/// `Permute(dims)`.
#[derive(Debug, Clone)]
pub struct Permute {
    dims: Vec<usize>,
}

/// Builder of `Permute`.
pub fn build_permute(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let dims = int_list(cx.get("dims"), "dims")?;
    let input = cx.input()?;
    let mut sorted: Vec<i64> = dims.clone();
    sorted.sort_unstable();
    if sorted != (1..=input.len() as i64).collect::<Vec<_>>() {
        return Err(Error::mismatch(
            format!(
                "`dims` a permutation of 1..={} (input {input:?})",
                input.len()
            ),
            format!("{dims:?}"),
        ));
    }
    Ok(Box::new(Permute {
        dims: dims.iter().map(|&d| d as usize).collect(),
    }))
}

impl Permute {
    fn order(&self) -> Vec<usize> {
        let mut order = vec![0];
        order.extend(&self.dims);
        order
    }
}

impl LayerOp for Permute {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let [input] = inputs else {
            return Err(Error::mismatch("one input for `Permute`", inputs.len()));
        };
        if input.len() != self.dims.len() {
            return Err(Error::mismatch(
                format!("an input of rank {}", self.dims.len() + 1),
                format!("{input:?}"),
            ));
        }
        Ok(self.dims.iter().map(|&d| input[d - 1]).collect())
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let y = x[0]
            .view()
            .permuted_axes(IxDyn(&self.order()))
            .as_standard_layout()
            .into_owned();
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let order = self.order();
        let mut inverse = vec![0; order.len()];
        for (pos, &axis) in order.iter().enumerate() {
            inverse[axis] = pos;
        }
        let dx = dy
            .permuted_axes(IxDyn(&inverse))
            .as_standard_layout()
            .into_owned();
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!("dims={:?}", self.dims))
    }

    crate::clone_box!();
}

/// `RepeatVector(n)`.
#[derive(Debug, Clone)]
pub struct RepeatVector {
    n: usize,
}

/// Builder of `RepeatVector`.
pub fn build_repeat_vector(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let n = cx.i64_or("n", 0)?;
    if !(1..=1 << 31).contains(&n) {
        return Err(Error::mismatch("a positive `n`", n));
    }
    let layer = RepeatVector { n: n as usize };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl LayerOp for RepeatVector {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        match inputs {
            [one] if one.len() == 1 => Ok(vec![self.n, one[0]]),
            _ => Err(Error::mismatch(
                "one input of shape (N, d) for `RepeatVector`",
                format!("{inputs:?}"),
            )),
        }
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let (n, d) = (x[0].shape()[0], x[0].shape()[1]);
        let y = x[0]
            .view()
            .insert_axis(Axis(1))
            .broadcast(IxDyn(&[n, self.n, d]))
            .ok_or_else(|| Error::invalid("repeat broadcast"))?
            .to_owned();
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![dy.sum_axis(Axis(1))]))
    }

    fn detail(&self) -> Option<String> {
        Some(format!("n={}", self.n))
    }

    crate::clone_box!();
}

/// `Identity`.
#[derive(Debug, Clone)]
pub struct Identity;

/// Builder of `Identity`.
pub fn build_identity(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    cx.input()?;
    Ok(Box::new(Identity))
}

impl LayerOp for Identity {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        single_shape(inputs, "Identity").map(<[usize]>::to_vec)
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        Ok(Forward::plain(x[0].clone()))
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![dy]))
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
    fn reshape_resolves_minus_one() {
        let op = build(
            build_reshape,
            "Reshape",
            json!({"target_shape": [-1, 2]}),
            &[vec![6]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![6]]).unwrap(), [3, 2]);
        gradients(op.as_ref(), &[values(&[2, 6], 1)], Mode::Inference, 1e-2);
        let cfg = json!({"target_shape": [4, 2]});
        let cfg = cfg.as_object().unwrap();
        let cx = BuildCx {
            class_name: "Reshape",
            name: "r",
            config: cfg,
            inputs: &[vec![6]],
            stored: &[],
            vars_path: "layers/reshape/vars",
            group: None,
        };
        let err = build_reshape(&cx).unwrap_err().to_string();
        assert!(err.contains("6 values"), "{err}");
    }

    #[test]
    fn permute_and_repeat() {
        let op = build(
            build_permute,
            "Permute",
            json!({"dims": [2, 1]}),
            &[vec![3, 4]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![3, 4]]).unwrap(), [4, 3]);
        gradients(op.as_ref(), &[values(&[2, 3, 4], 2)], Mode::Inference, 1e-2);
        let op = build(
            build_repeat_vector,
            "RepeatVector",
            json!({"n": 3}),
            &[vec![2]],
            &[],
        );
        assert_eq!(op.output_shape(&[vec![2]]).unwrap(), [3, 2]);
        gradients(op.as_ref(), &[values(&[2, 2], 3)], Mode::Inference, 1e-2);
    }
}
