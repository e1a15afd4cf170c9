//! Optimizer (de)serialization: Keras's `keras.optimizers.get` /
//! `deserialize` (string identifiers and serialized objects, class names
//! case-insensitive) and `get_config` of each optimizer class.
//!
//! Spec: `keras/src/optimizers/__init__.py`, `BaseOptimizer.__init__` /
//! `get_config` / `from_config` in `base_optimizer.py`, and each optimizer's
//! `__init__` (defaults and the `ValueError`s it raises).

use serde_json::{Map, Value, json};

use super::super::schedule::{Params, Schedule, short};
use super::{Arithmetic, Clip, Kind, LearningRate, Optimizer};
use crate::error::{Error, Result};

/// Keras class names, parallel to [`Optimizer::NAMES`].
const CLASS_NAMES: &[(&str, &str)] = &[
    ("adadelta", "Adadelta"),
    ("adagrad", "Adagrad"),
    ("adam", "Adam"),
    ("adamax", "Adamax"),
    ("adamw", "AdamW"),
    ("ftrl", "Ftrl"),
    ("lion", "Lion"),
    ("nadam", "Nadam"),
    ("rmsprop", "RMSprop"),
    ("sgd", "SGD"),
];

pub(super) fn class_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Sgd { .. } => "SGD",
        Kind::Adam {
            decoupled: false, ..
        } => "Adam",
        Kind::Adam {
            decoupled: true, ..
        } => "AdamW",
        Kind::RmsProp { .. } => "RMSprop",
        Kind::Adagrad { .. } => "Adagrad",
        Kind::Adamax { .. } => "Adamax",
        Kind::Nadam { .. } => "Nadam",
        Kind::Adadelta { .. } => "Adadelta",
        Kind::Lion { .. } => "Lion",
        Kind::Ftrl { .. } => "Ftrl",
    }
}

/// Keras's default instance name (`auto_name(class)`: snake case).
fn default_name(id: &str) -> &'static str {
    match id {
        "adadelta" => "adadelta",
        "adagrad" => "adagrad",
        "adamax" => "adamax",
        "adamw" => "adam_w",
        "ftrl" => "ftrl",
        "lion" => "lion",
        "nadam" => "nadam",
        "rmsprop" => "rm_sprop",
        "sgd" => "sgd",
        _ => "adam",
    }
}

pub(super) fn from_config(v: &Value) -> Result<Optimizer> {
    match v {
        Value::String(name) => from_parts(name, None),
        Value::Object(obj) => {
            let class = obj
                .get("class_name")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::missing("`class_name` of the optimizer"))?;
            if class == "LossScaleOptimizer" {
                return loss_scale_from_config(v, obj.get("config"));
            }
            from_parts(class, obj.get("config"))
        }
        other => Err(Error::mismatch(
            "an optimizer name or serialized optimizer object",
            short(other),
        )),
    }
}

/// `LossScaleOptimizer(inner_optimizer, initial_scale, dynamic_growth_steps)`
/// (`keras/src/optimizers/loss_scale_optimizer.py`): the inner optimizer
/// with the dynamic loss scale's state.
fn loss_scale_from_config(whole: &Value, config: Option<&Value>) -> Result<Optimizer> {
    let config = config
        .and_then(Value::as_object)
        .ok_or_else(|| Error::missing("`config` of the LossScaleOptimizer"))?;
    let inner = config
        .get("inner_optimizer")
        .ok_or_else(|| Error::missing("`inner_optimizer`").at("config"))?;
    let mut opt = from_config(inner).map_err(|e| e.at("config/inner_optimizer"))?;
    let initial_scale = match config.get("initial_scale") {
        None | Some(Value::Null) => 32768.0,
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| {
                invalid(
                    "initial_scale",
                    format!("expected a positive number, found {v}"),
                )
            })?,
    };
    let growth_steps = match config.get("dynamic_growth_steps") {
        None | Some(Value::Null) => 2000,
        Some(v) => v.as_i64().filter(|n| *n >= 1).ok_or_else(|| {
            invalid(
                "dynamic_growth_steps",
                format!("expected an integer >= 1, found {v}"),
            )
        })?,
    };
    if config
        .get("dynamic")
        .is_some_and(|d| d != &Value::Bool(true))
    {
        return Err(invalid(
            "dynamic",
            "LossScaleOptimizer no longer supports `dynamic=False` (Keras refuses it too)",
        ));
    }
    opt.loss_scale = Some(Box::new(super::LossScale::new(
        whole.clone(),
        config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("loss_scale_optimizer")
            .to_string(),
        initial_scale as f32,
        growth_steps,
    )));
    Ok(opt)
}

