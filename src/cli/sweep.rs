//! `kerasrs sweep`: fine-tune one copy of a model per L1 strength and pick
//! the sparsest one that is still about as good as the best.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::data_args::DataArgs;
use super::finetune::{L1ModeArg, TrainArgs, configure, datasets, fit, regularizer};
use super::paths::RunFiles;
use crate::Model;
use crate::archive::atomic::write_atomic;
use crate::engine::metrics::MetricKind;
use crate::engine::session::prepare;
use crate::engine::sparsify::kernel_sparsity;
use crate::engine::train::Silent;
use crate::prune::plot::{SweepPoint, sweep_svg};
use crate::prune::sparsity_report;
use crate::text::{sanitize, sanitize_text};

/// Fine-tune one copy of a model per L1 strength and pick the sparsest
/// one within a tolerance of the best metric.
///
/// Each copy gets `L1(λ)` on every Dense and convolution kernel, as `finetune --l1` does
/// (same data, seed and options for every copy); sweep writes each as
/// `DIR/l1_<λ>.keras`, prints a table (λ,
/// final training loss, metric, sparsity, input features kept) and draws
/// `DIR/sweep.svg` (metric and sparsity against λ, log axis).
///
/// The metric is the first compiled metric, measured on the validation data
/// (`--validation-split` / `--validation-data`) after training, or on the
/// training data without them. Accuracy-like metrics are better higher,
/// error-like ones (RMSE, loss-like metrics) lower. A model compiled without
/// metrics is judged by its loss without the weight penalties (which differ
/// by λ and would favour the smallest), lower is better.
///
/// The selected model is the sparsest one whose metric is within
/// `--tolerance` (absolute, in the metric's units) of the best; ties go to
/// the better metric, then the larger λ. Sparsity is the fraction of exact
/// zeros over all Dense and convolution kernels; features kept are the input features whose
/// row of the first Dense kernel is not all zeros.
///
/// `--l1-mode` defaults to `proximal` here (soft-threshold steps, which make
/// exact zeros); with `--l1-mode keras` weights approach zero but do not
/// reach it, so every model stays dense.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs sweep fixtures/models/digits.keras --data fixtures/digits.npz --l1 1e-5,1e-4,1e-3,1e-2 --validation-split 0.2 --epochs 5 --out-dir sweep\n  \
      kerasrs sweep model.keras --data d.npz --l1 1e-4,1e-3 --epochs 20 --optimizer sgd --learning-rate 0.05 --tolerance 0.02 --out-dir out --json\n  \
      kerasrs sweep model.keras --x x.npy --y y.npy --l1 1e-3,1e-2 --l1-mode keras --out-dir out")]
pub struct Args {
    /// The model: a `.keras` archive (Keras 3, tf_keras 2.15), an unzipped
    /// archive directory, a legacy `.h5` model, or weights only (`.weights.h5`,
    /// sharded `model.weights.json`) with the architecture beside them or in
    /// `--config` (never modified).
    model: PathBuf,
    /// The architecture of a weights-only MODEL: a `config.json`, a
    /// `model.to_json()` output or a `.keras` archive.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// L1 strengths to try (comma-separated, each finite and > 0).
    #[arg(long, value_name = "L,...", value_delimiter = ',', required = true)]
    l1: Vec<f64>,
    /// Directory for the models and the plot (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Select the sparsest model whose metric is within this of the best.
    #[arg(long, value_name = "T", default_value_t = 0.01)]
    tolerance: f64,
    /// Print the table as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    train: TrainArgs,
}

/// One fine-tuned copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// The L1 strength.
    pub l1: f64,
    /// The last epoch's training loss (with penalties), as `finetune` reports it.
    pub loss: f64,
    /// The selection metric.
    pub metric: f64,
    /// Fraction of exact zeros over all Dense and convolution kernels.
    pub sparsity: f64,
    /// Input features whose first-Dense-kernel row is not all zeros (`None`
    /// when feature selection does not apply to the model).
    pub features_kept: Option<usize>,
    /// Input features of the first Dense layer.
    pub features: Option<usize>,
    /// The names of the kept features, by decreasing L1 norm of their
    /// kernel row, when the model records feature names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_features: Option<Vec<String>>,
    /// Where the model was written.
    pub model: PathBuf,
}

