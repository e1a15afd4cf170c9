//! Graph models against real Keras: for every case in
//! `fixtures/graph/manifest.json` (made by `fixtures/generate_graph.py` with
//! Keras 3.15.1 on JAX; image models: `fixtures/conv/` and `fixtures/pool/`,
//! same format, from `generate_conv.py` and `generate_pool.py`),
//! `kerasrs predict` on the case's inputs must match
//! Keras's `model.predict` within 1e-5, parameter counts must equal Keras's,
//! and — for cases without training-time randomness — `kerasrs finetune
//! --no-shuffle` must end within 1e-5 of every weight (BatchNormalization's
//! moving statistics included) and optimizer variable Keras's `fit` saved,
//! with the same iterations and per-epoch history.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{
    PREDICT_TOL, compare_history, compare_weights, datasets, fixtures_dir, kerasrs, max_scaled_diff,
};
use kerasrs::KerasFile;
use kerasrs::archive::NumericType;
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

/// The manifest of one suite (`graph`, `conv`, `pool`: same format).
fn manifest_of(suite: &str) -> Manifest {
    let path = fixtures_dir().join(format!("{suite}/manifest.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixtures/{suite}/manifest.json: {e}"));
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
        &case.history,
        &std::fs::read_to_string(&hist).map_err(|e| e.to_string())?,
    )
}

/// Every case of a suite: counts, predictions and (unless predict-only)
/// the fit, each against Keras.
fn suite_matches_keras(suite: &str) {
    let m = manifest_of(suite);
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
        "{} {suite} cases ({fits} fits), {} failures",
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

#[test]
fn graph_models_match_keras() {
    suite_matches_keras("graph");
}

/// Text and sequence models (`fixtures/seq/`, from `generate_seq.py`):
/// Embedding, Masking, SimpleRNN/LSTM/GRU, Bidirectional, TimeDistributed.
#[test]
fn seq_models_match_keras() {
    suite_matches_keras("seq");
}

/// A masked model output: `kerasrs evaluate` weighs the loss and the metrics
/// by the mask, as Keras's `evaluate` does (`<case>.evaluate.json`, written by
/// `generate_seq.py`); `fit`'s loss is masked too (the suite above), its
/// metrics are not (as in Keras-JAX's `train_step`).
#[test]
fn masked_outputs_evaluate_like_keras() {
    let dir = fixtures_dir().join("seq");
    for name in ["masked_sequence_labels", "masked_sequence_regression"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.evaluate.json"))).unwrap();
        let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        let model = dir.join(format!("{name}.after.keras"));
        let data = dir.join(format!("{name}.data.npz"));
        let batch = expected["batch_size"].to_string();
        let (ok, out, err) = kerasrs(&[
            "evaluate",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--batch-size",
            &batch,
            "--json",
        ]);
        assert!(ok, "{name}: {err}");
        let ours: serde_json::Value = serde_json::from_str(&out).unwrap();
        let logs = expected["logs"].as_object().unwrap();
        assert_eq!(ours.as_object().unwrap().len(), logs.len(), "{name}: {out}");
        for (key, want) in logs {
            let want = want.as_f64().unwrap();
            let got = ours[key].as_f64().unwrap_or(f64::NAN);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{name}: {key} {got} vs keras {want}"
            );
        }
    }
}

#[test]
fn conv_models_match_keras() {
    suite_matches_keras("conv");
}

/// The attention layers and the keras-io attention models
/// (`fixtures/generate_attn.py`).
#[test]
fn attn_models_match_keras() {
    suite_matches_keras("attn");
}

fn weights_of(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let file = KerasFile::open(path).unwrap();
    let mut all = BTreeMap::new();
    datasets(&file.weights, "", &mut all);
    all.into_iter()
        .filter(|(p, d)| p.starts_with("layers/") && d.numeric_type() == Some(NumericType::F32))
        .map(|(p, d)| (p, d.to_f32().unwrap()))
        .collect()
}

