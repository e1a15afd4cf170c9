//! `kerasrs shrink`: remove the units, filters and input columns that cannot
//! change the output, and write a smaller model.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::prune::shrink::{ShrinkOptions, shrink};

/// Remove what cannot change the output: a Dense unit or convolution filter
/// whose outgoing weights are all zero goes with its incoming weights, its
/// bias and the per-unit parameters after it (BatchNormalization, PReLU); a
/// Dense unit whose incoming weights are all zero is a constant
/// (activation(bias)) and is folded into the next Dense layer's bias when
/// only Activation and Dropout layers lie between; input columns that no
/// weight reads are removed from the model's input (unless
/// `--keep-inputs`), so the shrunk model takes fewer columns.
///
/// Only plain chains are cut: a unit feeding a merge, a shared layer,
/// Flatten or a nested model is left alone (a note says so). Regularizers,
/// constraints, activations and the compile config are kept, and the
/// optimizer's slot variables are cut with their variables, so Keras loads
/// the result and resumes training. Predictions on the kept columns equal the
/// original's on all columns (to float32 rounding when units were folded);
/// kerasrs checks that on a random batch before writing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      kerasrs shrink pruned.keras --output small.keras\n  \
      kerasrs shrink lasso.keras --output small.keras --keep-inputs\n  \
      kerasrs shrink model.keras --tolerance 1e-6 --output small.keras --json")]
pub struct Args {
    /// The model: a `.keras` archive (Keras 3, tf_keras 2.15), an unzipped
    /// archive directory, a legacy `.h5` model, or weights only (`.weights.h5`,
    /// sharded `model.weights.json`) with the architecture beside them or in
    /// `--config`.
    model: PathBuf,
    /// The architecture of a weights-only MODEL: a `config.json`, a
    /// `model.to_json()` output or a `.keras` archive.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to write the shrunk model.
    #[arg(long, short)]
    output: PathBuf,
    /// Keep every input column, even those no weight reads.
    #[arg(long)]
    keep_inputs: bool,
    /// Treat weights with |w| <= T as zero (default 0: exact zeros only; a
    /// positive T changes the predictions by what those weights contributed).
    #[arg(
        long,
        value_name = "T",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    tolerance: f64,
    /// Names of the input features, one per line (default: the names the
    /// model records).
    #[arg(long, value_name = "FILE")]
    feature_names: Option<PathBuf>,
    /// Allow `--output` to be the input model itself (replaced atomically).
    #[arg(long)]
    in_place: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Predictions may differ by float32 rounding where constants were folded.
const CHECK_TOLERANCE: f64 = 1e-4;

pub fn run(args: Args) -> Result<()> {
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        anyhow::bail!(
            "`--tolerance` must be finite and >= 0, found {}",
            args.tolerance
        );
    }
    super::paths::RunFiles::new(&args.model)
        .inputs(args.config.as_deref().map(|c| ("`--config`", c)))
        .inputs(
            args.feature_names
                .as_deref()
                .map(|c| ("`--feature-names`", c)),
        )
        .typed_output(
            super::paths::OUTPUT,
            &args.output,
            super::paths::OutputKind::Model,
        )
        .in_place(args.in_place)
        .check()?;
    let mut model = super::open_model(&args.model, args.config.as_deref())?;
    if let Some(path) = &args.feature_names {
        let names = super::data_args::names_file(path, &model)?;
        model.set_feature_names(Some(&names))?;
    }
    let opts = ShrinkOptions {
        tolerance: args.tolerance,
        keep_inputs: args.keep_inputs,
    };
    let (shrunk, report) = shrink(&model, &opts)
        .with_context(|| format!("cannot shrink `{}`", args.model.display()))?;
    if args.tolerance == 0.0
        && (report.max_difference.is_nan() || report.max_difference > CHECK_TOLERANCE)
    {
        anyhow::bail!(
            "cannot shrink `{}`: the shrunk model's predictions differ from the original's by \
             {:e} on a random batch (this is a bug in kerasrs; nothing was written)",
            args.model.display(),
            report.max_difference
        );
    }
    shrunk.save(&args.output)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::text::sanitize_text(&report.to_string()));
    }
    eprintln!(
        "wrote `{}` ({} parameters, {} before)",
        args.output.display(),
        crate::model::summary::thousands(report.params_after),
        crate::model::summary::thousands(report.params_before)
    );
    Ok(())
}
