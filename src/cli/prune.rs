//! `kerasrs prune`: zero small Dense and convolution weights (or whole
//! filters) and write a new model.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::prune::{PruneCriterion, PruneSpec, prune, zero_optimizer_slots};

/// Magnitude pruning: zero Dense and convolution kernel weights (and biases
/// with `--include-bias`) by threshold or to a sparsity, or whole filters with
/// `--structured filters`, and write the pruned model.
/// Every weight not pruned keeps its exact value.
///
/// `--threshold T` prunes every weight with |w| < T. `--sparsity S` prunes the
/// round(S·n) smallest-magnitude weights of each selected variable of n weights
/// (halves round to even; equal magnitudes: lower position first, C order);
/// with `--global`, n counts all selected variables together and ties go by
/// layer order, then kernel before bias, then position.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs prune model.keras --threshold 0.01 --output pruned.keras\n  \
      kerasrs prune model.keras --sparsity 0.5 --output pruned.keras\n  \
      kerasrs prune model.keras --sparsity 0.8 --global --include-bias --output pruned.keras\n  \
      kerasrs prune cnn.keras --structured filters --sparsity 0.25 --output thin.keras\n  \
      kerasrs prune model.keras --threshold 1e-3 --layers dense,dense_1 --output pruned.keras --json")]
pub struct Args {
    /// The model: a `.keras` archive (Keras 3, tf_keras 2.15), an unzipped
    /// archive directory, a legacy `.h5` model, or weights only (`.weights.h5`,
    /// sharded `model.weights.json`) with the architecture beside them or in
    /// `--config` .
    model: PathBuf,
    /// The architecture of a weights-only MODEL: a `config.json`, a
    /// `model.to_json()` output or a `.keras` archive.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Prune every weight with |w| < T (T >= 0).
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    threshold: Option<f64>,
    /// Prune this fraction (0 to 1) of each variable's weights, smallest
    /// magnitudes first.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    sparsity: Option<f64>,
    /// With `--sparsity`: rank all selected weights together (one threshold
    /// for the whole model) instead of per variable.
    #[arg(long)]
    global: bool,
    /// Only prune these layers (comma-separated names of Dense or
    /// convolution layers).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    layers: Option<Vec<String>>,
    /// Prune biases too (by default only kernels). With `--structured`, the
    /// bias entries of the cut channels.
    #[arg(long)]
    include_bias: bool,
    /// Structured pruning: cut whole output channels (convolution filters,
    /// Dense units) ranked by the L1 norm Σ|w| of their weights. With
    /// `--threshold T` a channel goes when Σ|w| < T; with `--sparsity S`,
    /// the round(S·F) weakest of each kernel's F channels (all kernels'
    /// channels together with `--global`).
    #[arg(long, value_name = "WHAT")]
    structured: Option<Structure>,
    /// Where to write the pruned model.
    #[arg(long, short)]
    output: PathBuf,
    /// Allow `--output` to be the input model itself (replaced atomically).
    #[arg(long)]
    in_place: bool,
    /// Print the per-variable report as JSON.
    #[arg(long)]
    json: bool,
}

/// What `--structured` cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Structure {
    /// Output channels: convolution filters, Dense units.
    #[value(alias = "units", alias = "channels")]
    Filters,
}

impl Args {
    fn spec(&self) -> Result<PruneSpec> {
        let criterion = match (self.threshold, self.sparsity) {
            (Some(_), Some(_)) => {
                bail!("`--threshold` and `--sparsity` exclude each other: give one of them")
            }
            (None, None) => bail!("give `--threshold T` or `--sparsity S`"),
            (Some(_), None) if self.global => {
                bail!("`--global` only applies to `--sparsity`")
            }
            (Some(threshold), None) => PruneCriterion::Threshold { threshold },
            (None, Some(sparsity)) => PruneCriterion::Sparsity {
                sparsity,
                global: self.global,
            },
        };
        let spec = PruneSpec {
            criterion,
            layers: self.layers.clone(),
            include_bias: self.include_bias,
            structured: self.structured.is_some(),
        };
        spec.validate()?;
        Ok(spec)
    }
}

pub fn run(args: Args) -> Result<()> {
    let spec = args.spec()?;
    super::paths::RunFiles::new(&args.model)
        .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
        .typed_output(
            super::paths::OUTPUT,
            &args.output,
            super::paths::OutputKind::Model,
        )
        .in_place(args.in_place)
        .check()?;
    let mut model = super::open_model(&args.model, args.config.as_deref())?;
    let report = prune(&mut model, &spec)
        .with_context(|| format!("cannot prune `{}`", args.model.display()))?;
    zero_optimizer_slots(&mut model, &report.masks)
        .with_context(|| format!("cannot prune `{}`", args.model.display()))?;
    model.save(&args.output)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::text::sanitize_text(&report.to_string()));
    }
    eprintln!(
        "wrote `{}` ({} of {} selected weights are zero)",
        args.output.display(),
        report.total_zeros_after(),
        report.total_weights()
    );
    Ok(())
}
