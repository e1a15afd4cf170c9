//! `kerasrs sparsity`: how sparse a model's Dense weights are.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::archive::atomic::write_atomic;
use crate::prune::plot::histogram_svg;
use crate::prune::sparsity::TOP_FEATURES;
use crate::prune::sparsity_report;
use crate::text::sanitize_text;

/// Report the sparsity of every Dense and convolution kernel and bias (with per-channel counts): exact zeros, weights
/// with |w| below 1e-4, 1e-3 and 1e-2, and a histogram of log10|w| by decade;
/// then feature selection: the input features (rows of the first Dense
/// kernel) whose weights are all exactly zero, and the others ranked by the
/// L1 norm of their row.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs sparsity model.keras\n  \
      kerasrs sparsity model.keras --json | jq '.features.dropped | length'\n  \
      kerasrs sparsity pruned.keras --plot histograms.svg")]
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
    /// Print the report as JSON (every feature, not only the top ones).
    #[arg(long)]
    json: bool,
    /// Names of the input features, one per line (default: the names the
    /// model records, from the CSV it was fine-tuned on).
    #[arg(long, value_name = "FILE")]
    feature_names: Option<PathBuf>,
    /// Also draw per-layer log10|w| histograms into this SVG file.
    #[arg(long, value_name = "OUT.svg")]
    plot: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(plot) = &args.plot {
        super::paths::RunFiles::new(&args.model)
            .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
            .typed_output("`--plot`", plot, super::paths::OutputKind::Plot)
            .check()?;
    }
    let mut model = super::open_model(&args.model, args.config.as_deref())?;
    if let Some(path) = &args.feature_names {
        let names = super::data_args::names_file(path, &model)?;
        model.set_feature_names(Some(&names))?;
    }
    let report = sparsity_report(&model);
    if let Some(plot) = &args.plot {
        let svg = histogram_svg(&report)?;
        write_atomic(plot, svg.as_bytes())
            .with_context(|| format!("cannot write the plot `{}`", plot.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", sanitize_text(&report.detailed(TOP_FEATURES)));
    }
    if let Some(plot) = &args.plot {
        eprintln!("wrote `{}`", plot.display());
    }
    Ok(())
}
