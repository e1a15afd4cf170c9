//! Shrinking: removing what cannot change a model's output, so that its
//! sparsity pays in parameters and time.
//!
//! A *channel group* is the set of variable axes indexed by one layer's
//! output channels (Dense units, convolution filters; the last axis,
//! channels_last): the producer's kernel output axis and bias, the
//! per-channel variables of the layers between it and the next kernel
//! (BatchNormalization's gamma, beta and moving statistics, PReLU's alpha),
//! and that consumer kernel's input axis. The model input is a group too
//! (its columns, or input channels). A channel is removed from a group when
//! - the consumer's weights reading it are all zero (`|w| <= tolerance`):
//!   nothing reads it (a *dead* unit), or
//! - the producer is a Dense layer whose weights into it are all zero, so it
//!   is the constant `activation(bias)`, and only elementwise layers
//!   (`Activation`, `Dropout`) lead to a Dense consumer: the constant times
//!   the consumer's row is added to the consumer's bias (*folded*).
//!
//! Removal repeats until nothing changes (removing a consumer's unit can
//! leave a row of its kernel all zero). A group is only touched when its
//! path is a plain chain: every layer on it called once, reading one tensor,
//! read by one call; anything else (a merge, a shared layer, `Flatten`, a
//! nested model, a model output) leaves it alone, with a note.
//!
//! The result is written at the wire level: each variable's dataset is cut
//! along its group axes (in its stored dtype), and so are the optimizer's
//! slot variables of the trainable ones, so training resumes; the configs'
//! `units`/`filters`, input `batch_shape` and recorded input shapes are
//! updated; then the archive is read back as a new [`Model`], and its
//! predictions are checked against the original's.

use std::collections::BTreeMap;
use std::fmt;

use ndarray::{Array2, ArrayD, Axis, IxDyn};
use serde::Serialize;
use serde_json::Value;

use crate::archive::{H5Dataset, KerasFile, NumericType};
use crate::engine::backward::{VarKind, trainable_variables, var_shape};
use crate::error::{Error, Result};
use crate::model::{Activation, Layer, LayerKind, Model};

/// What `shrink` may treat as zero, and what it must keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShrinkOptions {
    /// Weights with `|w| <= tolerance` count as zero (0: exact zeros only).
    pub tolerance: f64,
    /// Keep every input column, even the ones nothing reads.
    pub keep_inputs: bool,
}

/// What `shrink` did to one layer's output channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerShrink {
    /// The layer's name (`input` for the model input).
    pub layer: String,
    /// Its Keras class.
    pub class_name: String,
    /// Units (filters, input columns) before.
    pub units_before: usize,
    /// And after.
    pub units_after: usize,
    /// Original indices of the units removed because nothing reads them.
    pub dead: Vec<usize>,
    /// Original indices of the constant units folded into the next bias.
    pub folded: Vec<usize>,
}

/// The outcome of [`shrink`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShrinkReport {
    /// Parameters (Keras's `count_params()`) before.
    pub params_before: usize,
    /// And after.
    pub params_after: usize,
    /// One entry per layer whose units could be removed, in layer order,
    /// the model input first.
    pub layers: Vec<LayerShrink>,
    /// Input columns (channels) before.
    pub inputs_before: usize,
    /// Indices of the kept input columns in the original input.
    pub kept_inputs: Vec<usize>,
    /// Their names, when the model records feature names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_input_names: Option<Vec<String>>,
    /// The kept features by decreasing L1 norm of their row of the first
    /// Dense kernel (name, norm), when the model records feature names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranked_features: Option<Vec<(String, f64)>>,
    /// The weight tolerance used.
    pub tolerance: f64,
    /// Largest difference between the two models' predictions on a random
    /// batch (the shrunk one on the kept inputs).
    pub max_difference: f64,
    /// What was left alone, and why.
    pub notes: Vec<String>,
}

/// A variable axis indexed by a group's channels.
#[derive(Debug, Clone, Copy)]
struct Member {
    layer: usize,
    var: usize,
    axis: usize,
}

