//! The data options shared by `finetune`, `evaluate` and `sweep`.

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
    #[arg(long, value_name = "D.npz", required_unless_present_any = ["x", "csv"])]
    pub data: Option<PathBuf>,
    /// Name of the inputs array inside `--data`.
    #[arg(long, default_value = "x", requires = "data")]
    pub x_key: String,
    /// Name of the targets array inside `--data`.
    #[arg(long, default_value = "y", requires = "data")]
    pub y_key: String,
    /// Inputs and targets in one CSV file: a header row naming the columns,
    /// then numbers (read as float32); the `--target` columns are the
    /// targets (class labels or values, as the loss takes them), the
    /// `--features` columns (default: all others) the model's inputs. The
    /// column names are recorded as the model's feature names.
    #[arg(long, value_name = "FILE.csv", requires = "target", conflicts_with_all = ["x", "data"])]
    pub csv: Option<PathBuf>,
    /// The target column(s) of `--csv`, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "COL", requires = "csv")]
    pub target: Option<Vec<String>>,
    /// The feature columns of `--csv`, comma-separated, in the model's input
    /// order (default: the feature names the model records, else every
    /// column but the targets, in file order).
    #[arg(long, value_delimiter = ',', value_name = "COL", requires = "csv")]
    pub features: Option<Vec<String>>,
    /// Names of the input features, one per line, recorded in the written
    /// model (instead of the CSV header's).
    #[arg(long, value_name = "FILE")]
    pub feature_names: Option<PathBuf>,
}

/// Data for a model, with the names of its input columns when known.
pub struct Loaded {
    /// One array per model input.
    pub x: Vec<F32Data>,
    /// One array per model output.
    pub y: Vec<ArrayD<f32>>,
    /// The input columns' names (`--csv` header or `--feature-names`).
    pub feature_names: Option<Vec<String>>,
}

/// Read a CSV of features (and `targets`) for a model with one input of
/// `width` columns per sample.
pub fn csv_table(
    path: &Path,
    model: &Model,
    targets: &[String],
    features: Option<&[String]>,
) -> Result<crate::tabular::Table> {
    let g = &model.graph;
    if g.inputs.len() != 1 {
        bail!(
            "`--csv` gives one table of features, but the model has {} inputs ({}): use `--data` \
             with one array per input",
            g.inputs.len(),
            g.input_names.join(", ")
        );
    }
    let table = crate::tabular::read_csv(path, &crate::tabular::Columns { targets, features })?;
    let want = g.input_shapes()[0];
    if want != [table.x.ncols()] {
        bail!(
            "the model takes inputs of shape {} but `{}` gives {} feature columns ({}){}",
            crate::model::layers::keras_shape(want),
            path.display(),
            table.x.ncols(),
            crate::text::sanitize(&table.feature_names.join(", ")),
            if features.is_none() {
                ": pick them with `--features COL,...`"
            } else {
                ""
            }
        );
    }
    Ok(table)
}

/// The names in `--feature-names FILE`, checked against the model's input.
pub fn names_file(path: &Path, model: &Model) -> Result<Vec<String>> {
    let names = crate::tabular::read_feature_names(path)?;
    match model.feature_width() {
        Some(w) if w == names.len() => Ok(names),
        Some(w) => bail!(
            "`{}` holds {} feature names, but the model takes {w} input columns",
            path.display(),
            names.len()
        ),
        None => bail!("feature names apply to a model with one input of one axis"),
    }
}

impl DataArgs {
    /// Read one array per model input and one per model output. In
    /// `--data`, arrays are named after the input and output layers (`x`
    /// and `y`, or `--x-key`/`--y-key`, also do for a model with one input
    /// or one output); `--x`/`--y` take `.npy` arrays, or `.npz` archives of
    /// arrays named after the inputs / outputs.
    pub fn load_for(&self, model: &Model) -> Result<(Vec<F32Data>, Vec<ArrayD<f32>>)> {
        let loaded = self.load(model)?;
        Ok((loaded.x, loaded.y))
    }

