//! Pruning and sparsity reports: exactness of `kerasrs prune` (library and
//! CLI), the documented sparsity rule, predictions of pruned models, errors,
//! and snapshots of both commands.
//!
//! The weights come from the committed fixtures (real Keras 3.15.1); the
//! expected pruned weights are computed here directly from those weights, so
//! every check is exact (bit patterns), no tolerance.

mod common;

use std::path::{Path, PathBuf};

use common::{fixtures_dir, kerasrs};
use kerasrs::prune::{
    PruneCriterion, PruneSpec, WeightKind, params, prune, sparsity_report, zero_optimizer_slots,
};
use kerasrs::{KerasFile, Model};

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(format!("models/{name}.keras"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of a fixture without stored optimizer state (`optimizer/vars`
/// emptied), which the CLI can prune before optimizer-slot zeroing exists.
fn without_optimizer(name: &str, dir: &Path) -> PathBuf {
    let mut file = KerasFile::open(fixture(name)).unwrap();
    if let Some(vars) = file.weights.group_mut("optimizer/vars") {
        vars.children.clear();
    }
    let path = dir.join(format!("{name}_noopt.keras"));
    file.save(&path).unwrap();
    assert!(Model::open(&path).unwrap().optimizer_state().is_none());
    path
}

/// (layer index, kernel|bias, values) of every Dense variable.
fn variables(model: &Model) -> Vec<(usize, WeightKind, Vec<f32>)> {
    params(model)
        .into_iter()
        .map(|p| (p.layer, p.kind, p.values))
        .collect()
}

/// Run a prune that must succeed; returns stdout.
fn prune_cli(args: &[&str]) -> String {
    let mut full = vec!["prune"];
    full.extend_from_slice(args);
    let (ok, stdout, stderr) = kerasrs(&full);
    assert!(ok, "{args:?}: {stderr}");
    stdout
}

/// Check `after` against `before` pruned by `|w| < t` in the selected
/// variables: zeros exactly there, every other weight bit-identical.
fn assert_threshold_pruned(
    before: &Model,
    after: &Model,
    t: f64,
    selected: impl Fn(&str, WeightKind) -> bool,
) -> usize {
    let mut pruned = 0;
    let names: Vec<&str> = before.layers.iter().map(|l| l.name.as_str()).collect();
    for ((layer, kind, a), (_, _, b)) in variables(before).into_iter().zip(variables(after)) {
        let sel = selected(names[layer], kind);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if sel && f64::from(x.abs()) < t {
                assert_eq!(
                    y.to_bits(),
                    0,
                    "{}/{kind}[{i}]: {x} not pruned",
                    names[layer]
                );
                pruned += 1;
            } else {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "{}/{kind}[{i}] changed",
                    names[layer]
                );
            }
        }
    }
    pruned
}

#[test]
fn threshold_zeros_exactly_the_small_kernel_weights() {
    let dir = tempfile::tempdir().unwrap();
    for (name, t) in [
        ("digits", 0.01),
        ("uncompiled", 0.1),
        ("sequential_flatten", 0.2),
    ] {
        let src = if name == "digits" {
            without_optimizer(name, dir.path())
        } else {
            fixture(name)
        };
        let out = dir.path().join(format!("{name}_pruned.keras"));
        prune_cli(&[s(&src), "--threshold", &t.to_string(), "-o", s(&out)]);
        let before = Model::open(&src).unwrap();
        let after = Model::open(&out).unwrap();
        let pruned = assert_threshold_pruned(&before, &after, t, |_, k| k == WeightKind::Kernel);
        assert!(pruned > 0, "{name}: nothing pruned at {t}");
        // Only weights changed: config and metadata are the same.
        let (a, b) = (before.source(), after.source());
        assert_eq!(a.config, b.config, "{name}");
        assert_eq!(a.metadata, b.metadata, "{name}");
    }
}

#[test]
fn include_bias_and_layers_select_what_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let src = without_optimizer("digits", dir.path());
    let before = Model::open(&src).unwrap();

    let out = dir.path().join("bias.keras");
    prune_cli(&[
        s(&src),
        "--threshold",
        "0.01",
        "--include-bias",
        "-o",
        s(&out),
    ]);
    let after = Model::open(&out).unwrap();
    assert_threshold_pruned(&before, &after, 0.01, |_, _| true);
    // dense_1's bias has weights below 0.01 (see the sparsity snapshot).
    let bias = after.layers[2].dense().unwrap().bias.as_ref().unwrap();
    assert!(bias.iter().any(|b| *b == 0.0));

    let out = dir.path().join("layers.keras");
    prune_cli(&[
        s(&src),
        "--threshold",
        "0.05",
        "--layers",
        "dense_1",
        "-o",
        s(&out),
    ]);
    let after = Model::open(&out).unwrap();
    let pruned = assert_threshold_pruned(&before, &after, 0.05, |layer, kind| {
        layer == "dense_1" && kind == WeightKind::Kernel
    });
    assert!(pruned > 0);
}

