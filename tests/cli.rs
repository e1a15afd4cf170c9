//! CLI snapshots: `kerasrs load` on every fixture, and the commands end to end.

mod common;

use common::{PREDICT_TOL, fixtures_dir, kerasrs, manifest, max_scaled_diff};
use kerasrs::data::read_npy_f32;

#[test]
fn load_summaries_snapshot() {
    for f in manifest().models {
        let path = f.model_path();
        let (ok, stdout, stderr) = kerasrs(&["load", path.to_str().unwrap()]);
        assert!(ok, "{}: {stderr}", f.name);
        insta::assert_snapshot!(format!("load_{}", f.name), stdout);
    }
}

#[test]
fn load_json_snapshot() {
    let path = fixtures_dir().join("models/seed.keras");
    let (ok, stdout, stderr) = kerasrs(&["load", path.to_str().unwrap(), "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    insta::assert_json_snapshot!("load_seed_json", v);
}

#[test]
fn predict_writes_keras_equal_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["seed", "functional_chain", "digits"] {
        let m = fixtures_dir().join(format!("models/{name}.keras"));
        let x = fixtures_dir().join(format!("models/{name}.x.npy"));
        let out = dir.path().join(format!("{name}.y.npy"));
        let (ok, _, stderr) = kerasrs(&[
            "predict",
            m.to_str().unwrap(),
            "--input",
            x.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            "5",
        ]);
        assert!(ok, "{name}: {stderr}");
        let y = read_npy_f32(&out).unwrap();
        let keras = read_npy_f32(&fixtures_dir().join(format!("models/{name}.y.npy"))).unwrap();
        assert_eq!(y.shape(), keras.shape());
        let d = max_scaled_diff(y.as_slice().unwrap(), keras.as_slice().unwrap());
        assert!(d <= PREDICT_TOL, "{name}: {d}");
    }
}

#[test]
fn convert_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures_dir().join("models/seed.keras");
    let out = dir.path().join("copy.keras");
    let (ok, _, stderr) = kerasrs(&[
        "convert",
        src.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let a = kerasrs::KerasFile::open(&src).unwrap();
    let b = kerasrs::KerasFile::open(&out).unwrap();
    assert_eq!(a.config, b.config);
    assert_eq!(a.weights, b.weights);
    assert_eq!(a.metadata, b.metadata);
}

#[test]
fn help_has_examples() {
    for cmd in ["load", "predict", "convert"] {
        let (ok, stdout, _) = kerasrs(&[cmd, "--help"]);
        assert!(ok);
        assert!(stdout.contains("Examples:"), "{cmd}: {stdout}");
        assert!(
            stdout.contains(&format!("kerasrs {cmd}")),
            "{cmd}: {stdout}"
        );
    }
}

/// Output to a closed pipe ends quietly (no panic message), as for Unix
/// tools: `kerasrs load model.keras | head -1`.
#[test]
fn closed_pipe_ends_quietly() {
    use std::process::{Command, Stdio};
    let model = common::fixtures_dir().join("graph/ticket_two_outputs.before.keras");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kerasrs"))
        .args(["load", model.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