fn invalid(key: &str, msg: impl Into<String>) -> Error {
    Error::invalid(msg).at(format!("config/{key}"))
}

/// Build an optimizer from its class name or identifier and its config
/// (`None`: all defaults, as `keras.optimizers.get("adam")`).
pub(super) fn from_parts(name: &str, config: Option<&Value>) -> Result<Optimizer> {
    let lower = name.to_ascii_lowercase();
    let Some(&(id, _)) = CLASS_NAMES.iter().find(|(id, _)| *id == lower) else {
        return Err(Error::unsupported("optimizer", name, Optimizer::NAMES));
    };
    let mut p = Params::new(config, "optimizer argument")?;

    // BaseOptimizer.__init__ arguments.
    let instance_name = p.string("name", default_name(id))?;
    let default_lr = if id == "sgd" { 0.01 } else { 0.001 };
    let learning_rate = match p.get("learning_rate") {
        None => LearningRate::Constant(default_lr as f32),
        Some(Value::Number(n)) => LearningRate::Constant(n.as_f64().unwrap_or(default_lr) as f32),
        Some(v @ Value::Object(_)) => LearningRate::Schedule(
            Schedule::from_config(v).map_err(|e| e.at("config/learning_rate"))?,
        ),
        Some(other) => {
            return Err(Error::mismatch(
                "a float or a serialized learning-rate schedule",
                short(other),
            )
            .at("config/learning_rate"));
        }
    };
    let default_wd = if id == "adamw" { Some(0.004) } else { None };
    let weight_decay = if config.and_then(|c| c.get("weight_decay")).is_some() {
        p.optional_f64("weight_decay")?
    } else {
        p.ignore("weight_decay");
        default_wd
    };
    if id == "adamw" && weight_decay.is_none() {
        return Err(invalid(
            "weight_decay",
            "`weight_decay` of AdamW must be a float, found null",
        ));
    }
    let clipnorm = p.optional_f64("clipnorm")?;
    let global_clipnorm = p.optional_f64("global_clipnorm")?;
    let clipvalue = p.optional_f64("clipvalue")?;
    let clip = match (clipnorm, global_clipnorm, clipvalue) {
        (None, None, None) => Clip::None,
        (Some(x), None, None) => Clip::Norm(x),
        (None, Some(x), None) => Clip::GlobalNorm(x),
        (None, None, Some(x)) => Clip::Value(x),
        _ => {
            return Err(Error::invalid(format!(
                "only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set, \
                 found clipnorm={clipnorm:?}, clipvalue={clipvalue:?}, \
                 global_clipnorm={global_clipnorm:?}"
            ))
            .at("config"));
        }
    };
    if p.bool("use_ema", false)? {
        return Err(
            Error::unsupported("optimizer option", "use_ema=true", &["use_ema=false"])
                .at("config/use_ema"),
        );
    }
    let ema_momentum = p.f64("ema_momentum", 0.99)?;
    let ema_overwrite_frequency = p
        .get("ema_overwrite_frequency")
        .cloned()
        .unwrap_or(Value::Null);
    let loss_scale_factor = p.optional_f64("loss_scale_factor")?;
    if let Some(scale) = loss_scale_factor
        && !is_power_of_two(scale)
    {
        return Err(Error::unsupported(
            "optimizer option",
            format!("loss_scale_factor={scale}"),
            &["null", "a power of two (exact, so a no-op)"],
        )
        .at("config/loss_scale_factor"));
    }
    // `if gradient_accumulation_steps:` in Keras: 0 and null disable it.
    if let Some(steps) = p.optional_f64("gradient_accumulation_steps")?
        && steps != 0.0
    {
        return Err(Error::unsupported(
            "optimizer option",
            format!("gradient_accumulation_steps={steps}"),
            &["null"],
        )
        .at("config/gradient_accumulation_steps"));
    }
    // Removed argument Keras still accepts and ignores (with a warning).
    p.ignore("decay");

    let kind = match id {
        "sgd" => {
            let momentum = p.f64("momentum", 0.0)?;
            if !(0.0..=1.0).contains(&momentum) {
                return Err(invalid(
                    "momentum",
                    format!("`momentum` must be a float between [0, 1], found {momentum}"),
                ));
            }
            Kind::Sgd {
                momentum,
                nesterov: p.bool("nesterov", false)?,
            }
        }
        "adam" | "adamw" => Kind::Adam {
            beta_1: p.f64("beta_1", 0.9)?,
            beta_2: p.f64("beta_2", 0.999)?,
            epsilon: p.f64("epsilon", 1e-7)?,
            amsgrad: p.bool("amsgrad", false)?,
            decoupled: id == "adamw",
        },
        "rmsprop" => Kind::RmsProp {
            rho: p.f64("rho", 0.9)?,
            momentum: p.f64("momentum", 0.0)?,
            epsilon: p.f64("epsilon", 1e-7)?,
            centered: p.bool("centered", false)?,
        },
        "adagrad" => Kind::Adagrad {
            initial_accumulator_value: p.f64("initial_accumulator_value", 0.1)?,
            epsilon: p.f64("epsilon", 1e-7)?,
        },
        "adamax" => Kind::Adamax {
            beta_1: p.f64("beta_1", 0.9)?,
            beta_2: p.f64("beta_2", 0.999)?,
            epsilon: p.f64("epsilon", 1e-7)?,
        },
        "nadam" => Kind::Nadam {
            beta_1: p.f64("beta_1", 0.9)?,
            beta_2: p.f64("beta_2", 0.999)?,
            epsilon: p.f64("epsilon", 1e-7)?,
        },
        "adadelta" => Kind::Adadelta {
            rho: p.f64("rho", 0.95)?,
            epsilon: p.f64("epsilon", 1e-7)?,
        },
        "lion" => {
            let beta_1 = p.f64("beta_1", 0.9)?;
            if beta_1 <= 0.0 || beta_1 > 1.0 {
                return Err(invalid(
                    "beta_1",
                    format!("`beta_1` of Lion must be in (0, 1], found {beta_1}"),
                ));
            }
            Kind::Lion {
                beta_1,
                beta_2: p.f64("beta_2", 0.99)?,
            }
        }
        _ => {
            let kind = Kind::Ftrl {
                learning_rate_power: p.f64("learning_rate_power", -0.5)?,
                initial_accumulator_value: p.f64("initial_accumulator_value", 0.1)?,
                l1_regularization_strength: p.f64("l1_regularization_strength", 0.0)?,
                l2_regularization_strength: p.f64("l2_regularization_strength", 0.0)?,
                l2_shrinkage_regularization_strength: p
                    .f64("l2_shrinkage_regularization_strength", 0.0)?,
                beta: p.f64("beta", 0.0)?,
            };
            check_ftrl(&kind)?;
            kind
        }
    };
    p.finish()?;

    Ok(Optimizer {
        kind,
        instance_name,
        learning_rate,
        lr_overridden: false,
        weight_decay,
        clip,
        ema_momentum,
        ema_overwrite_frequency,
        loss_scale_factor,
        iterations: 0,
        iterations_int64: false,
        shapes: Vec::new(),
        slots: Vec::new(),
        u_product: 1.0,
        built: false,
        last_lr: None,
        arithmetic: Arithmetic::default(),
        loss_scale: None,
    })
}

