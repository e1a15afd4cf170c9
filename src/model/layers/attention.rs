//! `MultiHeadAttention` and `GroupQueryAttention`: einsum projections of
//! the query, key and value, scaled dot-product attention per head with
//! Keras's masks, and an einsum projection of the result.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX 0.10.2; paths relative to `site-packages/`:
//!
//! * `keras/src/layers/attention/multi_head_attention.py`: `build` makes
//!   the `EinsumDense` sublayers `query` (`abc,cde->abde`, bias `de`),
//!   `key`, `value` and `attention_output` (`abcd,cde->abe`, bias `e`, to
//!   `output_shape` or the query's last axis), stored under
//!   `query_dense/vars`, `key_dense/vars`, `value_dense/vars` and
//!   `output_dense/vars` in that order (kernel, then bias). `call`: `key`
//!   defaults to `value`; `_compute_attention_mask` ANDs the query mask
//!   `[B, T, 1]`, the value mask `[B, 1, S]`, the key mask `[B, 1, S]`, the
//!   causal mask `row >= col` (`use_causal_mask`) and the sliding window
//!   `|row - col| < sliding_window`. The output carries the query's mask;
//!   the attention scores (`return_attention_scores`) carry none.
//! * `_compute_attention` takes one of two paths. Without dropout and
//!   without `return_attention_scores` it calls `ops.dot_product_attention`
//!   (`keras/src/backend/jax/nn.py` → `jax.nn.dot_product_attention`,
//!   `jax/_src/nn/functions.py` `_dot_product_attention_core`):
//!   `logits = einsum(q, k) * scale`, masked positions replaced by
//!   `-0.7 · float32.max`, `softmax` (a fully masked row becomes uniform),
//!   `einsum(probs, v)`. Otherwise it scales the query first
//!   (`query * scale`), takes `einsum(key, query)`, applies the `Softmax`
//!   layer with the mask (`keras/src/layers/activations/softmax.py`:
//!   masked logits replaced by `-1e9`, softmax, masked probabilities set to
//!   0), then `Dropout` on the probabilities, and `einsum(probs, value)`;
//!   the returned scores are the probabilities before dropout.
//!   `scale = 1 / sqrt(key_dim)` in float64, cast to float32.
//! * Softmax is JAX's `_softmax_deprecated` (`exp(x - max) / sum`, the max
//!   under `stop_gradient`), whose gradient is taken in the same order as
//!   `jax.grad` does it.
//! * `grouped_query_attention.py`: the projections `bqm,muh->bquh` (query
//!   heads), `bkm,mvh->bkvh` (key/value heads), `bquh,uhm->bqm`; key and
//!   value heads are repeated (`ops.repeat(axis=2)`) to the query heads,
//!   then the same attention as above with `scale = 1 / sqrt(head_dim)`.
//!   Keras registers the class as `GroupQueryAttention`; its weights live
//!   under `grouped_query_attention` (the Python class name) in the
//!   sublayer groups `_query_dense`, `_key_dense`, `_value_dense` and
//!   `_output_dense`.
//!
//! Supported: inputs of rank 3 (`[batch, sequence, features]`) with the
//! default `attention_axes` (the sequence axis), `use_causal_mask` and
//! `return_attention_scores` call arguments, `sliding_window`, `dropout`
//! (at training, masks from kerasrs's own seeded random numbers: Keras's
//! stream cannot be reproduced), kernel and bias regularizers and
//! constraints (applied to every projection, as Keras's sublayers get
//! them). Refused with an error: other `attention_axes`, other input ranks,
//! `use_gate`, `flash_attention: true`, `activity_regularizer`, an explicit
//! `attention_mask` tensor.

use ndarray::{Array2, ArrayD, ArrayView2, IxDyn, s};
use rand::Rng;
use serde_json::Value;

use super::einsum::{Equation, Projection, expected_vars, refuse_unsupported};
use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Mask, Saved, Var};
use crate::engine::gemm::matmul;
use crate::error::{Error, Result};

/// `Softmax`'s value for masked logits (`_large_negative_number`, float32).
pub const SOFTMAX_MASKED: f32 = -1e9;

/// `jax.nn.dot_product_attention`'s value for masked logits
/// (`_get_large_negative`: `-0.7 · finfo(float32).max`).
pub const FUSED_MASKED: f32 = -0.7 * f32::MAX;

/// `exp` with XLA's flush of results below the normal range.
#[inline]
pub(super) fn exp(x: f32) -> f32 {
    let v = x.exp();
    if v < f32::MIN_POSITIVE { 0.0 } else { v }
}

/// One softmax row as `_softmax_deprecated` computes it: the unnormalized
/// `u = exp(x - max)` written into `row`, their sum returned.
pub(super) fn softmax_row(row: &mut [f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| {
        if m.is_nan() || v.is_nan() {
            f32::NAN
        } else if v > m {
            v
        } else {
            m
        }
    });
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    row.iter().map(|&v| f64::from(v)).sum::<f64>() as f32
}

/// The gradient of `u / s` (`u = exp(x - max)`, `s = Σu`) for `g` with
/// respect to `x`, in `jax.grad`'s order: `ct_s = Σ (-g·u)·s⁻²`,
/// `dx = (g / s + ct_s) · u`; written into `g`.
pub(super) fn softmax_row_backward(u: &[f32], sum: f32, g: &mut [f32]) {
    let inv_sq = 1.0 / (sum * sum);
    let ct_s = u
        .iter()
        .zip(g.iter())
        .map(|(&u, &d)| f64::from(-d * u * inv_sq))
        .sum::<f64>() as f32;
    for (gv, &u) in g.iter_mut().zip(u) {
        *gv = (*gv / sum + ct_s) * u;
    }
}

