//! Legacy and weights-only sources against the writers that made them: every
//! case of `fixtures/legacy/manifest-{keras3,tfkeras}.json` (made by
//! `fixtures/generate_legacy.py`: tf_keras 2.15.1 `model.save("m.h5")` and
//! `model.save("m.keras")`; Keras 3.15.1's legacy `model.save("m.h5")`,
//! `save_weights` + `to_json`, sharded `save_weights(max_shard_size=...)`
//! and an unzipped `.keras`). Each file loads with the writer's parameter
//! counts and predicts the writer's `predict` within 1e-5; `finetune
//! --no-shuffle` of each `.h5` ends within 1e-5 of the writer's
//! `fit(shuffle=False)` (Keras 2 files: of Keras 3.15's fit of the file, and
//! of tf_keras's fit except the BatchNormalization moving variance, which
//! tf_keras's fused kernel updates with the Bessel-corrected variance);
//! `prune` and `convert` write Keras 3 archives that read back identically.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{PREDICT_TOL, TRAINING_TOL, fixtures_dir, kerasrs, max_abs_diff, max_scaled_diff};
use kerasrs::archive::{H5Group, H5Node};
use kerasrs::{KerasFile, Model};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    files: BTreeMap<String, String>,
    x: String,
    y: String,
    data: String,
    after: String,
    #[serde(default)]
    after_keras3: Option<String>,
    #[serde(default)]
    y_keras3: Option<String>,
    /// How far the writer's own predictions / fit are from Keras 3.15's of
    /// the same file (MobileNetV2: TensorFlow's and XLA's float32
    /// convolutions over 50 layers). Keras 3.15's are matched within the
    /// usual tolerances, so the writer's within those plus the spread.
    #[serde(default)]
    predict_spread: Option<f32>,
    #[serde(default)]
    fit_spread: Option<f32>,
    /// Why the writer's own fit (`after`) is not the oracle of training.
    #[serde(default)]
    writer_fit_differs: Option<String>,
    writer: String,
    iterations_after: i64,
    count_params: usize,
    trainable_params: usize,
    epochs: usize,
    batch_size: usize,
}

fn dir() -> PathBuf {
    fixtures_dir().join("legacy")
}

/// Every `manifest-*.json` in `fixtures/legacy/` (one per writer).
fn manifests() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("fixtures/legacy")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manifest-") && n.ends_with(".json"))
        .collect();
    names.sort();
    for writer in ["keras3", "tfkeras", "keras30", "keras33", "tf213", "tf214"] {
        assert!(
            names.contains(&format!("manifest-{writer}.json")),
            "manifest-{writer}.json is missing"
        );
    }
    names
}

fn cases() -> Vec<Case> {
    manifests()
        .iter()
        .flat_map(|m| {
            let text = std::fs::read_to_string(dir().join(m)).expect("legacy manifest");
            serde_json::from_str::<Manifest>(&text)
                .expect("manifest parses")
                .cases
        })
        .collect()
}

/// Every model source of a case (the architecture JSON is not one).
fn sources(case: &Case) -> Vec<(String, PathBuf)> {
    case.files
        .iter()
        .filter(|(label, _)| label.as_str() != "json")
        .map(|(label, rel)| (label.clone(), dir().join(rel)))
        .collect()
}

fn s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

fn npz(path: &std::path::Path) -> BTreeMap<String, Vec<f32>> {
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    npz.names()
        .unwrap()
        .into_iter()
        .map(|n| {
            let a: ndarray::ArrayD<f32> = npz.by_name(&n).unwrap();
            (
                n.trim_end_matches(".npy").to_string(),
                a.iter().copied().collect(),
            )
        })
        .collect()
}

/// Weights of an archive keyed `<layer name>/<i>` (the `name` attribute of
/// each `vars` group), as the generator keys `layer.weights`.
fn layer_weights(weights: &H5Group) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    let Some(layers) = weights.group("layers") else {
        return out;
    };
    for (_, node) in &layers.children {
        let H5Node::Group(g) = node else { continue };
        let Some(vars) = g.group("vars") else {
            continue;
        };
        let name = vars.attr("name").and_then(|a| a.as_str()).unwrap_or("");
        for (i, _) in vars.children.iter().enumerate() {
            if let Some(ds) = vars.dataset(&i.to_string()) {
                out.insert(format!("{name}/{i}"), ds.to_f32().unwrap());
            }
        }
    }
    out
}

