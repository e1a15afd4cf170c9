#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod archive;
pub mod cli;
pub mod data;
pub mod engine;
pub mod error;
pub mod model;
pub mod prune;
pub mod tabular;
pub mod text;

pub use archive::KerasFile;
pub use error::{Error, ErrorKind, Result};
pub use model::Model;