/// The sweep's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// The metric's name (`val_accuracy`, `loss_without_penalties`, ...).
    pub metric: String,
    /// Whether a higher metric is better.
    pub higher_is_better: bool,
    /// The selection tolerance.
    pub tolerance: f64,
    /// `keras` or `proximal`.
    pub l1_mode: &'static str,
    /// Epochs per model.
    pub epochs: usize,
    /// One row per L1 strength, increasing.
    pub rows: Vec<SweepRow>,
    /// Index of the row with the best metric.
    pub best: usize,
    /// Index of the selected row.
    pub selected: usize,
}

/// Whether a larger value of this metric is better.
fn higher_is_better(kind: &MetricKind) -> bool {
    !matches!(kind, MetricKind::RootMeanSquaredError | MetricKind::Loss(_))
}

/// (best, selected): the best metric, and the sparsest row within
/// `tolerance` of it (ties: better metric, then larger λ). NaN metrics are
/// never best nor selected, unless every metric is NaN.
pub fn select(rows: &[SweepRow], higher_is_better: bool, tolerance: f64) -> (usize, usize) {
    let score = |r: &SweepRow| {
        let m = if higher_is_better {
            r.metric
        } else {
            -r.metric
        };
        if m.is_nan() { f64::NEG_INFINITY } else { m }
    };
    let mut best = 0;
    for (i, r) in rows.iter().enumerate() {
        if score(r) > score(&rows[best]) {
            best = i;
        }
    }
    let bound = score(&rows[best]) - tolerance;
    let mut selected = best;
    for (i, r) in rows.iter().enumerate() {
        if score(r) < bound {
            continue;
        }
        let s = &rows[selected];
        let key = (r.sparsity, score(r), r.l1);
        let cur = (s.sparsity, score(s), s.l1);
        if key.partial_cmp(&cur) == Some(std::cmp::Ordering::Greater) {
            selected = i;
        }
    }
    (best, selected)
}

/// The file name of λ's model: `l1_1e-5.keras`.
fn model_name(l1: f64) -> String {
    format!("l1_{l1:e}.keras")
}

fn check_strengths(l1: &[f64]) -> Result<Vec<f64>> {
    let mut sorted = l1.to_vec();
    if let Some(bad) = sorted.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        bail!("every `--l1` strength must be finite and > 0, found {bad}");
    }
    sorted.sort_by(f64::total_cmp);
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!("`--l1` lists {} twice", w[0]);
    }
    Ok(sorted)
}

/// Train one copy; returns its row.
fn run_one(
    base: &Model,
    args: &Args,
    l1: f64,
    data: &(Vec<crate::data::F32Data>, Vec<ndarray::ArrayD<f32>>),
    notes: bool,
) -> Result<(SweepRow, String, bool)> {
    let train_args = &args.train;
    let mut model = base.clone();
    configure(
        &mut model,
        train_args,
        regularizer(Some(l1), train_args.l2)?,
    )?;
    let mut prepared = prepare(&model, &train_args.overrides(), true)?;
    let (train, validation) = datasets(&model, &prepared, &args.data, train_args, data.clone())?;
    if notes {
        for note in &prepared.notes {
            eprintln!("note: {}", sanitize(note));
        }
    }
    let history = fit(
        &mut model,
        &mut prepared,
        (&train, validation.as_ref()),
        train_args,
        &mut Silent,
    )?;
    let path = args.out_dir.join(model_name(l1));
    model.save(&path)?;
    let loss = history
        .last()
        .and_then(|logs| logs.iter().find(|(k, _)| k == "loss"))
        .map_or(f64::NAN, |(_, v)| f64::from(*v));
    let eval_data = validation.as_ref().unwrap_or(&train);
    let prefix = if validation.is_some() { "val_" } else { "" };
    let batch = train_args.batch_size as usize;
    let (name, metric, higher) = match prepared.trainer.metrics.first() {
        Some(m) => {
            let (name, higher) = (m.name.clone(), higher_is_better(m.kind()));
            let logs = prepared.trainer.evaluate(&model, eval_data, batch)?;
            let value = logs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            (name, value.map_or(f64::NAN, f64::from), higher)
        }
        None => {
            // The data fit alone: evaluate a copy without weight penalties.
            let mut plain = model.clone();
            for layer in &mut plain.layers {
                if let Some(d) = layer.dense_mut() {
                    d.kernel_regularizer = None;
                    d.bias_regularizer = None;
                }
                if let Some(op) = layer.op_mut() {
                    op.vars_mut().iter_mut().for_each(|v| v.regularizer = None);
                }
            }
            let logs = prepared.trainer.evaluate(&plain, eval_data, batch)?;
            let value = logs.iter().find(|(k, _)| k == "loss").map(|(_, v)| *v);
            (
                "loss_without_penalties".to_string(),
                value.map_or(f64::NAN, f64::from),
                false,
            )
        }
    };
    let features = sparsity_report(&model).features;
    let row = SweepRow {
        l1,
        loss,
        metric,
        sparsity: kernel_sparsity(&model),
        features_kept: features.applies.then_some(features.ranked.len()),
        features: features.applies.then_some(features.features),
        kept_features: features.named().then(|| {
            features
                .ranked
                .iter()
                .filter_map(|r| r.name.clone())
                .collect()
        }),
        model: path,
    };
    Ok((row, format!("{prefix}{name}"), higher))
}

