//! Weight and activity regularizers: `L1`, `L2`, `L1L2`, and the two other
//! classes Keras's registry holds (`Regularizer`, which adds nothing, and
//! `OrthogonalRegularizer`).
//!
//! Spec: `keras/src/regularizers/regularizers.py` and `keras/src/regularizers/__init__.py`
//! (Keras 3.15). Factors keep the exact value of the JSON number (f64); the
//! penalty itself is computed in the weights' dtype, as Keras does with
//! `ops.cast(self.l1, dtype=x.dtype)`.

use std::fmt;

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMutD, Axis, Ix2};
use serde_json::{Value, json};

use crate::engine::pool::join_if;
use crate::error::{Error, Result};

/// A Keras regularizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularizer {
    /// `l1 * sum(|x|)`.
    L1 {
        /// Factor.
        l1: f64,
    },
    /// `l2 * sum(x^2)` (no one-half).
    L2 {
        /// Factor.
        l2: f64,
    },
    /// `l1 * sum(|x|) + l2 * sum(x^2)`.
    L1L2 {
        /// L1 factor.
        l1: f64,
        /// L2 factor.
        l2: f64,
    },
    /// The base class `Regularizer`: always 0.
    Zero,
    /// `OrthogonalRegularizer`: `factor * 0.5 * sum|offdiag(U Uᵀ)| / num_pairs`
    /// with `U` the L2-normalized rows (or columns) of a rank-2 weight.
    Orthogonal {
        /// Factor.
        factor: f64,
        /// `mode="rows"` (true) or `"columns"` (false).
        rows: bool,
    },
}

/// Identifiers accepted (from `ALL_OBJECTS_DICT`: class names and their snake case).
pub const REGULARIZER_NAMES: &[&str] = &[
    "L1",
    "l1",
    "L2",
    "l2",
    "L1L2",
    "l1l2",
    "Regularizer",
    "regularizer",
    "OrthogonalRegularizer",
    "orthogonal_regularizer",
];

