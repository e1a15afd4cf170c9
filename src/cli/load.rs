//! `kerasrs load`: summarize a model.

use std::path::PathBuf;

use anyhow::Result;

use crate::Model;
use crate::model::summary::Summary;

/// Summarize a model: layers, output shapes, parameter counts, activations,
/// regularizers, compile configuration and stored optimizer state.
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(())
}