/// The `ValueError`s of `Ftrl.__init__`.
fn check_ftrl(kind: &Kind) -> Result<()> {
    let Kind::Ftrl {
        learning_rate_power,
        initial_accumulator_value,
        l1_regularization_strength,
        l2_regularization_strength,
        l2_shrinkage_regularization_strength,
        ..
    } = *kind
    else {
        return Ok(());
    };
    let checks = [
        (
            "initial_accumulator_value",
            initial_accumulator_value,
            initial_accumulator_value >= 0.0,
            "positive or zero",
        ),
        (
            "learning_rate_power",
            learning_rate_power,
            learning_rate_power <= 0.0,
            "negative or zero",
        ),
        (
            "l1_regularization_strength",
            l1_regularization_strength,
            l1_regularization_strength >= 0.0,
            "positive or zero",
        ),
        (
            "l2_regularization_strength",
            l2_regularization_strength,
            l2_regularization_strength >= 0.0,
            "positive or zero",
        ),
        (
            "l2_shrinkage_regularization_strength",
            l2_shrinkage_regularization_strength,
            l2_shrinkage_regularization_strength >= 0.0,
            "positive or zero",
        ),
    ];
    for (key, value, ok, needs) in checks {
        if !ok {
            return Err(invalid(
                key,
                format!("`{key}` needs to be {needs}, found {value}"),
            ));
        }
    }
    Ok(())
}

