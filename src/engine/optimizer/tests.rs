//! Golden tests against Keras 3.15.1 (JAX 0.10.2 backend, CPU).
//!
//! Every golden below was produced by this Python (`KERAS_BACKEND=jax`),
//! which runs three steps the way `model.fit` does (a jitted
//! `stateless_apply`) on a `(2, 3)` kernel and a `(3,)` bias:
//!
//! ```python
//! import jax, numpy as np, keras
//! from keras import optimizers as O
//! K0 = np.array([[0.5, -1.2, 2.0], [0.0, 0.3, -0.7]], np.float32)
//! B0 = np.array([0.1, -0.2, 0.05], np.float32)
//! GRADS = [
//!     (np.array([[0.3, -0.8, 1.5], [0.0, 2.2, -0.4]], np.float32), np.array([0.6, -0.1, 0.9], np.float32)),
//!     (np.array([[-0.2, 0.5, 1.1], [0.7, -1.9, 0.05]], np.float32), np.array([0.0, 0.3, -1.2], np.float32)),
//!     (np.array([[0.9, 0.0, -0.6], [1.3, 0.4, -2.5]], np.float32), np.array([-0.5, 0.8, 0.2], np.float32)),
//! ]
//!
//! def run(make, jit):
//!     """3 steps of `make()` on kernel (2,3) and bias (3,): jitted stateless_apply (as model.fit) or eager apply."""
//!     opt = make()
//!     # model.fit differentiates `opt.scale_loss(loss)`: gradients arrive scaled.
//!     scale = np.float32(opt.loss_scale_factor or 1.0)
//!     grads = [(k * scale, b * scale) for k, b in GRADS]
//!     vs = [keras.Variable(K0, name="kernel"), keras.Variable(B0, name="bias")]
//!     opt.build(vs)
//!     if jit:
//!         step = jax.jit(opt.stateless_apply)
//!         ov = [v.value for v in opt.variables]
//!         tv = [v.value for v in vs]
//!         for g in grads:
//!             tv, ov = step(ov, [jax.numpy.asarray(x) for x in g], tv)
//!         return opt, [np.asarray(t) for t in tv], [np.asarray(o) for o in ov]
//!     for g in grads:
//!         opt.apply([jax.numpy.asarray(x) for x in g], vs)
//!     return opt, [v.numpy() for v in vs], [v.numpy() for v in opt.variables]
//!
//! opt, (kernel, bias), opt_vars = run(lambda: <expression in the case comment>, jit=True)
//! print(keras.optimizers.serialize(opt))                     # `config`
//! print([(v.path, v.shape, v.dtype) for v in opt.variables])   # `vars` layout
//! ```
//!
//! `kernel`, `bias` and `vars` are the jitted results, which
//! [`Arithmetic::Compiled`] reproduces; `eager` is the kernel and bias of
//! `run(..., jit=False)` (Keras's eager `opt.apply`), which
//! [`Arithmetic::Eager`] reproduces. The case comment gives how far the two
//! are apart in Keras itself. Both modes were checked bit for bit against
//! these runs on the machine that produced them (x86-64 with FMA); the tests
//! allow [`TOL`] so that another CPU's `rsqrt` estimate or C library does not
//! fail them.

use serde_json::{Value, json};

use super::*;
use crate::archive::H5Dataset;

/// Agreement required with Keras, relative to the value (absolute below 1).
const TOL: f32 = 1e-6;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= TOL * b.abs().max(1.0) || (a.is_nan() && b.is_nan())
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(close(g, w), "{what}[{i}]: got {g}, Keras {w}");
    }
}

const K0: [f32; 6] = [0.5, -1.2, 2.0, 0.0, 0.3, -0.7];
const B0: [f32; 3] = [0.1, -0.2, 0.05];
#[allow(clippy::type_complexity)]
const GRADS: [([f32; 6], [f32; 3]); 3] = [
    ([0.3, -0.8, 1.5, 0.0, 2.2, -0.4], [0.6, -0.1, 0.9]),
    ([-0.2, 0.5, 1.1, 0.7, -1.9, 0.05], [0.0, 0.3, -1.2]),
    ([0.9, 0.0, -0.6, 1.3, 0.4, -2.5], [-0.5, 0.8, 0.2]),
];

fn shapes() -> Vec<Vec<usize>> {
    vec![vec![2, 3], vec![3]]
}

/// Apply the gradient steps `steps` to `(kernel, bias)`.
fn run_steps(
    opt: &mut Optimizer,
    kernel: &mut [f32],
    bias: &mut [f32],
    steps: std::ops::Range<usize>,
) {
    for (gk, gb) in &GRADS[steps] {
        let mut grads = vec![gk.to_vec(), gb.to_vec()];
        opt.apply(&mut [&mut *kernel, &mut *bias], &mut grads);
    }
}

struct Golden {
    config: &'static str,
    kernel: [f32; 6],
    bias: [f32; 3],
    /// Kernel and bias after Keras's eager `opt.apply` (jit=False).
    eager: [f32; 9],
    /// `(path, shape, dtype, values)` of `opt.variables` after the steps.
    #[allow(clippy::type_complexity)]
    vars: &'static [(&'static str, &'static [usize], &'static str, &'static [f32])],
}

