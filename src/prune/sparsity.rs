//! How sparse a model's Dense and convolution weights are (per tensor and per
//! channel), and which input features its first
//! Dense layer ignores.
//!
//! All comparisons are exact: a float32 magnitude against a float64 bound
//! (`1e-4` means the float64 nearest to 10⁻⁴). The histogram puts a nonzero
//! weight in decade `[10^e, 10^(e+1))`, with one bin below `1e-8` and one at
//! or above `1e1`; exact zeros and non-finite weights are counted apart.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::{WeightKind, params, percent, table};
use crate::model::summary::thousands;
use crate::model::{LayerKind, Model};

/// The bounds of the "small weight" counts: `|w| < bound` (zeros included).
pub const SMALL_BOUNDS: [f64; 3] = [1e-4, 1e-3, 1e-2];
/// Lowest decade exponent with its own histogram bin.
pub const HISTOGRAM_MIN_EXP: i32 = -8;
/// The histogram's last bin holds `|w| >= 10^HISTOGRAM_MAX_EXP`.
pub const HISTOGRAM_MAX_EXP: i32 = 1;
/// Feature rows the text report lists.
pub const TOP_FEATURES: usize = 20;

/// Sparsity of every Dense and convolution variable and the feature selection of the first
/// Dense layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SparsityReport {
    /// One entry per variable, in layer order (kernels before the bias).
    pub tensors: Vec<TensorSparsity>,
    /// Weights in all of them.
    pub total_weights: usize,
    /// Exact zeros among them.
    pub total_zeros: usize,
    /// Which input features the first Dense layer drops.
    pub features: FeatureSelection,
}

/// Sparsity of one Dense or convolution variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSparsity {
    /// Layer name.
    pub layer: String,
    /// Index of the layer in the model.
    pub layer_index: usize,
    /// Kernel or bias.
    pub weight: WeightKind,
    /// The variable's shape.
    pub shape: Vec<usize>,
    /// Number of weights.
    pub weights: usize,
    /// Exact zeros (`0.0` or `-0.0`).
    pub zeros: usize,
    /// `zeros / weights` (0 for an empty variable).
    pub zero_fraction: f64,
    /// Counts of `|w| < bound` for each of [`SMALL_BOUNDS`].
    pub below: Vec<SmallCount>,
    /// Histogram of `log10|w|`.
    pub histogram: Histogram,
    /// For kernels: how many output channels (Dense units, convolution
    /// filters) and input channels have only zero weights.
    pub channels: Option<ChannelSparsity>,
}

/// All-zero channels of a kernel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSparsity {
    /// Output channels (units, filters).
    pub outputs: usize,
    /// Output channels whose weights are all exactly zero (the unit or
    /// filter only passes its bias on).
    pub zero_outputs: usize,
    /// Input channels (features, input channels).
    pub inputs: usize,
    /// Input channels whose weights are all exactly zero (ignored by the
    /// layer).
    pub zero_inputs: usize,
}

/// How many weights have `|w| < bound`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmallCount {
    /// The bound.
    pub bound: f64,
    /// Weights below it (zeros included).
    pub count: usize,
    /// `count / weights`.
    pub fraction: f64,
}

/// Histogram of `log10|w|` by decade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Exact zeros (no logarithm).
    pub zeros: usize,
    /// NaN and infinite weights.
    pub non_finite: usize,
    /// Nonzero finite weights by decade, lowest first.
    pub bins: Vec<HistogramBin>,
}

/// One bin: `10^log10_min <= |w| < 10^log10_max` (an absent end is open).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramBin {
    /// Lower decade exponent (inclusive); `None` for the lowest bin.
    pub log10_min: Option<i32>,
    /// Upper decade exponent (exclusive); `None` for the highest bin.
    pub log10_max: Option<i32>,
    /// Weights in the bin.
    pub count: usize,
}

impl HistogramBin {
    /// A short label: `< 1e-8`, `[1e-3, 1e-2)`, `>= 1e1`.
    pub fn label(&self) -> String {
        match (self.log10_min, self.log10_max) {
            (None, Some(hi)) => format!("< 1e{hi}"),
            (Some(lo), None) => format!(">= 1e{lo}"),
            (Some(lo), Some(hi)) => format!("[1e{lo}, 1e{hi})"),
            (None, None) => "all".to_string(),
        }
    }
}