#[derive(Debug)]
struct Group {
    /// The producing layer (`None`: the model input).
    producer: Option<usize>,
    /// Per-channel axes of the producer and of the layers on the path.
    members: Vec<Member>,
    /// Layers between producer and consumer (their input width changes).
    path: Vec<usize>,
    /// The consumer layer and its kernel's input axis.
    consumer: usize,
    consumer_axis: usize,
    /// Activations between the producer's activation and the consumer,
    /// when folding is valid (`None`: it is not).
    fold_through: Option<Vec<Activation>>,
    /// Channels before.
    width: usize,
    /// Kept channels (original indices).
    keep: Vec<usize>,
    dead: Vec<usize>,
    folded: Vec<usize>,
}

fn values_of(layer: &Layer) -> Vec<ArrayD<f32>> {
    match &layer.kind {
        LayerKind::Dense(d) => {
            let mut v = vec![d.kernel.clone().into_dyn()];
            if let Some(b) = &d.bias {
                v.push(b.clone().into_dyn());
            }
            v
        }
        LayerKind::Op(op) => op.vars().iter().map(|v| v.value.clone()).collect(),
        _ => Vec::new(),
    }
}

fn config_of<'m>(model: &'m Model, layer: &Layer) -> Option<&'m serde_json::Map<String, Value>> {
    model.layer_config(layer)?.get("config")?.as_object()
}

fn channels_last(model: &Model, layer: &Layer) -> bool {
    config_of(model, layer)
        .and_then(|c| c.get("data_format"))
        .is_none_or(|f| f.is_null() || f == "channels_last")
}

/// A plain convolution (Conv1D/2D/3D, one group, channels_last).
fn is_plain_conv(model: &Model, layer: &Layer) -> bool {
    matches!(layer.class_name.as_str(), "Conv1D" | "Conv2D" | "Conv3D")
        && channels_last(model, layer)
        && config_of(model, layer)
            .and_then(|c| c.get("groups"))
            .is_none_or(|g| g.is_null() || g.as_u64() == Some(1))
        && layer.op().is_some_and(|op| {
            op.vars()
                .first()
                .is_some_and(|v| v.role == "kernel" && v.value.ndim() >= 3)
        })
}

/// The kernel input axis of a consumer layer, if it is one.
fn consumer_axis(model: &Model, layer: &Layer) -> Option<usize> {
    if layer.dense().is_some() {
        Some(0)
    } else if is_plain_conv(model, layer) {
        Some(layer.op()?.vars()[0].value.ndim() - 2)
    } else {
        None
    }
}

/// How a layer between producer and consumer treats channels: `Ok` with its
/// per-channel variable axes and the activation it applies (`None` when
/// folding through it is not valid); `Err` when it mixes or reshapes them.
type PassThrough = std::result::Result<(Vec<Member>, Option<Option<Activation>>), String>;

fn pass_through(model: &Model, index: usize, width: usize) -> PassThrough {
    let layer = &model.layers[index];
    let mixes = || format!("feeds `{}` ({})", layer.name, layer.class_name);
    match &layer.kind {
        LayerKind::Dropout { .. } => return Ok((Vec::new(), Some(None))),
        LayerKind::Activation(a) if a.is_elementwise() => return Ok((Vec::new(), Some(Some(*a)))),
        LayerKind::Op(_) => {}
        _ => return Err(mixes()),
    }
    let class = layer.class_name.as_str();
    let vars = layer.op().map(|op| op.vars()).unwrap_or(&[]);
    let per_channel = |vars: &[crate::model::layers::Var]| -> Option<Vec<Member>> {
        let mut members = Vec::new();
        for (i, v) in vars.iter().enumerate() {
            let shape = v.value.shape();
            match shape.last() {
                Some(&w) if w == width && (shape.len() == 1 || class == "PReLU") => {
                    members.push(Member {
                        layer: index,
                        var: i,
                        axis: shape.len() - 1,
                    })
                }
                Some(1) if class == "PReLU" => {}
                _ => return None,
            }
        }
        Some(members)
    };
    let last_axis = || {
        config_of(model, layer)
            .and_then(|c| c.get("axis"))
            .is_some_and(|a| {
                let rank = layer.input_shape.len() as i64 + 1;
                let ok = |v: &Value| v.as_i64().is_some_and(|x| x == -1 || x == rank - 1);
                ok(a) || a.as_array().is_some_and(|l| l.len() == 1 && ok(&l[0]))
            })
    };
    let elementwise = matches!(
        class,
        "Identity"
            | "ReLU"
            | "LeakyReLU"
            | "ELU"
            | "GaussianNoise"
            | "GaussianDropout"
            | "AlphaDropout"
            | "SpatialDropout1D"
            | "SpatialDropout2D"
            | "SpatialDropout3D"
    );
    let pooling = class.contains("Pooling") && channels_last(model, layer);
    if elementwise || pooling {
        return if vars.is_empty() {
            Ok((Vec::new(), None))
        } else {
            Err(mixes())
        };
    }
    if (class == "BatchNormalization" && last_axis()) || class == "PReLU" {
        return per_channel(vars).map(|m| (m, None)).ok_or_else(mixes);
    }
    Err(mixes())
}

