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

/// What a plot draws, as laid out by a real renderer (resvg, with the
/// system's fonts): every text with its box on the canvas, and the box of
/// every coloured (not white) filled shape: bars, markers, legend swatches.
struct Drawn {
    texts: Vec<(String, resvg::usvg::Rect)>,
    fills: Vec<resvg::usvg::Rect>,
    /// Outlined boxes: legends.
    boxes: Vec<resvg::usvg::Rect>,
}

fn laid_out(svg: &str) -> (Drawn, resvg::usvg::Tree) {
    use resvg::usvg;
    fn walk(g: &usvg::Group, out: &mut Drawn) {
        for node in g.children() {
            match node {
                usvg::Node::Group(g) => walk(g, out),
                usvg::Node::Text(t) => {
                    let text: String = t.chunks().iter().map(|c| c.text()).collect();
                    out.texts.push((text, t.abs_bounding_box()));
                }
                usvg::Node::Path(p) => {
                    let coloured = p.fill().is_some_and(|f| match f.paint() {
                        usvg::Paint::Color(c) => (c.red, c.green, c.blue) != (255, 255, 255),
                        _ => true,
                    });
                    if coloured {
                        out.fills.push(p.abs_bounding_box());
                    } else if p.fill().is_none() && p.stroke().is_some() {
                        // Closed rectangular outlines (not lines, nor the
                        // rings marking a selected point).
                        let b = p.abs_bounding_box();
                        use resvg::tiny_skia::PathSegment as Seg;
                        let segments: Vec<Seg> = p.data().segments().collect();
                        let rect = segments.iter().any(|s| matches!(s, Seg::Close))
                            && segments
                                .iter()
                                .all(|s| !matches!(s, Seg::QuadTo(..) | Seg::CubicTo(..)));
                        if rect && b.width() > 2.0 && b.height() > 2.0 {
                            out.boxes.push(b);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    // The plots ask for `sans-serif`; fontdb maps that to Arial, which a
    // Linux machine seldom has: take the first sans-serif face installed.
    let family = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"]
        .into_iter()
        .find(|f| {
            db.faces()
                .any(|face| face.families.iter().any(|(n, _)| n == f))
        })
        .expect("no sans-serif system font to lay out the plots' text (install fonts-dejavu-core)");
    db.set_sans_serif_family(family);
    let tree = usvg::Tree::from_str(svg, &opt).expect("the SVG parses");
    let mut drawn = Drawn {
        texts: Vec::new(),
        fills: Vec::new(),
        boxes: Vec::new(),
    };
    walk(tree.root(), &mut drawn);
    (drawn, tree)
}

/// How far two boxes overlap in each direction (negative: apart).
fn overlap(a: &resvg::usvg::Rect, b: &resvg::usvg::Rect) -> (f32, f32) {
    (
        a.right().min(b.right()) - a.left().max(b.left()),
        a.bottom().min(b.bottom()) - a.top().max(b.top()),
    )
}

/// The plots `sparsity --plot` and `sweep` write render, and their labels
/// are legible: every text lies on the canvas, no two texts overlap (the L1
/// axis once had labels like `3.0000000000000003e-4` running into each
/// other) and no text lies on a bar or marker (the legend once covered the
/// tallest bar). The PNGs are left in `target/tmp/plots/` to look at.
#[test]
fn plots_render_legibly() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let digits = "fixtures/models/digits.keras";
    let conv = "fixtures/conv/resnet_block_bn.before.keras";
    for (model, plot) in [(digits, p("digits.svg")), (conv, p("conv.svg"))] {
        let (ok, _, stderr) = kerasrs(&["sparsity", model, "--plot", &plot]);
        assert!(ok, "{stderr}");
    }
    for (strengths, out) in [("1e-4,3e-4,1e-3,3e-3,1e-2", "near"), ("1e-6,1e-2,3", "far")] {
        let (ok, _, stderr) = kerasrs(&[
            "sweep",
            digits,
            "--data",
            "fixtures/digits.npz",
            "--l1",
            strengths,
            "--epochs",
            "1",
            "--validation-split",
            "0.2",
            "--out-dir",
            &p(out),
            "--quiet",
        ]);
        assert!(ok, "{stderr}");
    }
    let shown = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plots");
    std::fs::create_dir_all(&shown).unwrap();
    for (name, svg) in [
        ("sparsity_digits", p("digits.svg")),
        ("sparsity_conv", p("conv.svg")),
        ("sweep_near", p("near/sweep.svg")),
        ("sweep_far", p("far/sweep.svg")),
    ] {
        let text = std::fs::read_to_string(&svg).unwrap();
        let (
            Drawn {
                texts,
                fills,
                boxes,
            },
            tree,
        ) = laid_out(&text);
        let size = tree.size();
        assert!(texts.len() > 5, "{name}: only {} texts", texts.len());
        for (t, b) in &texts {
            assert!(b.width() > 0.0, "{name}: `{t}` was not laid out");
            assert!(
                b.left() >= -0.5
                    && b.top() >= -0.5
                    && b.right() <= size.width() + 0.5
                    && b.bottom() <= size.height() + 0.5,
                "{name}: `{t}` at {b:?} leaves the {size:?} canvas"
            );
            assert!(t.chars().count() <= 90, "{name}: label `{t}` is too long");
            let number = t.trim_end_matches('%').parse::<f64>().is_ok();
            assert!(
                !number || t.len() <= 8,
                "{name}: tick label `{t}` is not short"
            );
        }
        for (i, (ta, a)) in texts.iter().enumerate() {
            for (tb, b) in &texts[i + 1..] {
                let (w, h) = overlap(a, b);
                assert!(
                    w <= 0.5 || h <= 0.5,
                    "{name}: `{ta}` {a:?} overlaps `{tb}` {b:?}"
                );
            }
            for f in &fills {
                let (w, h) = overlap(a, f);
                assert!(
                    w <= 0.5 || h <= 0.5,
                    "{name}: `{ta}` {a:?} lies on a shape {f:?}"
                );
            }
        }
        for b in &boxes {
            // A legend may hold its own swatches, but must not hide data.
            for f in fills
                .iter()
                .filter(|f| overlap(b, f) != (f.width(), f.height()))
            {
                let (w, h) = overlap(b, f);
                assert!(
                    w <= 0.5 || h <= 0.5,
                    "{name}: the legend {b:?} hides a shape {f:?}"
                );
            }
        }
        let mut pixmap =
            resvg::tiny_skia::Pixmap::new(size.width() as u32, size.height() as u32).unwrap();
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        pixmap.save_png(shown.join(format!("{name}.png"))).unwrap();
    }
}