/// The two layers this file implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    MultiHead,
    GroupedQuery,
}

impl Kind {
    /// The sublayer groups of the projections in the weights file (GQA's
    /// are named after its private attributes).
    fn groups(self) -> [&'static str; 4] {
        match self {
            Kind::MultiHead => ["query_dense", "key_dense", "value_dense", "output_dense"],
            Kind::GroupedQuery => [
                "_query_dense",
                "_key_dense",
                "_value_dense",
                "_output_dense",
            ],
        }
    }

    fn class(self) -> &'static str {
        match self {
            Kind::MultiHead => "MultiHeadAttention",
            Kind::GroupedQuery => "GroupQueryAttention",
        }
    }
}

/// The per-call options (`use_causal_mask`, `return_attention_scores`)
/// Keras records in the layer's inbound node.
pub(super) fn call_flag(cx: &BuildCx<'_>, key: &str) -> Result<bool> {
    match cx.get(super::CALL_KWARGS).get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::mismatch(
            format!("a boolean call argument `{key}`"),
            other,
        )),
    }
}

/// `MultiHeadAttention` or `GroupQueryAttention`.
#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    kind: Kind,
    /// Query heads.
    heads: usize,
    /// Key/value heads (a divisor of `heads`).
    kv_heads: usize,
    scale: f32,
    dropout: f64,
    causal: bool,
    return_scores: bool,
    sliding_window: Option<usize>,
    /// The projections: query, key, value, output.
    proj: [Projection; 4],
    /// Index of each projection's kernel in `vars` (its bias follows).
    start: [usize; 4],
    /// Three inputs (`key` given).
    has_key: bool,
    vars: Vec<Var>,
}

/// What the backward pass needs.
struct AttnSaved {
    q: ArrayD<f32>,
    k: ArrayD<f32>,
    v: ArrayD<f32>,
    /// `exp(x - max)` per head `[B, N, T, S]`.
    u: ArrayD<f32>,
    /// Their sums `[B, N, T]`.
    sum: ArrayD<f32>,
    /// The attention mask `[B, T, S]`.
    mask: Option<ArrayD<bool>>,
    /// Dropout's scale per probability (`0` or `1 / (1 - rate)`).
    drop: Option<ArrayD<f32>>,
    /// The attention output before the output projection `[B, T, N, Hv]`.
    o: ArrayD<f32>,
}

fn positive(cx: &BuildCx<'_>, key: &str) -> Result<usize> {
    let v = cx.get(key);
    v.as_u64()
        .filter(|&d| d > 0 && d <= 1 << 20)
        .map(|d| d as usize)
        .ok_or_else(|| {
            Error::mismatch(
                format!("a positive integer `{key}` for `{}`", cx.class_name),
                v,
            )
        })
}

/// Stored variables of a sublayer (`query_dense/vars`, ...): read from the
/// layer's group, or taken in order from the flat list given to a layer
/// built in memory.
fn sub_vars(
    cx: &BuildCx<'_>,
    sub: &str,
    p: &Projection,
    flat: &mut usize,
) -> Result<Vec<ArrayD<f32>>> {
    let expected = expected_vars(p);
    let base = cx.vars_path.strip_suffix("/vars").unwrap_or(cx.vars_path);
    let vars_path = format!("{base}/{sub}/vars");
    let stored = match cx.group {
        Some(g) => match g.group(sub).and_then(|s| s.group("vars")) {
            Some(vars) => super::read_stored(vars, &vars_path)?,
            None => Vec::new(),
        },
        None => {
            let end = (*flat + expected.len()).min(cx.stored.len());
            let part = cx.stored[*flat..end].to_vec();
            *flat = end;
            part
        }
    };
    let sub_cx = BuildCx {
        stored: &stored,
        vars_path: &vars_path,
        group: None,
        ..*cx
    };
    sub_cx.take_vars(&expected)
}

/// Builder of `MultiHeadAttention`.
pub fn build_multi_head_attention(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    build(cx, Kind::MultiHead)
}

/// Builder of `GroupQueryAttention`.
pub fn build_grouped_query_attention(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    build(cx, Kind::GroupedQuery)
}

