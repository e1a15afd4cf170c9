//! Operations on tensors recorded in a Functional config (`x + 3.0`,
//! `x * (1 / 6)` written with Keras tensors, as MobileNetV3's hard-swish
//! does): entries with `module` `keras.src.ops.numpy` and one inbound node
//! whose `args` mix tensors and Python numbers.
//!
//! Spec: `keras/src/ops/numpy.py` (`Add`, `Subtract`, `Multiply`, `Divide`,
//! `TrueDivide`: `backend.numpy.add` etc.), `keras/src/backend/jax/numpy.py`
//! (a Python float is a weak-typed scalar: the operation runs in float32).
//! Two tensor operands must have the same shape (broadcasting between
//! tensors is not supported).
//!
//! Also the one-tensor operations a functional graph uses to make position
//! ids from its token ids (`ops.cumsum(ops.ones_like(ids), axis=1) - 1`):
//! `OnesLike`, `ZerosLike` and `Cumsum` (`axis` from the entry's config;
//! the gradient of a cumulative sum is the reversed cumulative sum of the
//! output gradient, that of `ones_like`/`zeros_like` zero).

use ndarray::{ArrayD, Axis, Zip};
use serde_json::{Map, Value};

use super::{Backward, Ctx, Forward, LayerOp, Saved};
use crate::error::{Error, Result};

/// Module name of these entries.
pub const MODULE: &str = "keras.src.ops.numpy";

/// The arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
}

/// One operand.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Operand {
    /// The `i`-th tensor input.
    Tensor,
    /// A constant (float32).
    Scalar(f32),
}

/// `a op b` with tensors and constants.
#[derive(Debug, Clone)]
pub struct NumpyOp {
    class: String,
    op: Op,
    a: Operand,
    b: Operand,
}

/// A one-tensor operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unary {
    OnesLike,
    ZerosLike,
    /// `cumsum` along an axis of the batched tensor (possibly negative).
    Cumsum(i64),
}

/// `ones_like(x)`, `zeros_like(x)` or `cumsum(x, axis)`.
#[derive(Debug, Clone)]
pub struct UnaryOp {
    op: Unary,
}

impl UnaryOp {
    fn axis(&self, rank: usize) -> Result<Option<usize>> {
        match self.op {
            Unary::Cumsum(a) => super::resolve_axis(a, rank, "Cumsum axis").map(Some),
            _ => Ok(None),
        }
    }
}

impl LayerOp for UnaryOp {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = super::single_shape(inputs, "operation")?;
        if self.axis(s.len() + 1)? == Some(0) {
            return Err(Error::mismatch(
                "a `Cumsum` axis other than the batch axis",
                0,
            ));
        }
        Ok(s.to_vec())
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let y = match self.op {
            Unary::OnesLike => ArrayD::ones(x[0].raw_dim()),
            Unary::ZerosLike => ArrayD::zeros(x[0].raw_dim()),
            Unary::Cumsum(_) => {
                let axis = self.axis(x[0].ndim())?.expect("cumsum axis");
                let mut y = x[0].as_standard_layout().into_owned();
                y.accumulate_axis_inplace(Axis(axis), |&prev, cur| *cur += prev);
                y
            }
        };
        Ok(Forward::plain(y))
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        _saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let dx = match self.op {
            Unary::OnesLike | Unary::ZerosLike => ArrayD::zeros(x[0].raw_dim()),
            Unary::Cumsum(_) => {
                let axis = self.axis(x[0].ndim())?.expect("cumsum axis");
                let mut g = dy.as_standard_layout().into_owned();
                g.invert_axis(Axis(axis));
                g.accumulate_axis_inplace(Axis(axis), |&prev, cur| *cur += prev);
                g.invert_axis(Axis(axis));
                g.as_standard_layout().into_owned()
            }
        };
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(match self.op {
            Unary::OnesLike => "ones_like".into(),
            Unary::ZerosLike => "zeros_like".into(),
            Unary::Cumsum(a) => format!("cumsum(axis={a})"),
        })
    }

    crate::clone_box!();
}

