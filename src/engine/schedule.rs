//! Learning-rate schedules, evaluated in float32 exactly as Keras does.
//!
//! Spec: `keras/src/optimizers/schedules/learning_rate_schedule.py`. Each
//! schedule's `__call__` converts its Python hyperparameters to float32
//! tensors and computes in float32; [`Schedule::at`] repeats those operations
//! in the same order. The optimizer evaluates the schedule at its
//! `iterations` counter before the step (`BaseOptimizer.learning_rate`).
//!
//! Transcendental functions (`pow`, `cos`, `log`) call the platform libm,
//! which is what XLA on CPU calls for `pow` and `cos`; XLA's own `log` can
//! differ from libm by one ulp (only `CosineDecayRestarts` with `t_mul != 1`
//! uses it).

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// A Keras learning-rate schedule (`keras.optimizers.schedules.*`).
///
/// Hyperparameters are kept as the Python numbers of the config (f64) and
/// rounded to float32 where Keras converts them.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `initial_learning_rate * decay_rate ^ (step / decay_steps)`.
    ExponentialDecay {
        /// Rate at step 0.
        initial_learning_rate: f64,
        /// Steps per decay period.
        decay_steps: f64,
        /// Factor per period.
        decay_rate: f64,
        /// Decay in discrete periods (`floor(step / decay_steps)`).
        staircase: bool,
        /// The schedule's `name`.
        name: String,
    },
    /// `initial_learning_rate / (1 + decay_rate * step / decay_steps)`.
    InverseTimeDecay {
        /// Rate at step 0.
        initial_learning_rate: f64,
        /// Steps per decay period.
        decay_steps: f64,
        /// Decay rate.
        decay_rate: f64,
        /// Decay in discrete periods.
        staircase: bool,
        /// The schedule's `name`.
        name: String,
    },
    /// `values[i]` for `boundaries[i-1] < step <= boundaries[i]`.
    PiecewiseConstantDecay {
        /// Step boundaries (compared as int32 with the step, like Keras).
        boundaries: Vec<f64>,
        /// One more value than boundaries.
        values: Vec<f64>,
        /// The schedule's `name`.
        name: String,
    },
    /// Polynomial decay from `initial_learning_rate` to `end_learning_rate`.
    PolynomialDecay {
        /// Rate at step 0.
        initial_learning_rate: f64,
        /// Steps to reach the end rate.
        decay_steps: f64,
        /// Final rate.
        end_learning_rate: f64,
        /// Polynomial power.
        power: f64,
        /// Restart after `decay_steps`, with longer periods.
        cycle: bool,
        /// The schedule's `name`.
        name: String,
    },
    /// Cosine decay with optional linear warmup.
    CosineDecay {
        /// Rate at step 0.
        initial_learning_rate: f64,
        /// Steps of the cosine decay.
        decay_steps: f64,
        /// Minimum rate as a fraction of the start rate.
        alpha: f64,
        /// The schedule's `name`.
        name: String,
        /// Rate reached at the end of the warmup (no warmup when `None`).
        warmup_target: Option<f64>,
        /// Steps of linear warmup.
        warmup_steps: f64,
    },
    /// Cosine decay with warm restarts (SGDR).
    CosineDecayRestarts {
        /// Rate at step 0.
        initial_learning_rate: f64,
        /// Steps of the first period.
        first_decay_steps: f64,
        /// Period length factor per restart.
        t_mul: f64,
        /// Rate factor per restart.
        m_mul: f64,
        /// Minimum rate as a fraction of the start rate.
        alpha: f64,
        /// The schedule's `name`.
        name: String,
    },
}

/// The schedule classes [`Schedule::from_config`] understands.
pub const SCHEDULE_NAMES: &[&str] = &[
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "CosineDecay",
    "CosineDecayRestarts",
];

/// How float32 multiply-adds round, which is the one way Keras's two
/// execution modes differ for the same operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arithmetic {
    /// XLA-compiled, as in `model.fit` (`jit_compile`, the default): LLVM
    /// contracts a multiply feeding an add or subtract into one fused
    /// multiply-add (on CPUs with FMA, i.e. any x86-64 since 2013 and all
    /// aarch64), following its `DAGCombiner` rules: a product with a single
    /// use is fused, the left operand of the add preferred.
    #[default]
    Compiled,
    /// Op by op, as in eager `optimizer.apply` or `run_eagerly=True`: every
    /// operation rounds on its own.
    Eager,
}

impl Arithmetic {
    /// The mode `model.fit` uses for a `compile_config`: compiled unless
    /// `run_eagerly` is true or `jit_compile` is false (JAX backend).
    pub fn from_compile_config(cc: &Value) -> Self {
        let run_eagerly = cc.get("run_eagerly").and_then(Value::as_bool) == Some(true);
        let no_jit = cc.get("jit_compile").and_then(Value::as_bool) == Some(false);
        if run_eagerly || no_jit {
            Arithmetic::Eager
        } else {
            Arithmetic::Compiled
        }
    }

    /// `a * b + c`.
    #[inline]
    pub(crate) fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        match self {
            Arithmetic::Compiled => a.mul_add(b, c),
            Arithmetic::Eager => a * b + c,
        }
    }

    /// `c - a * b`.
    #[inline]
    pub(crate) fn sub_mul(self, c: f32, a: f32, b: f32) -> f32 {
        match self {
            Arithmetic::Compiled => (-a).mul_add(b, c),
            Arithmetic::Eager => c - a * b,
        }
    }

    /// `a * b - c`.
    #[inline]
    pub(crate) fn mul_sub(self, a: f32, b: f32, c: f32) -> f32 {
        match self {
            Arithmetic::Compiled => a.mul_add(b, -c),
            Arithmetic::Eager => a * b - c,
        }
    }

    /// `x / sqrt(y)`: compiled, XLA rewrites it to `x * rsqrt(y)`.
    #[inline]
    pub(crate) fn div_sqrt(self, x: f32, y: f32) -> f32 {
        match self {
            Arithmetic::Compiled => x * xla_rsqrt(y),
            Arithmetic::Eager => x / y.sqrt(),
        }
    }

    /// `c - x / sqrt(y)` (compiled: `c - x * rsqrt(y)`, contracted).
    #[inline]
    pub(crate) fn sub_div_sqrt(self, c: f32, x: f32, y: f32) -> f32 {
        match self {
            Arithmetic::Compiled => (-x).mul_add(xla_rsqrt(y), c),
            Arithmetic::Eager => c - x / y.sqrt(),
        }
    }
}

/// XLA's CPU `rsqrt`: the hardware estimate refined by one Newton step
/// (`y * (1 - 0.5 * y * (x * y) ...)` with its fused multiply-adds), or the
/// bare estimate for zero, infinite, subnormal and negative inputs. On
/// x86-64 it uses the same `rsqrtss` instruction, so it matches XLA on the
/// same CPU; elsewhere the estimate is the exact `1 / sqrt(x)`.
pub(crate) fn xla_rsqrt(x: f32) -> f32 {
    let y = rsqrt_estimate(x);
    if x.is_nan() || (x.is_normal() && x > 0.0) {
        let d = (x * y).mul_add(y, -1.0);
        (y * -0.5).mul_add(d, y)
    } else {
        y
    }
}

