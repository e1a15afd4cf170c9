//! `Embedding` (integer ids → rows of a table) and `Masking`, the layers
//! that start a Keras mask.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX; paths relative to `site-packages/keras/src/`:
//!
//! * `layers/core/embedding.py`: one variable `embeddings` of shape
//!   `(input_dim, output_dim)` (regularizer `embeddings_regularizer`,
//!   constraint `embeddings_constraint`); `call`: `ops.take(embeddings,
//!   ids, axis=0)`, output shape `input_shape + (output_dim,)`;
//!   `compute_mask`: `ids != 0` when `mask_zero`, else none.
//! * `layers/core/masking.py`: `keep = any(x != mask_value, axis=-1)`,
//!   `call`: `where(keep, x, 0)`, `compute_mask`: `keep` (no last axis).
//! * The gradient of `take` under `jax.grad` is a dense scatter-add into a
//!   zero table of the embedding's shape, so the optimizer updates every
//!   row (with Adam, every row's moments decay, used or not), as here.
//!
//! Ids arrive as float32 (exact for integers below 2^24); an id that is not
//! an integer or is outside `[0, input_dim)` is an error naming the sample
//! and the id (JAX would clamp or fill instead).

use ndarray::{ArrayD, IxDyn};

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Mask, Saved, Var, single_shape};
use crate::error::{Error, Result};
use crate::model::regularizer::Regularizer;

/// Largest vocabulary (rows held as float32 ids must be exact).
const MAX_INPUT_DIM: u64 = 1 << 24;

/// `Embedding`.
#[derive(Debug, Clone)]
pub struct Embedding {
    input_dim: usize,
    output_dim: usize,
    mask_zero: bool,
    activity_regularizer: Option<Regularizer>,
    vars: Vec<Var>,
}

fn dim(cx: &BuildCx<'_>, key: &str, max: u64) -> Result<usize> {
    let v = cx.get(key);
    v.as_u64()
        .filter(|&d| d > 0 && d <= max)
        .map(|d| d as usize)
        .ok_or_else(|| Error::mismatch(format!("a positive integer `{key}` ≤ {max}"), v))
}

/// Builder of `Embedding`.
pub fn build_embedding(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input_dim = dim(cx, "input_dim", MAX_INPUT_DIM)?;
    let output_dim = dim(cx, "output_dim", 1 << 31)?;
    for key in ["quantization_config", "lora_rank"] {
        let v = cx.get(key);
        if !v.is_null() && v != &serde_json::Value::from(0) {
            return Err(Error::unsupported(
                "Embedding option",
                key,
                &["plain float32 Embedding"],
            ));
        }
    }
    if cx.bool_or("sparse", false)? {
        return Err(Error::unsupported(
            "Embedding option",
            "sparse",
            &["dense Embedding"],
        ));
    }
    let mut values = cx.take_vars(&[("embeddings", vec![input_dim, output_dim])])?;
    let mut table = Var::new("embeddings", values.remove(0));
    table.regularizer = cx.regularizer("embeddings_regularizer")?;
    table.constraint = cx.constraint("embeddings_constraint")?;
    let layer = Embedding {
        input_dim,
        output_dim,
        mask_zero: cx.bool_or("mask_zero", false)?,
        activity_regularizer: cx.regularizer("activity_regularizer")?,
        vars: vec![table],
    };
    layer.output_shape(cx.inputs)?;
    Ok(Box::new(layer))
}

impl Embedding {
    /// The row index of every id, checked.
    fn rows(&self, ids: &ArrayD<f32>) -> Result<Vec<usize>> {
        let per_sample = ids.len() / ids.shape().first().copied().unwrap_or(1).max(1);
        ids.iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.fract() == 0.0 && v >= 0.0 && (v as f64) < self.input_dim as f64 {
                    Ok(v as usize)
                } else {
                    let what = if v.fract() != 0.0 || !v.is_finite() {
                        "is not an integer id"
                    } else {
                        "is outside the vocabulary"
                    };
                    Err(Error::invalid(format!(
                        "`Embedding` input id {v} in sample {} (position {}) {what} \
                         (ids must be integers in [0, {}))",
                        i / per_sample.max(1),
                        i % per_sample.max(1),
                        self.input_dim
                    )))
                }
            })
            .collect()
    }

    /// The vocabulary size (`input_dim`).
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }
}

impl LayerOp for Embedding {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let mut out = single_shape(inputs, "Embedding")?.to_vec();
        out.push(self.output_dim);
        Ok(out)
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn compute_mask(
        &self,
        x: &[&ArrayD<f32>],
        _masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        Ok(vec![self.mask_zero.then(|| x[0].mapv(|v| v != 0.0))])
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let rows = self.rows(x[0])?;
        let table = self.vars[0].value.as_slice().expect("standard layout");
        let d = self.output_dim;
        let mut y = Vec::with_capacity(rows.len() * d);
        for &r in &rows {
            y.extend_from_slice(&table[r * d..(r + 1) * d]);
        }
        let mut shape = x[0].shape().to_vec();
        shape.push(d);
        let y =
            ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let rows = self.rows(x[0])?;
        let d = self.output_dim;
        let dy = dy.as_standard_layout();
        let g = dy.as_slice().expect("standard layout");
        let mut table = ArrayD::<f32>::zeros(IxDyn(&[self.input_dim, d]));
        let t = table.as_slice_mut().expect("standard layout");
        for (k, &r) in rows.iter().enumerate() {
            for (a, &b) in t[r * d..(r + 1) * d].iter_mut().zip(&g[k * d..(k + 1) * d]) {
                *a += b;
            }
        }
        Ok(Backward {
            // Ids have no gradient.
            inputs: vec![ArrayD::zeros(x[0].raw_dim())],
            vars: vec![Some(table)],
        })
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        self.activity_regularizer
    }