/// Follow the chain from `node` to the next kernel. `Err` says why the
/// channels there must stay (`None`: a model output, nothing to say).
#[allow(clippy::type_complexity)]
fn walk(
    model: &Model,
    calls: &[usize],
    start: usize,
    width: usize,
) -> std::result::Result<
    (
        Vec<Member>,
        Vec<usize>,
        usize,
        usize,
        Option<Vec<Activation>>,
    ),
    Option<String>,
> {
    let g = &model.graph;
    let (mut members, mut path, mut acts) = (Vec::new(), Vec::new(), Some(Vec::new()));
    let mut node = start;
    loop {
        if g.outputs.contains(&node) {
            return Err(None);
        }
        let readers: Vec<usize> = (0..g.nodes.len())
            .filter(|&i| g.nodes[i].inputs.contains(&node))
            .collect();
        let [r] = readers[..] else {
            return Err(Some(format!("is read by {} layer calls", readers.len())));
        };
        let Some(index) = g.nodes[r].layer else {
            return Err(Some("feeds a model input".into()));
        };
        let layer = &model.layers[index];
        if calls[index] != 1 {
            return Err(Some(format!("feeds `{}`, a shared layer", layer.name)));
        }
        if !layer.scope.is_empty() {
            return Err(Some(format!(
                "feeds `{}` inside the nested model `{}`",
                layer.name,
                layer.scope.join("/")
            )));
        }
        if g.nodes[r].inputs.len() != 1 {
            return Err(Some(format!(
                "feeds `{}` ({})",
                layer.name, layer.class_name
            )));
        }
        if let Some(axis) = consumer_axis(model, layer) {
            if layer.input_shape.last() != Some(&width) {
                return Err(Some(format!("feeds `{}` on another axis", layer.name)));
            }
            let fold = acts.filter(|_| layer.dense().is_some());
            return Ok((members, path, index, axis, fold));
        }
        let (m, act) = pass_through(model, index, width).map_err(Some)?;
        members.extend(m);
        acts = match (acts, act) {
            (Some(mut list), Some(a)) => {
                list.extend(a);
                Some(list)
            }
            _ => None,
        };
        path.push(index);
        node = r;
    }
}

/// Variable `v` of layer `l` cut to the kept channels of every group axis.
struct State<'a> {
    model: &'a Model,
    values: Vec<Vec<ArrayD<f32>>>,
    axes: BTreeMap<(usize, usize), Vec<(usize, usize)>>,
}

impl State<'_> {
    fn current(&self, groups: &[Group], layer: usize, var: usize) -> ArrayD<f32> {
        let mut v = self.values[layer][var].clone();
        for &(axis, g) in self.axes.get(&(layer, var)).map_or(&[][..], |a| &a[..]) {
            v = v.select(Axis(axis), &groups[g].keep);
        }
        v
    }

    fn has_bias(&self, layer: usize) -> bool {
        match &self.model.layers[layer].kind {
            LayerKind::Dense(d) => d.bias.is_some(),
            LayerKind::Op(op) => op.vars().get(1).is_some_and(|v| v.role == "bias"),
            _ => false,
        }
    }
}

fn is_zero(w: f32, tol: f64) -> bool {
    f64::from(w.abs()) <= tol
}