#[test]
fn every_source_loads_with_the_writers_parameter_counts() {
    for case in cases() {
        for (label, path) in sources(&case) {
            let model = Model::open(&path).unwrap_or_else(|e| panic!("{} {label}: {e}", case.name));
            assert_eq!(
                model.param_count(),
                case.count_params,
                "{} {label}",
                case.name
            );
            assert_eq!(
                model.trainable_param_count(),
                case.trainable_params,
                "{} {label}",
                case.name
            );
            assert!(!model.notes.is_empty() || label == "keras", "{}", case.name);
        }
    }
}

#[test]
fn every_source_predicts_as_its_writer() {
    for case in cases() {
        let x = kerasrs::data::read_npy_f32(&dir().join(&case.x)).unwrap();
        let read = |rel: &str| -> Vec<f32> {
            kerasrs::data::read_npy_f32(&dir().join(rel))
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let tol = PREDICT_TOL + case.predict_spread.unwrap_or(0.0);
        let mut oracles = vec![(case.y.clone(), read(&case.y))];
        if let Some(k3) = &case.y_keras3 {
            oracles.push((k3.clone(), read(k3)));
        }
        for (label, path) in sources(&case) {
            let model = Model::open(&path).unwrap();
            let got: Vec<f32> = model
                .predict(x.view(), 16)
                .unwrap()
                .iter()
                .copied()
                .collect();
            for (oracle, want) in &oracles {
                let d = max_scaled_diff(&got, want);
                assert!(d <= tol, "{} {label} vs {oracle}: max diff {d}", case.name);
            }
        }
    }
}

/// Names of the BatchNormalization layers of a model config.
fn batch_norm_layers(config: &serde_json::Value) -> Vec<String> {
    config
        .pointer("/config/layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter(|l| l["class_name"] == "BatchNormalization")
        .filter_map(|l| l.pointer("/config/name")?.as_str().map(str::to_string))
        .collect()
}

#[test]
fn finetune_of_every_source_matches_the_writers_fit() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases() {
        for (label, source) in sources(&case) {
            let out = tmp.path().join(format!("{}-{label}.keras", case.name));
            let (ok, _, err) = kerasrs(&[
                "finetune",
                &s(&source),
                "--data",
                &s(&dir().join(&case.data)),
                "--epochs",
                &case.epochs.to_string(),
                "--batch-size",
                &case.batch_size.to_string(),
                "--no-shuffle",
                "--output",
                &s(&out),
            ]);
            assert!(ok, "{}: {err}", case.name);
            assert!(
                err.contains("Keras 3 `.keras` archive"),
                "{}: {err}",
                case.name
            );
            assert!(
                err.contains("resuming the stored optimizer state at iteration"),
                "{err}"
            );
            let file = KerasFile::open(&out).unwrap();
            let ours = layer_weights(&file.weights);
            let compare = |oracle: &str, tol: f32, skip: &dyn Fn(&str) -> bool| {
                let want = npz(&dir().join(oracle));
                assert_eq!(
                    ours.keys().collect::<Vec<_>>(),
                    want.keys().collect::<Vec<_>>(),
                    "{} {label}",
                    case.name
                );
                for (key, w) in &want {
                    if skip(key) {
                        continue;
                    }
                    let d = max_abs_diff(&ours[key], w);
                    assert!(d <= tol, "{} vs {oracle}: {key}: {d}", case.name);
                }
            };
            if let Some(k3) = &case.after_keras3 {
                compare(k3, TRAINING_TOL, &|_| false);
            }
            let bn = batch_norm_layers(&file.config);
            let keras2 = case.writer.starts_with("tf");
            match &case.writer_fit_differs {
                // Keras 3.0.5 (JAX) counts weight penalties twice: kerasrs
                // does what Keras 3.3+ does (`after_keras3`, checked above),
                // and differs from 3.0.5's own fit.
                Some(why) => {
                    let want = npz(&dir().join(&case.after));
                    let d = want
                        .iter()
                        .map(|(k, w)| max_abs_diff(&ours[k], w))
                        .fold(0.0f32, f32::max);
                    assert!(d > 1e-4, "{}: {why}, yet it matches ({d})", case.name);
                }
                // tf_keras's fused BatchNormalization: moving variance from
                // the Bessel-corrected batch variance (Keras 3 and kerasrs:
                // the biased one).
                None => compare(
                    &case.after,
                    TRAINING_TOL + case.fit_spread.unwrap_or(0.0),
                    &|k| {
                        keras2
                            && k.rsplit_once('/')
                                .is_some_and(|(l, i)| i == "3" && bn.iter().any(|b| b == l))
                    },
                ),
            }
            let state = Model::open(&out).unwrap().optimizer_state().unwrap();
            assert_eq!(
                state.iterations(),
                Some(case.iterations_after),
                "{} {label}",
                case.name
            );
        }
    }
}

#[test]
fn prune_and_convert_of_legacy_sources_write_keras3_archives() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases() {
        let x = kerasrs::data::read_npy_f32(&dir().join(&case.x)).unwrap();
        for (label, path) in sources(&case) {
            let out = tmp.path().join(format!("{}-{label}.keras", case.name));
            let (ok, _, err) = kerasrs(&["convert", &s(&path), "--output", &s(&out)]);
            assert!(ok, "{} {label}: {err}", case.name);
            let before = Model::open(&path).unwrap().predict(x.view(), 16).unwrap();
            let back = Model::open(&out).unwrap();
            assert!(
                back.notes.is_empty(),
                "{} {label}: {:?}",
                case.name,
                back.notes
            );
            assert_eq!(
                back.predict(x.view(), 16).unwrap(),
                before,
                "{} {label}",
                case.name
            );
            let config = back.source().config.to_string();
            for legacy in ["batch_input_shape", "tf_keras", "Custom>", SHAPE_PENDING] {
                assert!(!config.contains(legacy), "{} {label}: {legacy}", case.name);
            }
            assert_eq!(back.source().keras_version(), Some("3.15.1"));
        }
        for (label, path) in sources(&case) {
            let out = tmp
                .path()
                .join(format!("{}-{label}-pruned.keras", case.name));
            let (ok, _, err) = kerasrs(&[
                "prune",
                &s(&path),
                "--threshold",
                "0.05",
                "--output",
                &s(&out),
            ]);
            assert!(ok, "{} {label}: {err}", case.name);
            assert!(err.contains("Keras 3 `.keras` archive"), "{label}: {err}");
            let pruned = Model::open(&out).unwrap();
            let zeros: usize = layer_weights(&pruned.source().weights)
                .values()
                .map(|v| v.iter().filter(|w| **w == 0.0).count())
                .sum();
            assert!(zeros > 0, "{} {label}", case.name);
        }
    }
}

