//! Inference: the forward pass of a chain model on float32 batches.
//!
//! Spec: `keras/src/layers/core/dense.py` (`call`: `matmul(inputs, kernel)`,
//! then `add(bias)`, then the activation), `layers/reshaping/flatten.py`,
//! `layers/regularization/dropout.py` (identity when not training).
//!
//! A batch is held as a 2-D array: rows are samples times all per-sample axes
//! but the last, columns are the last axis. Dense and activations act on the
//! last axis, so they work on that view directly; Flatten regroups the rows.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, CowArray, Ix2, IxDyn};
use rayon::prelude::*;

use super::fpmode::FlushDenormals;
use super::gemm::{Lhs, matmul};
use crate::error::{Error, Result};
use crate::model::{Dense, LayerKind, Model};

/// A layer's input in a forward pass: the caller's batch (borrowed: a Dense
/// layer multiplies it where it lies) or an array computed by the layer
/// before.
pub(crate) enum LayerInput<'x> {
    /// The batch, where it lies.
    Batch(Lhs<'x>),
    /// Computed values.
    Array(Array2<f32>),
}

impl LayerInput<'_> {
    /// The input as a product operand.
    pub(crate) fn lhs(&self) -> Lhs<'_> {
        match self {
            LayerInput::Batch(x) => x.reborrow(),
            LayerInput::Array(a) => Lhs::View(a.view()),
        }
    }

    /// The input as an array (a copy of the batch when it is still the
    /// batch and lies in bytes).
    pub(crate) fn into_array(self) -> Array2<f32> {
        match self {
            LayerInput::Batch(x) => x.to_array().into_owned(),
            LayerInput::Array(a) => a,
        }
    }
}

/// Apply a Dense layer to a batch: `activation(x @ kernel + bias)`.
pub fn dense_forward<'a>(dense: &Dense, x: impl Into<Lhs<'a>>) -> Array2<f32> {
    let z = dense_affine(dense, x);
    dense.activation.forward(z)
}

/// The affine part of a Dense layer: `x @ kernel + bias`.
pub fn dense_affine<'a>(dense: &Dense, x: impl Into<Lhs<'a>>) -> Array2<f32> {
    let mut z = matmul(x, dense.kernel.view());
    if let Some(bias) = &dense.bias {
        z += bias;
    }
    z
}

