//! Speed of one training epoch, whole `kerasrs finetune` process included.
//!
//! `cargo bench --bench finetune` writes 60 000 MNIST-shaped samples (784
//! float32 features, 10 classes) to a temporary `.npz`, then times
//! `kerasrs finetune` of the seed model (784→64 L1 → 32 → 10, Adam, sparse
//! categorical cross-entropy) for one epoch at batch size 32 without
//! shuffling. `benches/keras_finetune.py` times Keras-JAX's `fit` on the same
//! workload; `benches/compare.sh` runs both and prints the ratio.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("mnist_like.npz");
    let mut state = 0x9e37_79b9_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let x = Array2::from_shape_fn((60_000, 784), |_| {
        (next() >> 8) as f32 / (1u32 << 24) as f32
    });
    let y = Array1::from_shape_fn(60_000, |_| i64::from(next() % 10));
    let mut npz = NpzWriter::new(std::fs::File::create(&data).expect("create npz"));
    npz.add_array("x", &x).expect("write x");
    npz.add_array("y", &y).expect("write y");
    npz.finish().expect("finish npz");

    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/seed.keras");
    let out = dir.path().join("out.keras");
    let run = || {
        let t = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_kerasrs"))
            .arg("finetune")
            .arg(&seed)
            .arg("--data")
            .arg(&data)
            .args([
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--no-shuffle",
                "--quiet",
            ])
            .arg("--output")
            .arg(&out)
            .status()
            .expect("run kerasrs");
        assert!(status.success());
        t.elapsed()
    };
    run();
    let mut times: Vec<Duration> = (0..5).map(|_| run()).collect();
    times.sort();
    println!(
        "kerasrs finetune, seed model, 60000x784, 1 epoch, batch 32 (whole process): {:.3} s (median of 5)",
        times[2].as_secs_f64()
    );
}