const SHAPE_PENDING: &str = "__kerasrs_shape_pending__";

#[test]
fn weights_only_takes_the_architecture_from_config() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("w.weights.h5");
    std::fs::copy(dir().join("k3_mlp.weights.h5"), &weights).unwrap();
    // Nothing beside it: the error says what to pass.
    let err = Model::open(&weights).unwrap_err().to_string();
    assert!(err.contains("--config"), "{err}");
    assert!(err.contains("w.weights.h5"), "{err}");
    // `--config` as a `to_json()` output and as a `.keras` archive.
    let json = dir().join("k3_mlp.json");
    let model = Model::open_with(&weights, Some(&json)).unwrap();
    assert_eq!(model.param_count(), 195);
    let archive = tmp.path().join("arch.keras");
    let (ok, _, err) = kerasrs(&["convert", &s(&dir().join("k3_mlp.h5")), "-o", &s(&archive)]);
    assert!(ok, "{err}");
    let model = Model::open_with(&weights, Some(&archive)).unwrap();
    assert_eq!(model.param_count(), 195);
    let out = tmp.path().join("m.keras");
    let (ok, _, err) = kerasrs(&[
        "convert",
        &s(&weights),
        "--config",
        &s(&json),
        "--output",
        &s(&out),
    ]);
    assert!(ok, "{err}");
    // An architecture that does not fit the weights is named.
    let err = Model::open_with(&weights, Some(&dir().join("k3_residual.json")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("w.weights.h5") || err.contains("expected"),
        "{err}"
    );
}

#[test]
fn legacy_outputs_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    for out in ["m.h5", "m.weights.h5", "m.json"] {
        let out = tmp.path().join(out);
        let (ok, _, err) = kerasrs(&[
            "convert",
            &s(&dir().join("k2_mlp.h5")),
            "--output",
            &s(&out),
        ]);
        assert!(!ok);
        assert!(err.contains("writes Keras 3 `.keras` archives"), "{err}");
        assert!(!out.exists());
    }
}