#[rustfmt::skip]
const GOLDENS: &[Golden] = &[
    Golden {
        // O.SGD(learning_rate=0.1, name="sgd")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.4, -1.17, 1.8000001, -0.2, 0.23, -0.41499996],
        bias: [0.09, -0.3, 0.060000006],
        eager: [0.4, -1.17, 1.8, -0.19999999, 0.22999997, -0.41499996, 0.09, -0.3, 0.06000001],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, momentum=0.9, name="sgd")
        // (max |jit - eager| = 1.12e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.9, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.3667, -1.0782001, 1.4445, -0.26299998, 0.024799976, -0.35109994],
        bias: [-0.012600002, -0.3099, 0.014100025],
        eager: [0.3667, -1.0782001, 1.4445, -0.26299998, 0.024799965, -0.35109994, -0.012600001, -0.3099, 0.0141000245],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
            ("sgd/kernel_momentum", &[2, 3], "float32", &[-0.0963, 0.019800002, -0.16049999, -0.19299999, -0.047200013, 0.2779]),
            ("sgd/bias_momentum", &[3], "float32", &[0.0014000008, -0.098900005, 0.015100009]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, name="sgd")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.9, "nesterov": true}, "registered_name": null}"#,
        kernel: [0.28003, -1.0603801, 1.30005, -0.4367, -0.01768002, -0.10098994],
        bias: [-0.01134, -0.39891002, 0.027690032],
        eager: [0.28003, -1.0603801, 1.3000499, -0.4367, -0.017680064, -0.10098994, -0.01134, -0.39891002, 0.02769003],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
            ("sgd/kernel_momentum", &[2, 3], "float32", &[-0.0963, 0.019800002, -0.16049999, -0.19299999, -0.047200013, 0.2779]),
            ("sgd/bias_momentum", &[3], "float32", &[0.0014000008, -0.098900005, 0.015100009]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=0.1, name="adam")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.32209224, -1.069223, 1.7494602, -0.15792471, 0.18766865, -0.47264257],
        bias: [-0.06585785, -0.22287044, -0.024269614],
        eager: [0.32209224, -1.069223, 1.7494602, -0.15792471, 0.18766865, -0.47264257, -0.06585785, -0.22287045, -0.024269618],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/learning_rate", &[], "float32", &[0.1]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=0.1, beta_1=0.8, beta_2=0.95, epsilon=1e-3, amsgrad=True, name="adam")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 0.001, "amsgrad": true}, "registered_name": null}"#,
        kernel: [0.32620397, -1.0805575, 1.7575011, -0.16451275, 0.19704059, -0.47511852],
        bias: [-0.050336678, -0.23604843, -0.01598631],
        eager: [0.32620394, -1.0805575, 1.7575011, -0.16451275, 0.19704059, -0.47511852, -0.050336674, -0.23604845, -0.015986312],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/learning_rate", &[], "float32", &[0.1]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.1864, -0.022400003, 0.248, 0.372, 0.057600033, -0.5432]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.046461247, 0.040755, 0.17700626, 0.107774995, 0.39788, 0.31983876]),
            ("adam/bias_momentum", &[3], "float32", &[-0.023200003, 0.1952, -0.03680001]),
            ("adam/bias_velocity", &[3], "float32", &[0.028745001, 0.03672625, 0.10695125]),
            ("adam/kernel_velocity_hat", &[2, 3], "float32", &[0.046461247, 0.0429, 0.17700626, 0.107774995, 0.4104, 0.31983876]),
            ("adam/bias_velocity_hat", &[3], "float32", &[0.028745001, 0.03672625, 0.110475]),
        ],
    },
    Golden {
        // O.AdamW(learning_rate=0.1, name="adam_w")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "AdamW", "config": {"name": "adam_w", "learning_rate": 0.10000000149011612, "weight_decay": 0.004, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.32157826, -1.0678705, 1.7471803, -0.15789494, 0.18738958, -0.47190574],
        bias: [-0.06587102, -0.22269075, -0.024257347],
        eager: [0.32157826, -1.0678705, 1.7471803, -0.15789494, 0.18738958, -0.47190574, -0.06587102, -0.22269075, -0.02425735],
        vars: &[
            ("adam_w/iteration", &[], "int32", &[3.0]),
            ("adam_w/learning_rate", &[], "float32", &[0.1]),
            ("adam_w/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam_w/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam_w/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam_w/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.AdamW(learning_rate=0.1, weight_decay=0.2, amsgrad=True, name="adam_w")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "AdamW", "config": {"name": "adam_w", "learning_rate": 0.10000000149011612, "weight_decay": 0.2, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": true}, "registered_name": null}"#,
        kernel: [0.2969372, -1.0029672, 1.6377652, -0.15643646, 0.17402719, -0.436582],
        bias: [-0.06640575, -0.21408033, -0.023637068],
        eager: [0.2969372, -1.0029672, 1.6377652, -0.15643646, 0.17402719, -0.436582, -0.06640575, -0.21408035, -0.023637071],
        vars: &[
            ("adam_w/iteration", &[], "int32", &[3.0]),
            ("adam_w/learning_rate", &[], "float32", &[0.1]),
            ("adam_w/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam_w/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam_w/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam_w/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
            ("adam_w/kernel_velocity_hat", &[2, 3], "float32", &[0.0009397801, 0.0008893601, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam_w/bias_velocity_hat", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=0.1, name="rm_sprop")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": false}, "registered_name": null}"#,
        kernel: [0.06869281, -1.0577446, 1.5952734, -0.5978397, 0.14992906, -0.11213866],
        bias: [-0.0013798414, -0.48157364, -0.053374916],
        eager: [0.06869283, -1.0577446, 1.5952734, -0.5978397, 0.1499291, -0.11213863, -0.0013798326, -0.48157364, -0.05337489],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/learning_rate", &[], "float32", &[0.1]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.09188999, 0.07434, 0.32715, 0.21309999, 0.73294, 0.638185]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.19921]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=0.1, rho=0.8, momentum=0.5, name="rm_sprop")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.8, "momentum": 0.5, "epsilon": 1e-07, "centered": false}, "registered_name": null}"#,
        kernel: [0.09695557, -1.0008066, 1.4766687, -0.53686965, 0.10558971, -0.13335013],
        bias: [-0.13000461, -0.34117872, -0.09696406],
        eager: [0.09695554, -1.0008066, 1.4766686, -0.53686965, 0.10558968, -0.13335013, -0.13000463, -0.34117872, -0.09696406],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/learning_rate", &[], "float32", &[0.1]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.17991999, 0.121920004, 0.5536001, 0.41639996, 1.22912, 1.27088]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.096080005, 0.14368, 0.34208]),
            ("rm_sprop/kernel_momentum", &[2, 3], "float32", &[0.20126551, 0.0081377365, 0.046147846, 0.31326294, 0.01432097, -0.26218933]),
            ("rm_sprop/bias_momentum", &[3], "float32", &[-0.10540536, 0.26229537, -0.0027507022]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=0.1, centered=True, name="rm_sprop")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": true}, "registered_name": null}"#,
        kernel: [0.03573641, -1.0411512, 1.561658, -0.64333946, 0.13276091, -0.075611115],
        bias: [-0.01848143, -0.4935455, -0.0695979],
        eager: [0.03573647, -1.0411512, 1.561658, -0.64333946, 0.1327609, -0.075611115, -0.018481463, -0.49354553, -0.069597915],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/learning_rate", &[], "float32", &[0.1]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.09188999, 0.07434, 0.32715, 0.21309999, 0.73294, 0.638185]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.19921]),
            ("rm_sprop/kernel_average_gradient", &[2, 3], "float32", &[0.0963, -0.019800002, 0.16049999, 0.19299999, 0.047200013, -0.2779]),
            ("rm_sprop/bias_average_gradient", &[3], "float32", &[-0.0014000008, 0.098900005, -0.015100009]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=0.1, momentum=0.5, centered=True, epsilon=1e-4, name="rm_sprop")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.5, "epsilon": 0.0001, "centered": true}, "registered_name": null}"#,
        kernel: [-0.12054102, -0.8787394, 1.2046945, -0.8093525, -0.010745082, 0.15121052],
        bias: [-0.26778173, -0.42501503, -0.1899917],
        eager: [-0.12054102, -0.8787395, 1.2046945, -0.8093525, -0.010745138, 0.15121052, -0.26778173, -0.42501515, -0.1899917],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/learning_rate", &[], "float32", &[0.1]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.09188999, 0.07434, 0.32715, 0.21309999, 0.73294, 0.638185]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.19921]),
            ("rm_sprop/kernel_momentum", &[2, 3], "float32", &[0.30503535, 0.0039279237, 0.08116911, 0.4763965, 0.023676965, -0.3955174]),
            ("rm_sprop/bias_momentum", &[3], "float32", &[-0.13144846, 0.3925146, -0.00115484]),
            ("rm_sprop/kernel_average_gradient", &[2, 3], "float32", &[0.0963, -0.019800002, 0.16049999, 0.19299999, 0.047200013, -0.2779]),
            ("rm_sprop/bias_average_gradient", &[3], "float32", &[-0.0014000008, 0.098900005, -0.015100009]),
        ],
    },
    Golden {
        // O.Adagrad(learning_rate=0.1, name="adagrad")
        // (max |jit - eager| = 2.38e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Adagrad", "config": {"name": "adagrad", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "initial_accumulator_value": 0.1, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.3846259, -1.1572537, 1.8741554, -0.17722683, 0.25244248, -0.5333486],
        bias: [0.070873916, -0.32421803, 0.020996824],
        eager: [0.3846259, -1.1572537, 1.8741554, -0.17722684, 0.25244248, -0.5333486, 0.07087391, -0.32421806, 0.020996822],
        vars: &[
            ("adagrad/iteration", &[], "int32", &[3.0]),
            ("adagrad/learning_rate", &[], "float32", &[0.1]),
            ("adagrad/kernel_accumulator", &[2, 3], "float32", &[1.04, 0.99, 3.92, 2.2799997, 8.71, 6.5125]),
            ("adagrad/bias_accumulator", &[3], "float32", &[0.71000004, 0.84000003, 2.39]),
        ],
    },
    Golden {
        // O.Adagrad(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-3, name="adagrad")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Adagrad", "config": {"name": "adagrad", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "initial_accumulator_value": 0.5, "epsilon": 0.001}, "registered_name": null}"#,
        kernel: [0.41118008, -1.1675001, 1.8831571, -0.14971247, 0.2550602, -0.56185853],
        bias: [0.08277445, -0.2965217, 0.031774666],
        eager: [0.41118008, -1.1675001, 1.8831571, -0.14971247, 0.2550602, -0.56185853, 0.08277446, -0.2965217, 0.03177467],
        vars: &[
            ("adagrad/iteration", &[], "int32", &[3.0]),
            ("adagrad/learning_rate", &[], "float32", &[0.1]),
            ("adagrad/kernel_accumulator", &[2, 3], "float32", &[1.44, 1.39, 4.32, 2.6799998, 9.11, 6.9125]),
            ("adagrad/bias_accumulator", &[3], "float32", &[1.11, 1.24, 2.79]),
        ],
    },
    Golden {
        // O.Adamax(learning_rate=0.1, name="adamax")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adamax", "config": {"name": "adamax", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.3482237, -1.0763608, 1.7743865, -0.10741439, 0.19015157, -0.5181513],
        bias: [-0.04655304, -0.18246026, -0.028246747],
        eager: [0.3482237, -1.0763608, 1.7743865, -0.10741439, 0.19015157, -0.5181513, -0.04655304, -0.18246026, -0.02824675],
        vars: &[
            ("adamax/iteration", &[], "int32", &[3.0]),
            ("adamax/learning_rate", &[], "float32", &[0.1]),
            ("adamax/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adamax/kernel_norm", &[2, 3], "float32", &[0.9, 0.7984008, 1.4970015, 1.3, 2.1956024, 2.5]),
            ("adamax/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adamax/bias_norm", &[3], "float32", &[0.59880066, 0.8, 1.1988001]),
        ],
    },
    Golden {
        // O.Nadam(learning_rate=0.1, name="nadam")
        // (max |jit - eager| = 3.17e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.34459093, -1.1397737, 1.8495421, -0.20032607, 0.24025044, -0.49269873],
        bias: [0.04902651, -0.28984517, 0.009223238],
        eager: [0.34459093, -1.1397737, 1.8495421, -0.20032606, 0.24025044, -0.49269873, 0.049026527, -0.28984517, 0.009223206],
        vars: &[
            ("nadam/iteration", &[], "int32", &[3.0]),
            ("nadam/learning_rate", &[], "float32", &[0.1]),
            ("nadam/kernel_momentum", &[2, 3], "float32", &[0.09630002, -0.019800002, 0.16050003, 0.19300003, 0.047200006, -0.27790007]),
            ("nadam/kernel_velocity", &[2, 3], "float32", &[0.000939768, 0.0008884592, 0.0038142432, 0.0021794818, 0.008596605, 0.0064120954]),
            ("nadam/bias_momentum", &[3], "float32", &[-0.0014000026, 0.09890002, -0.015100012]),
            ("nadam/bias_velocity", &[3], "float32", &[0.00060927257, 0.0007398805, 0.0022869117]),
            ("variable", &[], "float32", &[0.11397993]),
        ],
    },
    Golden {
        // O.Nadam(learning_rate=0.1, beta_1=0.8, beta_2=0.95, epsilon=1e-3, name="nadam")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 0.001}, "registered_name": null}"#,
        kernel: [0.33239344, -1.1377394, 1.8361814, -0.22046009, 0.23828629, -0.47498643],
        bias: [0.047953393, -0.30469513, 0.010166817],
        eager: [0.33239344, -1.1377394, 1.8361814, -0.22046009, 0.23828627, -0.47498643, 0.0479534, -0.30469513, 0.0101668155],
        vars: &[
            ("nadam/iteration", &[], "int32", &[3.0]),
            ("nadam/learning_rate", &[], "float32", &[0.1]),
            ("nadam/kernel_momentum", &[2, 3], "float32", &[0.18639998, -0.022400009, 0.248, 0.37199998, 0.057600033, -0.5432]),
            ("nadam/kernel_velocity", &[2, 3], "float32", &[0.046461258, 0.04075501, 0.17700629, 0.10777502, 0.39788008, 0.31983882]),
            ("nadam/bias_momentum", &[3], "float32", &[-0.023199996, 0.1952, -0.036800012]),
            ("nadam/bias_velocity", &[3], "float32", &[0.028745007, 0.036726262, 0.10695128]),
            ("variable_2", &[], "float32", &[0.080051765]),
        ],
    },
    Golden {
        // O.Adadelta(learning_rate=1.0, name="adadelta")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adadelta", "config": {"name": "adadelta", "learning_rate": 1.0, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.95, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.49759102, -1.1996654, 1.9981207, -0.0031851297, 0.29957485, -0.696872],
        bias: [0.09988807, -0.20304722, 0.04985156],
        eager: [0.49759102, -1.1996654, 1.9981207, -0.0031851297, 0.29957485, -0.696872, 0.09988807, -0.20304722, 0.04985156],
        vars: &[
            ("adadelta/iteration", &[], "int32", &[3.0]),
            ("adadelta/learning_rate", &[], "float32", &[1.0]),
            ("adadelta/kernel_accumulated_grad", &[2, 3], "float32", &[0.046461247, 0.040755, 0.17700626, 0.10777499, 0.39788, 0.31983876]),
            ("adadelta/kernel_accumulated_delta_var", &[2, 3], "float32", &[3.7634683e-07, 1.4561081e-07, 1.8610926e-07, 2.5180734e-07, 1.7950414e-07, 2.8700967e-07]),
            ("adadelta/bias_accumulated_grad", &[3], "float32", &[0.028745001, 0.03672625, 0.10695125]),
            ("adadelta/bias_accumulated_delta_var", &[3], "float32", &[1.7504632e-07, 5.8956414e-07, 2.201624e-07]),
        ],
    },
    Golden {
        // O.Adadelta(learning_rate=0.5, rho=0.8, epsilon=1e-3, name="adadelta")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adadelta", "config": {"name": "adadelta", "learning_rate": 0.5, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.8, "epsilon": 0.001}, "registered_name": null}"#,
        kernel: [0.44235155, -1.1932725, 1.9535671, -0.08005631, 0.28989446, -0.62474215],
        bias: [0.09882558, -0.27129817, 0.046555057],
        eager: [0.44235155, -1.1932725, 1.9535671, -0.08005631, 0.28989446, -0.6247422, 0.09882558, -0.2712982, 0.046555057],
        vars: &[
            ("adadelta/iteration", &[], "int32", &[3.0]),
            ("adadelta/learning_rate", &[], "float32", &[0.5]),
            ("adadelta/kernel_accumulated_grad", &[2, 3], "float32", &[0.17991999, 0.121920004, 0.5536001, 0.41639996, 1.22912, 1.27088]),
            ("adadelta/kernel_accumulated_delta_var", &[2, 3], "float32", &[0.003309133, 0.0011545299, 0.0016175312, 0.0024032898, 0.0014822881, 0.0024306052]),
            ("adadelta/bias_accumulated_grad", &[3], "float32", &[0.096080005, 0.14368, 0.34208]),
            ("adadelta/bias_accumulated_delta_var", &[3], "float32", &[0.0015526591, 0.004236687, 0.0018073559]),
        ],
    },
    Golden {
        // O.Lion(learning_rate=0.1, name="lion")
        // (max |jit - eager| = 1.86e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Lion", "config": {"name": "lion", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.99}, "registered_name": null}"#,
        kernel: [0.4, -1.1, 1.9, -0.2, 0.20000002, -0.59999996],
        bias: [0.0, -0.3, -0.05],
        eager: [0.4, -1.1, 1.9, -0.2, 0.20000002, -0.59999996, 0.0, -0.3, -0.05],
        vars: &[
            ("lion/iteration", &[], "int32", &[3.0]),
            ("lion/learning_rate", &[], "float32", &[0.1]),
            ("lion/kernel_momentum", &[2, 3], "float32", &[0.00996029, -0.0028907978, 0.019591482, 0.01992998, 0.006752196, -0.028425373]),
            ("lion/bias_momentum", &[3], "float32", &[0.0008805994, 0.009989891, -0.0010590992]),
        ],
    },
    Golden {
        // O.Lion(learning_rate=0.1, beta_1=0.5, beta_2=0.7, name="lion")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Lion", "config": {"name": "lion", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.5, "beta_2": 0.7}, "registered_name": null}"#,
        kernel: [0.4, -1.1, 1.6999999, -0.2, 0.20000002, -0.39999998],
        bias: [0.0, -0.3, -0.05],
        eager: [0.4, -1.1, 1.6999999, -0.2, 0.20000002, -0.39999998, 0.0, -0.3, -0.05],
        vars: &[
            ("lion/iteration", &[], "int32", &[3.0]),
            ("lion/learning_rate", &[], "float32", &[0.1]),
            ("lion/kernel_momentum", &[2, 3], "float32", &[0.2721, -0.012599998, 0.27150002, 0.537, 0.04440002, -0.79829997]),
            ("lion/bias_momentum", &[3], "float32", &[-0.061800007, 0.2883, -0.059699997]),
        ],
    },
    Golden {
        // O.Ftrl(learning_rate=0.1, name="ftrl")
        // (max |jit - eager| = 9.54e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0}, "registered_name": null}"#,
        kernel: [0.021887781, -0.716125, 1.4615868, -0.17722684, 0.20975919, -0.09922708],
        bias: [0.024248669, -0.13352554, 0.0044219717],
        eager: [0.02188779, -0.7161251, 1.4615868, -0.17722684, 0.20975918, -0.09922707, 0.024248669, -0.13352555, 0.0044219876],
        vars: &[
            ("ftrl/iteration", &[], "int32", &[3.0]),
            ("ftrl/learning_rate", &[], "float32", &[0.1]),
            ("ftrl/kernel_accumulator", &[2, 3], "float32", &[1.04, 0.99, 3.92, 2.2799997, 8.71, 6.5125]),
            ("ftrl/kernel_linear", &[2, 3], "float32", &[-0.22321245, 7.125354, -28.937944, 2.6760666, -6.190562, 2.5322354]),
            ("ftrl/bias_accumulator", &[3], "float32", &[0.71000004, 0.84000003, 2.39]),
            ("ftrl/bias_linear", &[3], "float32", &[-0.20432293, 1.2237818, -0.06836203]),
        ],
    },
    Golden {
        // O.Ftrl(learning_rate=0.1, learning_rate_power=-0.7, initial_accumulator_value=0.2, l1_regularization_strength=0.01, l2_regularization_strength=0.02, l2_shrinkage_regularization_strength=0.03, beta=0.5, name="ftrl")
        // (max |jit - eager| = 9.54e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.7, "initial_accumulator_value": 0.2, "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02, "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}, "registered_name": null}"#,
        kernel: [-0.01918737, -0.44969466, 1.2118832, -0.10955084, 0.19878788, -0.016524801],
        bias: [0.013643275, -0.07520424, 0.0048675304],
        eager: [-0.01918737, -0.44969466, 1.2118832, -0.10955084, 0.19878788, -0.016524795, 0.013643274, -0.07520424, 0.0048675304],
        vars: &[
            ("ftrl/iteration", &[], "int32", &[3.0]),
            ("ftrl/learning_rate", &[], "float32", &[0.1]),
            ("ftrl/kernel_accumulator", &[2, 3], "float32", &[1.14, 1.09, 4.02, 2.3799999, 8.81, 6.6125]),
            ("ftrl/kernel_linear", &[2, 3], "float32", &[0.31700897, 7.053033, -38.21153, 2.572245, -10.1293335, 0.7132857]),
            ("ftrl/bias_accumulator", &[3], "float32", &[0.81, 0.94000006, 2.49]),
            ("ftrl/bias_linear", &[3], "float32", &[-0.19648424, 1.109194, -0.1267148]),
        ],
    },
    Golden {
        // O.Ftrl(learning_rate=0.1, l1_regularization_strength=0.5, name="ftrl")
        // (max |jit - eager| = 4.77e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.5, "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0}, "registered_name": null}"#,
        kernel: [0.0, -0.65800124, 1.4289706, -0.11213238, 0.18726313, -0.0011690215],
        bias: [0.0, -0.05792261, 0.0],
        eager: [0.0, -0.65800124, 1.4289706, -0.11213238, 0.18726312, -0.0011690167, 0.0, -0.05792261, 0.0],
        vars: &[
            ("ftrl/iteration", &[], "int32", &[3.0]),
            ("ftrl/learning_rate", &[], "float32", &[0.1]),
            ("ftrl/kernel_accumulator", &[2, 3], "float32", &[1.04, 0.99, 3.92, 2.2799997, 8.71, 6.5125]),
            ("ftrl/kernel_linear", &[2, 3], "float32", &[0.40168935, 7.0470295, -28.792173, 2.1931617, -6.0266423, 0.52983296]),
            ("ftrl/bias_accumulator", &[3], "float32", &[0.71000004, 0.84000003, 2.39]),
            ("ftrl/bias_linear", &[3], "float32", &[-0.26200524, 1.0308695, -0.3701918]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, clipnorm=2.0, name="sgd")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": 2.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.4365398, -1.1856089, 1.840268, -0.1445428, 0.27850974, -0.5116836],
        bias: [0.09, -0.3, 0.060000006],
        eager: [0.4365398, -1.1856089, 1.8402681, -0.1445428, 0.27850974, -0.5116836, 0.09, -0.3, 0.06000001],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, global_clipnorm=2.0, name="sgd")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": 2.0, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.43879274, -1.1845783, 1.8560745, -0.13383037, 0.2718571, -0.5207555],
        bias: [0.091662094, -0.265956, 0.067866795],
        eager: [0.43879274, -1.1845783, 1.8560745, -0.13383037, 0.27185708, -0.5207555, 0.091662094, -0.26595598, 0.0678668],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, clipvalue=0.5, name="sgd")
        // (max |jit - eager| = 0)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": 0.5, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.44, -1.2, 1.95, -0.1, 0.26000002, -0.61499995],
        bias: [0.1, -0.27, 0.03],
        eager: [0.44, -1.2, 1.95, -0.1, 0.26000002, -0.61499995, 0.1, -0.27, 0.03],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=0.1, clipnorm=1.0, name="adam")
        // (max |jit - eager| = 3.73e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": 1.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.33390358, -1.0837017, 1.7437402, -0.159676, 0.20451948, -0.47445124],
        bias: [-0.06249099, -0.21749689, -0.036802605],
        eager: [0.33390358, -1.0837017, 1.7437402, -0.159676, 0.20451948, -0.47445124, -0.06249099, -0.21749689, -0.0368026],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/learning_rate", &[], "float32", &[0.1]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.030557292, -0.0039272225, 0.06512976, 0.06931402, 0.003975268, -0.091679074]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.00010576682, 0.0001246185, 0.00053598534, 0.000269682, 0.0012662747, 0.00069467374]),
            ("adam/bias_momentum", &[3], "float32", &[-0.005260072, 0.09437156, -0.0002029397]),
            ("adam/bias_velocity", &[3], "float32", &[0.00055447494, 0.00070722244, 0.001665304]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=0.1, global_clipnorm=1.5, name="adam")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": 1.5, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.33028623, -1.0793536, 1.7452598, -0.15926, 0.1995879, -0.47387254],
        bias: [-0.06802066, -0.2275497, -0.013011783],
        eager: [0.33028623, -1.0793536, 1.7452598, -0.15926002, 0.1995879, -0.47387254, -0.06802066, -0.2275497, -0.013011785],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/learning_rate", &[], "float32", &[0.1]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.04420375, -0.00684127, 0.08764094, 0.09644119, 0.011061977, -0.13094749]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.00021334496, 0.0002356765, 0.0010123035, 0.0005272137, 0.002359445, 0.0014186869]),
            ("adam/bias_momentum", &[3], "float32", &[0.0006034281, 0.048723694, -0.01513522]),
            ("adam/bias_velocity", &[3], "float32", &[0.00014339827, 0.00017199067, 0.00066119316]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, weight_decay=0.05, name="sgd")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": 0.05, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.3927367, -1.1526377, 1.772196, -0.19965, 0.22676696, -0.40492642],
        bias: [0.089105986, -0.29696473, 0.059551504],
        eager: [0.3927367, -1.1526377, 1.772196, -0.19964999, 0.22676693, -0.40492642, 0.089105986, -0.29696473, 0.0595515],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=0.1, weight_decay=0.1, clipvalue=1.0, name="rm_sprop")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.10000000149011612, "weight_decay": 0.1, "clipnorm": null, "global_clipnorm": null, "clipvalue": 1.0, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": false}, "registered_name": null}"#,
        kernel: [0.058317043, -1.0266567, 1.535418, -0.5764968, 0.1157771, -0.11293306],
        bias: [0.0019429835, -0.47891098, -0.07339269],
        eager: [0.058317035, -1.0266567, 1.5354179, -0.5764968, 0.1157771, -0.11293301, 0.0019430071, -0.47891098, -0.07339272],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/learning_rate", &[], "float32", &[0.1]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.09188999, 0.07434, 0.207, 0.1441, 0.18699999, 0.113185]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.15960999]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=O.schedules.ExponentialDecay(0.1, 2, 0.5), weight_decay=0.1, name="adam")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "staircase": false, "name": "ExponentialDecay"}, "registered_name": null}, "weight_decay": 0.1, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.34835088, -1.0559833, 1.7621446, -0.09411063, 0.18804666, -0.5105299],
        bias: [-0.04755656, -0.16831768, -0.033087235],
        eager: [0.34835088, -1.0559833, 1.7621446, -0.09411063, 0.18804666, -0.5105299, -0.04755656, -0.16831768, -0.03308724],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=O.schedules.PiecewiseConstantDecay([1], [0.2, 0.05]), momentum=0.5, name="sgd")
        // (max |jit - eager| = 0)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "config": {"boundaries": [1], "values": [0.2, 0.05], "name": "PiecewiseConstant"}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.5, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.41, -1.07, 1.1750001, -0.27499998, 0.07999995, -0.45000005],
        bias: [-0.08500001, -0.29500002, 0.085000016],
        eager: [0.41, -1.07, 1.1750001, -0.27499998, 0.07999995, -0.45000005, -0.08500001, -0.29500002, 0.085000016],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/kernel_momentum", &[2, 3], "float32", &[-0.04, -0.009999998, -0.155, -0.13499999, 0.059999987, 0.14]),
            ("sgd/bias_momentum", &[3], "float32", &[-0.005000001, -0.065000005, 0.065000005]),
        ],
    },
    Golden {
        // O.Nadam(learning_rate=O.schedules.CosineDecay(0.1, 2), name="nadam")
        // (max |jit - eager| = 2.24e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 2, "alpha": 0.0, "name": "CosineDecay", "warmup_target": null, "warmup_steps": 0}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.41906744, -1.117748, 1.8605955, -0.05108342, 0.2243917, -0.5964827],
        bias: [-0.009884384, -0.14104605, -0.01756734],
        eager: [0.41906744, -1.117748, 1.8605955, -0.051083412, 0.2243917, -0.5964827, -0.009884384, -0.14104603, -0.017567363],
        vars: &[
            ("nadam/iteration", &[], "int32", &[3.0]),
            ("nadam/kernel_momentum", &[2, 3], "float32", &[0.09630002, -0.019800002, 0.16050003, 0.19300003, 0.047200006, -0.27790007]),
            ("nadam/kernel_velocity", &[2, 3], "float32", &[0.000939768, 0.0008884592, 0.0038142432, 0.0021794818, 0.008596605, 0.0064120954]),
            ("nadam/bias_momentum", &[3], "float32", &[-0.0014000026, 0.09890002, -0.015100012]),
            ("nadam/bias_velocity", &[3], "float32", &[0.00060927257, 0.0007398805, 0.0022869117]),
            ("variable_4", &[], "float32", &[0.11397993]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=0.1, loss_scale_factor=128.0, name="adam")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": 128.0, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.32209224, -1.069223, 1.7494602, -0.15792471, 0.18766865, -0.47264257],
        bias: [-0.06585785, -0.22287044, -0.024269614],
        eager: [0.32209224, -1.069223, 1.7494602, -0.15792471, 0.18766865, -0.47264257, -0.06585785, -0.22287045, -0.024269618],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/learning_rate", &[], "float32", &[0.1]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=0.1, clipnorm=2.0, weight_decay=0.01, name="adam")
        // (max |jit - eager| = 7.45e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.10000000149011612, "weight_decay": 0.01, "clipnorm": 2.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.33260918, -1.0803139, 1.7380447, -0.15960225, 0.20381331, -0.4726066],
        bias: [-0.065890655, -0.22242153, -0.024238918],
        eager: [0.33260918, -1.0803139, 1.7380447, -0.15960225, 0.20381331, -0.4726066, -0.065890655, -0.22242153, -0.024238922],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/learning_rate", &[], "float32", &[0.1]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.061114583, -0.007854445, 0.13025951, 0.13862804, 0.007950536, -0.18335815]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.00042306728, 0.000498474, 0.0021439414, 0.001078728, 0.005065099, 0.002778695]),
            ("adam/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.Ftrl(learning_rate=0.1, l2_shrinkage_regularization_strength=0.1, clipnorm=1.0, name="ftrl")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": 1.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.1, "beta": 0.0}, "registered_name": null}"#,
        kernel: [-0.073919944, -0.2103948, 0.75058055, -0.13627464, 0.14102441, 0.104721256],
        bias: [0.024357889, -0.11714071, -0.0028537635],
        eager: [-0.07391993, -0.21039483, 0.75058055, -0.13627464, 0.14102441, 0.10472126, 0.02435789, -0.117140695, -0.0028537635],
        vars: &[
            ("ftrl/iteration", &[], "int32", &[3.0]),
            ("ftrl/learning_rate", &[], "float32", &[0.1]),
            ("ftrl/kernel_accumulator", &[2, 3], "float32", &[0.2057965, 0.22482345, 0.6367649, 0.36976945, 1.3681314, 0.7947142]),
            ("ftrl/kernel_linear", &[2, 3], "float32", &[0.3353363, 0.9975986, -5.989449, 0.8286679, -1.6495223, -0.9335559]),
            ("ftrl/bias_accumulator", &[3], "float32", &[0.6550848, 0.8072981, 1.7676172]),
            ("ftrl/bias_linear", &[3], "float32", &[-0.19714619, 1.0525066, 0.037941292]),
        ],
    },
    Golden {
        // O.Ftrl(learning_rate=0.1, beta=0.3, global_clipnorm=1.0, weight_decay=0.1, name="ftrl")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": 0.10000000149011612, "weight_decay": 0.1, "clipnorm": null, "global_clipnorm": 1.0, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.3}, "registered_name": null}"#,
        kernel: [-0.030118361, -0.14770938, 0.52675724, -0.08315484, 0.10584204, 0.05690952],
        bias: [0.0011598105, -0.047607075, 0.00934438],
        eager: [-0.030118361, -0.1477094, 0.52675724, -0.08315484, 0.10584204, 0.05690952, 0.0011598105, -0.047607075, 0.00934438],
        vars: &[
            ("ftrl/iteration", &[], "int32", &[3.0]),
            ("ftrl/learning_rate", &[], "float32", &[0.1]),
            ("ftrl/kernel_accumulator", &[2, 3], "float32", &[0.19484523, 0.20491983, 0.55057335, 0.33438587, 1.1502044, 0.7305628]),
            ("ftrl/kernel_linear", &[2, 3], "float32", &[0.22330138, 1.11178, -5.4888434, 0.73031664, -1.4526564, -0.6571511]),
            ("ftrl/bias_accumulator", &[3], "float32", &[0.16381112, 0.1764551, 0.3942423]),
            ("ftrl/bias_linear", &[3], "float32", &[-0.0081736, 0.34280217, -0.086705305]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=0.1, momentum=0.5, centered=True, clipnorm=1.5, name="rm_sprop")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": 1.5, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.5, "epsilon": 1e-07, "centered": true}, "registered_name": null}"#,
        kernel: [-0.08393732, -0.91009283, 1.1557304, -0.7925718, 0.026006803, 0.14060968],
        bias: [-0.26848102, -0.39778852, -0.19031234],
        eager: [-0.0839373, -0.91009283, 1.1557302, -0.7925718, 0.026006851, 0.14060956, -0.26848108, -0.39778852, -0.19031236],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/learning_rate", &[], "float32", &[0.1]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.023161426, 0.023652686, 0.10385909, 0.05873026, 0.24490304, 0.15544352]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.19921]),
            ("rm_sprop/kernel_momentum", &[2, 3], "float32", &[0.28722596, 0.014475018, 0.10614384, 0.45923942, 0.006769389, -0.39131314]),
            ("rm_sprop/bias_momentum", &[3], "float32", &[-0.13151819, 0.38930252, -0.0011165142]),
            ("rm_sprop/kernel_average_gradient", &[2, 3], "float32", &[0.04583594, -0.0058908355, 0.09769463, 0.103971034, 0.005962921, -0.13751861]),
            ("rm_sprop/bias_average_gradient", &[3], "float32", &[-0.0014000008, 0.098900005, -0.015100009]),
        ],
    },
    Golden {
        // O.Lion(learning_rate=0.1, weight_decay=0.2, name="lion")
        // (max |jit - eager| = 1.86e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Lion", "config": {"name": "lion", "learning_rate": 0.10000000149011612, "weight_decay": 0.2, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.99}, "registered_name": null}"#,
        kernel: [0.372556, -1.0313903, 1.788344, -0.19800001, 0.18431762, -0.56079435],
        bias: [7.920712e-05, -0.29019842, -0.0509804],
        eager: [0.372556, -1.0313903, 1.788344, -0.19800001, 0.18431762, -0.56079435, 7.920712e-05, -0.29019842, -0.0509804],
        vars: &[
            ("lion/iteration", &[], "int32", &[3.0]),
            ("lion/learning_rate", &[], "float32", &[0.1]),
            ("lion/kernel_momentum", &[2, 3], "float32", &[0.00996029, -0.0028907978, 0.019591482, 0.01992998, 0.006752196, -0.028425373]),
            ("lion/bias_momentum", &[3], "float32", &[0.0008805994, 0.009989891, -0.0010590992]),
        ],
    },
    Golden {
        // O.Adadelta(learning_rate=1.0, clipvalue=0.5, weight_decay=0.01, name="adadelta")
        // (max |jit - eager| = 3.73e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Adadelta", "config": {"name": "adadelta", "learning_rate": 1.0, "weight_decay": 0.01, "clipnorm": null, "global_clipnorm": null, "clipvalue": 0.5, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.95, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.48300937, -1.1643907, 1.9392385, -0.0028322896, 0.28988537, -0.67649454],
        bias: [0.09707559, -0.1968924, 0.047858935],
        eager: [0.48300937, -1.1643907, 1.9392385, -0.0028322898, 0.28988537, -0.67649454, 0.09707559, -0.1968924, 0.047858935],
        vars: &[
            ("adadelta/iteration", &[], "int32", &[3.0]),
            ("adadelta/learning_rate", &[], "float32", &[1.0]),
            ("adadelta/kernel_accumulated_grad", &[2, 3], "float32", &[0.01846125, 0.02315625, 0.03565625, 0.024375001, 0.031156251, 0.01983875]),
            ("adadelta/kernel_accumulated_delta_var", &[2, 3], "float32", &[3.2599525e-07, 1.8768436e-07, 2.9200044e-07, 1.9756249e-07, 2.6408932e-07, 2.1822653e-07]),
            ("adadelta/bias_accumulated_grad", &[3], "float32", &[0.02378125, 0.01722625, 0.02515625]),
            ("adadelta/bias_accumulated_delta_var", &[3], "float32", &[1.9274513e-07, 5.3480966e-07, 2.113414e-07]),
        ],
    },
    Golden {
        // O.Adamax(learning_rate=0.1, global_clipnorm=1.0, name="adamax")
        // (max |jit - eager| = 5.59e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Adamax", "config": {"name": "adamax", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": null, "global_clipnorm": 1.0, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.35379905, -1.0835199, 1.7652124, -0.11091678, 0.2003961, -0.51889485],
        bias: [-0.04816602, -0.18654981, -0.020422626],
        eager: [0.35379905, -1.0835199, 1.7652124, -0.11091678, 0.2003961, -0.51889485, -0.04816602, -0.18654981, -0.02042262],
        vars: &[
            ("adamax/iteration", &[], "int32", &[3.0]),
            ("adamax/learning_rate", &[], "float32", &[0.1]),
            ("adamax/kernel_momentum", &[2, 3], "float32", &[0.02946917, -0.004560846, 0.0584273, 0.06429413, 0.007374652, -0.08729833]),
            ("adamax/kernel_norm", &[2, 3], "float32", &[0.28180093, 0.2637991, 0.49462327, 0.40704575, 0.7254475, 0.78278035]),
            ("adamax/bias_momentum", &[3], "float32", &[0.0004022875, 0.032482464, -0.010090148]),
            ("adamax/bias_norm", &[3], "float32", &[0.1978493, 0.2504897, 0.44887546]),
        ],
    },
    Golden {
        // O.Nadam(learning_rate=0.1, clipnorm=0.5, name="nadam")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.10000000149011612, "weight_decay": null, "clipnorm": 0.5, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.35429353, -1.1479878, 1.8387145, -0.19490609, 0.2503466, -0.4953069],
        bias: [0.054051973, -0.29025298, 0.0010794196],
        eager: [0.3542935, -1.1479878, 1.8387145, -0.19490609, 0.25034657, -0.49530685, 0.054051958, -0.29025298, 0.0010793973],
        vars: &[
            ("nadam/iteration", &[], "int32", &[3.0]),
            ("nadam/learning_rate", &[], "float32", &[0.1]),
            ("nadam/kernel_momentum", &[2, 3], "float32", &[0.0152786495, -0.0019636117, 0.032564882, 0.034657016, 0.001987637, -0.045839548]),
            ("nadam/kernel_velocity", &[2, 3], "float32", &[2.6441365e-05, 3.1154224e-05, 0.0001339946, 6.7419634e-05, 0.00031656463, 0.00017366618]),
            ("nadam/bias_momentum", &[3], "float32", &[-0.00355383, 0.048663855, 0.00026804558]),
            ("nadam/bias_velocity", &[3], "float32", &[0.00014332117, 0.00018884617, 0.0004170733]),
            ("variable_6", &[], "float32", &[0.11397993]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, clipnorm=1.0, weight_decay=0.01, name="sgd")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.10000000149011612, "weight_decay": 0.01, "clipnorm": 1.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.9, "nesterov": true}, "registered_name": null}"#,
        kernel: [0.42874745, -1.156349, 1.7232305, -0.16121425, 0.22405562, -0.49898177],
        bias: [0.0050034598, -0.38546556, -0.009970793],
        eager: [0.42874745, -1.156349, 1.7232305, -0.16121425, 0.22405565, -0.49898177, 0.0050034598, -0.38546553, -0.009970794],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
            ("sgd/learning_rate", &[], "float32", &[0.1]),
            ("sgd/kernel_momentum", &[2, 3], "float32", &[-0.030557293, 0.003927221, -0.06512974, -0.06931402, -0.0039752675, 0.091679074]),
            ("sgd/bias_momentum", &[3], "float32", &[0.005260075, -0.09437156, 0.00020294117]),
        ],
    },
    Golden {
        // O.Adagrad(learning_rate=0.1, weight_decay=0.05, global_clipnorm=2.0, name="adagrad")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Adagrad", "config": {"name": "adagrad", "learning_rate": 0.10000000149011612, "weight_decay": 0.05, "clipnorm": null, "global_clipnorm": 2.0, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "initial_accumulator_value": 0.1, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.39560604, -1.148809, 1.8413095, -0.16512105, 0.255474, -0.53838193],
        bias: [0.07364119, -0.31221396, 0.030373713],
        eager: [0.39560604, -1.148809, 1.8413095, -0.16512105, 0.25547397, -0.53838193, 0.073641196, -0.31221396, 0.030373719],
        vars: &[
            ("adagrad/iteration", &[], "int32", &[3.0]),
            ("adagrad/learning_rate", &[], "float32", &[0.1]),
            ("adagrad/kernel_accumulator", &[2, 3], "float32", &[0.47938088, 0.5196793, 1.9022933, 1.0375434, 4.300818, 2.6222513]),
            ("adagrad/bias_accumulator", &[3], "float32", &[0.3552445, 0.4058204, 1.2769692]),
        ],
    },
    Golden {
        // O.AdamW(learning_rate=O.schedules.CosineDecayRestarts(0.1, 1), name="adam_w")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "AdamW", "config": {"name": "adam_w", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 1, "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0, "name": "SGDRDecay"}, "registered_name": null}, "weight_decay": 0.004, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#,
        kernel: [0.35338417, -1.0747962, 1.7737892, -0.11615378, 0.19257095, -0.50706744],
        bias: [-0.0664573, -0.1859963, -0.02745275],
        eager: [0.35338414, -1.0747962, 1.7737892, -0.11615378, 0.19257095, -0.50706744, -0.0664573, -0.1859963, -0.027452752],
        vars: &[
            ("adam_w/iteration", &[], "int32", &[3.0]),
            ("adam_w/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam_w/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam_w/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam_w/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=O.schedules.InverseTimeDecay(0.1, 1, 0.5), name="rm_sprop")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5, "staircase": false, "name": "InverseTimeDecay"}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": false}, "registered_name": null}"#,
        kernel: [0.15653631, -0.99975395, 1.6072896, -0.35162443, 0.102330536, -0.25484085],
        bias: [-0.10880359, -0.2329325, -0.11685748],
        eager: [0.15653634, -0.99975395, 1.6072896, -0.35162443, 0.10233058, -0.2548408, -0.10880358, -0.2329325, -0.11685747],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.09188999, 0.07434, 0.32715, 0.21309999, 0.73294, 0.638185]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.19921]),
        ],
    },
    Golden {
        // O.Lion(learning_rate=O.schedules.PolynomialDecay(0.1, 2, power=2.0), name="lion")
        // (max |jit - eager| = 1.86e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Lion", "config": {"name": "lion", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 2, "end_learning_rate": 0.0001, "power": 2.0, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.99}, "registered_name": null}"#,
        kernel: [0.424975, -1.124975, 1.875025, -0.025175, 0.22497502, -0.62497497],
        bias: [-0.024975, -0.125175, -0.025025],
        eager: [0.424975, -1.124975, 1.875025, -0.025175, 0.22497502, -0.62497497, -0.024975, -0.125175, -0.025025],
        vars: &[
            ("lion/iteration", &[], "int32", &[3.0]),
            ("lion/kernel_momentum", &[2, 3], "float32", &[0.00996029, -0.0028907978, 0.019591482, 0.01992998, 0.006752196, -0.028425373]),
            ("lion/bias_momentum", &[3], "float32", &[0.0008805994, 0.009989891, -0.0010590992]),
        ],
    },
    Golden {
        // O.Adam(learning_rate=O.schedules.CosineDecay(0.05, 2, alpha=0.1, warmup_target=0.1, warmup_steps=1), amsgrad=True, name="adam")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.05, "decay_steps": 2, "alpha": 0.1, "name": "CosineDecay", "warmup_target": 0.1, "warmup_steps": 1}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": true}, "registered_name": null}"#,
        kernel: [0.40064734, -1.1252646, 1.8230836, -0.12034426, 0.2422959, -0.5541897],
        bias: [-0.016340515, -0.23981664, 0.022859527],
        eager: [0.40064734, -1.1252646, 1.8230836, -0.12034426, 0.2422959, -0.5541897, -0.016340517, -0.23981665, 0.022859523],
        vars: &[
            ("adam/iteration", &[], "int32", &[3.0]),
            ("adam/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adam/kernel_velocity", &[2, 3], "float32", &[0.0009397801, 0.00088847073, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adam/bias_velocity", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
            ("adam/kernel_velocity_hat", &[2, 3], "float32", &[0.0009397801, 0.0008893601, 0.0038142926, 0.00217951, 0.0085967155, 0.0064121783]),
            ("adam/bias_velocity_hat", &[3], "float32", &[0.00060928037, 0.0007398901, 0.002286941]),
        ],
    },
    Golden {
        // O.SGD(learning_rate=O.schedules.ExponentialDecay(0.2, 1, 0.7, staircase=True), name="sgd")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.2, "decay_steps": 1, "decay_rate": 0.7, "staircase": true, "name": "ExponentialDecay"}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#,
        kernel: [0.3798, -1.1100001, 1.6048, -0.22539999, 0.0868, -0.38200003],
        bias: [0.028999994, -0.3004, 0.018400013],
        eager: [0.3798, -1.1100001, 1.6048, -0.2254, 0.08679999, -0.38200003, 0.028999995, -0.30040002, 0.018400017],
        vars: &[
            ("sgd/iteration", &[], "int32", &[3.0]),
        ],
    },
    Golden {
        // O.Adagrad(learning_rate=O.schedules.CosineDecay(0.3, 2), clipnorm=1.0, name="adagrad")
        // (max |jit - eager| = 1.19e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Adagrad", "config": {"name": "adagrad", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.3, "decay_steps": 2, "alpha": 0.0, "name": "CosineDecay", "warmup_target": null, "warmup_steps": 0}, "registered_name": null}, "weight_decay": null, "clipnorm": 1.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "initial_accumulator_value": 0.1, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.44132453, -1.0666877, 1.6520958, -0.10245727, 0.12563752, -0.5865259],
        bias: [-0.16035056, -0.20509242, -0.11956436],
        eager: [0.44132453, -1.0666877, 1.6520958, -0.10245727, 0.12563753, -0.5865259, -0.16035059, -0.20509242, -0.11956436],
        vars: &[
            ("adagrad/iteration", &[], "int32", &[3.0]),
            ("adagrad/kernel_accumulator", &[2, 3], "float32", &[0.2057965, 0.22482345, 0.6367649, 0.36976945, 1.3681314, 0.7947142]),
            ("adagrad/bias_accumulator", &[3], "float32", &[0.6550848, 0.8072981, 1.7676172]),
        ],
    },
    Golden {
        // O.RMSprop(learning_rate=O.schedules.PolynomialDecay(0.1, 2, end_learning_rate=0.01), centered=True, name="rm_sprop")
        // (max |jit - eager| = 5.96e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 2, "end_learning_rate": 0.01, "power": 1.0, "cycle": false, "name": "PolynomialDecay"}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": true}, "registered_name": null}"#,
        kernel: [0.23555946, -0.9626333, 1.5597306, -0.21433377, 0.07907565, -0.3567928],
        bias: [-0.21184768, -0.068177395, -0.14560273],
        eager: [0.2355595, -0.96263325, 1.5597306, -0.21433377, 0.07907564, -0.3567928, -0.21184771, -0.068177395, -0.14560275],
        vars: &[
            ("rm_sprop/iteration", &[], "int32", &[3.0]),
            ("rm_sprop/kernel_velocity", &[2, 3], "float32", &[0.09188999, 0.07434, 0.32715, 0.21309999, 0.73294, 0.638185]),
            ("rm_sprop/bias_velocity", &[3], "float32", &[0.05416, 0.07291, 0.19921]),
            ("rm_sprop/kernel_average_gradient", &[2, 3], "float32", &[0.0963, -0.019800002, 0.16049999, 0.19299999, 0.047200013, -0.2779]),
            ("rm_sprop/bias_average_gradient", &[3], "float32", &[-0.0014000008, 0.098900005, -0.015100009]),
        ],
    },
    Golden {
        // O.Lion(learning_rate=O.schedules.InverseTimeDecay(0.1, 1, 0.5, staircase=True), weight_decay=0.1, name="lion")
        // (max |jit - eager| = 1.86e-09)
        config: r#"{"module": "keras.optimizers", "class_name": "Lion", "config": {"name": "lion", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5, "staircase": true, "name": "InverseTimeDecay"}, "registered_name": null}, "weight_decay": 0.1, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.99}, "registered_name": null}"#,
        kernel: [0.40673816, -1.0916765, 1.8417959, -0.116333336, 0.21104158, -0.6024347],
        bias: [-0.017321702, -0.21319325, -0.033579186],
        eager: [0.40673816, -1.0916765, 1.8417959, -0.116333336, 0.21104158, -0.6024347, -0.017321702, -0.21319325, -0.033579186],
        vars: &[
            ("lion/iteration", &[], "int32", &[3.0]),
            ("lion/kernel_momentum", &[2, 3], "float32", &[0.00996029, -0.0028907978, 0.019591482, 0.01992998, 0.006752196, -0.028425373]),
            ("lion/bias_momentum", &[3], "float32", &[0.0008805994, 0.009989891, -0.0010590992]),
        ],
    },
    Golden {
        // O.Ftrl(learning_rate=O.schedules.CosineDecayRestarts(0.3, 1, t_mul=3.0, alpha=0.1), l1_regularization_strength=0.01, name="ftrl")
        // (max |jit - eager| = 9.54e-07)
        config: r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.3, "first_decay_steps": 1, "t_mul": 3.0, "m_mul": 1.0, "alpha": 0.1, "name": "SGDRDecay"}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0}, "registered_name": null}"#,
        kernel: [-0.15567772, -0.48603752, 0.9479727, -0.43881595, 0.08862597, 0.17444763],
        bias: [-0.032037035, -0.30596605, -0.039112642],
        eager: [-0.15567772, -0.48603752, 0.9479727, -0.43881595, 0.08862598, 0.17444761, -0.032037042, -0.30596602, -0.039112635],
        vars: &[
            ("ftrl/iteration", &[], "int32", &[3.0]),
            ("ftrl/kernel_accumulator", &[2, 3], "float32", &[1.04, 0.99, 3.92, 2.2799997, 8.71, 6.5125]),
            ("ftrl/kernel_linear", &[2, 3], "float32", &[0.69284195, 2.0900052, -8.082646, 2.8598819, -1.1349859, -1.924767]),
            ("ftrl/bias_accumulator", &[3], "float32", &[0.71000004, 0.84000003, 2.39]),
            ("ftrl/bias_linear", &[3], "float32", &[0.12610704, 1.2161183, 0.27007174]),
        ],
    },
    Golden {
        // O.Adadelta(learning_rate=O.schedules.CosineDecay(0.5, 3, alpha=0.2, warmup_target=1.0, warmup_steps=2), name="adadelta")
        // (max |jit - eager| = 2.98e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adadelta", "config": {"name": "adadelta", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {"initial_learning_rate": 0.5, "decay_steps": 3, "alpha": 0.2, "name": "CosineDecay", "warmup_target": 1.0, "warmup_steps": 2}, "registered_name": null}, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.95, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.49801585, -1.2001026, 1.9991283, -0.002831577, 0.29995033, -0.6975155],
        bias: [0.100595176, -0.20327875, 0.050155018],
        eager: [0.49801585, -1.2001026, 1.9991283, -0.002831577, 0.29995033, -0.6975155, 0.100595176, -0.20327875, 0.050155018],
        vars: &[
            ("adadelta/iteration", &[], "int32", &[3.0]),
            ("adadelta/kernel_accumulated_grad", &[2, 3], "float32", &[0.046461247, 0.040755, 0.17700626, 0.10777499, 0.39788, 0.31983876]),
            ("adadelta/kernel_accumulated_delta_var", &[2, 3], "float32", &[3.7634683e-07, 1.4561081e-07, 1.8610926e-07, 2.5180734e-07, 1.7950414e-07, 2.8700967e-07]),
            ("adadelta/bias_accumulated_grad", &[3], "float32", &[0.028745001, 0.03672625, 0.10695125]),
            ("adadelta/bias_accumulated_delta_var", &[3], "float32", &[1.7504632e-07, 5.8956414e-07, 2.201624e-07]),
        ],
    },
    Golden {
        // O.Adamax(learning_rate=O.schedules.PolynomialDecay(0.1, 4, power=0.5, cycle=True), weight_decay=0.05, name="adamax")
        // (max |jit - eager| = 1.49e-08)
        config: r#"{"module": "keras.optimizers", "class_name": "Adamax", "config": {"name": "adamax", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 4, "end_learning_rate": 0.0001, "power": 0.5, "cycle": true, "name": "PolynomialDecay"}, "registered_name": null}, "weight_decay": 0.05, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#,
        kernel: [0.35583812, -1.0664313, 1.7729021, -0.08417943, 0.18967623, -0.52755916],
        bias: [-0.04081013, -0.16229117, -0.031803936],
        eager: [0.35583812, -1.0664313, 1.7729021, -0.08417943, 0.18967623, -0.52755916, -0.04081013, -0.16229117, -0.031803936],
        vars: &[
            ("adamax/iteration", &[], "int32", &[3.0]),
            ("adamax/kernel_momentum", &[2, 3], "float32", &[0.0963, -0.019800007, 0.1605, 0.19299999, 0.04720002, -0.2779]),
            ("adamax/kernel_norm", &[2, 3], "float32", &[0.9, 0.7984008, 1.4970015, 1.3, 2.1956024, 2.5]),
            ("adamax/bias_momentum", &[3], "float32", &[-0.0014000015, 0.0989, -0.015100013]),
            ("adamax/bias_norm", &[3], "float32", &[0.59880066, 0.8, 1.1988001]),
        ],
    },
];

