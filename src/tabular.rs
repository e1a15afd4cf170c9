//! Tabular data from CSV files: a header row naming the columns, then one
//! row per sample of numbers, read as float32.
//!
//! Numbers parse as numpy's `np.loadtxt(..., dtype=np.float32)` parses them:
//! each cell (surrounding spaces removed) goes straight to the nearest
//! float32 (`str::parse::<f32>` is correctly rounded, as numpy's float32
//! parser is), so a CSV written from float32 data with enough digits reads
//! back bit for bit. Empty cells, words and non-finite values are errors
//! naming the row, the column and what was found; so is a row with more or
//! fewer cells than the header.

use std::path::Path;

use ndarray::{Array2, ArrayD};

use crate::error::{Error, Result};

/// The columns a [`read_csv`] call picks.
#[derive(Debug, Clone, Default)]
pub struct Columns<'a> {
    /// Target columns (`--target`); may be empty (prediction inputs).
    pub targets: &'a [String],
    /// Feature columns (`--features`), in this order; `None`: every column
    /// that is not a target, in file order.
    pub features: Option<&'a [String]>,
}

/// A CSV file read into feature and target matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Features, `[rows, features]`.
    pub x: Array2<f32>,
    /// Targets, `[rows, targets]` (no columns when no target was asked for).
    pub y: Array2<f32>,
    /// The feature columns' names, in `x` column order.
    pub feature_names: Vec<String>,
    /// The target columns' names, in `y` column order.
    pub target_names: Vec<String>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    /// The targets shaped for a model output of `width` values per sample:
    /// one target column for an output wider than one is a class label
    /// (`[rows]`, as sparse cross-entropy takes it), anything else `[rows,
    /// targets]`.
    pub fn targets_for(&self, width: usize) -> ArrayD<f32> {
        if self.y.ncols() == 1 && width != 1 {
            self.y.column(0).to_owned().into_dyn()
        } else {
            self.y.clone().into_dyn()
        }
    }
}

/// Find `name` among the header's columns.
fn column(header: &[String], name: &str, flag: &str) -> Result<usize> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        Error::mismatch(
            format!(
                "a column named `{name}` for `{flag}` (columns: {})",
                header.join(", ")
            ),
            "none",
        )
    })
}

/// Read the CSV file at `path`, picking the target and feature columns.
pub fn read_csv(path: &Path, columns: &Columns<'_>) -> Result<Table> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(e, path))?;
    read_csv_from(file, columns).map_err(|e| e.in_file(path))
}

/// [`read_csv`] from any reader.
pub fn read_csv_from(reader: impl std::io::Read, columns: &Columns<'_>) -> Result<Table> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::invalid(format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(Error::missing(
            "a header row naming the columns (the first line of the file)",
        ));
    }
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(Error::invalid(format!(
                "column {} of the header row has no name",
                i + 1
            )));
        }
        if header[..i].contains(name) {
            return Err(Error::invalid(format!(
                "the header row names column `{name}` twice"
            )));
        }
    }
    let targets: Vec<usize> = columns
        .targets
        .iter()
        .map(|t| column(&header, t, "--target"))
        .collect::<Result<_>>()?;
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            return Err(Error::invalid(format!(
                "`--target` names column `{}` twice",
                header[*t]
            )));
        }
    }
    let features: Vec<usize> = match columns.features {
        Some(names) => {
            let mut picked = Vec::with_capacity(names.len());
            for name in names {
                let c = column(&header, name, "--features")?;
                if targets.contains(&c) {
                    return Err(Error::invalid(format!(
                        "column `{name}` is both a target and a feature"
                    )));
                }
                if picked.contains(&c) {
                    return Err(Error::invalid(format!(
                        "`--features` names column `{name}` twice"
                    )));
                }
                picked.push(c);
            }
            picked
        }
        None => (0..header.len()).filter(|c| !targets.contains(c)).collect(),
    };
    if features.is_empty() {
        return Err(Error::missing(format!(
            "feature columns: every column is a target (columns: {})",
            header.join(", ")
        )));
    }
    let mut x: Vec<f32> = Vec::new();
    let mut y: Vec<f32> = Vec::new();
    let mut rows = 0usize;
    let mut record = csv::StringRecord::new();
    let mut cells = vec![0f32; header.len()];
    loop {
        // Data rows are numbered from 1; the header is line 1 of the file.
        let row = rows + 1;
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(Error::invalid(format!("row {row}: not readable CSV: {e}")));
            }
        }
        let line = record.position().map_or(row + 1, |p| p.line() as usize);
        if record.len() != header.len() {
            return Err(Error::mismatch(
                format!(
                    "{} cells (one per header column) in row {row} (line {line})",
                    header.len()
                ),
                format!("{} cells", record.len()),
            ));
        }
        for (c, cell) in record.iter().enumerate() {
            if !(features.contains(&c) || targets.contains(&c)) {
                continue;
            }
            let text = cell.trim();
            let at = || format!("row {row} (line {line}), column `{}`", header[c]);
            if text.is_empty() {
                return Err(Error::missing(format!("value at {}", at())));
            }
            let v: f32 = text.parse().map_err(|_| {
                Error::mismatch(
                    format!("a number at {}", at()),
                    format!("`{}`", crate::text::sanitize(text)),
                )
            })?;
            if !v.is_finite() {
                return Err(Error::mismatch(
                    format!("a finite number at {}", at()),
                    format!("`{}`", crate::text::sanitize(text)),
                ));
            }
            cells[c] = v;
        }
        x.extend(features.iter().map(|&c| cells[c]));
        y.extend(targets.iter().map(|&c| cells[c]));
        rows = rows
            .checked_add(1)
            .ok_or_else(|| Error::limit("max_rows", "too many rows"))?;
    }
    if rows == 0 {
        return Err(Error::missing("data rows after the header row"));
    }
    let x = Array2::from_shape_vec((rows, features.len()), x)
        .map_err(|e| Error::invalid(e.to_string()))?;
    let y = Array2::from_shape_vec((rows, targets.len()), y)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(Table {
        x,
        y,
        feature_names: features.iter().map(|&c| header[c].clone()).collect(),
        target_names: targets.iter().map(|&c| header[c].clone()).collect(),
    })
}