/// One pass over the groups; true when something was removed.
fn pass(state: &mut State<'_>, groups: &mut [Group], opts: &ShrinkOptions) -> bool {
    let mut changed = false;
    for gi in 0..groups.len() {
        if groups[gi].producer.is_none() && opts.keep_inputs {
            continue;
        }
        let g = &groups[gi];
        let kernel = state.current(groups, g.consumer, 0);
        let mut remove = Vec::new();
        let mut fold = Vec::new();
        for (p, &orig) in g.keep.iter().enumerate() {
            if kernel
                .index_axis(Axis(g.consumer_axis), p)
                .iter()
                .all(|&w| is_zero(w, opts.tolerance))
            {
                remove.push(orig);
            }
        }
        if let (Some(acts), Some(producer)) = (&g.fold_through, g.producer)
            && let Some(d) = state.model.layers[producer].dense()
        {
            let pk = state.current(groups, producer, 0);
            let bias = state
                .has_bias(producer)
                .then(|| state.current(groups, producer, 1));
            for (p, &orig) in g.keep.iter().enumerate() {
                if remove.contains(&orig)
                    || !pk
                        .index_axis(Axis(1), p)
                        .iter()
                        .all(|&w| is_zero(w, opts.tolerance))
                {
                    continue;
                }
                let b = bias.as_ref().map_or(0.0, |b| b[p]);
                let mut c = Array2::from_elem((1, 1), b);
                for a in std::iter::once(&d.activation).chain(acts) {
                    c = a.forward(c);
                }
                let c = c[[0, 0]];
                let row = state.values[g.consumer][0]
                    .index_axis(Axis(0), orig)
                    .to_owned();
                if !state.has_bias(g.consumer) {
                    if c == 0.0 || row.iter().all(|&w| w == 0.0) {
                        remove.push(orig);
                    }
                    continue;
                }
                if !c.is_finite() {
                    continue;
                }
                let kb = &mut state.values[g.consumer][1];
                for (b, &w) in kb.iter_mut().zip(row.iter()) {
                    *b += c * w;
                }
                fold.push(orig);
            }
        }
        if remove.is_empty() && fold.is_empty() {
            continue;
        }
        let g = &mut groups[gi];
        let mut keep: Vec<usize> = g
            .keep
            .iter()
            .copied()
            .filter(|i| !remove.contains(i) && !fold.contains(i))
            .collect();
        if keep.is_empty() {
            // Keep one channel: a layer of zero units is not a layer.
            let first = g.keep[0];
            keep.push(first);
            remove.retain(|&i| i != first);
            fold.retain(|&i| i != first);
        }
        if keep.len() != g.keep.len() {
            changed = true;
        }
        g.keep = keep;
        g.dead.extend(remove);
        g.folded.extend(fold);
    }
    changed
}

/// Cut a dataset along `cuts` (axis, kept indices), in its stored dtype.
fn cut_dataset(ds: &H5Dataset, cuts: &[(usize, &[usize])]) -> Result<H5Dataset> {
    let n = usize::try_from(ds.len()).map_err(|_| Error::invalid("dataset too large"))?;
    if n == 0 || !ds.raw.len().is_multiple_of(n) {
        return Err(Error::invalid("cannot cut an empty or irregular dataset"));
    }
    let size = ds.raw.len() / n;
    let shape: Vec<usize> = ds.shape.iter().map(|&d| d as usize).collect();
    // Element indices as an array, cut with ndarray, then gathered.
    let mut index = ArrayD::from_shape_vec(IxDyn(&shape), (0..n).collect::<Vec<usize>>())
        .map_err(|e| Error::invalid(e.to_string()))?;
    for &(axis, keep) in cuts {
        if axis >= shape.len() || keep.iter().any(|&k| k >= shape[axis]) {
            return Err(Error::mismatch(
                format!("an axis {axis} holding channels {keep:?}"),
                format!("shape {shape:?}"),
            ));
        }
        index = index.select(Axis(axis), keep);
    }
    let mut raw = Vec::with_capacity(index.len() * size);
    for &i in index.iter() {
        raw.extend_from_slice(&ds.raw[i * size..(i + 1) * size]);
    }
    Ok(H5Dataset {
        datatype: ds.datatype.clone(),
        shape: index.shape().iter().map(|&d| d as u64).collect(),
        raw,
        attrs: ds.attrs.clone(),
    })
}

/// Set the last entry of a recorded shape (`[null, 8]`) to `width`.
fn set_last(shape: Option<&mut Value>, width: usize) {
    if let Some(Value::Array(dims)) = shape
        && let Some(last) = dims.last_mut()
        && last.is_number()
    {
        *last = Value::from(width);
    }
}