/// `keras.optimizers.serialize(keras.optimizers.get(name))` for each name
/// (the first instance of each class in a fresh process).
#[rustfmt::skip]
const DEFAULTS: &[(&str, &str)] = &[
        ("adadelta", r#"{"module": "keras.optimizers", "class_name": "Adadelta", "config": {"name": "adadelta", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.95, "epsilon": 1e-07}, "registered_name": null}"#),
        ("adagrad", r#"{"module": "keras.optimizers", "class_name": "Adagrad", "config": {"name": "adagrad", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "initial_accumulator_value": 0.1, "epsilon": 1e-07}, "registered_name": null}"#),
        ("adam", r#"{"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#),
        ("adamax", r#"{"module": "keras.optimizers", "class_name": "Adamax", "config": {"name": "adamax", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#),
        ("adamw", r#"{"module": "keras.optimizers", "class_name": "AdamW", "config": {"name": "adam_w", "learning_rate": 0.0010000000474974513, "weight_decay": 0.004, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}"#),
        ("ftrl", r#"{"module": "keras.optimizers", "class_name": "Ftrl", "config": {"name": "ftrl", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0}, "registered_name": null}"#),
        ("lion", r#"{"module": "keras.optimizers", "class_name": "Lion", "config": {"name": "lion", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.99}, "registered_name": null}"#),
        ("nadam", r#"{"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}, "registered_name": null}"#),
        ("rmsprop", r#"{"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rm_sprop", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": false}, "registered_name": null}"#),
        ("sgd", r#"{"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "sgd", "learning_rate": 0.009999999776482582, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "momentum": 0.0, "nesterov": false}, "registered_name": null}"#),
];

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// Compare a dataset with a Keras variable `(path, shape, dtype, values)`.
fn assert_var(i: usize, ds: &H5Dataset, want: &(&str, &[usize], &str, &[f32])) {
    let (path, shape, dtype, values) = *want;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    assert_eq!(ds.shape, shape, "var {i} ({path}): shape");
    assert_eq!(ds.dtype_name(), dtype, "var {i} ({path}): dtype");
    if dtype == "int32" {
        assert_eq!(ds.scalar_i64(), Some(values[0] as i64), "var {i} ({path})");
    } else {
        assert_close(&format!("var {i} ({path})"), &ds.to_f32().unwrap(), values);
    }
}

#[test]
fn every_optimizer_matches_keras() {
    for g in GOLDENS {
        let config = parse(g.config);
        let mut opt = Optimizer::from_config(&config).unwrap();
        assert_eq!(opt.to_config(), config, "to_config round trip");
        opt.build(&shapes());
        let (mut kernel, mut bias) = (K0, B0);
        run_steps(&mut opt, &mut kernel, &mut bias, 0..3);
        let case = g.config;
        assert_close(&format!("kernel of {case}"), &kernel, &g.kernel);
        assert_close(&format!("bias of {case}"), &bias, &g.bias);
        assert_eq!(opt.iterations(), 3);

        // The same steps as Keras's eager `opt.apply`.
        let mut eager = Optimizer::from_config(&config).unwrap();
        eager.set_arithmetic(Arithmetic::Eager);
        eager.build(&shapes());
        let (mut k, mut b) = (K0, B0);
        run_steps(&mut eager, &mut k, &mut b, 0..3);
        let both: Vec<f32> = k.iter().chain(&b).copied().collect();
        assert_close(&format!("eager {case}"), &both, &g.eager);

        // The saved variables: count, order, shapes, dtypes and values.
        let state = opt.state();
        assert_eq!(state.len(), g.vars.len(), "variable count of {case}");
        for (i, (ds, want)) in state.iter().zip(g.vars).enumerate() {
            assert_var(i, ds, want);
        }
        // Keras's variable names (paths without the optimizer scope).
        let names = opt.variable_names(&["kernel", "bias"]);
        // (Nadam's unscoped `variable` gets a numeric suffix per instance.)
        assert_eq!(names.len(), g.vars.len());
        for (name, want) in names.iter().zip(g.vars) {
            let scoped = format!("{}/{name}", opt.instance_name());
            assert!(
                want.0 == scoped || want.0.starts_with(name.as_str()),
                "{} vs {scoped}",
                want.0
            );
        }
    }
}

#[test]
fn resuming_from_saved_state_continues_exactly() {
    for g in GOLDENS {
        let config = parse(g.config);
        let mut first = Optimizer::from_config(&config).unwrap();
        first.build(&shapes());
        let (mut kernel, mut bias) = (K0, B0);
        run_steps(&mut first, &mut kernel, &mut bias, 0..1);
        let saved = first.state();
        let (mut kernel_first, mut bias_first) = (kernel, bias);

        let mut resumed = Optimizer::from_config(&config).unwrap();
        resumed.build(&shapes());
        resumed.load_state(&saved).unwrap();
        assert_eq!(
            resumed.state(),
            saved,
            "load_state -> state of {}",
            g.config
        );
        assert_eq!(resumed.iterations(), 1);
        run_steps(&mut resumed, &mut kernel, &mut bias, 1..3);
        run_steps(&mut first, &mut kernel_first, &mut bias_first, 1..3);
        assert_eq!(resumed.state(), first.state(), "{}", g.config);
        assert_eq!((kernel, bias), (kernel_first, bias_first));
        assert_close("kernel", &kernel, &g.kernel);
        assert_close("bias", &bias, &g.bias);
    }
}

#[test]
fn default_optimizers_serialize_like_keras() {
    assert_eq!(
        DEFAULTS.iter().map(|d| d.0).collect::<Vec<_>>(),
        Optimizer::NAMES
    );
    for &(name, keras) in DEFAULTS {
        let opt = Optimizer::by_name(name).unwrap();
        assert_eq!(opt.to_config(), parse(keras), "{name}");
        assert_eq!(opt.name(), name);
        // The string identifier in a compile_config means the same.
        assert_eq!(Optimizer::from_config(&json!(name)).unwrap(), opt);
        // And so does the serialized object.
        assert_eq!(Optimizer::from_config(&parse(keras)).unwrap(), opt);
    }
    assert_eq!(
        Optimizer::by_name("sgd").unwrap().current_learning_rate(),
        0.01
    );
    assert_eq!(Optimizer::by_name("Adam").unwrap().class_name(), "Adam");
    assert_eq!(
        Optimizer::by_name("RMSPROP").unwrap().class_name(),
        "RMSprop"
    );
    assert_eq!(Optimizer::by_name("AdamW").unwrap().class_name(), "AdamW");
}

#[test]
fn unbuilt_state_layouts() {
    // Variables of a built optimizer without slots: iterations, learning rate.
    let mut sgd = Optimizer::by_name("sgd").unwrap();
    sgd.build(&shapes());
    let state = sgd.state();
    assert_eq!(state.len(), 2);
    assert_eq!(state[0].dtype_name(), "int32");
    assert!(state[0].shape.is_empty());
    assert_eq!(state[1].dtype_name(), "float32");
    assert_eq!(state[1].to_f32().unwrap(), vec![0.01]);
}

fn built(name: &str) -> Optimizer {
    let mut opt = Optimizer::by_name(name).unwrap();
    opt.build(&shapes());
    opt
}

#[test]
fn load_state_errors_name_the_variable() {
    let mut source = built("adam");
    let (mut kernel, mut bias) = (K0, B0);
    run_steps(&mut source, &mut kernel, &mut bias, 0..2);
    let state = source.state();

    // Wrong count.
    let mut opt = built("adam");
    let err = opt.load_state(&state[..5]).unwrap_err().to_string();
    assert!(err.contains("optimizer/vars"), "{err}");
    assert!(
        err.contains("expected 6 optimizer variables for Adam"),
        "{err}"
    );
    assert!(err.contains("found 5 variables"), "{err}");
    let err = built("sgd").load_state(&state).unwrap_err().to_string();
    assert!(
        err.contains("expected 2 optimizer variables for SGD"),
        "{err}"
    );

    // Wrong shape.
    let mut bad = state.clone();
    bad[4] = H5Dataset::from_f32(&[3, 1], &[0.0; 3]);
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "at `optimizer/vars/4`: expected shape [3], found shape [3, 1]"
    );
    let mut bad = state.clone();
    bad[2] = H5Dataset::from_f32(&[3, 2], &[0.0; 6]);
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "at `optimizer/vars/2`: expected shape [2, 3], found shape [3, 2]"
    );

    // Wrong dtypes.
    let mut bad = state.clone();
    bad[0] = H5Dataset::from_f32(&[], &[2.0]);
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert!(
        err.contains("optimizer/vars/0") && err.contains("integer"),
        "{err}"
    );
    let mut bad = state.clone();
    bad[1] = state[0].clone();
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert!(
        err.contains("optimizer/vars/1") && err.contains("float32"),
        "{err}"
    );
    let mut bad = state.clone();
    bad[1] = H5Dataset::from_f32(&[1], &[0.1]);
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "at `optimizer/vars/1`: expected shape [], found shape [1]"
    );

    // Nothing changed by the failed loads.
    assert_eq!(opt, built("adam"));
    opt.load_state(&state).unwrap();
    assert_eq!(opt.state(), state);
    assert_eq!(opt.iterations(), 2);

    // Not built.
    let err = Optimizer::by_name("adam")
        .unwrap()
        .load_state(&state)
        .unwrap_err();
    assert!(err.to_string().contains("built"), "{err}");
}

#[test]
fn unbuilt_store_is_skipped_like_keras() {
    // A compiled but never fitted model saves only iterations and the rate;
    // Keras's `load_own_variables` skips it (count mismatch, with a warning).
    let mut opt = built("adam");
    let unbuilt = vec![
        built("sgd").state()[0].clone(),
        H5Dataset::from_f32(&[], &[0.5]),
    ];
    opt.load_state(&unbuilt).unwrap();
    assert_eq!(opt, built("adam"));
}

#[test]
fn stored_learning_rate_and_overrides() {
    let mut source = built("adam");
    source.set_learning_rate(0.25);
    let (mut kernel, mut bias) = (K0, B0);
    run_steps(&mut source, &mut kernel, &mut bias, 0..1);
    let state = source.state();
    assert_eq!(state[1].to_f32().unwrap(), vec![0.25]);

    // The stored rate replaces the configured one, as in Keras.
    let mut opt = built("adam");
    opt.load_state(&state).unwrap();
    assert_eq!(opt.current_learning_rate(), 0.25);
    assert_eq!(opt.to_config()["config"]["learning_rate"], json!(0.25));

    // An explicit override wins over the stored rate, before or after loading.
    let mut opt = built("adam");
    opt.set_learning_rate(0.5);
    opt.load_state(&state).unwrap();
    assert_eq!(opt.current_learning_rate(), 0.5);
    assert_eq!(opt.iterations(), 1);
    let mut opt = built("adam");
    opt.load_state(&state).unwrap();
    opt.set_learning_rate(0.125);
    assert_eq!(opt.current_learning_rate(), 0.125);
    assert_eq!(opt.state()[1].to_f32().unwrap(), vec![0.125]);
    assert_eq!(opt.to_config()["config"]["learning_rate"], json!(0.125));
}

#[test]
fn schedules_drive_the_rate_and_have_no_variable() {
    let config = json!({
        "class_name": "SGD",
        "config": {"learning_rate": {
            "module": "keras.optimizers.schedules",
            "class_name": "PiecewiseConstantDecay",
            "config": {"boundaries": [1], "values": [0.5, 0.25], "name": "PiecewiseConstant"},
            "registered_name": null
        }}
    });
    let mut opt = Optimizer::from_config(&config).unwrap();
    assert!(matches!(opt.learning_rate(), LearningRate::Schedule(_)));
    opt.build(&shapes());
    assert_eq!(opt.state().len(), 1);
    let (mut kernel, mut bias) = (K0, B0);
    let lrs: Vec<f32> = (0..3)
        .map(|i| {
            let now = opt.current_learning_rate();
            run_steps(&mut opt, &mut kernel, &mut bias, i..i + 1);
            assert_eq!(opt.last_learning_rate(), now);
            now
        })
        .collect();
    assert_eq!(lrs, vec![0.5, 0.5, 0.25]);
    assert_eq!(
        opt.to_config()["config"]["learning_rate"]["class_name"],
        "PiecewiseConstantDecay"
    );

    // Schedule state (no learning-rate variable) loads into the schedule.
    let state = opt.state();
    let mut other = Optimizer::from_config(&config).unwrap();
    other.build(&shapes());
    other.load_state(&state).unwrap();
    assert_eq!(other.iterations(), 3);
    // A constant-rate optimizer expects the rate variable.
    let err = built("sgd").load_state(&[state[0].clone()]);
    assert!(err.is_err());

    // Overriding a schedule with a constant adds the rate variable.
    other.set_learning_rate(0.1);
    let state = other.state();
    assert_eq!(state.len(), 2);
    assert_eq!(state[1].to_f32().unwrap(), vec![0.1]);
    assert_eq!(
        other.to_config()["config"]["learning_rate"],
        json!(f64::from(0.1f32))
    );
    // With an override, state saved under the schedule still loads.
    let mut o = Optimizer::from_config(&config).unwrap();
    o.build(&shapes());
    o.set_learning_rate(0.1);
    o.load_state(&opt.state()).unwrap();
    assert_eq!(o.iterations(), 3);
}

#[test]
fn iterations_keep_int64_when_loaded_as_int64() {
    let mut opt = built("adam");
    let mut state = opt.state();
    state[0] = H5Dataset {
        datatype: hdf5_pure::make_i64_type(),
        shape: Vec::new(),
        raw: 7i64.to_le_bytes().to_vec(),
        attrs: Vec::new(),
    };
    opt.load_state(&state).unwrap();
    assert_eq!(opt.iterations(), 7);
    assert_eq!(opt.state()[0].dtype_name(), "int64");
    assert_eq!(opt.state(), state);
}

#[test]
fn nadam_u_product_is_the_last_variable() {
    let mut opt = built("nadam");
    let state = opt.state();
    assert_eq!(state.len(), 7);
    assert_eq!(state[6].to_f32().unwrap(), vec![1.0]);
    let mut bad = state.clone();
    bad[6] = H5Dataset::from_f32(&[1], &[1.0]);
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "at `optimizer/vars/6`: expected shape [], found shape [1]"
    );
}

#[test]
fn build_is_idempotent_and_accumulators_start_at_their_initial_value() {
    let mut opt = built("adagrad");
    let (mut kernel, mut bias) = (K0, B0);
    run_steps(&mut opt, &mut kernel, &mut bias, 0..1);
    let state = opt.state();
    opt.build(&shapes());
    assert_eq!(opt.state(), state);
    let fresh = built("ftrl").state();
    assert_eq!(fresh[2].to_f32().unwrap(), vec![0.1; 6]); // kernel_accumulator
    assert_eq!(fresh[3].to_f32().unwrap(), vec![0.0; 6]); // kernel_linear
}

fn err_of(v: Value) -> String {
    Optimizer::from_config(&v).unwrap_err().to_string()
}

#[test]
fn config_errors_are_clear() {
    let e = err_of(json!("adafactor"));
    assert!(
        e.starts_with("unsupported optimizer `adafactor` (supported: adadelta,"),
        "{e}"
    );
    let e = Optimizer::by_name("foo").unwrap_err().to_string();
    assert!(e.contains("unsupported optimizer `foo`"), "{e}");
    let e = err_of(json!({"class_name": "Muon", "config": {}}));
    assert!(e.contains("unsupported optimizer `Muon`"), "{e}");
    let e = err_of(json!(3));
    assert!(
        e.contains("expected an optimizer name or serialized optimizer object"),
        "{e}"
    );
    let e = err_of(json!({"config": {}}));
    assert!(e.contains("missing `class_name`"), "{e}");

    let e = err_of(json!({"class_name": "Adam", "config": {"use_ema": true}}));
    assert_eq!(
        e,
        "at `config/use_ema`: unsupported optimizer option `use_ema=true` (supported: use_ema=false)"
    );
    let e = err_of(json!({"class_name": "Adam", "config": {"gradient_accumulation_steps": 4}}));
    assert!(
        e.contains("unsupported optimizer option `gradient_accumulation_steps=4`"),
        "{e}"
    );
    let e = err_of(json!({"class_name": "Adam", "config": {"loss_scale_factor": 3.0}}));
    assert!(
        e.contains("unsupported optimizer option `loss_scale_factor=3`"),
        "{e}"
    );
    let e = err_of(json!({"class_name": "Adam", "config": {"bogus": 1}}));
    assert!(
        e.starts_with("at `config/bogus`: unsupported optimizer argument `bogus` (supported: "),
        "{e}"
    );
    let e = err_of(json!({"class_name": "SGD", "config": {"clipnorm": 1.0, "clipvalue": 1.0}}));
    assert!(e.contains("only one of `clipnorm`"), "{e}");
    let e = err_of(json!({"class_name": "AdamW", "config": {"weight_decay": null}}));
    assert!(e.contains("`weight_decay` of AdamW must be a float"), "{e}");
    let e = err_of(json!({"class_name": "SGD", "config": {"momentum": 1.5}}));
    assert!(e.contains("between [0, 1]"), "{e}");
    let e = err_of(json!({"class_name": "Lion", "config": {"beta_1": 0.0}}));
    assert!(e.contains("(0, 1]"), "{e}");
    let e = err_of(json!({"class_name": "Ftrl", "config": {"learning_rate_power": 0.5}}));
    assert!(
        e.contains("`learning_rate_power` needs to be negative or zero"),
        "{e}"
    );
    let e = err_of(json!({"class_name": "Adam", "config": {"learning_rate": "fast"}}));
    assert!(
        e.starts_with("at `config/learning_rate`: expected a float or"),
        "{e}"
    );
    let e = err_of(json!({"class_name": "Adam", "config": {"beta_1": "x"}}));
    assert_eq!(e, "at `config/beta_1`: expected a number, found \"x\"");
    let e = err_of(json!({"class_name": "Adam", "config": {"learning_rate": {
        "class_name": "Cosine", "config": {}}}}));
    assert!(
        e.starts_with(
            "at `config/learning_rate`: unsupported learning-rate schedule `Cosine` \
             (supported: ExponentialDecay,"
        ),
        "{e}"
    );
    let e = err_of(json!({"class_name": "Adam", "config": {"learning_rate": {
        "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.1, "decay_rate": 0.5}}}}));
    assert_eq!(
        e,
        "at `config/learning_rate/config/decay_steps`: missing `decay_steps`"
    );

    // Accepted: Keras's ignored legacy `decay`, a power-of-two loss scale,
    // gradient_accumulation_steps null, class names in any case.
    let opt = Optimizer::from_config(&json!({"class_name": "adam", "config": {
        "decay": 0.1, "loss_scale_factor": 1024.0, "gradient_accumulation_steps": null}}))
    .unwrap();
    assert_eq!(
        opt.to_config()["config"]["loss_scale_factor"],
        json!(1024.0)
    );
    assert!(opt.to_config()["config"].get("decay").is_none());
}
