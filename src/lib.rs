#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod archive;
pub mod error;

pub use archive::KerasFile;
pub use error::{Error, ErrorKind, Result};