/// The input features of the first Dense layer (rows of its kernel): those
/// whose weights are all exactly zero are dropped, the rest ranked by the L1
/// norm of their row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureSelection {
    /// False when the layers before the first Dense layer are not only
    /// `InputLayer`, `Flatten` and `Dropout` (or there is no Dense layer).
    pub applies: bool,
    /// Why it does not apply.
    pub reason: Option<String>,
    /// The first Dense layer's name (or the `Embedding`'s, whose rows are
    /// the features: one per vocabulary id).
    pub layer: Option<String>,
    /// What the rows are: `input features` (Dense kernel rows) or
    /// `vocabulary rows` (an `Embedding` table's).
    pub rows: &'static str,
    /// Number of input features (kernel rows).
    pub features: usize,
    /// The shape a feature's `position` indexes: the model input when a
    /// `Flatten` comes first, else the input's last axis.
    pub input_shape: Vec<usize>,
    /// Features whose kernel row is all exact zeros, by index.
    pub dropped: Vec<FeatureRow>,
    /// The other features, by decreasing L1 norm (ties: lower index first).
    pub ranked: Vec<FeatureRow>,
}

/// One input feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureRow {
    /// Row of the kernel.
    pub index: usize,
    /// The row's position in `input_shape` (C order).
    pub position: Vec<usize>,
    /// `Σ|w|` over the row (float64 sum, left to right).
    pub l1: f64,
    /// Exact zeros in the row.
    pub zeros: usize,
    /// The feature's name, when the model records feature names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn fraction(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn histogram(values: &[f32]) -> Histogram {
    let lows: Vec<i32> = (HISTOGRAM_MIN_EXP..=HISTOGRAM_MAX_EXP).collect();
    // Exact bounds 10^e as float64 (parsed, not computed by `powi`).
    let bounds: Vec<f64> = lows
        .iter()
        .map(|e| format!("1e{e}").parse().expect("a float literal"))
        .collect();
    let mut counts = vec![0usize; bounds.len() + 1];
    let (mut zeros, mut non_finite) = (0, 0);
    for w in values {
        if *w == 0.0 {
            zeros += 1;
        } else if !w.is_finite() {
            non_finite += 1;
        } else {
            let m = f64::from(w.abs());
            counts[bounds.partition_point(|b| *b <= m)] += 1;
        }
    }
    let bins = counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| HistogramBin {
            log10_min: i.checked_sub(1).map(|j| lows[j]),
            log10_max: lows.get(i).copied(),
            count,
        })
        .collect();
    Histogram {
        zeros,
        non_finite,
        bins,
    }
}

fn unravel(mut index: usize, shape: &[usize]) -> Vec<usize> {
    let mut pos = vec![0; shape.len()];
    for (p, &d) in pos.iter_mut().zip(shape).rev() {
        if d > 0 {
            *p = index % d;
            index /= d;
        }
    }
    pos
}

/// Why the input features of a graph model are not the rows of its first
/// Dense kernel (`None` when they are: one input, read only through
/// `Flatten`/`Dropout` calls by that Dense layer, called once).
fn graph_feature_path(model: &Model, first: usize) -> Option<String> {
    let g = &model.graph;
    if g.inputs.len() != 1 {
        return Some(format!(
            "the model has {} inputs ({})",
            g.inputs.len(),
            g.input_names.join(", ")
        ));
    }
    let mut node = g.inputs[0];
    loop {
        let readers: Vec<usize> = (0..g.nodes.len())
            .filter(|&i| g.nodes[i].inputs.contains(&node))
            .collect();
        let [next] = readers[..] else {
            return Some(format!(
                "the input is read by {} layer calls",
                readers.len()
            ));
        };
        let layer = &model.layers[g.nodes[next].layer?];
        match layer.kind {
            LayerKind::Flatten | LayerKind::Dropout { .. } => node = next,
            LayerKind::Dense(_) if g.nodes[next].layer == Some(first) => {
                let calls = g.nodes.iter().filter(|n| n.layer == Some(first)).count();
                return (calls > 1).then(|| format!("`{}` is a shared layer", layer.name));
            }
            _ => {
                return Some(format!(
                    "layer `{}` ({}) reads the input before the first Dense layer `{}`",
                    layer.name, layer.class_name, model.layers[first].name
                ));
            }
        }
    }
}

