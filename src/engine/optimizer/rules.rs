//! Gradient clipping, weight decay and the per-variable update rules, each
//! written as the float32 operations of the Keras source in the same order.
//!
//! Python float hyperparameters are weakly typed in JAX: a bare `self.rho`
//! meeting a float32 tensor becomes `f32(rho)`, while `1 - self.rho`
//! computed in Python first becomes `f32(1 - rho)` (which can differ from
//! `1 - f32(rho)` by an ulp). `c(..)` marks these conversions.
//!
//! XLA's algebraic simplifier rewrites a tensor divided by a broadcast
//! scalar, `A / broadcast(s)`, into `A * broadcast(1 / s)` (eagerly and under
//! `jit`, on CPU), which rounds differently from a true division; [`recip`]
//! marks those places. Scalar-by-scalar and tensor-by-tensor divisions are
//! true divisions, except that compiled code turns `x / sqrt(y)` into
//! `x * rsqrt(y)` (`div_sqrt`).
//!
//! Under [`Arithmetic::Compiled`] (what `model.fit` runs) a multiply feeding
//! an add or subtract is one fused multiply-add where LLVM contracts it; the
//! `a.mul_add`, `a.sub_mul`, `a.mul_sub` calls mark exactly those places
//! (`x * y` stays separate when its product has another use, for example
//! after XLA's common-subexpression elimination).

use super::super::schedule::{Arithmetic, f32_of as c, maximum, minimum};
use super::{Clip, Kind};

/// Scalars shared by every variable's update in one step.
pub(super) struct Step {
    /// The learning rate (`self.learning_rate` before the step).
    pub lr: f32,
    /// `ops.cast(self.iterations + 1, "float32")`.
    pub local_step: f32,
    /// `ops.cast(self.iterations + 2, "float32")` (Nadam).
    pub next_step: f32,
    /// How multiply-adds round.
    pub arith: Arithmetic,
}

impl Step {
    pub(super) fn new(iterations: i64, lr: f32, arith: Arithmetic) -> Self {
        Step {
            lr,
            local_step: (iterations + 1) as f32,
            next_step: (iterations + 2) as f32,
            arith,
        }
    }
}

/// A variable's gradient as the update sees it: `raw * scale` when gradient
/// clipping scaled it. Compiled, XLA recomputes that product inside each
/// consumer, so it can be contracted into a following add or subtract
/// (`g - m` becomes `fma(raw, scale, -m)`); [`Grad::minus`] and
/// [`Grad::plus_product`] reproduce that.
#[derive(Clone, Copy)]
pub(super) struct Grad<'a> {
    pub raw: &'a [f32],
    pub scale: Option<f32>,
}

impl Grad<'_> {
    fn len(&self) -> usize {
        self.raw.len()
    }

    /// The gradient value (the rounded product).
    #[inline]
    fn at(&self, i: usize) -> f32 {
        match self.scale {
            Some(s) => self.raw[i] * s,
            None => self.raw[i],
        }
    }

    /// `g - x`.
    #[inline]
    fn minus(&self, i: usize, x: f32, a: Arithmetic) -> f32 {
        match self.scale {
            Some(s) => a.mul_sub(self.raw[i], s, x),
            None => self.raw[i] - x,
        }
    }

    /// `g + b * c` (LLVM fuses the left product when both are products).
    #[inline]
    fn plus_product(&self, i: usize, b: f32, c: f32, a: Arithmetic) -> f32 {
        match self.scale {
            Some(s) => a.mul_add(self.raw[i], s, b * c),
            None => a.mul_add(b, c, self.raw[i]),
        }
    }
}

/// `ops.sum(ops.square(g))` as float32 (accumulated in f64: XLA's reduction
/// order is not sequential, so neither order is bit-exact; this one is the
/// most accurate).
fn sum_of_squares(g: &[f32]) -> f32 {
    g.iter().map(|&x| f64::from(x * x)).sum::<f64>() as f32
}

/// `1 / s`, for XLA's `A / broadcast(s)` => `A * broadcast(1 / s)`.
#[inline]
fn recip(s: f32) -> f32 {
    1.0 / s
}