impl Regularizer {
    /// Parse a layer config's regularizer value: `null`, a string identifier
    /// (`regularizers.get`: the class with its default factors), or a
    /// serialized object `{"class_name": "L1", "config": {"l1": ...}}`.
    pub fn from_config(value: &Value) -> Result<Option<Self>> {
        match value {
            Value::Null => Ok(None),
            Value::String(name) => Self::from_class(name, None).map(Some),
            Value::Object(obj) => {
                let class = obj
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::missing("regularizer `class_name`"))?;
                let config = obj.get("config");
                Self::from_class(class, config).map(Some)
            }
            other => Err(Error::mismatch(
                "a regularizer identifier or object",
                format!("`{other}`"),
            )),
        }
    }

    fn from_class(class: &str, config: Option<&Value>) -> Result<Self> {
        let factor = |key: &str, default: f64| -> Result<f64> {
            let v = match config.and_then(|c| c.get(key)) {
                None | Some(Value::Null) => default,
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| Error::mismatch(format!("a number for `{key}`"), v))?,
            };
            // `validate_float_arg` in regularizers.py: finite and non-negative.
            if !v.is_finite() || v < 0.0 {
                return Err(Error::mismatch(format!("a finite non-negative `{key}`"), v));
            }
            Ok(v)
        };
        match class {
            // L1(l1=0.01), L2(l2=0.01), L1L2(l1=0.0, l2=0.0): the constructors' defaults.
            "L1" | "l1" => Ok(Regularizer::L1 {
                l1: factor("l1", 0.01)?,
            }),
            "L2" | "l2" => Ok(Regularizer::L2 {
                l2: factor("l2", 0.01)?,
            }),
            "L1L2" | "l1l2" => Ok(Regularizer::L1L2 {
                l1: factor("l1", 0.0)?,
                l2: factor("l2", 0.0)?,
            }),
            "Regularizer" | "regularizer" => Ok(Regularizer::Zero),
            "OrthogonalRegularizer" | "orthogonal_regularizer" => {
                let rows = match config.and_then(|c| c.get("mode")) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(m)) if m == "rows" => true,
                    Some(Value::String(m)) if m == "columns" => false,
                    Some(v) => return Err(Error::mismatch("`mode` \"rows\" or \"columns\"", v)),
                };
                Ok(Regularizer::Orthogonal {
                    factor: factor("factor", 0.01)?,
                    rows,
                })
            }
            other => Err(Error::unsupported("regularizer", other, REGULARIZER_NAMES)),
        }
    }

    /// The serialized form Keras writes (`regularizers.serialize`).
    pub fn to_config(self) -> Value {
        let (class, config) = match self {
            Regularizer::L1 { l1 } => ("L1", json!({ "l1": l1 })),
            Regularizer::L2 { l2 } => ("L2", json!({ "l2": l2 })),
            Regularizer::L1L2 { l1, l2 } => ("L1L2", json!({ "l1": l1, "l2": l2 })),
            Regularizer::Zero => ("Regularizer", json!({})),
            Regularizer::Orthogonal { factor, rows } => (
                "OrthogonalRegularizer",
                json!({ "factor": factor, "mode": if rows { "rows" } else { "columns" } }),
            ),
        };
        json!({
            "module": "keras.regularizers",
            "class_name": class,
            "config": config,
            "registered_name": null,
        })
    }

    /// The same regularizer without its L1 term (`None` when nothing is left),
    /// for training where L1 is applied as a proximal step instead.
    pub fn without_l1(self) -> Option<Self> {
        match self {
            Regularizer::L1 { .. } => None,
            Regularizer::L1L2 { l2, .. } if l2 != 0.0 => Some(Regularizer::L2 { l2 }),
            Regularizer::L1L2 { .. } => None,
            other => Some(other),
        }
    }

    /// The L1 factor (0 when absent).
    pub fn l1(self) -> f64 {
        match self {
            Regularizer::L1 { l1 } | Regularizer::L1L2 { l1, .. } => l1,
            _ => 0.0,
        }
    }

    /// The L2 factor (0 when absent).
    pub fn l2(self) -> f64 {
        match self {
            Regularizer::L2 { l2 } | Regularizer::L1L2 { l2, .. } => l2,
            _ => 0.0,
        }
    }

    /// The penalty of `x`, in f32 like Keras: the factor is cast to f32 and
    /// each term is `factor * sum(...)`; an `L1L2` term with a zero factor is
    /// skipped, as in `L1L2.__call__`. Sums accumulate in f64 and are rounded
    /// once, which is as close as f32 gets to XLA's tree reductions.
    pub fn penalty(self, x: ArrayViewD<'_, f32>) -> Result<f32> {
        if self.is_elementwise() {
            return Ok(match x.as_slice() {
                Some(s) => {
                    let (lo, hi) = s.split_at(split_point(s.len()));
                    let (a, b) = join_if(!lo.is_empty(), || self.sums(lo), || self.sums(hi));
                    self.penalty_of(&[a, b])
                }
                None => self.penalty_from_sums(
                    x.iter().map(|&v| f64::from(v.abs())).sum(),
                    x.iter().map(|&v| f64::from(v * v)).sum(),
                ),
            });
        }
        Ok(match self {
            Regularizer::Orthogonal { factor, rows } => {
                let w = as_matrix(x, rows)?;
                let (u, _) = normalize_rows(w.view());
                let p = u.dot(&u.t());
                let n = p.nrows();
                let mut total = 0.0f64;
                for ((i, j), v) in p.indexed_iter() {
                    if i != j {
                        total += f64::from(v.abs());
                    }
                }
                let num_pairs = n as f32 * (n as f32 - 1.0) / 2.0;
                (factor as f32) * 0.5 * (total as f32) / num_pairs
            }
            // The elementwise kinds returned above.
            _ => 0.0,
        })
    }

    /// True for the regularizers that act on each value alone (L1, L2,
    /// L1L2, the zero regularizer).
    fn is_elementwise(self) -> bool {
        !matches!(self, Regularizer::Orthogonal { .. })
    }

    /// True when this penalty and `gradient` (the regularizer whose
    /// gradient is taken along) can be handled in one elementwise pass
    /// ([`Regularizer::pass`]).
    pub(crate) fn fuses_with(self, gradient: Option<Regularizer>) -> bool {
        self.is_elementwise() && gradient.is_none_or(Self::is_elementwise)
    }

    /// The sums an elementwise penalty needs over `w`, in blocks of 256
    /// values (16 float32 lanes of 16 terms: relative error below 1e-6)
    /// added in f64.
    fn sums(self, w: &[f32]) -> Sums {
        let (l1, l2) = (self.l1() != 0.0, self.l2() != 0.0);
        Sums {
            abs: if l1 { block_sum(w, f32::abs) } else { 0.0 },
            sq: if l2 { block_sum(w, |v| v * v) } else { 0.0 },
        }
    }

    /// An elementwise penalty from its sums, in f32 like Keras: the factor
    /// is cast to f32 and each term is `factor * sum(...)`; an `L1L2` term
    /// with a zero factor is skipped, as in `L1L2.__call__`.
    fn penalty_from_sums(self, abs: f64, sq: f64) -> f32 {
        match self {
            Regularizer::L1 { l1 } => (l1 as f32) * abs as f32,
            Regularizer::L2 { l2 } => (l2 as f32) * sq as f32,
            Regularizer::L1L2 { l1, l2 } => {
                let mut r = 0.0f32;
                if l1 != 0.0 {
                    r += (l1 as f32) * abs as f32;
                }
                if l2 != 0.0 {
                    r += (l2 as f32) * sq as f32;
                }
                r
            }
            Regularizer::Zero | Regularizer::Orthogonal { .. } => 0.0,
        }
    }

    /// This penalty of `x`, and `gradient`'s gradient (`self`, or `self`
    /// without its L1 term for proximal L1) added to `grad`, in one pass over
    /// the weight, split over both threads for large weights.
    pub fn penalty_and_gradient(
        self,
        gradient: Option<Regularizer>,
        x: ArrayViewD<'_, f32>,
        mut grad: ArrayViewMutD<'_, f32>,
    ) -> Result<f32> {
        if let (true, Some(w), Some(g)) =
            (self.fuses_with(gradient), x.as_slice(), grad.as_slice_mut())
            && w.len() == g.len()
        {
            let mid = split_point(w.len());
            let (w1, w2) = w.split_at(mid);
            let (g1, g2) = g.split_at_mut(mid);
            let (a, b) = join_if(
                mid > 0,
                || self.pass(gradient, w1, g1),
                || self.pass(gradient, w2, g2),
            );
            return Ok(self.penalty_of(&[a, b]));
        }
        let p = self.penalty(x.view())?;
        if let Some(r) = gradient {
            r.add_gradient(x, grad.view_mut(), 1.0)?;
        }
        Ok(p)
    }

    /// One pass of an elementwise penalty over part of a weight: adds
    /// `gradient`'s gradient to `g` and returns the part's sums (combine the
    /// parts, in order, with [`Regularizer::penalty_of`]).
    pub(crate) fn pass(self, gradient: Option<Regularizer>, w: &[f32], g: &mut [f32]) -> Sums {
        if let Some(r) = gradient {
            r.add_gradient_slice(w, g, 1.0);
        }
        self.sums(w)
    }

    /// An elementwise penalty from the sums of the parts of its weight.
    pub(crate) fn penalty_of(self, parts: &[Sums]) -> f32 {
        let abs = parts.iter().map(|p| p.abs).sum();
        let sq = parts.iter().map(|p| p.sq).sum();
        self.penalty_from_sums(abs, sq)
    }

    /// `grad += scale · d(penalty)/dw` for an elementwise penalty.
    fn add_gradient_slice(self, w: &[f32], g: &mut [f32], scale: f32) {
        let d = self.elementwise_derivative(scale);
        for (g, &w) in g.iter_mut().zip(w) {
            *g += d(w);
        }
    }

    /// `scale · d(penalty)/dw` of an elementwise penalty, as a function of
    /// the value.
    fn elementwise_derivative(self, scale: f32) -> impl Fn(f32) -> f32 {
        let l1 = self.l1() as f32 * scale;
        let l2 = self.l2() as f32 * scale;
        move |w| {
            let d_abs = if w >= 0.0 { 1.0 } else { -1.0 };
            l1 * d_abs + 2.0 * l2 * w
        }
    }

    /// Add `scale` times the penalty's gradient with respect to `x` to
    /// `grad`. The derivative of |w| at 0 is taken as +1, which is what
    /// `jax.grad` of Keras's `ops.sum(ops.absolute(x))` gives on the JAX
    /// backend (checked: `jax.grad(jnp.abs)(0.0) == 1.0`); the TensorFlow
    /// backend would give 0.
    pub fn add_gradient(
        self,
        x: ArrayViewD<'_, f32>,
        mut grad: ArrayViewMutD<'_, f32>,
        scale: f32,
    ) -> Result<()> {
        if let Regularizer::Orthogonal { factor, rows } = self {
            let w = as_matrix(x, rows)?;
            let (u, norms) = normalize_rows(w.view());
            let p = u.dot(&u.t());
            let n = p.nrows();
            let num_pairs = n as f32 * (n as f32 - 1.0) / 2.0;
            let c = (factor as f32) * 0.5 / num_pairs * scale;
            let g = Array2::from_shape_fn(
                (n, n),
                |(i, j)| {
                    if i == j { 0.0 } else { c * sign(p[[i, j]]) }
                },
            );
            let gu = (&g + &g.t()).dot(&u);
            let mut gw = Array2::<f32>::zeros(u.raw_dim());
            for (i, mut row) in gw.axis_iter_mut(Axis(0)).enumerate() {
                let r = norms[i];
                let ui = u.row(i);
                let gi = gu.row(i);
                if r > EPSILON {
                    let dot: f32 = gi.dot(&ui);
                    row.assign(&((&gi - &(&ui * dot)) / r));
                } else {
                    row.assign(&(&gi / EPSILON));
                }
            }
            let gw = if rows { gw } else { gw.reversed_axes() };
            let mut grad2 = grad
                .view_mut()
                .into_dimensionality::<Ix2>()
                .map_err(|e| Error::invalid(e.to_string()))?;
            grad2 += &gw;
            return Ok(());
        }
        match (grad.as_slice_mut(), x.as_slice()) {
            (Some(g), Some(w)) if g.len() == w.len() => {
                let mid = split_point(g.len());
                let (g1, g2) = g.split_at_mut(mid);
                let (w1, w2) = w.split_at(mid);
                join_if(
                    mid > 0,
                    || self.add_gradient_slice(w1, g1, scale),
                    || self.add_gradient_slice(w2, g2, scale),
                );
            }
            _ => {
                let d = self.elementwise_derivative(scale);
                for (g, &w) in grad.iter_mut().zip(x.iter()) {
                    *g += d(w);
                }
            }
        }
        Ok(())
    }
}

