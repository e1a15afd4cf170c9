//! The model as a graph: nodes (layer calls) in an order where every node
//! comes after the nodes it reads, as Keras's `functional_from_config`
//! creates them (`keras/src/models/functional.py`). Several nodes may call
//! one layer (shared layers); nested Sequential/Functional models are
//! flattened into the graph (their layers keep their weight paths).

use crate::error::{Error, Result};

/// One call of a layer (or a model input).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The layer called (index into `Model::layers`), or `None` for a model
    /// input that has no `InputLayer` (a Sequential built from a shape).
    pub layer: Option<usize>,
    /// The nodes whose outputs are this call's inputs, in argument order.
    pub inputs: Vec<usize>,
    /// Per-sample output shape.
    pub output_shape: Vec<usize>,
    /// Which model input this node is, for input nodes.
    pub input_slot: Option<usize>,
    /// For a later output of a layer call with several outputs (an RNN's
    /// states with `return_state`, Keras's `[layer, node, tensor]` with
    /// tensor > 0): the call's node and the output index. Such a node has
    /// no layer and reads only the call's node; the call's node itself
    /// holds output 0.
    pub source: Option<(usize, usize)>,
}

/// A model nested as a layer (flattened into the graph).
#[derive(Debug, Clone, PartialEq)]
pub struct Nested {
    /// Its layer name.
    pub name: String,
    /// `Sequential` or `Functional`.
    pub class_name: String,
    /// The nested models it belongs to, outermost first.
    pub scope: Vec<String>,
    /// The nodes it is called on.
    pub inputs: Vec<usize>,
    /// The nodes producing its outputs.
    pub outputs: Vec<usize>,
}

/// The graph of a model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// The input node of each model input, in `model.inputs` order.
    pub inputs: Vec<usize>,
    /// Names of the model inputs (the input layers' names).
    pub input_names: Vec<String>,
    /// The node producing each model output, in `model.outputs` order.
    pub outputs: Vec<usize>,
    /// Names of the model outputs (Keras's `output_names`: the layer named
    /// in `output_layers`).
    pub output_names: Vec<String>,
    /// Models nested as layers, in the order they are called.
    pub nested: Vec<Nested>,
}

impl Graph {
    /// Per-sample shape of each model input.
    pub fn input_shapes(&self) -> Vec<&[usize]> {
        self.inputs
            .iter()
            .map(|&n| &self.nodes[n].output_shape[..])
            .collect()
    }

    /// Check one `[n, ...]` shape per model input, in `model.inputs` order,
    /// all with the same number of rows; returns that number.
    pub fn check_inputs(&self, shapes: &[&[usize]]) -> Result<usize> {
        if shapes.len() != self.inputs.len() {
            return Err(Error::mismatch(
                format!(
                    "{} model inputs ({})",
                    self.inputs.len(),
                    self.input_names.join(", ")
                ),
                shapes.len(),
            ));
        }
        let n = shapes.first().and_then(|s| s.first()).copied().unwrap_or(0);
        for ((shape, want), name) in shapes
            .iter()
            .zip(self.input_shapes())
            .zip(&self.input_names)
        {
            if shape.len() != want.len() + 1 || shape[1..] != *want || shape[0] != n {
                return Err(Error::mismatch(
                    format!(
                        "input `{name}` of shape {} with {n} rows like the first input",
                        crate::model::layers::keras_shape(want)
                    ),
                    format!("shape {shape:?}"),
                ));
            }
        }
        Ok(n)
    }

    /// Per-sample shape of each model output.
    pub fn output_shapes(&self) -> Vec<&[usize]> {
        self.outputs
            .iter()
            .map(|&n| &self.nodes[n].output_shape[..])
            .collect()
    }
}