fn build(cx: &BuildCx<'_>, kind: Kind) -> Result<Box<dyn LayerOp>> {
    let class = kind.class();
    refuse_unsupported(cx, &["use_gate", "flash_attention", "activity_regularizer"])?;
    let inputs = cx.inputs;
    let (query, value, key) = attention_inputs(cx, class)?;
    if key[0] != value[0] {
        return Err(Error::mismatch(
            format!("`key` and `value` of the same length for `{class}`"),
            format!("{} and {}", key[0], value[0]),
        ));
    }
    let (heads, kv_heads, key_dim, value_dim, eqs) = match kind {
        Kind::MultiHead => {
            let heads = positive(cx, "num_heads")?;
            let key_dim = positive(cx, "key_dim")?;
            let value_dim = match cx.get("value_dim") {
                Value::Null => key_dim,
                _ => positive(cx, "value_dim")?,
            };
            match cx.get("attention_axes") {
                Value::Null => {}
                v => {
                    let axes: Option<Vec<i64>> = match v {
                        Value::Array(a) => a.iter().map(Value::as_i64).collect(),
                        n => n.as_i64().map(|a| vec![a]),
                    };
                    // The projected rank is 4: `axis` or `3 + axis`.
                    let ok = axes.is_some_and(|a| a.len() == 1 && (a[0] == 1 || a[0] == -2));
                    if !ok {
                        return Err(Error::mismatch(
                            format!(
                                "`attention_axes` over the sequence axis (`[1]` or null) for \
                                 `{class}` layer `{}` (other attention axes are not supported)",
                                cx.name
                            ),
                            v,
                        ));
                    }
                }
            }
            (
                heads,
                heads,
                key_dim,
                value_dim,
                [
                    "abc,cde->abde",
                    "abc,cde->abde",
                    "abc,cde->abde",
                    "abcd,cde->abe",
                ],
            )
        }
        Kind::GroupedQuery => {
            let head_dim = positive(cx, "head_dim")?;
            let heads = positive(cx, "num_query_heads")?;
            let kv_heads = positive(cx, "num_key_value_heads")?;
            if heads % kv_heads != 0 {
                return Err(Error::mismatch(
                    "`num_query_heads` divisible by `num_key_value_heads`",
                    format!("{heads} and {kv_heads}"),
                ));
            }
            if query[1] != value[1] {
                return Err(Error::mismatch(
                    format!("`query` and `value` with the same last dimension for `{class}`"),
                    format!("{} and {}", query[1], value[1]),
                ));
            }
            (
                heads,
                kv_heads,
                head_dim,
                head_dim,
                [
                    "bqm,muh->bquh",
                    "bkm,mvh->bkvh",
                    "bkm,mvh->bkvh",
                    "bquh,uhm->bqm",
                ],
            )
        }
    };
    let dropout = cx.f64_or("dropout", 0.0)?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(Error::mismatch("`dropout` in [0, 1)", dropout));
    }
    let use_bias = cx.bool_or("use_bias", true)?;
    let sliding_window = match cx.get("sliding_window") {
        Value::Null => None,
        _ => Some(positive(cx, "sliding_window")?),
    };
    let out_tail: Vec<Option<usize>> = match (kind, cx.get("output_shape")) {
        (Kind::MultiHead, Value::Null) => vec![Some(query[1])],
        (Kind::MultiHead, Value::Number(n)) => vec![Some(
            n.as_u64()
                .filter(|&d| d > 0 && d <= 1 << 31)
                .ok_or_else(|| Error::mismatch("a positive `output_shape`", n))?
                as usize,
        )],
        (Kind::MultiHead, Value::Array(list)) if list.len() == 1 => vec![Some(
            list[0]
                .as_u64()
                .filter(|&d| d > 0 && d <= 1 << 31)
                .ok_or_else(|| Error::mismatch("a positive `output_shape`", &list[0]))?
                as usize,
        )],
        (Kind::MultiHead, other) => {
            return Err(Error::mismatch(
                format!(
                    "an `output_shape` of one dimension for `{class}` layer `{}` (several \
                     output dimensions are not supported)",
                    cx.name
                ),
                other,
            ));
        }
        (Kind::GroupedQuery, _) => vec![Some(query[1])],
    };
    let causal = call_flag(cx, "use_causal_mask")?;
    let return_scores = call_flag(cx, "return_attention_scores")?;
    if value_dim != key_dim && dropout == 0.0 && !return_scores {
        // `jax.nn.dot_product_attention` needs equal head sizes, and
        // Keras's fallback reshapes the result to the query's shape.
        return Err(Error::mismatch(
            format!(
                "`value_dim` equal to `key_dim` ({key_dim}) for `{class}` layer `{}` without \
                 dropout or `return_attention_scores` (Keras 3.15.1 on JAX fails to run it \
                 too: `dot_product_attention` needs equal head sizes)",
                cx.name
            ),
            value_dim,
        ));
    }
    let bias = |axes: &'static str| use_bias.then_some(axes);
    let (qb, kvb, ob) = match kind {
        Kind::MultiHead => ("de", "de", "e"),
        Kind::GroupedQuery => ("uh", "vh", "m"),
    };
    let q = Projection::new(
        Equation::parse(eqs[0])?,
        query,
        &[None, Some(heads), Some(key_dim)],
        bias(qb),
    )?;
    let k = Projection::new(
        Equation::parse(eqs[1])?,
        key,
        &[None, Some(kv_heads), Some(key_dim)],
        bias(kvb),
    )?;
    let v = Projection::new(
        Equation::parse(eqs[2])?,
        value,
        &[None, Some(kv_heads), Some(value_dim)],
        bias(kvb),
    )?;
    let o = Projection::new(
        Equation::parse(eqs[3])?,
        &[query[0], heads, value_dim],
        &[None, out_tail[0]],
        bias(ob),
    )?;
    let proj = [q, k, v, o];
    let mut vars = Vec::new();
    let mut start = [0; 4];
    let mut flat = 0;
    for (i, (p, sub)) in proj.iter().zip(kind.groups()).enumerate() {
        start[i] = vars.len();
        for (value, role) in sub_vars(cx, sub, p, &mut flat)?
            .into_iter()
            .zip(["kernel", "bias"])
        {
            let mut var = Var::new(role, value);
            var.regularizer = cx.regularizer(&format!("{role}_regularizer"))?;
            var.constraint = cx.constraint(&format!("{role}_constraint"))?;
            vars.push(var);
        }
    }
    if cx.group.is_none() && flat != cx.stored.len() {
        return Err(Error::mismatch(
            format!("{flat} variables for `{class}` layer `{}`", cx.name),
            cx.stored.len(),
        ));
    }
    if cx.group.is_some() && !cx.stored.is_empty() {
        return Err(Error::mismatch(
            format!(
                "no variables of `{class}` layer `{}` itself (they live in its sublayers)",
                cx.name
            ),
            format!("{} in {}", cx.stored.len(), cx.vars_path),
        ));
    }
    let layer = MultiHeadAttention {
        kind,
        heads,
        kv_heads,
        scale: (1.0 / (key_dim as f64).sqrt()) as f32,
        dropout,
        causal,
        return_scores,
        sliding_window,
        proj,
        start,
        has_key: inputs.len() == 3,
        vars,
    };
    layer.output_shapes(cx.inputs)?;
    Ok(Box::new(layer))
}

