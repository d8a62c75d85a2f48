//! Charts of the shift experiment, as SVG and PNG: accuracy, forgetting and plasticity against
//! the replay budget per strategy with 95% confidence bands, one panel per shift, and the
//! confusion matrix of the best run.
//! Text is laid out and drawn with a TrueType font given by the caller (the examples and
//! Python take DejaVu Sans from the matplotlib wheel), so charts look the same on every
//! machine.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::experiment::{Cell, ExperimentResults};
use crate::imageio::write_atomic;
use crate::stats::Interval;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A chart error moved to the file being drawn.
fn at_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Chart { reason, .. } => Error::Chart {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

pub(crate) fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::Chart {
        path: "chart".into(),
        reason: e.to_string(),
    }
}

/// What a budget chart plots per cell.
#[derive(Clone, Copy)]
enum Plotted {
    /// Accuracy on both test sets.
    Both,
    /// Monday accuracy lost.
    Forgetting,
    /// Accuracy on the shift's test set.
    Plasticity,
}

impl Plotted {
    fn interval(self, c: &Cell) -> Interval {
        match self {
            Plotted::Both => c.both,
            Plotted::Forgetting => c.forgetting,
            Plotted::Plasticity => c.tuesday,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Plotted::Both => "accuracy on both test sets (%)",
            Plotted::Forgetting => "forgetting: monday accuracy lost (points)",
            Plotted::Plasticity => "accuracy on the shift's test set (%)",
        }
    }
}

/// One panel per shift: the plotted value against the replay budget, one line per strategy
/// with its 95% confidence band (budget 0 is `none` for every line; `all` is a dashed level).
fn budget_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &ExperimentResults,
    plotted: Plotted,
) -> Result<()> {
    root.fill(&WHITE).map_err(chart_error)?;
    let title = format!(
        "{} against replay budget, tuning {} (mean and 95% interval over {} seeds)",
        plotted.label(),
        r.tuning,
        r.config.seeds.len()
    );
    let (top, body) = root.split_vertically(40);
    top.titled(&title, ("sans-serif", 20))
        .map_err(chart_error)?;
    let cols = r.shifts.len().clamp(1, 2);
    let rows = r.shifts.len().div_ceil(cols).max(1);
    let panels = body.split_evenly((rows, cols));
    let budgets = r.budget_columns();
    let value = |c: &Cell| {
        let i = plotted.interval(c);
        let half = if i.half_width.is_nan() {
            0.0
        } else {
            i.half_width
        };
        (100.0 * i.mean, 100.0 * half)
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for c in &r.cells {
        let (m, h) = value(c);
        lo = lo.min(m - h);
        hi = hi.max(m + h);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(0.5);
    let (lo, hi) = (lo - pad, hi + pad);
    let strategies: Vec<&str> = r
        .strategy_rows()
        .into_iter()
        .filter(|s| *s != "none" && *s != "all")
        .collect();
    for (panel, shift) in panels.iter().zip(&r.shifts) {
        let x_max = budgets.len().max(2) as f64 - 0.7;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("shift: {}", shift.name), ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.3f64..x_max, lo..hi)
            .map_err(chart_error)?;
        let labels = budgets.clone();
        chart
            .configure_mesh()
            .x_labels(budgets.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                match labels.get(i as usize) {
                    Some(b) if (x - i).abs() < 0.01 && i >= 0.0 => b.to_string(),
                    _ => String::new(),
                }
            })
            .x_desc("replay budget (samples)")
            .y_desc(plotted.label())
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(chart_error)?;
        let none = r.cell(&shift.name, "none", 0);
        for (k, strategy) in strategies.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let points: Vec<(f64, f64, f64)> = budgets
                .iter()
                .enumerate()
                .filter_map(|(x, &b)| {
                    let cell = if b == 0 {
                        none
                    } else {
                        r.cell(&shift.name, strategy, b)
                    };
                    cell.map(|c| {
                        let (m, h) = value(c);
                        (x as f64, m, h)
                    })
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let mut band: Vec<(f64, f64)> = points.iter().map(|&(x, m, h)| (x, m + h)).collect();
            band.extend(points.iter().rev().map(|&(x, m, h)| (x, m - h)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.12).filled(),
                )))
                .map_err(chart_error)?;
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, m, _)| (x, m)),
                    color.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(strategy.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        if let Some(all) = r
            .cells
            .iter()
            .find(|c| c.shift == shift.name && c.strategy == "all")
        {
            let (m, _) = value(all);
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.3, m), (x_max, m)],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(chart_error)?
                .label("all (joint)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
        }
        chart
            .configure_series_labels()
            // Where the lines usually are not: accuracy rises with the budget, forgetting falls.
            .position(match plotted {
                Plotted::Forgetting => SeriesLabelPosition::UpperRight,
                _ => SeriesLabelPosition::UpperLeft,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(chart_error)?;
    }
    root.present().map_err(chart_error)
}

