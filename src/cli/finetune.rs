//! `kerasrs finetune`: train a model natively, as Keras's `fit` would.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ndarray::ArrayD;

use super::data_args::{DataArgs, input_arrays, target_arrays};
use super::paths::{OUTPUT, OutputKind, RunFiles};
use super::progress::{KerasProgress, Log, Verbosity};
use crate::Model;
use crate::data::F32Data;
use crate::engine::session::{CompileOverrides, Prepared, prepare, store};
use crate::engine::sparsify::{L1Mode, PruneSchedule, Sparsifier, SparsifyOptions};
use crate::engine::train::{Dataset, FitOptions, Logs, Progress};
use crate::model::Regularizer;

/// Fine-tune a model with Keras's exact semantics: the compiled loss plus the
/// model's L1/L2 penalties, the compiled optimizer resumed from its stored
/// state, constraints after each update. Writes an archive Keras loads and
/// resumes training from.
///
/// Sparsity options (off by default; each one adds a `sparsity` column, the
/// fraction of exact zeros over all Dense and convolution kernels, to the epoch logs and
/// `--history`):
///
/// `--keep-sparsity` holds every trainable Dense and convolution kernel weight that is
/// exactly zero at the start at zero: after each optimizer update the mask
/// is re-applied and the optimizer's slots there are reset (as after
/// `kerasrs prune`), so a pruned model fine-tunes without losing its zeros.
///
/// `--prune-to S` prunes gradually by magnitude on TFMOT's polynomial
/// schedule s = S + (S_i − S)(1 − p)³, p the progress in updates from the
/// start of epoch `--prune-begin` to the start of epoch `--prune-end`
/// (default: the end of training). Masks are recomputed every
/// `--prune-frequency` updates (default 100, TFMOT's default) and at the
/// end, per kernel with `kerasrs prune --sparsity`'s rule (round(s·n)
/// smallest magnitudes, ties by position); pruned weights and their slots
/// are held at zero in between. Every trainable kernel ends with at least
/// round(S·n) zeros. Frozen layers are not pruned.
///
/// `--mask-bias` extends both masks to biases (by default kernels only: a
/// zero bias is usually an initial value, not a pruned weight).
///
/// `--l1-mode proximal` takes the L1 part of every weight regularizer out
/// of the gradient and applies a soft-threshold step w ← sign(w)·max(|w| −
/// lr·λ, 0) after each update (lr: the learning rate of that step), which
/// makes exact zeros. The reported loss still includes the L1 penalty.
/// `--l1-mode keras` (default) is Keras's subgradient.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs finetune fixtures/models/digits.keras --data fixtures/digits.npz --epochs 5 --output tuned.keras\n  \
      kerasrs finetune model.keras --x x.npy --y y.npy --l1 1e-4 --validation-split 0.2 --output sparse.keras\n  \
      kerasrs finetune model.keras --csv data.csv --target label --epochs 5 --output tuned.keras\n  \
      kerasrs finetune uncompiled.keras --data d.npz --optimizer adam --loss mse --learning-rate 0.01 --output out.keras\n  \
      kerasrs finetune model.keras --data d.npz --freeze dense --history history.csv --output out.keras\n  \
      kerasrs finetune pruned.keras --data d.npz --epochs 2 --keep-sparsity --output tuned.keras\n  \
      kerasrs finetune model.keras --data d.npz --epochs 10 --prune-to 0.8 --prune-begin 2 --prune-end 8 --output p.keras\n  \
      kerasrs finetune model.keras --data d.npz --epochs 20 --l1 1e-3 --l1-mode proximal --history h.csv --output lasso.keras")]