/// `[B, T]` and `[B, S]` masks, causal and window masks ANDed into
/// `[B, T, S]` (`_compute_attention_mask`); `None` when nothing masks.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_mask(
    n: usize,
    t: usize,
    s: usize,
    query: Option<&Mask>,
    value: Option<&Mask>,
    key: Option<&Mask>,
    causal: bool,
    window: Option<usize>,
) -> Result<Option<ArrayD<bool>>> {
    if query.is_none() && value.is_none() && key.is_none() && !causal && window.is_none() {
        return Ok(None);
    }
    let check = |m: Option<&Mask>, len: usize, what: &str| -> Result<()> {
        match m {
            Some(m) if m.shape() != [n, len] => Err(Error::mismatch(
                format!("a {what} mask of shape [{n}, {len}]"),
                format!("{:?}", m.shape()),
            )),
            _ => Ok(()),
        }
    };
    check(query, t, "query")?;
    check(value, s, "value")?;
    check(key, s, "key")?;
    Ok(Some(ArrayD::from_shape_fn(IxDyn(&[n, t, s]), |ix| {
        let (b, i, j) = (ix[0], ix[1], ix[2]);
        query.is_none_or(|m| m[[b, i]])
            && value.is_none_or(|m| m[[b, j]])
            && key.is_none_or(|m| m[[b, j]])
            && (!causal || i >= j)
            && window.is_none_or(|w| i.abs_diff(j) < w)
    })))
}

/// The head `h` of a `[B, L, N, H]` array for sample `b`, as `[L, H]`.
fn head(x: &ArrayD<f32>, b: usize, h: usize) -> ArrayView2<'_, f32> {
    x.slice(s![b, .., h, ..])
}

impl MultiHeadAttention {
    fn kernel(&self, p: usize) -> &ArrayD<f32> {
        &self.vars[self.start[p]].value
    }

    fn bias(&self, p: usize) -> Option<&ArrayD<f32>> {
        self.proj[p]
            .bias
            .as_ref()
            .map(|_| &self.vars[self.start[p] + 1].value)
    }

    /// Whether Keras takes the `dot_product_attention` path.
    fn fused(&self) -> bool {
        self.dropout == 0.0 && !self.return_scores
    }

    /// Repeat key/value heads to the query heads (`ops.repeat(axis=2)`).
    fn repeat(&self, x: ArrayD<f32>) -> ArrayD<f32> {
        let r = self.heads / self.kv_heads;
        if r == 1 {
            return x;
        }
        let sh = x.shape().to_vec();
        ArrayD::from_shape_fn(IxDyn(&[sh[0], sh[1], self.heads, sh[3]]), |ix| {
            x[[ix[0], ix[1], ix[2] / r, ix[3]]]
        })
    }

    /// The sum over repeats of a gradient of repeated heads.
    fn unrepeat(&self, g: ArrayD<f32>) -> ArrayD<f32> {
        let r = self.heads / self.kv_heads;
        if r == 1 {
            return g;
        }
        let sh = g.shape().to_vec();
        let mut out = ArrayD::zeros(IxDyn(&[sh[0], sh[1], self.kv_heads, sh[3]]));
        for ((b, l, h, d), &v) in g
            .view()
            .into_dimensionality::<ndarray::Ix4>()
            .expect("rank 4")
            .indexed_iter()
        {
            out[[b, l, h / r, d]] += v;
        }
        out
    }

