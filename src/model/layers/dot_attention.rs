//! `Attention` (Luong-style dot or concat scores) and `AdditiveAttention`
//! (Bahdanau-style), called on `[query, value]` or `[query, value, key]`.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX; `keras/src/layers/attention/attention.py` and
//! `additive_attention.py`:
//!
//! * `Attention._calculate_scores`: `dot`: `query @ keyᵀ`, times the scalar
//!   `scale` with `use_scale`; `concat`: `concat_score_weight ·
//!   Σ_d tanh(scale · (q + k))` (without `scale` when `use_scale` is off).
//!   Variables: `scale` (shape `()`, with `use_scale`), then
//!   `concat_score_weight` (shape `()`, with `score_mode="concat"`).
//! * `AdditiveAttention._calculate_scores`: `Σ_d scale_d · tanh(q + k)`,
//!   `scale` of shape `(dim,)` with `use_scale` (default true), else 1.
//! * `_calculate_score_mask`: the value mask `[B, 1, Tv]`, ANDed with the
//!   causal mask `row >= col` for the `use_causal_mask` call argument (the
//!   key's mask is not read).
//! * `_apply_scores`: masked scores become `scores - 1e9` (a subtraction,
//!   so their gradient is that of the softmax), `softmax` over the last
//!   axis (JAX's `_softmax_deprecated`), dropout at training (kerasrs's
//!   own seeded masks), `weights @ value`; then the query mask zeroes the
//!   output rows of masked queries. `return_attention_scores` returns the
//!   weights after dropout as a second output.
//! * `compute_mask`: the query's mask (none with a single-mask input).

use ndarray::{Array2, ArrayD, IxDyn, s};
use rand::Rng;

use super::attention::{call_flag, softmax_row, softmax_row_backward};
use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Mask, Saved, Var};
use crate::error::{Error, Result};

/// `padding_mask` bias of `_apply_scores` (float32 scores).
const MASK_SUBTRACT: f32 = 1e9;

/// How scores are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Score {
    /// `Attention(score_mode="dot")`.
    Dot,
    /// `Attention(score_mode="concat")`.
    Concat,
    /// `AdditiveAttention`.
    Additive,
}

/// `Attention` or `AdditiveAttention`.
#[derive(Debug, Clone)]
pub struct DotAttention {
    class: &'static str,
    score: Score,
    use_scale: bool,
    dropout: f64,
    causal: bool,
    return_scores: bool,
    has_key: bool,
    /// `scale` (with `use_scale`) then `concat_score_weight` (concat).
    vars: Vec<Var>,
}

struct Saved2 {
    /// Softmax numerators `[B, Tq, Tv]` and their row sums `[B, Tq]`.
    u: ArrayD<f32>,
    sum: ArrayD<f32>,
    /// Dropout scales `[B, Tq, Tv]`.
    drop: Option<ArrayD<f32>>,
}

/// Builder of `Attention`.
pub fn build_attention(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let score = match cx.get("score_mode").as_str().unwrap_or("dot") {
        "dot" => Score::Dot,
        "concat" => Score::Concat,
        other => {
            return Err(Error::unsupported(
                "Attention score_mode",
                other,
                &["dot", "concat"],
            ));
        }
    };
    build(cx, "Attention", score, cx.bool_or("use_scale", false)?)
}

/// Builder of `AdditiveAttention`.
pub fn build_additive_attention(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    build(
        cx,
        "AdditiveAttention",
        Score::Additive,
        cx.bool_or("use_scale", true)?,
    )
}

