//! Training-time noise: `Dropout` with a `noise_shape`, `SpatialDropout1D`
//! /`2D`/`3D`, `GaussianNoise`, `GaussianDropout`, `AlphaDropout`, and
//! `ActivityRegularization` (deterministic: an activity penalty).
//!
//! All noise layers are the identity at inference, as in Keras. In training
//! they draw from kerasrs's seeded generator: the formulas are Keras's, the
//! random numbers cannot be (Keras's JAX stream is not reproducible here),
//! so a fit through an active noise layer matches Keras in distribution, not
//! digit for digit.
//!
//! Spec: `keras/src/layers/regularization/dropout.py`,
//! `spatial_dropout.py` (channels_last noise shapes `(N, 1, C)`,
//! `(N, 1, 1, C)`, `(N, 1, 1, 1, C)`), `gaussian_noise.py` (`x + N(0, σ)`),
//! `gaussian_dropout.py` (`x · N(1, √(rate / (1 − rate)))`),
//! `alpha_dropout.py` (the affine SELU-preserving transform),
//! `activity_regularization.py` (`L1L2(l1, l2)` on the output).

use ndarray::{ArrayD, IxDyn, Zip};
use rand::{Rng, RngCore};

use super::{Backward, BuildCx, Ctx, Forward, LayerOp, Saved, single_shape};
use crate::error::{Error, Result};
use crate::model::regularizer::Regularizer;

/// Which noise.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Inverted dropout with a mask of `noise_shape` broadcast to the input.
    Dropout {
        rate: f64,
        noise_shape: Option<Vec<Option<usize>>>,
        spatial: bool,
    },
    GaussianNoise {
        stddev: f64,
    },
    GaussianDropout {
        rate: f64,
    },
    AlphaDropout {
        rate: f64,
        noise_shape: Option<Vec<Option<usize>>>,
    },
}

/// A noise layer.
#[derive(Debug, Clone)]
pub struct Noise {
    kind: Kind,
}

fn rate(cx: &BuildCx<'_>) -> Result<f64> {
    let rate = cx.f64_or("rate", 0.0)?;
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::mismatch("`rate` in [0, 1)", rate));
    }
    Ok(rate)
}