impl Model {
    /// Check that `shape` (with batch axis) fits the model's input.
    pub fn check_input_shape(&self, shape: &[usize]) -> Result<()> {
        if shape.len() != self.input_shape.len() + 1 || shape[1..] != self.input_shape[..] {
            let mut expected = vec!["N".to_string()];
            expected.extend(self.input_shape.iter().map(usize::to_string));
            return Err(Error::mismatch(
                format!("input of shape ({})", expected.join(", ")),
                format!(
                    "shape ({})",
                    shape
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Run one batch through the model (inference mode). `x` has shape
    /// `[n, input_shape...]` flattened to `[n * leading, last]`.
    pub fn forward_batch(&self, n: usize, x: ArrayView2<'_, f32>) -> Array2<f32> {
        // Borrow the caller's rows until a layer computes something new.
        let mut h: CowArray<'_, f32, Ix2> = x.into();
        for layer in &self.layers {
            h = match &layer.kind {
                LayerKind::Input | LayerKind::Dropout { .. } => h,
                LayerKind::Dense(d) => dense_forward(d, h.view()).into(),
                LayerKind::Activation(a) => a.forward(h.into_owned()).into(),
                LayerKind::Flatten => {
                    let width = h.len() / n.max(1);
                    reshape_rows(h.into_owned(), n, width).into()
                }
                LayerKind::Op(_) => {
                    unreachable!("chain models have no op layers (Model::is_chain)")
                }
            };
        }
        h.into_owned()
    }

    /// Predict on a whole input array, `batch_size` rows at a time, batches in
    /// parallel. Returns `[n, output_shape...]`.
    pub fn predict(&self, x: ArrayViewD<'_, f32>, batch_size: usize) -> Result<ArrayD<f32>> {
        if !self.is_chain() {
            let mut outs = self.predict_all(&[x], batch_size)?;
            if outs.len() != 1 {
                return Err(Error::mismatch(
                    "a model with one output (use `predict_all` for several)",
                    format!("{} outputs", outs.len()),
                ));
            }
            return Ok(outs.remove(0));
        }
        self.check_input_shape(x.shape())?;
        let n = x.shape()[0];
        let batch_size = batch_size.max(1);
        let per_sample: usize = self.input_shape.iter().product();
        let last = *self.input_shape.last().unwrap_or(&1);
        let out_shape = self.output_shape().to_vec();
        let out_per_sample: usize = out_shape.iter().product();
        let x = x.as_standard_layout();
        let flat = x
            .as_slice()
            .ok_or_else(|| Error::invalid("input is not contiguous"))?;
        let mut out = vec![0f32; n * out_per_sample];
        if n > 0 {
            out.par_chunks_mut(batch_size * out_per_sample)
                .zip(flat.par_chunks(batch_size * per_sample))
                .for_each(|(dst, src)| {
                    // Compute as XLA does under Keras (see `fpmode`), on
                    // whichever thread runs this batch.
                    let _mode = FlushDenormals::enter();
                    let rows = src.len() / per_sample.max(1);
                    let batch = ArrayView2::from_shape((src.len() / last.max(1), last), src)
                        .expect("chunk length is a multiple of the row width");
                    let y = self.forward_batch(rows, batch);
                    let y = y.as_standard_layout();
                    dst.copy_from_slice(y.as_slice().expect("standard layout"));
                });
        }
        let mut shape = vec![n];
        shape.extend(out_shape);
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| Error::invalid(e.to_string()))
    }
}

impl Model {
    /// Predict on one array per model input (in `model.inputs` order),
    /// `batch_size` rows at a time, batches in parallel; one array per
    /// model output.
    pub fn predict_all(
        &self,
        inputs: &[ArrayViewD<'_, f32>],
        batch_size: usize,
    ) -> Result<Vec<ArrayD<f32>>> {
        if let ([x], true) = (inputs, self.is_chain()) {
            return Ok(vec![self.predict(x.view(), batch_size)?]);
        }
        let g = &self.graph;
        let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
        let n = g.check_inputs(&shapes)?;
        for (slot, x) in inputs.iter().enumerate() {
            self.check_ids(slot, x.view())?;
        }
        let batch_size = batch_size.max(1);
        let starts: Vec<usize> = (0..n).step_by(batch_size).collect();
        let parts: Vec<Result<Vec<ArrayD<f32>>>> = starts
            .par_iter()
            .map(|&start| {
                let _mode = FlushDenormals::enter();
                let end = (start + batch_size).min(n);
                let views: Vec<_> = inputs
                    .iter()
                    .map(|x| x.slice_axis(ndarray::Axis(0), (start..end).into()))
                    .collect();
                super::graph::predict_batch(self, &views)
            })
            .collect();
        let mut per_output: Vec<Vec<ArrayD<f32>>> = vec![Vec::new(); g.outputs.len()];
        for part in parts {
            for (o, y) in part?.into_iter().enumerate() {
                per_output[o].push(y);
            }
        }
        per_output
            .into_iter()
            .enumerate()
            .map(|(o, ys)| {
                if ys.is_empty() {
                    let mut shape = vec![0];
                    shape.extend(g.output_shapes()[o]);
                    return Ok(ArrayD::zeros(IxDyn(&shape)));
                }
                let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
                ndarray::concatenate(ndarray::Axis(0), &views)
                    .map_err(|e| Error::invalid(e.to_string()))
            })
            .collect()
    }
}

/// Regroup a row-major batch into `rows` rows of `width` columns.
pub fn reshape_rows(h: Array2<f32>, rows: usize, width: usize) -> Array2<f32> {
    let h = if h.is_standard_layout() {
        h
    } else {
        h.as_standard_layout().to_owned()
    };
    h.into_shape_with_order((rows, width))
        .expect("flatten keeps the element count")
}