pub struct Args {
    /// The model: a `.keras` archive (Keras 3, tf_keras 2.15), an unzipped
    /// archive directory, a legacy `.h5` model, or weights only (`.weights.h5`,
    /// sharded `model.weights.json`) with the architecture beside them or in
    /// `--config` (never modified unless `--in-place`).
    model: PathBuf,
    /// The architecture of a weights-only MODEL: a `config.json`, a
    /// `model.to_json()` output or a `.keras` archive.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the fine-tuned model.
    #[arg(long, short)]
    output: PathBuf,
    /// Allow `--output` to be the input model itself (replaced atomically
    /// once training succeeded).
    #[arg(long)]
    in_place: bool,
    /// Set `L1(L)` as the kernel regularizer of every Dense and convolution layer (recorded in the config).
    #[arg(long, value_name = "L")]
    l1: Option<f64>,
    #[command(flatten)]
    train: TrainArgs,
    /// Write per-epoch loss and metrics as CSV.
    #[arg(long, value_name = "H.csv")]
    history: Option<PathBuf>,
}

/// The training options `finetune` and `sweep` share.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Passes over the training data.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Rows per batch (the last batch may be smaller), as Keras's default.
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one)]
    pub batch_size: u64,
    /// Keep the rows in order (Keras's `shuffle=False`).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seed for shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Hold out this last fraction of the rows for validation (as Keras).
    #[arg(long, value_name = "F", conflicts_with = "validation_data")]
    pub validation_split: Option<f64>,
    /// Validation data as a `.npz` (same keys as `--data`).
    #[arg(long, value_name = "V.npz")]
    pub validation_data: Option<PathBuf>,
    /// Optimizer to use instead of the compiled one (fresh state).
    #[arg(long, value_name = "NAME")]
    pub optimizer: Option<String>,
    /// Constant learning rate to use.
    #[arg(long, value_name = "LR")]
    pub learning_rate: Option<f32>,
    /// Loss to use instead of the compiled one.
    #[arg(long, value_name = "NAME")]
    pub loss: Option<String>,
    /// Set `L2(L)` as the kernel regularizer of every Dense and convolution layer (with --l1: `L1L2`).
    #[arg(long, value_name = "L")]
    pub l2: Option<f64>,
    /// Freeze these layers (comma-separated names): no update, no penalty.
    #[arg(long, value_name = "LAYER,...", value_delimiter = ',')]
    pub freeze: Vec<String>,
    /// Masked updates: Dense and convolution kernel weights that start at exactly zero stay zero.
    #[arg(long)]
    pub keep_sparsity: bool,
    /// Prune gradually to this sparsity per Dense or convolution kernel (0 to 1).
    #[arg(long, value_name = "S")]
    pub prune_to: Option<f64>,
    /// Sparsity at `--prune-begin`.
    #[arg(long, value_name = "S_I", requires = "prune_to", default_value_t = 0.0)]
    pub prune_initial: f64,
    /// Epoch whose start pruning begins at (counted from 0).
    #[arg(long, value_name = "E0", requires = "prune_to", default_value_t = 0)]
    pub prune_begin: usize,
    /// Epoch whose start the final sparsity is reached at (default: the end of training).
    #[arg(long, value_name = "E1", requires = "prune_to")]
    pub prune_end: Option<usize>,
    /// Recompute the pruning masks every K updates (and at the end).
    #[arg(long, value_name = "K", requires = "prune_to", default_value_t = PruneSchedule::DEFAULT_FREQUENCY)]
    pub prune_frequency: usize,
    /// With --keep-sparsity / --prune-to: mask biases too.
    #[arg(long)]
    pub mask_bias: bool,
    /// How L1 penalties act: `keras` (subgradient, exact Keras; the default
    /// of finetune) or `proximal` (soft-threshold after each update: exact
    /// zeros; the default of sweep).
    #[arg(long, value_enum)]
    pub l1_mode: Option<L1ModeArg>,
    /// Training log as Keras's `verbose`: 1 a progress bar on a terminal
    /// (one line per epoch otherwise), 2 one line per epoch, 0 nothing. The
    /// log goes to standard output, notes to standard error.
    #[arg(long, value_enum, value_name = "0|1|2", default_value = "1")]
    pub verbose: Verbosity,
    /// Nothing on either stream but errors (`--verbose 0` and no notes).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--l1-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum L1ModeArg {
    /// Keras's subgradient `l1·sign(w)` in the gradient.
    Keras,
    /// Soft-threshold step after each update.
    Proximal,
}

