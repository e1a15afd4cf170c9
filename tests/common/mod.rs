//! Shared test helpers: the fixture manifest written by `fixtures/generate.py`
//! (real Keras 3.15.1, JAX backend) and the named tolerances.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kerasrs::archive::{H5Group, H5Node, NumericType};

use serde::Deserialize;

/// Predictions vs Keras's `model.predict` (float32 with a different summation order).
pub const PREDICT_TOL: f32 = 1e-5;
/// Values that should agree to float32 rounding.
pub const CLOSE_TOL: f32 = 1e-6;
/// Weights and optimizer state after training (max abs difference).
pub const TRAINING_TOL: f32 = 1e-5;
/// Per-epoch losses and metrics (relative difference).
pub const HISTORY_TOL: f64 = 1e-5;

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

/// Every dataset of a tree with its path.
pub fn datasets<'a>(
    g: &'a H5Group,
    prefix: &str,
    out: &mut BTreeMap<String, &'a kerasrs::archive::H5Dataset>,
) {
    for (name, node) in &g.children {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        match node {
            H5Node::Group(sub) => datasets(sub, &path, out),
            H5Node::Dataset(d) => {
                out.insert(path, d);
            }
        }
    }
}

pub fn compare_weights(ours: &H5Group, keras: &H5Group) -> Result<(), String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    datasets(ours, "", &mut a);
    datasets(keras, "", &mut b);
    let names_a: Vec<_> = a.keys().collect();
    let names_b: Vec<_> = b.keys().collect();
    if names_a != names_b {
        return Err(format!(
            "datasets differ: ours {names_a:?}, keras {names_b:?}"
        ));
    }
    for (path, da) in &a {
        let db = b[path];
        if da.shape != db.shape {
            return Err(format!("{path}: shape {:?} vs {:?}", da.shape, db.shape));
        }
        match (da.numeric_type(), db.numeric_type()) {
            (Some(NumericType::F32), Some(NumericType::F32)) => {
                let (va, vb) = (da.to_f32().unwrap(), db.to_f32().unwrap());
                let d = max_abs_diff(&va, &vb);
                if d.is_nan() || d > TRAINING_TOL {
                    return Err(format!("{path}: max |Δ| = {d}"));
                }
            }
            _ => {
                if da.scalar_i64() != db.scalar_i64() || da.dtype_name() != db.dtype_name() {
                    return Err(format!(
                        "{path}: {} {:?} vs {} {:?}",
                        da.dtype_name(),
                        da.scalar_i64(),
                        db.dtype_name(),
                        db.scalar_i64()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A history CSV written by `--history` against Keras's `history.history`
/// (relative difference per epoch).
pub fn compare_history(history: &BTreeMap<String, Vec<f64>>, csv: &str) -> Result<(), String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    for (key, expected) in history {
        let col = header
            .iter()
            .position(|h| h == key)
            .ok_or_else(|| format!("history has no `{key}` (has {header:?})"))?;
        for (epoch, want) in expected.iter().enumerate() {
            let got = rows[epoch][col];
            let rel = (got - want).abs() / want.abs().max(1e-3);
            if rel > HISTORY_TOL {
                return Err(format!("{key} epoch {}: {got} vs keras {want}", epoch + 1));
            }
        }
    }
    Ok(())
}