/// The operation of a `keras.src.ops.numpy` entry (its `config`) called
/// with `args`.
pub fn build(class: &str, args: &Value, config: &Map<String, Value>) -> Result<Box<dyn LayerOp>> {
    let unary = match class {
        "OnesLike" => Some(Unary::OnesLike),
        "ZerosLike" => Some(Unary::ZerosLike),
        "Cumsum" => {
            let axis = config.get("axis").unwrap_or(&Value::Null);
            Some(Unary::Cumsum(axis.as_i64().ok_or_else(|| {
                Error::mismatch(
                    "an integer `axis` for `Cumsum` (null, the flattened sum, is not supported)",
                    axis,
                )
            })?))
        }
        _ => None,
    };
    if let Some(op) = unary {
        let one = args.as_array().is_some_and(|a| {
            a.len() == 1
                && a[0].get("class_name").and_then(Value::as_str) == Some("__keras_tensor__")
        });
        if !one {
            return Err(Error::mismatch(
                format!("one tensor operand for `{class}`"),
                args,
            ));
        }
        return Ok(Box::new(UnaryOp { op }));
    }
    let op = match class {
        "Add" => Op::Add,
        "Subtract" => Op::Subtract,
        "Multiply" => Op::Multiply,
        "Divide" | "TrueDivide" => Op::Divide,
        other => {
            return Err(Error::unsupported(
                "operation",
                format!("{MODULE}.{other}"),
                &[
                    "Add",
                    "Subtract",
                    "Multiply",
                    "Divide",
                    "TrueDivide",
                    "OnesLike",
                    "ZerosLike",
                    "Cumsum",
                ],
            ));
        }
    };
    let list = args
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| Error::mismatch(format!("two operands for `{class}`"), args))?;
    let operand = |v: &Value| -> Result<Operand> {
        match v {
            Value::Number(n) => Ok(Operand::Scalar(
                n.as_f64().ok_or_else(|| Error::mismatch("a number", v))? as f32,
            )),
            Value::Object(m)
                if m.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
            {
                Ok(Operand::Tensor)
            }
            other => Err(Error::mismatch(
                format!("a tensor or a number as an operand of `{class}`"),
                other,
            )),
        }
    };
    let (a, b) = (operand(&list[0])?, operand(&list[1])?);
    if a != Operand::Tensor && b != Operand::Tensor {
        return Err(Error::invalid(format!("`{class}` of two constants")));
    }
    Ok(Box::new(NumpyOp {
        class: class.to_string(),
        op,
        a,
        b,
    }))
}

impl NumpyOp {
    fn tensors(&self) -> usize {
        usize::from(self.a == Operand::Tensor) + usize::from(self.b == Operand::Tensor)
    }

    fn apply(&self, a: f32, b: f32) -> f32 {
        match self.op {
            Op::Add => a + b,
            Op::Subtract => a - b,
            Op::Multiply => a * b,
            Op::Divide => a / b,
        }
    }

    /// (∂/∂a, ∂/∂b) of `a op b`.
    fn partials(&self, a: f32, b: f32) -> (f32, f32) {
        match self.op {
            Op::Add => (1.0, 1.0),
            Op::Subtract => (1.0, -1.0),
            Op::Multiply => (b, a),
            Op::Divide => (1.0 / b, -a / (b * b)),
        }
    }
}