fn build(
    cx: &BuildCx<'_>,
    class: &'static str,
    score: Score,
    use_scale: bool,
) -> Result<Box<dyn LayerOp>> {
    super::einsum::refuse_unsupported(cx, &["activity_regularizer"])?;
    let inputs = cx.inputs;
    let (q, v, k) = super::attention::attention_inputs(cx, class)?;
    if q[1] != k[1] || k[0] != v[0] {
        return Err(Error::mismatch(
            format!(
                "`{class}` query and key with the same features, key and value with the same steps"
            ),
            format!("query {q:?}, value {v:?}, key {k:?}"),
        ));
    }
    let dropout = cx.f64_or("dropout", 0.0)?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(Error::mismatch("`dropout` in [0, 1)", dropout));
    }
    let mut expected = Vec::new();
    if use_scale {
        let shape = if score == Score::Additive {
            vec![q[1]]
        } else {
            vec![]
        };
        expected.push(("scale", shape));
    }
    if score == Score::Concat {
        expected.push(("concat_score_weight", vec![]));
    }
    let values = cx.take_vars(&expected)?;
    let vars = values
        .into_iter()
        .zip(&expected)
        .map(|(value, (role, _))| Var::new(role, value))
        .collect();
    let layer = DotAttention {
        class,
        score,
        use_scale,
        dropout,
        causal: call_flag(cx, "use_causal_mask")?,
        return_scores: call_flag(cx, "return_attention_scores")?,
        has_key: inputs.len() == 3,
        vars,
    };
    layer.output_shapes(inputs)?;
    Ok(Box::new(layer))
}

impl DotAttention {
    fn scale(&self) -> Option<&ArrayD<f32>> {
        self.use_scale.then(|| &self.vars[0].value)
    }

    fn concat_weight(&self) -> f32 {
        match self.score {
            Score::Concat => self.vars[usize::from(self.use_scale)]
                .value
                .iter()
                .copied()
                .sum(),
            _ => 1.0,
        }
    }

    /// Raw scores `[Tq, Tv]` of sample `b`.
    fn scores(&self, q: &ArrayD<f32>, k: &ArrayD<f32>, b: usize) -> Array2<f32> {
        let qb = q.slice(s![b, .., ..]);
        let kb = k.slice(s![b, .., ..]);
        let (tq, tv, d) = (qb.nrows(), kb.nrows(), qb.ncols());
        match self.score {
            Score::Dot => {
                let mut sc = crate::engine::gemm::matmul(qb, kb.t());
                if let Some(scale) = self.scale() {
                    let s0 = scale.iter().copied().next().unwrap_or(1.0);
                    sc.mapv_inplace(|v| v * s0);
                }
                sc
            }
            Score::Concat => {
                let s0 = self.scale().and_then(|s| s.iter().next().copied());
                let w = self.concat_weight();
                Array2::from_shape_fn((tq, tv), |(i, j)| {
                    let t: f32 = (0..d)
                        .map(|c| {
                            let z = qb[[i, c]] + kb[[j, c]];
                            match s0 {
                                Some(s0) => (s0 * z).tanh(),
                                None => z.tanh(),
                            }
                        })
                        .map(f64::from)
                        .sum::<f64>() as f32;
                    w * t
                })
            }
            Score::Additive => {
                let scale = self.scale();
                Array2::from_shape_fn((tq, tv), |(i, j)| {
                    (0..d)
                        .map(|c| {
                            let t = (qb[[i, c]] + kb[[j, c]]).tanh();
                            f64::from(scale.map_or(t, |s| s[[c]] * t))
                        })
                        .sum::<f64>() as f32
                })
            }
        }
    }

    /// The score mask `[B, Tv]` / causal: whether (b, i, j) is kept.
    fn kept(&self, vmask: Option<&Mask>, b: usize, i: usize, j: usize) -> bool {
        vmask.is_none_or(|m| m[[b, j]]) && (!self.causal || i >= j)
    }

