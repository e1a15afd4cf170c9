//! Recurrent layers: `SimpleRNN`, `LSTM` and `GRU` (`reset_after` true and
//! false), forward and backward through time, with masks,
//! `return_sequences`, `return_state` and `go_backwards`.
//!
//! # Specification
//!
//! Keras 3.15.1 on JAX; paths relative to `site-packages/keras/src/`:
//!
//! * `layers/rnn/rnn.py` (`RNN.call`, `inner_loop`, `compute_mask`: the
//!   output keeps the input's mask with `return_sequences`, states carry
//!   none) and `backend/jax/rnn.py` (`rnn`: a `lax.scan` over time, in
//!   reverse with `go_backwards`, whose outputs are then flipped: the
//!   sequence output is in *processing* order; at a masked step every state
//!   keeps its previous value and the output is the previous output, or
//!   zeros with `zero_output_for_mask` when not unrolled; `unroll` gives the
//!   same numbers otherwise). The JAX backend's `lstm`/`gru` fast paths
//!   need a GPU (cuDNN), so on CPU Keras runs the cells below.
//! * `layers/rnn/simple_rnn.py` (`SimpleRNNCell.call`):
//!   `h = act((x @ kernel + bias) + h₋ @ recurrent_kernel)`.
//! * `layers/rnn/lstm.py` (`LSTMCell`, gates i, f, c, o along the kernel's
//!   columns; `implementation=2`: `z = (x @ kernel + h₋ @ recurrent) +
//!   bias`; `implementation=1`, forced by `recurrent_dropout`: `(x @ kᵢ +
//!   bᵢ) + h₋ @ rᵢ` per gate), `c = f * c₋ + i * act(z_c)`,
//!   `h = o * act(c)`.
//! * `layers/rnn/gru.py` (`GRUCell`, gates z, r, h): `reset_after=True`
//!   has a bias of shape `(2, 3u)` (input, recurrent):
//!   `hh = act(x_h + r * (h₋ @ R_h + b_rec_h))`; `reset_after=False`:
//!   `hh = act(x_h + (r * h₋) @ R_h)`; `h = z * h₋ + (1 - z) * hh`.
//! * Variables live in `<layer>/cell/vars/{0,1,2}` of `model.weights.h5`
//!   (kernel, recurrent_kernel, bias).
//!
//! # Training randomness
//!
//! `dropout` and `recurrent_dropout` draw one mask per call (as Keras's
//! `DropoutRNNCell`) from kerasrs's seeded generator: Keras's random stream
//! cannot be reproduced, so such fits are not bit-comparable with Keras.
//! At inference they are the identity, as in Keras.

use ndarray::{Array2, ArrayD, ArrayView2, Axis, IxDyn, s};
use rand::Rng;

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Mask, Saved, Var, single_shape};
use crate::engine::gemm::{matmul, matmul_tn};
use crate::error::{Error, Result};
use crate::model::activation::Activation;
use crate::model::regularizer::Regularizer;

/// The cell of a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// `SimpleRNN`.
    Simple,
    /// `LSTM`.
    Lstm,
    /// `GRU`, with its `reset_after`.
    Gru {
        /// Reset gate applied after the recurrent matmul.
        reset_after: bool,
    },
}

impl CellKind {
    /// Gates (blocks of `units` columns in the kernels).
    fn gates(self) -> usize {
        match self {
            CellKind::Simple => 1,
            CellKind::Lstm => 4,
            CellKind::Gru { .. } => 3,
        }
    }

    /// States carried (h, and c for LSTM).
    fn states(self) -> usize {
        if self == CellKind::Lstm { 2 } else { 1 }
    }
}

/// The configuration of one recurrent layer (without its variables).
#[derive(Debug, Clone, PartialEq)]
pub struct RnnConfig {
    class: String,
    kind: CellKind,
    units: usize,
    input_dim: usize,
    activation: Activation,
    recurrent_activation: Activation,
    use_bias: bool,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
    unroll: bool,
    implementation: u8,
    dropout: f32,
    recurrent_dropout: f32,
}

/// Where a recurrent layer's variables live under its group.
const CELL: &str = "cell";

