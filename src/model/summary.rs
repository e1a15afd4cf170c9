//! A model summary in the spirit of Keras's `model.summary()`, as data (for
//! `--json`) and as text.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::regularizer::Factor;
use super::{CompileInfo, Layer, LayerKind, Model};

/// Everything `kerasrs load` reports about a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Model name.
    pub name: String,
    /// `Sequential` or `Functional`.
    pub class_name: String,
    /// Keras version recorded in `metadata.json`.
    pub keras_version: Option<String>,
    /// Per-sample input shape.
    pub input_shape: Vec<usize>,
    /// For graph models: each model input and output, by name, with its
    /// per-sample shape (what `--data` arrays are named after); empty for
    /// chains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Endpoint>,
    /// See `inputs`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Endpoint>,
    /// One row per layer.
    pub layers: Vec<LayerRow>,
    /// All parameters (Keras's `count_params()`).
    pub total_params: usize,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Non-trainable parameters.
    pub non_trainable_params: usize,
    /// Compile configuration, when the model was saved compiled.
    pub compile: Option<CompileInfo>,
    /// Stored optimizer state, when present.
    pub optimizer_state: Option<OptimizerStateRow>,
}

/// A named model input or output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// The layer's name.
    pub name: String,
    /// Per-sample shape.
    pub shape: Vec<usize>,
}

/// One layer of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRow {
    /// Layer name.
    pub name: String,
    /// Keras class name.
    pub class_name: String,
    /// Output shape with the batch dimension as `null`.
    pub output_shape: Vec<Option<usize>>,
    /// Parameter count.
    pub params: usize,
    /// Whether the layer's weights are trainable.
    pub trainable: bool,
    /// Activation name, for layers that have one.
    pub activation: Option<String>,
    /// Regularizers as `kernel: L1(0.01)` strings.
    pub regularizers: Vec<String>,
    /// Constraints as `kernel: MaxNorm` strings.
    pub constraints: Vec<String>,
    /// Extra detail (dropout rate).
    pub detail: Option<String>,
    /// For graph models: the inputs of each call, as Keras's summary shows
    /// them (`dense[0][0]`: layer, call, tensor); empty for chains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connected_to: Vec<String>,
    /// The nested models the layer is in, outermost first (a nested model
    /// has a row of its own before its layers, as in Keras's
    /// `summary(expand_nested=True)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub within: Vec<String>,
}

/// The stored optimizer state, in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizerStateRow {
    /// The optimizer's `name` attribute.
    pub name: Option<String>,
    /// The step counter.
    pub iterations: Option<i64>,
    /// How many variables are stored (iterations, learning rate, slots).
    pub variables: usize,
}

fn layer_row(layer: &Layer) -> LayerRow {
    let mut regularizers = Vec::new();
    let mut constraints = Vec::new();
    let mut detail = None;
    match &layer.kind {
        LayerKind::Dense(d) => {
            for (what, r) in [
                ("kernel", d.kernel_regularizer),
                ("bias", d.bias_regularizer),
                ("activity", d.activity_regularizer),
            ] {
                if let Some(r) = r {
                    regularizers.push(format!("{what}: {r}"));
                }
            }
            for (what, c) in [
                ("kernel", &d.kernel_constraint),
                ("bias", &d.bias_constraint),
            ] {
                if let Some(c) = c {
                    constraints.push(format!("{what}: {}", c.name()));
                }
            }
        }
        LayerKind::Dropout { rate } => detail = Some(format!("rate={rate}")),
        LayerKind::Op(op) => {
            for var in op.vars() {
                if let Some(r) = var.regularizer {
                    regularizers.push(format!("{}: {r}", var.role));
                }
                if let Some(c) = var.constraint {
                    constraints.push(format!("{}: {}", var.role, c.name()));
                }
            }
            if let Some(r) = op.activity_regularizer() {
                regularizers.push(format!("activity: {r}"));
            }
            detail = op.detail();
        }
        _ => {}
    }
    LayerRow {
        name: layer.name.clone(),
        class_name: layer.class_name.clone(),
        output_shape: std::iter::once(None)
            .chain(layer.output_shape.iter().map(|&d| Some(d)))
            .collect(),
        params: layer.param_count(),
        trainable: layer.trainable,
        activation: layer.activation().map(|a| a.name().to_string()),
        regularizers,
        constraints,
        detail,
        connected_to: Vec::new(),
        within: layer.scope.clone(),
    }
}

