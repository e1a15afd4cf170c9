//! The data options shared by `finetune` and `evaluate`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ndarray::ArrayD;

use crate::data::{F32Data, read_npy_data, read_npy_f32, read_npz_pair};

/// Where training or evaluation data comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Inputs as a `.npy` array (with `--y`).
    #[arg(long, value_name = "X.npy", requires = "y", conflicts_with = "data")]
    pub x: Option<PathBuf>,
    /// Targets as a `.npy` array (with `--x`): class indices for sparse
    /// cross-entropy, else the same shape as the model output.
    #[arg(long, value_name = "Y.npy", requires = "x", conflicts_with = "data")]
    pub y: Option<PathBuf>,
    /// Inputs and targets in one `.npz` archive.
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
    /// Read (inputs, targets); float32 inputs stay in the file (mapped).
    pub fn load(&self) -> Result<(F32Data, ArrayD<f32>)> {
        match (&self.x, &self.y, &self.data) {
            (Some(x), Some(y), None) => Ok((read_npy_data(x)?, read_npy_f32(y)?)),
            (None, None, Some(d)) => Ok(read_npz_pair(d, &self.x_key, &self.y_key)?),
            _ => bail!("give either `--x X.npy --y Y.npy` or `--data D.npz`"),
        }
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

/// Read a validation `.npz` with the same keys.
pub fn load_npz_pair(path: &Path, x_key: &str, y_key: &str) -> Result<(F32Data, ArrayD<f32>)> {
    Ok(read_npz_pair(path, x_key, y_key)?)
}
