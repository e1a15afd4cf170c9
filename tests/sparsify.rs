//! Sparsity while fine-tuning and the L1 sweep: `finetune --keep-sparsity`,
//! `--prune-to` (TFMOT's polynomial schedule), `--l1-mode proximal` against
//! scikit-learn's Lasso, and `kerasrs sweep`.
//!
//! Models and data are the committed fixtures: `fixtures/models/digits.keras`
//! and `fixtures/digits.npz` (made by `fixtures/generate.py`, Keras 3.15.1),
//! and `fixtures/sparse/` (made by `fixtures/generate_sparse.py`: a linear
//! Keras model, a synthetic sparse regression and scikit-learn 1.9.1's
//! `Lasso(alpha)` fit of it).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use common::{fixtures_dir, kerasrs};
use kerasrs::prune::{WeightKind, params, sparsity_count};
use kerasrs::{KerasFile, Model};
use serde::Deserialize;

/// Weights the Lasso reference and kerasrs may disagree on (max abs):
/// float32 proximal gradient vs float64 coordinate descent.
const LASSO_COEF_TOL: f64 = 1e-4;
/// The converged loss vs Keras's loss at Lasso's solution (relative).
const LASSO_LOSS_TOL: f64 = 1e-5;

fn digits() -> &'static Path {
    static PATH: LazyLock<PathBuf> = LazyLock::new(|| fixtures_dir().join("models/digits.keras"));
    &PATH
}

fn digits_data() -> &'static Path {
    static PATH: LazyLock<PathBuf> = LazyLock::new(|| fixtures_dir().join("digits.npz"));
    &PATH
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run a command that must succeed; returns stdout.
fn ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = kerasrs(args);
    assert!(ok, "{args:?}: {stderr}");
    stdout
}