fn noise_shape(cx: &BuildCx<'_>) -> Result<Option<Vec<Option<usize>>>> {
    let v = cx.get("noise_shape");
    if v.is_null() {
        return Ok(None);
    }
    let list = v
        .as_array()
        .ok_or_else(|| Error::mismatch("a list `noise_shape`", v))?;
    let input = cx.input()?;
    if list.len() != input.len() + 1 {
        return Err(Error::mismatch(
            format!("`noise_shape` of rank {}", input.len() + 1),
            v,
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, d)| match d {
            serde_json::Value::Null => Ok(None),
            d => match d.as_u64() {
                Some(1) => Ok(Some(1)),
                Some(s) if i > 0 && s as usize == input[i - 1] => Ok(Some(s as usize)),
                _ => Err(Error::mismatch(
                    "`noise_shape` entries of 1, null or the input's size",
                    v,
                )),
            },
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Builder of `Dropout` (any `noise_shape`).
pub fn build_dropout(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    Ok(Box::new(Noise {
        kind: Kind::Dropout {
            rate: rate(cx)?,
            noise_shape: noise_shape(cx)?,
            spatial: false,
        },
    }))
}

/// Builder of `SpatialDropout1D/2D/3D`.
pub fn build_spatial_dropout(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let rank = match cx.class_name {
        "SpatialDropout1D" => 2,
        "SpatialDropout2D" => 3,
        _ => 4,
    };
    let input = cx.input()?;
    if input.len() != rank {
        return Err(Error::mismatch(
            format!("an input of rank {} for `{}`", rank + 1, cx.class_name),
            format!("{input:?}"),
        ));
    }
    let channels_first = match cx.get("data_format") {
        serde_json::Value::String(s) => s == "channels_first",
        _ => false,
    };
    // `_get_noise_shape`: one draw per sample and channel.
    let mut shape: Vec<Option<usize>> = vec![None];
    if channels_first {
        shape.push(Some(input[0]));
        shape.extend(std::iter::repeat_n(Some(1), rank - 1));
    } else {
        shape.extend(std::iter::repeat_n(Some(1), rank - 1));
        shape.push(Some(input[rank - 1]));
    }
    Ok(Box::new(Noise {
        kind: Kind::Dropout {
            rate: rate(cx)?,
            noise_shape: Some(shape),
            spatial: true,
        },
    }))
}

/// Builder of `GaussianNoise`.
pub fn build_gaussian_noise(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    let stddev = cx.f64_or("stddev", 0.0)?;
    if !(stddev >= 0.0 && stddev.is_finite()) {
        return Err(Error::mismatch("a non-negative `stddev`", stddev));
    }
    Ok(Box::new(Noise {
        kind: Kind::GaussianNoise { stddev },
    }))
}

/// Builder of `GaussianDropout`.
pub fn build_gaussian_dropout(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    Ok(Box::new(Noise {
        kind: Kind::GaussianDropout { rate: rate(cx)? },
    }))
}

/// Builder of `AlphaDropout`.
pub fn build_alpha_dropout(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    Ok(Box::new(Noise {
        kind: Kind::AlphaDropout {
            rate: rate(cx)?,
            noise_shape: noise_shape(cx)?,
        },
    }))
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut dyn RngCore) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A mask of the concrete noise shape (batch size from `x`), broadcast to
/// `x`'s shape: `keep` values with probability `1 - rate`.
fn mask(
    x: &ArrayD<f32>,
    noise_shape: &Option<Vec<Option<usize>>>,
    rate: f64,
    keep: f32,
    drop: f32,
    rng: &mut dyn RngCore,
) -> ArrayD<f32> {
    let concrete: Vec<usize> = match noise_shape {
        None => x.shape().to_vec(),
        Some(s) => s
            .iter()
            .zip(x.shape())
            .map(|(d, &full)| d.unwrap_or(full))
            .collect(),
    };
    let small = ArrayD::from_shape_fn(IxDyn(&concrete), |_| {
        // `random.uniform(...) >= rate` keeps.
        if rng.random::<f64>() >= rate {
            keep
        } else {
            drop
        }
    });
    small
        .broadcast(x.raw_dim())
        .expect("noise shape broadcasts to the input")
        .to_owned()
}

impl LayerOp for Noise {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        single_shape(inputs, "a noise layer").map(<[usize]>::to_vec)
    }

    fn forward(&self, x: &[&ArrayD<f32>], cx: &mut Ctx<'_>) -> Result<Forward> {
        let x = x[0];
        if !cx.training() {
            return Ok(Forward::plain(x.clone()));
        }
        // The saved array is the factor dy/dx (elementwise).
        let (y, factor) = match &self.kind {
            Kind::Dropout {
                rate, noise_shape, ..
            } => {
                if *rate == 0.0 {
                    return Ok(Forward::plain(x.clone()));
                }
                let scale = (1.0 / (1.0 - rate)) as f32;
                let m = mask(x, noise_shape, *rate, scale, 0.0, cx.rng);
                (x * &m, m)
            }
            Kind::GaussianNoise { stddev } => {
                if *stddev == 0.0 {
                    return Ok(Forward::plain(x.clone()));
                }
                let s = *stddev as f32;
                let y = x.mapv(|v| v + s * normal(cx.rng));
                (y, ArrayD::ones(x.raw_dim()))
            }
            Kind::GaussianDropout { rate } => {
                if *rate == 0.0 {
                    return Ok(Forward::plain(x.clone()));
                }
                let s = (rate / (1.0 - rate)).sqrt() as f32;
                let m = ArrayD::from_shape_fn(x.raw_dim(), |_| 1.0 + s * normal(cx.rng));
                (x * &m, m)
            }
            Kind::AlphaDropout { rate, noise_shape } => {
                if *rate == 0.0 {
                    return Ok(Forward::plain(x.clone()));
                }
                let alpha = 1.673_263_242_354_377_3_f64;
                let scale = 1.050_700_987_355_480_5_f64;
                let alpha_p = -alpha * scale;
                let a = ((1.0 - rate) * (1.0 + rate * alpha_p * alpha_p)).powf(-0.5);
                let b = -a * alpha_p * rate;
                let kept = mask(x, noise_shape, *rate, 1.0, 0.0, cx.rng);
                let (a, b, alpha_p) = (a as f32, b as f32, alpha_p as f32);
                let mut y = x.clone();
                Zip::from(&mut y).and(&kept).for_each(|v, &k| {
                    *v = a * (*v * k + alpha_p * (1.0 - k)) + b;
                });
                (y, kept.mapv(|k| a * k))
            }
        };
        Ok(Forward {
            extra: Vec::new(),
            y,
            saved: Some(Box::new(factor)),
            updates: Vec::new(),
        })
    }

    fn backward(
        &self,
        _x: &[&ArrayD<f32>],
        _y: &ArrayD<f32>,
        saved: &Saved,
        dy: ArrayD<f32>,
    ) -> Result<Backward> {
        let dx = match saved.as_ref().and_then(|s| s.downcast_ref::<ArrayD<f32>>()) {
            Some(factor) => dy * factor,
            None => dy,
        };
        Ok(Backward::inputs(vec![dx]))
    }

    fn detail(&self) -> Option<String> {
        Some(match &self.kind {
            Kind::Dropout { rate, spatial, .. } => {
                format!("rate={rate}{}", if *spatial { " (spatial)" } else { "" })
            }
            Kind::GaussianNoise { stddev } => format!("stddev={stddev}"),
            Kind::GaussianDropout { rate } | Kind::AlphaDropout { rate, .. } => {
                format!("rate={rate}")
            }
        })
    }

    crate::clone_box!();
}

/// `ActivityRegularization(l1, l2)`: the identity, with an `L1L2` penalty
/// on its output.
#[derive(Debug, Clone)]
pub struct ActivityRegularization {
    regularizer: Regularizer,
}

/// Builder of `ActivityRegularization`.
pub fn build_activity_regularization(cx: &BuildCx<'_>) -> Result<Box<dyn LayerOp>> {
    cx.input()?;
    let l1 = cx.f64_or("l1", 0.0)?;
    let l2 = cx.f64_or("l2", 0.0)?;
    let regularizer = Regularizer::from_config(&serde_json::json!({
        "module": "keras.regularizers", "class_name": "L1L2",
        "config": {"l1": l1, "l2": l2}, "registered_name": null
    }))?
    .ok_or_else(|| Error::invalid("L1L2 regularizer"))?;
    Ok(Box::new(ActivityRegularization { regularizer }))
}

impl LayerOp for ActivityRegularization {
    fn supports_masking(&self) -> bool {
        true
    }

    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        single_shape(inputs, "ActivityRegularization").map(<[usize]>::to_vec)
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

    fn activity_regularizer(&self) -> Option<Regularizer> {
        Some(self.regularizer)
    }

    crate::clone_box!();
}

#[cfg(test)]
mod tests {
    use super::super::check::{build, gradients, values};
    use super::super::{Ctx, Mode};
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    fn run(op: &dyn LayerOp, x: &ArrayD<f32>, mode: Mode) -> ArrayD<f32> {
        let mut rng = StdRng::seed_from_u64(3);
        let mut cx = Ctx {
            mode,
            rng: &mut rng,
        };
        op.forward(&[x], &mut cx).unwrap().y
    }

    #[test]
    fn noise_is_identity_at_inference_and_has_exact_gradients_in_training() {
        let x = values(&[4, 3, 5], 1);
        for (builder, class, cfg) in [
            (
                build_dropout as super::super::Builder,
                "Dropout",
                json!({"rate": 0.4, "noise_shape": [null, 1, 5]}),
            ),
            (
                build_spatial_dropout,
                "SpatialDropout1D",
                json!({"rate": 0.5}),
            ),
            (
                build_gaussian_noise,
                "GaussianNoise",
                json!({"stddev": 0.2}),
            ),
            (
                build_gaussian_dropout,
                "GaussianDropout",
                json!({"rate": 0.3}),
            ),
            (build_alpha_dropout, "AlphaDropout", json!({"rate": 0.3})),
        ] {
            let op = build(builder, class, cfg, &[vec![3, 5]], &[]);
            assert_eq!(run(op.as_ref(), &x, Mode::Inference), x, "{class}");
            assert_ne!(run(op.as_ref(), &x, Mode::Training), x, "{class}");
            gradients(op.as_ref(), std::slice::from_ref(&x), Mode::Training, 1e-2);
        }
    }

    #[test]
    fn spatial_dropout_drops_whole_channels() {
        let op = build(
            build_spatial_dropout,
            "SpatialDropout1D",
            json!({"rate": 0.5}),
            &[vec![6, 8]],
            &[],
        );
        let x = ArrayD::ones(IxDyn(&[3, 6, 8]));
        let y = run(op.as_ref(), &x, Mode::Training);
        for n in 0..3 {
            for c in 0..8 {
                let first = y[[n, 0, c]];
                assert!(first == 0.0 || first == 2.0);
                assert!((0..6).all(|t| y[[n, t, c]] == first));
            }
        }
    }

    #[test]
    fn dropout_keeps_the_expected_fraction_and_scales_inverted() {
        let op = build(
            build_dropout,
            "Dropout",
            json!({"rate": 0.25}),
            &[vec![1000]],
            &[],
        );
        let x = ArrayD::ones(IxDyn(&[10, 1000]));
        let y = run(op.as_ref(), &x, Mode::Training);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    }

    #[test]
    fn alpha_dropout_keeps_mean_and_variance_of_standard_inputs() {
        let op = build(
            build_alpha_dropout,
            "AlphaDropout",
            json!({"rate": 0.2}),
            &[vec![20000]],
            &[],
        );
        let mut rng = StdRng::seed_from_u64(5);
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 20000]), |_| normal(&mut rng));
        let y = run(op.as_ref(), &x, Mode::Training);
        let n = y.len() as f64;
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = y
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.08,
            "{mean} {var}"
        );
    }
}