    /// [`DataArgs::load_for`] with the feature names of the data (the CSV
    /// header, or `--feature-names`).
    pub fn load(&self, model: &Model) -> Result<Loaded> {
        let named = match &self.feature_names {
            Some(path) => Some(names_file(path, model)?),
            None => None,
        };
        if let (Some(path), Some(targets)) = (&self.csv, &self.target) {
            let g = &model.graph;
            if g.outputs.len() != 1 {
                bail!(
                    "`--csv` gives one set of targets, but the model has {} outputs ({}): use \
                     `--data` with one array per output",
                    g.outputs.len(),
                    g.output_names.join(", ")
                );
            }
            // Default columns: the features the model records (a shrunk
            // model takes fewer), else all but the targets.
            let recorded = model.feature_names();
            let features = self.features.as_deref().or(recorded.as_deref());
            let table = csv_table(path, model, targets, features)?;
            let width = g.output_shapes()[0].last().copied().unwrap_or(1);
            let y = table.targets_for(width);
            let names = named.unwrap_or_else(|| table.feature_names.clone());
            return Ok(Loaded {
                x: vec![F32Data::from(table.x.into_dyn())],
                y: vec![y],
                feature_names: Some(names),
            });
        }
        let (x, y) = self.load_arrays(model)?;
        Ok(Loaded {
            x,
            y,
            feature_names: named,
        })
    }

    fn load_arrays(&self, model: &Model) -> Result<(Vec<F32Data>, Vec<ArrayD<f32>>)> {
        let g = &model.graph;
        match (&self.x, &self.y, &self.data) {
            (Some(x), Some(y), None) => Ok((
                input_arrays(x, model, "x", None)?,
                target_arrays(y, model, "y", None)?,
            )),
            (None, None, Some(d)) => {
                if sniff(d) == Some(Stored::Npy) {
                    bail!(
                        "`--data` takes an `.npz` archive holding inputs and targets, but `{}` \
                         is a single `.npy` array: pass `--x {} --y Y.npy` instead",
                        d.display(),
                        d.display()
                    );
                }
                let keys = npz_keys(d)?;
                let pick = "name them after the model's inputs and outputs, or pick them with \
                            `--x-key NAME --y-key NAME`";
                let xk = array_keys(d, Some(&keys), &g.input_names, &self.x_key, "input", pick)?;
                let yk = array_keys(d, Some(&keys), &g.output_names, &self.y_key, "output", pick)?;
                if let (Some([x]), Some([y])) = (xk.as_deref(), yk.as_deref()) {
                    // One input and one output: both read through one open
                    // and one mapping of the file.
                    let (x, y) = read_npz_pair(d, x, y)?;
                    return Ok((vec![x], vec![y]));
                }
                Ok((
                    read_arrays(d, xk, read_npz_data, read_npy_data)?,
                    read_arrays(d, yk, read_npz_f32, read_npy_f32)?,
                ))
            }
            _ => bail!("give `--x X --y Y`, `--data D.npz` or `--csv FILE --target COL`"),
        }
    }

    /// The input files with their flags, to check that no output
    /// overwrites them.
    pub fn paths(&self) -> Vec<(&'static str, &Path)> {
        [
            ("`--x`", &self.x),
            ("`--y`", &self.y),
            ("`--data`", &self.data),
            ("`--csv`", &self.csv),
            ("`--feature-names`", &self.feature_names),
        ]
        .into_iter()
        .filter_map(|(flag, p)| Some((flag, p.as_deref()?)))
        .collect()
    }
}

/// One array per model input from `path`: an `.npz` with arrays named
/// after the input layers (or `single` for a model with one input), or a
/// `.npy` for a model with one input.
pub fn input_arrays(
    path: &Path,
    model: &Model,
    single: &str,
    keys: Option<&[String]>,
) -> Result<Vec<F32Data>> {
    let k = array_keys(
        path,
        keys,
        &model.graph.input_names,
        single,
        "input",
        NAME_AFTER_LAYERS,
    )?;
    read_arrays(path, k, read_npz_data, read_npy_data)
}

/// One target array per model output from `path`, as [`input_arrays`].
pub fn target_arrays(
    path: &Path,
    model: &Model,
    single: &str,
    keys: Option<&[String]>,
) -> Result<Vec<ArrayD<f32>>> {
    f32_arrays(
        path,
        &model.graph.output_names,
        single,
        "output",
        keys,
        NAME_AFTER_LAYERS,
    )
}