#[cfg(target_arch = "x86_64")]
fn rsqrt_estimate(x: f32) -> f32 {
    use std::arch::x86_64::{_mm_cvtss_f32, _mm_rsqrt_ss, _mm_set_ss};
    // SAFETY: the intrinsics need SSE, which every x86-64 CPU has (it is
    // part of the target's baseline features).
    unsafe { _mm_cvtss_f32(_mm_rsqrt_ss(_mm_set_ss(x))) }
}

#[cfg(not(target_arch = "x86_64"))]
fn rsqrt_estimate(x: f32) -> f32 {
    1.0 / x.sqrt()
}

/// A Python float hyperparameter as Keras's float32 tensor.
#[inline]
pub(crate) fn f32_of(x: f64) -> f32 {
    x as f32
}

/// `jnp.minimum`: NaN-propagating.
#[inline]
pub(crate) fn minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

/// `jnp.maximum`: NaN-propagating.
#[inline]
pub(crate) fn maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// An int32 tensor cast to float32 (`ops.cast(step, "float32")`).
fn step_f32(step: i64) -> f32 {
    step as f32
}

impl Schedule {
    /// Parse a serialized schedule as Keras writes it inside an optimizer's
    /// `learning_rate`: `{"module": "keras.optimizers.schedules",
    /// "class_name": "ExponentialDecay", "config": {...}}`.
    pub fn from_config(v: &Value) -> Result<Self> {
        let obj = v.as_object().ok_or_else(|| {
            Error::mismatch("a serialized learning-rate schedule object", short(v))
        })?;
        let class = obj
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::missing("`class_name` of the learning-rate schedule"))?;
        let mut p = Params::new(obj.get("config"), "learning-rate schedule argument")?;
        let schedule = match class {
            "ExponentialDecay" | "InverseTimeDecay" => {
                let initial_learning_rate = p.required_f64("initial_learning_rate")?;
                let decay_steps = p.required_f64("decay_steps")?;
                let decay_rate = p.required_f64("decay_rate")?;
                let staircase = p.bool("staircase", false)?;
                let name = p.string("name", class)?;
                positive("decay_steps", decay_steps)?;
                if class == "ExponentialDecay" {
                    Schedule::ExponentialDecay {
                        initial_learning_rate,
                        decay_steps,
                        decay_rate,
                        staircase,
                        name,
                    }
                } else {
                    Schedule::InverseTimeDecay {
                        initial_learning_rate,
                        decay_steps,
                        decay_rate,
                        staircase,
                        name,
                    }
                }
            }
            "PiecewiseConstantDecay" => {
                let boundaries = p.required_f64_list("boundaries")?;
                let values = p.required_f64_list("values")?;
                let name = p.string("name", "PiecewiseConstant")?;
                if boundaries.is_empty() || boundaries.len() + 1 != values.len() {
                    return Err(Error::mismatch(
                        format!(
                            "one boundary fewer than values and at least one boundary \
                             ({} values)",
                            values.len()
                        ),
                        format!("{} boundaries", boundaries.len()),
                    )
                    .at("config/boundaries"));
                }
                Schedule::PiecewiseConstantDecay {
                    boundaries,
                    values,
                    name,
                }
            }
            "PolynomialDecay" => {
                let s = Schedule::PolynomialDecay {
                    initial_learning_rate: p.required_f64("initial_learning_rate")?,
                    decay_steps: p.required_f64("decay_steps")?,
                    end_learning_rate: p.f64("end_learning_rate", 0.0001)?,
                    power: p.f64("power", 1.0)?,
                    cycle: p.bool("cycle", false)?,
                    name: p.string("name", "PolynomialDecay")?,
                };
                if let Schedule::PolynomialDecay { decay_steps, .. } = &s {
                    positive("decay_steps", *decay_steps)?;
                }
                s
            }
            "CosineDecay" => {
                let initial_learning_rate = p.required_f64("initial_learning_rate")?;
                let decay_steps = p.required_f64("decay_steps")?;
                positive("decay_steps", decay_steps)?;
                Schedule::CosineDecay {
                    initial_learning_rate,
                    decay_steps,
                    alpha: p.f64("alpha", 0.0)?,
                    name: p.string("name", "CosineDecay")?,
                    warmup_target: p.optional_f64("warmup_target")?,
                    warmup_steps: p.f64("warmup_steps", 0.0)?,
                }
            }
            "CosineDecayRestarts" => {
                let initial_learning_rate = p.required_f64("initial_learning_rate")?;
                let first_decay_steps = p.required_f64("first_decay_steps")?;
                positive("first_decay_steps", first_decay_steps)?;
                Schedule::CosineDecayRestarts {
                    initial_learning_rate,
                    first_decay_steps,
                    t_mul: p.f64("t_mul", 2.0)?,
                    m_mul: p.f64("m_mul", 1.0)?,
                    alpha: p.f64("alpha", 0.0)?,
                    name: p.string("name", "SGDRDecay")?,
                }
            }
            other => {
                return Err(Error::unsupported(
                    "learning-rate schedule",
                    other,
                    SCHEDULE_NAMES,
                ));
            }
        };
        p.finish()?;
        Ok(schedule)
    }

    /// The Keras class name (`ExponentialDecay`, ...).
    pub fn class_name(&self) -> &'static str {
        match self {
            Schedule::ExponentialDecay { .. } => "ExponentialDecay",
            Schedule::InverseTimeDecay { .. } => "InverseTimeDecay",
            Schedule::PiecewiseConstantDecay { .. } => "PiecewiseConstantDecay",
            Schedule::PolynomialDecay { .. } => "PolynomialDecay",
            Schedule::CosineDecay { .. } => "CosineDecay",
            Schedule::CosineDecayRestarts { .. } => "CosineDecayRestarts",
        }
    }

    /// The learning rate at optimizer step `step` (the `iterations` counter
    /// before the update), in Keras's float32 arithmetic as compiled inside
    /// `model.fit`'s train step ([`Arithmetic::Compiled`]).
    pub fn at(&self, step: i64) -> f32 {
        self.evaluate(step, Arithmetic::Compiled)
    }

    /// The learning rate at `step` with the given arithmetic.
    ///
    /// Compiled, every hyperparameter is an XLA constant, so besides fusing
    /// multiply-adds XLA rewrites `x / c` into `x * (1 / c)`, folds chains of
    /// constant factors (`(x * c1) * c2` into `x * (c1 * c2)`), drops `* 1`
    /// and `+ 0`, turns `pow(x, 1)` into `x`, `pow(x, 2)` into `x * x` (and 3),
    /// and `x / pow(b, i)` into `x * pow(b, -i)`; the formulas below are
    /// those of the optimized HLO. (One consequence, reproduced here: a
    /// `PolynomialDecay` whose `1 / decay_steps` rounds up reaches
    /// `1 - decay_steps * (1 / decay_steps) < 0` at the end, so a fractional
    /// `power` gives NaN there, as in `model.fit`.)
    pub fn evaluate(&self, step: i64, a: Arithmetic) -> f32 {
        let compiled = a == Arithmetic::Compiled;
        let s = step_f32(step);
        match self {
            Schedule::ExponentialDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
                ..
            } => {
                let (lr0, ds, rate) = (
                    f32_of(*initial_learning_rate),
                    f32_of(*decay_steps),
                    f32_of(*decay_rate),
                );
                let mut p = if compiled { s * inv(ds) } else { s / ds };
                if *staircase {
                    p = p.floor();
                }
                lr0 * rate.powf(p)
            }
            Schedule::InverseTimeDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
                ..
            } => {
                let (lr0, ds, rate) = (
                    f32_of(*initial_learning_rate),
                    f32_of(*decay_steps),
                    f32_of(*decay_rate),
                );
                let denominator = match (compiled, *staircase) {
                    (true, false) => a.mul_add(s, inv(ds) * rate, 1.0),
                    (true, true) => a.mul_add((s * inv(ds)).floor(), rate, 1.0),
                    (false, false) => 1.0 + rate * (s / ds),
                    (false, true) => 1.0 + rate * (s / ds).floor(),
                };
                lr0 / denominator
            }
            Schedule::PiecewiseConstantDecay {
                boundaries, values, ..
            } => piecewise(step, boundaries, values, compiled),
            Schedule::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                cycle,
                ..
            } => {
                let lr0 = f32_of(*initial_learning_rate);
                let end = f32_of(*end_learning_rate);
                let ds = f32_of(*decay_steps);
                let power = f32_of(*power);
                let one_minus_p = match (compiled, *cycle) {
                    (_, true) => {
                        // The multiplier divides by the Python `decay_steps`.
                        let multiplier = if s == 0.0 {
                            1.0
                        } else if compiled {
                            (s * inv(ds)).ceil()
                        } else {
                            (s / ds).ceil()
                        };
                        1.0 - s / (ds * multiplier)
                    }
                    (true, false) => a.sub_mul(1.0, minimum(s, ds), inv(ds)),
                    (false, false) => 1.0 - minimum(s, ds) / ds,
                };
                let powered = if compiled {
                    pow_by_constant(one_minus_p, power)
                } else {
                    one_minus_p.powf(power)
                };
                a.mul_add(lr0 - end, powered, end)
            }
            Schedule::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
                ..
            } => {
                let lr0 = f32_of(*initial_learning_rate);
                let ds = f32_of(*decay_steps);
                let pi = std::f32::consts::PI;
                // `from * ((1 - alpha) * 0.5 * (1 + cos(pi * x / ds)) + alpha)`.
                let decay = |x: f32, from: f32| {
                    if compiled {
                        let one_plus_cos = (x * (inv(ds) * pi)).cos() + 1.0;
                        a.mul_add(one_plus_cos, 0.5 * f32_of(1.0 - alpha), f32_of(*alpha)) * from
                    } else {
                        let cosine = 0.5 * (1.0 + (pi * (x / ds)).cos());
                        from * (f32_of(1.0 - alpha) * cosine + f32_of(*alpha))
                    }
                };
                match warmup_target {
                    None => decay(minimum(s, ds), lr0),
                    Some(target) => {
                        let target = f32_of(*target);
                        let ws = f32_of(*warmup_steps);
                        let x = minimum(s, ds + ws);
                        match (compiled, x < ws) {
                            (true, true) => a.mul_add(x, inv(ws) * (target - lr0), lr0),
                            (true, false) => decay(x - ws, target),
                            // Eagerly, each `ops.cond` branch still runs as
                            // one compiled computation: fused multiply-adds
                            // and folded literal constants, but the closed-over
                            // tensors are parameters.
                            (false, true) => (target - lr0).mul_add(x / ws, lr0),
                            (false, false) => {
                                let one_plus_cos = ((x - ws) / ds * pi).cos() + 1.0;
                                one_plus_cos.mul_add(0.5 * f32_of(1.0 - alpha), f32_of(*alpha))
                                    * target
                            }
                        }
                    }
                }
            }
            Schedule::CosineDecayRestarts {
                initial_learning_rate,
                first_decay_steps,
                t_mul,
                m_mul,
                alpha,
                ..
            } => {
                let lr0 = f32_of(*initial_learning_rate);
                let fds = f32_of(*first_decay_steps);
                let alpha = f32_of(*alpha);
                let t_mul = f32_of(*t_mul);
                let m_mul = f32_of(*m_mul);
                let (i_restart, fraction) = match (compiled, t_mul == 1.0) {
                    (true, true) => {
                        let fraction = s * inv(fds);
                        let i = fraction.floor();
                        (i, fraction - i)
                    }
                    (false, true) => {
                        let fraction = s / fds;
                        let i = fraction.floor();
                        (i, fraction - i)
                    }
                    (true, false) => {
                        // `log(t_mul)` is folded by XLA's constant evaluator
                        // (the C library's `logf`).
                        let k = inv(fds) * (1.0 - t_mul);
                        let i_of = |inner: f32| (xla_log(inner) * inv(t_mul.ln())).floor();
                        if k == -inv(fds) {
                            // t_mul = 2: `s * -c` and `s * c` become one
                            // product with two uses, which LLVM won't fuse.
                            let product = s * inv(fds);
                            let i = i_of(1.0 + product);
                            let one_minus_pow = 1.0 - t_mul.powf(i);
                            let fraction = a.sub_mul(product, one_minus_pow, inv(1.0 - t_mul));
                            (i, fraction * t_mul.powf(-i))
                        } else {
                            let i = i_of(a.sub_mul(1.0, s, k));
                            let sum_r = (1.0 - t_mul.powf(i)) * inv(1.0 - t_mul);
                            let fraction = a.mul_sub(s, inv(fds), sum_r);
                            (i, fraction * t_mul.powf(-i))
                        }
                    }
                    (false, false) => {
                        // Eagerly, the `ops.cond` branch still runs as one
                        // compiled computation (its inputs as parameters).
                        let fraction = s / fds;
                        let inner = fraction.mul_add(-(1.0 - t_mul), 1.0);
                        let i = (xla_log(inner) / xla_log(t_mul)).floor();
                        let sum_r = (1.0 - t_mul.powf(i)) / (1.0 - t_mul);
                        (i, (fraction - sum_r) * t_mul.powf(-i))
                    }
                };
                let m_fac = m_mul.powf(i_restart);
                let cosine = 0.5 * m_fac * (1.0 + (std::f32::consts::PI * fraction).cos());
                let decayed = if compiled && alpha == 0.0 {
                    cosine
                } else {
                    a.mul_add(1.0 - alpha, cosine, alpha)
                };
                lr0 * decayed
            }
        }
    }

    /// The serialized object Keras writes (`schedules.serialize`).
    pub fn to_config(&self) -> Value {
        let config = match self {
            Schedule::ExponentialDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
                name,
            }
            | Schedule::InverseTimeDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
                name,
            } => json!({
                "initial_learning_rate": initial_learning_rate,
                "decay_steps": count(*decay_steps),
                "decay_rate": decay_rate,
                "staircase": staircase,
                "name": name,
            }),
            Schedule::PiecewiseConstantDecay {
                boundaries,
                values,
                name,
            } => json!({
                "boundaries": boundaries.iter().map(|b| count(*b)).collect::<Vec<_>>(),
                "values": values,
                "name": name,
            }),
            Schedule::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                cycle,
                name,
            } => json!({
                "initial_learning_rate": initial_learning_rate,
                "decay_steps": count(*decay_steps),
                "end_learning_rate": end_learning_rate,
                "power": power,
                "cycle": cycle,
                "name": name,
            }),
            Schedule::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                name,
                warmup_target,
                warmup_steps,
            } => json!({
                "initial_learning_rate": initial_learning_rate,
                "decay_steps": count(*decay_steps),
                "alpha": alpha,
                "name": name,
                "warmup_target": warmup_target,
                "warmup_steps": count(*warmup_steps),
            }),
            Schedule::CosineDecayRestarts {
                initial_learning_rate,
                first_decay_steps,
                t_mul,
                m_mul,
                alpha,
                name,
            } => json!({
                "initial_learning_rate": initial_learning_rate,
                "first_decay_steps": count(*first_decay_steps),
                "t_mul": t_mul,
                "m_mul": m_mul,
                "alpha": alpha,
                "name": name,
            }),
        };
        json!({
            "module": "keras.optimizers.schedules",
            "class_name": self.class_name(),
            "config": config,
            "registered_name": null,
        })
    }
}

