//! The one check every command's files go through before any work: no
//! output may be an input of the run or another output of it, under any
//! name (a symlink, `./x`, `dir/../x`, a hard link), and every output must
//! be writable where it is (see [`check_output_target`]).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::archive::atomic::check_output_target;

/// How the model argument is named in messages.
pub const MODEL: &str = "the model";
/// The flag `--in-place` lets replace the model.
pub const OUTPUT: &str = "`--output`";

/// Outputs whose extension chooses their format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A model: a Keras 3 `.keras` archive.
    Model,
    /// Arrays: `.npy` (one) or `.npz` (named).
    Arrays,
    /// A plot: `.svg`.
    Plot,
}

impl OutputKind {
    fn check(self, what: &str, path: &Path) -> Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
        let name = name.as_deref().unwrap_or("");
        let ext = Path::new(name).extension().and_then(|e| e.to_str());
        let suggest = |e: &str| {
            let mut p = path.to_path_buf();
            let stem = name.strip_suffix(".weights.h5").map(str::to_string);
            match stem {
                Some(stem) => p.set_file_name(format!("{stem}.{e}")),
                None => {
                    p.set_extension(e);
                }
            }
            p.display().to_string()
        };
        match (self, ext) {
            (OutputKind::Model, Some("keras")) => Ok(()),
            (OutputKind::Model, Some("h5" | "hdf5")) => bail!(
                "{what} `{}` names a legacy HDF5 file, but kerasrs writes Keras 3 `.keras` \
                 archives (there is no legacy HDF5 or weights-only writer): name it `{}`",
                path.display(),
                suggest("keras")
            ),
            (OutputKind::Model, _) => bail!(
                "{what} `{}` must end in `.keras`: kerasrs writes Keras 3 `.keras` archives, \
                 and Keras's `load_model` goes by that extension (try `{}`)",
                path.display(),
                suggest("keras")
            ),
            (OutputKind::Arrays, Some("npy" | "npz")) => Ok(()),
            (OutputKind::Arrays, _) => bail!(
                "{what} `{}` must end in `.npy` (one array) or `.npz` (one array per output, \
                 named after it): those are the formats kerasrs writes",
                path.display()
            ),
            (OutputKind::Plot, Some("svg")) => Ok(()),
            (OutputKind::Plot, _) => bail!(
                "{what} `{}` must end in `.svg`: plots are written as SVG (try `{}`)",
                path.display(),
                suggest("svg")
            ),
        }
    }
}