/// Run a command that must fail; returns its single error line.
fn fails(args: &[&str]) -> String {
    let (ok, stdout, stderr) = kerasrs(args);
    assert!(!ok, "expected failure: {args:?}\n{stdout}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let first = stderr.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("error: "), "{stderr}");
    first
}

/// Dense kernels in layer order: (layer index, values).
fn kernels(m: &Model) -> Vec<(usize, Vec<f32>)> {
    params(m)
        .into_iter()
        .filter(|p| p.kind == WeightKind::Kernel)
        .map(|p| (p.layer, p.values))
        .collect()
}

fn biases(m: &Model) -> Vec<Vec<f32>> {
    params(m)
        .into_iter()
        .filter(|p| p.kind == WeightKind::Bias)
        .map(|p| p.values)
        .collect()
}

fn zeros(v: &[f32]) -> usize {
    v.iter().filter(|w| **w == 0.0).count()
}

/// A history CSV as (header, rows).
fn history(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

fn column(path: &Path, name: &str) -> Vec<f64> {
    let (header, rows) = history(path);
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no `{name}` in {header:?}"));
    rows.iter().map(|r| r[i]).collect()
}

/// Hidden units of digits' first Dense layer (ReLU) that no row of the
/// digits data activates.
fn dead_units(m: &Model) -> Vec<usize> {
    let x = kerasrs::data::read_npz_f32(digits_data(), "x").unwrap();
    let x = x.into_dimensionality::<ndarray::Ix2>().unwrap();
    let d = m.layers[1].dense().unwrap();
    let z = x.dot(&d.kernel) + d.bias.as_ref().unwrap();
    (0..d.units)
        .filter(|&j| z.column(j).iter().all(|v| *v <= 0.0))
        .collect()
}

/// A stored optimizer variable (`optimizer/vars/<i>`) as float32 values.
fn optimizer_var(path: &Path, i: usize) -> Vec<f32> {
    KerasFile::open(path)
        .unwrap()
        .weights
        .group("optimizer/vars")
        .unwrap()
        .dataset(&i.to_string())
        .unwrap()
        .to_f32()
        .unwrap()
}

#[test]
fn keep_sparsity_holds_pruned_weights_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("pruned.keras");
    ok(&[
        "prune",
        s(digits()),
        "--threshold",
        "0.05",
        "-o",
        s(&pruned),
    ]);
    let tuned = dir.path().join("tuned.keras");
    let hist = dir.path().join("h.csv");
    let common = [
        "finetune",
        s(&pruned),
        "--data",
        s(digits_data()),
        "--epochs",
        "2",
        "--seed",
        "3",
        "--quiet",
    ];
    let mut args = common.to_vec();
    args.extend(["--keep-sparsity", "--history", s(&hist), "-o", s(&tuned)]);
    ok(&args);

    let before = Model::open(&pruned).unwrap();
    let after = Model::open(&tuned).unwrap();
    let (mut held, mut moved, mut kept_total) = (0, 0, 0);
    for ((layer, b), (_, a)) in kernels(&before).into_iter().zip(kernels(&after)) {
        for (i, (x, y)) in b.iter().zip(&a).enumerate() {
            if x.to_bits() == 0 {
                assert_eq!(y.to_bits(), 0, "layer {layer} [{i}]: {y} is no longer 0.0");
                held += 1;
            } else {
                kept_total += 1;
                if x.to_bits() != y.to_bits() {
                    moved += 1;
                }
            }
        }
    }
    assert_eq!(
        held, 1073,
        "digits at |w| < 0.05 (see `kerasrs prune` above)"
    );
    // Every other kernel weight trains, except the outgoing weights of
    // hidden units ReLU never activates on this data (no gradient, and
    // dense_1 has no L1 penalty to move them).
    let dead = dead_units(&before);
    let (kb, ka) = (kernels(&before), kernels(&after));
    let frozen_out: Vec<usize> = (0..kb[1].1.len())
        .filter(|&i| kb[1].1[i] != 0.0 && kb[1].1[i] == ka[1].1[i])
        .collect();
    let expected: Vec<usize> = (0..kb[1].1.len())
        .filter(|&i| kb[1].1[i] != 0.0 && dead.contains(&(i / 10)))
        .collect();
    assert_eq!(frozen_out, expected, "dead units {dead:?}");
    assert_eq!(moved, kept_total - expected.len());
    assert!(moved > 1000);
    // Biases are not masked: all train but those of dead units.
    for (l, (b, a)) in biases(&before).iter().zip(biases(&after)).enumerate() {
        for (j, (x, y)) in b.iter().zip(&a).enumerate() {
            assert_eq!(x == y, l == 0 && dead.contains(&j), "bias {l}[{j}]");
        }
    }
    // Adam's m and v of the kernels (optimizer/vars 2, 3 and 6, 7) are
    // reset at the held positions, and trained elsewhere.
    for (k, slots) in [(0, [2, 3]), (1, [6, 7])] {
        for slot in slots {
            let v = optimizer_var(&tuned, slot);
            for (i, w) in kb[k].1.iter().enumerate() {
                if w.to_bits() == 0 {
                    assert_eq!(v[i].to_bits(), 0, "slot {slot}[{i}]");
                }
            }
            assert!(v.iter().any(|x| *x != 0.0));
        }
    }
    // The history gains a sparsity column: zeros over all Dense kernels.
    let total: usize = ka.iter().map(|(_, v)| v.len()).sum();
    for sp in column(&hist, "sparsity") {
        assert_eq!(sp as f32, (held as f64 / total as f64) as f32);
    }
    let (header, _) = history(&hist);
    assert_eq!(header, ["epoch", "loss", "accuracy", "sparsity"]);

    // Without the flag the same fine-tuning moves the pruned weights.
    let free = dir.path().join("free.keras");
    let free_hist = dir.path().join("free.csv");
    let mut args = common.to_vec();
    args.extend(["--history", s(&free_hist), "-o", s(&free)]);
    ok(&args);
    let free_zeros: usize = kernels(&Model::open(&free).unwrap())
        .iter()
        .map(|(_, v)| zeros(v))
        .sum();
    assert!(
        free_zeros < held / 10,
        "{free_zeros} zeros without --keep-sparsity"
    );
    // ... and keeps Keras's history columns only.
    assert_eq!(history(&free_hist).0, ["epoch", "loss", "accuracy"]);
}

#[test]
fn keep_sparsity_with_mask_bias_holds_zero_biases() {
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("pruned.keras");
    ok(&[
        "prune",
        s(digits()),
        "--threshold",
        "0.01",
        "--include-bias",
        "-o",
        s(&pruned),
    ]);
    let before = Model::open(&pruned).unwrap();
    let zero_bias: usize = biases(&before).iter().map(|b| zeros(b)).sum();
    assert!(zero_bias > 0, "dense_1's bias has weights below 0.01");
    let out = dir.path().join("out.keras");
    ok(&[
        "finetune",
        s(&pruned),
        "--data",
        s(digits_data()),
        "--keep-sparsity",
        "--mask-bias",
        "--quiet",
        "-o",
        s(&out),
    ]);
    let after = Model::open(&out).unwrap();
    let mut moved = 0;
    for (b, a) in biases(&before).iter().zip(biases(&after)) {
        for (x, y) in b.iter().zip(&a) {
            if *x == 0.0 {
                assert_eq!(y.to_bits(), 0);
            } else if x != y {
                moved += 1;
            }
        }
    }
    assert!(
        moved >= 42 - zero_bias - dead_units(&before).len(),
        "{moved}"
    );
}

#[test]
fn prune_to_follows_the_polynomial_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let hist = dir.path().join("h.csv");
    ok(&[
        "finetune",
        s(digits()),
        "--data",
        s(digits_data()),
        "--validation-split",
        "0.2",
        "--epochs",
        "3",
        "--prune-to",
        "0.7",
        "--prune-end",
        "2",
        "--prune-frequency",
        "10",
        "--quiet",
        "--history",
        s(&hist),
        "-o",
        s(&out),
    ]);
    let after = Model::open(&out).unwrap();
    let ks = kernels(&after);
    // Every kernel ends with exactly round(0.7·n) zeros (the prune rule).
    for (layer, v) in &ks {
        assert_eq!(zeros(v), sparsity_count(0.7, v.len()), "layer {layer}");
    }
    assert_eq!(zeros(&ks[0].1), 1434); // round(0.7 · 2048) = round(1433.6)
    assert_eq!(zeros(&ks[1].1), 224);
    // Biases are not pruned.
    assert!(biases(&after).iter().all(|b| zeros(b) == 0));

    // The sparsity column follows the schedule: 1437 training rows make 45
    // steps per epoch; pruning runs from update 0 to update 90, masks are
    // recomputed every 10 updates, so epoch 1 ends with the masks of
    // update 40, at s = 0.7 + (0 − 0.7)(1 − 40/90)³.
    let n: Vec<usize> = ks.iter().map(|(_, v)| v.len()).collect();
    let total: usize = n.iter().sum();
    let at = |update: f64| -> f32 {
        let s = 0.7 - 0.7 * (1.0 - update / 90.0).powi(3);
        let z: usize = n.iter().map(|&k| sparsity_count(s, k)).sum();
        (z as f64 / total as f64) as f32
    };
    let sp: Vec<f32> = column(&hist, "sparsity")
        .iter()
        .map(|v| *v as f32)
        .collect();
    assert_eq!(sp, [at(40.0), at(90.0), at(90.0)]);
    assert!(sp[0] > 0.3 && sp[0] < 0.7, "{sp:?}");

    // Optimizer slots at pruned positions are reset (Adam m, v: vars 2, 3).
    for slot in [2, 3] {
        let v = optimizer_var(&out, slot);
        for (w, m) in ks[0].1.iter().zip(&v) {
            if *w == 0.0 {
                assert_eq!(m.to_bits(), 0);
            }
        }
    }
}