/// `PiecewiseConstantDecay.__call__`: boundaries become int32 like the step;
/// the result is the sum of `indicator * value` in Keras's order (compiled,
/// XLA turns each product into a select).
fn piecewise(step: i64, boundaries: &[f64], values: &[f64], compiled: bool) -> f32 {
    // A float boundary is converted to a float32 tensor, then cast to int32.
    let b: Vec<i64> = boundaries
        .iter()
        .map(|&x| f32_of(x) as i32 as i64)
        .collect();
    let v: Vec<f32> = values.iter().map(|&x| f32_of(x)).collect();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return v.first().copied().unwrap_or(0.0);
    };
    let term = |c: bool, value: f32| match (compiled, c) {
        (true, true) => value,
        (true, false) => 0.0,
        (false, c) => f32::from(u8::from(c)) * value,
    };
    let mut result = 0.0f32;
    result += term(step <= first, v[0]);
    result += term(step > last, v[v.len() - 1]);
    for (i, pair) in b.windows(2).enumerate() {
        result += term(step > pair[0] && step <= pair[1], v[i + 1]);
    }
    result
}

/// `1 / c` as XLA folds it for `x / c` with a constant `c`.
#[inline]
fn inv(c: f32) -> f32 {
    1.0 / c
}

/// `pow(x, c)` for a constant exponent after XLA's simplifications.
fn pow_by_constant(x: f32, c: f32) -> f32 {
    if c == 0.0 {
        1.0
    } else if c == 1.0 {
        x
    } else if c == 2.0 {
        x * x
    } else if c == 3.0 {
        x * (x * x)
    } else if c == -1.0 {
        1.0 / x
    } else {
        x.powf(c)
    }
}