fn percent(f: f64) -> String {
    format!("{:.2}%", 100.0 * f)
}

impl std::fmt::Display for SweepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = if self.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        writeln!(
            f,
            "L1 sweep (--l1-mode {}, {} epoch(s) each); metric: {} ({direction} is better)",
            self.l1_mode, self.epochs, self.metric
        )?;
        let headers = [
            "L1",
            "Loss",
            self.metric.as_str(),
            "Sparsity",
            "Features kept",
            "Model",
            "Note",
        ];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mark = match (i == self.selected, i == self.best) {
                    (true, true) => "selected, best",
                    (true, false) => "selected",
                    (false, true) => "best",
                    (false, false) => "",
                };
                vec![
                    format!("{:e}", r.l1),
                    format!("{:.4}", r.loss),
                    format!("{:.4}", r.metric),
                    percent(r.sparsity),
                    match (r.features_kept, r.features) {
                        (Some(k), Some(n)) => format!("{k}/{n}"),
                        _ => "-".to_string(),
                    },
                    r.model
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    mark.to_string(),
                ]
            })
            .collect();
        let right = [false, true, true, true, true, false, false];
        f.write_str(&crate::prune::table::render(&headers, &rows, &right, None))?;
        let (b, s) = (&self.rows[self.best], &self.rows[self.selected]);
        writeln!(
            f,
            "Best {}: {:.4} (L1 = {:e}). Sparsest within {} of it: L1 = {:e} ({} {:.4}, sparsity {}).",
            self.metric,
            b.metric,
            b.l1,
            self.tolerance,
            s.l1,
            self.metric,
            s.metric,
            percent(s.sparsity)
        )
    }
}