fn not_applicable(reason: String) -> FeatureSelection {
    FeatureSelection {
        applies: false,
        reason: Some(reason),
        layer: None,
        rows: "input features",
        features: 0,
        input_shape: Vec::new(),
        dropped: Vec::new(),
        ranked: Vec::new(),
    }
}

/// The vocabulary rows of the model's first `Embedding` table, ranked
/// like Dense input features: which ids an L1 penalty drove to zero.
fn embedding_rows(model: &Model) -> Option<FeatureSelection> {
    let layer = model.layers.iter().find(|l| l.class_name == "Embedding")?;
    let table = layer.op()?.vars().first()?;
    let &[rows, dim] = table.value.shape() else {
        return None;
    };
    let values = table.value.as_slice()?;
    let mut dropped = Vec::new();
    let mut ranked = Vec::new();
    for index in 0..rows {
        let row = &values[index * dim..(index + 1) * dim];
        let zeros = row.iter().filter(|w| **w == 0.0).count();
        let feature = FeatureRow {
            index,
            position: vec![index],
            l1: row.iter().map(|w| f64::from(w.abs())).sum(),
            zeros,
            name: None,
        };
        if zeros == dim {
            dropped.push(feature);
        } else {
            ranked.push(feature);
        }
    }
    ranked.sort_by(|a, b| b.l1.total_cmp(&a.l1).then(a.index.cmp(&b.index)));
    Some(FeatureSelection {
        applies: true,
        reason: None,
        layer: Some(layer.name.clone()),
        rows: "vocabulary rows",
        features: rows,
        input_shape: vec![rows],
        dropped,
        ranked,
    })
}

fn feature_selection(model: &Model) -> FeatureSelection {
    if let Some(rows) = embedding_rows(model) {
        return rows;
    }
    let Some(first) = model.layers.iter().position(|l| l.dense().is_some()) else {
        return not_applicable("the model has no Dense layer".into());
    };
    if !model.is_chain()
        && let Some(reason) = graph_feature_path(model, first)
    {
        return not_applicable(reason);
    }
    let mut flattened = false;
    for layer in &model.layers[..first] {
        match layer.kind {
            LayerKind::Input | LayerKind::Dropout { .. } => {}
            LayerKind::Flatten => flattened = true,
            _ => {
                return not_applicable(format!(
                    "layer `{}` ({}) comes before the first Dense layer `{}`",
                    layer.name, layer.class_name, model.layers[first].name
                ));
            }
        }
    }
    let layer = &model.layers[first];
    let kernel = &layer.dense().expect("found as Dense").kernel;
    let input_shape = if flattened {
        model.input_shape.clone()
    } else {
        vec![kernel.nrows()]
    };
    let names = model
        .feature_names()
        .filter(|n| input_shape.len() == 1 && n.len() == kernel.nrows());
    let mut dropped = Vec::new();
    let mut ranked = Vec::new();
    for (index, row) in kernel.rows().into_iter().enumerate() {
        let zeros = row.iter().filter(|w| **w == 0.0).count();
        let feature = FeatureRow {
            index,
            position: unravel(index, &input_shape),
            l1: row.iter().map(|w| f64::from(w.abs())).sum(),
            zeros,
            name: names.as_ref().map(|n| n[index].clone()),
        };
        if zeros == row.len() {
            dropped.push(feature);
        } else {
            ranked.push(feature);
        }
    }
    ranked.sort_by(|a, b| b.l1.total_cmp(&a.l1).then(a.index.cmp(&b.index)));
    FeatureSelection {
        applies: true,
        reason: None,
        layer: Some(layer.name.clone()),
        rows: "input features",
        features: kernel.nrows(),
        input_shape,
        dropped,
        ranked,
    }
}

