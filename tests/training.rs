//! Fine-tuning against real Keras: for every case in
//! `fixtures/training/manifest.json` (made by `fixtures/generate_training.py`
//! with Keras 3.15.1 on JAX), `kerasrs finetune --no-shuffle` from the
//! `before` archive must end within 1e-5 of the weights and optimizer state
//! Keras's `model.fit(..., shuffle=False)` saved in `after`, with the same
//! iterations and the same per-epoch history.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{compare_history, compare_weights, fixtures_dir, kerasrs};
use kerasrs::KerasFile;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    keras_version: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Fit {
    epochs: usize,
    batch_size: usize,
    validation_split: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    before: String,
    after: String,
    data: String,
    fit: Fit,
    history: BTreeMap<String, Vec<f64>>,
    iterations_after: i64,
    #[serde(default)]
    cli: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    compile: Option<BTreeMap<String, serde_json::Value>>,
}

fn manifest() -> Manifest {
    let path = fixtures_dir().join("training/manifest.json");
    let text = std::fs::read_to_string(path).expect("fixtures/training/manifest.json");
    serde_json::from_str(&text).expect("training manifest parses")
}

fn flag_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn finetune_args(case: &Case, out: &Path, history: &Path) -> Vec<String> {
    let f = |rel: &str| fixtures_dir().join(rel).to_string_lossy().into_owned();
    let mut args = vec![
        "finetune".to_string(),
        f(&case.before),
        "--data".into(),
        f(&case.data),
        "--epochs".into(),
        case.fit.epochs.to_string(),
        "--batch-size".into(),
        case.fit.batch_size.to_string(),
        "--no-shuffle".into(),
        "--quiet".into(),
        "--output".into(),
        out.to_string_lossy().into_owned(),
        "--history".into(),
        history.to_string_lossy().into_owned(),
    ];
    if let Some(split) = case.fit.validation_split {
        args.extend(["--validation-split".into(), split.to_string()]);
    }
    if let Some(compile) = &case.compile {
        for (key, flag) in [
            ("optimizer", "--optimizer"),
            ("loss", "--loss"),
            ("learning_rate", "--learning-rate"),
        ] {
            if let Some(v) = compile.get(key) {
                args.extend([flag.to_string(), flag_value(v)]);
            }
        }
    }
    for (key, v) in &case.cli {
        args.extend([format!("--{}", key.replace('_', "-")), flag_value(v)]);
    }
    args
}

