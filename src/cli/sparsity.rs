//! `kerasrs sparsity`: how sparse a model's Dense weights are.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::Model;
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
    /// The `.keras` model file.
    model: PathBuf,
    /// Print the report as JSON (every feature, not only the top ones).
    #[arg(long)]
    json: bool,
    /// Also draw per-layer log10|w| histograms into this SVG file.
    #[arg(long, value_name = "OUT.svg")]
    plot: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(plot) = &args.plot {
        super::paths::RunFiles::new(&args.model)
            .typed_output("`--plot`", plot, super::paths::OutputKind::Plot)
            .check()?;
    }
    let model = Model::open(&args.model)?;
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