/// `jnp.sign`: zero (with its sign) and NaN map to themselves.
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// `jnp.clip(x, lo, hi)` = `minimum(maximum(x, lo), hi)`.
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    minimum(maximum(x, lo), hi)
}

/// `BaseOptimizer._clip_gradients` (`base_optimizer.py`): `clipnorm` per
/// variable (`_clip_by_norm`), else `global_clipnorm`
/// (`clip_by_global_norm`), else `clipvalue`; a value `<= 0` disables it.
///
/// Returns the per-variable scale still to apply (see [`Grad`]): by-norm
/// clipping leaves `clipnorm / max(norm, clipnorm)` (eagerly it multiplies
/// `grads` by `clipnorm` in place and leaves `1 / max(norm, clipnorm)`);
/// global clipping leaves its scale; `clipvalue` clips in place.
pub(super) fn clip_gradients(
    clip_cfg: Clip,
    a: Arithmetic,
    grads: &mut [Vec<f32>],
) -> Vec<Option<f32>> {
    match clip_cfg {
        Clip::Norm(norm) if norm > 0.0 => {
            let cn = c(norm);
            grads
                .iter_mut()
                .map(|g| {
                    let l2sum = sum_of_squares(g);
                    // Two-tap `where`: the norm is sqrt(l2sum) when positive.
                    let l2norm = if l2sum > 0.0 { l2sum.sqrt() } else { l2sum };
                    // `values * clipnorm / maximum(l2norm, clipnorm)`, the
                    // divisor a broadcast keepdims scalar (so a reciprocal).
                    let inv = recip(maximum(l2norm, cn));
                    match a {
                        // XLA folds the two scalar factors first.
                        Arithmetic::Compiled => Some(inv * cn),
                        Arithmetic::Eager => {
                            for x in g.iter_mut() {
                                *x *= cn;
                            }
                            Some(inv)
                        }
                    }
                })
                .collect()
        }
        Clip::GlobalNorm(norm) if norm > 0.0 => {
            // global_norm: sqrt(sum(stack([sum(square(v)) for v]))).
            let total = grads
                .iter()
                .map(|g| f64::from(sum_of_squares(g)))
                .sum::<f64>() as f32;
            let use_norm = total.sqrt();
            // `clip_norm * minimum(1 / use_norm, 1 / clip_norm) + (use_norm
            // - use_norm)`: the last term is 0, or NaN when the norm is not
            // finite.
            let zero_or_nan = if use_norm.is_finite() { 0.0 } else { f32::NAN };
            let scale = a.mul_add(c(norm), minimum(1.0 / use_norm, c(1.0 / norm)), zero_or_nan);
            vec![Some(scale); grads.len()]
        }
        Clip::Value(value) if value > 0.0 => {
            let (lo, hi) = (c(-value), c(value));
            for x in grads.iter_mut().flatten() {
                *x = clip(*x, lo, hi);
            }
            vec![None; grads.len()]
        }
        _ => vec![None; grads.len()],
    }
}

/// `BaseOptimizer._apply_weight_decay` (`base_optimizer.py`):
/// `variable - variable * wd * lr` for every trainable variable.
///
/// Compiled, XLA folds the two scalar factors first: `v - v * (lr * wd)`.
pub(super) fn apply_weight_decay(wd: f64, step: &Step, params: &mut [&mut [f32]]) {
    let (wd, lr, a) = (c(wd), step.lr, step.arith);
    let folded = lr * wd;
    for x in params.iter_mut().flat_map(|p| p.iter_mut()) {
        *x = match a {
            Arithmetic::Compiled => a.sub_mul(*x, *x, folded),
            Arithmetic::Eager => *x - *x * wd * lr,
        };
    }
}

/// Nadam's `_backend_update_step` (`nadam.py`), once per step before the
/// variables: `u_product * beta_1 * (1 - 0.5 * 0.96 ^ (iterations + 1))`.
pub(super) fn nadam_u_product(u_product: f32, beta_1: f64, step: &Step) -> f32 {
    u_product * c(beta_1) * step.arith.sub_mul(1.0, 0.5, c(0.96).powf(step.local_step))
}