/// Parse a recurrent layer's config for an input of per-sample shape
/// `[timesteps, features]`, with its stored variables under `cell/vars`.
pub fn parse(cx: &BuildCx<'_>, input: &[usize]) -> Result<(RnnConfig, Vec<Var>)> {
    let class = cx.class_name;
    let kind = match class {
        "SimpleRNN" => CellKind::Simple,
        "LSTM" => CellKind::Lstm,
        "GRU" => CellKind::Gru {
            reset_after: cx.bool_or("reset_after", true)?,
        },
        other => {
            return Err(Error::unsupported(
                "recurrent layer",
                other,
                &["SimpleRNN", "LSTM", "GRU"],
            ));
        }
    };
    if cx.bool_or("stateful", false)? {
        return Err(Error::unsupported(
            "recurrent layer option",
            "stateful=True",
            &["stateful=False (every batch starts from zero states)"],
        ));
    }
    if cx.bool_or("time_major", false)? {
        return Err(Error::unsupported(
            "recurrent layer option",
            "time_major=True",
            &["batch-major inputs"],
        ));
    }
    let [_, input_dim] = input else {
        return Err(Error::mismatch(
            format!("a `(timesteps, features)` input for `{class}`"),
            format!("{input:?}"),
        ));
    };
    let units = cx.get("units");
    let units = units
        .as_u64()
        .filter(|&u| u > 0 && u <= 1 << 20)
        .map(|u| u as usize)
        .ok_or_else(|| Error::mismatch("a positive integer `units`", units))?;
    let act = |key: &str, default: Activation| -> Result<Activation> {
        let a = match cx.get(key) {
            serde_json::Value::Null if !cx.config.contains_key(key) => default,
            v => Activation::from_config(v).map_err(|e| e.at(key.to_string()))?,
        };
        if !a.is_elementwise() {
            return Err(Error::unsupported(
                "recurrent activation",
                a.name(),
                &["element-wise activations"],
            ));
        }
        Ok(a)
    };
    let rate = |key: &str| -> Result<f32> {
        // `min(1.0, max(0.0, rate))` as the cells clamp it.
        Ok(cx.f64_or(key, 0.0)?.clamp(0.0, 1.0) as f32)
    };
    let recurrent_dropout = rate("recurrent_dropout")?;
    let implementation = if recurrent_dropout != 0.0 {
        1
    } else {
        match cx.i64_or("implementation", 2)? {
            1 => 1,
            _ => 2,
        }
    };
    let config = RnnConfig {
        class: class.to_string(),
        kind,
        units,
        input_dim: *input_dim,
        activation: act("activation", Activation::Tanh)?,
        recurrent_activation: if kind == CellKind::Simple {
            Activation::Linear
        } else {
            act("recurrent_activation", Activation::Sigmoid)?
        },
        use_bias: cx.bool_or("use_bias", true)?,
        return_sequences: cx.bool_or("return_sequences", false)?,
        return_state: cx.bool_or("return_state", false)?,
        go_backwards: cx.bool_or("go_backwards", false)?,
        zero_output_for_mask: cx.bool_or("zero_output_for_mask", false)?,
        unroll: cx.bool_or("unroll", false)?,
        implementation,
        dropout: rate("dropout")?,
        recurrent_dropout,
    };
    let g = kind.gates();
    let width = units
        .checked_mul(g)
        .ok_or_else(|| Error::invalid("`units` too large"))?;
    let mut expected = vec![
        ("kernel", vec![*input_dim, width]),
        ("recurrent_kernel", vec![units, width]),
    ];
    if config.use_bias {
        let shape = match kind {
            CellKind::Gru { reset_after: true } => vec![2, width],
            _ => vec![width],
        };
        expected.push(("bias", shape));
    }
    let values = cx.sub(class, cx.config, CELL, cx.inputs, |c| {
        c.take_vars(&expected)
    })?;
    let keys = [
        ("kernel_regularizer", "kernel_constraint"),
        ("recurrent_regularizer", "recurrent_constraint"),
        ("bias_regularizer", "bias_constraint"),
    ];
    let vars = values
        .into_iter()
        .zip(expected)
        .zip(keys)
        .map(|((value, (role, _)), (reg, con))| {
            let mut v = Var::new(role, value);
            v.regularizer = cx.regularizer(reg)?;
            v.constraint = cx.constraint(con)?;
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((config, vars))
}

impl RnnConfig {
    /// Per-sample output shapes: the output, then the states with
    /// `return_state`.
    pub fn output_shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        let [t, d] = input else {
            return Err(Error::mismatch(
                format!("a `(timesteps, features)` input for `{}`", self.class),
                format!("{input:?}"),
            ));
        };
        if *d != self.input_dim {
            return Err(Error::mismatch(
                format!("{} input features (the kernel's rows)", self.input_dim),
                d,
            ));
        }
        let mut out = vec![if self.return_sequences {
            vec![*t, self.units]
        } else {
            vec![self.units]
        }];
        if self.return_state {
            out.extend(std::iter::repeat_n(vec![self.units], self.kind.states()));
        }
        Ok(out)
    }

    /// The output's mask (`RNN.compute_mask`): the input's with
    /// `return_sequences`, then none for each state.
    pub fn output_masks(&self, mask: Option<&Mask>) -> Vec<Option<Mask>> {
        let mut out = vec![if self.return_sequences {
            mask.cloned()
        } else {
            None
        }];
        if self.return_state {
            out.extend(std::iter::repeat_n(None, self.kind.states()));
        }
        out
    }

    /// Does this layer read its input's mask? (All recurrent layers do.)
    pub fn units(&self) -> usize {
        self.units
    }

    /// Whether the output is the whole sequence.
    pub fn return_sequences(&self) -> bool {
        self.return_sequences
    }
}

/// What one step keeps for the backward pass.
struct Step {
    /// Previous states (h, c).
    h: Array2<f32>,
    c: Option<Array2<f32>>,
    /// `h` after recurrent dropout (what multiplies the recurrent kernel).
    hd: Array2<f32>,
    /// Pre-activations and activations of the gates, `[n, g·u]` (GRU:
    /// `[z, r, h]` with `inner` the recurrent product).
    pre: Array2<f32>,
    act: Array2<f32>,
    inner: Option<Array2<f32>>,
    /// LSTM: the new cell state and `act(c)`; GRU (reset before): `r * h`.
    c_new: Option<Array2<f32>>,
    tc: Option<Array2<f32>>,
    /// Which rows are kept at this step (`None`: all).
    keep: Option<Vec<bool>>,
}

/// One step's gradients: the pre-activations that `x_t @ kernel` enters
/// (`[n, gates·u]`), the previous h where it enters directly (GRU's
/// `z * h₋`), the previous h after recurrent dropout, and the previous c.
type CellGrads = (
    Array2<f32>,
    Option<Array2<f32>>,
    Array2<f32>,
    Option<Array2<f32>>,
);

/// The dropout masks of one recurrent call (scaled): `[n, in]` and `[n, u]`.
pub struct Dropouts {
    x: Option<Array2<f32>>,
    h: Option<Array2<f32>>,
}

/// A recurrent forward pass's tape.
pub struct Tape {
    steps: Vec<Step>,
    /// The input after dropout, as `[n·t, in]` rows (sample-major), for the
    /// kernel gradient and the input gradient of all steps at once.
    xs: Array2<f32>,
    /// Original time index of each processed step.
    times: Vec<usize>,
    /// Dropout masks (scaled), `[n, in]` and `[n, u]`.
    drop_x: Option<Array2<f32>>,
    drop_h: Option<Array2<f32>>,
}

fn sigmoid_like(a: Activation, z: &Array2<f32>) -> Array2<f32> {
    a.forward(z.clone())
}

fn act_back(a: Activation, z: &Array2<f32>, y: &Array2<f32>, dy: &Array2<f32>) -> Array2<f32> {
    a.backward(z.view(), y.view(), dy.view())
}

fn dropout_mask(n: usize, d: usize, rate: f32, cx: &mut Ctx<'_>) -> Option<Array2<f32>> {
    if !(cx.training() && rate > 0.0 && rate < 1.0) {
        return None;
    }
    let scale = 1.0 / (1.0 - rate);
    Some(Array2::from_shape_fn((n, d), |_| {
        if cx.rng.random::<f32>() >= rate {
            scale
        } else {
            0.0
        }
    }))
}

/// The LSTM gates with the default activations (`tanh`, recurrent
/// `sigmoid`) in one pass over `z = [i f g o]` pre-activations
/// (keras/src/layers/rnn/lstm.py `_compute_carry_and_output_fused`):
/// `c = f * c₋ + i * g`, `h = o * tanh(c)`, with the same operations, in the
/// same order, as the general path. Returns h, c, the activations and
/// `tanh(c)`.
fn lstm_gates(
    z: &Array2<f32>,
    cp: &Array2<f32>,
    u: usize,
) -> (Array2<f32>, Array2<f32>, Array2<f32>, Array2<f32>) {
    use crate::model::activation::{sigmoid, tanh_slice};
    let n = z.nrows();
    let mut act = z.as_standard_layout().into_owned();
    let mut h = Array2::<f32>::zeros((n, u));
    let mut c = Array2::<f32>::zeros((n, u));
    let mut tc = Array2::<f32>::zeros((n, u));
    for s in 0..n {
        let mut ar = act.row_mut(s);
        let ar = ar.as_slice_mut().expect("standard layout");
        let (ifg, o) = ar.split_at_mut(3 * u);
        ifg[..2 * u].iter_mut().for_each(|v| *v = sigmoid(*v));
        o.iter_mut().for_each(|v| *v = sigmoid(*v));
        tanh_slice(&mut ifg[2 * u..]);
        let (i, rest) = ifg.split_at(u);
        let (f, g) = rest.split_at(u);
        let mut cr = c.row_mut(s);
        let cr = cr.as_slice_mut().expect("standard layout");
        for (j, (cn, &cp)) in cr.iter_mut().zip(cp.row(s)).enumerate() {
            *cn = f[j] * cp + i[j] * g[j];
        }
        let mut tr = tc.row_mut(s);
        let tr = tr.as_slice_mut().expect("standard layout");
        tr.copy_from_slice(cr);
        tanh_slice(tr);
        for ((hv, &ov), &t) in h.row_mut(s).iter_mut().zip(o.iter()).zip(tr.iter()) {
            *hv = ov * t;
        }
    }
    (h, c, act, tc)
}

/// The backward pass of [`lstm_gates`]: the gradient of `z` and of `c₋`
/// from those of h and c, with jax's `tanh` and `sigmoid` gradients
/// (`(g + g·y)·(1 − y)` and `g·(y·(1 − y))`, as [`Activation::backward`]).
fn lstm_gates_back(
    act: &Array2<f32>,
    cp: &Array2<f32>,
    tc: &Array2<f32>,
    dh: &Array2<f32>,
    dc: &Array2<f32>,
    u: usize,
) -> (Array2<f32>, Array2<f32>) {
    let n = act.nrows();
    let mut dz = Array2::<f32>::zeros(act.raw_dim());
    let mut dcp = Array2::<f32>::zeros((n, u));
    let sig = |y: f32, g: f32| g * (y * (1.0 - y));
    let tanh = |y: f32, g: f32| (g + g * y) * (1.0 - y);
    for s in 0..n {
        let ar = act.row(s);
        let ar = ar.as_slice().expect("rows of act");
        let mut dzr = dz.row_mut(s);
        let dzr = dzr.as_slice_mut().expect("rows of dz");
        for j in 0..u {
            let (i, f, g, o) = (ar[j], ar[u + j], ar[2 * u + j], ar[3 * u + j]);
            let (t, dhv) = (tc[[s, j]], dh[[s, j]]);
            let d_o = dhv * t;
            let dct = dc[[s, j]] + tanh(t, dhv * o);
            dzr[j] = sig(i, dct * g);
            dzr[u + j] = sig(f, dct * cp[[s, j]]);
            dzr[2 * u + j] = tanh(g, dct * i);
            dzr[3 * u + j] = sig(o, d_o);
            dcp[[s, j]] = dct * f;
        }
    }
    (dz, dcp)
}

/// Add a bias row to every row.
fn add_row(m: &mut Array2<f32>, b: ndarray::ArrayView1<'_, f32>) {
    for mut row in m.rows_mut() {
        row += &b;
    }
}

fn cols(m: &Array2<f32>, from: usize, to: usize) -> Array2<f32> {
    m.slice(s![.., from..to]).to_owned()
}

fn view2<'a>(v: &'a Var) -> Result<ArrayView2<'a, f32>> {
    v.value
        .view()
        .into_dimensionality()
        .map_err(|e| Error::invalid(e.to_string()))
}