/// Feature names from a text file: one name per line (surrounding spaces
/// removed; a final empty line is fine, other empty lines are errors).
pub fn read_feature_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(e, path))?;
    let mut names = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            if lines[i..].iter().all(|l| l.trim().is_empty()) {
                break;
            }
            return Err(Error::missing(format!("a feature name on line {}", i + 1)).in_file(path));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(Error::missing("feature names (one per line)").in_file(path));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, targets: &[&str], features: Option<&[&str]>) -> Result<Table> {
        let targets: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        let features: Option<Vec<String>> =
            features.map(|f| f.iter().map(|s| s.to_string()).collect());
        read_csv_from(
            text.as_bytes(),
            &Columns {
                targets: &targets,
                features: features.as_deref(),
            },
        )
    }

    #[test]
    fn picks_targets_and_features() {
        let t = read("a,b,y\n1,2,0\n3.5, 4 ,1\n", &["y"], None).unwrap();
        assert_eq!(t.feature_names, ["a", "b"]);
        assert_eq!(t.x.as_slice().unwrap(), [1.0, 2.0, 3.5, 4.0]);
        assert_eq!(t.y.as_slice().unwrap(), [0.0, 1.0]);
        assert_eq!(t.targets_for(3).shape(), [2]);
        assert_eq!(t.targets_for(1).shape(), [2, 1]);
        let t = read("a,b,y\n1,2,0\n", &["y"], Some(&["b"])).unwrap();
        assert_eq!(t.feature_names, ["b"]);
        assert_eq!(t.x.as_slice().unwrap(), [2.0]);
    }

    #[test]
    fn parses_like_numpy_float32() {
        // np.float32("0.1") and np.float32("1e-50") (underflow to zero).
        let t = read("a\n0.1\n1e-50\n16777217\n", &[], None).unwrap();
        assert_eq!(t.x[[0, 0]].to_bits(), 0.1f32.to_bits());
        assert_eq!(t.x[[1, 0]], 0.0);
        assert_eq!(t.x[[2, 0]], 16777216.0);
    }

    #[test]
    fn errors_name_row_and_column() {
        let e = read("a,b\n1,2\n3,x\n", &[], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a number at row 2 (line 3), column `b`, found `x`"
        );
        let e = read("a,b\n1,\n", &[], None).unwrap_err();
        assert_eq!(e.to_string(), "missing value at row 1 (line 2), column `b`");
        let e = read("a,b\n1,2\n1,2,3\n", &[], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected 2 cells (one per header column) in row 2 (line 3), found 3 cells"
        );
        let e = read("a,b\n1,nan\n", &[], None).unwrap_err();
        assert!(e.to_string().contains("a finite number"), "{e}");
        let e = read("a,b\n1,2\n", &["c"], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a column named `c` for `--target` (columns: a, b), found none"
        );
        let e = read("a,a\n1,2\n", &[], None).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = read("a,b\n", &[], None).unwrap_err();
        assert!(e.to_string().contains("data rows"), "{e}");
        let e = read("a,b\n1,2\n", &["a"], Some(&["a"])).unwrap_err();
        assert!(e.to_string().contains("both a target"), "{e}");
    }
}
