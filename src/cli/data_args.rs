//! The data options shared by `finetune` and `evaluate`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ndarray::ArrayD;

use crate::Model;
use crate::data::{
    F32Data, npz_keys, read_npy_data, read_npy_f32, read_npz_data, read_npz_f32, read_npz_pair,
};

/// Where training or evaluation data comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Inputs as a `.npy` array (with `--y`), or an `.npz` with one array
    /// per model input, named after the input layers.
    #[arg(long, value_name = "X.npy", requires = "y", conflicts_with = "data")]
    pub x: Option<PathBuf>,
    /// Targets as a `.npy` array (with `--x`): class indices for sparse
    /// cross-entropy, else the same shape as the model output; or an `.npz`
    /// with one array per model output, named after the output layers.
    #[arg(long, value_name = "Y.npy", requires = "x", conflicts_with = "data")]
    pub y: Option<PathBuf>,
    /// Inputs and targets in one `.npz` archive: arrays named after the
    /// model's input and output layers (`kerasrs load` lists them), or
    /// `x` and `y` (see `--x-key`, `--y-key`) for one input and one output.
    #[arg(long, value_name = "D.npz", required_unless_present = "x")]
    pub data: Option<PathBuf>,
    /// Name of the inputs array inside `--data`.
    #[arg(long, default_value = "x", requires = "data")]
    pub x_key: String,
    /// Name of the targets array inside `--data`.
    #[arg(long, default_value = "y", requires = "data")]
    pub y_key: String,
}

impl DataArgs {
    /// Read one array per model input and one per model output. In
    /// `--data`, arrays are named after the input and output layers (`x`
    /// and `y`, or `--x-key`/`--y-key`, also do for a model with one input
    /// or one output); `--x`/`--y` take `.npy` arrays, or `.npz` archives of
    /// arrays named after the inputs / outputs.
    pub fn load_for(&self, model: &Model) -> Result<(Vec<F32Data>, Vec<ArrayD<f32>>)> {
        let g = &model.graph;
        let (xs_from, ys_from, x_key, y_key) = match (&self.x, &self.y, &self.data) {
            (Some(x), Some(y), None) => (x, y, "x", "y"),
            (None, None, Some(d)) => (d, d, self.x_key.as_str(), self.y_key.as_str()),
            _ => bail!("give either `--x X --y Y` or `--data D.npz`"),
        };
        if let (Some(d), [input], [output]) = (&self.data, &g.input_names[..], &g.output_names[..])
        {
            // One input and one output under `x`/`y`: both read through one
            // open and one mapping of the file.
            let keys = npz_keys(d)?;
            let has = |k: &str| keys.iter().any(|key| key == k);
            if !has(input) && !has(output) && has(x_key) && has(y_key) {
                let (x, y) = read_npz_pair(d, x_key, y_key)?;
                return Ok((vec![x], vec![y]));
            }
        }
        let xs = named_arrays(
            xs_from,
            &g.input_names,
            x_key,
            "input",
            read_npz_data,
            read_npy_data,
        )?;
        let ys = named_arrays(
            ys_from,
            &g.output_names,
            y_key,
            "output",
            read_npz_f32,
            read_npy_f32,
        )?;
        Ok((xs, ys))
    }

    /// The input files, to check that no output overwrites them.
    pub fn paths(&self) -> Vec<&Path> {
        [&self.x, &self.y, &self.data]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }
}

/// The arrays named `names` in an `.npz` (or `single` when there is one
/// name and no array of that name), or the one array of a `.npy`.
pub fn named_arrays<T>(
    path: &Path,
    names: &[String],
    single: &str,
    what: &str,
    from_npz: fn(&Path, &str) -> crate::Result<T>,
    from_npy: fn(&Path) -> crate::Result<T>,
) -> Result<Vec<T>> {
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !is_npz {
        if names.len() != 1 {
            bail!(
                "the model has {} {what}s ({}): give an `.npz` with one array named after each, not `{}`",
                names.len(),
                names.join(", "),
                path.display()
            );
        }
        return Ok(vec![from_npy(path)?]);
    }
    let keys = npz_keys(path)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let key = if keys.iter().any(|k| k == name) {
            name.as_str()
        } else if names.len() == 1 && keys.iter().any(|k| k == single) {
            single
        } else {
            let mut have = keys.clone();
            have.sort_unstable();
            bail!(
                "`{}` has no array for the model {what} `{name}` (it holds: {}; the model's {what}s: {})",
                path.display(),
                have.join(", "),
                names.join(", ")
            );
        };
        out.push(from_npz(path, key)?);
    }
    Ok(out)
}
