//! `kerasrs load`: summarize a model.

use std::path::PathBuf;

use anyhow::Result;

use crate::Model;
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
    /// The `.keras` model file.
    model: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let model = Model::open(&args.model)?;
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
