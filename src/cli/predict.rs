//! `kerasrs predict`: run a model on a `.npy` array.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::data::{write_npy_f32, write_npz_f32};

/// Run the model on the rows of a `.npy` array (inference mode: dropout off)
/// and write the outputs as a float32 `.npy` array. A model with several
/// inputs takes an `.npz` with one array per input, named after the input
/// layers; a model with several outputs writes an `.npz` keyed by output
/// name.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs predict model.keras --input x.npy --output y.npy\n  \
      kerasrs predict model.keras --input x.npy --output y.npy --batch-size 1024\n  \
      kerasrs predict fixtures/models/digits.keras --input fixtures/digits.npz --input-key x --output target/digits-pred.npy\n  \
      kerasrs predict two_inputs.keras --input inputs.npz --output outputs.npz\n  \
      kerasrs predict shrunk.keras --csv data.csv --output y.npy")]
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
    /// Input array: shape (N, ...input shape), float32 (float64/int are cast).
    #[arg(long, short, required_unless_present = "csv", conflicts_with = "csv")]
    input: Option<PathBuf>,
    /// Inputs from a CSV file with a header row: the columns named by
    /// `--features`, else the model's recorded feature names (a model
    /// fine-tuned on a CSV, or shrunk), else every column.
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
    /// The feature columns of `--csv`, comma-separated, in the model's input
    /// order.
    #[arg(long, value_delimiter = ',', value_name = "COL", requires = "csv")]
    features: Option<Vec<String>>,
    /// Where to write the predictions (float32 `.npy`).
    #[arg(long, short)]
    output: PathBuf,
    /// The array of an `.npz` `--input` to use for a model with one input
    /// (default: the array named after the input layer, else `x`, else the
    /// archive's only array).
    #[arg(long, value_name = "NAME")]
    input_key: Option<String>,
    /// Rows per batch (batches run in parallel).
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one)]
    batch_size: u64,
}

pub fn run(args: Args) -> Result<()> {
    let input = args
        .input
        .as_deref()
        .or(args.csv.as_deref())
        .context("give `--input X.npy` or `--csv FILE`")?;
    super::paths::RunFiles::new(&args.model)
        .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
        .input(
            if args.csv.is_some() {
                "`--csv`"
            } else {
                "`--input`"
            },
            input,
        )
        .typed_output(
            super::paths::OUTPUT,
            &args.output,
            super::paths::OutputKind::Arrays,
        )
        .check()?;
    let model = super::open_model(&args.model, args.config.as_deref())?;
    let g = &model.graph;
    let xs = match &args.csv {
        Some(csv) => {
            let recorded = model.feature_names();
            let features = args.features.as_deref().or(recorded.as_deref());
            let table = super::data_args::csv_table(csv, &model, &[], features)?;
            vec![table.x.into_dyn()]
        }
        None => {
            super::data_args::prediction_inputs(input, &g.input_names, args.input_key.as_deref())?
        }
    };
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    let ys = model
        .predict_all(&views, args.batch_size as usize)
        .with_context(|| {
            format!(
                "`{}` does not fit `{}`",
                input.display(),
                args.model.display()
            )
        })?;
    let npz_out = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if npz_out {
        let named: Vec<(&str, &ndarray::ArrayD<f32>)> =
            g.output_names.iter().map(String::as_str).zip(&ys).collect();
        write_npz_f32(&args.output, &named)?;
    } else if let [y] = &ys[..] {
        write_npy_f32(&args.output, y)?;
    } else {
        anyhow::bail!(
            "the model has {} outputs ({}): give `--output` an `.npz` path",
            ys.len(),
            g.output_names.join(", ")
        );
    }
    let shapes: Vec<String> = ys.iter().map(|y| format!("{:?}", y.shape())).collect();
    eprintln!(
        "wrote predictions of shape {} to `{}`",
        shapes.join(", "),
        args.output.display()
    );
    Ok(())
}