impl RnnConfig {
    /// SimpleRNN and LSTM: the recurrent products take the whole step's
    /// pre-activation gradient, so [`RnnConfig::back`] computes the
    /// recurrent kernel's gradient once, after the steps (GRU's recurrent
    /// part has its own gradient and stays per step).
    fn recurrent_gradient_at_end(&self) -> bool {
        matches!(self.kind, CellKind::Simple | CellKind::Lstm)
    }

    /// An LSTM with the default activations, which [`lstm_gates`] computes
    /// in one pass.
    fn standard_lstm(&self) -> bool {
        self.kind == CellKind::Lstm
            && self.activation == Activation::Tanh
            && self.recurrent_activation == Activation::Sigmoid
    }

    /// Run the layer on `x` (`[n, t, in]`): outputs (sequence or last,
    /// then states) and the tape.
    pub fn run(
        &self,
        vars: &[Var],
        x: &ArrayD<f32>,
        mask: Option<&Mask>,
        cx: &mut Ctx<'_>,
    ) -> Result<(Vec<ArrayD<f32>>, Tape)> {
        let drops = self.dropout_masks(x.shape(), cx);
        self.run_with(vars, x, mask, drops)
    }

    /// The input and recurrent dropout masks of one call (training only):
    /// drawn before the steps, so that the two directions of a
    /// `Bidirectional` can then run side by side.
    pub fn dropout_masks(&self, x_shape: &[usize], cx: &mut Ctx<'_>) -> Dropouts {
        let (n, d) = match *x_shape {
            [n, _, d] => (n, d),
            _ => (0, 0),
        };
        Dropouts {
            x: dropout_mask(n, d, self.dropout, cx),
            h: dropout_mask(n, self.units, self.recurrent_dropout, cx),
        }
    }