/// The rows of a model's layers with a row for each nested model before
/// its layers: its class, output shape, parameters and connections.
fn rows_with_nested(model: &Model, mut rows: Vec<LayerRow>) -> Vec<LayerRow> {
    let g = &model.graph;
    let mut out = Vec::with_capacity(rows.len() + g.nested.len());
    let mut open: Vec<String> = Vec::new();
    for (layer, row) in model.layers.iter().zip(rows.drain(..)) {
        let common = open
            .iter()
            .zip(&layer.scope)
            .take_while(|(a, b)| a == b)
            .count();
        open.truncate(common);
        for depth in common..layer.scope.len() {
            let name = &layer.scope[depth];
            open.push(name.clone());
            let Some(n) = g
                .nested
                .iter()
                .find(|n| &n.name == name && n.scope == layer.scope[..depth])
            else {
                continue;
            };
            let inside =
                |l: &crate::model::Layer| l.scope.len() > depth && l.scope[..=depth] == open[..];
            let params = model
                .layers
                .iter()
                .filter(|l| inside(l))
                .map(|l| l.param_count())
                .sum();
            let trainable = model
                .layers
                .iter()
                .filter(|l| inside(l))
                .any(|l| l.trainable);
            let shape = n
                .outputs
                .first()
                .map_or(&[][..], |&o| &g.nodes[o].output_shape[..]);
            out.push(LayerRow {
                name: name.clone(),
                class_name: n.class_name.clone(),
                output_shape: std::iter::once(None)
                    .chain(shape.iter().map(|&d| Some(d)))
                    .collect(),
                params,
                trainable,
                activation: None,
                regularizers: Vec::new(),
                constraints: Vec::new(),
                detail: None,
                connected_to: g
                    .nested
                    .iter()
                    .filter(|m| m.name == n.name && m.scope == n.scope)
                    .map(|m| {
                        m.inputs
                            .iter()
                            .map(|&i| tensor_name(model, i, &m.scope))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect(),
                within: n.scope.clone(),
            });
        }
        out.push(row);
    }
    out
}

/// Keras's name of the tensor node `n` produces, seen from inside the
/// nested models `scope`: `layer[call][0]`, or `model[0][i]` for the
/// outputs of a nested model the reader is not inside.
fn tensor_name(model: &Model, n: usize, scope: &[String]) -> String {
    let g = &model.graph;
    for (j, nested) in g.nested.iter().enumerate() {
        if let Some(i) = nested.outputs.iter().position(|&o| o == n) {
            let call = g.nested[..j]
                .iter()
                .filter(|m| m.name == nested.name && m.scope == nested.scope)
                .count();
            let reader_inside = scope.len() > nested.scope.len()
                && scope[..nested.scope.len()] == nested.scope[..]
                && scope[nested.scope.len()] == nested.name;
            if !reader_inside && scope.len() <= nested.scope.len() {
                return format!("{}[{call}][{i}]", nested.name);
            }
        }
    }
    let (n, k) = g.nodes[n].source.unwrap_or((n, 0));
    match g.nodes[n].layer {
        Some(l) => {
            let call = g.nodes[..n].iter().filter(|m| m.layer == Some(l)).count();
            format!("{}[{call}][{k}]", model.layers[l].name)
        }
        None => "input[0][0]".to_string(),
    }
}

/// Whether the summary shows the graph (connections, named inputs and
/// outputs): for every model but plain chains of single-use layers.
fn graph_view(model: &Model) -> bool {
    !model.is_chain() || !model.graph.nested.is_empty()
}

fn endpoints(model: &Model, names: &[String], shapes: &[&[usize]]) -> Vec<Endpoint> {
    if !graph_view(model) {
        return Vec::new();
    }
    names
        .iter()
        .zip(shapes)
        .map(|(name, shape)| Endpoint {
            name: name.clone(),
            shape: shape.to_vec(),
        })
        .collect()
}

/// Keras's "Connected to" entries of every layer of a graph model: for
/// each call, its input tensors as `layer[call][0]`.
fn connections(model: &Model) -> Vec<Vec<String>> {
    let g = &model.graph;
    let mut out = vec![Vec::new(); model.layers.len()];
    for node in &g.nodes {
        if let (Some(l), false) = (node.layer, node.inputs.is_empty()) {
            let scope = &model.layers[l].scope;
            let inputs: Vec<String> = node
                .inputs
                .iter()
                .map(|&n| tensor_name(model, n, scope))
                .collect();
            out[l].push(inputs.join(", "));
        }
    }
    out
}

impl Summary {
    /// Summarize a model.
    pub fn of(model: &Model) -> Self {
        let total = model.param_count();
        let trainable = model.trainable_param_count();
        let state = model.optimizer_state();
        Summary {
            name: model.name.clone(),
            class_name: model.class_name.clone(),
            keras_version: model.source().keras_version().map(str::to_string),
            input_shape: model.input_shape.clone(),
            inputs: endpoints(model, &model.graph.input_names, &model.graph.input_shapes()),
            outputs: endpoints(
                model,
                &model.graph.output_names,
                &model.graph.output_shapes(),
            ),
            layers: {
                let mut rows: Vec<LayerRow> = model.layers.iter().map(layer_row).collect();
                if graph_view(model) {
                    for (row, c) in rows.iter_mut().zip(connections(model)) {
                        row.connected_to = c;
                    }
                }
                rows_with_nested(model, rows)
            },
            total_params: total,
            trainable_params: trainable,
            non_trainable_params: total - trainable,
            compile: model.compile_info(),
            optimizer_state: state.map(|s| OptimizerStateRow {
                iterations: s.iterations(),
                name: s.name.clone(),
                variables: s.variables.len(),
            }),
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Keras's `readable_memory_size` for float32 parameters (`utils/summary_utils.py`).
fn memory(params: usize) -> String {
    let mut size = params as f64 * 4.0;
    for unit in ["B", "KB", "MB", "GB", "TB"] {
        if size < 1024.0 || unit == "TB" {
            return format!("{size:.2} {unit}");
        }
        size /= 1024.0;
    }
    unreachable!("the loop returns on its last unit")
}

fn shape_text(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("None".to_string(), |n| n.to_string()))
        .collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Model: \"{}\" ({})", self.name, self.class_name)?;
        if let Some(v) = &self.keras_version {
            writeln!(f, "Saved by Keras {v}")?;
        }
        let graph = self.layers.iter().any(|l| !l.connected_to.is_empty());
        let mut headers = vec!["Layer (type)", "Output Shape", "Param #"];
        if graph {
            headers.push("Connected to");
        }
        headers.extend(["Activation", "Regularizers"]);
        let rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .map(|l| {
                let indent = if l.within.is_empty() {
                    String::new()
                } else {
                    format!("{}└ ", "  ".repeat(l.within.len() - 1))
                };
                let mut name = format!("{indent}{} ({})", l.name, l.class_name);
                if !l.trainable && l.params > 0 {
                    name.push_str(" [frozen]");
                }
                let mut extra = l.regularizers.clone();
                extra.extend(l.constraints.iter().map(|c| format!("constraint {c}")));
                extra.extend(l.detail.iter().cloned());
                let mut row = vec![name, shape_text(&l.output_shape), thousands(l.params)];
                if graph {
                    row.push(l.connected_to.join(" | "));
                }
                row.extend([l.activation.clone().unwrap_or_default(), extra.join(", ")]);
                // Names come from the file: escaped per cell, so that
                // widths are measured on what is printed.
                row.into_iter()
                    .map(|c| crate::text::sanitize(&c).into_owned())
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let rule = |f: &mut fmt::Formatter<'_>, c: char| -> fmt::Result {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                line.push_str(if i == 0 { "" } else { "─┼─" });
                line.extend(std::iter::repeat_n(c, *w));
            }
            writeln!(f, "{}", line.trim_end())
        };
        let line = |cells: &[String]| -> String {
            let mut s = String::new();
            for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    s.push_str(" │ ");
                }
                if i == 2 {
                    let _ = write!(s, "{cell:>w$}");
                } else {
                    let _ = write!(s, "{cell:<w$}");
                }
            }
            s.trim_end().to_string()
        };
        let header_cells: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        writeln!(f, "{}", line(&header_cells))?;
        rule(f, '─')?;
        for row in &rows {
            writeln!(f, "{}", line(row))?;
        }
        rule(f, '─')?;
        for (what, list) in [("Inputs", &self.inputs), ("Outputs", &self.outputs)] {
            if !list.is_empty() {
                let items: Vec<String> = list
                    .iter()
                    .map(|e| {
                        let dims: Vec<Option<usize>> = std::iter::once(None)
                            .chain(e.shape.iter().map(|&d| Some(d)))
                            .collect();
                        format!("{} {}", e.name, shape_text(&dims))
                    })
                    .collect();
                writeln!(f, "{what}: {}", items.join(", "))?;
            }
        }
        writeln!(
            f,
            "Total params: {} ({})",
            thousands(self.total_params),
            memory(self.total_params)
        )?;
        writeln!(
            f,
            "Trainable params: {} ({})",
            thousands(self.trainable_params),
            memory(self.trainable_params)
        )?;
        writeln!(
            f,
            "Non-trainable params: {} ({})",
            thousands(self.non_trainable_params),
            memory(self.non_trainable_params)
        )?;
        match &self.compile {
            None => writeln!(f, "Compiled: no")?,
            Some(c) => {
                let mut opt = c.optimizer.clone().unwrap_or_else(|| "none".into());
                if let Some(lr) = c.learning_rate {
                    let _ = write!(opt, " (learning_rate={})", Factor(lr));
                } else if let Some(s) = &c.learning_rate_schedule {
                    let _ = write!(opt, " (learning_rate={s} schedule)");
                }
                writeln!(f, "Optimizer: {opt}")?;
                writeln!(f, "Loss: {}", c.loss.as_deref().unwrap_or("none"))?;
                if !c.metrics.is_empty() {
                    writeln!(f, "Metrics: {}", c.metrics.join(", "))?;
                }
            }
        }
        match &self.optimizer_state {
            None => writeln!(f, "Optimizer state: none stored")?,
            Some(s) => writeln!(
                f,
                "Optimizer state: {} variables stored, iterations = {}",
                s.variables,
                s.iterations
                    .map_or("unknown".to_string(), |i| i.to_string())
            )?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_counts_like_keras() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(55050), "55,050");
        assert_eq!(thousands(1234567), "1,234,567");
        // Keras: "Total params: 55,050 (215.04 KB)"
        assert_eq!(memory(55050), "215.04 KB");
    }
}