    fn run(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<(Forward, AttnSaved)> {
        let class = self.kind.class();
        let query = x[0];
        let value = x[1];
        let key = if self.has_key { x[2] } else { value };
        let mask_of = |i: usize| masks.get(i).copied().flatten();
        let q = self.proj[0].forward(query, self.kernel(0), self.bias(0))?;
        let k = self.repeat(self.proj[1].forward(key, self.kernel(1), self.bias(1))?);
        let v = self.repeat(self.proj[2].forward(value, self.kernel(2), self.bias(2))?);
        let (n, t, srclen) = (query.shape()[0], query.shape()[1], value.shape()[1]);
        let mask = attention_mask(
            n,
            t,
            srclen,
            mask_of(0),
            mask_of(1),
            if self.has_key { mask_of(2) } else { None },
            self.causal,
            self.sliding_window,
        )
        .map_err(|e| e.at(format!("`{class}` masks")))?;
        let fused = self.fused();
        let heads = self.heads;
        let hv = v.shape()[3];
        let mut u = ArrayD::<f32>::zeros(IxDyn(&[n, heads, t, srclen]));
        let mut sum = ArrayD::<f32>::zeros(IxDyn(&[n, heads, t]));
        let mut o = ArrayD::<f32>::zeros(IxDyn(&[n, t, heads, hv]));
        let mut scores = self
            .return_scores
            .then(|| ArrayD::<f32>::zeros(IxDyn(&[n, heads, t, srclen])));
        let dropping = cx.training() && self.dropout > 0.0;
        let mut drop = dropping.then(|| ArrayD::<f32>::zeros(IxDyn(&[n, heads, t, srclen])));
        let keep_scale = (1.0 / (1.0 - self.dropout)) as f32;
        let scale = self.scale;
        for b in 0..n {
            for h in 0..heads {
                let qb = head(&q, b, h);
                let kb = head(&k, b, h);
                let mut logits: Array2<f32> = if fused {
                    let mut l = matmul(qb, kb.t());
                    l.mapv_inplace(|v| v * scale);
                    l
                } else {
                    let qs = qb.mapv(|v| v * scale);
                    matmul(qs.view(), kb.t())
                };
                let masked = if fused { FUSED_MASKED } else { SOFTMAX_MASKED };
                if let Some(m) = &mask {
                    for ((i, j), l) in logits.indexed_iter_mut() {
                        if !m[[b, i, j]] {
                            *l = masked;
                        }
                    }
                }
                let mut probs = Array2::<f32>::zeros((t, srclen));
                for i in 0..t {
                    let row = logits.row_mut(i);
                    let row = row.into_slice().expect("standard layout");
                    let s_i = softmax_row(row);
                    sum[[b, h, i]] = s_i;
                    for j in 0..srclen {
                        u[[b, h, i, j]] = row[j];
                        let p = row[j] / s_i;
                        let p = match &mask {
                            Some(m) if !fused && !m[[b, i, j]] => 0.0,
                            _ => p,
                        };
                        probs[[i, j]] = p;
                    }
                }
                if let Some(sc) = &mut scores {
                    sc.slice_mut(s![b, h, .., ..]).assign(&probs);
                }
                if let Some(d) = &mut drop {
                    for i in 0..t {
                        for j in 0..srclen {
                            let keep = if cx.rng.random::<f64>() >= self.dropout {
                                keep_scale
                            } else {
                                0.0
                            };
                            d[[b, h, i, j]] = keep;
                            probs[[i, j]] *= keep;
                        }
                    }
                }
                let ob = matmul(probs.view(), head(&v, b, h));
                o.slice_mut(s![b, .., h, ..]).assign(&ob);
            }
        }
        let y = self.proj[3].forward(&o, self.kernel(3), self.bias(3))?;
        let saved = AttnSaved {
            q,
            k,
            v,
            u,
            sum,
            mask,
            drop,
            o,
        };
        let mut f = Forward::plain(y);
        if let Some(sc) = scores {
            f.extra.push(sc);
        }
        Ok((f, saved))
    }

    fn grads(
        &self,
        x: &[&ArrayD<f32>],
        saved: &Saved,
        dy: ArrayD<f32>,
        dscores: Option<ArrayD<f32>>,
        want_inputs: bool,
    ) -> Result<Backward> {
        let st = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<AttnSaved>())
            .ok_or_else(|| {
                Error::training(format!(
                    "`{}` was not run in training mode",
                    self.kind.class()
                ))
            })?;
        let query = x[0];
        let value = x[1];
        let key = if self.has_key { x[2] } else { value };
        let fused = self.fused();
        let (n, heads, t, srclen) = (
            st.u.shape()[0],
            st.u.shape()[1],
            st.u.shape()[2],
            st.u.shape()[3],
        );
        let mut grads: Vec<Option<ArrayD<f32>>> = vec![None; self.vars.len()];
        let mut put = |p: usize, dw: ArrayD<f32>, db: Option<ArrayD<f32>>, start: &[usize; 4]| {
            grads[start[p]] = Some(dw);
            if let Some(db) = db {
                grads[start[p] + 1] = Some(db);
            }
        };
        let (d_o, dwo, dbo) = self.proj[3].backward(&st.o, self.kernel(3), &dy, true)?;
        put(3, dwo, dbo, &self.start);
        let d_o = d_o.expect("input gradient requested");
        let mut dq = ArrayD::<f32>::zeros(st.q.raw_dim());
        let mut dk = ArrayD::<f32>::zeros(st.k.raw_dim());
        let mut dv = ArrayD::<f32>::zeros(st.v.raw_dim());
        let scale = self.scale;
        for b in 0..n {
            for h in 0..heads {
                // Probabilities as the forward pass used them.
                let mut p = Array2::<f32>::zeros((t, srclen));
                for i in 0..t {
                    for j in 0..srclen {
                        let mut v = st.u[[b, h, i, j]] / st.sum[[b, h, i]];
                        if let Some(m) = &st.mask
                            && !fused
                            && !m[[b, i, j]]
                        {
                            v = 0.0;
                        }
                        if let Some(d) = &st.drop {
                            v *= d[[b, h, i, j]];
                        }
                        p[[i, j]] = v;
                    }
                }
                let dob = head(&d_o, b, h);
                dv.slice_mut(s![b, .., h, ..]).assign(&matmul(p.t(), dob));
                let mut dp = matmul(dob, head(&st.v, b, h).t());
                for ((i, j), g) in dp.indexed_iter_mut() {
                    if let Some(d) = &st.drop {
                        *g *= d[[b, h, i, j]];
                    }
                    if let Some(ds) = &dscores {
                        *g += ds[[b, h, i, j]];
                    }
                    if let Some(m) = &st.mask
                        && !m[[b, i, j]]
                        && !fused
                    {
                        *g = 0.0;
                    }
                }
                for i in 0..t {
                    let u: Vec<f32> = (0..srclen).map(|j| st.u[[b, h, i, j]]).collect();
                    let mut row = dp.row_mut(i);
                    let g = row.as_slice_mut().expect("standard layout");
                    softmax_row_backward(&u, st.sum[[b, h, i]], g);
                    if let Some(m) = &st.mask {
                        for (j, gv) in g.iter_mut().enumerate() {
                            if !m[[b, i, j]] {
                                *gv = 0.0;
                            }
                        }
                    }
                }
                let qb = head(&st.q, b, h);
                let kb = head(&st.k, b, h);
                if fused {
                    dp.mapv_inplace(|v| v * scale);
                    dq.slice_mut(s![b, .., h, ..])
                        .assign(&matmul(dp.view(), kb));
                    dk.slice_mut(s![b, .., h, ..]).assign(&matmul(dp.t(), qb));
                } else {
                    let qs = qb.mapv(|v| v * scale);
                    let mut dqs = matmul(dp.view(), kb);
                    dqs.mapv_inplace(|v| v * scale);
                    dq.slice_mut(s![b, .., h, ..]).assign(&dqs);
                    dk.slice_mut(s![b, .., h, ..])
                        .assign(&matmul(dp.t(), qs.view()));
                }
            }
        }
        let dk = self.unrepeat(dk);
        let dv = self.unrepeat(dv);
        let (dquery, dwq, dbq) = self.proj[0].backward(query, self.kernel(0), &dq, want_inputs)?;
        put(0, dwq, dbq, &self.start);
        let (dkey, dwk, dbk) = self.proj[1].backward(key, self.kernel(1), &dk, want_inputs)?;
        put(1, dwk, dbk, &self.start);
        let (dvalue, dwv, dbv) = self.proj[2].backward(value, self.kernel(2), &dv, want_inputs)?;
        put(2, dwv, dbv, &self.start);
        let zeros = |a: &ArrayD<f32>| ArrayD::zeros(a.raw_dim());
        let mut inputs = vec![
            dquery.unwrap_or_else(|| zeros(query)),
            dvalue.unwrap_or_else(|| zeros(value)),
        ];
        match dkey {
            Some(dkey) if self.has_key => inputs.push(dkey),
            Some(dkey) => inputs[1] += &dkey,
            None if self.has_key => inputs.push(zeros(key)),
            None => {}
        }
        Ok(Backward {
            inputs,
            vars: grads,
        })
    }
}

