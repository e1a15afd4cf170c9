//! NumPy `.npy` / `.npz` input and output.
//!
//! Inputs may be float32 (used as is) or float64 / integer arrays, which are
//! cast to float32 the way Keras casts its inputs (`numpy.astype("float32")`).

use std::fs::File;
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WriteNpyExt};

use crate::archive::atomic::write_atomic_with;
use crate::error::{Error, Result};

/// Most bytes one `.npz` member may inflate to.
const MAX_NPZ_MEMBER_BYTES: u64 = 32 << 30;

/// Check a `.npy` header against the bytes that follow it: the declared
/// shape × item size (checked arithmetic) must equal the stored data, so a
/// header declaring a huge shape ("shape bomb") is refused before anything
/// is allocated.
fn check_npy_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::mismatch(
            "a .npy array (magic `\\x93NUMPY`)",
            "other bytes",
        ));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(Error::unsupported(
                ".npy version",
                v.to_string(),
                &["1", "2", "3"],
            ));
        }
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| Error::invalid("truncated .npy header"))?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| Error::invalid(".npy header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        Some(
            header[at + key.len() + 2..]
                .trim_start()
                .strip_prefix(':')?
                .trim_start(),
        )
    };
    let descr = field("descr").ok_or_else(|| Error::missing("`descr` in the .npy header"))?;
    let itemsize: u64 = descr
        .trim_start_matches(['\'', '"'])
        .chars()
        .skip(2)
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .map_err(|_| {
            Error::unsupported(
                ".npy dtype",
                descr.split(',').next().unwrap_or(""),
                &["<f4", "<f8", "<i4", "<i8"],
            )
        })?;
    let shape_text = field("shape").ok_or_else(|| Error::missing("`shape` in the .npy header"))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|t| t.split(')').next())
        .ok_or_else(|| Error::invalid("malformed `shape` in the .npy header"))?;
    let mut elements: u64 = 1;
    for dim in inner.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let d: u64 = dim.parse().map_err(|_| {
            Error::invalid(format!("malformed dimension `{dim}` in the .npy header"))
        })?;
        elements = elements
            .checked_mul(d)
            .ok_or_else(|| Error::limit("npy_shape", format!("shape ({inner}) overflows")))?;
    }
    let declared = elements
        .checked_mul(itemsize)
        .ok_or_else(|| Error::limit("npy_shape", format!("shape ({inner}) overflows")))?;
    let stored = (bytes.len() - end) as u64;
    if declared != stored {
        return Err(Error::mismatch(
            format!("{declared} bytes of data for shape ({inner})"),
            format!("{stored} bytes"),
        ));
    }
    Ok(())
}

fn parse_as<T: ReadableElement>(bytes: &[u8]) -> std::result::Result<ArrayD<T>, ReadNpyError> {
    ArrayD::<T>::read_npy(std::io::Cursor::new(bytes))
}

/// Parse `.npy` bytes as float32, casting float64 and integer arrays.
pub fn npy_f32_from_bytes(bytes: &[u8]) -> Result<ArrayD<f32>> {
    check_npy_header(bytes)?;
    match parse_as::<f32>(bytes) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => {
            if let Ok(a) = parse_as::<f64>(bytes) {
                return Ok(a.mapv(|v| v as f32));
            }
            if let Ok(a) = parse_as::<i64>(bytes) {
                return Ok(a.mapv(|v| v as f32));
            }
            if let Ok(a) = parse_as::<i32>(bytes) {
                return Ok(a.mapv(|v| v as f32));
            }
            Err(Error::mismatch(
                "a float32, float64, int32 or int64 array",
                "another dtype",
            ))
        }
        Err(e) => Err(Error::invalid(format!("not a readable .npy array: {e}"))),
    }
}

/// Read a `.npy` file as float32, casting float64 and integer arrays.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(e, path))?;
    npy_f32_from_bytes(&bytes).map_err(|e| e.in_file(path))
}

/// Read array `key` of a `.npz` file as float32 (same casts as
/// [`read_npy_f32`]). Members are checked like `.keras` members: declared
/// sizes are capped and decompression bombs refused before inflating.
pub fn read_npz_f32(path: &Path, key: &str) -> Result<ArrayD<f32>> {
    let file = File::open(path).map_err(|e| Error::io(e, path))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::invalid(format!("not a readable .npz archive: {e}")).in_file(path))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let member = names
        .iter()
        .find(|n| n.as_str() == key || n.strip_suffix(".npy") == Some(key))
        .cloned()
        .ok_or_else(|| {
            let mut keys: Vec<&str> = names.iter().map(|n| n.trim_end_matches(".npy")).collect();
            keys.sort_unstable();
            Error::missing(format!(
                "array `{key}` (the archive holds: {})",
                keys.join(", ")
            ))
            .in_file(path)
        })?;
    let mut entry = zip
        .by_name(&member)
        .map_err(|e| Error::zip(e).in_member(member.clone()).in_file(path))?;
    let (declared, stored) = (entry.size(), entry.compressed_size());
    let limits = crate::archive::Limits::default();
    if declared > MAX_NPZ_MEMBER_BYTES
        || (declared > limits.bomb_floor_bytes
            && declared > limits.max_expansion.saturating_mul(stored))
    {
        return Err(Error::limit(
            "max_expansion",
            format!("declares {declared} bytes but stores {stored}: refusing a potential bomb"),
        )
        .in_member(member)
        .in_file(path));
    }
    let mut bytes = Vec::with_capacity(declared.min(1 << 30) as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut entry, declared.saturating_add(1)),
        &mut bytes,
    )
    .map_err(|e| Error::zip(e).in_member(member.clone()).in_file(path))?;
    npy_f32_from_bytes(&bytes).map_err(|e| e.in_member(member).in_file(path))
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
        let a =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![1.0f32, 2.0, -3.5, 0.25]).unwrap();
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

    #[test]
    fn npy_shape_bomb_is_refused_before_allocating() {
        let header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        let err = npy_f32_from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("npy_shape"), "{err}");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        let err = npy_f32_from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("4000000 bytes of data"), "{err}");
    }
}