/// Sum the non-negative `f(v)` over `w` in blocks of 256 values (16 float32
/// lanes of 16 terms each), the block sums in f64.
fn block_sum(w: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let blocks = w.chunks_exact(256);
    let mut total: f64 = blocks.remainder().iter().map(|&v| f64::from(f(v))).sum();
    for block in blocks {
        let mut lanes = [0f32; 16];
        for c in block.chunks_exact(16) {
            for (lane, &v) in lanes.iter_mut().zip(c) {
                *lane += f(v);
            }
        }
        total += lanes.iter().map(|&l| f64::from(l)).sum::<f64>();
    }
    total
}

/// Partial sums of an elementwise penalty.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sums {
    abs: f64,
    sq: f64,
}

/// Where a weight of `len` values is split between the two threads: at
/// half, on a 256-value block boundary (so the summation blocks do not
/// depend on the split); weights below [`PARALLEL_LEN`] are not split. The
/// split does not depend on the number of threads, so neither do results.
fn split_point(len: usize) -> usize {
    if len >= PARALLEL_LEN {
        len / 512 * 256
    } else {
        0
    }
}

/// Weights with at least this many values are handled on two threads.
const PARALLEL_LEN: usize = 1 << 13;

/// `backend.epsilon()`, the floor of `ops.normalize`'s denominator.
const EPSILON: f32 = 1e-7;

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The weight as a matrix whose rows are normalized (`rows`) or its transpose.
fn as_matrix(x: ArrayViewD<'_, f32>, rows: bool) -> Result<Array2<f32>> {
    let m = x.into_dimensionality::<Ix2>().map_err(|_| {
        Error::mismatch("a rank-2 input for `OrthogonalRegularizer`", "another rank")
    })?;
    Ok(if rows { m.to_owned() } else { m.t().to_owned() })
}

