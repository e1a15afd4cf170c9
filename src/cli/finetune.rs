//! `kerasrs finetune`: train a model natively, as Keras's `fit` would.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::data_args::{DataArgs, load_npz_pair};
use crate::Model;
use crate::engine::session::{CompileOverrides, prepare, store};
use crate::engine::train::{Dataset, FitOptions, Logs, Progress, Silent};
use crate::model::Regularizer;

/// Fine-tune a model with Keras's exact semantics: the compiled loss plus the
/// model's L1/L2 penalties, the compiled optimizer resumed from its stored
/// state, constraints after each update. Writes an archive Keras loads and
/// resumes training from.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs finetune fixtures/models/digits.keras --data fixtures/digits.npz --epochs 5 --output tuned.keras\n  \
      kerasrs finetune model.keras --x x.npy --y y.npy --l1 1e-4 --validation-split 0.2 --output sparse.keras\n  \
      kerasrs finetune uncompiled.keras --data d.npz --optimizer adam --loss mse --learning-rate 0.01 --output out.keras\n  \
      kerasrs finetune model.keras --data d.npz --freeze dense --history history.csv --output out.keras")]
pub struct Args {
    /// The `.keras` model file (never modified).
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the fine-tuned model.
    #[arg(long, short)]
    output: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Rows per batch (the last batch may be smaller), as Keras's default.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Keep the rows in order (Keras's `shuffle=False`).
    #[arg(long)]
    no_shuffle: bool,
    /// Seed for shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hold out this last fraction of the rows for validation (as Keras).
    #[arg(long, value_name = "F", conflicts_with = "validation_data")]
    validation_split: Option<f64>,
    /// Validation data as a `.npz` (same keys as `--data`).
    #[arg(long, value_name = "V.npz")]
    validation_data: Option<PathBuf>,
    /// Optimizer to use instead of the compiled one (fresh state).
    #[arg(long, value_name = "NAME")]
    optimizer: Option<String>,
    /// Constant learning rate to use.
    #[arg(long, value_name = "LR")]
    learning_rate: Option<f32>,
    /// Loss to use instead of the compiled one.
    #[arg(long, value_name = "NAME")]
    loss: Option<String>,
    /// Set `L1(L)` as the kernel regularizer of every Dense layer (recorded in the config).
    #[arg(long, value_name = "L")]
    l1: Option<f64>,
    /// Set `L2(L)` as the kernel regularizer of every Dense layer (with --l1: `L1L2`).
    #[arg(long, value_name = "L")]
    l2: Option<f64>,
    /// Freeze these layers (comma-separated names): no update, no penalty.
    #[arg(long, value_name = "LAYER,...", value_delimiter = ',')]
    freeze: Vec<String>,
    /// Write per-epoch loss and metrics as CSV.
    #[arg(long, value_name = "H.csv")]
    history: Option<PathBuf>,
    /// No progress bars or summaries.
    #[arg(long, short)]
    quiet: bool,
}

/// One progress bar per epoch and a summary line, like Keras's `verbose=1`.
struct Bars {
    bar: Option<ProgressBar>,
    epochs: usize,
}

fn format_logs(logs: &Logs) -> String {
    logs.iter()
        .map(|(k, v)| format!("{k}: {v:.4}"))
        .collect::<Vec<_>>()
        .join(" - ")
}

impl Progress for Bars {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.epochs = epochs;
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("Epoch {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(format!("{}/{epochs}", epoch + 1));
        self.bar = Some(bar);
    }
    fn step(&mut self, step: usize, logs: &Logs) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64 + 1);
            if step.is_multiple_of(8) {
                bar.set_message(format_logs(logs));
            }
        }
    }
    fn epoch_end(&mut self, epoch: usize, logs: &Logs) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "Epoch {}/{} - {}",
            epoch + 1,
            self.epochs,
            format_logs(logs)
        );
    }
}

fn history_csv(history: &[Logs]) -> String {
    let mut out = String::from("epoch");
    if let Some(first) = history.first() {
        for (k, _) in first {
            out.push(',');
            out.push_str(k);
        }
    }
    out.push('\n');
    for (i, logs) in history.iter().enumerate() {
        out.push_str(&(i + 1).to_string());
        for (_, v) in logs {
            out.push(',');
            out.push_str(&v.to_string());
        }
        out.push('\n');
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    super::check_output_is_not_input(&args.model, &args.output)?;
    for p in args.data.paths() {
        super::check_output_is_not_input(p, &args.output)?;
    }
    if args.epochs == 0 {
        bail!("`--epochs` must be at least 1");
    }
    let mut model = Model::open(&args.model)?;
    for name in &args.freeze {
        model.set_trainable(name, false)?;
    }
    let reg = match (args.l1, args.l2) {
        (Some(l1), Some(l2)) => Some(Regularizer::L1L2 { l1, l2 }),
        (Some(l1), None) => Some(Regularizer::L1 { l1 }),
        (None, Some(l2)) => Some(Regularizer::L2 { l2 }),
        (None, None) => None,
    };
    if let Some(r) = reg {
        if r.l1() < 0.0 || r.l2() < 0.0 || !r.l1().is_finite() || !r.l2().is_finite() {
            bail!("`--l1` and `--l2` must be finite and non-negative");
        }
        for i in 0..model.layers.len() {
            if model.layers[i].dense().is_some() {
                model.set_kernel_regularizer(i, Some(r))?;
            }
        }
    }
    let overrides = CompileOverrides {
        optimizer: args.optimizer.clone(),
        learning_rate: args.learning_rate,
        loss: args.loss.clone(),
    };
    let mut prepared = prepare(&model, &overrides, true)?;
    let (x, y) = args.data.load()?;
    let data = Dataset::new(&model, &prepared.trainer.loss, x, y)
        .with_context(|| "the training data does not fit the model")?;
    let (train, validation) = match (&args.validation_split, &args.validation_data) {
        (Some(f), _) => {
            let (t, v) = data.split_validation(*f)?;
            (t, Some(v))
        }
        (None, Some(path)) => {
            let (vx, vy) = load_npz_pair(path, &args.data.x_key, &args.data.y_key)?;
            let v = Dataset::new(&model, &prepared.trainer.loss, vx, vy)
                .with_context(|| format!("validation data `{}`", path.display()))?;
            (data, Some(v))
        }
        (None, None) => (data, None),
    };
    if !args.quiet {
        for note in &prepared.notes {
            eprintln!("note: {note}");
        }
    }
    let options = FitOptions {
        epochs: args.epochs,
        batch_size: args.batch_size as usize,
        shuffle: !args.no_shuffle,
        seed: args.seed,
        ..FitOptions::default()
    };
    let mut bars = Bars {
        bar: None,
        epochs: args.epochs,
    };
    let progress: &mut dyn Progress = if args.quiet { &mut Silent } else { &mut bars };
    let history =
        prepared
            .trainer
            .fit(&mut model, &train, validation.as_ref(), &options, progress)?;
    store(&mut model, &prepared.trainer, &overrides)?;
    model.save(&args.output)?;
    if let Some(path) = &args.history {
        crate::archive::atomic::write_atomic(path, history_csv(&history).as_bytes())?;
    }
    if !args.quiet {
        eprintln!(
            "wrote `{}` (optimizer iterations: {})",
            args.output.display(),
            prepared.trainer.optimizer.iterations()
        );
    }
    Ok(())
}
