//! `kerasrs evaluate`: loss and metrics of a model on data.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::data_args::DataArgs;
use crate::engine::session::{CompileOverrides, prepare};
use crate::text::sanitize;

/// Compute the loss (including regularization penalties, as Keras's
/// `model.evaluate` reports it) and the compiled metrics on a data set.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs evaluate fixtures/models/digits.keras --data fixtures/digits.npz\n  \
      kerasrs evaluate model.keras --x x.npy --y y.npy --json\n  \
      kerasrs evaluate uncompiled.keras --data d.npz --loss mse")]
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
    #[command(flatten)]
    data: DataArgs,
    /// Rows per batch (as Keras's `evaluate`, default 32).
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one)]
    batch_size: u64,
    /// Loss to use when the model was saved without one (or to override it).
    #[arg(long, value_name = "NAME")]
    loss: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let model = super::open_model(&args.model, args.config.as_deref())?;
    let overrides = CompileOverrides {
        loss: args.loss.clone(),
        ..CompileOverrides::default()
    };
    let mut prepared = prepare(&model, &overrides, false)?;
    let (xs, ys) = args.data.load_for(&model)?;
    let data = super::finetune::dataset(&model, &prepared, xs, ys)
        .with_context(|| "the data does not fit the model")?;
    let logs = prepared
        .trainer
        .evaluate(&model, &data, args.batch_size as usize)?;
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = logs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        let parts: Vec<String> = logs.iter().map(|(k, v)| format!("{k}: {v:.6}")).collect();
        println!("{} rows - {}", data.len(), sanitize(&parts.join(" - ")));
    }
    Ok(())
}
