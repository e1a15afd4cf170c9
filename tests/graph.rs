//! Graph models against real Keras: for every case in
//! `fixtures/graph/manifest.json` (made by `fixtures/generate_graph.py` with
//! Keras 3.15.1 on JAX) `kerasrs predict` on the case's inputs must match
//! Keras's `model.predict` within 1e-5, parameter counts must equal Keras's,
//! and — for cases without training-time randomness — `kerasrs finetune
//! --no-shuffle` must end within 1e-5 of every weight (BatchNormalization's
//! moving statistics included) and optimizer variable Keras's `fit` saved,
//! with the same iterations and per-epoch history.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{PREDICT_TOL, fixtures_dir, kerasrs, max_scaled_diff};
use kerasrs::KerasFile;
use kerasrs::archive::{H5Group, H5Node, NumericType};
use serde::Deserialize;

/// Weights and optimizer state after training (max abs difference).
const TRAINING_TOL: f32 = 1e-5;
/// Per-epoch losses and metrics (relative difference).
const HISTORY_TOL: f64 = 1e-5;

#[derive(Debug, Deserialize)]
struct Manifest {
    keras_version: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Fit {
    epochs: usize,
    batch_size: usize,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    before: String,
    x: String,
    y: String,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    fit: Option<Fit>,
    #[serde(default)]
    history: BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    iterations_after: Option<i64>,
    output_names: Vec<String>,
    count_params: usize,
    trainable_params: usize,
    non_trainable_params: usize,
    #[serde(default)]
    predict_only: bool,
}

fn manifest() -> Manifest {
    let path = fixtures_dir().join("graph/manifest.json");
    let text = std::fs::read_to_string(path).expect("fixtures/graph/manifest.json");
    serde_json::from_str(&text).expect("graph manifest parses")
}

fn path(rel: &str) -> String {
    fixtures_dir().join(rel).to_string_lossy().into_owned()
}

fn npz(path: &Path) -> BTreeMap<String, ndarray::ArrayD<f32>> {
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let names = npz.names().unwrap();
    names
        .into_iter()
        .map(|n| {
            let a: ndarray::ArrayD<f32> = npz.by_name(&n).unwrap();
            (n.trim_end_matches(".npy").to_string(), a)
        })
        .collect()
}

fn datasets<'a>(
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

fn compare_weights(ours: &H5Group, keras: &H5Group) -> Result<(), String> {
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
                let d = common::max_abs_diff(&va, &vb);
                if d.is_nan() || d > TRAINING_TOL {
                    return Err(format!("{path}: max |Δ| = {d}"));
                }
            }
            _ => {
                if da.scalar_i64() != db.scalar_i64() {
                    return Err(format!(
                        "{path}: {:?} vs {:?}",
                        da.scalar_i64(),
                        db.scalar_i64()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn compare_history(case: &Case, csv: &str) -> Result<(), String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    for (key, expected) in &case.history {
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

/// `kerasrs predict` on the case's inputs (an `.npz` named after the
/// inputs) equals Keras's `model.predict`, output by output.
fn check_predict(case: &Case, dir: &Path) -> Result<(), String> {
    let out = dir.join(format!("{}.pred.npz", case.name));
    let (ok, _, stderr) = kerasrs(&[
        "predict",
        &path(&case.before),
        "--input",
        &path(&case.x),
        "--output",
        out.to_str().unwrap(),
    ]);
    if !ok {
        return Err(format!("predict failed: {stderr}"));
    }
    let ours = npz(&out);
    let keras = npz(&fixtures_dir().join(&case.y));
    for name in &case.output_names {
        let (Some(a), Some(b)) = (ours.get(name), keras.get(name)) else {
            return Err(format!("output `{name}` missing (ours {:?})", ours.keys()));
        };
        if a.shape() != b.shape() {
            return Err(format!(
                "output `{name}`: shape {:?} vs {:?}",
                a.shape(),
                b.shape()
            ));
        }
        let d = max_scaled_diff(a.as_slice().unwrap(), b.as_slice().unwrap());
        if d > PREDICT_TOL {
            return Err(format!("output `{name}`: max scaled |Δ| = {d}"));
        }
    }
    Ok(())
}

fn check_counts(case: &Case) -> Result<(), String> {
    let (ok, stdout, stderr) = kerasrs(&["load", &path(&case.before), "--json"]);
    if !ok {
        return Err(format!("load failed: {stderr}"));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| e.to_string())?;
    let got = (
        v["total_params"].as_u64().unwrap_or(0) as usize,
        v["trainable_params"].as_u64().unwrap_or(0) as usize,
        v["non_trainable_params"].as_u64().unwrap_or(0) as usize,
    );
    let want = (
        case.count_params,
        case.trainable_params,
        case.non_trainable_params,
    );
    if got != want {
        return Err(format!(
            "params (total, trainable, non-trainable) {got:?} vs keras {want:?}"
        ));
    }
    Ok(())
}

fn check_fit(case: &Case, dir: &Path) -> Result<(), String> {
    let (Some(after), Some(data), Some(fit)) = (&case.after, &case.data, &case.fit) else {
        return Err("a trainable case needs after, data and fit".into());
    };
    let out = dir.join(format!("{}.keras", case.name));
    let hist = dir.join(format!("{}.csv", case.name));
    let args = [
        "finetune".to_string(),
        path(&case.before),
        "--data".into(),
        path(data),
        "--epochs".into(),
        fit.epochs.to_string(),
        "--batch-size".into(),
        fit.batch_size.to_string(),
        "--no-shuffle".into(),
        "--quiet".into(),
        "--output".into(),
        out.to_string_lossy().into_owned(),
        "--history".into(),
        hist.to_string_lossy().into_owned(),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, stderr) = kerasrs(&argv);
    if !ok {
        return Err(format!("finetune failed: {stderr}"));
    }
    let ours = KerasFile::open(&out).map_err(|e| e.to_string())?;
    let keras = KerasFile::open(fixtures_dir().join(after)).map_err(|e| e.to_string())?;
    let iterations = ours
        .weights
        .group("optimizer/vars")
        .and_then(|v| v.dataset("0"))
        .and_then(|d| d.scalar_i64());
    if iterations != case.iterations_after {
        return Err(format!(
            "iterations {iterations:?} vs {:?}",
            case.iterations_after
        ));
    }
    compare_weights(&ours.weights, &keras.weights)?;
    compare_history(
        case,
        &std::fs::read_to_string(&hist).map_err(|e| e.to_string())?,
    )
}

#[test]
fn graph_models_match_keras() {
    let m = manifest();
    assert_eq!(m.keras_version, "3.15.1");
    assert!(!m.cases.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut fits = 0;
    for case in &m.cases {
        for result in [check_counts(case), check_predict(case, dir.path())] {
            if let Err(e) = result {
                failures.push(format!("{}: {e}", case.name));
            }
        }
        if !case.predict_only {
            fits += 1;
            if let Err(e) = check_fit(case, dir.path()) {
                failures.push(format!("{} (fit): {e}", case.name));
            }
        }
    }
    println!(
        "{} graph cases ({fits} fits), {} failures",
        m.cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