/// `round(s·n)` with halves to even, computed independently of the crate.
fn expected_count(s: f64, n: usize) -> usize {
    let x = s * n as f64;
    let floor = x.floor();
    let k = if x - floor == 0.5 {
        if floor % 2.0 == 0.0 {
            floor
        } else {
            floor + 1.0
        }
    } else {
        x.round()
    };
    k as usize
}

/// The pruned positions hold the smallest magnitudes: every pruned magnitude
/// is at most every kept one, and on equal magnitudes the pruned position
/// comes first (order: variable, then position).
fn assert_smallest(groups: &[(Vec<f32>, Vec<f32>)]) {
    let mut pruned = Vec::new();
    let mut kept = Vec::new();
    for (g, (before, after)) in groups.iter().enumerate() {
        for (i, (x, y)) in before.iter().zip(after).enumerate() {
            if y.to_bits() == 0 && x.to_bits() != 0 {
                pruned.push((x.abs(), g, i));
            } else {
                assert_eq!(x.to_bits(), y.to_bits());
                kept.push((x.abs(), g, i));
            }
        }
    }
    let max_pruned = pruned
        .iter()
        .copied()
        .fold(None, |m: Option<(f32, usize, usize)>, p| {
            Some(match m {
                Some(m) if m.0 > p.0 || (m.0 == p.0 && (m.1, m.2) > (p.1, p.2)) => m,
                _ => p,
            })
        });
    if let Some(mp) = max_pruned {
        for k in &kept {
            assert!(
                k.0 > mp.0 || (k.0 == mp.0 && (k.1, k.2) > (mp.1, mp.2)),
                "kept {k:?} is smaller than pruned {mp:?}"
            );
        }
    }
}

#[test]
fn sparsity_per_variable_prunes_round_half_even_smallest() {
    // S = 0.25 makes halves: dense_1's bias has 10 weights, 2.5 -> 2.
    for (s, include_bias) in [(0.25, true), (0.3, false), (1.0, true), (0.0, true)] {
        let before = Model::open(fixture("digits")).unwrap();
        let mut after = before.clone();
        let spec = PruneSpec {
            include_bias,
            ..PruneSpec::sparsity(s, false)
        };
        let report = prune(&mut after, &spec).unwrap();
        let pairs: Vec<_> = variables(&before)
            .into_iter()
            .zip(variables(&after))
            .collect();
        let mut rows = report.rows.iter();
        for ((layer, kind, a), (_, _, b)) in pairs {
            if kind == WeightKind::Bias && !include_bias {
                assert_eq!(a, b);
                continue;
            }
            let row = rows.next().unwrap();
            assert_eq!((row.layer_index, row.weight), (layer, kind));
            // The fixture has no zeros, so zeros after = pruned = round(s·n).
            assert_eq!(a.iter().filter(|w| **w == 0.0).count(), 0);
            let k = expected_count(s, a.len());
            assert_eq!(
                b.iter().filter(|w| **w == 0.0).count(),
                k,
                "{s} {layer}/{kind}"
            );
            assert_eq!((row.pruned, row.zeros_after), (k, k));
            assert_smallest(&[(a, b)]);
        }
        assert!(rows.next().is_none());
    }
    assert_eq!(expected_count(0.25, 10), 2);
    assert_eq!(expected_count(0.25, 2048), 512);
}

