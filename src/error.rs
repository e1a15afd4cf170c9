//! The library's error type: a kind plus the context a user needs to find the
//! problem (file, archive member, weight or config path).
//!
//! Messages are lowercase, name things in backticks, and say what was expected
//! and what was found. The CLI prints them once, as `error: {err}`.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, without the location.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The zip container could not be read or written.
    #[error("not a readable zip archive: {0}")]
    Zip(String),
    /// A JSON document could not be parsed.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The HDF5 weights store could not be read or written.
    #[error("invalid HDF5 data: {0}")]
    Hdf5(String),
    /// A required item is absent.
    #[error("missing {0}")]
    Missing(String),
    /// A structural or semantic problem with the input.
    #[error("{0}")]
    Invalid(String),
    /// Something well-formed that kerasrs does not (yet) support.
    #[error("unsupported {what} `{name}` (supported: {supported})")]
    Unsupported {
        /// What kind of thing (`layer class`, `activation`, ...).
        what: &'static str,
        /// The name found in the file.
        name: String,
        /// The names kerasrs supports.
        supported: String,
    },
    /// A value that does not match what the model requires.
    #[error("expected {expected}, found {found}")]
    Mismatch {
        /// What was required.
        expected: String,
        /// What the input holds.
        found: String,
    },
    /// A safety limit was exceeded.
    #[error("limit `{limit}` exceeded: {detail}")]
    Limit {
        /// The name of the limit.
        limit: &'static str,
        /// What exceeded it.
        detail: String,
    },
    /// Training could not continue (for example a non-finite loss).
    #[error("{0}")]
    Training(String),
}

/// A kerasrs error: a kind with the file, archive member and path it concerns.
pub struct Error {
    kind: Box<ErrorKind>,
    file: Option<PathBuf>,
    member: Option<String>,
    location: Option<String>,
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of the given kind, without context yet.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
            file: None,
            member: None,
            location: None,
        }
    }

    /// A structural or semantic problem.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid(msg.into()))
    }

    /// A required item is absent.
    pub fn missing(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::Missing(what.into()))
    }

    /// Expected one thing, found another.
    pub fn mismatch(expected: impl fmt::Display, found: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Mismatch {
            expected: expected.to_string(),
            found: found.to_string(),
        })
    }

    /// An unsupported name, with the supported alternatives.
    pub fn unsupported(what: &'static str, name: impl Into<String>, supported: &[&str]) -> Self {
        Self::new(ErrorKind::Unsupported {
            what,
            name: name.into(),
            supported: supported.join(", "),
        })
    }

    /// A safety limit was exceeded.
    pub fn limit(limit: &'static str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit {
            limit,
            detail: detail.into(),
        })
    }

    /// HDF5 store problem.
    pub fn hdf5(msg: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Hdf5(msg.to_string()))
    }

    /// Zip container problem.
    pub fn zip(msg: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Zip(msg.to_string()))
    }

    /// JSON problem.
    pub fn json(msg: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Json(msg.to_string()))
    }

    /// Training failure.
    pub fn training(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Training(msg.into()))
    }

    /// An I/O error on `path`.
    pub fn io(err: std::io::Error, path: impl AsRef<Path>) -> Self {
        Self::new(ErrorKind::Io(err)).in_file(path)
    }

    /// Attach the file this error concerns (kept if already set).
    #[must_use]
    pub fn in_file(mut self, path: impl AsRef<Path>) -> Self {
        if self.file.is_none() {
            self.file = Some(path.as_ref().to_path_buf());
        }
        self
    }

    /// Attach the archive member this error concerns (kept if already set).
    #[must_use]
    pub fn in_member(mut self, member: impl Into<String>) -> Self {
        if self.member.is_none() {
            self.member = Some(member.into());
        }
        self
    }

    /// Attach a weight path or config location; an inner location set earlier
    /// is appended to it (`layers/dense` + `vars/0`).
    #[must_use]
    pub fn at(mut self, location: impl Into<String>) -> Self {
        let outer = location.into();
        self.location = Some(match self.location.take() {
            Some(inner) if !outer.is_empty() => format!("{outer}/{inner}"),
            Some(inner) => inner,
            None => outer,
        });
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file this error concerns, if known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The archive member this error concerns, if known.
    pub fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// The weight path or config location, if known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

// `Debug` shows the message too, so `unwrap()` and `fn main() -> Result` print
// something a user can act on.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "`{}`: ", file.display())?;
        }
        if let Some(member) = &self.member {
            write!(f, "member `{member}`: ")?;
        }
        if let Some(location) = &self.location {
            write!(f, "at `{location}`: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

// The kind's message is part of `Display`, so `source()` stays `None`: an
// error chain printer (`anyhow`'s `{:#}`) would otherwise print it twice.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_member_and_path() {
        let err = Error::mismatch("shape [784, 64]", "shape [784, 63]")
            .at("vars/0")
            .at("layers/dense")
            .in_member("model.weights.h5")
            .in_file("model.keras");
        assert_eq!(
            err.to_string(),
            "`model.keras`: member `model.weights.h5`: at `layers/dense/vars/0`: \
             expected shape [784, 64], found shape [784, 63]"
        );
    }
}