    fn run(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<(Forward, Saved2)> {
        let (q, v) = (x[0], x[1]);
        let k = if self.has_key { x[2] } else { v };
        let qmask = masks.first().copied().flatten();
        let vmask = masks.get(1).copied().flatten();
        let (n, tq, tv, dv) = (q.shape()[0], q.shape()[1], v.shape()[1], v.shape()[2]);
        for (m, len, what) in [(qmask, tq, "query"), (vmask, tv, "value")] {
            if let Some(m) = m
                && m.shape() != [n, len]
            {
                return Err(Error::mismatch(
                    format!("a `{}` {what} mask of shape [{n}, {len}]", self.class),
                    format!("{:?}", m.shape()),
                ));
            }
        }
        let mut u = ArrayD::<f32>::zeros(IxDyn(&[n, tq, tv]));
        let mut sum = ArrayD::<f32>::zeros(IxDyn(&[n, tq]));
        let mut y = ArrayD::<f32>::zeros(IxDyn(&[n, tq, dv]));
        let dropping = cx.training() && self.dropout > 0.0;
        let mut drop = dropping.then(|| ArrayD::<f32>::zeros(IxDyn(&[n, tq, tv])));
        let mut weights_out = self
            .return_scores
            .then(|| ArrayD::<f32>::zeros(IxDyn(&[n, tq, tv])));
        let keep_scale = (1.0 / (1.0 - self.dropout)) as f32;
        let masked = vmask.is_some() || self.causal;
        for b in 0..n {
            let mut sc = self.scores(q, k, b);
            if masked {
                for ((i, j), val) in sc.indexed_iter_mut() {
                    if !self.kept(vmask, b, i, j) {
                        *val -= MASK_SUBTRACT;
                    }
                }
            }
            let mut w = Array2::<f32>::zeros((tq, tv));
            for i in 0..tq {
                let mut row = sc.row_mut(i);
                let row = row.as_slice_mut().expect("standard layout");
                let s_i = softmax_row(row);
                sum[[b, i]] = s_i;
                for j in 0..tv {
                    u[[b, i, j]] = row[j];
                    w[[i, j]] = row[j] / s_i;
                }
            }
            if let Some(d) = &mut drop {
                for ((i, j), wv) in w.indexed_iter_mut() {
                    let keep = if cx.rng.random::<f64>() >= self.dropout {
                        keep_scale
                    } else {
                        0.0
                    };
                    d[[b, i, j]] = keep;
                    *wv *= keep;
                }
            }
            let mut out = crate::engine::gemm::matmul(w.view(), v.slice(s![b, .., ..]));
            if let Some(m) = qmask {
                for (i, mut row) in out.rows_mut().into_iter().enumerate() {
                    if !m[[b, i]] {
                        row.fill(0.0);
                    }
                }
            }
            y.slice_mut(s![b, .., ..]).assign(&out);
            if let Some(wo) = &mut weights_out {
                wo.slice_mut(s![b, .., ..]).assign(&w);
            }
        }
        let mut f = Forward::plain(y);
        if let Some(wo) = weights_out {
            f.extra.push(wo);
        }
        Ok((f, Saved2 { u, sum, drop }))
    }

    fn grads(
        &self,
        x: &[&ArrayD<f32>],
        masks: Option<&Mask>,
        st: &Saved2,
        dy: ArrayD<f32>,
        dweights: Option<ArrayD<f32>>,
    ) -> Result<Backward> {
        let (q, v) = (x[0], x[1]);
        let k = if self.has_key { x[2] } else { v };
        let (n, tq, tv) = (st.u.shape()[0], st.u.shape()[1], st.u.shape()[2]);
        let d = q.shape()[2];
        let mut dq = ArrayD::<f32>::zeros(q.raw_dim());
        let mut dk = ArrayD::<f32>::zeros(k.raw_dim());
        let mut dv = ArrayD::<f32>::zeros(v.raw_dim());
        let mut dscale = self.scale().map(|s| ArrayD::<f32>::zeros(s.raw_dim()));
        let mut dweight = 0.0f64;
        let s0 = self.scale().and_then(|s| s.iter().next().copied());
        let cw = self.concat_weight();
        for b in 0..n {
            let mut dyb = dy.slice(s![b, .., ..]).to_owned();
            if let Some(m) = masks {
                for (i, mut row) in dyb.rows_mut().into_iter().enumerate() {
                    if !m[[b, i]] {
                        row.fill(0.0);
                    }
                }
            }
            let mut w = Array2::<f32>::zeros((tq, tv));
            for i in 0..tq {
                for j in 0..tv {
                    let mut val = st.u[[b, i, j]] / st.sum[[b, i]];
                    if let Some(dr) = &st.drop {
                        val *= dr[[b, i, j]];
                    }
                    w[[i, j]] = val;
                }
            }
            let vb = v.slice(s![b, .., ..]);
            dv.slice_mut(s![b, .., ..])
                .assign(&crate::engine::gemm::matmul(w.t(), dyb.view()));
            let mut dw = crate::engine::gemm::matmul(dyb.view(), vb.t());
            if let Some(dws) = &dweights {
                dw += &dws.slice(s![b, .., ..]);
            }
            if let Some(dr) = &st.drop {
                dw.zip_mut_with(&dr.slice(s![b, .., ..]), |g, &m| *g *= m);
            }
            for i in 0..tq {
                let u: Vec<f32> = (0..tv).map(|j| st.u[[b, i, j]]).collect();
                let mut row = dw.row_mut(i);
                softmax_row_backward(&u, st.sum[[b, i]], row.as_slice_mut().expect("row"));
            }
            // `dw` is now the gradient of the (masked) scores; the mask's
            // subtraction passes it through unchanged.
            let qb = q.slice(s![b, .., ..]);
            let kb = k.slice(s![b, .., ..]);
            match self.score {
                Score::Dot => {
                    let mut g = dw.clone();
                    if let Some(s0) = s0 {
                        let raw = crate::engine::gemm::matmul(qb, kb.t());
                        let ds: f64 = raw
                            .iter()
                            .zip(dw.iter())
                            .map(|(&r, &g)| f64::from(r * g))
                            .sum();
                        if let Some(dsc) = &mut dscale {
                            dsc.iter_mut().for_each(|v| *v += ds as f32);
                        }
                        g.mapv_inplace(|v| v * s0);
                    }
                    dq.slice_mut(s![b, .., ..])
                        .assign(&crate::engine::gemm::matmul(g.view(), kb));
                    dk.slice_mut(s![b, .., ..])
                        .assign(&crate::engine::gemm::matmul(g.t(), qb));
                }
                Score::Concat | Score::Additive => {
                    let scale = self.scale();
                    for i in 0..tq {
                        for j in 0..tv {
                            let gs = dw[[i, j]];
                            if gs == 0.0 {
                                continue;
                            }
                            for c in 0..d {
                                let z = qb[[i, c]] + kb[[j, c]];
                                let g_z = if self.score == Score::Concat {
                                    let zz = s0.map_or(z, |s0| s0 * z);
                                    let t = zz.tanh();
                                    dweight += f64::from(gs * t);
                                    let dt = gs * cw;
                                    let dzz = dt * (1.0 - t * t);
                                    if let (Some(s0), Some(dsc)) = (s0, &mut dscale) {
                                        dsc.iter_mut().for_each(|v| *v += dzz * z);
                                        dzz * s0
                                    } else {
                                        dzz
                                    }
                                } else {
                                    let t = z.tanh();
                                    let sc = scale.map_or(1.0, |s| s[[c]]);
                                    if let Some(dsc) = &mut dscale {
                                        dsc[[c]] += gs * t;
                                    }
                                    gs * sc * (1.0 - t * t)
                                };
                                dq[[b, i, c]] += g_z;
                                dk[[b, j, c]] += g_z;
                            }
                        }
                    }
                }
            }
        }
        let mut vars: Vec<Option<ArrayD<f32>>> = Vec::new();
        if let Some(dsc) = dscale {
            vars.push(Some(dsc));
        }
        if self.score == Score::Concat {
            vars.push(Some(ArrayD::from_elem(IxDyn(&[]), dweight as f32)));
        }
        let mut inputs = vec![dq, dv];
        if self.has_key {
            inputs.push(dk);
        } else {
            inputs[1] += &dk;
        }
        Ok(Backward { inputs, vars })
    }
}

/// What the backward pass needs besides [`Saved2`]: the query mask.
struct WithMask {
    inner: Saved2,
    qmask: Option<Mask>,
}

impl LayerOp for DotAttention {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        Ok(self.output_shapes(inputs)?.remove(0))
    }