#[test]
fn global_sparsity_uses_one_ranking() {
    let before = Model::open(fixture("digits")).unwrap();
    let mut after = before.clone();
    let report = prune(&mut after, &PruneSpec::sparsity(0.5, true)).unwrap();
    let kernels = |m: &Model| -> Vec<Vec<f32>> {
        variables(m)
            .into_iter()
            .filter(|v| v.1 == WeightKind::Kernel)
            .map(|v| v.2)
            .collect()
    };
    let groups: Vec<(Vec<f32>, Vec<f32>)> =
        kernels(&before).into_iter().zip(kernels(&after)).collect();
    let n: usize = groups.iter().map(|g| g.0.len()).sum();
    let zeros: usize = groups
        .iter()
        .map(|g| g.1.iter().filter(|w| **w == 0.0).count())
        .sum();
    assert_eq!(zeros, expected_count(0.5, n));
    assert_smallest(&groups);
    // One threshold for all, so the layers end up unequally sparse.
    assert_eq!(report.rows[0].threshold, report.rows[1].threshold);
    assert_ne!(
        report.rows[0].zeros_after * 320,
        report.rows[1].zeros_after * 2048
    );
    // Biases are untouched.
    for ((_, kind, a), (_, _, b)) in variables(&before).into_iter().zip(variables(&after)) {
        if kind == WeightKind::Bias {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn global_sparsity_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let src = without_optimizer("digits", dir.path());
    let out = dir.path().join("global.keras");
    let stdout = prune_cli(&[
        s(&src),
        "--sparsity",
        "0.5",
        "--global",
        "--include-bias",
        "--json",
        "-o",
        s(&out),
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let zeros: u64 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["zeros_after"].as_u64().unwrap())
        .sum();
    // round(0.5 · 2410) = 1205
    assert_eq!(zeros, 1205);
    let after = Model::open(&out).unwrap();
    let model_zeros: usize = variables(&after)
        .iter()
        .map(|v| v.2.iter().filter(|w| **w == 0.0).count())
        .sum();
    assert_eq!(model_zeros, 1205);
}

#[test]
fn pruned_model_predicts_like_directly_zeroed_weights() {
    let x = kerasrs::data::read_npy_f32(&fixtures_dir().join("models/digits.x.npy")).unwrap();
    let t = 0.05;
    let mut pruned = Model::open(fixture("digits")).unwrap();
    let spec = PruneSpec {
        include_bias: true,
        ..PruneSpec::threshold(t)
    };
    prune(&mut pruned, &spec).unwrap();

    let mut reference = Model::open(fixture("digits")).unwrap();
    for layer in &mut reference.layers {
        if let Some(d) = layer.dense_mut() {
            d.kernel
                .mapv_inplace(|w| if f64::from(w.abs()) < t { 0.0 } else { w });
            if let Some(b) = &mut d.bias {
                b.mapv_inplace(|w| if f64::from(w.abs()) < t { 0.0 } else { w });
            }
        }
    }
    let y = pruned.predict(x.view(), 7).unwrap();
    let y_ref = reference.predict(x.view(), 7).unwrap();
    assert_eq!(y, y_ref);
    // The unpruned model predicts differently, so the check has teeth.
    let y_orig = Model::open(fixture("digits"))
        .unwrap()
        .predict(x.view(), 7)
        .unwrap();
    assert_ne!(y, y_orig);

    // And the written archive predicts the same after reading it back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pruned.keras");
    pruned.save(&path).unwrap();
    let back = Model::open(&path).unwrap();
    assert_eq!(back.predict(x.view(), 7).unwrap(), y_ref);
}

#[test]
fn optimizer_slot_zeroing_edge_cases() {
    // No stored state: nothing to zero.
    let mut m = Model::open(fixture("uncompiled")).unwrap();
    let report = prune(&mut m, &PruneSpec::threshold(0.1)).unwrap();
    assert!(report.masks.iter().any(|mk| mk.pruned.contains(&true)));
    zero_optimizer_slots(&mut m, &report.masks).unwrap();

    // Stored state without a compile config to interpret it: an error.
    let mut file = KerasFile::open(fixture("digits")).unwrap();
    file.config
        .as_object_mut()
        .unwrap()
        .remove("compile_config");
    let mut m = Model::try_from(file).unwrap();
    let report = prune(&mut m, &PruneSpec::threshold(0.1)).unwrap();
    let err = zero_optimizer_slots(&mut m, &report.masks).unwrap_err();
    assert!(err.to_string().contains("compiled optimizer"), "{err}");

    // Adam state but nothing pruned: fine.
    let mut m = Model::open(fixture("digits")).unwrap();
    let report = prune(&mut m, &PruneSpec::threshold(0.0)).unwrap();
    zero_optimizer_slots(&mut m, &report.masks).unwrap();
}

#[test]
fn masks_match_the_zeroed_positions() {
    let before = Model::open(fixture("no_bias")).unwrap();
    let mut after = before.clone();
    let spec = PruneSpec {
        include_bias: true,
        ..PruneSpec::sparsity(0.4, false)
    };
    let report = prune(&mut after, &spec).unwrap();
    let vars = variables(&after);
    assert_eq!(report.masks.len(), vars.len());
    let mut pruned = 0;
    for (mask, ((layer, kind, values), (_, _, orig))) in report
        .masks
        .iter()
        .zip(vars.into_iter().zip(variables(&before)))
    {
        assert_eq!((mask.layer, mask.kind), (layer, kind));
        assert_eq!(mask.pruned.len(), values.len());
        for ((p, w), o) in mask.pruned.iter().zip(values).zip(orig) {
            if *p {
                assert_eq!(w.to_bits(), 0);
                pruned += 1;
            } else {
                assert_eq!(w.to_bits(), o.to_bits());
            }
        }
    }
    assert!(pruned > 0);
    assert!(matches!(
        report.criterion,
        PruneCriterion::Sparsity { global: false, .. }
    ));
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

#[test]
fn bad_arguments_fail_with_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("uncompiled");
    let out = dir.path().join("out.keras");
    let o = s(&out);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--threshold", "-0.5"],
            "threshold must be a finite number >= 0",
        ),
        (
            &["--threshold", "NaN"],
            "threshold must be a finite number >= 0",
        ),
        (&["--sparsity", "1.5"], "sparsity must be between 0 and 1"),
        (&["--sparsity", "-0.1"], "sparsity must be between 0 and 1"),
        (
            &["--threshold", "0.1", "--sparsity", "0.5"],
            "`--threshold` and `--sparsity` exclude each other",
        ),
        (&[], "give `--threshold T` or `--sparsity S`"),
        (
            &["--threshold", "0.1", "--global"],
            "`--global` only applies",
        ),
        (
            &["--threshold", "0.1", "--layers", "dense,nope"],
            "missing layer `nope` (layers: input_layer, dense, dense_1)",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["prune", s(&src), "-o", o];
        args.extend_from_slice(extra);
        let err = fails(&args);
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} wrote an output");
    }
    let flat = fixture("sequential_flatten");
    let err = fails(&[
        "prune",
        s(&flat),
        "-o",
        o,
        "--threshold",
        "1",
        "--layers",
        "flatten",
    ]);
    assert!(
        err.contains("layer `flatten` is a `Flatten` layer"),
        "{err}"
    );
    assert!(err.contains("layers with kernels: dense"), "{err}");
    assert!(!out.exists());
    // The leftover temporary files of an atomic write would show here too.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn never_overwrites_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.keras");
    std::fs::copy(fixture("uncompiled"), &src).unwrap();
    let bytes = std::fs::read(&src).unwrap();
    let err = fails(&["prune", s(&src), "--threshold", "0.1", "-o", s(&src)]);
    assert!(
        err.contains("refusing to overwrite the input file"),
        "{err}"
    );
    let err = fails(&["sparsity", s(&src), "--plot", s(&src)]);
    assert!(
        err.contains("refusing to overwrite the input file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&src).unwrap(), bytes);
}

#[test]
fn optimizer_slots_are_zeroed_at_pruned_positions() {
    // digits.keras stores Adam state: variables 0 (iterations), 1 (learning
    // rate), then m and v per trainable variable: 2, 3 for the first kernel.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let (ok, _, stderr) = kerasrs(&[
        "prune",
        s(&fixture("digits")),
        "--threshold",
        "0.01",
        "--layers",
        "dense",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{stderr}");
    let before = kerasrs::KerasFile::open(fixture("digits")).unwrap();
    let after = kerasrs::KerasFile::open(&out).unwrap();
    let ds = |f: &kerasrs::KerasFile, p: &str| {
        f.weights
            .group(p.rsplit_once('/').unwrap().0)
            .unwrap()
            .dataset(p.rsplit_once('/').unwrap().1)
            .unwrap()
            .clone()
    };
    let kernel = ds(&before, "layers/dense/vars/0").to_f32().unwrap();
    let pruned: Vec<bool> = kernel.iter().map(|w| w.abs() < 0.01).collect();
    assert!(pruned.contains(&true) && pruned.contains(&false));
    for slot in ["optimizer/vars/2", "optimizer/vars/3"] {
        let (b, a) = (
            ds(&before, slot).to_f32().unwrap(),
            ds(&after, slot).to_f32().unwrap(),
        );
        for i in 0..kernel.len() {
            if pruned[i] {
                assert_eq!(a[i], 0.0, "{slot}[{i}]");
            } else {
                assert_eq!(a[i].to_bits(), b[i].to_bits(), "{slot}[{i}]");
            }
        }
    }
    // Other slots and the counters are untouched.
    for i in [0, 1, 4, 5, 6, 7, 8, 9] {
        let p = format!("optimizer/vars/{i}");
        assert_eq!(ds(&before, &p), ds(&after, &p), "{p}");
    }
}

#[test]
fn prune_table_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let src = without_optimizer("digits", dir.path());
    let out = dir.path().join("p.keras");
    let text = prune_cli(&[
        s(&src),
        "--sparsity",
        "0.25",
        "--include-bias",
        "-o",
        s(&out),
    ]);
    insta::assert_snapshot!("prune_digits_sparsity", text);
    let out = dir.path().join("t.keras");
    let json = prune_cli(&[s(&src), "--threshold", "0.01", "--json", "-o", s(&out)]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    insta::assert_json_snapshot!("prune_digits_threshold_json", v);
}

#[test]
fn sparsity_snapshots() {
    let (ok, text, stderr) = kerasrs(&["sparsity", s(&fixture("digits"))]);
    assert!(ok, "{stderr}");
    insta::assert_snapshot!("sparsity_digits", text);
    let (ok, json, stderr) = kerasrs(&["sparsity", s(&fixture("sequential_flatten")), "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    insta::assert_json_snapshot!("sparsity_sequential_flatten_json", v);
}

#[test]
fn sparsity_report_agrees_with_prune() {
    let mut m = Model::open(fixture("digits")).unwrap();
    // Zero two input features' rows by hand, then prune the rest of the kernel.
    {
        let k = &mut m.layers[1].dense_mut().unwrap().kernel;
        k.row_mut(0).fill(0.0);
        k.row_mut(63).fill(-0.0);
    }
    let report = prune(&mut m, &PruneSpec::sparsity(0.5, false)).unwrap();
    let sr = sparsity_report(&m);
    assert_eq!(sr.tensors.len(), 4);
    for row in &report.rows {
        let t = sr
            .tensors
            .iter()
            .find(|t| (t.layer_index, t.weight) == (row.layer_index, row.weight))
            .unwrap();
        assert_eq!(t.zeros, row.zeros_after);
        assert_eq!(t.histogram.zeros, row.zeros_after);
        let in_bins: usize = t.histogram.bins.iter().map(|b| b.count).sum();
        assert_eq!(in_bins + t.histogram.zeros, t.weights);
    }
    let fs = &sr.features;
    assert!(fs.applies);
    assert_eq!(fs.layer.as_deref(), Some("dense"));
    let dropped: Vec<usize> = fs.dropped.iter().map(|f| f.index).collect();
    let kernel = &m.layers[1].dense().unwrap().kernel;
    let expected: Vec<usize> = (0..64)
        .filter(|&i| kernel.row(i).iter().all(|w| *w == 0.0))
        .collect();
    assert!(dropped.contains(&0) && dropped.contains(&63));
    assert_eq!(dropped, expected);
    assert_eq!(fs.dropped.len() + fs.ranked.len(), 64);
    for pair in fs.ranked.windows(2) {
        assert!(
            pair[0].l1 > pair[1].l1 || (pair[0].l1 == pair[1].l1 && pair[0].index < pair[1].index)
        );
    }
    let top = &fs.ranked[0];
    let l1: f64 = kernel
        .row(top.index)
        .iter()
        .map(|w| f64::from(w.abs()))
        .sum();
    assert_eq!(top.l1, l1);
    // The compact form names the counts.
    let text = sr.to_string();
    assert!(
        text.contains(&format!("{} dropped", dropped.len())),
        "{text}"
    );
}

#[test]
fn feature_selection_needs_plain_layers_before_the_first_dense() {
    // Flatten first: positions index the (3, 5) input.
    let m = Model::open(fixture("sequential_flatten")).unwrap();
    let fs = sparsity_report(&m).features;
    assert!(fs.applies);
    assert_eq!(fs.input_shape, [3, 5]);
    let f7 = fs.ranked.iter().find(|f| f.index == 7).unwrap();
    assert_eq!(f7.position, [1, 2]);

    // An Activation before the first Dense: feature selection does not apply.
    let mut file = KerasFile::open(fixture("uncompiled")).unwrap();
    let layers = file.config["config"]["layers"].as_array_mut().unwrap();
    let dtype = layers[1]["config"]["dtype"].clone();
    layers.insert(
        1,
        serde_json::json!({
            "module": "keras.layers",
            "class_name": "Activation",
            "config": {"name": "act", "trainable": true, "dtype": dtype, "activation": "tanh"},
            "registered_name": null
        }),
    );
    let m = Model::try_from(file).unwrap();
    let fs = sparsity_report(&m).features;
    assert!(!fs.applies);
    assert_eq!(
        fs.reason.as_deref(),
        Some("layer `act` (Activation) comes before the first Dense layer `dense`")
    );
    assert!(sparsity_report(&m).to_string().contains("does not apply"));
}

#[test]
fn plot_is_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("h.svg");
    let (ok, _, stderr) = kerasrs(&["sparsity", s(&fixture("digits")), "--plot", s(&svg)]);
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") || text.starts_with("<?xml"),
        "{}",
        &text[..80]
    );
    assert!(text.trim_end().ends_with("</svg>"));
    for caption in [
        "dense: log10|w|",
        "dense_1: log10|w|",
        "kernel (2048 weights)",
    ] {
        assert!(text.contains(caption), "{caption}");
    }
    // One bar per category and variable: 12 categories x 4 variables.
    assert!(text.matches("<rect").count() >= 48);
}

#[test]
fn help_has_examples() {
    for cmd in ["prune", "sparsity"] {
        let (ok, stdout, _) = kerasrs(&[cmd, "--help"]);
        assert!(ok);
        assert!(stdout.contains("Examples:"), "{cmd}: {stdout}");
        assert!(
            stdout.contains(&format!("kerasrs {cmd}")),
            "{cmd}: {stdout}"
        );
    }
}