    /// [`RnnConfig::run`] with the dropout masks already drawn.
    pub fn run_with(
        &self,
        vars: &[Var],
        x: &ArrayD<f32>,
        mask: Option<&Mask>,
        drops: Dropouts,
    ) -> Result<(Vec<ArrayD<f32>>, Tape)> {
        let &[n, t, d] = x.shape() else {
            return Err(Error::mismatch(
                format!("a `[n, timesteps, features]` input for `{}`", self.class),
                format!("{:?}", x.shape()),
            ));
        };
        if let Some(m) = mask
            && m.shape() != [n, t]
        {
            return Err(Error::mismatch(
                format!("a mask of shape [{n}, {t}]"),
                format!("{:?}", m.shape()),
            ));
        }
        let u = self.units;
        let k = view2(&vars[0])?;
        let r = view2(&vars[1])?;
        let bias = vars.get(2).map(|v| &v.value);
        let Dropouts {
            x: drop_x,
            h: drop_h,
        } = drops;
        // Every step's `x_t @ kernel` in one product: the same products row by
        // row as one per step, with the dropout mask (the same at every step)
        // applied first.
        let mut xs = x
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((n * t, d))
            .map_err(|e| Error::invalid(e.to_string()))?;
        if let Some(m) = &drop_x {
            for (row, mut xr) in xs.rows_mut().into_iter().enumerate() {
                xr *= &m.row(row / t.max(1));
            }
        }
        let xk_all = matmul(xs.view(), k);
        let gw = xk_all.ncols();
        let xk_all = xk_all
            .into_shape_with_order((n, t, gw))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let mut h = Array2::<f32>::zeros((n, u));
        let mut c = (self.kind == CellKind::Lstm).then(|| Array2::<f32>::zeros((n, u)));
        let mut prev_out = Array2::<f32>::zeros((n, u));
        let times: Vec<usize> = if self.go_backwards {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        };
        let mut seq = self
            .return_sequences
            .then(|| ArrayD::<f32>::zeros(IxDyn(&[n, t, u])));
        let mut steps = Vec::with_capacity(t);
        let zero_out = self.zero_output_for_mask && !self.unroll;
        for (p, &ti) in times.iter().enumerate() {
            let xk = xk_all.slice(s![.., ti, ..]);
            let hd = match &drop_h {
                Some(m) => &h * m,
                None => h.clone(),
            };
            let keep: Option<Vec<bool>> = mask.map(|m| (0..n).map(|s| m[[s, ti]]).collect());
            let (h_new, c_new, step) = self.cell(xk, r, bias, &h, c.as_ref(), hd)?;
            let mut out = h_new.clone();
            let (mut h_next, mut c_next) = (h_new, c_new.clone());
            if let Some(keep) = &keep {
                for (s, &kept) in keep.iter().enumerate() {
                    if kept {
                        continue;
                    }
                    h_next.row_mut(s).assign(&h.row(s));
                    if let (Some(cn), Some(cp)) = (c_next.as_mut(), c.as_ref()) {
                        cn.row_mut(s).assign(&cp.row(s));
                    }
                    if zero_out {
                        out.row_mut(s).fill(0.0);
                    } else {
                        out.row_mut(s).assign(&prev_out.row(s));
                    }
                }
            }
            if let Some(seq) = seq.as_mut() {
                seq.slice_mut(s![.., p, ..]).assign(&out);
            }
            steps.push(Step { keep, ..step });
            prev_out = out;
            h = h_next;
            c = c_next;
        }
        let mut outs = vec![match seq {
            Some(seq) => seq,
            None => prev_out.into_dyn(),
        }];
        if self.return_state {
            outs.push(h.into_dyn());
            if let Some(c) = c {
                outs.push(c.into_dyn());
            }
        }
        Ok((
            outs,
            Tape {
                steps,
                xs,
                times,
                drop_x,
                drop_h,
            },
        ))
    }