/// The sparsity report of a model.
pub fn sparsity_report(model: &Model) -> SparsityReport {
    let tensors: Vec<TensorSparsity> = params(model)
        .into_iter()
        .map(|p| {
            let n = p.values.len();
            let zeros = p.values.iter().filter(|w| **w == 0.0).count();
            let below = SMALL_BOUNDS
                .iter()
                .map(|&bound| {
                    let count = p
                        .values
                        .iter()
                        .filter(|w| f64::from(w.abs()) < bound)
                        .count();
                    SmallCount {
                        bound,
                        count,
                        fraction: fraction(count, n),
                    }
                })
                .collect();
            let channels = p.channels.map(|axes| {
                let outs = axes.outputs(&p.shape, &p.values);
                let ins = axes.inputs(&p.shape, &p.values);
                ChannelSparsity {
                    outputs: outs.len(),
                    zero_outputs: outs.iter().filter(|c| c.1 == 0).count(),
                    inputs: ins.len(),
                    zero_inputs: ins.iter().filter(|c| c.1 == 0).count(),
                }
            });
            TensorSparsity {
                channels,
                histogram: histogram(&p.values),
                layer: p.layer_name,
                layer_index: p.layer,
                weight: p.kind,
                shape: p.shape,
                weights: n,
                zeros,
                zero_fraction: fraction(zeros, n),
                below,
            }
        })
        .collect();
    SparsityReport {
        total_weights: tensors.iter().map(|t| t.weights).sum(),
        total_zeros: tensors.iter().map(|t| t.zeros).sum(),
        tensors,
        features: feature_selection(model),
    }
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl FeatureRow {
    fn label(&self, shape: &[usize]) -> String {
        if let Some(name) = &self.name {
            format!("{} ({name})", self.index)
        } else if shape.len() > 1 {
            let pos: Vec<String> = self.position.iter().map(usize::to_string).collect();
            format!("{} ({})", self.index, pos.join(", "))
        } else {
            self.index.to_string()
        }
    }
}

impl FeatureSelection {
    /// True when the features carry names.
    pub fn named(&self) -> bool {
        self.applies
            && self
                .ranked
                .iter()
                .chain(&self.dropped)
                .all(|r| r.name.is_some())
            && !(self.ranked.is_empty() && self.dropped.is_empty())
    }

    fn headline(&self) -> String {
        match (&self.reason, &self.layer) {
            (Some(reason), _) => format!("Feature selection: does not apply ({reason})"),
            (None, layer) => format!(
                "Feature selection (`{}`, {} {}): {} dropped, {} kept",
                layer.as_deref().unwrap_or_default(),
                thousands(self.features),
                self.rows,
                thousands(self.dropped.len()),
                thousands(self.ranked.len())
            ),
        }
    }
}

impl TensorSparsity {
    /// `dense/kernel`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.layer, self.weight)
    }
}

impl SparsityReport {
    /// The headline and one row per variable.
    fn tensor_table(&self) -> String {
        let mut out = format!(
            "Sparsity: {} of {} weights are exactly zero ({})\n",
            thousands(self.total_zeros),
            thousands(self.total_weights),
            percent(self.total_zeros, self.total_weights)
        );
        let mut headers = vec![
            "Weight".to_string(),
            "Shape".into(),
            "Weights".into(),
            "Zeros".into(),
        ];
        headers.extend(SMALL_BOUNDS.iter().map(|b| format!("|w| < {b:e}")));
        headers.extend(["Zero outputs".into(), "Zero inputs".into()]);
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = self
            .tensors
            .iter()
            .map(|t| {
                let mut row = vec![
                    t.name(),
                    shape_text(&t.shape),
                    thousands(t.weights),
                    percent(t.zeros, t.weights),
                ];
                row.extend(t.below.iter().map(|b| percent(b.count, t.weights)));
                match &t.channels {
                    Some(c) => row.extend([
                        format!("{}/{}", thousands(c.zero_outputs), thousands(c.outputs)),
                        format!("{}/{}", thousands(c.zero_inputs), thousands(c.inputs)),
                    ]),
                    None => row.extend(["-".to_string(), "-".to_string()]),
                }
                row
            })
            .collect();
        let mut right = vec![false, false];
        right.resize(headers.len(), true);
        out.push_str(&table::render(&headers, &rows, &right, None));
        out
    }
}