impl TrainArgs {
    /// `--l1-mode`, or `default` when not given.
    pub fn l1_mode_or(&self, default: L1ModeArg) -> L1ModeArg {
        self.l1_mode.unwrap_or(default)
    }

    fn sparsify(&self) -> SparsifyOptions {
        SparsifyOptions {
            keep_sparsity: self.keep_sparsity,
            prune: self.prune_to.map(|s| PruneSchedule {
                final_sparsity: s,
                initial_sparsity: self.prune_initial,
                begin_epoch: self.prune_begin,
                end_epoch: self.prune_end,
                frequency: self.prune_frequency,
            }),
            mask_bias: self.mask_bias,
            l1_mode: match self.l1_mode_or(L1ModeArg::Keras) {
                L1ModeArg::Keras => L1Mode::Keras,
                L1ModeArg::Proximal => L1Mode::Proximal,
            },
        }
    }

    /// Check what can be checked before loading anything.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("`--epochs` must be at least 1");
        }
        self.sparsify()
            .validate(self.epochs)
            .context("invalid sparsity options")?;
        Ok(())
    }

    /// `--verbose`, silenced by `--quiet`.
    pub fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Silent
        } else {
            self.verbose
        }
    }

    /// The compile overrides these options ask for.
    pub fn overrides(&self) -> CompileOverrides {
        CompileOverrides {
            optimizer: self.optimizer.clone(),
            learning_rate: self.learning_rate,
            loss: self.loss.clone(),
        }
    }

    /// The input files with their flags, to check that no output
    /// overwrites them.
    pub fn paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        self.validation_data
            .iter()
            .map(|p| ("`--validation-data`", p.as_path()))
            .collect()
    }
}

/// The kernel regularizer `--l1` / `--l2` ask for.
pub fn regularizer(l1: Option<f64>, l2: Option<f64>) -> Result<Option<Regularizer>> {
    let reg = match (l1, l2) {
        (Some(l1), Some(l2)) => Some(Regularizer::L1L2 { l1, l2 }),
        (Some(l1), None) => Some(Regularizer::L1 { l1 }),
        (None, Some(l2)) => Some(Regularizer::L2 { l2 }),
        (None, None) => None,
    };
    if let Some(r) = reg
        && (r.l1() < 0.0 || r.l2() < 0.0 || !r.l1().is_finite() || !r.l2().is_finite())
    {
        bail!("`--l1` and `--l2` must be finite and non-negative");
    }
    Ok(reg)
}

/// Freeze layers and set the kernel regularizer of every Dense and
/// convolution layer (all kernels of a separable convolution).
pub fn configure(model: &mut Model, args: &TrainArgs, reg: Option<Regularizer>) -> Result<()> {
    for name in &args.freeze {
        model.set_trainable(name, false)?;
    }
    if let Some(r) = reg {
        for i in 0..model.layers.len() {
            if crate::prune::has_weights(&model.layers[i]) {
                model.set_kernel_regularizer(i, Some(r))?;
            }
        }
    }
    Ok(())
}

/// Training and validation data for `model`: one array per input and one
/// per output (see [`DataArgs::load_for`]).
pub fn datasets(
    model: &Model,
    prepared: &Prepared,
    data_args: &DataArgs,
    args: &TrainArgs,
    (xs, ys): (Vec<F32Data>, Vec<ArrayD<f32>>),
) -> Result<(Dataset, Option<Dataset>)> {
    let data = dataset(model, prepared, xs, ys)
        .with_context(|| "the training data does not fit the model")?;
    Ok(match (&args.validation_split, &args.validation_data) {
        (Some(f), _) => {
            let (t, v) = data.split_validation(*f)?;
            (t, Some(v))
        }
        (None, Some(path)) => {
            let vx = input_arrays(path, model, &data_args.x_key, None)?;
            let vy = target_arrays(path, model, &data_args.y_key, None)?;
            let v = dataset(model, prepared, vx, vy)
                .with_context(|| format!("validation data `{}`", path.display()))?;
            (data, Some(v))
        }
        (None, None) => (data, None),
    })
}