/// `ops.normalize(x, axis=1)` (`keras/src/ops/nn.py`): `x / max(‖x‖, epsilon)`.
fn normalize_rows(w: ArrayView2<'_, f32>) -> (Array2<f32>, Vec<f32>) {
    let mut u = w.to_owned();
    let mut norms = Vec::with_capacity(w.nrows());
    for mut row in u.axis_iter_mut(Axis(0)) {
        let r = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        norms.push(r);
        let d = r.max(EPSILON);
        row.mapv_inplace(|v| v / d);
    }
    (u, norms)
}

impl fmt::Display for Regularizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Regularizer::L1 { l1 } => write!(f, "L1({})", Factor(*l1)),
            Regularizer::L2 { l2 } => write!(f, "L2({})", Factor(*l2)),
            Regularizer::L1L2 { l1, l2 } => {
                write!(f, "L1L2(l1={}, l2={})", Factor(*l1), Factor(*l2))
            }
            Regularizer::Zero => write!(f, "Regularizer()"),
            Regularizer::Orthogonal { factor, rows } => write!(
                f,
                "OrthogonalRegularizer({}, mode={})",
                Factor(*factor),
                if *rows { "rows" } else { "columns" }
            ),
        }
    }
}

/// Displays a factor briefly: a value that is exactly an f32 (as Keras
/// writes `float(self.l1)` of a float32 tensor) is shown as that f32's
/// shortest form, so `0.009999999776482582` reads `0.01`.
#[derive(Debug, Clone, Copy)]
pub struct Factor(pub f64);

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let as_f32 = self.0 as f32;
        if f64::from(as_f32) == self.0 {
            write!(f, "{as_f32}")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objects_and_identifiers() {
        let v = json!({"module": "keras.regularizers", "class_name": "L1",
                       "config": {"l1": 0.009999999776482582}, "registered_name": null});
        assert_eq!(
            Regularizer::from_config(&v).unwrap(),
            Some(Regularizer::L1 {
                l1: 0.009999999776482582
            })
        );
        assert_eq!(
            Regularizer::from_config(&json!("l2")).unwrap(),
            Some(Regularizer::L2 { l2: 0.01 })
        );
        assert_eq!(
            Regularizer::from_config(&json!("l1l2")).unwrap(),
            Some(Regularizer::L1L2 { l1: 0.0, l2: 0.0 })
        );
        assert_eq!(Regularizer::from_config(&Value::Null).unwrap(), None);
        assert_eq!(
            Regularizer::from_config(&json!("orthogonal_regularizer")).unwrap(),
            Some(Regularizer::Orthogonal {
                factor: 0.01,
                rows: true
            })
        );
        assert_eq!(
            Regularizer::from_config(&json!("Regularizer")).unwrap(),
            Some(Regularizer::Zero)
        );
    }

    #[test]
    fn factors_display_briefly() {
        assert_eq!(
            Regularizer::L1 {
                l1: 0.009999999776482582
            }
            .to_string(),
            "L1(0.01)"
        );
        assert_eq!(Regularizer::L2 { l2: 0.01 }.to_string(), "L2(0.01)");
    }

    #[test]
    fn rejects_unknown_and_negative() {
        let err = Regularizer::from_config(&json!("l1_l2")).unwrap_err();
        assert!(err.to_string().contains("unsupported regularizer"), "{err}");
        let err = Regularizer::from_config(&json!({"class_name": "L2", "config": {"l2": -1.0}}))
            .unwrap_err();
        assert!(err.to_string().contains("non-negative"), "{err}");
    }

    #[test]
    fn config_round_trips() {
        let r = Regularizer::L1L2 { l1: 1e-5, l2: 0.25 };
        assert_eq!(Regularizer::from_config(&r.to_config()).unwrap(), Some(r));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let x = ndarray::array![[0.5f32, -1.25, 2.0], [0.3, 0.9, -0.4]].into_dyn();
        for r in [
            Regularizer::L1L2 { l1: 0.3, l2: 0.7 },
            Regularizer::Orthogonal {
                factor: 0.5,
                rows: true,
            },
            Regularizer::Orthogonal {
                factor: 0.5,
                rows: false,
            },
        ] {
            let mut g = ndarray::ArrayD::<f32>::zeros(x.raw_dim());
            r.add_gradient(x.view(), g.view_mut(), 1.0).unwrap();
            for (idx, &gv) in g.indexed_iter() {
                let h = 1e-3f32;
                let mut xp = x.clone();
                xp[&idx] += h;
                let mut xm = x.clone();
                xm[&idx] -= h;
                let fd =
                    (r.penalty(xp.view()).unwrap() - r.penalty(xm.view()).unwrap()) / (2.0 * h);
                assert!((fd - gv).abs() < 1e-2, "{r}: {idx:?}: {fd} vs {gv}");
            }
        }
    }
}