/// Split the per-variable slots into the N the rule uses.
fn slots_of<'s, const N: usize>(slots: &'s mut [&mut [f32]]) -> [&'s mut [f32]; N] {
    let mut iter = slots.iter_mut();
    std::array::from_fn(|_| match iter.next() {
        Some(s) => &mut **s,
        None => panic!("optimizer slot missing: the optimizer was not built for this rule"),
    })
}

/// One variable's `update_step`.
pub(super) fn update_step(
    kind: &Kind,
    step: &Step,
    u_product: f32,
    p: &mut [f32],
    g: Grad<'_>,
    slots: &mut [&mut [f32]],
) {
    let (lr, a) = (step.lr, step.arith);
    match *kind {
        Kind::Sgd { momentum, nesterov } => sgd(step, momentum, nesterov, p, g, slots),
        Kind::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            ..
        } => adam(step, beta_1, beta_2, epsilon, amsgrad, p, g, slots),
        Kind::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
        } => rmsprop(step, rho, momentum, epsilon, centered, p, g, slots),
        Kind::Adagrad { epsilon, .. } => {
            // `adagrad.py` `update_step`.
            let [acc] = slots_of(slots);
            let eps = c(epsilon);
            for i in 0..g.len() {
                let gi = g.at(i);
                acc[i] = a.mul_add(gi, gi, acc[i]);
                p[i] = a.sub_div_sqrt(p[i], lr * gi, acc[i] + eps);
            }
        }
        Kind::Adamax {
            beta_1,
            beta_2,
            epsilon,
        } => {
            // `adamax.py` `update_step`.
            let [m, u] = slots_of(slots);
            let beta_1_power = c(beta_1).powf(step.local_step);
            let (one_minus_b1, b2, eps) = (c(1.0 - beta_1), c(beta_2), c(epsilon));
            for i in 0..g.len() {
                m[i] = a.mul_add(g.minus(i, m[i], a), one_minus_b1, m[i]);
                u[i] = maximum(b2 * u[i], g.at(i).abs());
                p[i] -= (lr * m[i]) / ((1.0 - beta_1_power) * (u[i] + eps));
            }
        }
        Kind::Nadam {
            beta_1,
            beta_2,
            epsilon,
        } => nadam(step, u_product, beta_1, beta_2, epsilon, p, g, slots),
        Kind::Adadelta { rho, epsilon } => {
            // `adadelta.py` `update_step`.
            let [acc_grad, acc_delta] = slots_of(slots);
            let (r, one_minus_r, eps) = (c(rho), c(1.0 - rho), c(epsilon));
            for i in 0..g.len() {
                let gi = g.at(i);
                acc_grad[i] = a.mul_add(r, acc_grad[i], one_minus_r * (gi * gi));
                let delta = -a.div_sqrt((acc_delta[i] + eps).sqrt() * gi, acc_grad[i] + eps);
                acc_delta[i] = a.mul_add(r, acc_delta[i], one_minus_r * (delta * delta));
                p[i] = a.mul_add(lr, delta, p[i]);
            }
        }
        Kind::Lion { beta_1, beta_2 } => {
            // `lion.py` `update_step`: beta_1, beta_2 are cast first, so
            // `1.0 - beta` is a float32 subtraction.
            let [m] = slots_of(slots);
            let (b1, b2) = (c(beta_1), c(beta_2));
            for i in 0..g.len() {
                let gi = g.at(i);
                let s = sign(a.mul_add(m[i], b1, gi * (1.0 - b1)));
                p[i] = a.sub_mul(p[i], lr, s);
                m[i] = a.mul_add(m[i], b2, gi * (1.0 - b2));
            }
        }
        Kind::Ftrl {
            learning_rate_power,
            l1_regularization_strength,
            l2_regularization_strength,
            l2_shrinkage_regularization_strength,
            beta,
            ..
        } => {
            // `ftrl.py` `update_step`.
            let [accum, linear] = slots_of(slots);
            let power = c(-learning_rate_power);
            // Compiled, XLA computes a tensor's `pow(x, 0.5)` as `sqrt(x)`.
            let pow = |x: f32| {
                if power == 0.5 && a == Arithmetic::Compiled {
                    x.sqrt()
                } else {
                    x.powf(power)
                }
            };
            let l2_reg = c(l2_regularization_strength) + c(beta) / (2.0 * lr);
            let shrink = c(2.0 * l2_shrinkage_regularization_strength);
            let (lo, hi) = (
                c(-l1_regularization_strength),
                c(l1_regularization_strength),
            );
            // Tensors divided by the scalar learning rate: XLA's reciprocal
            // rewrite needs the divisor to have a single use, true of an
            // eager op but not of `lr` in the compiled step.
            let div_lr = |x: f32| match a {
                Arithmetic::Compiled => x / lr,
                Arithmetic::Eager => x * recip(lr),
            };
            for i in 0..g.len() {
                let grad_to_use = g.plus_product(i, shrink, p[i], a);
                let gi = g.at(i);
                let new_accum = a.mul_add(gi, gi, accum[i]);
                let pow_new = pow(new_accum);
                linear[i] += a.sub_mul(grad_to_use, div_lr(pow_new - pow(accum[i])), p[i]);
                // (`+ 2 * l2_reg` may be fused too, but doubling is exact.)
                let quadratic = div_lr(pow_new) + 2.0 * l2_reg;
                let linear_clipped = clip(linear[i], lo, hi);
                p[i] = (linear_clipped - linear[i]) / quadratic;
                accum[i] = new_accum;
            }
        }
    }
}