/// A dataset of one array per model input and output.
pub fn dataset(
    model: &Model,
    prepared: &Prepared,
    mut xs: Vec<F32Data>,
    mut ys: Vec<ArrayD<f32>>,
) -> crate::Result<Dataset> {
    let loss = &prepared.trainer.loss;
    if model.is_chain() && xs.len() == 1 && ys.len() == 1 {
        return Dataset::new(model, loss, xs.remove(0), ys.remove(0));
    }
    let losses = prepared.trainer.output_losses();
    Dataset::multi(model, &losses, xs, ys)
}

/// Run the fit (with the sparsity hook when a sparsity option is on) and
/// record the optimizer state in the model.
pub fn fit(
    model: &mut Model,
    prepared: &mut Prepared,
    (train, validation): (&Dataset, Option<&Dataset>),
    args: &TrainArgs,
    progress: &mut dyn Progress,
) -> Result<Vec<Logs>> {
    let sparsify = args.sparsify();
    let options = FitOptions {
        epochs: args.epochs,
        batch_size: args.batch_size as usize,
        shuffle: !args.no_shuffle,
        seed: args.seed,
        penalty_gradient: sparsify.l1_mode.penalty_gradient(),
    };
    let _training = super::interrupt::TrainingGuard::enter();
    let mut progress = super::interrupt::Interruptible(progress);
    let progress: &mut dyn Progress = &mut progress;
    let history = if sparsify.is_active() {
        let mut hook = Sparsifier::new(sparsify);
        prepared
            .trainer
            .fit_with_hook(model, train, validation, &options, progress, &mut hook)?
    } else {
        prepared
            .trainer
            .fit(model, train, validation, &options, progress)?
    };
    store(model, &prepared.trainer, &args.overrides())?;
    Ok(history)
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
    let mut files = RunFiles::new(&args.model)
        .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
        .inputs(args.data.paths())
        .inputs(args.train.paths())
        .typed_output(OUTPUT, &args.output, OutputKind::Model)
        .in_place(args.in_place);
    if let Some(history) = &args.history {
        files = files.output("`--history`", history);
    }
    files.check()?;
    let train_args = &args.train;
    train_args.check()?;
    let mut model = super::open_model(&args.model, args.config.as_deref())?;
    configure(&mut model, train_args, regularizer(args.l1, train_args.l2)?)?;
    let mut prepared = prepare(&model, &train_args.overrides(), true)?;
    let loaded = args.data.load(&model)?;
    if let Some(names) = &loaded.feature_names {
        model.set_feature_names(Some(names))?;
    }
    let (train, validation) = datasets(
        &model,
        &prepared,
        &args.data,
        train_args,
        (loaded.x, loaded.y),
    )?;
    if !train_args.quiet {
        for note in &prepared.notes {
            eprintln!("note: {}", crate::text::sanitize(note));
        }
    }
    let mut progress = KerasProgress::new(Log::stdout(), train_args.verbosity());
    let progress: &mut dyn Progress = &mut progress;
    let history = fit(
        &mut model,
        &mut prepared,
        (&train, validation.as_ref()),
        train_args,
        progress,
    )?;
    model.save(&args.output)?;
    if let Some(path) = &args.history {
        crate::archive::atomic::write_atomic(path, history_csv(&history).as_bytes())?;
    }
    if !train_args.quiet {
        eprintln!(
            "wrote `{}` (optimizer iterations: {})",
            args.output.display(),
            prepared.trainer.optimizer.iterations()
        );
    }
    Ok(())
}