#[test]
fn prune_to_covers_trainable_kernels_and_biases_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    ok(&[
        "finetune",
        s(digits()),
        "--data",
        s(digits_data()),
        "--epochs",
        "2",
        "--prune-to",
        "0.5",
        "--prune-begin",
        "1",
        "--prune-initial",
        "0.2",
        "--mask-bias",
        "--freeze",
        "dense_1",
        "--quiet",
        "-o",
        s(&out),
    ]);
    let before = Model::open(digits()).unwrap();
    let after = Model::open(&out).unwrap();
    let (kb, ka) = (kernels(&before), kernels(&after));
    assert_eq!(zeros(&ka[0].1), sparsity_count(0.5, 2048));
    // The frozen layer is neither trained nor pruned.
    assert_eq!(ka[1].1, kb[1].1);
    let (bb, ba) = (biases(&before), biases(&after));
    assert_eq!(zeros(&ba[0]), sparsity_count(0.5, 32));
    assert_eq!(ba[1], bb[1]);
}

#[test]
fn bad_sparsity_options_fail_with_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--prune-to", "1.5"],
            "final pruning sparsity must be between 0 and 1",
        ),
        (
            &["--prune-to", "0.5", "--prune-end", "3"],
            "pruning cannot end at epoch 3: training runs 2 epoch(s)",
        ),
        (
            &["--prune-to", "0.5", "--prune-begin", "2"],
            "pruning must begin before it ends",
        ),
        (
            &["--prune-to", "0.5", "--prune-initial", "0.6"],
            "initial pruning sparsity 0.6 is above the final sparsity 0.5",
        ),
        (
            &["--prune-to", "0.5", "--prune-frequency", "0"],
            "frequency must be at least 1",
        ),
        (
            &["--mask-bias"],
            "masking biases needs `--keep-sparsity` or `--prune-to`",
        ),
        (
            &["--prune-begin", "1"],
            "required arguments were not provided",
        ),
        (&["--l1-mode", "lasso"], "invalid value 'lasso'"),
    ];
    for (extra, expected) in cases {
        let mut args = vec![
            "finetune",
            s(digits()),
            "--data",
            s(digits_data()),
            "--epochs",
            "2",
            "-o",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let err = fails(&args);
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} wrote an output");
    }
}

