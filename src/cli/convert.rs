//! `kerasrs convert`: re-save a model through kerasrs.

use std::path::PathBuf;

use anyhow::Result;

use crate::Model;

/// Re-save a model through kerasrs: the model is read, validated and written
/// back. Keras loads the result and predicts identically; `config.json`,
/// weights, optimizer state and extra archive members are kept.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kerasrs convert model.keras --output copy.keras")]
pub struct Args {
    /// The `.keras` model file.
    model: PathBuf,
    /// Where to write the re-saved model.
    #[arg(long, short)]
    output: PathBuf,
    /// Allow `--output` to be the input model itself (replaced atomically).
    #[arg(long)]
    in_place: bool,
}

pub fn run(args: Args) -> Result<()> {
    super::paths::RunFiles::new(&args.model)
        .typed_output(
            super::paths::OUTPUT,
            &args.output,
            super::paths::OutputKind::Model,
        )
        .in_place(args.in_place)
        .check()?;
    let model = Model::open(&args.model)?;
    model.save(&args.output)?;
    eprintln!(
        "wrote `{}` ({} layers, {} parameters)",
        args.output.display(),
        model.layers.len(),
        model.param_count()
    );
    Ok(())
}