/// The models of Keras's guides (a two-input residual MLP with a shared
/// layer, the two-output "ticket" model, a BN + LN MLP) work end to end:
/// `load`, `convert` (weights bit-identical, config value-equal), `prune`
/// (exact zeros in every Dense kernel below the threshold, nothing else
/// changed), `sparsity --json`, `evaluate` and `predict` of the pruned file.
#[test]
fn guide_models_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["residual_shared_mlp", "ticket_two_outputs", "bn_ln_mlp"] {
        let before = fixtures_dir().join(format!("graph/{name}.before.keras"));
        let b = before.to_str().unwrap();
        let (ok, stdout, err) = kerasrs(&["load", b]);
        assert!(ok && stdout.contains("Connected to"), "{name}: {err}");

        let converted = dir.path().join(format!("{name}.converted.keras"));
        let (ok, _, err) = kerasrs(&["convert", b, "--output", converted.to_str().unwrap()]);
        assert!(ok, "{name}: {err}");
        assert_eq!(
            weights_of(&converted),
            weights_of(&before),
            "{name}: convert"
        );
        let (c1, c2) = (
            KerasFile::open(&converted).unwrap(),
            KerasFile::open(&before).unwrap(),
        );
        assert_eq!(c1.config, c2.config, "{name}: config changed");

        let pruned = dir.path().join(format!("{name}.pruned.keras"));
        let (ok, _, err) = kerasrs(&[
            "prune",
            b,
            "--threshold",
            "0.1",
            "--output",
            pruned.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");
        let model = kerasrs::Model::open(&before).unwrap();
        let kernels: Vec<String> = model
            .layers
            .iter()
            .filter(|l| l.dense().is_some())
            .map(|l| format!("{}/vars/0", l.weight_path.as_deref().unwrap()))
            .collect();
        assert!(!kernels.is_empty());
        let (w0, w1) = (weights_of(&before), weights_of(&pruned));
        let mut zeroed = 0;
        for (path, values) in &w0 {
            let after = &w1[path];
            for (a, b) in values.iter().zip(after) {
                if kernels.contains(path) && a.abs() < 0.1 {
                    assert_eq!(b.to_bits(), 0, "{name}: {path} keeps {a}");
                    zeroed += 1;
                } else {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name}: {path} changed");
                }
            }
        }
        assert!(zeroed > 0, "{name}: nothing pruned");

        let (ok, json, err) = kerasrs(&["sparsity", pruned.to_str().unwrap(), "--json"]);
        assert!(ok, "{name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v.to_string().contains("kernel"), "{name}: {json}");

        let data = fixtures_dir().join(format!("graph/{name}.data.npz"));
        let (ok, out, err) = kerasrs(&[
            "evaluate",
            pruned.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ]);
        assert!(ok, "{name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["loss"].as_f64().is_some_and(f64::is_finite),
            "{name}: {out}"
        );

        let pred = dir.path().join(format!("{name}.pred.npz"));
        let x = fixtures_dir().join(format!("graph/{name}.x.npz"));
        let (ok, _, err) = kerasrs(&[
            "predict",
            pruned.to_str().unwrap(),
            "--input",
            x.to_str().unwrap(),
            "--output",
            pred.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");
    }
}

/// The attention models (the keras-io time-series transformer, masked and
/// grouped-query attention, EinsumDense, Attention) work end to end:
/// `load`, `convert` (weights bit-identical, config value-equal), `prune`
/// (every kernel weight below the threshold zeroed, the 3-D projection
/// kernels included, nothing else changed), `sparsity --json` (weights
/// named by Keras's sublayer paths, per-channel counts of the 3-D kernels),
/// and `predict` and `finetune --keep-sparsity` of the pruned file.
#[test]
fn attention_models_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "ts_transformer",
        "mha_masked",
        "gqa",
        "einsum_dense",
        "attention_dot",
    ] {
        let before = fixtures_dir().join(format!("attn/{name}.after.keras"));
        let b = before.to_str().unwrap();
        let (ok, stdout, err) = kerasrs(&["load", b]);
        assert!(ok && stdout.contains("Connected to"), "{name}: {err}");

        let converted = dir.path().join(format!("{name}.converted.keras"));
        let (ok, _, err) = kerasrs(&["convert", b, "--output", converted.to_str().unwrap()]);
        assert!(ok, "{name}: {err}");
        assert_eq!(
            weights_of(&converted),
            weights_of(&before),
            "{name}: convert"
        );
        let (c1, c2) = (
            KerasFile::open(&converted).unwrap(),
            KerasFile::open(&before).unwrap(),
        );
        assert_eq!(c1.config, c2.config, "{name}: config changed");

        let pruned = dir.path().join(format!("{name}.pruned.keras"));
        let p = pruned.to_str().unwrap();
        let (ok, _, err) = kerasrs(&["prune", b, "--threshold", "0.1", "--output", p]);
        assert!(ok, "{name}: {err}");
        let kernels = kernel_paths(&before);
        let (w0, w1) = (weights_of(&before), weights_of(&pruned));
        let mut zeroed = 0;
        for (path, values) in &w0 {
            for (a, b) in values.iter().zip(&w1[path]) {
                if kernels.contains(path) && a.abs() < 0.1 {
                    assert_eq!(b.to_bits(), 0, "{name}: {path} keeps {a}");
                    zeroed += 1;
                } else {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name}: {path} changed");
                }
            }
        }
        assert!(zeroed > 0, "{name}: nothing pruned");

        let (ok, json, err) = kerasrs(&["sparsity", p, "--json"]);
        assert!(ok, "{name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let text = v.to_string();
        assert!(text.contains("kernel"), "{name}: {json}");
        if name != "einsum_dense" && name != "attention_dot" {
            assert!(text.contains("/query\""), "{name}: {json}");
        }

        let pred = dir.path().join(format!("{name}.pred.npz"));
        let x = fixtures_dir().join(format!("attn/{name}.x.npz"));
        let (ok, _, err) = kerasrs(&[
            "predict",
            p,
            "--input",
            x.to_str().unwrap(),
            "--output",
            pred.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");

        let tuned = dir.path().join(format!("{name}.tuned.keras"));
        let data = fixtures_dir().join(format!("attn/{name}.data.npz"));
        let (ok, _, err) = kerasrs(&[
            "finetune",
            p,
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--keep-sparsity",
            "--verbose",
            "0",
            "--output",
            tuned.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");
        let w2 = weights_of(&tuned);
        for path in &kernels {
            for (a, b) in w1[path].iter().zip(&w2[path]) {
                if *a == 0.0 {
                    assert_eq!(*b, 0.0, "{name}: {path} lost a zero");
                }
            }
        }
    }
}

/// Paths (`layers/<layer>/vars/<i>`) of the prunable kernels (Dense,
/// convolution and attention kernels, embedding tables) of a model.
fn kernel_paths(path: &Path) -> Vec<String> {
    let model = kerasrs::Model::open(path).unwrap();
    let mut out = Vec::new();
    for l in &model.layers {
        let Some(wp) = l.weight_path.as_deref() else {
            continue;
        };
        if l.dense().is_some() {
            out.push(format!("{wp}/vars/0"));
        }
        let Some(op) = l.op() else {
            continue;
        };
        for (i, v) in op.vars().iter().enumerate() {
            if v.role.ends_with("kernel") || v.role == "embeddings" {
                out.push(format!("{wp}/{}", op.var_path(i)));
            }
        }
    }
    out
}

/// Image models prune like Dense ones: `prune --threshold` zeroes every
/// convolution kernel weight (Conv, Depthwise, Separable depthwise and
/// pointwise, Transpose) below the threshold and nothing else;
/// `--structured filters --sparsity 0.5` zeroes half of each kernel's
/// filters (the weakest by L1 norm), whole; `sparsity --json` counts the zero
/// filters; `finetune --keep-sparsity` keeps every zero of a conv kernel.
#[test]
fn image_models_prune_like_dense() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "conv2d_strides_dilation",
        "depthwise2d_multiplier",
        "separable2d_strides",
        "conv2d_transpose_paddings",
    ] {
        let before = fixtures_dir().join(format!("conv/{name}.before.keras"));
        let b = before.to_str().unwrap();
        let kernels = kernel_paths(&before);
        assert!(!kernels.is_empty(), "{name}");
        let w0 = weights_of(&before);

        // Unstructured threshold.
        let pruned = dir.path().join(format!("{name}.pruned.keras"));
        let p = pruned.to_str().unwrap();
        let (ok, _, err) = kerasrs(&["prune", b, "--threshold", "0.2", "--output", p]);
        assert!(ok, "{name}: {err}");
        let w1 = weights_of(&pruned);
        let mut zeroed = 0;
        for (path, values) in &w0 {
            for (a, b) in values.iter().zip(&w1[path]) {
                if kernels.contains(path) && a.abs() < 0.2 {
                    assert_eq!(b.to_bits(), 0, "{name}: {path} keeps {a}");
                    zeroed += 1;
                } else {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name}: {path} changed");
                }
            }
        }
        assert!(zeroed > 0, "{name}: nothing pruned");

        // Structured: half of each kernel's output channels, whole.
        let thin = dir.path().join(format!("{name}.thin.keras"));
        let t = thin.to_str().unwrap();
        let (ok, out, err) = kerasrs(&[
            "prune",
            b,
            "--structured",
            "filters",
            "--sparsity",
            "0.5",
            "--output",
            t,
            "--json",
        ]);
        assert!(ok, "{name}: {err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        let (ok, json, err) = kerasrs(&["sparsity", t, "--json"]);
        assert!(ok, "{name}: {err}");
        let sparsity: serde_json::Value = serde_json::from_str(&json).unwrap();
        let tensors = sparsity["tensors"].as_array().unwrap();
        let mut cut_total = 0;
        for row in report["rows"].as_array().unwrap() {
            let Some(cut) = row["pruned_channels"].as_u64() else {
                continue;
            };
            let t = tensors
                .iter()
                .find(|t| t["layer"] == row["layer"] && t["weight"] == row["weight"])
                .unwrap();
            let ch = &t["channels"];
            let outputs = ch["outputs"].as_u64().unwrap();
            // round(0.5 · F), halves to even.
            let expect = ((outputs as f64) * 0.5).round_ties_even() as u64;
            assert_eq!(cut, expect, "{name}: {row}");
            assert!(ch["zero_outputs"].as_u64().unwrap() >= cut, "{name}: {t}");
            // Every cut channel's weights are zero: the zeros are whole channels.
            let weights = t["weights"].as_u64().unwrap();
            assert_eq!(
                row["pruned"].as_u64().unwrap(),
                cut * (weights / outputs),
                "{name}: {row}"
            );
            cut_total += cut;
        }
        assert!(cut_total > 0, "{name}: no channel cut");

        // Training with --keep-sparsity keeps the zeros of the conv kernels.
        let data = fixtures_dir().join(format!("conv/{name}.data.npz"));
        let tuned = dir.path().join(format!("{name}.tuned.keras"));
        let (ok, _, err) = kerasrs(&[
            "finetune",
            p,
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--keep-sparsity",
            "--l1",
            "0.001",
            "--quiet",
            "--output",
            tuned.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");
        // `--l1` put L1 on every kernel, under Keras's config key.
        let config = KerasFile::open(&tuned).unwrap().config;
        let mut keyed = 0;
        for layer in config["config"]["layers"].as_array().unwrap() {
            let c = &layer["config"];
            for key in [
                "kernel_regularizer",
                "depthwise_regularizer",
                "pointwise_regularizer",
            ] {
                let conv = c.get("filters").is_some() || c.get("depth_multiplier").is_some();
                if let (true, Some(r)) = (conv, c.get(key).filter(|r| !r.is_null())) {
                    assert_eq!(r["config"]["l1"], 0.001, "{name}: {layer}");
                    keyed += 1;
                }
            }
        }
        assert!(keyed >= 2, "{name}: --l1 not recorded in the convolutions");
        let w2 = weights_of(&tuned);
        let mut moved = false;
        for path in &kernels {
            for (a, b) in w1[path].iter().zip(&w2[path]) {
                if *a == 0.0 {
                    assert_eq!(*b, 0.0, "{name}: {path} left zero");
                } else {
                    moved |= a != b;
                }
            }
        }
        assert!(moved, "{name}: nothing trained");
    }
}

/// `--freeze` on a BatchNormalization layer makes it run in inference mode
/// during training, as Keras 3 does for a non-trainable BN: its gamma,
/// beta and moving statistics stay exactly as they were.
#[test]
fn frozen_batch_normalization_keeps_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let before = fixtures_dir().join("graph/bn_ln_mlp.before.keras");
    let data = fixtures_dir().join("graph/bn_ln_mlp.data.npz");
    let out = dir.path().join("frozen.keras");
    let (ok, _, err) = kerasrs(&[
        "finetune",
        before.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "2",
        "--freeze",
        "bn",
        "--quiet",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (w0, w1) = (weights_of(&before), weights_of(&out));
    for i in 0..4 {
        let p = format!("layers/batch_normalization/vars/{i}");
        assert_eq!(w0[&p], w1[&p], "{p} changed although the layer is frozen");
    }
    assert_ne!(w0["layers/dense_1/vars/0"], w1["layers/dense_1/vars/0"]);
}

/// `kerasrs load` of a graph model: Keras-like rows with "Connected to".
#[test]
fn graph_summary_snapshot() {
    let before = fixtures_dir().join("graph/ticket_two_outputs.before.keras");
    let (ok, stdout, err) = kerasrs(&["load", before.to_str().unwrap()]);
    assert!(ok, "{err}");
    let stdout = stdout.replace(&*fixtures_dir().to_string_lossy(), "<fixtures>");
    insta::assert_snapshot!("load_ticket_two_outputs", stdout);
}

/// Data that does not name the model's inputs and outputs is refused with
/// the names it needs and those the file has.
#[test]
fn data_must_name_inputs_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let before = fixtures_dir().join("graph/ticket_two_outputs.before.keras");
    let x = fixtures_dir().join("graph/ticket_two_outputs.x.npz");
    let out = dir.path().join("out.keras");
    let (ok, _, err) = kerasrs(&[
        "finetune",
        before.to_str().unwrap(),
        "--data",
        x.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("priority") && err.contains("holds"), "{err}");
    assert!(!out.exists());
    let npy = dir.path().join("x.npy");
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::zeros((2, 10))).unwrap();
    let (ok, _, err) = kerasrs(&[
        "predict",
        before.to_str().unwrap(),
        "--input",
        npy.to_str().unwrap(),
        "--output",
        dir.path().join("y.npz").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("3 inputs") && err.contains("title"), "{err}");
}

/// A nested model has a row of its own, before its (indented) layers, and
/// the layer after it is connected to the nested model, as in Keras's
/// `summary(expand_nested=True)`.
#[test]
fn nested_summary_snapshot() {
    let before = fixtures_dir().join("graph/nested_sequential.before.keras");
    let (ok, stdout, err) = kerasrs(&["load", before.to_str().unwrap()]);
    assert!(ok, "{err}");
    insta::assert_snapshot!("load_nested_sequential", stdout);
}

#[test]
fn pool_models_match_keras() {
    suite_matches_keras("pool");
}

/// Token ids outside an `Embedding`'s vocabulary (or not integers) are
/// refused before anything runs, naming the input, row, position and id;
/// integer `.npz` inputs (int32, as Keras models take them) are accepted.
#[test]
fn out_of_vocabulary_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = path("seq/text_conv1d.before.keras");
    let write = |name: &str, ids: ndarray::Array2<i32>| {
        let p = dir.path().join(name);
        let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&p).unwrap());
        npz.add_array("x", &ids).unwrap();
        npz.finish().unwrap();
        p
    };
    let mut ids = ndarray::Array2::<i32>::from_elem((5, 8), 3);
    let good = write("good.npz", ids.clone());
    let out = dir.path().join("pred.npz");
    let (ok, _, stderr) = kerasrs(&[
        "predict",
        &model,
        "--input",
        good.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    // The vocabulary is 40: id 40 in row 3, position 5.
    ids[[3, 5]] = 40;
    let bad = write("bad.npz", ids);
    let (ok, _, stderr) = kerasrs(&[
        "predict",
        &model,
        "--input",
        bad.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("row 3 (position 5): id 40 is outside the vocabulary")
            && stderr.contains("[0, 40)"),
        "{stderr}"
    );
}
