//! `kerasrs predict`: run a model on a `.npy` array.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::Model;
use crate::data::{read_npy_f32, write_npy_f32};

/// Run the model on the rows of a `.npy` array (inference mode: dropout off)
/// and write the outputs as a float32 `.npy` array.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs predict model.keras --input x.npy --output y.npy\n  \
      kerasrs predict model.keras --input x.npy --output y.npy --batch-size 1024")]
pub struct Args {
    /// The `.keras` model file.
    model: PathBuf,
    /// Input array: shape (N, ...input shape), float32 (float64/int are cast).
    #[arg(long, short)]
    input: PathBuf,
    /// Where to write the predictions (float32 `.npy`).
    #[arg(long, short)]
    output: PathBuf,
    /// Rows per batch (batches run in parallel).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

pub fn run(args: Args) -> Result<()> {
    super::check_output_is_not_input(&args.input, &args.output)?;
    super::check_output_is_not_input(&args.model, &args.output)?;
    let model = Model::open(&args.model)?;
    let x = read_npy_f32(&args.input)?;
    let y = model
        .predict(x.view(), args.batch_size as usize)
        .with_context(|| {
            format!(
                "`{}` does not fit `{}`",
                args.input.display(),
                args.model.display()
            )
        })?;
    write_npy_f32(&args.output, &y)?;
    eprintln!(
        "wrote predictions of shape {:?} to `{}`",
        y.shape(),
        args.output.display()
    );
    Ok(())
}
