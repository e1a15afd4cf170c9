//! `kerasrs shrink` against real Keras: the models in
//! `fixtures/shrink/manifest.json` (made by `fixtures/generate_shrink.py`:
//! Keras 3.15.1 models fitted one epoch with Adam, then given exact zero
//! rows and columns) shrink to the units the generator expects, and the
//! shrunk model predicts Keras's `model.predict` of the original
//! (`<case>.y.npy`) from the kept input columns within 1e-6.

mod common;

use std::path::Path;

use common::{CLOSE_TOL, PREDICT_TOL, fixtures_dir, kerasrs, max_abs_diff};
use kerasrs::Model;
use ndarray::{ArrayD, Axis};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    keras_version: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    model: String,
    x: String,
    y: String,
    count_params: usize,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    kept_inputs: Vec<usize>,
    units_after: std::collections::BTreeMap<String, usize>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixtures_dir().join("shrink/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn shrink_json(src: &Path, dst: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "shrink",
        src.to_str().unwrap(),
        "--output",
        dst.to_str().unwrap(),
        "--json",
    ];
    args.extend(extra);
    let (ok, out, err) = kerasrs(&args);
    assert!(ok, "shrink failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn kept(report: &serde_json::Value) -> Vec<usize> {
    report["kept_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

fn predict(path: &Path, x: &ArrayD<f32>) -> Vec<f32> {
    let model = Model::open(path).unwrap();
    model.predict_all(&[x.view()], 32).unwrap()[0]
        .iter()
        .copied()
        .collect()
}

#[test]
fn shrunk_models_predict_as_keras() {
    let m = manifest();
    assert_eq!(m.keras_version, "3.15.1");
    let dir = tempfile::tempdir().unwrap();
    for case in &m.cases {
        let src = fixtures_dir().join(&case.model);
        let dst = dir.path().join(format!("{}.keras", case.name));
        let report = shrink_json(&src, &dst, &[]);
        assert_eq!(kept(&report), case.expect.kept_inputs, "{}", case.name);
        for (layer, units) in &case.expect.units_after {
            let entry = report["layers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["layer"] == layer.as_str())
                .unwrap_or_else(|| panic!("{}: no entry for `{layer}`", case.name));
            assert_eq!(entry["units_after"], *units, "{}: `{layer}`", case.name);
        }
        assert_eq!(report["params_before"], case.count_params);
        let shrunk = Model::open(&dst).unwrap();
        assert_eq!(report["params_after"], shrunk.param_count());
        assert!(shrunk.param_count() < case.count_params, "{}", case.name);
        let x = kerasrs::data::read_npy_f32(&fixtures_dir().join(&case.x)).unwrap();
        let y = kerasrs::data::read_npy_f32(&fixtures_dir().join(&case.y)).unwrap();
        let xs = x.select(Axis(x.ndim() - 1), &case.expect.kept_inputs);
        let ours = predict(&dst, &xs);
        let keras: Vec<f32> = y.iter().copied().collect();
        let d = max_abs_diff(&ours, &keras);
        assert!(d <= CLOSE_TOL, "{}: predictions differ by {d}", case.name);
        // The optimizer state was cut with the variables: training resumes.
        let tuned = dir.path().join(format!("{}.tuned.keras", case.name));
        let xs_path = dir.path().join(format!("{}.x.npy", case.name));
        let ys_path = dir.path().join(format!("{}.y.npy", case.name));
        kerasrs::data::write_npy_f32(&xs_path, &xs).unwrap();
        let target = if case.name.contains("chain") {
            y.map_axis(Axis(1), |r| {
                r.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap()
                    .0 as f32
            })
            .into_dyn()
        } else {
            y.clone()
        };
        kerasrs::data::write_npy_f32(&ys_path, &target).unwrap();
        let (ok, _, err) = kerasrs(&[
            "finetune",
            dst.to_str().unwrap(),
            "--x",
            xs_path.to_str().unwrap(),
            "--y",
            ys_path.to_str().unwrap(),
            "--output",
            tuned.to_str().unwrap(),
            "--verbose",
            "0",
        ]);
        assert!(ok, "{}: {err}", case.name);
        assert!(
            err.contains("resuming the stored optimizer state"),
            "{}: {err}",
            case.name
        );
    }
}

#[test]
fn folding_is_reported_and_inputs_can_be_kept() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures_dir().join("shrink/dense_chain.keras");
    let dst = dir.path().join("kept.keras");
    let report = shrink_json(&src, &dst, &["--keep-inputs"]);
    assert_eq!(kept(&report), (0..8).collect::<Vec<_>>());
    let hidden = &report["layers"][1];
    assert_eq!(hidden["layer"], "hidden");
    assert_eq!(hidden["dead"], serde_json::json!([1]));
    assert_eq!(hidden["folded"], serde_json::json!([3]));
    let x = kerasrs::data::read_npy_f32(&fixtures_dir().join("shrink/dense_chain.x.npy")).unwrap();
    let y = kerasrs::data::read_npy_f32(&fixtures_dir().join("shrink/dense_chain.y.npy")).unwrap();
    let d = max_abs_diff(&predict(&dst, &x), &y.iter().copied().collect::<Vec<_>>());
    assert!(d <= CLOSE_TOL, "{d}");
    // Nothing was folded in `dense_bn` (a BatchNormalization follows), so
    // the shrunk model is exact there, and a note says why unit 2 stays.
    let (ok, out, err) = kerasrs(&[
        "shrink",
        fixtures_dir()
            .join("shrink/dense_bn.keras")
            .to_str()
            .unwrap(),
        "--output",
        dir.path().join("bn.keras").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Parameters: 67 -> 38"), "{out}");
    assert!(out.contains("unit(s) 2 are constant"), "{out}");
}

/// `prune --structured filters` zeros whole units (their incoming weights):
/// they are constants, folded by `shrink`.
#[test]
fn shrink_after_structured_prune() {
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("pruned.keras");
    let digits = fixtures_dir().join("models/digits.keras");
    let (ok, _, err) = kerasrs(&[
        "prune",
        digits.to_str().unwrap(),
        "--structured",
        "filters",
        "--sparsity",
        "0.25",
        "--output",
        pruned.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let dst = dir.path().join("small.keras");
    let report = shrink_json(&pruned, &dst, &[]);
    let before = report["params_before"].as_u64().unwrap();
    let after = report["params_after"].as_u64().unwrap();
    assert!(after < before, "{report}");
    let x = kerasrs::data::read_npy_f32(&fixtures_dir().join("models/digits.x.npy")).unwrap();
    let xs = x.select(Axis(1), &kept(&report));
    let d = max_abs_diff(&predict(&dst, &xs), &predict(&pruned, &x));
    assert!(d <= CLOSE_TOL, "{d}");
}

/// A graph with a residual `Add`: what feeds the merge is left alone, with
/// a note, and the result still predicts as the original.
#[test]
fn merges_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("thin.keras");
    let src = fixtures_dir().join("conv/resnet_block_bn.before.keras");
    let (ok, _, err) = kerasrs(&[
        "prune",
        src.to_str().unwrap(),
        "--structured",
        "filters",
        "--sparsity",
        "0.5",
        "--output",
        pruned.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let dst = dir.path().join("small.keras");
    let report = shrink_json(&pruned, &dst, &[]);
    let notes = report["notes"].to_string();
    assert!(notes.contains("left alone"), "{report}");
    let model = Model::open(&pruned).unwrap();
    let shape = kerasrs::model::layers::with_batch(4, model.graph.input_shapes()[0]);
    let n: usize = shape.iter().product();
    let x = ArrayD::from_shape_vec(
        shape,
        (0..n).map(|i| ((i % 13) as f32) / 7.0 - 0.9).collect(),
    )
    .unwrap();
    let xs = x.select(Axis(x.ndim() - 1), &kept(&report));
    let d = max_abs_diff(&predict(&dst, &xs), &predict(&pruned, &x));
    assert!(d <= PREDICT_TOL, "{d}");
}

#[test]
fn tolerance_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures_dir().join("shrink/dense_chain.keras");
    // A tolerance above every weight removes what it can and says so in
    // the report; the model still loads.
    let dst = dir.path().join("tol.keras");
    let report = shrink_json(&src, &dst, &["--tolerance", "1e-3"]);
    assert_eq!(report["tolerance"], 1e-3);
    Model::open(&dst).unwrap();
    let (ok, _, err) = kerasrs(&[
        "shrink",
        src.to_str().unwrap(),
        "--tolerance",
        "-1",
        "--output",
        dir.path().join("x.keras").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("`--tolerance` must be finite and >= 0"),
        "{err}"
    );
    let (ok, _, err) = kerasrs(&[
        "shrink",
        src.to_str().unwrap(),
        "--output",
        dir.path().join("x.h5").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("legacy HDF5"), "{err}");
}