impl LayerOp for NumpyOp {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        if inputs.len() != self.tensors() {
            return Err(Error::mismatch(
                format!("{} tensor operands for `{}`", self.tensors(), self.class),
                inputs.len(),
            ));
        }
        if inputs.len() == 2 && inputs[0] != inputs[1] {
            return Err(Error::mismatch(
                format!("operands of the same shape for `{}`", self.class),
                format!("{:?} and {:?}", inputs[0], inputs[1]),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn forward(&self, x: &[&ArrayD<f32>], _cx: &mut Ctx<'_>) -> Result<Forward> {
        let mut y = x[0].as_standard_layout().into_owned();
        match (self.a, self.b) {
            (Operand::Tensor, Operand::Tensor) => {
                Zip::from(&mut y)
                    .and(x[1])
                    .for_each(|v, &b| *v = self.apply(*v, b));
            }
            (Operand::Tensor, Operand::Scalar(c)) => y.mapv_inplace(|v| self.apply(v, c)),
            (Operand::Scalar(c), _) => y.mapv_inplace(|v| self.apply(c, v)),
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
        let mut da = dy.as_standard_layout().into_owned();
        Ok(Backward::inputs(match (self.a, self.b) {
            (Operand::Tensor, Operand::Tensor) => {
                let mut db = da.clone();
                Zip::from(&mut da)
                    .and(&mut db)
                    .and(x[0])
                    .and(x[1])
                    .for_each(|ga, gb, &a, &b| {
                        let (pa, pb) = self.partials(a, b);
                        let g = *ga;
                        *ga = g * pa;
                        *gb = g * pb;
                    });
                vec![da, db]
            }
            (Operand::Tensor, Operand::Scalar(c)) => {
                Zip::from(&mut da)
                    .and(x[0])
                    .for_each(|g, &a| *g *= self.partials(a, c).0);
                vec![da]
            }
            (Operand::Scalar(c), _) => {
                Zip::from(&mut da)
                    .and(x[0])
                    .for_each(|g, &b| *g *= self.partials(c, b).1);
                vec![da]
            }
        }))
    }

    fn detail(&self) -> Option<String> {
        let side = |o: Operand| match o {
            Operand::Tensor => "x".to_string(),
            Operand::Scalar(c) => c.to_string(),
        };
        let sym = match self.op {
            Op::Add => "+",
            Op::Subtract => "-",
            Op::Multiply => "*",
            Op::Divide => "/",
        };
        Some(format!("{} {sym} {}", side(self.a), side(self.b)))
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{gradients, values};
    use super::*;
    use serde_json::json;

    #[test]
    fn scalar_and_tensor_operands() {
        let t = json!({"class_name": "__keras_tensor__", "config": {}});
        for (class, args) in [
            ("Add", json!([t, 3.0])),
            ("Multiply", json!([0.16666666666666666, t])),
            ("Divide", json!([2.0, t])),
            ("Subtract", json!([t, t])),
            ("Divide", json!([t, t])),
        ] {
            let op = build(class, &args, &Map::new()).unwrap();
            let k = if args[0].is_object() && args[1].is_object() {
                2
            } else {
                1
            };
            assert_eq!(op.output_shape(&vec![vec![3]; k]).unwrap(), vec![3]);
            let xs: Vec<ArrayD<f32>> = (0..k)
                .map(|i| values(&[2, 3], i as u64 + 1).mapv(|v| v + 2.0))
                .collect();
            gradients(op.as_ref(), &xs, Mode::Inference, 1e-2);
        }
        assert!(build("Power", &json!([t, 2.0]), &Map::new()).is_err());
        assert!(build("Add", &json!([1.0, 2.0]), &Map::new()).is_err());
    }

    #[test]
    fn position_ids_from_token_ids() {
        let t = json!({"class_name": "__keras_tensor__", "config": {}});
        let cfg = |v: serde_json::Value| v.as_object().unwrap().clone();
        let ones = build("OnesLike", &json!([t]), &cfg(json!({"dtype": null}))).unwrap();
        let cumsum = build("Cumsum", &json!([t]), &cfg(json!({"axis": 1}))).unwrap();
        let ids = values(&[2, 4], 1);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let o = ones.forward(&[&ids], &mut cx).unwrap().y;
        let c = cumsum.forward(&[&o], &mut cx).unwrap().y;
        let row: Vec<f32> = (0..4).map(|j| c[[1, j]]).collect();
        assert_eq!(row, vec![1.0, 2.0, 3.0, 4.0]);
        gradients(
            cumsum.as_ref(),
            &[values(&[2, 3, 2], 2)],
            Mode::Inference,
            1e-2,
        );
        let neg = build("Cumsum", &json!([t]), &cfg(json!({"axis": -1}))).unwrap();
        gradients(
            neg.as_ref(),
            &[values(&[2, 3, 2], 3)],
            Mode::Inference,
            1e-2,
        );
        let err = build("Cumsum", &json!([t]), &cfg(json!({"axis": null})))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("axis"), "{err}");
        assert!(cumsum.output_shape(&[vec![4]]).is_ok());
        let batch = build("Cumsum", &json!([t]), &cfg(json!({"axis": 0}))).unwrap();
        assert!(batch.output_shape(&[vec![4]]).is_err());
    }
}