/// Record a new input width in a layer entry's `build_config` and the
/// shapes of its inbound tensors.
fn set_input_width(entry: &mut Value, width: usize) {
    set_last(entry.pointer_mut("/build_config/input_shape"), width);
    if let Some(Value::Array(nodes)) = entry.get_mut("inbound_nodes") {
        for node in nodes {
            if let Some(Value::Array(args)) = node.get_mut("args") {
                for arg in args {
                    set_last(arg.pointer_mut("/config/shape"), width);
                }
            }
        }
    }
}

/// Shrink `model` (see the module documentation); returns the new model
/// and what was done.
pub fn shrink(model: &Model, opts: &ShrinkOptions) -> Result<(Model, ShrinkReport)> {
    if !(opts.tolerance.is_finite() && opts.tolerance >= 0.0) {
        return Err(Error::mismatch("a finite tolerance >= 0", opts.tolerance));
    }
    let g = &model.graph;
    let mut calls = vec![0usize; model.layers.len()];
    for n in &g.nodes {
        if let Some(l) = n.layer {
            calls[l] += 1;
        }
    }
    let mut notes = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut starts: Vec<(Option<usize>, usize, usize)> = Vec::new();
    if g.inputs.len() == 1 {
        let node = g.inputs[0];
        if let Some(&w) = g.nodes[node].output_shape.last() {
            starts.push((None, node, w));
        }
    } else {
        notes.push(format!(
            "inputs left alone: the model has {} inputs",
            g.inputs.len()
        ));
    }
    for (i, layer) in model.layers.iter().enumerate() {
        let dense = layer.dense();
        let conv = is_plain_conv(model, layer);
        if dense.is_none() && !conv {
            if matches!(layer.kind, LayerKind::Op(_)) && layer.class_name.contains("Conv") {
                notes.push(format!(
                    "`{}` ({}) left alone: only Conv1D/2D/3D with one group, channels_last, \
                     are shrunk",
                    layer.name, layer.class_name
                ));
            }
            continue;
        }
        let elementwise = match dense {
            Some(d) => d.activation.is_elementwise(),
            None => config_of(model, layer)
                .and_then(|c| c.get("activation"))
                .is_none_or(|a| Activation::from_config(a).is_ok_and(Activation::is_elementwise)),
        };
        let is_output = g.outputs.iter().any(|&o| g.nodes[o].layer == Some(i));
        if !elementwise && !is_output {
            notes.push(format!(
                "`{}` left alone: its activation mixes its units",
                layer.name
            ));
        }
        if !elementwise {
            continue;
        }
        if calls[i] != 1 || !layer.scope.is_empty() {
            notes.push(format!(
                "`{}` left alone: {}",
                layer.name,
                if calls[i] != 1 {
                    "it is a shared layer"
                } else {
                    "it is inside a nested model"
                }
            ));
            continue;
        }
        let Some(node) = g.nodes.iter().position(|n| n.layer == Some(i)) else {
            continue;
        };
        let Some(&w) = layer.output_shape.last() else {
            continue;
        };
        starts.push((Some(i), node, w));
    }
    for (producer, node, width) in starts {
        let name = producer.map_or("the input".to_string(), |p| {
            format!("`{}`", model.layers[p].name)
        });
        match walk(model, &calls, node, width) {
            Ok((mut members, path, consumer, consumer_axis, fold_through)) => {
                if let Some(p) = producer {
                    let rank = model.layers[p]
                        .dense()
                        .map_or_else(|| values_of(&model.layers[p])[0].ndim(), |_| 2);
                    members.push(Member {
                        layer: p,
                        var: 0,
                        axis: rank - 1,
                    });
                    if values_of(&model.layers[p]).len() > 1 {
                        members.push(Member {
                            layer: p,
                            var: 1,
                            axis: 0,
                        });
                    }
                }
                let fold_through = fold_through
                    .filter(|_| producer.is_some_and(|p| model.layers[p].dense().is_some()));
                groups.push(Group {
                    producer,
                    members,
                    path,
                    consumer,
                    consumer_axis,
                    fold_through,
                    width,
                    keep: (0..width).collect(),
                    dead: Vec::new(),
                    folded: Vec::new(),
                });
            }
            Err(Some(why)) => notes.push(format!("{name} left alone: its output {why}")),
            Err(None) => {}
        }
    }
    let mut axes: BTreeMap<(usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
    for (gi, grp) in groups.iter().enumerate() {
        for m in &grp.members {
            axes.entry((m.layer, m.var)).or_default().push((m.axis, gi));
        }
        axes.entry((grp.consumer, 0))
            .or_default()
            .push((grp.consumer_axis, gi));
    }
    let mut state = State {
        model,
        values: model.layers.iter().map(values_of).collect(),
        axes,
    };
    let mut rounds = 0;
    while pass(&mut state, &mut groups, opts) {
        rounds += 1;
        if rounds > 10_000 {
            return Err(Error::invalid("shrinking did not settle"));
        }
    }
    for grp in &mut groups {
        grp.dead.sort_unstable();
        grp.folded.sort_unstable();
    }
    for grp in &groups {
        let Some(p) = grp.producer else { continue };
        if grp.fold_through.is_some() || model.layers[p].dense().is_none() {
            continue;
        }
        let pk = state.current(&groups, p, 0);
        let constant: Vec<String> = grp
            .keep
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                pk.index_axis(Axis(1), *i)
                    .iter()
                    .all(|&w| is_zero(w, opts.tolerance))
            })
            .map(|(_, o)| o.to_string())
            .collect();
        if !constant.is_empty() {
            notes.push(format!(
                "`{}`: unit(s) {} are constant (no weights into them) but were kept: folding \
                 only goes through Activation and Dropout layers into a Dense layer",
                model.layers[p].name,
                constant.join(", ")
            ));
        }
    }

    // The archive, cut.
    let mut file: KerasFile = model.to_keras_file()?;
    let folded_layers: Vec<usize> = groups
        .iter()
        .filter(|g| !g.folded.is_empty())
        .map(|g| g.consumer)
        .collect();
    for (&(layer, var), cuts) in &state.axes {
        let cuts: Vec<(usize, &[usize])> = cuts
            .iter()
            .filter(|(_, g)| groups[*g].keep.len() != groups[*g].width)
            .map(|&(a, g)| (a, &groups[g].keep[..]))
            .collect();
        let path = model.layers[layer]
            .weight_path
            .clone()
            .ok_or_else(|| Error::missing("weights").at(model.layers[layer].name.clone()))?;
        let at = format!("{path}/vars/{var}");
        let vars = file
            .weights
            .group_mut(&format!("{path}/vars"))
            .ok_or_else(|| Error::missing("weights group").at(at.clone()))?;
        let ds = vars
            .dataset_mut(&var.to_string())
            .ok_or_else(|| Error::missing("weight").at(at.clone()))?;
        if !cuts.is_empty() {
            *ds = cut_dataset(ds, &cuts).map_err(|e| e.at(at.clone()))?;
        }
    }
    for &layer in &folded_layers {
        let bias = state.current(&groups, layer, 1);
        let path = model.layers[layer].weight_path.clone().unwrap_or_default();
        let at = format!("{path}/vars/1");
        let ds = file
            .weights
            .group_mut(&format!("{path}/vars"))
            .and_then(|v| v.dataset_mut("1"))
            .ok_or_else(|| Error::missing("bias").at(at.clone()))?;
        if ds.numeric_type() != Some(NumericType::F32) {
            return Err(Error::mismatch("a float32 bias to fold into", ds.dtype_name()).at(at));
        }
        ds.set_f32(&bias.iter().copied().collect::<Vec<_>>())
            .map_err(|e| e.at(at))?;
    }
    cut_optimizer_state(model, &mut file, &groups, &state)?;
    for grp in &groups {
        if grp.keep.len() == grp.width {
            continue;
        }
        let n = grp.keep.len();
        if let Some(p) = grp.producer {
            let key = if model.layers[p].dense().is_some() {
                "units"
            } else {
                "filters"
            };
            if let Some(c) = file
                .config
                .pointer_mut(&format!("{}/config", model.layers[p].config_pointer))
                .and_then(Value::as_object_mut)
            {
                c.insert(key.into(), Value::from(n));
            }
        } else {
            let node = &g.nodes[g.inputs[0]];
            if let Some(l) = node.layer {
                let ptr = format!("{}/config/batch_shape", model.layers[l].config_pointer);
                set_last(file.config.pointer_mut(&ptr), n);
            }
            set_last(file.config.pointer_mut("/build_config/input_shape"), n);
        }
        for &l in grp.path.iter().chain([&grp.consumer]) {
            if let Some(entry) = file.config.pointer_mut(&model.layers[l].config_pointer) {
                set_input_width(entry, n);
            }
        }
    }
    let mut shrunk = Model::try_from(file)
        .map_err(|e| Error::invalid(format!("the shrunk model does not read back: {e}")))?;
    let input = groups.iter().find(|g| g.producer.is_none());
    let inputs_before = g
        .input_shapes()
        .first()
        .and_then(|s| s.last())
        .copied()
        .unwrap_or(0);
    let kept_inputs: Vec<usize> =
        input.map_or_else(|| (0..inputs_before).collect(), |g| g.keep.clone());
    let names = model.feature_names();
    let kept_input_names = names.as_ref().map(|n| {
        kept_inputs
            .iter()
            .map(|&i| n[i].clone())
            .collect::<Vec<_>>()
    });
    shrunk.set_feature_names(kept_input_names.as_deref())?;
    let max_difference = check_predictions(model, &shrunk, &kept_inputs)?;
    let mut layers: Vec<LayerShrink> = groups
        .iter()
        .map(|grp| LayerShrink {
            layer: grp
                .producer
                .map_or("input".into(), |p| model.layers[p].name.clone()),
            class_name: grp
                .producer
                .map_or("InputLayer".into(), |p| model.layers[p].class_name.clone()),
            units_before: grp.width,
            units_after: grp.keep.len(),
            dead: grp.dead.clone(),
            folded: grp.folded.clone(),
        })
        .collect();
    for layer in &model.layers {
        let has_kernel = layer.dense().is_some()
            || layer
                .op()
                .is_some_and(|op| op.vars().iter().any(|v| v.role.ends_with("kernel")));
        if has_kernel && !layers.iter().any(|l| l.layer == layer.name) {
            let units = layer.output_shape.last().copied().unwrap_or(0);
            layers.push(LayerShrink {
                layer: layer.name.clone(),
                class_name: layer.class_name.clone(),
                units_before: units,
                units_after: units,
                dead: Vec::new(),
                folded: Vec::new(),
            });
        }
    }
    layers.sort_by_key(|l| {
        model
            .layers
            .iter()
            .position(|m| m.name == l.layer)
            .map_or(0, |p| p + 1)
    });
    let selection = super::sparsity_report(&shrunk).features;
    let ranked_features = selection.named().then(|| {
        selection
            .ranked
            .iter()
            .chain(&selection.dropped)
            .map(|r| (r.name.clone().unwrap_or_default(), r.l1))
            .collect()
    });
    let report = ShrinkReport {
        ranked_features,
        params_before: model.param_count(),
        params_after: shrunk.param_count(),
        layers,
        inputs_before,
        kept_inputs,
        kept_input_names,
        tolerance: opts.tolerance,
        max_difference,
        notes,
    };
    Ok((shrunk, report))
}

