//! Shared test helpers: the fixture manifest written by `fixtures/generate.py`
//! (real Keras 3.15.1, JAX backend) and the named tolerances.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Predictions vs Keras's `model.predict` (float32 with a different summation order).
pub const PREDICT_TOL: f32 = 1e-5;
/// Values that should agree to float32 rounding.
pub const CLOSE_TOL: f32 = 1e-6;

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub keras_version: String,
    pub backend: String,
    pub models: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
pub struct Fixture {
    pub name: String,
    pub file: String,
    pub x: String,
    pub y: String,
    pub description: String,
    pub count_params: usize,
    pub trainable_params: usize,
    pub non_trainable_params: usize,
    pub compiled: bool,
    pub has_optimizer_state: bool,
    pub optimizer_iterations: Option<i64>,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn manifest() -> Manifest {
    let path = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).expect("fixtures/manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

impl Fixture {
    pub fn path(&self, rel: &str) -> PathBuf {
        fixtures_dir().join(rel)
    }
    pub fn model_path(&self) -> PathBuf {
        self.path(&self.file)
    }
}

/// Largest difference between two equally long slices, relative to
/// `max(1, |expected|)`: absolute for values up to 1, relative above (an
/// `exp` output of 1706 carries float32 rounding of about 1e-4 on its own).
pub fn max_scaled_diff(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| {
            let d = (a - e).abs() / e.abs().max(1.0);
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0, f32::max)
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Run the kerasrs binary; returns (exit success, stdout, stderr).
pub fn kerasrs(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kerasrs"))
        .args(args)
        .output()
        .expect("run kerasrs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
