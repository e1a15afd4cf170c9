//! Broken inputs give one `error:` line naming the problem, never a panic,
//! and never an output file.

mod common;

use std::path::{Path, PathBuf};

use common::{fixtures_dir, kerasrs};
use kerasrs::KerasFile;

fn seed() -> PathBuf {
    fixtures_dir().join("models/seed.keras")
}

/// Run a command that must fail; return its single error line.
fn fails(args: &[&str]) -> String {
    let (ok, stdout, stderr) = kerasrs(args);
    assert!(!ok, "expected failure: {args:?}\n{stdout}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut KerasFile)) -> PathBuf {
    let mut file = KerasFile::open(seed()).unwrap();
    edit(&mut file);
    let path = dir.join(name);
    file.save(&path).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn not_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.keras");
    std::fs::write(&bad, b"this is not a zip archive").unwrap();
    let err = fails(&["load", s(&bad)]);
    assert!(err.contains("bad.keras"), "{err}");
    assert!(err.contains("zip"), "{err}");
}

#[test]
fn missing_weights_member() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noweights.keras");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let src = KerasFile::open(seed()).unwrap();
    zip.start_file("metadata.json", opts).unwrap();
    std::io::Write::write_all(&mut zip, src.metadata.to_string().as_bytes()).unwrap();
    zip.start_file("config.json", opts).unwrap();
    std::io::Write::write_all(&mut zip, src.config.to_string().as_bytes()).unwrap();
    zip.finish().unwrap();
    let err = fails(&["load", s(&path)]);
    assert!(err.contains("missing member `model.weights.h5`"), "{err}");
}

#[test]
fn config_and_weights_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "units.keras", |f| {
        f.config["config"]["layers"][1]["config"]["units"] = 63.into();
    });
    let err = fails(&["load", s(&path)]);
    assert!(err.contains("layers/dense/vars/0"), "{err}");
    assert!(
        err.contains("expected shape [784, 63], found shape [784, 64]"),
        "{err}"
    );
}

#[test]
fn bias_present_without_use_bias() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "bias.keras", |f| {
        f.config["config"]["layers"][2]["config"]["use_bias"] = false.into();
    });
    let err = fails(&["load", s(&path)]);
    assert!(err.contains("layers/dense_1/vars"), "{err}");
    assert!(err.contains("expected 1 variables"), "{err}");
}

#[test]
fn unknown_layer_class() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "conv.keras", |f| {
        f.config["config"]["layers"][2]["class_name"] = "ConvLSTM2D".into();
    });
    let err = fails(&["load", s(&path)]);
    assert!(
        err.contains("unsupported layer class `ConvLSTM2D`"),
        "{err}"
    );
    assert!(err.contains("Dense"), "{err}");
}

#[test]
fn unknown_activation() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "act.keras", |f| {
        f.config["config"]["layers"][1]["config"]["activation"] = "wiggle".into();
    });
    let err = fails(&["load", s(&path)]);
    assert!(err.contains("unsupported activation `wiggle`"), "{err}");
}

#[test]
fn unsupported_dtype_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "f16.keras", |f| {
        f.config["config"]["layers"][1]["config"]["dtype"]["config"]["name"] =
            "int8_from_float32".into();
    });
    let err = fails(&["load", s(&path)]);
    assert!(
        err.contains("unsupported dtype policy `int8_from_float32`"),
        "{err}"
    );
}

#[test]
fn predict_with_wrong_input_shape_names_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let out = dir.path().join("y.npy");
    let a = ndarray::Array2::<f32>::zeros((3, 100)).into_dyn();
    kerasrs::data::write_npy_f32(&x, &a).unwrap();
    let err = fails(&["predict", s(&seed()), "--input", s(&x), "--output", s(&out)]);
    assert!(err.contains("(N, 784)"), "{err}");
    assert!(err.contains("(3, 100)"), "{err}");
    assert!(!out.exists());
}

#[test]
fn convert_refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("m.keras");
    std::fs::copy(seed(), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let err = fails(&["convert", s(&copy), "--output", s(&copy)]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), before);
}