pub fn run(mut args: Args) -> Result<()> {
    let strengths = check_strengths(&args.l1)?;
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bail!(
            "`--tolerance` must be finite and >= 0, found {}",
            args.tolerance
        );
    }
    let mode = args.train.l1_mode_or(L1ModeArg::Proximal);
    args.train.l1_mode = Some(mode);
    args.train.check()?;
    let created = !args.out_dir.exists();
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create `{}`", args.out_dir.display()))?;
    let plot_path = args.out_dir.join("sweep.svg");
    let members: Vec<PathBuf> = strengths
        .iter()
        .map(|&l1| args.out_dir.join(model_name(l1)))
        .collect();
    let mut files = RunFiles::new(&args.model)
        .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
        .inputs(args.data.paths())
        .inputs(args.train.paths())
        .output("`--out-dir` plot", &plot_path);
    for m in &members {
        files = files.output("`--out-dir` model", m);
    }
    if let Err(e) = files.check() {
        if created {
            // Leave nothing behind for a refused run.
            let _ = std::fs::remove_dir(&args.out_dir);
        }
        return Err(e);
    }
    let mut base = super::open_model(&args.model, args.config.as_deref())?;
    let loaded = args.data.load(&base)?;
    if let Some(names) = &loaded.feature_names {
        base.set_feature_names(Some(names))?;
    }
    let data = (loaded.x, loaded.y);
    let mut rows = Vec::with_capacity(strengths.len());
    let mut metric = (String::new(), true);
    for (i, &l1) in strengths.iter().enumerate() {
        let notes = i == 0 && !args.train.quiet;
        let (row, name, higher) =
            run_one(&base, &args, l1, &data, notes).with_context(|| format!("L1 = {l1:e}"))?;
        if !args.train.quiet {
            eprintln!(
                "L1 = {l1:e}: loss {:.4} - {} {:.4} - sparsity {} - wrote `{}`",
                row.loss,
                sanitize(&name),
                row.metric,
                percent(row.sparsity),
                row.model.display()
            );
        }
        metric = (name, higher);
        rows.push(row);
    }
    let (best, selected) = select(&rows, metric.1, args.tolerance);
    let report = SweepReport {
        metric: metric.0,
        higher_is_better: metric.1,
        tolerance: args.tolerance,
        l1_mode: match mode {
            L1ModeArg::Keras => "keras",
            L1ModeArg::Proximal => "proximal",
        },
        epochs: args.train.epochs,
        rows,
        best,
        selected,
    };
    let points: Vec<SweepPoint> = report
        .rows
        .iter()
        .map(|r| SweepPoint {
            l1: r.l1,
            metric: r.metric,
            sparsity: r.sparsity,
        })
        .collect();
    let svg = sweep_svg(&points, &report.metric, Some(selected))?;
    write_atomic(&plot_path, svg.as_bytes())
        .with_context(|| format!("cannot write the plot `{}`", plot_path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", sanitize_text(&report.to_string()));
        if let Some(names) = &report.rows[selected].kept_features {
            println!(
                "Features kept by the selected model ({} of {}, by the L1 norm of their kernel row): {}",
                names.len(),
                report.rows[selected].features.unwrap_or(names.len()),
                sanitize(&names.join(", "))
            );
        }
    }
    if !args.train.quiet {
        eprintln!(
            "selected `{}`; wrote `{}`",
            report.rows[selected].model.display(),
            plot_path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(l1: f64, metric: f64, sparsity: f64) -> SweepRow {
        SweepRow {
            l1,
            loss: 0.0,
            metric,
            sparsity,
            features_kept: None,
            features: None,
            kept_features: None,
            model: PathBuf::new(),
        }
    }

    #[test]
    fn selects_the_sparsest_within_tolerance() {
        let rows = [
            row(1e-5, 0.95, 0.0),
            row(1e-4, 0.96, 0.1),
            row(1e-3, 0.952, 0.5),
            row(1e-2, 0.90, 0.9),
        ];
        assert_eq!(select(&rows, true, 0.01), (1, 2));
        assert_eq!(select(&rows, true, 0.0), (1, 1));
        assert_eq!(select(&rows, true, 0.1), (1, 3));
        // Lower is better: 0.90 is best; within 0.05 only itself and 0.95.
        assert_eq!(select(&rows, false, 0.05), (3, 3));
        // Equal sparsity: the better metric, then the larger λ.
        let ties = [
            row(1e-5, 0.95, 0.0),
            row(1e-4, 0.951, 0.0),
            row(1e-3, 0.951, 0.0),
        ];
        assert_eq!(select(&ties, true, 0.01), (1, 2));
        // NaN metrics are never chosen.
        let nan = [row(1e-5, f64::NAN, 0.9), row(1e-4, 0.5, 0.1)];
        assert_eq!(select(&nan, true, 0.01), (1, 1));
    }

    #[test]
    fn strengths_are_checked_and_sorted() {
        assert_eq!(check_strengths(&[1e-2, 1e-4]).unwrap(), [1e-4, 1e-2]);
        for bad in [&[0.0][..], &[-1e-3], &[f64::NAN], &[1e-3, 1e-3]] {
            assert!(check_strengths(bad).is_err(), "{bad:?}");
        }
        assert_eq!(model_name(1e-5), "l1_1e-5.keras");
        assert_eq!(model_name(2.5e-4), "l1_2.5e-4.keras");
    }
}