    /// One cell step from `xk = x_t @ kernel`: the new h (and c) and the
    /// step's tape entry.
    fn cell(
        &self,
        xk: ArrayView2<'_, f32>,
        r: ArrayView2<'_, f32>,
        bias: Option<&ArrayD<f32>>,
        h: &Array2<f32>,
        c: Option<&Array2<f32>>,
        hd: Array2<f32>,
    ) -> Result<(Array2<f32>, Option<Array2<f32>>, Step)> {
        let u = self.units;
        let flat_bias = |row: usize| -> Option<ndarray::ArrayView1<'_, f32>> {
            bias.map(|b| {
                if b.ndim() == 2 {
                    b.index_axis(Axis(0), row)
                        .into_dimensionality()
                        .expect("rank 1")
                } else {
                    b.view().into_dimensionality().expect("rank 1")
                }
            })
        };
        let mut step = Step {
            h: h.clone(),
            c: c.cloned(),
            hd: Array2::zeros((0, 0)),
            pre: Array2::zeros((0, 0)),
            act: Array2::zeros((0, 0)),
            inner: None,
            c_new: None,
            tc: None,
            keep: None,
        };
        let (h_new, c_new) = match self.kind {
            CellKind::Simple => {
                // simple_rnn.py: (x @ kernel + bias) + h @ recurrent.
                let mut z = xk.to_owned();
                if let Some(b) = flat_bias(0) {
                    add_row(&mut z, b);
                }
                z += &matmul(hd.view(), r);
                let a = self.activation.forward(z.clone());
                step.pre = z;
                step.act = a.clone();
                (a, None)
            }
            CellKind::Lstm => {
                let mut z = xk.to_owned();
                if self.implementation == 1 {
                    // lstm.py implementation 1: (x @ k + b) + h @ r.
                    if let Some(b) = flat_bias(0) {
                        add_row(&mut z, b);
                    }
                    z += &matmul(hd.view(), r);
                } else {
                    // implementation 2: (x @ k + h @ r) + b.
                    z += &matmul(hd.view(), r);
                    if let Some(b) = flat_bias(0) {
                        add_row(&mut z, b);
                    }
                }
                let ra = self.recurrent_activation;
                if self.standard_lstm() {
                    let cp = c.expect("LSTM carries c");
                    let (h_new, c_new, act, tc) = lstm_gates(&z, cp, u);
                    step.pre = z;
                    step.act = act;
                    step.c_new = Some(c_new.clone());
                    step.tc = Some(tc);
                    step.hd = hd;
                    return Ok((h_new, Some(c_new), step));
                }
                let i = sigmoid_like(ra, &cols(&z, 0, u));
                let f = sigmoid_like(ra, &cols(&z, u, 2 * u));
                let g = self.activation.forward(cols(&z, 2 * u, 3 * u));
                let o = sigmoid_like(ra, &cols(&z, 3 * u, 4 * u));
                let cp = c.expect("LSTM carries c");
                let c_new = &f * cp + &i * &g;
                let tc = self.activation.forward(c_new.clone());
                let h_new = &o * &tc;
                let mut a = Array2::zeros(z.raw_dim());
                a.slice_mut(s![.., 0..u]).assign(&i);
                a.slice_mut(s![.., u..2 * u]).assign(&f);
                a.slice_mut(s![.., 2 * u..3 * u]).assign(&g);
                a.slice_mut(s![.., 3 * u..]).assign(&o);
                step.pre = z;
                step.act = a;
                step.c_new = Some(c_new.clone());
                step.tc = Some(tc);
                (h_new, Some(c_new))
            }
            CellKind::Gru { reset_after } => {
                let ra = self.recurrent_activation;
                let mut mx = xk.to_owned();
                if let Some(b) = flat_bias(0) {
                    add_row(&mut mx, b);
                }
                let inner = if reset_after {
                    let mut m = matmul(hd.view(), r);
                    if let Some(b) = flat_bias(1) {
                        add_row(&mut m, b);
                    }
                    m
                } else {
                    matmul(hd.view(), r.slice(s![.., ..2 * u]))
                };
                let z = ra.forward(&cols(&mx, 0, u) + &inner.slice(s![.., 0..u]));
                let rg = ra.forward(&cols(&mx, u, 2 * u) + &inner.slice(s![.., u..2 * u]));
                let (hh_pre, rh) = if reset_after {
                    let rec_h = &rg * &inner.slice(s![.., 2 * u..]);
                    (&cols(&mx, 2 * u, 3 * u) + &rec_h, None)
                } else {
                    // Implementation 2 multiplies r by the un-dropped h₋
                    // (used only without recurrent dropout), 1 by h₋ʰ.
                    let rh = &rg * &hd;
                    let q = matmul(rh.view(), r.slice(s![.., 2 * u..]));
                    (&cols(&mx, 2 * u, 3 * u) + &q, Some(rh))
                };
                let hh = self.activation.forward(hh_pre.clone());
                // gru.py: z * h_tm1 + (1 - z) * hh.
                let h_new = &z * h + &(1.0 - &z) * &hh;
                let mut pre = Array2::zeros(mx.raw_dim());
                pre.slice_mut(s![.., 2 * u..]).assign(&hh_pre);
                let mut a = Array2::zeros(mx.raw_dim());
                a.slice_mut(s![.., 0..u]).assign(&z);
                a.slice_mut(s![.., u..2 * u]).assign(&rg);
                a.slice_mut(s![.., 2 * u..]).assign(&hh);
                // Pre-activations of z and r.
                pre.slice_mut(s![.., 0..u])
                    .assign(&(&cols(&mx, 0, u) + &inner.slice(s![.., 0..u])));
                pre.slice_mut(s![.., u..2 * u])
                    .assign(&(&cols(&mx, u, 2 * u) + &inner.slice(s![.., u..2 * u])));
                step.pre = pre;
                step.act = a;
                step.inner = Some(inner);
                step.c_new = rh;
                (h_new, None)
            }
        };
        step.hd = hd;
        Ok((h_new, c_new, step))
    }

    /// Backpropagation through time. `dys` are the gradients of the
    /// outputs (`None`: zero), in output order.
    pub fn back(
        &self,
        vars: &[Var],
        x_shape: &[usize],
        tape: &Tape,
        dys: &[Option<ArrayD<f32>>],
    ) -> Result<(ArrayD<f32>, Vec<ArrayD<f32>>)> {
        let &[n, t, d] = x_shape else {
            return Err(Error::invalid("recurrent input of rank 3 expected"));
        };
        let u = self.units;
        let k = view2(&vars[0])?;
        let r = view2(&vars[1])?;
        let as2 = |a: &ArrayD<f32>| -> Result<Array2<f32>> {
            a.clone()
                .into_dimensionality()
                .map_err(|e| Error::invalid(e.to_string()))
        };
        let mut dh = match dys.get(1).and_then(Option::as_ref) {
            Some(g) => as2(g)?,
            None => Array2::zeros((n, u)),
        };
        let mut dc = match dys.get(2).and_then(Option::as_ref) {
            Some(g) => as2(g)?,
            None => Array2::zeros((n, u)),
        };
        let dout = dys.first().and_then(Option::as_ref);
        // The recurrent kernel transposed once, in standard layout, for the
        // per-step products `dz @ recurrentᵀ`.
        let rt = r.t().as_standard_layout().into_owned();
        let mut dr = Array2::<f32>::zeros(r.raw_dim());
        let g = self.kind.gates();
        let mut db = Array2::<f32>::zeros((
            if self.kind == (CellKind::Gru { reset_after: true }) {
                2
            } else {
                1
            },
            g * u,
        ));
        // The gradient of every step's `x_t @ kernel`, by time index.
        let mut dxk = ndarray::Array3::<f32>::zeros((n, t, g * u));
        // Gradient reaching the previous step's output (a masked step
        // outputs the previous output).
        let mut dprev_out = Array2::<f32>::zeros((n, u));
        let zero_out = self.zero_output_for_mask && !self.unroll;
        for p in (0..tape.steps.len()).rev() {
            let st = &tape.steps[p];
            let ti = tape.times[p];
            let mut dout_t = std::mem::replace(&mut dprev_out, Array2::zeros((n, u)));
            if let Some(gy) = dout {
                if self.return_sequences {
                    dout_t += &gy.slice(s![.., p, ..]);
                } else if p + 1 == tape.steps.len() {
                    dout_t += &as2(gy)?;
                }
            }
            // Split rows: kept rows go through the cell, masked rows pass
            // their state (and output) gradients to the previous step.
            let mut dh_cell = &dout_t + &dh;
            let mut dc_cell = dc.clone();
            let mut dh_pass = Array2::<f32>::zeros((n, u));
            let mut dc_pass = Array2::<f32>::zeros((n, u));
            if let Some(keep) = &st.keep {
                for (s, &kept) in keep.iter().enumerate() {
                    if kept {
                        continue;
                    }
                    dh_pass.row_mut(s).assign(&dh.row(s));
                    dc_pass.row_mut(s).assign(&dc.row(s));
                    if !zero_out {
                        dprev_out.row_mut(s).assign(&dout_t.row(s));
                    }
                    dh_cell.row_mut(s).fill(0.0);
                    dc_cell.row_mut(s).fill(0.0);
                }
            }
            let (dz, dh_direct, mut dhd, dc_prev) =
                self.cell_back(rt.view(), st, &dh_cell, &dc_cell, &mut dr, &mut db)?;
            if let Some(m) = &tape.drop_h {
                dhd *= m;
            }
            dxk.slice_mut(s![.., ti, ..]).assign(&dz);
            dh = dhd + &dh_pass;
            if let Some(g) = dh_direct {
                dh += &g;
            }
            dc = dc_prev.unwrap_or_else(|| Array2::zeros((n, u))) + &dc_pass;
        }
        // The kernel and input gradients of all steps in one product each.
        let dxk = dxk
            .into_shape_with_order((n * t, g * u))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let dk = matmul_tn(tape.xs.view(), dxk.view());
        if self.recurrent_gradient_at_end() {
            // SimpleRNN and LSTM: the recurrent kernel's gradient is
            // `Σ_t h₋ᵈ_tᵀ dz_t`, one product over every step's rows.
            let mut hds = ndarray::Array3::<f32>::zeros((n, t, u));
            for (st, &ti) in tape.steps.iter().zip(&tape.times) {
                hds.slice_mut(s![.., ti, ..]).assign(&st.hd);
            }
            let hds = hds
                .into_shape_with_order((n * t, u))
                .map_err(|e| Error::invalid(e.to_string()))?;
            dr = matmul_tn(hds.view(), dxk.view());
        }
        let mut dx = matmul(dxk.view(), k.t().as_standard_layout().view());
        if let Some(m) = &tape.drop_x {
            for (row, mut grad) in dx.rows_mut().into_iter().enumerate() {
                grad *= &m.row(row / t.max(1));
            }
        }
        let dx = dx
            .into_shape_with_order(IxDyn(&[n, t, d]))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let mut grads = vec![dk.into_dyn(), dr.into_dyn()];
        if self.use_bias {
            grads.push(match self.kind {
                CellKind::Gru { reset_after: true } => db.into_dyn(),
                _ => db.index_axis(Axis(0), 0).to_owned().into_dyn(),
            });
        }
        Ok((dx, grads))
    }

    /// One step backward: gradients of the step's `x_t @ kernel`, previous h
    /// and c; recurrent and bias gradients accumulated. `rt` is the recurrent
    /// kernel transposed.
    fn cell_back(
        &self,
        rt: ArrayView2<'_, f32>,
        st: &Step,
        dh: &Array2<f32>,
        dc: &Array2<f32>,
        dr: &mut Array2<f32>,
        db: &mut Array2<f32>,
    ) -> Result<CellGrads> {
        let u = self.units;
        let ra = self.recurrent_activation;
        match self.kind {
            CellKind::Simple => {
                let dz = act_back(self.activation, &st.pre, &st.act, dh);
                db.row_mut(0).scaled_add(1.0, &dz.sum_axis(Axis(0)));
                let dhd = matmul(dz.view(), rt);
                Ok((dz, None, dhd, None))
            }
            CellKind::Lstm if self.standard_lstm() => {
                let cp = st.c.as_ref().expect("LSTM tape");
                let tc = st.tc.as_ref().expect("LSTM tape");
                let (dz, dcp) = lstm_gates_back(&st.act, cp, tc, dh, dc, u);
                db.row_mut(0).scaled_add(1.0, &dz.sum_axis(Axis(0)));
                let dhd = matmul(dz.view(), rt);
                Ok((dz, None, dhd, Some(dcp)))
            }
            CellKind::Lstm => {
                let i = cols(&st.act, 0, u);
                let f = cols(&st.act, u, 2 * u);
                let gg = cols(&st.act, 2 * u, 3 * u);
                let o = cols(&st.act, 3 * u, 4 * u);
                let c_new = st.c_new.as_ref().expect("LSTM tape");
                let tc = st.tc.as_ref().expect("LSTM tape");
                let cp = st.c.as_ref().expect("LSTM tape");
                let d_o = dh * tc;
                let dct = dc + &act_back(self.activation, c_new, tc, &(dh * &o));
                let di = &dct * &gg;
                let df = &dct * cp;
                let dg = &dct * &i;
                let dcp = &dct * &f;
                let mut dz = Array2::<f32>::zeros(st.pre.raw_dim());
                let parts = [(0, &di, ra, &i), (1, &df, ra, &f), (3, &d_o, ra, &o)];
                for (gate, dgate, a, y) in parts {
                    let z = cols(&st.pre, gate * u, (gate + 1) * u);
                    dz.slice_mut(s![.., gate * u..(gate + 1) * u])
                        .assign(&act_back(a, &z, y, dgate));
                }
                let z2 = cols(&st.pre, 2 * u, 3 * u);
                dz.slice_mut(s![.., 2 * u..3 * u]).assign(&act_back(
                    self.activation,
                    &z2,
                    &gg,
                    &dg,
                ));
                db.row_mut(0).scaled_add(1.0, &dz.sum_axis(Axis(0)));
                let dhd = matmul(dz.view(), rt);
                Ok((dz, None, dhd, Some(dcp)))
            }
            CellKind::Gru { reset_after } => {
                let z = cols(&st.act, 0, u);
                let rg = cols(&st.act, u, 2 * u);
                let hh = cols(&st.act, 2 * u, 3 * u);
                let inner = st.inner.as_ref().expect("GRU tape");
                // h = z * h₋ + (1 - z) * hh
                let dz = dh * &(&st.h - &hh);
                let dhh = dh * &(1.0 - &z);
                let dh_prev = dh * &z;
                let da = act_back(self.activation, &cols(&st.pre, 2 * u, 3 * u), &hh, &dhh);
                let mut dmx = Array2::<f32>::zeros(st.pre.raw_dim());
                dmx.slice_mut(s![.., 2 * u..]).assign(&da);
                let dzp = act_back(ra, &cols(&st.pre, 0, u), &z, &dz);
                let (drg, dinner_h, dhd_extra) = if reset_after {
                    let inner_h = cols(inner, 2 * u, 3 * u);
                    (&da * &inner_h, Some(&da * &rg), None)
                } else {
                    let rh = st.c_new.as_ref().expect("GRU tape");
                    dr.slice_mut(s![.., 2 * u..])
                        .scaled_add(1.0, &matmul(rh.t(), da.view()));
                    let drh = matmul(da.view(), rt.slice(s![2 * u.., ..]));
                    (&drh * &st.hd, None, Some(&drh * &rg))
                };
                let drp = act_back(ra, &cols(&st.pre, u, 2 * u), &rg, &drg);
                dmx.slice_mut(s![.., 0..u]).assign(&dzp);
                dmx.slice_mut(s![.., u..2 * u]).assign(&drp);
                db.row_mut(0).scaled_add(1.0, &dmx.sum_axis(Axis(0)));
                let dhd = if let Some(dih) = dinner_h {
                    let mut dinner = Array2::<f32>::zeros(inner.raw_dim());
                    dinner.slice_mut(s![.., 0..u]).assign(&dzp);
                    dinner.slice_mut(s![.., u..2 * u]).assign(&drp);
                    dinner.slice_mut(s![.., 2 * u..]).assign(&dih);
                    *dr += &matmul(st.hd.t(), dinner.view());
                    if db.nrows() > 1 {
                        db.row_mut(1).scaled_add(1.0, &dinner.sum_axis(Axis(0)));
                    }
                    matmul(dinner.view(), rt)
                } else {
                    let mut dinner = Array2::<f32>::zeros((dzp.nrows(), 2 * u));
                    dinner.slice_mut(s![.., 0..u]).assign(&dzp);
                    dinner.slice_mut(s![.., u..]).assign(&drp);
                    dr.slice_mut(s![.., ..2 * u])
                        .scaled_add(1.0, &matmul(st.hd.t(), dinner.view()));
                    let mut g = matmul(dinner.view(), rt.slice(s![..2 * u, ..]));
                    if let Some(e) = dhd_extra {
                        g += &e;
                    }
                    g
                };
                // `z * h₋` reads the un-dropped h₋.
                Ok((dmx, Some(dh_prev), dhd, None))
            }
        }
    }
}