#[test]
fn failed_convert_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.keras");
    std::fs::write(&bad, b"PK\x03\x04 truncated").unwrap();
    let out = dir.path().join("out.keras");
    fails(&["convert", s(&bad), "--output", s(&out)]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn truncated_and_bit_flipped_archives_never_panic() {
    let bytes = std::fs::read(seed()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.keras");
    let mut cases: Vec<Vec<u8>> = [10, 100, 1000, bytes.len() / 2, bytes.len() - 1]
        .iter()
        .map(|&n| bytes[..n].to_vec())
        .collect();
    for i in 0..24 {
        let mut b = bytes.clone();
        let pos = (i * 7919 + 13) % b.len();
        b[pos] ^= 0x5a;
        cases.push(b);
    }
    for case in cases {
        std::fs::write(&path, &case).unwrap();
        let (_ok, _out, stderr) = kerasrs(&["load", s(&path)]);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn in_place_replaces_the_input_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("m.keras");
    std::fs::copy(fixtures_dir().join("models/act_relu.keras"), &copy).unwrap();
    let err = fails(&[
        "prune",
        s(&copy),
        "--threshold",
        "0.1",
        "--output",
        s(&copy),
    ]);
    assert!(err.contains("--in-place"), "{err}");
    let (ok, _, stderr) = kerasrs(&[
        "prune",
        s(&copy),
        "--threshold",
        "0.1",
        "--output",
        s(&copy),
        "--in-place",
    ]);
    assert!(ok, "{stderr}");
    let model = kerasrs::Model::open(&copy).unwrap();
    let kernel = &model.layers[1].dense().unwrap().kernel;
    assert!(kernel.iter().all(|w| *w == 0.0 || w.abs() >= 0.1));
    assert!(kernel.iter().any(|w| *w == 0.0));
    // Only the model remains: no temporary files.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bad_training_data_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let digits = fixtures_dir().join("models/digits.keras");
    let cases: Vec<(&str, ndarray::ArrayD<f32>, ndarray::ArrayD<f32>, &str)> = vec![
        (
            "empty",
            ndarray::ArrayD::zeros(vec![0, 64]),
            ndarray::ArrayD::zeros(vec![0]),
            "empty",
        ),
        (
            "nan",
            ndarray::ArrayD::from_elem(vec![4, 64], f32::NAN),
            ndarray::ArrayD::zeros(vec![4]),
            "not finite",
        ),
        (
            "label",
            ndarray::ArrayD::zeros(vec![4, 64]),
            ndarray::ArrayD::from_elem(vec![4], 10.0),
            "10",
        ),
        (
            "rows",
            ndarray::ArrayD::zeros(vec![4, 64]),
            ndarray::ArrayD::zeros(vec![3]),
            "target rows",
        ),
        (
            "width",
            ndarray::ArrayD::zeros(vec![4, 63]),
            ndarray::ArrayD::zeros(vec![4]),
            "(N, 64)",
        ),
    ];
    for (name, x, y, needle) in cases {
        let xp = dir.path().join(format!("{name}.x.npy"));
        let yp = dir.path().join(format!("{name}.y.npy"));
        kerasrs::data::write_npy_f32(&xp, &x).unwrap();
        kerasrs::data::write_npy_f32(&yp, &y).unwrap();
        let err = fails(&[
            "finetune",
            s(&digits),
            "--x",
            s(&xp),
            "--y",
            s(&yp),
            "--output",
            s(&out),
        ]);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!out.exists(), "{name}");
    }
}

/// The ticket model (three inputs, two outputs) with its config edited.
fn edited_graph(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut file =
        KerasFile::open(fixtures_dir().join("graph/ticket_two_outputs.before.keras")).unwrap();
    edit(&mut file.config);
    let path = dir.join(name);
    file.save(&path).unwrap();
    path
}

fn layer_index(config: &serde_json::Value, name: &str) -> usize {
    config["config"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["name"] == name)
        .unwrap()
}

/// Broken graphs are refused at load with the layer named: a cycle, a
/// reference to a layer that does not exist, a tensor index past a layer's
/// outputs, and a layer output too large to allocate.
#[test]
fn broken_graphs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // `features` reads `priority`, which reads `features`.
    let cycle = edited_graph(dir.path(), "cycle.keras", |c| {
        let i = layer_index(c, "features");
        c["config"]["layers"][i]["inbound_nodes"][0]["args"][0][2]["config"]["keras_history"] =
            serde_json::json!(["priority", 0, 0]);
    });
    let err = fails(&["load", s(&cycle)]);
    assert!(err.contains("cycle") && err.contains("features"), "{err}");

    let missing = edited_graph(dir.path(), "missing.keras", |c| {
        let i = layer_index(c, "priority");
        c["config"]["layers"][i]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] =
            serde_json::json!(["nowhere", 0, 0]);
    });
    let err = fails(&["load", s(&missing)]);
    assert!(err.contains("nowhere"), "{err}");

    let tensor = edited_graph(dir.path(), "tensor.keras", |c| {
        let i = layer_index(c, "priority");
        c["config"]["layers"][i]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] =
            serde_json::json!(["features", 0, 5]);
    });
    let err = fails(&["load", s(&tensor)]);
    assert!(err.contains("tensor index"), "{err}");

    let huge = edited_graph(dir.path(), "huge.keras", |c| {
        let i = layer_index(c, "features");
        let repeat = serde_json::json!({
            "module": "keras.layers", "class_name": "RepeatVector",
            "config": {"name": "boom", "n": 30_000_000, "trainable": true, "dtype": "float32"},
            "registered_name": null, "name": "boom",
            "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
                "shape": [null, 12], "dtype": "float32", "keras_history": ["features", 0, 0]}}],
                "kwargs": {}}]
        });
        c["config"]["layers"]
            .as_array_mut()
            .unwrap()
            .insert(i + 1, repeat);
    });
    let err = fails(&["load", s(&huge)]);
    assert!(err.contains("boom") && err.contains("per sample"), "{err}");
}

/// Outputs that cannot be written are refused before any work, by every
/// command: a directory, a device (`/dev/null` stays a device), a missing
/// directory.
#[test]
fn unwritable_outputs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let digits = fixtures_dir().join("models/digits.keras");
    let data = fixtures_dir().join("digits.npz");
    let missing = dir.path().join("nowhere/out.keras");
    for (output, expected) in [
        (dir.path().to_path_buf(), "is a directory"),
        (PathBuf::from("/dev/null"), "not a regular file"),
        (missing, "does not exist"),
    ] {
        let start = std::time::Instant::now();
        let err = fails(&[
            "finetune",
            s(&digits),
            "--data",
            s(&data),
            "--epochs",
            "50",
            "--output",
            s(&output),
        ]);
        assert!(err.contains(expected), "{err}");
        assert!(
            start.elapsed().as_secs_f64() < 5.0,
            "refused only after training"
        );
        let err = fails(&["convert", s(&digits), "--output", s(&output)]);
        assert!(err.contains(expected), "{err}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let null = std::fs::metadata("/dev/null").unwrap().file_type();
        assert!(null.is_char_device());
    }
}
