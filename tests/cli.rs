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

/// Replace what differs between runs (timings, the temporary directory) in
/// command output.
fn stable(text: &str, tmp: &std::path::Path) -> String {
    text.replace(tmp.to_str().unwrap(), "[tmp]")
}

/// The training log in its non-terminal form, as Keras's `verbose=1` and
/// `verbose=2` print it: on standard output, notes on standard error.
#[test]
fn training_log_is_keras_layout_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tuned.keras");
    let run = |verbose: &str| {
        let (ok, stdout, stderr) = kerasrs(&[
            "finetune",
            "fixtures/models/digits.keras",
            "--data",
            "fixtures/digits.npz",
            "--epochs",
            "2",
            "--no-shuffle",
            "--validation-split",
            "0.2",
            "--verbose",
            verbose,
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
        (stable(&stdout, dir.path()), stable(&stderr, dir.path()))
    };
    let timings = vec![
        (r" \d+s \d+(s|ms|us)/step", " [elapsed] [per step]"),
        (r" - \d+s - \d+(s|ms|us)/step", " - [elapsed] - [per step]"),
    ];
    insta::with_settings!({ filters => timings }, {
        let (one, notes) = run("1");
        insta::assert_snapshot!("training_log_verbose_1", one);
        insta::assert_snapshot!("training_notes", notes);
        insta::assert_snapshot!("training_log_verbose_2", run("2").0);
    });
    let (silent, _) = run("0");
    assert_eq!(silent, "");
}

/// The messages of common mistakes say what is wrong and how to fix it.
#[test]
fn common_mistakes_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    let p = |name: &str| tmp.join(name).to_str().unwrap().to_string();
    let digits = "fixtures/models/digits.keras";
    // A 10-row slice of the digits inputs and labels 5..14 (10 classes).
    let x = fixtures_dir().join("digits.npz");
    let data = kerasrs::data::read_npz_f32(&x, "x").unwrap();
    let rows = data.slice(ndarray::s![..10, ..]).to_owned().into_dyn();
    kerasrs::data::write_npy_f32(std::path::Path::new(&p("x10.npy")), &rows).unwrap();
    let labels = ndarray::Array1::from_iter((5..15).map(|v| v as f32)).into_dyn();
    kerasrs::data::write_npy_f32(std::path::Path::new(&p("y10.npy")), &labels).unwrap();
    let wide = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[10, 3]));
    kerasrs::data::write_npy_f32(std::path::Path::new(&p("y3.npy")), &wide).unwrap();
    let named = [("a", &rows), ("b", &labels)];
    kerasrs::data::write_npz_f32(std::path::Path::new(&p("ab.npz")), &named).unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "npz_without_the_input",
            vec![
                "predict".into(),
                digits.into(),
                "--input".into(),
                p("ab.npz"),
                "--output".into(),
                p("y.npy"),
            ],
        ),
        (
            "npy_as_data",
            vec![
                "evaluate".into(),
                digits.into(),
                "--data".into(),
                p("x10.npy"),
            ],
        ),
        (
            "batch_size_zero",
            vec![
                "predict".into(),
                digits.into(),
                "--input".into(),
                p("x10.npy"),
                "--output".into(),
                p("y.npy"),
                "--batch-size".into(),
                "0".into(),
            ],
        ),
        (
            "label_out_of_range",
            vec![
                "evaluate".into(),
                digits.into(),
                "--x".into(),
                p("x10.npy"),
                "--y".into(),
                p("y10.npy"),
            ],
        ),
        (
            "labels_of_the_wrong_shape",
            vec![
                "finetune".into(),
                digits.into(),
                "--x".into(),
                p("x10.npy"),
                "--y".into(),
                p("y3.npy"),
                "--output".into(),
                p("o.keras"),
            ],
        ),
        (
            "model_output_h5",
            vec![
                "convert".into(),
                digits.into(),
                "--output".into(),
                p("out.h5"),
            ],
        ),
        (
            "model_output_without_extension",
            vec![
                "prune".into(),
                digits.into(),
                "--threshold".into(),
                "0.01".into(),
                "--output".into(),
                p("pruned"),
            ],
        ),
        (
            "plot_as_png",
            vec![
                "sparsity".into(),
                digits.into(),
                "--plot".into(),
                p("w.png"),
            ],
        ),
    ];
    let mut all = String::new();
    for (name, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, stderr) = kerasrs(&args);
        assert!(!ok, "{name} should fail");
        assert!(!stderr.contains("panicked"), "{stderr}");
        all.push_str(&format!("{name}:\n{}\n", stable(&stderr, tmp).trim_end()));
    }
    insta::assert_snapshot!(all);
    // Nothing was written by a refused run.
    for f in ["y.npy", "o.keras", "out.h5", "out.keras", "pruned", "w.png"] {
        assert!(!tmp.join(f).exists(), "{f} was written");
    }
}
