//! `kerasrs convert`: re-save a model through kerasrs.

use std::path::PathBuf;

use anyhow::Result;

/// Re-save a model through kerasrs: the model is read, validated and written
/// back. Keras loads the result and predicts identically; `config.json`,
/// weights, optimizer state and extra archive members are kept.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kerasrs convert model.keras --output copy.keras")]
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
    /// Where to write the re-saved model.
    #[arg(long, short)]
    output: PathBuf,
    /// Allow `--output` to be the input model itself (replaced atomically).
    #[arg(long)]
    in_place: bool,
}

pub fn run(args: Args) -> Result<()> {
    super::paths::RunFiles::new(&args.model)
        .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
        .typed_output(
            super::paths::OUTPUT,
            &args.output,
            super::paths::OutputKind::Model,
        )
        .in_place(args.in_place)
        .check()?;
    let model = super::open_model(&args.model, args.config.as_deref())?;
    model.save(&args.output)?;
    eprintln!(
        "wrote `{}` ({} layers, {} parameters)",
        args.output.display(),
        model.layers.len(),
        model.param_count()
    );
    Ok(())
}