/// `sgd.py` `update_step`.
fn sgd(
    step: &Step,
    momentum: f64,
    nesterov: bool,
    p: &mut [f32],
    g: Grad<'_>,
    slots: &mut [&mut [f32]],
) {
    let (lr, a) = (step.lr, step.arith);
    if momentum == 0.0 {
        for (i, x) in p.iter_mut().enumerate() {
            *x = a.sub_mul(*x, g.at(i), lr);
        }
        return;
    }
    let [m] = slots_of(slots);
    let mom = c(momentum);
    for i in 0..g.len() {
        // `gradient * learning_rate` is computed twice with Nesterov and
        // merged by XLA, so that product is never fused.
        let gl = g.at(i) * lr;
        m[i] = a.mul_sub(m[i], mom, gl);
        if nesterov {
            p[i] += a.mul_sub(m[i], mom, gl);
        } else {
            p[i] += m[i];
        }
    }
}

/// `adam.py` `update_step` (also `adamw.py`, which only changes the default
/// weight decay): `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
/// `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`,
/// `variable -= m * alpha / (sqrt(v) + epsilon)`.
#[allow(clippy::too_many_arguments)]
fn adam(
    step: &Step,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    amsgrad: bool,
    p: &mut [f32],
    g: Grad<'_>,
    slots: &mut [&mut [f32]],
) {
    let a = step.arith;
    let beta_1_power = c(beta_1).powf(step.local_step);
    let beta_2_power = c(beta_2).powf(step.local_step);
    let alpha = step.lr * (1.0 - beta_2_power).sqrt() / (1.0 - beta_1_power);
    let (one_minus_b1, one_minus_b2, eps) = (c(1.0 - beta_1), c(1.0 - beta_2), c(epsilon));
    let update = |m: &mut f32, v: &mut f32, i: usize| {
        let gi = g.at(i);
        *m = a.mul_add(g.minus(i, *m, a), one_minus_b1, *m);
        *v = a.mul_add(a.mul_sub(gi, gi, *v), one_minus_b2, *v);
    };
    if amsgrad {
        let [m, v, v_hat] = slots_of(slots);
        for i in 0..g.len() {
            update(&mut m[i], &mut v[i], i);
            v_hat[i] = maximum(v_hat[i], v[i]);
            p[i] -= (m[i] * alpha) / (v_hat[i].sqrt() + eps);
        }
    } else {
        let [m, v] = slots_of(slots);
        for i in 0..g.len() {
            update(&mut m[i], &mut v[i], i);
            p[i] -= (m[i] * alpha) / (v[i].sqrt() + eps);
        }
    }
}