#[test]
fn finetune_matches_keras_fit() {
    let m = manifest();
    assert_eq!(m.keras_version, "3.15.1");
    assert!(!m.cases.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in &m.cases {
        let out = dir.path().join(format!("{}.keras", case.name));
        let hist = dir.path().join(format!("{}.csv", case.name));
        let args = finetune_args(case, &out, &hist);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, stderr) = kerasrs(&argv);
        if !ok {
            failures.push(format!("{}: finetune failed: {stderr}", case.name));
            continue;
        }
        let ours = KerasFile::open(&out).unwrap();
        let keras = KerasFile::open(fixtures_dir().join(&case.after)).unwrap();
        // A LossScaleOptimizer's own counter stays 0 (Keras never updates
        // it); its inner optimizer's counts the steps.
        let counter = if ours
            .weights
            .group("optimizer/inner_optimizer/vars")
            .is_some()
        {
            "optimizer/inner_optimizer/vars"
        } else {
            "optimizer/vars"
        };
        let iterations = ours
            .weights
            .group(counter)
            .and_then(|v| v.dataset("0"))
            .and_then(|d| d.scalar_i64());
        if iterations != Some(case.iterations_after) {
            failures.push(format!(
                "{}: iterations {iterations:?} vs {}",
                case.name, case.iterations_after
            ));
        }
        if let Err(e) = compare_weights(&ours.weights, &keras.weights) {
            failures.push(format!("{}: {e}", case.name));
        }
        if let Err(e) = compare_history(&case.history, &std::fs::read_to_string(&hist).unwrap()) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    println!(
        "{} training cases, {} failures",
        m.cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Keras:\n{}",
        failures.len(),
        m.cases.len(),
        failures.join("\n")
    );
}

/// The dense weights of a model archive, layer by layer.
fn dense_weights(path: &Path) -> Vec<Vec<f32>> {
    let model = kerasrs::Model::open(path).unwrap();
    model
        .layers
        .iter()
        .filter_map(|l| l.dense())
        .flat_map(|d| {
            let mut w = vec![d.kernel.iter().copied().collect::<Vec<f32>>()];
            w.extend(d.bias.as_ref().map(|b| b.to_vec()));
            w
        })
        .collect()
}

/// The same data stored in every layout kerasrs reads — `.npz` members whose
/// values lie at each byte alignment in the file (used where they lie),
/// `.npy` files (mapped), a compressed `.npz` (inflated into memory) — trains
/// to the same weights, bit for bit, in order and shuffled, with the same
/// validation history.
#[test]
fn data_layout_does_not_change_training() {
    use ndarray::{Array1, Array2};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = Array2::from_shape_fn((200, 784), |(i, j)| ((i * 131 + j * 71) % 97) as f32 / 97.0);
    let y = Array1::from_shape_fn(200, |i| ((i * 7) % 10) as i64);
    let mut sources: Vec<Vec<String>> = Vec::new();
    for (name, compressed) in [
        ("x", false),
        ("xy", false),
        ("xyz", false),
        ("wxyz", false),
        ("x", true),
    ] {
        let p = d.join(format!("{name}-{compressed}.npz"));
        let file = std::fs::File::create(&p).unwrap();
        let mut npz = if compressed {
            ndarray_npy::NpzWriter::new_compressed(file)
        } else {
            ndarray_npy::NpzWriter::new(file)
        };
        npz.add_array(name, &x).unwrap();
        npz.add_array("labels", &y).unwrap();
        npz.finish().unwrap();
        let p = p.to_str().unwrap().to_string();
        sources.push(vec![
            "--data".into(),
            p,
            "--x-key".into(),
            name.into(),
            "--y-key".into(),
            "labels".into(),
        ]);
    }
    let (xp, yp) = (d.join("x.npy"), d.join("y.npy"));
    ndarray_npy::write_npy(&xp, &x).unwrap();
    ndarray_npy::write_npy(&yp, &y).unwrap();
    sources.push(vec![
        "--x".into(),
        xp.to_str().unwrap().into(),
        "--y".into(),
        yp.to_str().unwrap().into(),
    ]);
    let seed_model = common::fixtures_dir().join("models/seed.keras");
    for order in [vec!["--no-shuffle"], vec!["--seed", "5"]] {
        let mut first: Option<Vec<Vec<f32>>> = None;
        for (i, source) in sources.iter().enumerate() {
            let out = d.join(format!("out-{i}.keras"));
            let mut args = vec!["finetune", seed_model.to_str().unwrap()];
            args.extend(source.iter().map(String::as_str));
            args.extend([
                "--epochs",
                "2",
                "--quiet",
                "--output",
                out.to_str().unwrap(),
            ]);
            args.extend(order.iter().copied());
            let (ok, _, err) = common::kerasrs(&args);
            assert!(ok, "{args:?}: {err}");
            let w = dense_weights(&out);
            match &first {
                None => first = Some(w),
                Some(f) => assert!(*f == w, "{order:?}: {source:?} trained to other weights"),
            }
        }
    }
}

/// SIGTERM (as `kill`, a container stop or a closed terminal's SIGHUP send)
/// is treated as Ctrl-C: training stops after the current batch, the
/// command fails with one `error:` line, and nothing is left behind (no
/// output, no temporary file).
#[cfg(unix)]
#[test]
fn sigterm_stops_training_cleanly() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    for signal in ["TERM", "HUP"] {
        let child = Command::new(env!("CARGO_BIN_EXE_kerasrs"))
            .args([
                "finetune",
                fixtures_dir().join("models/digits.keras").to_str().unwrap(),
                "--data",
                fixtures_dir().join("digits.npz").to_str().unwrap(),
                "--epochs",
                "100000",
                "--quiet",
                "--output",
                out.to_str().unwrap(),
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{signal}: {stderr}");
        assert!(
            output.status.code().is_some(),
            "{signal}: killed, not stopped: {stderr}"
        );
        assert_eq!(stderr.matches("error:").count(), 1, "{signal}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{signal}: left {left:?}");
    }
}

/// `finetune --csv` on the data of a Keras fit written as CSV
/// (`fixtures/shrink/adam_l1_sparse_ce.csv`, made by
/// `fixtures/generate_shrink.py` from `training/adam_l1_sparse_ce.data.npz`
/// with 9 significant digits, which `np.loadtxt(dtype=float32)` reads back
/// bit for bit) ends where Keras's `fit(shuffle=False)` did, and records the
/// CSV header as the model's feature names.
#[test]
fn finetune_csv_matches_keras_fit() {
    let m = manifest();
    let case = m
        .cases
        .iter()
        .find(|c| c.name == "adam_l1_sparse_ce")
        .expect("case adam_l1_sparse_ce");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("csv.keras");
    let hist = dir.path().join("csv.history.csv");
    let mut args = finetune_args(case, &out, &hist);
    let at = args.iter().position(|a| a == "--data").unwrap();
    args[at] = "--csv".into();
    args[at + 1] = fixtures_dir()
        .join("shrink/adam_l1_sparse_ce.csv")
        .to_string_lossy()
        .into_owned();
    args.extend(["--target".into(), "label".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, stderr) = kerasrs(&argv);
    assert!(ok, "{stderr}");
    let ours = KerasFile::open(&out).unwrap();
    let keras = KerasFile::open(fixtures_dir().join(&case.after)).unwrap();
    compare_weights(&ours.weights, &keras.weights).unwrap();
    compare_history(&case.history, &std::fs::read_to_string(&hist).unwrap()).unwrap();
    let names = kerasrs::Model::open(&out).unwrap().feature_names().unwrap();
    assert_eq!(names, ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"]);
    // A bad cell is named by row and column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "f0,f1,f2,f3,f4,f5,f6,f7,label\n1,2,3,4,5,6,7,8,0\n1,2,x,4,5,6,7,8,1\n",
    )
    .unwrap();
    let bad_out = dir.path().join("bad.keras");
    let (ok, _, stderr) = kerasrs(&[
        "finetune",
        &fixtures_dir().join(&case.before).to_string_lossy(),
        "--csv",
        &bad.to_string_lossy(),
        "--target",
        "label",
        "--output",
        &bad_out.to_string_lossy(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("expected a number at row 2 (line 3), column `f2`, found `x`"),
        "{stderr}"
    );
    assert!(!bad_out.exists());
}