#[derive(Debug, Deserialize)]
struct SparseManifest {
    keras_version: String,
    sklearn_version: String,
    data: SparseData,
    model: SparseModel,
    lasso: LassoFit,
    kerasrs: KerasrsSide,
}

#[derive(Debug, Deserialize)]
struct SparseData {
    file: String,
    samples: usize,
    features: usize,
    informative: Vec<usize>,
}

#[derive(Debug, Deserialize)]
struct SparseModel {
    file: String,
}

#[derive(Debug, Deserialize)]
struct LassoFit {
    alpha: f64,
    selected: Vec<usize>,
    coefficients: Vec<f64>,
    intercept: f64,
}

#[derive(Debug, Deserialize)]
struct KerasrsSide {
    l1: f64,
    keras_loss_at_lasso_solution: f64,
}

#[test]
fn proximal_l1_selects_the_lasso_features() {
    let text = std::fs::read_to_string(fixtures_dir().join("sparse/manifest.json")).unwrap();
    let m: SparseManifest = serde_json::from_str(&text).unwrap();
    assert_eq!(m.keras_version, "3.15.1");
    assert_eq!(m.sklearn_version, "1.9.1");
    assert_eq!(m.kerasrs.l1, 2.0 * m.lasso.alpha);
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures_dir().join(&m.model.file);
    let data = fixtures_dir().join(&m.data.file);
    let batch = m.data.samples.to_string();
    let l1 = m.kerasrs.l1.to_string();
    let run = |mode: &str, out: &Path, hist: &Path| {
        ok(&[
            "finetune",
            s(&model),
            "--data",
            s(&data),
            "--epochs",
            "200",
            "--batch-size",
            &batch,
            "--no-shuffle",
            "--l1",
            &l1,
            "--l1-mode",
            mode,
            "--quiet",
            "--history",
            s(hist),
            "-o",
            s(out),
        ]);
    };
    // Full batches: proximal gradient descent (ISTA) on Keras's objective
    // mse + λ‖w‖₁, which is twice Lasso's objective for λ = 2α.
    let out = dir.path().join("prox.keras");
    let hist = dir.path().join("prox.csv");
    run("proximal", &out, &hist);
    let tuned = Model::open(&out).unwrap();
    let dense = tuned.layers.iter().find_map(|l| l.dense()).unwrap();
    let w: Vec<f32> = dense.kernel.iter().copied().collect();
    assert_eq!(w.len(), m.data.features);
    let kept: Vec<usize> = (0..w.len()).filter(|&i| w[i] != 0.0).collect();
    let informative: BTreeSet<usize> = m.data.informative.iter().copied().collect();
    let others: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|i| !informative.contains(i))
        .collect();
    println!("informative features:        {:?}", m.data.informative);
    println!(
        "sklearn Lasso(alpha={}) keeps: {:?}",
        m.lasso.alpha, m.lasso.selected
    );
    println!("kerasrs --l1 {} proximal keeps: {kept:?}", m.kerasrs.l1);
    for (i, c) in m.lasso.selected.iter().zip(&m.lasso.coefficients) {
        println!("  feature {i:3}: sklearn {c:+.6}, kerasrs {:+.6}", w[*i]);
    }
    println!(
        "  intercept:   sklearn {:+.6}, kerasrs {:+.6}",
        m.lasso.intercept,
        dense.bias.as_ref().unwrap()[0]
    );
    assert!(
        informative.iter().all(|i| kept.contains(i)),
        "an informative feature was dropped: kept {kept:?}"
    );
    assert!(
        others.len() <= 5,
        "too many noise features kept: {others:?}"
    );
    // The fit is Lasso's: same objective value (Keras's evaluate at Lasso's
    // solution, from the generator) and the same coefficients.
    let loss = *column(&hist, "loss").last().unwrap();
    let rel = (loss - m.kerasrs.keras_loss_at_lasso_solution).abs()
        / m.kerasrs.keras_loss_at_lasso_solution;
    assert!(
        rel <= LASSO_LOSS_TOL,
        "loss {loss} vs {}",
        m.kerasrs.keras_loss_at_lasso_solution
    );
    let mut coef = vec![0.0f64; w.len()];
    for (i, c) in m.lasso.selected.iter().zip(&m.lasso.coefficients) {
        coef[*i] = *c;
    }
    let worst = w
        .iter()
        .zip(&coef)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= LASSO_COEF_TOL, "max |w − w_lasso| = {worst}");
    let sp = column(&hist, "sparsity");
    assert_eq!(
        *sp.last().unwrap() as f32,
        ((w.len() - kept.len()) as f64 / w.len() as f64) as f32
    );

    // Keras's subgradient mode on the same problem makes no exact zeros.
    let out = dir.path().join("keras.keras");
    let hist = dir.path().join("keras.csv");
    run("keras", &out, &hist);
    let w = kernels(&Model::open(&out).unwrap()).remove(0).1;
    println!("kerasrs --l1-mode keras: {} exact zeros", zeros(&w));
    assert_eq!(zeros(&w), 0);
}