/// Cut the slot variables of the trainable variables that were cut.
fn cut_optimizer_state(
    model: &Model,
    file: &mut KerasFile,
    groups: &[Group],
    state: &State<'_>,
) -> Result<()> {
    let Some(stored) = model.optimizer_state() else {
        return Ok(());
    };
    let refuse = |why: String| {
        Error::invalid(format!(
            "cannot cut the stored optimizer state to the shrunk variables: {why}"
        ))
    };
    let cc = model.source().config.get("compile_config");
    let opt = cc
        .and_then(|c| c.get("optimizer"))
        .filter(|v| !v.is_null())
        .ok_or_else(|| refuse("the model has no compiled optimizer".into()))?;
    let mut optimizer =
        crate::engine::optimizer::Optimizer::from_config(opt).map_err(|e| refuse(e.to_string()))?;
    let vars = trainable_variables(model);
    let shapes: Vec<Vec<usize>> = vars.iter().map(|&v| var_shape(model, v)).collect();
    optimizer.build(&shapes);
    optimizer
        .load_state(&stored.variables)
        .map_err(|e| refuse(e.to_string()))?;
    let owners = optimizer.slot_variables();
    let Some(group) = file.weights.group_mut("optimizer/vars") else {
        return Ok(());
    };
    for (i, owner) in owners.iter().enumerate() {
        let Some(t) = *owner else { continue };
        let v = vars[t];
        let var = match v.kind {
            VarKind::Kernel => 0,
            VarKind::Bias => 1,
            VarKind::Op(i) => i,
        };
        let Some(cuts) = state.axes.get(&(v.layer, var)) else {
            continue;
        };
        let cuts: Vec<(usize, &[usize])> = cuts
            .iter()
            .filter(|(_, g)| groups[*g].keep.len() != groups[*g].width)
            .map(|&(a, g)| (a, &groups[g].keep[..]))
            .collect();
        if cuts.is_empty() {
            continue;
        }
        let at = format!("optimizer/vars/{i}");
        let ds = group
            .dataset_mut(&i.to_string())
            .ok_or_else(|| Error::missing("optimizer variable").at(at.clone()))?;
        *ds = cut_dataset(ds, &cuts).map_err(|e| e.at(at))?;
    }
    Ok(())
}