/// A positive power of two, exactly representable as a normal float32.
fn is_power_of_two(x: f64) -> bool {
    let f = x as f32;
    f64::from(f) == x && f.is_normal() && f > 0.0 && f.to_bits() & 0x007f_ffff == 0
}

pub(super) fn to_config(opt: &Optimizer) -> Value {
    let learning_rate = match &opt.learning_rate {
        // `float(self._learning_rate.numpy())`: the float32 value widened.
        LearningRate::Constant(lr) => json!(f64::from(*lr)),
        LearningRate::Schedule(s) => s.to_config(),
    };
    let (clipnorm, global_clipnorm, clipvalue) = match opt.clip {
        Clip::None => (None, None, None),
        Clip::Norm(x) => (Some(x), None, None),
        Clip::GlobalNorm(x) => (None, Some(x), None),
        Clip::Value(x) => (None, None, Some(x)),
    };
    let mut c = Map::new();
    let mut put = |k: &str, v: Value| {
        c.insert(k.to_string(), v);
    };
    put("name", json!(opt.instance_name));
    put("learning_rate", learning_rate);
    put("weight_decay", json!(opt.weight_decay));
    put("clipnorm", json!(clipnorm));
    put("global_clipnorm", json!(global_clipnorm));
    put("clipvalue", json!(clipvalue));
    put("use_ema", json!(false));
    put("ema_momentum", json!(opt.ema_momentum));
    put(
        "ema_overwrite_frequency",
        opt.ema_overwrite_frequency.clone(),
    );
    put("loss_scale_factor", json!(opt.loss_scale_factor));
    put("gradient_accumulation_steps", Value::Null);
    match opt.kind {
        Kind::Sgd { momentum, nesterov } => {
            put("momentum", json!(momentum));
            put("nesterov", json!(nesterov));
        }
        Kind::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            ..
        } => {
            put("beta_1", json!(beta_1));
            put("beta_2", json!(beta_2));
            put("epsilon", json!(epsilon));
            put("amsgrad", json!(amsgrad));
        }
        Kind::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
        } => {
            put("rho", json!(rho));
            put("momentum", json!(momentum));
            put("epsilon", json!(epsilon));
            put("centered", json!(centered));
        }
        Kind::Adagrad {
            initial_accumulator_value,
            epsilon,
        } => {
            put(
                "initial_accumulator_value",
                json!(initial_accumulator_value),
            );
            put("epsilon", json!(epsilon));
        }
        Kind::Adamax {
            beta_1,
            beta_2,
            epsilon,
        }
        | Kind::Nadam {
            beta_1,
            beta_2,
            epsilon,
        } => {
            put("beta_1", json!(beta_1));
            put("beta_2", json!(beta_2));
            put("epsilon", json!(epsilon));
        }
        Kind::Adadelta { rho, epsilon } => {
            put("rho", json!(rho));
            put("epsilon", json!(epsilon));
        }
        Kind::Lion { beta_1, beta_2 } => {
            put("beta_1", json!(beta_1));
            put("beta_2", json!(beta_2));
        }
        Kind::Ftrl {
            learning_rate_power,
            initial_accumulator_value,
            l1_regularization_strength,
            l2_regularization_strength,
            l2_shrinkage_regularization_strength,
            beta,
        } => {
            put("learning_rate_power", json!(learning_rate_power));
            put(
                "initial_accumulator_value",
                json!(initial_accumulator_value),
            );
            put(
                "l1_regularization_strength",
                json!(l1_regularization_strength),
            );
            put(
                "l2_regularization_strength",
                json!(l2_regularization_strength),
            );
            put(
                "l2_shrinkage_regularization_strength",
                json!(l2_shrinkage_regularization_strength),
            );
            put("beta", json!(beta));
        }
    }
    let inner = json!({
        "module": "keras.optimizers",
        "class_name": class_name(&opt.kind),
        "config": c,
        "registered_name": null,
    });
    match &opt.loss_scale {
        // The wrapper's own config as it was read, with the inner optimizer
        // as it is now.
        Some(ls) => {
            let mut whole = ls.config.clone();
            whole["config"]["inner_optimizer"] = inner;
            whole
        }
        None => inner,
    }
}
