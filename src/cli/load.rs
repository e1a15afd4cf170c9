//! `kerasrs load`: summarize a model.

use std::path::PathBuf;

use anyhow::Result;

use crate::model::summary::Summary;
use crate::prune::sparsity_report;
use crate::text::sanitize_text;

/// Summarize a model: layers, output shapes, parameter counts, activations,
/// regularizers, compile configuration, stored optimizer state and sparsity.
#[derive(Debug, clap::Args)]
#[command(
    visible_alias = "summary",
    after_help = "Examples:\n  \
      kerasrs load model.keras\n  \
      kerasrs load model.keras --json | jq .total_params"
)]
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
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let model = super::open_model(&args.model, args.config.as_deref())?;
    let summary = Summary::of(&model);
    let sparsity = sparsity_report(&model);
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["sparsity"] = serde_json::to_value(&sparsity)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", sanitize_text(&summary.to_string()));
        if !sparsity.tensors.is_empty() {
            print!(
                "\nSparsity (see `kerasrs sparsity` for histograms):\n{}",
                sanitize_text(&sparsity.to_string())
            );
        }
    }
    Ok(())
}