/// XLA's CPU `log` (Eigen's Cephes-based `plog`, with the multiply-adds LLVM
/// fuses), which differs from the C library's `logf` by an ulp now and then.
pub(crate) fn xla_log(x: f32) -> f32 {
    // Eigen's `cephes_log_p0..p8`, `cephes_log_q1`, `q2`, bit for bit.
    const P: [u32; 9] = [
        0x3d90_21bb,
        0xbdeb_d1b8,
        0x3def_251a,
        0xbdfe_5d4f,
        0x3e11_e9bf,
        0xbe2a_ae50,
        0x3e4c_ceac,
        0xbe7f_fffc,
        0x3eaa_aaaa,
    ];
    let p = |i: usize| f32::from_bits(P[i]);
    let q1 = f32::from_bits(0xb95e_8083);
    let q2 = f32::from_bits(0x3f31_8000);
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return f32::INFINITY;
    }
    let x1 = if x <= f32::MIN_POSITIVE {
        f32::MIN_POSITIVE
    } else {
        x
    };
    let bits = x1.to_bits();
    let e = ((bits >> 23) as i32 - 127) as f32;
    let m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    let e1 = 1.0 + e;
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let e2 = e1 - if small { 1.0 } else { 0.0 };
    let x = (m - 1.0) + if small { m } else { 0.0 };
    let x2 = x * x;
    let x3 = x2 * x;
    let mut y = x.mul_add(p(0), p(1));
    let mut y1 = x.mul_add(p(3), p(4));
    let mut y2 = x.mul_add(p(6), p(7));
    y = y.mul_add(x, p(2));
    y1 = y1.mul_add(x, p(5));
    y2 = y2.mul_add(x, p(8));
    y = y.mul_add(x3, y1);
    y = y.mul_add(x3, y2);
    let y = y.mul_add(x3, e2 * q1);
    let x = x2.mul_add(-0.5, x);
    e2.mul_add(q2, x + y)
}

/// A step count as Keras writes it: an integer when it is one.
fn count(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn positive(key: &'static str, x: f64) -> Result<()> {
    if x > 0.0 {
        Ok(())
    } else {
        Err(Error::mismatch(format!("`{key}` > 0"), x).at(format!("config/{key}")))
    }
}

/// A JSON value shortened for messages.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// Reads the `config` of a serialized Keras object, recording which keys were
/// used so that unknown ones are an error (Keras raises on them too).
pub(crate) struct Params<'a> {
    obj: Option<&'a Map<String, Value>>,
    used: Vec<&'a str>,
    what: &'static str,
}

impl<'a> Params<'a> {
    /// Wrap a `config` value (absent or `null` means all defaults).
    pub(crate) fn new(config: Option<&'a Value>, what: &'static str) -> Result<Self> {
        let obj = match config {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(other) => {
                return Err(Error::mismatch("a config object", short(other)).at("config"));
            }
        };
        Ok(Params {
            obj,
            used: Vec::new(),
            what,
        })
    }

    /// The raw value of `key` (`None` when absent or null); marks it used.
    pub(crate) fn get(&mut self, key: &'a str) -> Option<&'a Value> {
        self.used.push(key);
        self.obj?.get(key).filter(|v| !v.is_null())
    }

    /// Mark `key` as known without reading it.
    pub(crate) fn ignore(&mut self, key: &'a str) {
        self.used.push(key);
    }

    fn number(key: &str, v: &Value) -> Result<f64> {
        v.as_f64()
            .ok_or_else(|| Error::mismatch("a number", short(v)).at(format!("config/{key}")))
    }

    /// A number, or `default` when absent.
    pub(crate) fn f64(&mut self, key: &'a str, default: f64) -> Result<f64> {
        Ok(self.optional_f64(key)?.unwrap_or(default))
    }

    /// A number, `None` when absent or null.
    pub(crate) fn optional_f64(&mut self, key: &'a str) -> Result<Option<f64>> {
        self.get(key).map(|v| Self::number(key, v)).transpose()
    }

    /// A number that must be present.
    pub(crate) fn required_f64(&mut self, key: &'a str) -> Result<f64> {
        self.optional_f64(key)?
            .ok_or_else(|| Error::missing(format!("`{key}`")).at(format!("config/{key}")))
    }

    /// A list of numbers that must be present.
    pub(crate) fn required_f64_list(&mut self, key: &'a str) -> Result<Vec<f64>> {
        let v = self
            .get(key)
            .ok_or_else(|| Error::missing(format!("`{key}`")).at(format!("config/{key}")))?;
        let items = v.as_array().ok_or_else(|| {
            Error::mismatch("a list of numbers", short(v)).at(format!("config/{key}"))
        })?;
        items.iter().map(|x| Self::number(key, x)).collect()
    }

    /// A boolean, or `default` when absent.
    pub(crate) fn bool(&mut self, key: &'a str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| Error::mismatch("a boolean", short(v)).at(format!("config/{key}"))),
        }
    }