fn confusion_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &ExperimentResults,
    run: &crate::experiment::StrategyRun,
) -> Result<()> {
    root.fill(&WHITE).map_err(chart_error)?;
    let n = r.classes.len();
    let classes = r.classes.clone();
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Confusion matrix, both test sets: {} (seed {})",
                run.strategy, run.seed
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..n as f64, n as f64..0f64)
        .map_err(chart_error)?;
    let names = classes.clone();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * n + 1)
        .y_labels(2 * n + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - i as f64 - 0.5).abs() < 0.01 && i < classes.len() {
                classes[i].clone()
            } else {
                String::new()
            }
        })
        .x_desc("predicted")
        .y_desc("true")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(chart_error)?;
    let max = run
        .confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (t, row) in run.confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let shade = 1.0 - 0.85 * count as f64 / max;
            let level = (255.0 * shade) as u8;
            let (x, y) = (p as f64, t as f64);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    RGBColor(level, level, 255).filled(),
                )))
                .map_err(chart_error)?;
            let color = if shade < 0.5 { WHITE } else { BLACK };
            chart
                .draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (x + 0.42, y + 0.45),
                    ("sans-serif", 18).into_font().color(&color),
                )))
                .map_err(chart_error)?;
        }
    }
    root.present().map_err(chart_error)
}

/// Draws a chart into an SVG file at `path` (atomically).
pub(crate) fn write_svg(
    path: &Path,
    size: (u32, u32),
    draw: &dyn Fn(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    let mut text = String::new();
    draw(&SVGBackend::with_string(&mut text, size).into_drawing_area())
        .map_err(|e| at_path(e, path))?;
    write_atomic(path, text.as_bytes())
}

/// Draws a chart into a PNG file at `path` (atomically).
pub(crate) fn write_png(
    path: &Path,
    (w, h): (u32, u32),
    draw: &dyn Fn(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    let mut buffer = vec![0u8; (w * h * 3) as usize];
    draw(&BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area())
        .map_err(|e| at_path(e, path))?;
    let image =
        image::RgbImage::from_raw(w, h, buffer).ok_or_else(|| chart_error("buffer size"))?;
    let bytes = crate::imageio::encode(
        &image::DynamicImage::ImageRgb8(image),
        image::ImageFormat::Png,
        path,
    )?;
    write_atomic(path, &bytes)
}

/// Registers `font` (TrueType bytes) as the charts' sans-serif face.
pub(crate) fn register_font(font: &'static [u8]) -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| chart_error("the font could not be read"))
}

/// Writes `accuracy_budget`, `forgetting_budget`, `plasticity_budget` (one panel per shift)
/// and `confusion` (the best run's) as `.svg` and `.png` into `out`, with `font` (TrueType
/// bytes) for all text.
pub fn write_charts(results: &ExperimentResults, out: &Path, font: &'static [u8]) -> Result<()> {
    register_font(font)?;
    let (w, h) = (
        1400u32,
        80 + 520 * results.shifts.len().div_ceil(2).max(1) as u32,
    );
    let charts = [
        ("accuracy_budget", Plotted::Both),
        ("forgetting_budget", Plotted::Forgetting),
        ("plasticity_budget", Plotted::Plasticity),
    ];
    let best = results
        .runs
        .iter()
        .filter(|run| run.strategy != "all")
        .max_by(|a, b| a.accuracy.both.total_cmp(&b.accuracy.both))
        .or(results.runs.first())
        .ok_or_else(|| Error::invalid("results", "no runs to chart"))?
        .clone();
    let svg = |name: &str,
               size: (u32, u32),
               draw: &dyn Fn(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>|
     -> Result<()> { write_svg(&out.join(name), size, draw) };
    for (name, plotted) in charts {
        svg(&format!("{name}.svg"), (w, h), &|a| {
            budget_chart(a, results, plotted)
        })?;
    }
    svg("confusion.svg", (900, 800), &|a| {
        confusion_chart(a, results, &best)
    })?;
    let png = |name: &str,
               size: (u32, u32),
               draw: &dyn Fn(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>|
     -> Result<()> { write_png(&out.join(name), size, draw) };
    for (name, plotted) in charts {
        png(&format!("{name}.png"), (w, h), &|a| {
            budget_chart(a, results, plotted)
        })?;
    }
    png("confusion.png", (900, 800), &|a| {
        confusion_chart(a, results, &best)
    })?;
    Ok(())
}

/// Writes `results.json`, `results.md` and, given a TrueType `font`, the charts (see
/// [`write_charts`]) into `out`, each file atomically.
pub fn write_report(
    results: &ExperimentResults,
    out: &Path,
    font: Option<&'static [u8]>,
) -> Result<()> {
    results.write_files(out)?;
    if let Some(font) = font {
        write_charts(results, out, font)?;
    }
    Ok(())
}
