//! Atomic file output: write to a temporary file in the destination's
//! directory, sync it, then rename it over the destination. A failure at any
//! point leaves no partial output behind (the temporary file is removed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Temporary files being written right now, for a signal handler that must
/// exit at once (`remove_pending_temp_files`).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remove the temporary files of writes still in flight (best effort).
pub fn remove_pending_temp_files() {
    if let Ok(list) = PENDING.lock() {
        for p in list.iter() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn track(path: &Path, add: bool) {
    if let Ok(mut list) = PENDING.lock() {
        if add {
            list.push(path.to_path_buf());
        } else {
            list.retain(|p| p != path);
        }
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Check that `path` can be written atomically: it names a file (no
/// trailing `/`), its directory exists and is writable, and it is absent or
/// a regular file (a rename over a device such as `/dev/null`, a FIFO, a
/// socket or a directory would replace it, so those are refused).
pub fn check_output_target(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(
                Error::invalid("is a directory: give a file name for the output").in_file(path),
            );
        }
        Ok(m) if !m.is_file() => {
            return Err(Error::invalid(
                "exists and is not a regular file (a device, FIFO or socket): refusing to replace it",
            )
            .in_file(path));
        }
        _ => {}
    }
    if path
        .as_os_str()
        .to_string_lossy()
        .ends_with(std::path::MAIN_SEPARATOR)
    {
        return Err(Error::invalid(
            "ends with a path separator but is not a directory: give a file name for the output",
        )
        .in_file(path));
    }
    if !dir.is_dir() {
        return Err(
            Error::invalid(format!("the directory `{}` does not exist", dir.display()))
                .in_file(path),
        );
    }
    if !dir_is_writable(dir) {
        return Err(Error::invalid(format!(
            "the directory `{}` is not writable: choose an output in a directory you can write to",
            dir.display()
        ))
        .in_file(path));
    }
    Ok(())
}

/// The directory an output is created in.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether files can be created in `dir` (write and search permission, a
/// writable file system).
#[cfg(unix)]
fn dir_is_writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string; `access` only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn dir_is_writable(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}

/// The mode of the file an output replaces, which the output keeps (an
/// `--in-place` rewrite stays as it was); `None` for a new file.
#[cfg(unix)]
fn existing_mode(path: &Path) -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    Some(std::fs::Permissions::from_mode(
        m.permissions().mode() & 0o777,
    ))
}

/// Write to `path` atomically through a callback that fills the temporary file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    check_output_target(path)?;
    let dir = parent_dir(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kerasrs-").suffix(".tmp");
    // `tempfile` creates its files 0600: ask for 0666 instead, which the
    // umask narrows as it does for any new file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    #[cfg(unix)]
    let keep = existing_mode(path);
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(e, dir))?;
    let tmp_path = tmp.path().to_path_buf();
    track(&tmp_path, true);
    let result = (|| {
        // A replaced file's mode is kept exactly, whatever the umask.
        #[cfg(unix)]
        if let Some(mode) = keep {
            tmp.as_file()
                .set_permissions(mode)
                .map_err(|e| Error::io(e, path))?;
        }
        fill(tmp.as_file_mut()).map_err(|e| Error::io(e, path))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(e, path))?;
        tmp.persist(path).map_err(|e| Error::io(e.error, path))?;
        Ok(())
    })();
    track(&tmp_path, false);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        let err = write_atomic_with(&out, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn special_files_directories_and_missing_directories_are_refused() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(Path::new("/dev/null"), b"x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let err = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let missing = dir.path().join("nowhere/out.keras");
        let err = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && !err.contains(".kerasrs-"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn replaces_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        std::fs::write(&out, b"old").unwrap();
        write_atomic(&out, b"new").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
    }
}