/// The files one run reads and writes, each with the flag that named it.
#[derive(Debug, Default)]
pub struct RunFiles<'a> {
    inputs: Vec<(String, &'a Path)>,
    outputs: Vec<(String, &'a Path)>,
    kinds: Vec<(String, &'a Path, OutputKind)>,
    in_place: bool,
}

impl<'a> RunFiles<'a> {
    /// The files of a run on the model at `model`.
    pub fn new(model: &'a Path) -> Self {
        RunFiles::default().input(MODEL, model)
    }

    /// A file the run reads, named by `what` (`` `--data` ``).
    #[must_use]
    pub fn input(mut self, what: impl Into<String>, path: &'a Path) -> Self {
        self.inputs.push((what.into(), path));
        self
    }

    /// Files the run reads, with their flags.
    #[must_use]
    pub fn inputs(self, list: impl IntoIterator<Item = (&'static str, &'a Path)>) -> Self {
        list.into_iter().fold(self, |s, (what, p)| s.input(what, p))
    }

    /// A file the run writes, named by `what` (`` `--history` ``), in a
    /// format that does not depend on its name.
    #[must_use]
    pub fn output(mut self, what: impl Into<String>, path: &'a Path) -> Self {
        self.outputs.push((what.into(), path));
        self
    }

    /// A file the run writes in the format its extension names: refused
    /// before any work when the extension names another format (a model
    /// written as `out.h5` would be a zip Keras cannot open as HDF5).
    #[must_use]
    pub fn typed_output(
        mut self,
        what: impl Into<String>,
        path: &'a Path,
        kind: OutputKind,
    ) -> Self {
        let what = what.into();
        self.kinds.push((what.clone(), path, kind));
        self.outputs.push((what, path));
        self
    }

    /// Let `--output` be the model itself (`--in-place`).
    #[must_use]
    pub fn in_place(mut self, yes: bool) -> Self {
        self.in_place = yes;
        self
    }

    /// Refuse the run if an output cannot be written, or would replace an
    /// input or another output.
    pub fn check(&self) -> Result<()> {
        for (_, path) in &self.outputs {
            check_output_target(path)?;
        }
        let inputs: Vec<Identity> = self.inputs.iter().map(|(_, p)| Identity::of(p)).collect();
        let outputs: Vec<Identity> = self.outputs.iter().map(|(_, p)| Identity::of(p)).collect();
        for (i, (flag, path)) in self.outputs.iter().enumerate() {
            for (j, (what, input)) in self.inputs.iter().enumerate() {
                if !outputs[i].same_file(&inputs[j]) {
                    continue;
                }
                let model_in_place = what == MODEL && flag == OUTPUT;
                if model_in_place && self.in_place {
                    continue;
                }
                let by = by_other_name(input, path);
                let hint = if model_in_place {
                    " (or pass `--in-place` to replace it atomically)"
                } else {
                    ""
                };
                bail!(
                    "refusing to overwrite the input file `{}` ({what}) with {flag} `{}`{by}: \
                     choose another {flag}{hint}",
                    input.display(),
                    path.display()
                );
            }
            for (j, (other, other_path)) in self.outputs.iter().enumerate().take(i) {
                if outputs[i].same_file(&outputs[j]) {
                    bail!(
                        "{flag} `{}` is the same file as {other} `{}`: give each output its \
                         own file",
                        path.display(),
                        other_path.display()
                    );
                }
            }
        }
        // An output's format comes last: overwriting an input is the
        // graver mistake to report.
        for (what, path, kind) in &self.kinds {
            kind.check(what, path)?;
        }
        Ok(())
    }
}

/// A note for an input and an output that are one file under two names.
fn by_other_name(a: &Path, b: &Path) -> &'static str {
    if a == b {
        ""
    } else {
        " (the same file under another name)"
    }
}

/// What makes two paths the same file: the canonical path of an existing
/// file (symlinks resolved), where a rename to the path would land (its
/// directory resolved, its last component as written: a rename replaces a
/// symlink itself), and the (device, inode) pair of an existing file (hard
/// links).
#[derive(Debug)]
struct Identity {
    canonical: Option<PathBuf>,
    landing: Option<PathBuf>,
    inode: Option<(u64, u64)>,
}

impl Identity {
    fn of(path: &Path) -> Self {
        let canonical = path.canonicalize().ok();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let landing = match (dir.canonicalize(), path.file_name()) {
            (Ok(d), Some(name)) => Some(d.join(name)),
            _ => None,
        };
        Identity {
            canonical,
            landing,
            inode: inode(path),
        }
    }

    fn same_file(&self, other: &Identity) -> bool {
        if self.inode.is_some() && self.inode == other.inode {
            return true;
        }
        let mine = [&self.canonical, &self.landing];
        let theirs = [&other.canonical, &other.landing];
        mine.iter()
            .flat_map(|a| theirs.iter().map(move |b| (a, b)))
            .any(|(a, b)| a.is_some() && a == b)
    }
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn inode(_path: &Path) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_under_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        std::fs::write(&a, b"a").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let dotted = sub.join("../a.bin");
        let new = dir.path().join("new.bin");
        let new_dotted = sub.join("..").join("new.bin");
        let other = dir.path().join("other.bin");
        std::fs::write(&other, b"o").unwrap();
        let id = |p: &Path| Identity::of(p);
        assert!(id(&a).same_file(&id(&dotted)));
        assert!(id(&new).same_file(&id(&new_dotted)));
        assert!(!id(&a).same_file(&id(&other)));
        assert!(!id(&a).same_file(&id(&new)));
        #[cfg(unix)]
        {
            let link = dir.path().join("link.bin");
            std::os::unix::fs::symlink(&a, &link).unwrap();
            let hard = sub.join("hard.bin");
            std::fs::hard_link(&a, &hard).unwrap();
            assert!(id(&a).same_file(&id(&link)));
            assert!(id(&a).same_file(&id(&hard)));
            assert!(!id(&other).same_file(&id(&hard)));
        }
    }
}
