//! NumPy `.npy` / `.npz` input and output.
//!
//! Inputs may be float32 (used as is) or float64 / integer arrays, which are
//! cast to float32 the way Keras casts its inputs (`numpy.astype("float32")`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::{ArrayD, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpyExt, ReadableElement, WriteNpyExt};

use crate::archive::atomic::write_atomic_with;
use crate::error::{Error, Result};

fn read_as<T: ReadableElement>(path: &Path) -> std::result::Result<ArrayD<T>, ReadNpyError> {
    let file = File::open(path).map_err(ReadNpyError::Io)?;
    ArrayD::<T>::read_npy(BufReader::new(file))
}

/// Read a `.npy` file as float32, casting float64 and integer arrays.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    let wrap = |e: ReadNpyError| match e {
        ReadNpyError::Io(io) => Error::io(io, path),
        other => Error::invalid(format!("not a readable .npy array: {other}")).in_file(path),
    };
    match read_as::<f32>(path) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => {
            if let Ok(a) = read_as::<f64>(path) {
                return Ok(a.mapv(|v| v as f32));
            }
            if let Ok(a) = read_as::<i64>(path) {
                return Ok(a.mapv(|v| v as f32));
            }
            if let Ok(a) = read_as::<i32>(path) {
                return Ok(a.mapv(|v| v as f32));
            }
            Err(Error::mismatch(
                "a float32, float64, int32 or int64 .npy array",
                "another dtype",
            )
            .in_file(path))
        }
        Err(e) => Err(wrap(e)),
    }
}

/// Read array `key` of a `.npz` file as float32 (same casts as [`read_npy_f32`]).
pub fn read_npz_f32(path: &Path, key: &str) -> Result<ArrayD<f32>> {
    let open = || -> Result<NpzReader<File>> {
        let file = File::open(path).map_err(|e| Error::io(e, path))?;
        NpzReader::new(file)
            .map_err(|e| Error::invalid(format!("not a readable .npz archive: {e}")).in_file(path))
    };
    let mut npz = open()?;
    let names = npz
        .names()
        .map_err(|e| Error::invalid(format!("not a readable .npz archive: {e}")).in_file(path))?;
    let member = names
        .iter()
        .find(|n| n.as_str() == key || n.strip_suffix(".npy") == Some(key))
        .cloned()
        .ok_or_else(|| {
            Error::missing(format!(
                "array `{key}` (the archive holds: {})",
                names
                    .iter()
                    .map(|n| n.trim_end_matches(".npy"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .in_file(path)
        })?;
    let bad = |e: ndarray_npy::ReadNpzError| {
        Error::invalid(format!("array `{key}` is not readable: {e}")).in_file(path)
    };
    if let Ok(a) = npz.by_name::<OwnedRepr<f32>, IxDyn>(&member) {
        return Ok(a);
    }
    let mut npz = open()?;
    if let Ok(a) = npz.by_name::<OwnedRepr<f64>, IxDyn>(&member) {
        return Ok(a.mapv(|v| v as f32));
    }
    let mut npz = open()?;
    if let Ok(a) = npz.by_name::<OwnedRepr<i64>, IxDyn>(&member) {
        return Ok(a.mapv(|v| v as f32));
    }
    let mut npz = open()?;
    npz.by_name::<OwnedRepr<i32>, IxDyn>(&member)
        .map(|a| a.mapv(|v| v as f32))
        .map_err(bad)
}

/// Write a float32 array as `.npy`, atomically.
pub fn write_npy_f32(path: &Path, array: &ArrayD<f32>) -> Result<()> {
    write_atomic_with(path, |f| {
        array
            .write_npy(std::io::BufWriter::new(f))
            .map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_casts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0f32, 2.0, -3.5, 0.25]).unwrap();
        write_npy_f32(&p, &a).unwrap();
        assert_eq!(read_npy_f32(&p).unwrap(), a);
        let q = dir.path().join("b.npy");
        let b = a.mapv(f64::from);
        ndarray_npy::write_npy(&q, &b).unwrap();
        assert_eq!(read_npy_f32(&q).unwrap(), a);
    }

    #[test]
    fn garbage_npy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"definitely not numpy").unwrap();
        let err = read_npy_f32(&p).unwrap_err();
        assert!(err.to_string().contains("bad.npy"), "{err}");
    }
}