/// `SimpleRNN`, `LSTM` or `GRU` as a layer.
#[derive(Debug, Clone)]
pub struct Rnn {
    config: RnnConfig,
    activity_regularizer: Option<Regularizer>,
    vars: Vec<Var>,
}

/// Builder of `SimpleRNN`, `LSTM` and `GRU`.
pub fn build_rnn(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let input = cx.input()?;
    let (config, vars) = parse(cx, input)?;
    let layer = Rnn {
        config,
        activity_regularizer: cx.regularizer("activity_regularizer")?,
        vars,
    };
    layer.output_shapes(cx.inputs)?;
    Ok(Box::new(layer))
}

impl LayerOp for Rnn {
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        Ok(self.output_shapes(inputs)?.remove(0))
    }

    fn output_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        self.config
            .output_shapes(single_shape(inputs, &self.config.class)?)
    }

    fn compute_mask(
        &self,
        _x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
    ) -> Result<Vec<Option<Mask>>> {
        Ok(self.config.output_masks(masks.first().copied().flatten()))
    }

    fn var_path(&self, i: usize) -> String {
        format!("{CELL}/vars/{i}")
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn vars_mut(&mut self) -> &mut [Var] {
        &mut self.vars
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        self.forward_masked(x, &[None], cx)
    }

    fn forward_masked(
        &self,
        x: &[&ArrayD<f32>],
        masks: &[Option<&Mask>],
        cx: &mut Ctx<'_>,
    ) -> Result<Forward> {
        let x = super::norm::single(x, &self.config.class)?;
        let (mut outs, tape) =
            self.config
                .run(&self.vars, x, masks.first().copied().flatten(), cx)?;
        let y = outs.remove(0);
        Ok(Forward {
            y,
            extra: outs,
            saved: Some(Box::new(tape)),
            updates: Vec::new(),
        })
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
        _ys: &[&ArrayD<f32>],
        saved: &Saved,
        dys: Vec<Option<ArrayD<f32>>>,
        _inputs_needed: bool,
    ) -> Result<Backward> {
        let tape = saved
            .as_ref()
            .and_then(|s| s.downcast_ref::<Tape>())
            .ok_or_else(|| Error::training("the recurrent layer has no forward tape"))?;
        let (dx, grads) = self.config.back(&self.vars, x[0].shape(), tape, &dys)?;
        Ok(Backward {
            inputs: vec![dx],
            vars: grads.into_iter().map(Some).collect(),
        })
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        self.activity_regularizer
    }

    fn detail(&self) -> Option<String> {
        let c = &self.config;
        let mut parts = Vec::new();
        if c.return_sequences {
            parts.push("return_sequences");
        }
        if c.return_state {
            parts.push("return_state");
        }
        if c.go_backwards {
            parts.push("go_backwards");
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::check::{build, gradients, values};
    use super::*;
    use serde_json::json;

    fn stored(shapes: &[Vec<usize>], seed: u64) -> Vec<(Vec<usize>, Vec<f32>)> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let v = values(s, seed + i as u64).mapv(|v| v * 0.6);
                (s.clone(), v.iter().copied().collect())
            })
            .collect()
    }

    fn shapes(class: &str, cfg: &serde_json::Value, d: usize, u: usize) -> Vec<Vec<usize>> {
        let g = match class {
            "LSTM" => 4,
            "GRU" => 3,
            _ => 1,
        };
        let mut s = vec![vec![d, g * u], vec![u, g * u]];
        if cfg["use_bias"] != json!(false) {
            if class == "GRU" && cfg["reset_after"] != json!(false) {
                s.push(vec![2, g * u]);
            } else {
                s.push(vec![g * u]);
            }
        }
        s
    }

    /// Finite differences through time for every cell and option, with
    /// every output (sequence and states) in the objective.
    #[test]
    fn gradients_through_time() {
        let cases = [
            ("SimpleRNN", json!({"units": 3, "return_sequences": true})),
            (
                "SimpleRNN",
                json!({"units": 3, "go_backwards": true, "activation": "relu"}),
            ),
            (
                "LSTM",
                json!({"units": 3, "return_sequences": true, "return_state": true}),
            ),
            (
                "LSTM",
                json!({"units": 2, "go_backwards": true, "use_bias": false}),
            ),
            ("LSTM", json!({"units": 2, "recurrent_dropout": 0.5})),
            ("GRU", json!({"units": 3, "return_state": true})),
            (
                "GRU",
                json!({"units": 3, "reset_after": false, "return_sequences": true}),
            ),
            (
                "GRU",
                json!({"units": 2, "go_backwards": true, "use_bias": false, "reset_after": false}),
            ),
        ];
        for (class, cfg) in cases {
            let vars = stored(
                &shapes(class, &cfg, 3, cfg["units"].as_u64().unwrap() as usize),
                11,
            );
            let op = build(build_rnn, class, cfg.clone(), &[vec![4, 3]], &vars);
            gradients(op.as_ref(), &[values(&[2, 4, 3], 5)], Mode::Training, 2e-2);
        }
    }

    /// A masked step keeps the states and repeats the previous output
    /// (`backend/jax/rnn.py`), and gradients flow past it.
    #[test]
    fn masked_steps_carry_the_state() {
        for zero in [false, true] {
            let cfg = json!({"units": 2, "return_sequences": true, "zero_output_for_mask": zero});
            let vars = stored(&shapes("LSTM", &cfg, 3, 2), 3);
            let op = build(build_rnn, "LSTM", cfg, &[vec![4, 3]], &vars);
            let x = values(&[2, 4, 3], 8);
            let mut mask = Mask::from_elem(IxDyn(&[2, 4]), true);
            mask[[0, 2]] = false;
            mask[[1, 3]] = false;
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
            let mut cx = Ctx {
                mode: Mode::Training,
                rng: &mut rng,
            };
            let f = op.forward_masked(&[&x], &[Some(&mask)], &mut cx).unwrap();
            let (a, b) = (f.y.slice(s![0, 1, ..]), f.y.slice(s![0, 2, ..]));
            if zero {
                assert!(b.iter().all(|&v| v == 0.0));
            } else {
                assert_eq!(a, b);
            }
            // Finite differences of sum(y * r) with the mask fixed.
            let r = values(f.y.shape(), 9);
            let obj = |x: &ArrayD<f32>| -> f64 {
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
                let mut cx = Ctx {
                    mode: Mode::Training,
                    rng: &mut rng,
                };
                let y = op.forward_masked(&[x], &[Some(&mask)], &mut cx).unwrap().y;
                y.iter().zip(&r).map(|(&a, &b)| f64::from(a * b)).sum()
            };
            let back = op.backward(&[&x], &f.y, &f.saved, r.clone()).unwrap();
            for j in 0..x.len() {
                let mut p = x.clone();
                let mut m = x.clone();
                p.as_slice_mut().unwrap()[j] += 1e-3;
                m.as_slice_mut().unwrap()[j] -= 1e-3;
                let num = (obj(&p) - obj(&m)) / 2e-3;
                let got = f64::from(back.inputs[0].as_slice().unwrap()[j]);
                assert!(
                    (num - got).abs() < 2e-2 * num.abs().max(1.0),
                    "{j}: {num} vs {got}"
                );
            }
        }
    }

    #[test]
    fn stateful_is_refused() {
        let cx_cfg = json!({"units": 2, "stateful": true});
        let config = cx_cfg.as_object().unwrap().clone();
        let err = build_rnn(&BuildCx {
            class_name: "LSTM",
            name: "l",
            config: &config,
            inputs: &[vec![3, 2]],
            stored: &[],
            vars_path: "layers/lstm/vars",
            group: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("stateful=True"), "{err}");
    }
}
