//! The validated, typed model: layers with parameters, built from a
//! [`KerasFile`] by one fallible conversion and turned back into one.
//!
//! The model keeps the archive it came from: writing back starts from it and
//! changes only the weights (and config keys) kerasrs changed, so anything it
//! does not understand passes through.

pub mod activation;
pub mod compile;
pub mod layer;
mod parse;
pub mod regularizer;
pub mod summary;

use serde_json::Value;

pub use activation::Activation;
pub use compile::{CompileInfo, OptimizerState};
pub use layer::{Dense, Layer, LayerKind};
pub use regularizer::Regularizer;

use crate::archive::KerasFile;
use crate::error::{Error, Result};

/// A Keras model kerasrs can run: a chain of supported layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model's `name`.
    pub name: String,
    /// `Sequential` or `Functional`.
    pub class_name: String,
    /// Per-sample input shape (no batch dimension).
    pub input_shape: Vec<usize>,
    /// Layers in execution order, the input layer (if any) first.
    pub layers: Vec<Layer>,
    source: KerasFile,
}

impl TryFrom<KerasFile> for Model {
    type Error = Error;

    fn try_from(file: KerasFile) -> Result<Self> {
        parse::parse_model(file)
    }
}

impl Model {
    /// Open and validate a `.keras` file.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = KerasFile::open(path)?;
        Model::try_from(file).map_err(|e| e.in_file(path))
    }

    /// The archive this model was read from (weights as read, not as trained).
    pub fn source(&self) -> &KerasFile {
        &self.source
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.layers
            .last()
            .map_or(&self.input_shape[..], |l| &l.output_shape[..])
    }

    /// Total number of scalar weights (Keras's `count_params()`).
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(Layer::param_count).sum()
    }

    /// Number of trainable scalar weights.
    pub fn trainable_param_count(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| l.trainable)
            .map(Layer::param_count)
            .sum()
    }

    /// The compile configuration, if the model was saved compiled.
    pub fn compile_info(&self) -> Option<CompileInfo> {
        self.source
            .config
            .get("compile_config")
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
            .map(CompileInfo::from_config)
    }

    /// The optimizer state stored in the weights file, if any.
    pub fn optimizer_state(&self) -> Option<OptimizerState> {
        OptimizerState::from_weights(&self.source.weights)
    }

    /// The config entry (`{"class_name", "config", ...}`) of a layer.
    pub fn layer_config(&self, layer: &Layer) -> Option<&Value> {
        self.source
            .config
            .get("config")?
            .get("layers")?
            .get(layer.config_index)
    }

    /// The layer's inner `config` object, mutably, for changes that must be
    /// recorded in the written `config.json`.
    pub fn layer_config_mut(&mut self, index: usize) -> Option<&mut Value> {
        let config_index = self.layers.get(index)?.config_index;
        self.source
            .config
            .get_mut("config")?
            .get_mut("layers")?
            .get_mut(config_index)?
            .get_mut("config")
    }

    /// The archive to write: the source archive with this model's current
    /// weights in place.
    pub fn to_keras_file(&self) -> Result<KerasFile> {
        let mut file = self.source.clone();
        for layer in &self.layers {
            let (Some(path), Some(dense)) = (&layer.weight_path, layer.dense()) else {
                continue;
            };
            let vars_path = format!("{path}/vars");
            let vars = file
                .weights
                .group_mut(&vars_path)
                .ok_or_else(|| Error::missing("weights group").at(vars_path.clone()))?;
            let mut put = |index: &str, values: Vec<f32>| -> Result<()> {
                vars.dataset_mut(index)
                    .ok_or_else(|| Error::missing("weight").at(format!("{vars_path}/{index}")))?
                    .set_f32(&values)
                    .map_err(|e| e.at(format!("{vars_path}/{index}")))
            };
            put("0", dense.kernel.iter().copied().collect())?;
            if let Some(bias) = &dense.bias {
                put("1", bias.to_vec())?;
            }
        }
        Ok(file)
    }

    /// Write the model to `path` atomically.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        self.to_keras_file()?
            .save(path)
            .map_err(|e| e.in_file(path))
    }
}