impl fmt::Display for SparsityReport {
    /// The compact form: one row per variable and the feature-selection line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tensor_table())?;
        writeln!(f, "{}", self.features.headline())
    }
}

/// Width of the longest histogram bar, in `#`.
const BAR_WIDTH: usize = 40;

impl SparsityReport {
    /// The full text report: the compact table, a `log10|w|` histogram per
    /// variable, and the `top` highest-ranked input features.
    pub fn detailed(&self, top: usize) -> String {
        let mut out = self.tensor_table();
        for t in &self.tensors {
            let _ = writeln!(
                out,
                "\n{}: log10|w| histogram ({} weights)",
                t.name(),
                thousands(t.weights)
            );
            let h = &t.histogram;
            let mut rows = vec![("zero".to_string(), h.zeros)];
            rows.extend(h.bins.iter().map(|b| (b.label(), b.count)));
            if h.non_finite > 0 {
                rows.push(("nan/inf".into(), h.non_finite));
            }
            let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
            let table_rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|(label, count)| {
                    vec![
                        label,
                        thousands(count),
                        "#".repeat((count * BAR_WIDTH).div_ceil(max)),
                    ]
                })
                .collect();
            let text = table::render(&["|w|", "Count", ""], &table_rows, &[false, true], None);
            // Drop the header and rules: a histogram reads better bare.
            for line in text.lines().filter(|l| !l.starts_with('─')).skip(1) {
                let _ = writeln!(out, "  {line}");
            }
        }
        let fs = &self.features;
        let _ = writeln!(out, "\n{}", fs.headline());
        if !fs.applies {
            return out;
        }
        let labels = |rows: &[FeatureRow]| -> String {
            let mut items: Vec<String> = rows
                .iter()
                .take(top)
                .map(|r| r.label(&fs.input_shape))
                .collect();
            if rows.len() > top {
                items.push(format!("... ({} more)", rows.len() - top));
            }
            items.join(", ")
        };
        if fs.dropped.is_empty() {
            let _ = writeln!(out, "Dropped (all weights exactly zero): none");
        } else {
            let _ = writeln!(
                out,
                "Dropped (all weights exactly zero): {}",
                labels(&fs.dropped)
            );
        }
        let shown = fs.ranked.len().min(top);
        let _ = writeln!(
            out,
            "Kept: {}, ranked by the L1 norm of their kernel row (top {shown}):",
            thousands(fs.ranked.len())
        );
        let rows: Vec<Vec<String>> = fs
            .ranked
            .iter()
            .take(top)
            .enumerate()
            .map(|(rank, r)| {
                vec![
                    (rank + 1).to_string(),
                    r.label(&fs.input_shape),
                    format!("{:.6}", r.l1),
                    thousands(r.zeros),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["Rank", "Feature", "L1 norm", "Zeros"],
            &rows,
            &[true, false, true, true],
            None,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_are_exact() {
        let h = histogram(&[0.0, -0.0, 1e-9, 1e-8, 0.00999, 0.01, 9.99, 10.0, f32::NAN]);
        assert_eq!(h.zeros, 2);
        assert_eq!(h.non_finite, 1);
        let count = |lo: Option<i32>| h.bins.iter().find(|b| b.log10_min == lo).unwrap().count;
        // 1e-8 as float32 is 9.99999993922529e-9 < 1e-8: below the first decade.
        assert_eq!(count(None), 2);
        assert_eq!(count(Some(-8)), 0);
        // 0.01 as float32 is 0.009999999776482582 < 1e-2.
        assert_eq!(count(Some(-3)), 2);
        assert_eq!(count(Some(-2)), 0);
        assert_eq!(count(Some(0)), 1); // 9.99
        assert_eq!(count(Some(1)), 1); // 10
        assert_eq!(h.bins.len(), 11);
        assert_eq!(h.bins[1].label(), "[1e-8, 1e-7)");
        assert_eq!(h.bins[10].label(), ">= 1e1");
    }

    #[test]
    fn unravel_is_c_order() {
        assert_eq!(unravel(7, &[3, 5]), [1, 2]);
        assert_eq!(unravel(4, &[5]), [4]);
    }
}