    fn detail(&self) -> Option<String> {
        self.mask_zero.then(|| "mask_zero".to_string())
    }

    crate::clone_box!();
}

/// `Masking(mask_value)`.
#[derive(Debug, Clone)]
pub struct Masking {
    mask_value: f32,
}

/// Builder of `Masking`.
pub fn build_masking(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let layer = Masking {
        mask_value: cx.f64_or("mask_value", 0.0)? as f32,
    };
    if cx.input()?.is_empty() {
        return Err(Error::mismatch("an input with a feature axis", "a scalar"));
    }
    Ok(Box::new(layer))
}

impl Masking {
    /// `any(x != mask_value, axis=-1)`.
    fn keep(&self, x: &ArrayD<f32>) -> Mask {
        let last = x.ndim() - 1;
        x.map_axis(ndarray::Axis(last), |row| {
            row.iter().any(|&v| v != self.mask_value)
        })
    }
}

impl LayerOp for Masking {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        single_shape(inputs, "Masking").map(<[usize]>::to_vec)
    }

    fn compute_mask(
        &self,
        x: &[&ArrayD<f32>],
        _masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        Ok(vec![Some(self.keep(x[0]))])
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let keep = self.keep(x[0]);
        let mut y = x[0].as_standard_layout().into_owned();
        let last = y.ndim() - 1;
        for (mut row, &k) in y
            .lanes_mut(ndarray::Axis(last))
            .into_iter()
            .zip(keep.iter())
        {
            if !k {
                row.fill(0.0);
            }
        }
        Ok(Forward {
            saved: Some(Box::new(keep)),
            ..Forward::plain(y)
        })
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let keep = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Mask>())
            .ok_or_else(|| Error::training("`Masking` was not run in training mode"))?;
        let mut dx = dy.as_standard_layout().into_owned();
        let last = dx.ndim() - 1;
        for (mut row, &k) in dx
            .lanes_mut(ndarray::Axis(last))
            .into_iter()
            .zip(keep.iter())
        {
            if !k {
                row.fill(0.0);
            }
        }
        Ok(Backward::inputs(vec![dx]))
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
    fn embedding_gradient_is_a_scatter_add() {
        let table = values(&[5, 3], 1);
        let op = build(
            build_embedding,
            "Embedding",
            json!({"input_dim": 5, "output_dim": 3, "mask_zero": true}),
            &[vec![4]],
            &[(vec![5, 3], table.iter().copied().collect())],
        );
        // Ids with repeats; finite differences on the ids themselves are
        // meaningless, so only the table is checked.
        let ids =
            ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![0., 1., 1., 4., 3., 0., 2., 1.]).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Training,
            rng: &mut rng,
        };
        let f = op.forward(&[&ids], &mut cx).unwrap();
        let dy = values(f.y.shape(), 3);
        let b = op.backward(&[&ids], &f.y, &f.saved, dy.clone()).unwrap();
        let g = b.vars[0].as_ref().unwrap();
        for r in 0..5 {
            for j in 0..3 {
                let want: f32 = ids
                    .iter()
                    .enumerate()
                    .filter(|&(_, &v)| v as usize == r)
                    .map(|(k, _)| dy.as_slice().unwrap()[k * 3 + j])
                    .sum();
                assert!((g[[r, j]] - want).abs() < 1e-6);
            }
        }
        let mask = op.compute_mask(&[&ids], &[None]).unwrap();
        assert_eq!(mask[0].as_ref().unwrap().iter().filter(|&&m| !m).count(), 2);
    }

    #[test]
    fn bad_ids_name_sample_and_id() {
        let op = build(
            build_embedding,
            "Embedding",
            json!({"input_dim": 5, "output_dim": 2}),
            &[vec![3]],
            &[(vec![5, 2], vec![0.0; 10])],
        );
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        for (bad, what) in [(5.0, "outside the vocabulary"), (1.5, "not an integer")] {
            let ids =
                ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0., 1., 2., 3., bad, 0.]).unwrap();
            let Err(err) = op.forward(&[&ids], &mut cx) else {
                panic!("bad id accepted")
            };
            let err = err.to_string();
            assert!(
                err.contains(&format!("id {bad} in sample 1 (position 1)")),
                "{err}"
            );
            assert!(err.contains(what), "{err}");
        }
    }

    #[test]
    fn masking_gradient() {
        let op = build(
            build_masking,
            "Masking",
            json!({"mask_value": 0.5}),
            &[vec![3, 2]],
            &[],
        );
        let mut x = values(&[2, 3, 2], 4);
        x[[0, 1, 0]] = 0.5;
        x[[0, 1, 1]] = 0.5;
        // Away from masked rows the layer is the identity.
        gradients(op.as_ref(), &[values(&[2, 3, 2], 5)], Mode::Training, 1e-2);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Training,
            rng: &mut rng,
        };
        let f = op.forward(&[&x], &mut cx).unwrap();
        assert_eq!(f.y[[0, 1, 0]], 0.0);
        let dy = values(&[2, 3, 2], 6);
        let b = op.backward(&[&x], &f.y, &f.saved, dy.clone()).unwrap();
        assert_eq!(b.inputs[0][[0, 1, 1]], 0.0);
        assert_eq!(b.inputs[0][[1, 1, 1]], dy[[1, 1, 1]]);
        let m = op.compute_mask(&[&x], &[None]).unwrap().remove(0).unwrap();
        assert_eq!(m.shape(), [2, 3]);
        assert!(!m[[0, 1]] && m[[0, 0]] && m[[1, 1]]);
    }
}