/// `rmsprop.py` `update_step`: slots are velocity, then momentum (if
/// `momentum > 0`), then average gradient (if centered).
#[allow(clippy::too_many_arguments)]
fn rmsprop(
    step: &Step,
    rho: f64,
    momentum: f64,
    epsilon: f64,
    centered: bool,
    p: &mut [f32],
    g: Grad<'_>,
    slots: &mut [&mut [f32]],
) {
    let (lr, a) = (step.lr, step.arith);
    let (r, one_minus_r, eps, mom) = (c(rho), c(1.0 - rho), c(epsilon), c(momentum));
    let (velocity, rest) = slots.split_at_mut(1);
    let velocity = &mut velocity[0];
    let (mut momentums, rest) = if momentum > 0.0 {
        let (m, rest) = rest.split_at_mut(1);
        (Some(&mut m[0]), rest)
    } else {
        (None, rest)
    };
    let mut average = if centered { rest.first_mut() } else { None };
    for i in 0..g.len() {
        let gi = g.at(i);
        velocity[i] = a.mul_add(r, velocity[i], one_minus_r * (gi * gi));
        let denominator = match average.as_deref_mut() {
            Some(avg) => {
                avg[i] = a.mul_add(r, avg[i], one_minus_r * gi);
                a.sub_mul(velocity[i], avg[i], avg[i]) + eps
            }
            None => velocity[i] + eps,
        };
        match momentums.as_deref_mut() {
            Some(m) => {
                let increment = a.div_sqrt(lr * gi, denominator);
                m[i] = a.mul_add(mom, m[i], increment);
                p[i] -= m[i];
            }
            None => p[i] = a.sub_div_sqrt(p[i], lr * gi, denominator),
        }
    }
}

/// `nadam.py` `update_step`; `u_product` is the value already updated by
/// [`nadam_u_product`] for this step. beta_1, beta_2 are cast first, so
/// `1 - beta` is a float32 subtraction here.
#[allow(clippy::too_many_arguments)]
fn nadam(
    step: &Step,
    u_product: f32,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    p: &mut [f32],
    g: Grad<'_>,
    slots: &mut [&mut [f32]],
) {
    let a = step.arith;
    let [m, v] = slots_of(slots);
    let (b1, b2, decay, eps) = (c(beta_1), c(beta_2), c(0.96), c(epsilon));
    // u_t = beta_1 * (1 - 0.5 * decay^t); `1 - u_t` contracts the product.
    let x_t = a.sub_mul(1.0, 0.5, decay.powf(step.local_step));
    let one_minus_u_t = a.sub_mul(1.0, b1, x_t);
    let u_t_1 = b1 * a.sub_mul(1.0, 0.5, decay.powf(step.next_step));
    let u_product_t = u_product;
    let beta_2_power = b2.powf(step.local_step);
    let lr = step.lr;
    // Tensors divided by scalars: `1 - u_product_t * u_t_1`,
    // `1 - u_product_t`, `1 - beta_2_power`.
    let inv_1 = recip(a.sub_mul(1.0, u_product_t, u_t_1));
    let inv_0 = recip(1.0 - u_product_t);
    let inv_v = recip(1.0 - beta_2_power);
    for i in 0..g.len() {
        let gi = g.at(i);
        m[i] = a.mul_add(g.minus(i, m[i], a), 1.0 - b1, m[i]);
        v[i] = a.mul_add(a.mul_sub(gi, gi, v[i]), 1.0 - b2, v[i]);
        let m_hat = a.mul_add(u_t_1 * m[i], inv_1, (one_minus_u_t * gi) * inv_0);
        let v_hat = v[i] * inv_v;
        p[i] -= (m_hat * lr) / (v_hat.sqrt() + eps);
    }
}
