//! The command-line interface: parsed once by clap into [`Cli`], then each
//! command runs as a thin shell over the library. Errors carry context via
//! `anyhow` and are printed once, by `main`.

mod convert;
mod data_args;
mod evaluate;
mod finetune;
pub mod interrupt;
mod load;
mod paths;
mod predict;
mod progress;
mod prune;
mod shrink;
mod sparsity;
mod sweep;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// A count flag (`--batch-size`) that must be at least 1, with a message
/// that says so.
fn at_least_one(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "expected a whole number of at least 1, found `{s}`"
        )),
    }
}

/// kerasrs: inspect, run, fine-tune and re-save Keras 3 models without Python.
#[derive(Debug, Parser)]
#[command(
    name = "kerasrs",
    version,
    about = "Inspect, run, fine-tune and re-save Keras 3 `.keras` models natively",
    after_help = "Examples:\n  \
      kerasrs load fixtures/models/digits.keras\n  \
      kerasrs predict fixtures/models/digits.keras --input x.npy --output y.npy\n  \
      kerasrs convert model.keras --output copy.keras\n  \
      kerasrs finetune fixtures/models/digits.keras --data fixtures/digits.npz --output tuned.keras\n  \
      kerasrs evaluate tuned.keras --data fixtures/digits.npz"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Load(load::Args),
    Predict(predict::Args),
    Convert(convert::Args),
    #[command(visible_alias = "fit")]
    Finetune(finetune::Args),
    Evaluate(evaluate::Args),
    Prune(prune::Args),
    Sparsity(sparsity::Args),
    Sweep(sweep::Args),
    Shrink(shrink::Args),
}

/// Open the model a command names (any supported source), printing the
/// import notes (a legacy or weights-only source is written back as a Keras 3
/// `.keras` archive) on stderr.
fn open_model(model: &std::path::Path, config: Option<&std::path::Path>) -> Result<crate::Model> {
    let model = crate::Model::open_with(model, config)?;
    for note in &model.notes {
        eprintln!("note: {}", crate::text::sanitize(note));
    }
    Ok(model)
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Load(a) => load::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Sparsity(a) => sparsity::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Shrink(a) => shrink::run(a),
    }
}