/// The sweep's JSON with numbers rounded to 3 decimals, as a table.
fn rounded_table(v: &serde_json::Value) -> String {
    let r3 = |x: &serde_json::Value| format!("{:.3}", x.as_f64().unwrap());
    let mut out = format!(
        "metric: {} (higher is better: {}), l1 mode {}, {} epochs, tolerance {}\n",
        v["metric"].as_str().unwrap(),
        v["higher_is_better"],
        v["l1_mode"].as_str().unwrap(),
        v["epochs"],
        v["tolerance"]
    );
    for (i, row) in v["rows"].as_array().unwrap().iter().enumerate() {
        let mark = match (
            i == v["selected"].as_u64().unwrap() as usize,
            i == v["best"].as_u64().unwrap() as usize,
        ) {
            (true, true) => " <- selected, best",
            (true, false) => " <- selected",
            (false, true) => " <- best",
            _ => "",
        };
        out.push_str(&format!(
            "l1 {:e} | loss {} | metric {} | sparsity {} | features {}/{} | {}{mark}\n",
            row["l1"].as_f64().unwrap(),
            r3(&row["loss"]),
            r3(&row["metric"]),
            r3(&row["sparsity"]),
            row["features_kept"],
            row["features"],
            Path::new(row["model"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
        ));
    }
    out
}

#[test]
fn sweep_on_digits() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    let args = [
        "sweep",
        s(digits()),
        "--data",
        s(digits_data()),
        "--l1",
        "1e-2,1e-4,1e-3,3e-2",
        "--validation-split",
        "0.2",
        "--epochs",
        "3",
        "--optimizer",
        "sgd",
        "--learning-rate",
        "0.1",
        "--out-dir",
        s(&out_dir),
        "--quiet",
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v: serde_json::Value = serde_json::from_str(&ok(&json_args)).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let l1: Vec<f64> = rows.iter().map(|r| r["l1"].as_f64().unwrap()).collect();
    assert_eq!(l1, [1e-4, 1e-3, 1e-2, 3e-2], "sorted");
    let sparsity = |r: &serde_json::Value| r["sparsity"].as_f64().unwrap();
    assert!(
        sparsity(&rows[3]) > sparsity(&rows[0]),
        "largest λ not sparser than the smallest"
    );
    assert_eq!(v["metric"], "val_accuracy");
    // Each row describes the model written for it.
    for row in rows {
        let path = PathBuf::from(row["model"].as_str().unwrap());
        let name = format!("l1_{:e}.keras", row["l1"].as_f64().unwrap());
        assert_eq!(path, out_dir.join(&name));
        let m = Model::open(&path).unwrap();
        let ks = kernels(&m);
        let (z, n) = ks
            .iter()
            .fold((0, 0), |(z, n), (_, k)| (z + zeros(k), n + k.len()));
        assert_eq!(sparsity(row), z as f64 / n as f64, "{name}");
        let first = &ks[0].1;
        let kept = (0..64)
            .filter(|i| first[i * 32..(i + 1) * 32].iter().any(|w| *w != 0.0))
            .count();
        assert_eq!(row["features_kept"].as_u64().unwrap() as usize, kept);
        // --l1 set L1(λ) on every Dense kernel, recorded in the config.
        for layer in &m.layers {
            if let Some(d) = layer.dense() {
                assert_eq!(
                    d.kernel_regularizer.unwrap().l1(),
                    row["l1"].as_f64().unwrap()
                );
            }
        }
    }
    // The selection rule: the sparsest within the tolerance of the best.
    let metric = |i: usize| rows[i]["metric"].as_f64().unwrap();
    let best = v["best"].as_u64().unwrap() as usize;
    let selected = v["selected"].as_u64().unwrap() as usize;
    assert!((0..rows.len()).all(|i| metric(i) <= metric(best)));
    assert!(metric(selected) >= metric(best) - 0.01);
    for i in 0..rows.len() {
        if metric(i) >= metric(best) - 0.01 {
            assert!(sparsity(&rows[i]) <= sparsity(&rows[selected]));
        }
    }
    insta::assert_snapshot!("sweep_digits", rounded_table(&v));

    // The plot is an SVG with both panels and one point per λ in each.
    let svg = std::fs::read_to_string(out_dir.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("val_accuracy against the L1 strength"));
    assert!(svg.contains("sparsity (exact zeros in kernels)"));
    assert!(svg.contains("L1 strength (log scale)"));
    assert!(svg.matches("<circle").count() >= 2 * rows.len() + 2);

    // The text table names the same selection.
    let text = ok(&args);
    let selected_line = text
        .lines()
        .find(|l| l.contains("selected"))
        .unwrap_or_else(|| panic!("{text}"));
    let name = format!("l1_{:e}.keras", rows[selected]["l1"].as_f64().unwrap());
    assert!(selected_line.contains(&name), "{text}");
    assert!(text.contains("Sparsest within 0.01 of it"), "{text}");
}

#[test]
fn sweep_refuses_bad_strengths() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    for (l1, expected) in [
        (
            "1e-3,0",
            "every `--l1` strength must be finite and > 0, found 0",
        ),
        ("1e-3,1e-3", "`--l1` lists 0.001 twice"),
    ] {
        let err = fails(&[
            "sweep",
            s(digits()),
            "--data",
            s(digits_data()),
            "--l1",
            l1,
            "--out-dir",
            s(&out_dir),
        ]);
        assert!(err.contains(expected), "{err}");
        assert!(!out_dir.exists());
    }
}

#[test]
fn help_has_examples() {
    for (cmd, needle) in [("finetune", "--prune-to"), ("sweep", "--tolerance")] {
        let (ok, stdout, _) = kerasrs(&[cmd, "--help"]);
        assert!(ok);
        assert!(stdout.contains("Examples:"), "{cmd}: {stdout}");
        assert!(
            stdout.contains(&format!("kerasrs {cmd}")),
            "{cmd}: {stdout}"
        );
        assert!(stdout.contains(needle), "{cmd}: {stdout}");
    }
}