    /// A string, or `default` when absent.
    pub(crate) fn string(&mut self, key: &'a str, default: &str) -> Result<String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::mismatch("a string", short(v)).at(format!("config/{key}"))),
        }
    }

    /// Error on any key that was not read.
    pub(crate) fn finish(self) -> Result<()> {
        let Some(obj) = self.obj else {
            return Ok(());
        };
        match obj.keys().find(|k| !self.used.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => {
                let mut known = self.used.clone();
                known.sort_unstable();
                known.dedup();
                Err(Error::unsupported(self.what, unknown.clone(), &known)
                    .at(format!("config/{unknown}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goldens from Keras 3.15.1 (JAX 0.10.2, CPU), each produced by
    //!
    //! ```python
    //! import jax, json, numpy as np, keras
    //! S = keras.optimizers.schedules
    //! s = <expression in the case comment>
    //! json.dumps(S.serialize(s))                                    # config
    //! [np.float32(jax.jit(lambda t: s(t))(np.int32(t))) for t in STEPS]  # jit
    //! [np.float32(s(np.int32(t))) for t in STEPS]                        # eager
    //! ```
    //!
    //! `jit` is what `model.fit` computes (the schedule runs inside the
    //! compiled train step); `eager` is calling the schedule directly.

    use serde_json::{Value, json};

    use super::*;

    /// Agreement required with Keras, relative to the value (absolute below 1).
    const TOL: f32 = 1e-6;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= TOL * b.abs().max(1.0) || (a.is_nan() && b.is_nan())
    }

    const STEPS: [i64; 21] = [
        0, 1, 2, 3, 5, 7, 10, 11, 15, 20, 29, 30, 31, 45, 69, 70, 71, 100, 150, 1000, 100000,
    ];

    struct Sched {
        config: &'static str,
        jit: [f32; 21],
        eager: [f32; 21],
    }

    #[rustfmt::skip]
    const GOLDENS: &[Sched] = &[
        Sched {
            // S.ExponentialDecay(0.1, 10, 0.5)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": false, "name": "ExponentialDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.0933033, 0.08705506, 0.08122524, 0.07071068, 0.061557222, 0.05, 0.04665165, 0.03535534, 0.025, 0.013397167, 0.0125, 0.011662911, 0.0044194176, 0.00083732296, 0.00078125, 0.0007289321, 9.765625e-05, 3.0517579e-06, 7.888609e-32, 0.0],
            eager: [0.1, 0.0933033, 0.08705506, 0.08122524, 0.07071068, 0.061557222, 0.05, 0.04665165, 0.03535534, 0.025, 0.013397167, 0.0125, 0.0116629135, 0.0044194176, 0.00083732296, 0.00078125, 0.0007289321, 9.765625e-05, 3.0517579e-06, 7.888609e-32, 0.0],
        },
        Sched {
            // S.ExponentialDecay(0.1, 10, 0.96, staircase=True)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.96, "staircase": true, "name": "ExponentialDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.096, 0.096, 0.096, 0.09216, 0.09216, 0.088473596, 0.088473596, 0.084934644, 0.07827577, 0.07514474, 0.07514474, 0.06648325, 0.054208618, 0.0016870281, 0.0],
            eager: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.096, 0.096, 0.096, 0.09216, 0.09216, 0.088473596, 0.088473596, 0.084934644, 0.07827577, 0.07514474, 0.07514474, 0.06648325, 0.054208618, 0.0016870281, 0.0],
        },
        Sched {
            // S.InverseTimeDecay(0.1, 10, 0.5)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": false, "name": "InverseTimeDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.095238104, 0.09090909, 0.08695652, 0.08, 0.074074075, 0.06666667, 0.064516135, 0.057142857, 0.05, 0.040816326, 0.04, 0.039215688, 0.03076923, 0.022471908, 0.022222223, 0.02197802, 0.016666668, 0.011764706, 0.0019607844, 1.9996001e-05],
            eager: [0.1, 0.095238104, 0.09090909, 0.08695652, 0.08, 0.074074075, 0.06666667, 0.064516135, 0.057142857, 0.05, 0.040816326, 0.04, 0.039215688, 0.03076923, 0.022471912, 0.022222223, 0.02197802, 0.016666668, 0.011764706, 0.0019607844, 1.9996001e-05],
        },
        Sched {
            // S.InverseTimeDecay(0.1, 7, 0.5, staircase=True)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5, "staircase": true, "name": "InverseTimeDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.1, 0.1, 0.1, 0.1, 0.06666667, 0.06666667, 0.06666667, 0.05, 0.05, 0.033333335, 0.033333335, 0.033333335, 0.025, 0.018181818, 0.016666668, 0.016666668, 0.0125, 0.008695653, 0.0013888889, 1.39987405e-05],
            eager: [0.1, 0.1, 0.1, 0.1, 0.1, 0.06666667, 0.06666667, 0.06666667, 0.05, 0.05, 0.033333335, 0.033333335, 0.033333335, 0.025, 0.018181818, 0.016666668, 0.016666668, 0.0125, 0.008695653, 0.0013888889, 1.39987405e-05],
        },
        Sched {
            // S.PiecewiseConstantDecay([5, 10, 30], [0.1, 0.05, 0.01, 0.001])
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "config": {"boundaries": [5, 10, 30], "values": [0.1, 0.05, 0.01, 0.001], "name": "PiecewiseConstant"}, "registered_name": null}"#,
            jit: [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001],
            eager: [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001],
        },
        Sched {
            // S.PiecewiseConstantDecay([10], [0.5, 0.25])
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "config": {"boundaries": [10], "values": [0.5, 0.25], "name": "PiecewiseConstant"}, "registered_name": null}"#,
            jit: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25],
            eager: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25],
        },
        Sched {
            // S.PolynomialDecay(0.1, 20)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 20, "end_learning_rate": 0.0001, "power": 1.0, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.095005, 0.090009995, 0.085015, 0.075025, 0.065035, 0.05005, 0.045055, 0.025074998, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05, 9.9998506e-05],
            eager: [0.1, 0.095005, 0.09001, 0.08501501, 0.075025, 0.065035, 0.05005, 0.045055002, 0.025075, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04, 1e-04],
        },
        Sched {
            // S.PolynomialDecay(0.1, 20, end_learning_rate=0.01, power=2.0, cycle=True)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 20, "end_learning_rate": 0.01, "power": 2.0, "cycle": true, "name": "PolynomialDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.091225, 0.082899995, 0.07502501, 0.060625, 0.048024997, 0.0325, 0.028225, 0.015625, 0.01, 0.016806249, 0.015625, 0.014556251, 0.015625, 0.011701562, 0.01140625, 0.011139062, 0.01, 0.010351562, 0.01, 0.01],
            eager: [0.1, 0.091225, 0.082899995, 0.075025, 0.060625, 0.048024997, 0.0325, 0.028225, 0.015625, 0.01, 0.016806249, 0.015625, 0.0145562515, 0.015625, 0.011701562, 0.01140625, 0.011139062, 0.01, 0.010351562, 0.01, 0.01],
        },
        Sched {
            // S.PolynomialDecay(0.1, 20, end_learning_rate=0.001, power=0.5)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 20, "end_learning_rate": 0.001, "power": 0.5, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.09749326, 0.094919644, 0.09227349, 0.086736515, 0.08081635, 0.07100357, 0.067411214, 0.050499998, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN],
            eager: [0.1, 0.09749326, 0.094919644, 0.092273496, 0.086736515, 0.08081635, 0.07100357, 0.067411214, 0.050499998, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001],
        },
        Sched {
            // S.CosineDecay(0.1, 30)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.0, "name": "CosineDecay", "warmup_target": null, "warmup_steps": 0}, "registered_name": null}"#,
            jit: [0.1, 0.099726096, 0.09890738, 0.09755283, 0.093301274, 0.08715724, 0.074999996, 0.070336826, 0.049999993, 0.02499999, 0.0002739042, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            eager: [0.1, 0.099726096, 0.09890738, 0.09755283, 0.093301274, 0.08715724, 0.075, 0.07033683, 0.049999997, 0.024999997, 0.0002739042, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        },
        Sched {
            // S.CosineDecay(0.1, 30, alpha=0.1)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.1, "name": "CosineDecay", "warmup_target": null, "warmup_steps": 0}, "registered_name": null}"#,
            jit: [0.1, 0.099753484, 0.099016644, 0.097797535, 0.09397115, 0.08844151, 0.07749999, 0.07330314, 0.05499999, 0.03249999, 0.010246514, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001],
            eager: [0.1, 0.099753484, 0.099016644, 0.09779754, 0.09397115, 0.08844151, 0.0775, 0.073303156, 0.054999996, 0.032499995, 0.010246514, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001, 0.010000001],
        },
        Sched {
            // S.CosineDecay(0.01, 30, alpha=0.05, warmup_target=0.1, warmup_steps=10)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.01, "decay_steps": 30, "alpha": 0.05, "name": "CosineDecay", "warmup_target": 0.1, "warmup_steps": 10}, "registered_name": null}"#,
            jit: [0.01, 0.019000001, 0.028, 0.037, 0.055000003, 0.07300001, 0.1, 0.09973979, 0.09363621, 0.076249994, 0.033180002, 0.028749987, 0.024580194, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004],
            eager: [0.01, 0.019, 0.028, 0.037, 0.055, 0.073, 0.1, 0.09973979, 0.09363621, 0.07625, 0.033180006, 0.028749997, 0.024580203, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004, 0.0050000004],
        },
        Sched {
            // S.CosineDecayRestarts(0.1, 10)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.09755283, 0.090450846, 0.07938927, 0.049999997, 0.02061074, 0.1, 0.09938442, 0.08535534, 0.049999997, 0.00061558187, 0.1, 0.099845864, 0.06913417, 0.00015413166, 0.1, 0.09996145, 0.06913417, 0.1, 0.03785099, 0.088442914],
            eager: [0.1, 0.09755283, 0.090450846, 0.07938927, 0.049999997, 0.02061074, 0.1, 0.09938442, 0.08535534, 0.049999997, 0.00061558187, 0.1, 0.09984587, 0.06913417, 0.00015413166, 0.1, 0.09996145, 0.06913417, 0.1, 0.03785099, 0.088442914],
        },
        Sched {
            // S.CosineDecayRestarts(0.1, 10, t_mul=1.0, m_mul=0.5, alpha=0.1)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 1.0, "m_mul": 0.5, "alpha": 0.1, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.097797535, 0.091405764, 0.081450336, 0.054999996, 0.028549666, 0.055000003, 0.05389877, 0.0325, 0.0325, 0.0105506135, 0.02125, 0.020974692, 0.0128125, 0.010034414, 0.010703125, 0.010685919, 0.0100878915, 0.010002746, 0.010000001, 0.010000001],
            eager: [0.1, 0.09779754, 0.091405764, 0.081450336, 0.054999996, 0.028549666, 0.055000003, 0.05389877, 0.0325, 0.0325, 0.0105506135, 0.02125, 0.020974694, 0.0128125, 0.010034414, 0.010703125, 0.010685919, 0.0100878915, 0.010002746, 0.010000001, 0.010000001],
        },
        Sched {
            // S.CosineDecayRestarts(0.1, 5, t_mul=3.0, m_mul=0.8, alpha=0.05)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 5, "t_mul": 3.0, "m_mul": 0.8, "alpha": 0.05, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.09092831, 0.0671783, 0.037821684, 0.081, 0.07771473, 0.062000003, 0.05474264, 0.023999998, 0.0658, 0.059994113, 0.058687754, 0.057267934, 0.030121092, 0.053534716, 0.05347556, 0.053403318, 0.0460094, 0.019687342, 0.028693099, 0.0110524045],
            eager: [0.1, 0.09092831, 0.0671783, 0.037821684, 0.081, 0.077714734, 0.062000003, 0.054742634, 0.023999996, 0.0658, 0.05999412, 0.058687754, 0.057267934, 0.030121094, 0.053534716, 0.05347556, 0.053403318, 0.046009403, 0.01968734, 0.028693099, 0.0110524045],
        },
        Sched {
            // S.CosineDecayRestarts(0.1, 4, t_mul=1.5, m_mul=0.9)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 4, "t_mul": 1.5, "m_mul": 0.9, "alpha": 0.0, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.08535534, 0.049999997, 0.014644662, 0.08397114, 0.044999998, 0.08099999, 0.07855754, 0.033467244, 0.071917474, 0.011436489, 0.005996465, 0.0021982016, 0.020989366, 0.026286542, 0.02327405, 0.02032835, 0.037096698, 0.03724225, 0.00057741924, 0.0077757523],
            eager: [0.1, 0.08535534, 0.049999997, 0.014644662, 0.08397114, 0.044999998, 0.08099999, 0.07855754, 0.033467244, 0.071917474, 0.011436489, 0.005996465, 0.0021982016, 0.020989366, 0.026286542, 0.02327405, 0.02032835, 0.037096698, 0.03724225, 0.00057741924, 0.0077757523],
        },
        Sched {
            // S.CosineDecay(0.1, 30, warmup_target=0.2, warmup_steps=0)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.0, "name": "CosineDecay", "warmup_target": 0.2, "warmup_steps": 0}, "registered_name": null}"#,
            jit: [0.2, 0.19945219, 0.19781476, 0.19510566, 0.18660255, 0.17431448, 0.14999999, 0.14067365, 0.09999999, 0.04999998, 0.0005478084, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            eager: [0.2, 0.19945219, 0.19781476, 0.19510566, 0.18660255, 0.17431448, 0.15, 0.14067367, 0.099999994, 0.049999993, 0.0005478084, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        },
        Sched {
            // S.CosineDecayRestarts(0.1, 3, t_mul=2.0, m_mul=0.5, alpha=0.2)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 3, "t_mul": 2.0, "m_mul": 0.5, "alpha": 0.2, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.080000006, 0.04, 0.060000002, 0.049999997, 0.029999996, 0.039659258, 0.038660254, 0.030000001, 0.02034074, 0.027500002, 0.026913418, 0.026294095, 0.025, 0.0225, 0.022336492, 0.022173686, 0.022467347, 0.020887144, 0.020245697, 0.02000244],
            eager: [0.1, 0.080000006, 0.04, 0.060000002, 0.05, 0.030000001, 0.039659258, 0.038660254, 0.030000001, 0.020340743, 0.027500002, 0.026913418, 0.026294097, 0.025, 0.022499999, 0.022336492, 0.022173686, 0.022467347, 0.020887144, 0.020245697, 0.02000244],
        },
        Sched {
            // S.CosineDecayRestarts(0.05, 7, t_mul=3.0)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.05, "first_decay_steps": 7, "t_mul": 3.0, "m_mul": 1.0, "alpha": 0.0, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.05, 0.04752422, 0.040587243, 0.030563017, 0.009412751, 0.05, 0.04752422, 0.045655966, 0.03413352, 0.015866471, 0.049968924, 0.04987577, 0.04972077, 0.041542143, 0.013594724, 0.012499995, 0.011436335, 0.04972077, 0.03891084, 0.0490085, 0.043968525],
            eager: [0.05, 0.04752422, 0.040587243, 0.030563021, 0.009412751, 0.05, 0.04752422, 0.045655973, 0.034133527, 0.015866471, 0.049968924, 0.04987577, 0.04972077, 0.041542146, 0.0135947345, 0.012499998, 0.011436335, 0.04972077, 0.038910843, 0.0490085, 0.043968525],
        },
        Sched {
            // S.PolynomialDecay(0.1, 7, end_learning_rate=0.01, power=3.0, cycle=True)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 7, "end_learning_rate": 0.01, "power": 3.0, "cycle": true, "name": "PolynomialDecay"}, "registered_name": null}"#,
            jit: [0.1, 0.066676386, 0.042798836, 0.026793, 0.0120991245, 0.01, 0.0120991245, 0.010885568, 0.0120991245, 0.010009718, 0.01045341, 0.010262391, 0.010134344, 0.010048959, 0.010000262, 0.01, 0.010042582, 0.010009718, 0.0100015765, 0.01, 0.01],
            eager: [0.1, 0.066676386, 0.04279884, 0.026793, 0.0120991245, 0.01, 0.0120991245, 0.010885568, 0.0120991245, 0.010009718, 0.01045341, 0.010262391, 0.010134344, 0.010048959, 0.010000262, 0.01, 0.010042582, 0.010009718, 0.0100015765, 0.01, 0.01],
        },
        Sched {
            // S.ExponentialDecay(0.3, 3, 0.9)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.3, "decay_steps": 3, "decay_rate": 0.9, "staircase": false, "name": "ExponentialDecay"}, "registered_name": null}"#,
            jit: [0.3, 0.28964683, 0.27965093, 0.27, 0.25168583, 0.23461391, 0.21115251, 0.20386551, 0.17714699, 0.14861794, 0.108342476, 0.10460351, 0.100993566, 0.061767314, 0.0265888, 0.025671203, 0.02478527, 0.00895099, 0.0015461305, 1.6773362e-16, 0.0],
            eager: [0.3, 0.28964683, 0.27965093, 0.27, 0.25168583, 0.23461393, 0.21115251, 0.20386551, 0.17714699, 0.14861795, 0.108342476, 0.10460351, 0.10099358, 0.061767314, 0.0265888, 0.025671203, 0.024785275, 0.008950994, 0.0015461305, 1.6773362e-16, 0.0],
        },
        Sched {
            // S.InverseTimeDecay(0.3, 3, 0.7)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.3, "decay_steps": 3, "decay_rate": 0.7, "staircase": false, "name": "InverseTimeDecay"}, "registered_name": null}"#,
            jit: [0.3, 0.24324325, 0.20454545, 0.1764706, 0.13846155, 0.11392405, 0.09, 0.08411215, 0.06666667, 0.05294118, 0.03862661, 0.0375, 0.036437247, 0.026086958, 0.01754386, 0.017307693, 0.017077798, 0.012328767, 0.008333334, 0.0012802277, 1.2856592e-05],
            eager: [0.3, 0.24324325, 0.20454545, 0.1764706, 0.13846156, 0.113924064, 0.09, 0.08411215, 0.06666667, 0.05294118, 0.03862661, 0.0375, 0.036437247, 0.026086958, 0.01754386, 0.017307693, 0.0170778, 0.012328768, 0.008333334, 0.0012802276, 1.28565935e-05],
        },
        Sched {
            // S.PiecewiseConstantDecay([2.5, 7.9], [0.3, 0.2, 0.1])
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "config": {"boundaries": [2.5, 7.9], "values": [0.3, 0.2, 0.1], "name": "PiecewiseConstant"}, "registered_name": null}"#,
            jit: [0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
            eager: [0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
        },
        Sched {
            // S.ExponentialDecay(1.0, 4, 0.3, staircase=True)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 1.0, "decay_steps": 4, "decay_rate": 0.3, "staircase": true, "name": "ExponentialDecay"}, "registered_name": null}"#,
            jit: [1.0, 1.0, 1.0, 1.0, 0.3, 0.3, 0.09, 0.09, 0.027000003, 0.0024300006, 0.00021870006, 0.00021870006, 0.00021870006, 1.7714708e-06, 1.2914025e-09, 1.2914025e-09, 1.2914025e-09, 8.472894e-14, 4.5028456e-20, 0.0, 0.0],
            eager: [1.0, 1.0, 1.0, 1.0, 0.3, 0.3, 0.09, 0.09, 0.027000003, 0.0024300006, 0.00021870006, 0.00021870006, 0.00021870006, 1.7714708e-06, 1.2914025e-09, 1.2914025e-09, 1.2914025e-09, 8.472894e-14, 4.5028456e-20, 0.0, 0.0],
        },
        Sched {
            // S.InverseTimeDecay(0.05, 6, 1.0)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.05, "decay_steps": 6, "decay_rate": 1.0, "staircase": false, "name": "InverseTimeDecay"}, "registered_name": null}"#,
            jit: [0.05, 0.042857144, 0.037499998, 0.033333335, 0.027272727, 0.023076922, 0.018749999, 0.017647058, 0.014285714, 0.011538461, 0.008571428, 0.008333334, 0.008108107, 0.005882353, 0.004, 0.0039473684, 0.0038961037, 0.0028301885, 0.0019230769, 0.00029821074, 2.9998198e-06],
            eager: [0.05, 0.042857144, 0.037499998, 0.033333335, 0.02727273, 0.023076925, 0.01875, 0.017647058, 0.014285714, 0.011538463, 0.008571428, 0.008333334, 0.008108108, 0.005882353, 0.004, 0.0039473684, 0.003896104, 0.0028301887, 0.0019230769, 0.00029821074, 2.9998203e-06],
        },
        Sched {
            // S.PolynomialDecay(0.2, 16, end_learning_rate=0.0, power=0.5)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.2, "decay_steps": 16, "end_learning_rate": 0.0, "power": 0.5, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}"#,
            jit: [0.2, 0.19364917, 0.18708287, 0.18027757, 0.16583125, 0.15, 0.12247449, 0.111803405, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            eager: [0.2, 0.19364917, 0.18708287, 0.18027757, 0.16583125, 0.15, 0.12247449, 0.111803405, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        },
        Sched {
            // S.PolynomialDecay(0.1, 30, end_learning_rate=0.02, power=3.0)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 30, "end_learning_rate": 0.02, "power": 3.0, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}"#,
            jit: [0.099999994, 0.09226369, 0.08504296, 0.07831999, 0.06629629, 0.056050368, 0.043703698, 0.04032296, 0.029999997, 0.022962961, 0.020002963, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02],
            eager: [0.099999994, 0.0922637, 0.08504297, 0.07832, 0.066296294, 0.056050368, 0.043703698, 0.04032296, 0.03, 0.022962961, 0.020002963, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02],
        },
        Sched {
            // S.CosineDecay(0.0, 20, warmup_target=0.1, warmup_steps=5)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.0, "decay_steps": 20, "alpha": 0.0, "name": "CosineDecay", "warmup_target": 0.1, "warmup_steps": 5}, "registered_name": null}"#,
            jit: [0.0, 0.020000001, 0.040000003, 0.060000002, 0.1, 0.09755283, 0.08535534, 0.07938927, 0.049999997, 0.014644662, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            eager: [0.0, 0.020000001, 0.040000003, 0.060000002, 0.1, 0.09755283, 0.08535534, 0.07938927, 0.049999997, 0.014644662, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        },
        Sched {
            // S.CosineDecayRestarts(0.2, 6, t_mul=2.0, m_mul=0.7)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.2, "first_decay_steps": 6, "t_mul": 2.0, "m_mul": 0.7, "alpha": 0.0, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.2, 0.18660255, 0.15, 0.099999994, 0.01339745, 0.13761482, 0.105, 0.088117324, 0.020502526, 0.09633037, 0.05539578, 0.048999995, 0.042604204, 0.067940935, 0.027608404, 0.025422499, 0.023274617, 0.04674579, 0.014821768, 0.012866655, 0.0013554428],
            eager: [0.2, 0.18660255, 0.15, 0.099999994, 0.013397462, 0.13761482, 0.105, 0.088117324, 0.020502526, 0.09633037, 0.05539578, 0.048999995, 0.04260422, 0.067940935, 0.027608404, 0.025422499, 0.023274628, 0.04674579, 0.014821768, 0.012866655, 0.0013554428],
        },
        Sched {
            // S.CosineDecayRestarts(0.2, 4, t_mul=1.5, m_mul=0.9, alpha=0.3)
            config: r#"{"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.2, "first_decay_steps": 4, "t_mul": 1.5, "m_mul": 0.9, "alpha": 0.3, "name": "SGDRDecay"}, "registered_name": null}"#,
            jit: [0.2, 0.17949748, 0.13, 0.08050253, 0.1775596, 0.12299999, 0.1734, 0.16998057, 0.10685414, 0.16068447, 0.076011084, 0.068395056, 0.06307749, 0.089385115, 0.09680116, 0.09258367, 0.08845969, 0.11193538, 0.11213916, 0.06080839, 0.07088606],
            eager: [0.2, 0.17949748, 0.13, 0.08050253, 0.1775596, 0.123, 0.1734, 0.16998057, 0.10685414, 0.16068447, 0.076011084, 0.068395056, 0.06307749, 0.089385115, 0.09680116, 0.09258367, 0.08845969, 0.11193538, 0.11213916, 0.06080839, 0.07088606],
        },
    ];

    fn err(v: Value) -> String {
        Schedule::from_config(&v).unwrap_err().to_string()
    }

    #[test]
    fn schedule_config_errors_are_clear() {
        let e = err(json!({"class_name": "CyclicLR", "config": {}}));
        assert_eq!(
            e,
            "unsupported learning-rate schedule `CyclicLR` (supported: ExponentialDecay, \
             InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay, CosineDecay, \
             CosineDecayRestarts)"
        );
        let e = err(json!(0.1));
        assert!(
            e.contains("expected a serialized learning-rate schedule object"),
            "{e}"
        );
        let e = err(json!({"config": {}}));
        assert!(e.contains("missing `class_name`"), "{e}");
        let e = err(json!({"class_name": "CosineDecay", "config": {"decay_steps": 10}}));
        assert_eq!(
            e,
            "at `config/initial_learning_rate`: missing `initial_learning_rate`"
        );
        let e = err(json!({"class_name": "CosineDecay",
            "config": {"initial_learning_rate": 0.1, "decay_steps": 0}}));
        assert_eq!(
            e,
            "at `config/decay_steps`: expected `decay_steps` > 0, found 0"
        );
        let e = err(json!({"class_name": "CosineDecayRestarts",
            "config": {"initial_learning_rate": 0.1, "first_decay_steps": -1}}));
        assert!(e.contains("`first_decay_steps` > 0"), "{e}");
        let e = err(json!({"class_name": "PiecewiseConstantDecay",
            "config": {"boundaries": [1, 2], "values": [0.1, 0.2]}}));
        assert!(
            e.starts_with("at `config/boundaries`: expected one boundary fewer"),
            "{e}"
        );
        let e = err(json!({"class_name": "PiecewiseConstantDecay",
            "config": {"boundaries": [1, "x"], "values": [0.1, 0.2, 0.3]}}));
        assert_eq!(e, "at `config/boundaries`: expected a number, found \"x\"");
        let e = err(json!({"class_name": "ExponentialDecay", "config": {
            "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5,
            "staircase": "yes"}}));
        assert_eq!(
            e,
            "at `config/staircase`: expected a boolean, found \"yes\""
        );
        let e = err(json!({"class_name": "ExponentialDecay", "config": {
            "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "cycle": true}}));
        assert_eq!(
            e,
            "at `config/cycle`: unsupported learning-rate schedule argument `cycle` \
             (supported: decay_rate, decay_steps, initial_learning_rate, name, staircase)"
        );
        // Defaults as in Keras.
        let s = Schedule::from_config(&json!({"class_name": "CosineDecayRestarts",
            "config": {"initial_learning_rate": 0.1, "first_decay_steps": 10}}))
        .unwrap();
        assert_eq!(
            s.to_config()["config"],
            json!({"initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 2.0,
                   "m_mul": 1.0, "alpha": 0.0, "name": "SGDRDecay"})
        );
    }

    #[test]
    fn arithmetic_follows_compile_config() {
        let mode = |v: Value| Arithmetic::from_compile_config(&v);
        assert_eq!(
            mode(json!({"jit_compile": true, "run_eagerly": false})),
            Arithmetic::Compiled
        );
        assert_eq!(mode(json!({"jit_compile": "auto"})), Arithmetic::Compiled);
        assert_eq!(mode(json!({})), Arithmetic::Compiled);
        assert_eq!(mode(json!({"jit_compile": false})), Arithmetic::Eager);
        assert_eq!(
            mode(json!({"jit_compile": true, "run_eagerly": true})),
            Arithmetic::Eager
        );
    }

    #[test]
    fn schedules_match_keras() {
        for g in GOLDENS {
            let config: Value = serde_json::from_str(g.config).unwrap();
            let s = Schedule::from_config(&config).unwrap();
            assert_eq!(s.to_config(), config, "round trip");
            for (i, &step) in STEPS.iter().enumerate() {
                let (c, e) = (s.at(step), s.evaluate(step, Arithmetic::Eager));
                assert_eq!(
                    c.to_bits(),
                    s.evaluate(step, Arithmetic::Compiled).to_bits()
                );
                assert!(
                    close(c, g.jit[i]),
                    "{} at {step}: {c} vs jit {}",
                    g.config,
                    g.jit[i]
                );
                assert!(
                    close(e, g.eager[i]),
                    "{} at {step}: {e} vs eager {}",
                    g.config,
                    g.eager[i]
                );
            }
        }
    }
}