/// A copy of `k2_mlp.h5` with its tree edited, written by kerasrs's HDF5
/// writer.
fn edited_h5(edit: impl FnOnce(&mut H5Group)) -> tempfile::NamedTempFile {
    let bytes = std::fs::read(dir().join("k2_mlp.h5")).unwrap();
    let mut tree =
        kerasrs::archive::h5::read_tree(bytes, &kerasrs::archive::Limits::default()).unwrap();
    edit(&mut tree);
    let out = tempfile::Builder::new().suffix(".h5").tempfile().unwrap();
    std::fs::write(out.path(), kerasrs::archive::h5::write_tree(&tree).unwrap()).unwrap();
    out
}

#[test]
fn hostile_legacy_files_are_errors_naming_what_is_wrong() {
    use hdf5_pure::AttrValue;
    // Truncated: every prefix is an error, never a panic.
    let bytes = std::fs::read(dir().join("k2_mlp.h5")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for len in [0, 7, 8, 100, 512, 2048, bytes.len() / 2, bytes.len() - 1] {
        let p = tmp.path().join(format!("t{len}.h5"));
        std::fs::write(&p, &bytes[..len]).unwrap();
        let err = Model::open(&p).unwrap_err().to_string();
        assert!(err.contains(&format!("t{len}.h5")), "{len}: {err}");
    }
    // The unedited round trip through kerasrs's writer still loads.
    let same = edited_h5(|_| {});
    Model::open(same.path()).unwrap();
    // Bad model_config JSON.
    let bad = edited_h5(|t| {
        t.set_attr(
            "model_config",
            AttrValue::VarLenString("{\"class_name\": ".into()),
        )
    });
    let err = Model::open(bad.path()).unwrap_err().to_string();
    assert!(
        err.contains("model_config") && err.contains("JSON"),
        "{err}"
    );
    // A config of the wrong shape.
    let bad = edited_h5(|t| t.set_attr("model_config", AttrValue::VarLenString("[1, 2]".into())));
    let err = Model::open(bad.path()).unwrap_err().to_string();
    assert!(err.contains("model_config"), "{err}");
    // weight_names pointing at a missing dataset.
    let bad = edited_h5(|t| {
        t.group_mut("model_weights/dense").unwrap().set_attr(
            "weight_names",
            AttrValue::VarLenStringArray(vec!["dense/kernel:0".into(), "dense/nope:0".into()]),
        )
    });
    let err = Model::open(bad.path()).unwrap_err().to_string();
    assert!(
        err.contains("model_weights/dense/dense/nope:0") && err.contains("weight_names"),
        "{err}"
    );
    // layer_names naming a layer without a group.
    let bad = edited_h5(|t| {
        t.group_mut("model_weights").unwrap().set_attr(
            "layer_names",
            AttrValue::VarLenStringArray(vec!["dense".into(), "ghost".into()]),
        )
    });
    let err = Model::open(bad.path()).unwrap_err().to_string();
    assert!(
        err.contains("ghost") && err.contains("layer_names"),
        "{err}"
    );
    // Weights for a layer the architecture does not have.
    let bad = edited_h5(|t| {
        let mw = t.group_mut("model_weights").unwrap();
        mw.set_attr(
            "layer_names",
            AttrValue::VarLenStringArray(vec![
                "dense".into(),
                "leaky_re_lu".into(),
                "extra".into(),
            ]),
        );
        let g = mw.group("dense_1").unwrap().clone();
        mw.set_child("extra", H5Node::Group(g));
    });
    let err = Model::open(bad.path()).unwrap_err().to_string();
    assert!(err.contains("extra"), "{err}");
    // A kernel of the wrong shape is named by its Keras 3 path.
    let bad = edited_h5(|t| {
        let g = t.group_mut("model_weights/dense/dense").unwrap();
        let b = g.dataset("bias:0").unwrap().clone();
        g.set_child("kernel:0", H5Node::Dataset(b));
    });
    let err = Model::open(bad.path()).unwrap_err().to_string();
    assert!(
        err.contains("layers/dense/vars/0") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn hostile_shard_indexes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    write(
        "config.json",
        &std::fs::read_to_string(dir().join("k3_residual.json")).unwrap(),
    );
    for (index, needle) in [
        (
            r#"{"weight_map": {"/vars": ["../secret.weights.h5"]}}"#,
            "plain file name",
        ),
        (r#"{"weight_map": {"/vars": [3]}}"#, "shard file names"),
        (
            r#"{"weight_map": {"/vars": ["missing_00000.weights.h5"]}}"#,
            "missing_00000",
        ),
        (r#"{"metadata": {}}"#, "weight_map"),
        ("{\"weight_map\": ", "JSON"),
    ] {
        let p = write("model.weights.json", index);
        let err = Model::open(&p).unwrap_err().to_string();
        assert!(err.contains(needle), "{index}: {err}");
    }
}

// Dtype policies: `fixtures/dtypes/` (made by `fixtures/generate_dtypes.py`,
// Keras 3.15.1 on JAX after one `fit`).

#[derive(Debug, Deserialize)]
struct DtypeManifest {
    x: String,
    data: String,
    cases: Vec<DtypeCase>,
}

#[derive(Debug, Deserialize)]
struct DtypeCase {
    policy: String,
    file: String,
    y: String,
    count_params: usize,
    stored_dtypes: BTreeMap<String, String>,
}

/// How close kerasrs's float32 computation comes to Keras computing in
/// the policy's type (relative to max(1, |y|)): a few units of the compute
/// type's rounding (float16: 2^-11 ≈ 4.9e-4, bfloat16: 2^-8 ≈ 3.9e-3) over
/// three layers, float32 rounding for float32 compute.
fn policy_tolerance(policy: &str) -> f32 {
    match policy {
        "float16" | "mixed_float16" => 4e-3,
        "bfloat16" | "mixed_bfloat16" => 3e-2,
        _ => PREDICT_TOL,
    }
}

fn stored_dtypes(file: &KerasFile) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    common::datasets(&file.weights, "", &mut all);
    all.into_iter().map(|(p, d)| (p, d.dtype_name())).collect()
}

/// Every policy loads with Keras's parameter count and predicts Keras's
/// `predict` within the policy's precision; `convert` keeps every stored
/// byte and dtype; `finetune` trains in float32 and stores the result in
/// each variable's own dtype (float16 stays float16, bfloat16 stays
/// bfloat16 opaque data), which reads back.
#[test]
fn dtype_policies_load_predict_and_keep_their_stored_types() {
    let root = fixtures_dir();
    let text = std::fs::read_to_string(root.join("dtypes/manifest.json")).unwrap();
    let manifest: DtypeManifest = serde_json::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let x = root.join(&manifest.x);
    for case in &manifest.cases {
        let path = root.join(&case.file);
        let model = Model::open(&path).unwrap();
        assert_eq!(model.param_count(), case.count_params, "{}", case.policy);
        let file = KerasFile::open(&path).unwrap();
        assert_eq!(stored_dtypes(&file), case.stored_dtypes, "{}", case.policy);
        let out = tmp.path().join(format!("{}.npy", case.policy));
        let (ok, _, err) = kerasrs(&[
            "predict",
            &s(&path),
            "--input",
            &s(&x),
            "--output",
            &s(&out),
        ]);
        assert!(ok, "{}: {err}", case.policy);
        let ours = kerasrs::data::read_npy_f32(&out).unwrap();
        let keras = kerasrs::data::read_npy_f32(&root.join(&case.y)).unwrap();
        let d = max_scaled_diff(ours.as_slice().unwrap(), keras.as_slice().unwrap());
        assert!(d <= policy_tolerance(&case.policy), "{}: {d}", case.policy);
        // Convert: byte for byte the same weights and dtypes.
        let conv = tmp.path().join(format!("{}.keras", case.policy));
        let (ok, _, err) = kerasrs(&["convert", &s(&path), "--output", &s(&conv)]);
        assert!(ok, "{err}");
        let back = KerasFile::open(&conv).unwrap();
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        common::datasets(&file.weights, "", &mut a);
        common::datasets(&back.weights, "", &mut b);
        assert_eq!(a, b, "{}: convert changed the weights", case.policy);
        // Finetune: new values, same stored dtypes.
        let tuned = tmp.path().join(format!("{}.tuned.keras", case.policy));
        let (ok, _, err) = kerasrs(&[
            "finetune",
            &s(&path),
            "--data",
            &s(&root.join(&manifest.data)),
            "--epochs",
            "2",
            "--no-shuffle",
            "--batch-size",
            "16",
            "--output",
            &s(&tuned),
        ]);
        assert!(ok, "{}: {err}", case.policy);
        let after = KerasFile::open(&tuned).unwrap();
        assert_eq!(stored_dtypes(&after), case.stored_dtypes, "{}", case.policy);
        let kernel = |f: &KerasFile| {
            f.weights
                .group("layers/dense/vars")
                .unwrap()
                .dataset("0")
                .unwrap()
                .raw
                .clone()
        };
        assert_ne!(
            kernel(&after),
            kernel(&file),
            "{}: nothing trained",
            case.policy
        );
        Model::open(&tuned).unwrap();
    }
}
