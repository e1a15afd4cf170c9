//! Per-layer magnitude histograms (`log10|w|` by decade) as an SVG image,
//! drawn with `plotters` from a [`SparsityReport`]: one panel per Dense layer,
//! kernel and bias side by side, heights in percent of the variable's weights.

use plotters::prelude::*;

use super::WeightKind;
use super::sparsity::{SparsityReport, TensorSparsity};
use crate::error::{Error, Result};

/// Width of the image in pixels.
const WIDTH: u32 = 900;
/// Height of one layer's panel in pixels.
const PANEL_HEIGHT: u32 = 300;

/// The categories on the x axis: exact zeros, each decade bin, then
/// non-finite weights when any variable has some.
fn categories(report: &SparsityReport) -> Vec<String> {
    let mut labels = vec!["zero".to_string()];
    if let Some(t) = report.tensors.first() {
        labels.extend(
            t.histogram
                .bins
                .iter()
                .map(|b| match (b.log10_min, b.log10_max) {
                    (None, Some(hi)) => format!("<1e{hi}"),
                    (Some(lo), None) => format!(">=1e{lo}"),
                    (Some(lo), _) => format!("1e{lo}"),
                    (None, None) => "all".to_string(),
                }),
        );
    }
    if report.tensors.iter().any(|t| t.histogram.non_finite > 0) {
        labels.push("nan/inf".to_string());
    }
    labels
}

/// Percent of the variable's weights in each category of [`categories`].
fn heights(t: &TensorSparsity, n_categories: usize) -> Vec<f64> {
    let h = &t.histogram;
    let mut counts = vec![h.zeros];
    counts.extend(h.bins.iter().map(|b| b.count));
    counts.resize(n_categories, 0);
    if n_categories > h.bins.len() + 1 {
        counts[n_categories - 1] = h.non_finite;
    }
    let n = t.weights.max(1) as f64;
    counts.into_iter().map(|c| 100.0 * c as f64 / n).collect()
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("cannot draw the histogram plot: {e}"))
}