/// Largest difference between the predictions of `before` on a random
/// batch and of `after` on its kept input columns (channels).
fn check_predictions(before: &Model, after: &Model, kept: &[usize]) -> Result<f64> {
    use rand::{Rng, SeedableRng};
    let shapes = before.graph.input_shapes();
    let [shape] = shapes[..] else {
        return Ok(0.0);
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let dims = crate::model::layers::with_batch(16, shape);
    let n: usize = dims.iter().product();
    let x = ArrayD::from_shape_vec(
        IxDyn(&dims),
        (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect(),
    )
    .map_err(|e| Error::invalid(e.to_string()))?;
    let xs = x.select(Axis(dims.len() - 1), kept);
    let ya = before.predict_all(&[x.view()], 16)?;
    let yb = after.predict_all(&[xs.view()], 16)?;
    let mut max = 0.0f64;
    for (a, b) in ya.iter().zip(&yb) {
        if a.shape() != b.shape() {
            return Err(Error::mismatch(
                format!("shrunk outputs of shape {:?}", a.shape()),
                format!("{:?}", b.shape()),
            ));
        }
        for (p, q) in a.iter().zip(b.iter()) {
            let d = f64::from((p - q).abs());
            max = if d.is_nan() {
                f64::INFINITY
            } else {
                max.max(d)
            };
        }
    }
    Ok(max)
}

impl fmt::Display for ShrinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::model::summary::thousands;
        let rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .map(|l| {
                vec![
                    l.layer.clone(),
                    l.class_name.clone(),
                    thousands(l.units_before),
                    thousands(l.units_after),
                    thousands(l.dead.len()),
                    thousands(l.folded.len()),
                ]
            })
            .collect();
        f.write_str(&super::table::render(
            &[
                "Layer",
                "Class",
                "Units before",
                "Units after",
                "Removed",
                "Folded",
            ],
            &rows,
            &[false, false, true, true, true, true],
            None,
        ))?;
        let saved = self.params_before.saturating_sub(self.params_after);
        writeln!(
            f,
            "Parameters: {} -> {} ({} fewer)",
            thousands(self.params_before),
            thousands(self.params_after),
            super::percent(saved, self.params_before)
        )?;
        let (kept, all) = (self.kept_inputs.len(), self.inputs_before);
        if let Some(ranked) = &self.ranked_features {
            writeln!(
                f,
                "Features kept: {} of {}, by the L1 norm of their kernel row:",
                thousands(kept),
                thousands(all)
            )?;
            let rows: Vec<Vec<String>> = ranked
                .iter()
                .enumerate()
                .map(|(i, (name, l1))| vec![(i + 1).to_string(), name.clone(), format!("{l1:.6}")])
                .collect();
            f.write_str(&super::table::render(
                &["Rank", "Feature", "L1 norm"],
                &rows,
                &[true, false, true],
                None,
            ))?;
        } else if kept == all {
            writeln!(f, "Inputs kept: all {}", thousands(all))?;
        } else {
            let listed: Vec<String> = self.kept_inputs.iter().map(usize::to_string).collect();
            writeln!(
                f,
                "Inputs kept: {} of {}: {}",
                thousands(kept),
                thousands(all),
                listed.join(", ")
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}