/// The inputs of `predict`: a `.npy` for a one-input model, or an `.npz`
/// whose arrays are named after the inputs; for a one-input model also the
/// array `key` (`--input-key`), `x`, or the archive's only array.
pub fn prediction_inputs(
    path: &Path,
    names: &[String],
    key: Option<&str>,
) -> Result<Vec<ArrayD<f32>>> {
    let pick = "pick the array with `--input-key NAME` (one input) or name the arrays after \
                the model's input layers";
    if !is_npz(path) {
        if let Some(k) = key {
            bail!(
                "`--input-key {k}` picks an array of an `.npz`, but `{}` is not one",
                path.display()
            );
        }
        return f32_arrays(path, names, "x", "input", None, pick);
    }
    let keys = npz_keys(path)?;
    let single = match (key, names, &keys[..]) {
        (Some(k), [_], _) => {
            if !keys.iter().any(|have| have == k) {
                let mut have = keys.clone();
                have.sort_unstable();
                bail!(
                    "`{}` has no array `{k}` (it holds: {})",
                    path.display(),
                    have.join(", ")
                );
            }
            // The named array wins over one named after the input.
            return Ok(vec![read_npz_f32(path, k)?]);
        }
        (Some(_), _, _) => bail!(
            "`--input-key` is for a model with one input; this one has {} ({}): name the \
             arrays of `{}` after them",
            names.len(),
            names.join(", "),
            path.display()
        ),
        (None, [_], [only]) => only.as_str(),
        _ => "x",
    };
    f32_arrays(path, names, single, "input", Some(&keys), pick)
}

/// Whether `path` holds an `.npz`: by its content, by its extension when
/// the content says nothing (the reader then names the problem).
fn is_npz(path: &Path) -> bool {
    match sniff(path) {
        Some(kind) => kind == Stored::Npz,
        None => path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npz")),
    }
}

/// How to name the arrays of an `.npz` given with `--x`/`--y`.
const NAME_AFTER_LAYERS: &str =
    "name its arrays after the model's layers (`kerasrs load` lists them)";

/// The arrays named `names` (`what`s of the model) from `path`, read into
/// memory as float32 (see [`input_arrays`] for the naming).
pub fn f32_arrays(
    path: &Path,
    names: &[String],
    single: &str,
    what: &str,
    keys: Option<&[String]>,
    pick: &str,
) -> Result<Vec<ArrayD<f32>>> {
    let k = array_keys(path, keys, names, single, what, pick)?;
    read_arrays(path, k, read_npz_f32, read_npy_f32)
}

/// Read the arrays [`array_keys`] found.
fn read_arrays<T>(
    path: &Path,
    keys: Option<Vec<String>>,
    from_npz: fn(&Path, &str) -> crate::Result<T>,
    from_npy: fn(&Path) -> crate::Result<T>,
) -> Result<Vec<T>> {
    match keys {
        None => Ok(vec![from_npy(path)?]),
        Some(keys) => Ok(keys
            .iter()
            .map(|k| from_npz(path, k))
            .collect::<crate::Result<_>>()?),
    }
}

/// What a data file holds, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Npy,
    Npz,
}

/// The format of the file at `path` from its content (`None` when it is
/// neither or cannot be read; the reader then gives the error).
fn sniff(path: &Path) -> Option<Stored> {
    use std::io::Read;
    let mut head = [0u8; 6];
    let mut f = std::fs::File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Stored::Npz)
    } else if head == *b"\x93NUMPY" {
        Some(Stored::Npy)
    } else {
        None
    }
}

/// The archive keys of the arrays named `names` in the `.npz` at `path`
/// (whose keys are `keys`, read when `None`), or `single` when there is one
/// name and no array of that name; `None` for
/// a `.npy`, which holds the one array of a single name. Whether the file
/// is an `.npz` is read from its content (its extension when that says
/// nothing); `pick` tells the user how to name the arrays when one is
/// missing.
fn array_keys(
    path: &Path,
    keys: Option<&[String]>,
    names: &[String],
    single: &str,
    what: &str,
    pick: &str,
) -> Result<Option<Vec<String>>> {
    if !is_npz(path) {
        if names.len() != 1 {
            bail!(
                "the model has {} {what}s ({}): give an `.npz` with one array named after each, not `{}`",
                names.len(),
                names.join(", "),
                path.display()
            );
        }
        return Ok(None);
    }
    let read;
    let keys = match keys {
        Some(k) => k,
        None => {
            read = npz_keys(path)?;
            &read[..]
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let key = if keys.iter().any(|k| k == name) {
            name.as_str()
        } else if names.len() == 1 && keys.iter().any(|k| k == single) {
            single
        } else {
            let mut have = keys.to_vec();
            have.sort_unstable();
            bail!(
                "`{}` is an `.npz` archive with no array for the model {what} `{name}` (it \
                 holds: {}; the model's {what}s: {}): {pick}",
                path.display(),
                have.join(", "),
                names.join(", ")
            );
        };
        out.push(key.to_string());
    }
    Ok(Some(out))
}