impl LayerOp for MultiHeadAttention {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        Ok(self.output_shapes(inputs)?.remove(0))
    }

    fn output_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        let class = self.kind.class();
        let want = 2 + usize::from(self.has_key);
        if inputs.len() != want {
            return Err(Error::mismatch(
                format!("{want} inputs for `{class}`"),
                inputs.len(),
            ));
        }
        let (query, value) = (&inputs[0], &inputs[1]);
        let key = inputs.get(2).unwrap_or(value);
        for (p, s) in [(0, query), (1, key), (2, value)] {
            if self.proj[p].input != *s {
                return Err(Error::mismatch(
                    format!("an input of shape {:?} for `{class}`", self.proj[p].input),
                    format!("{s:?}"),
                ));
            }
        }
        let mut out = vec![self.proj[3].output.clone()];
        if self.return_scores {
            out.push(vec![self.heads, query[0], value[0]]);
        }
        Ok(out)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(
        &self,
        _x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        let mut out = vec![masks.first().copied().flatten().cloned()];
        if self.return_scores {
            out.push(None);
        }
        Ok(out)
    }

    fn channel_axes(&self, i: usize) -> Option<(usize, (usize, usize))> {
        // Query/key/value kernels `[features, heads, head size]`: a
        // feature in, a (head, unit) pair out; the output kernel
        // `[heads, head size, features]`: a head in, a feature out.
        let p = (0..4).find(|&p| self.start[p] == i)?;
        Some(self.proj[p].channel_axes())
    }

    fn var_scope(&self, i: usize) -> Option<&'static str> {
        let p = (0..4).rev().find(|&p| self.start[p] <= i)?;
        Some(["query", "key", "value", "attention_output"][p])
    }

    fn var_path(&self, i: usize) -> String {
        let p = (0..4).rev().find(|&p| self.start[p] <= i).unwrap_or(0);
        let sub = self.kind.groups()[p];
        format!("{sub}/vars/{}", i - self.start[p])
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        self.forward_masked(x, &[], cx)
    }

    fn forward_masked(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<Forward> {
        let (mut f, saved) = self.run(x, masks, cx)?;
        if cx.training() {
            f.saved = Some(Box::new(saved));
        }
        Ok(f)
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.grads(x, saved, dy, None, true)
    }

    fn backward_vars(
        &self,
        x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.grads(x, saved, dy, None, false)
    }

    fn backward_multi(
        &self,
        x: &[&ArrayD<f32>],
        ys: &[&ArrayD<f32>],
        saved: &Saved,
        dys: Vec<Option<ArrayD<f32>>>,
        inputs_needed: bool,
    ) -> Result<Backward> {
        let mut dys = dys.into_iter();
        let dy = dys
            .next()
            .flatten()
            .unwrap_or_else(|| ArrayD::zeros(ys[0].raw_dim()));
        let dscores = dys.next().flatten();
        self.grads(x, saved, dy, dscores, inputs_needed)
    }

    fn detail(&self) -> Option<String> {
        let mut d = match self.kind {
            Kind::MultiHead => format!("heads={}", self.heads),
            Kind::GroupedQuery => format!("heads={}/{}", self.heads, self.kv_heads),
        };
        if self.causal {
            d.push_str(", causal");
        }
        Some(d)
    }

    crate::clone_box!();
}