/// Draw the report's histograms as an SVG document.
pub fn histogram_svg(report: &SparsityReport) -> Result<String> {
    let mut layers: Vec<(&str, Vec<&TensorSparsity>)> = Vec::new();
    for t in &report.tensors {
        match layers.last_mut() {
            Some((name, ts)) if *name == t.layer => ts.push(t),
            _ => layers.push((&t.layer, vec![t])),
        }
    }
    let labels = categories(report);
    let n = labels.len();
    let panels = layers.len().max(1);
    let height = PANEL_HEIGHT * u32::try_from(panels).map_err(plot_error)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        if layers.is_empty() {
            root.draw(&Text::new(
                "no layers with weights",
                (20, 20),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(plot_error)?;
        }
        let areas = root.split_evenly((panels, 1));
        for ((layer, tensors), area) in layers.iter().zip(&areas) {
            let series: Vec<(WeightKind, usize, Vec<f64>)> = tensors
                .iter()
                .map(|t| (t.weight, t.weights, heights(t, n)))
                .collect();
            // Headroom above the tallest bar for the legend (about 20 px
            // per series in a plotting area of about PANEL_HEIGHT - 90 px),
            // so that it never hides a bar.
            let tallest = series
                .iter()
                .flat_map(|s| s.2.iter().copied())
                .fold(0.0, f64::max)
                .max(1.0);
            let legend = (25.0 + 20.0 * series.len() as f64) / (f64::from(PANEL_HEIGHT) - 90.0);
            let top = tallest / (1.0 - legend.min(0.6)) * 1.05;
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{layer}: log10|w| by decade"),
                    ("sans-serif", 16).into_font(),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)
                .map_err(plot_error)?;
            let label_of = |x: &f64| -> String {
                let i = x.round();
                if (x - i).abs() < 1e-9 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&label_of)
                // The headroom may reach past 100%, which no bar can.
                .y_label_formatter(&|y| {
                    if *y <= 100.0 + 1e-9 {
                        format!("{y:.0}%")
                    } else {
                        String::new()
                    }
                })
                .x_desc("|w| (decade lower bound)")
                .y_desc("% of weights")
                .draw()
                .map_err(plot_error)?;
            let width = 0.8 / series.len() as f64;
            for (s, (kind, count, values)) in series.iter().enumerate() {
                let color = match kind {
                    WeightKind::Kernel => Palette99::pick(0).to_rgba(),
                    WeightKind::Bias => Palette99::pick(1).to_rgba(),
                    WeightKind::DepthwiseKernel => Palette99::pick(2).to_rgba(),
                    WeightKind::PointwiseKernel => Palette99::pick(3).to_rgba(),
                    WeightKind::RecurrentKernel => Palette99::pick(4).to_rgba(),
                    WeightKind::Embeddings => Palette99::pick(5).to_rgba(),
                };
                let left = -0.4 + s as f64 * width;
                chart
                    .draw_series(values.iter().enumerate().map(|(i, &v)| {
                        let x0 = i as f64 + left;
                        Rectangle::new([(x0, 0.0), (x0 + width, v)], color.filled())
                    }))
                    .map_err(plot_error)?
                    .label(format!("{kind} ({count} weights)"))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// One point of an L1 sweep: the strength, the model's metric and its
/// sparsity (fraction of exact zeros over the Dense kernels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepPoint {
    /// The L1 strength (> 0).
    pub l1: f64,
    /// The selection metric.
    pub metric: f64,
    /// Fraction of exact zeros, 0 to 1.
    pub sparsity: f64,
}

/// Ticks of a log axis over `[lo, hi]` with short labels (`1e-4`): every
/// decade, and 2× and 5× of each decade when the axis spans four or fewer, thinned to at most [`MAX_TICKS`] so labels never crowd.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let decades = last - first;
    let mantissas: &[u8] = if decades <= 4 { &[1, 2, 5] } else { &[1] };
    let mut ticks: Vec<(f64, String)> = (first..=last)
        .flat_map(|k| {
            mantissas.iter().map(move |&m| {
                let v = f64::from(m) * 10f64.powi(k);
                (v, format!("{m}e{k}"))
            })
        })
        .filter(|(v, _)| *v >= lo && *v <= hi)
        .collect();
    let step = ticks.len().div_ceil(MAX_TICKS).max(1);
    if step > 1 {
        ticks = ticks.into_iter().step_by(step).collect();
    }
    ticks
}

/// At most this many labelled ticks on an axis.
const MAX_TICKS: usize = 10;

/// The label of the tick at `x` (the nearest one; plotters passes the key
/// points back as they were given).
fn tick_label(ticks: &[(f64, String)], x: f64) -> String {
    ticks
        .iter()
        .min_by(|a, b| {
            let d = |t: &(f64, String)| (t.0.ln() - x.ln()).abs();
            d(a).total_cmp(&d(b))
        })
        .map(|t| t.1.clone())
        .unwrap_or_default()
}

/// Height of each of the two sweep panels in pixels.
const SWEEP_PANEL_HEIGHT: u32 = 320;

/// Draw an L1 sweep as an SVG document: the metric (top panel) and the
/// sparsity in percent (bottom panel) against the L1 strength on a log
/// axis; `selected` (an index into `points`) is ringed in both panels.
pub fn sweep_svg(
    points: &[SweepPoint],
    metric_name: &str,
    selected: Option<usize>,
) -> Result<String> {
    let positive = points.iter().all(|p| p.l1 > 0.0 && p.l1.is_finite());
    if points.is_empty() || !positive {
        return Err(Error::invalid(
            "a sweep plot needs at least one point, every L1 strength finite and > 0",
        ));
    }
    let lo = points.iter().map(|p| p.l1).fold(f64::INFINITY, f64::min) / 2.0;
    let hi = points.iter().map(|p| p.l1).fold(0.0, f64::max) * 2.0;
    let finite: Vec<f64> = points
        .iter()
        .map(|p| p.metric)
        .filter(|m| m.is_finite())
        .collect();
    let (m_lo, m_hi) = match (
        finite.iter().copied().reduce(f64::min),
        finite.iter().copied().reduce(f64::max),
    ) {
        (Some(a), Some(b)) => {
            let pad = ((b - a) * 0.1).max(1e-3);
            (a - pad, b + pad)
        }
        _ => (0.0, 1.0),
    };
    let ticks = log_ticks(lo, hi);
    let tick_values: Vec<f64> = ticks.iter().map(|t| t.0).collect();
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, 2 * SWEEP_PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let areas = root.split_evenly((2, 1));
        type Value = fn(&SweepPoint) -> f64;
        let panels: [(String, &str, f64, f64, Value); 2] = [
            (
                format!("{metric_name} against the L1 strength (ringed: selected)"),
                metric_name,
                m_lo,
                m_hi,
                |p| p.metric,
            ),
            (
                "sparsity (exact zeros in kernels) against the L1 strength (ringed: selected)"
                    .to_string(),
                "sparsity (%)",
                0.0,
                100.0,
                |p| 100.0 * p.sparsity,
            ),
        ];
        for ((caption, y_desc, y_lo, y_hi, value), (i, area)) in
            panels.iter().zip(areas.iter().enumerate())
        {
            let color = Palette99::pick(i).to_rgba();
            let mut chart = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 16).into_font())
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(
                    (lo..hi).log_scale().with_key_points(tick_values.clone()),
                    *y_lo..*y_hi,
                )
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("L1 strength (log scale)")
                .y_desc(*y_desc)
                .x_label_formatter(&|x| tick_label(&ticks, *x))
                .draw()
                .map_err(plot_error)?;
            let series: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.l1, value(p)))
                .filter(|(_, y)| y.is_finite())
                .collect();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    series.clone(),
                    color.stroke_width(2),
                )))
                .map_err(plot_error)?;
            chart
                .draw_series(
                    series
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
                )
                .map_err(plot_error)?;
            if let Some(p) = selected.and_then(|s| points.get(s)) {
                let y = value(p);
                if y.is_finite() {
                    chart
                        .draw_series(std::iter::once(Circle::new(
                            (p.l1, y),
                            9,
                            BLACK.stroke_width(2),
                        )))
                        .map_err(plot_error)?;
                }
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