    fn output_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        let want = 2 + usize::from(self.has_key);
        if inputs.len() != want || inputs.iter().any(|s| s.len() != 2) {
            return Err(Error::mismatch(
                format!("{want} inputs of rank 3 for `{}`", self.class),
                format!("{inputs:?}"),
            ));
        }
        let (q, v) = (&inputs[0], &inputs[1]);
        let k = inputs.get(2).unwrap_or(v);
        if let Some(s) = self.scale()
            && self.score == Score::Additive
            && s.shape() != [q[1]]
        {
            return Err(Error::mismatch(
                format!("a query of {} features", s.len()),
                q[1],
            ));
        }
        let mut out = vec![vec![q[0], v[1]]];
        if self.return_scores {
            out.push(vec![q[0], k[0]]);
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
            let qmask = masks.first().copied().flatten().cloned();
            // The value mask and the causal flag are re-read from `u`
            // (masked numerators are zero), so only the query mask is kept.
            f.saved = Some(Box::new(WithMask {
                inner: saved,
                qmask,
            }));
        }
        Ok(f)
    }

    fn backward(
        &self,
        x: &[&ArrayD<f32>],
        y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        self.backward_multi(x, &[y], saved, vec![Some(dy)], true)
    }

    fn backward_multi(
        &self,
        x: &[&ArrayD<f32>],
        ys: &[&ArrayD<f32>],
        saved: &Saved,
        dys: Vec<Option<ArrayD<f32>>>,
        _inputs_needed: bool,
    ) -> Result<Backward> {
        let wm = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<WithMask>())
            .ok_or_else(|| {
                Error::training(format!("`{}` was not run in training mode", self.class))
            })?;
        let mut dys = dys.into_iter();
        let dy = dys
            .next()
            .flatten()
            .unwrap_or_else(|| ArrayD::zeros(ys[0].raw_dim()));
        let dw = dys.next().flatten();
        self.grads(x, wm.qmask.as_ref(), &wm.inner, dy, dw)
    }

    fn detail(&self) -> Option<String> {
        let mut d = match self.score {
            Score::Dot => "dot".to_string(),
            Score::Concat => "concat".to_string(),
            Score::Additive => "additive".to_string(),
        };
        if self.causal {
            d.push_str(", causal");
        }
        Some(d)
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{Masked, gradients, values};
    use super::*;
    use serde_json::json;

    fn build_op(
        builder: super::super::Builder,
        class: &str,
        config: serde_json::Value,
        inputs: &[Vec<usize>],
        shapes: &[&[usize]],
    ) -> Box<dyn LayerOp> {
        let config = config.as_object().unwrap().clone();
        let stored: Vec<(Vec<usize>, Vec<f32>)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let v = values(s, 5 + i as u64).mapv(|v| v + 1.0);
                (s.to_vec(), v.iter().copied().collect())
            })
            .collect();
        builder(&BuildCx {
            class_name: class,
            name: "att",
            config: &config,
            inputs,
            stored: &stored,
            vars_path: "layers/att/vars",
            group: None,
        })
        .unwrap()
    }

    fn mask(rows: &[&[bool]]) -> Mask {
        ArrayD::from_shape_vec(
            IxDyn(&[rows.len(), rows[0].len()]),
            rows.iter().flat_map(|r| r.iter().copied()).collect(),
        )
        .unwrap()
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases
    fn finite_differences() {
        let kw = super::super::CALL_KWARGS;
        let qv = [vec![3, 4], vec![5, 4]];
        let qvk = [vec![3, 4], vec![5, 2], vec![5, 4]];
        let qm = mask(&[&[true, true, false], &[true, false, false]]);
        let vm = mask(&[
            &[true, true, true, false, false],
            &[true, false, true, true, false],
        ]);
        let cases: Vec<(
            super::super::Builder,
            &str,
            serde_json::Value,
            &[Vec<usize>],
            Vec<&[usize]>,
            Vec<Option<Mask>>,
        )> = vec![
            (build_attention, "Attention", json!({}), &qv, vec![], vec![]),
            (
                build_attention,
                "Attention",
                json!({"use_scale": true}),
                &qvk,
                vec![&[]],
                vec![Some(qm.clone()), Some(vm.clone())],
            ),
            (
                build_attention,
                "Attention",
                json!({"use_scale": true, "score_mode": "concat", kw: {"use_causal_mask": true,
                    "return_attention_scores": true}}),
                &qv,
                vec![&[], &[]],
                vec![None, Some(vm.clone())],
            ),
            (
                build_attention,
                "Attention",
                json!({"score_mode": "concat", "dropout": 0.4}),
                &qvk,
                vec![&[]],
                vec![Some(qm.clone()), None],
            ),
            (
                build_additive_attention,
                "AdditiveAttention",
                json!({}),
                &qv,
                vec![&[4]],
                vec![Some(qm), Some(vm)],
            ),
            (
                build_additive_attention,
                "AdditiveAttention",
                json!({"use_scale": false}),
                &qvk,
                vec![],
                vec![],
            ),
        ];
        for (builder, class, config, inputs, shapes, masks) in cases {
            let op = build_op(builder, class, config.clone(), inputs, &shapes);
            let x: Vec<ArrayD<f32>> = inputs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut shape = vec![2];
                    shape.extend(s);
                    values(&shape, 30 + i as u64)
                })
                .collect();
            gradients(&Masked { inner: op, masks }, &x, Mode::Training, 2e-2);
        }
    }

    #[test]
    fn masks_follow_keras() {
        let op = build_op(
            build_attention,
            "Attention",
            json!({}),
            &[vec![2, 3], vec![3, 3]],
            &[],
        );
        let q = values(&[1, 2, 3], 1);
        let v = values(&[1, 3, 3], 2);
        let qm = mask(&[&[true, false]]);
        let vm = mask(&[&[true, true, false]]);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut cx = Ctx {
            mode: Mode::Inference,
            rng: &mut rng,
        };
        let y = op
            .forward_masked(&[&q, &v], &[Some(&qm), Some(&vm)], &mut cx)
            .unwrap()
            .y;
        // A masked query's row is zero; a masked value does not contribute.
        assert!(y.slice(s![0, 1, ..]).iter().all(|&v| v == 0.0));
        // A mask of the wrong length is an error naming it.
        let short = mask(&[&[true, true]]);
        let err = op
            .forward_masked(&[&q, &v], &[Some(&qm), Some(&short)], &mut cx)
            .err()
            .expect("wrong mask refused")
            .to_string();
        assert!(err.contains("value mask"), "{err}");
        let out = op.compute_mask(&[&q, &v], &[Some(&qm), Some(&vm)]).unwrap();
        assert_eq!(out[0].as_ref(), Some(&qm));
        let config = json!({"score_mode": "general"});
        let bad = BuildCx {
            class_name: "Attention",
            name: "att",
            config: config.as_object().unwrap(),
            inputs: &[vec![2, 3], vec![3, 3]],
            stored: &[],
            vars_path: "layers/att/vars",
            group: None,
        };
        let err = build_attention(&bad).unwrap_err().to_string();
        assert!(err.contains("general") && err.contains("concat"), "{err}");
    }
}