/// The query, value and key shapes (per sample) of an attention layer's
/// call: two or three inputs of rank 3; the key defaults to the value.
pub(super) fn attention_inputs<'a>(
    cx: &BuildCx<'a>,
    class: &str,
) -> Result<(&'a [usize], &'a [usize], &'a [usize])> {
    let inputs = cx.inputs;
    if !(2..=3).contains(&inputs.len()) {
        return Err(Error::mismatch(
            format!("`{class}` called on [query, value] or [query, value, key]"),
            format!("{} inputs", inputs.len()),
        ));
    }
    for (name, s) in ["query", "value", "key"].iter().zip(inputs) {
        if s.len() != 2 {
            return Err(Error::mismatch(
                format!(
                    "a `{name}` of rank 3 (batch, sequence, features) for `{class}` layer `{}`",
                    cx.name
                ),
                format!("rank {}", s.len() + 1),
            ));
        }
    }
    let (query, value) = (&inputs[0][..], &inputs[1][..]);
    Ok((query, value, inputs.get(2).map_or(value, |k| &k[..])))
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{Masked, gradients, values};
    use super::*;
    use serde_json::json;

    /// Build from a config (call options under `CALL_KWARGS`) with random
    /// stored variables of the shapes the layer asks for.
    fn mha(class: &str, config: serde_json::Value, inputs: &[Vec<usize>]) -> Box<dyn LayerOp> {
        let config = config.as_object().unwrap().clone();
        let builder = if class == "MultiHeadAttention" {
            build_multi_head_attention
        } else {
            build_grouped_query_attention
        };
        let cx = |stored: &[(Vec<usize>, Vec<f32>)]| {
            builder(&BuildCx {
                class_name: class,
                name: "att",
                config: &config,
                inputs,
                stored,
                vars_path: "layers/att/vars",
                group: None,
            })
        };
        // The error names the expected variables of the next sublayer
        // (`(kernel [5, 2, 3], bias [2, 3])`); make them and try again.
        let mut stored = Vec::new();
        let mut seed = 11;
        while let Err(e) = cx(&stored) {
            let msg = e.to_string();
            let list = msg
                .split_once("` (")
                .and_then(|(_, r)| r.split_once("), found"))
                .unwrap_or_else(|| panic!("{msg}"))
                .0
                .to_string();
            for part in list.split("], ") {
                let dims = part.split_once('[').unwrap().1.trim_end_matches(']');
                let shape: Vec<usize> = dims
                    .split(',')
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| d.trim().parse().unwrap())
                    .collect();
                let v = values(&shape, seed);
                seed += 1;
                stored.push((shape, v.iter().copied().collect()));
            }
            assert!(stored.len() <= 8, "{msg}");
        }
        cx(&stored).unwrap()
    }

    fn mask(rows: &[&[bool]]) -> Mask {
        let t = rows[0].len();
        ArrayD::from_shape_vec(
            IxDyn(&[rows.len(), t]),
            rows.iter().flat_map(|r| r.iter().copied()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn builds_with_keras_weight_paths() {
        let op = mha(
            "MultiHeadAttention",
            json!({"num_heads": 2, "key_dim": 3}),
            &[vec![4, 5], vec![4, 5]],
        );
        assert_eq!(op.vars().len(), 8);
        assert_eq!(op.var_path(0), "query_dense/vars/0");
        assert_eq!(op.var_path(3), "key_dense/vars/1");
        assert_eq!(op.var_path(7), "output_dense/vars/1");
        assert_eq!(op.vars()[6].value.shape(), [2, 3, 5]);
        let gqa = mha(
            "GroupQueryAttention",
            json!({"head_dim": 2, "num_query_heads": 4, "num_key_value_heads": 2,
                   "use_bias": false}),
            &[vec![3, 4], vec![3, 4]],
        );
        assert_eq!(gqa.vars().len(), 4);
        assert_eq!(gqa.var_path(1), "_key_dense/vars/0");
        assert_eq!(gqa.vars()[1].value.shape(), [4, 2, 2]);
    }

    #[test]
    fn unsupported_options_are_refused_by_name() {
        let try_build = |config: serde_json::Value, inputs: &[Vec<usize>]| {
            let config = config.as_object().unwrap().clone();
            build_multi_head_attention(&BuildCx {
                class_name: "MultiHeadAttention",
                name: "att",
                config: &config,
                inputs,
                stored: &[],
                vars_path: "layers/att/vars",
                group: None,
            })
            .unwrap_err()
            .to_string()
        };
        let seq = [vec![4, 5], vec![4, 5]];
        for (config, what) in [
            (
                json!({"num_heads": 2, "key_dim": 3, "attention_axes": [2]}),
                "attention_axes",
            ),
            (
                json!({"num_heads": 2, "key_dim": 3, "use_gate": true}),
                "use_gate",
            ),
            (
                json!({"num_heads": 2, "key_dim": 3, "value_dim": 2}),
                "value_dim",
            ),
            (
                json!({"num_heads": 2, "key_dim": 3, "output_shape": [2, 3]}),
                "output_shape",
            ),
            (
                json!({"num_heads": 2, "key_dim": 3, "activity_regularizer": {"class_name": "L1",
                       "config": {"l1": 0.1}}}),
                "activity_regularizer",
            ),
        ] {
            let err = try_build(config, &seq);
            assert!(err.contains(what) && err.contains("att"), "{what}: {err}");
        }
        let err = try_build(
            json!({"num_heads": 2, "key_dim": 3}),
            &[vec![2, 4, 5], vec![2, 4, 5]],
        );
        assert!(err.contains("rank 3") && err.contains("rank 4"), "{err}");
    }

    #[test]
    fn attention_mask_combines_masks_as_keras() {
        let q = mask(&[&[true, true, false]]);
        let v = mask(&[&[true, false, true, true]]);
        let m = attention_mask(1, 3, 4, Some(&q), Some(&v), None, true, Some(2))
            .unwrap()
            .unwrap();
        // Row 1: causal keeps 0..=1, the value mask drops 1, the window
        // keeps |1 - j| < 2.
        assert_eq!(
            m.slice(s![0, 1, ..]).to_vec(),
            vec![true, false, false, false]
        );
        assert!(m.slice(s![0, 2, ..]).iter().all(|&k| !k));
        assert!(
            attention_mask(1, 3, 4, None, None, None, false, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn fully_masked_rows_are_uniform_on_the_fused_path_and_zero_otherwise() {
        let inputs = [vec![3, 4], vec![3, 4]];
        let x = values(&[1, 3, 4], 3);
        let qm = mask(&[&[true, true, false]]);
        let masks = [Some(&qm), Some(&qm)];
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        for (scores, uniform) in [(false, true), (true, false)] {
            let op = mha(
                "MultiHeadAttention",
                json!({"num_heads": 1, "key_dim": 2,
                       CALL_KWARGS_KEY: {"return_attention_scores": scores}}),
                &inputs,
            );
            let mut cx = Ctx {
                mode: Mode::Training,
                rng: &mut rng,
            };
            let f = op.forward_masked(&[&x, &x], &masks, &mut cx).unwrap();
            let st = f
                .saved
                .as_ref()
                .unwrap()
                .downcast_ref::<AttnSaved>()
                .unwrap();
            // The padded query row: every key masked.
            let p: Vec<f32> = (0..3)
                .map(|j| st.u[[0, 0, 2, j]] / st.sum[[0, 0, 2]])
                .collect();
            if uniform {
                assert!(p.iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-6), "{p:?}");
            } else {
                let sc = &f.extra[0];
                assert!((0..3).all(|j| sc[[0, 0, 2, j]] == 0.0));
                assert_eq!(sc[[0, 0, 0, 2]], 0.0);
            }
        }
    }

    const CALL_KWARGS_KEY: &str = super::super::CALL_KWARGS;

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases
    fn finite_differences() {
        let q = [vec![4, 5], vec![4, 5]];
        let cross = [vec![3, 4], vec![5, 3], vec![5, 2]];
        let pad = mask(&[&[true, true, true, false], &[true, false, false, false]]);
        let cases: Vec<(&str, serde_json::Value, &[Vec<usize>], Vec<Option<Mask>>)> = vec![
            (
                "MultiHeadAttention",
                json!({"num_heads": 2, "key_dim": 3}),
                &q,
                vec![],
            ),
            (
                "MultiHeadAttention",
                json!({"num_heads": 2, "key_dim": 2, "output_shape": 3, "use_bias": false}),
                &cross,
                vec![],
            ),
            (
                "MultiHeadAttention",
                json!({"num_heads": 2, "key_dim": 2, CALL_KWARGS_KEY: {"use_causal_mask": true}}),
                &q,
                vec![Some(pad.clone()), Some(pad.clone())],
            ),
            (
                "MultiHeadAttention",
                json!({"num_heads": 2, "key_dim": 2, "value_dim": 3, "sliding_window": 2,
                       CALL_KWARGS_KEY: {"return_attention_scores": true}}),
                &q,
                vec![Some(pad.clone()), Some(pad.clone())],
            ),
            (
                // Dropout with the checker's fixed seed: one fixed mask.
                "MultiHeadAttention",
                json!({"num_heads": 1, "key_dim": 2, "dropout": 0.3}),
                &q,
                vec![None, Some(pad.clone())],
            ),
            (
                "GroupQueryAttention",
                json!({"head_dim": 2, "num_query_heads": 4, "num_key_value_heads": 2,
                       CALL_KWARGS_KEY: {"use_causal_mask": true}}),
                &q,
                vec![Some(pad.clone()), Some(pad)],
            ),
        ];
        for (class, config, inputs, masks) in cases {
            let op = mha(class, config.clone(), inputs);
            let wrapped = Masked { inner: op, masks };
            let x: Vec<ArrayD<f32>> = inputs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut shape = vec![2];
                    shape.extend(s);
                    values(&shape, 40 + i as u64)
                })
                .collect();
            gradients(&wrapped, &x, Mode::Training, 2e-2);
        }
    }
}
