//! Speed of inference and loading (issue targets), measured in-process.
//!
//! `cargo bench --bench predict` prints the median of several runs of:
//! - `predict` of 60 000 × 784 float32 rows through the seed model
//!   (784→64→32→10) at batch size 1024 — compare with
//!   `benches/keras_predict.py`, which times Keras-JAX's `model.predict` on the
//!   same data;
//! - opening and validating the seed model (`Model::open`).

use std::path::Path;
use std::time::{Duration, Instant};

use kerasrs::Model;
use ndarray::Array2;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/seed.keras");
    let model = Model::open(&seed).expect("seed model");
    // Deterministic MNIST-like inputs in [0, 1).
    let mut state = 0x2545_f491_u32;
    let x = Array2::from_shape_fn((60_000, 784), |_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / (1u32 << 24) as f32
    })
    .into_dyn();
    let _ = model.predict(x.view(), 1024).unwrap();
    let t = time(9, || model.predict(x.view(), 1024).unwrap());
    println!(
        "predict 60000x784 seed model, batch 1024: {:.4} s (median of 9, {} threads)",
        t.as_secs_f64(),
        rayon::current_num_threads()
    );
    let t = time(21, || Model::open(&seed).unwrap());
    println!(
        "open + validate seed model: {:.2} ms (median of 21)",
        t.as_secs_f64() * 1e3
    );
}
