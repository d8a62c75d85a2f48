//! Charts of the shift experiment, as SVG and PNG: accuracy per strategy and test split (with
//! the spread over seeds), training curves, and the confusion matrix of the best strategy.
//! Text is laid out and drawn with a TrueType font given by the caller (the examples and
//! Python take DejaVu Sans from the matplotlib wheel), so charts look the same on every
//! machine.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::experiment::ExperimentResults;
use crate::imageio::write_atomic;

const SPLITS: [(&str, RGBColor); 3] = [
    ("monday test", RGBColor(31, 119, 180)),
    ("tuesday test", RGBColor(255, 127, 14)),
    ("both", RGBColor(44, 160, 44)),
];

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

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::Chart {
        path: "chart".into(),
        reason: e.to_string(),
    }
}

fn accuracy_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &ExperimentResults,
) -> Result<()> {
    root.fill(&WHITE).map_err(chart_error)?;
    let n = r.summary.len();
    let lowest = r
        .summary
        .iter()
        .flat_map(|s| {
            [
                s.mean.monday - s.std.monday,
                s.mean.tuesday - s.std.tuesday,
                s.mean.both - s.std.both,
            ]
        })
        .fold(1.0f64, f64::min);
    let y_min = y_floor(lowest);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Test accuracy after training on tuesday + replay (mean ± sd over seeds)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, y_min..102f64)
        .map_err(chart_error)?;
    let names: Vec<String> = r.summary.iter().map(|s| s.strategy.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("accuracy (%)")
        .x_desc("replay strategy")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(chart_error)?;
    for (k, (label, color)) in SPLITS.iter().enumerate() {
        let value = |s: &crate::experiment::StrategySummary| match k {
            0 => (s.mean.monday, s.std.monday),
            1 => (s.mean.tuesday, s.std.tuesday),
            _ => (s.mean.both, s.std.both),
        };
        let x0 = |i: usize| i as f64 + 0.1 + 0.27 * k as f64;
        chart
            .draw_series(r.summary.iter().enumerate().map(|(i, s)| {
                let (m, _) = value(s);
                Rectangle::new([(x0(i), y_min), (x0(i) + 0.25, 100.0 * m)], color.filled())
            }))
            .map_err(chart_error)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart
            .draw_series(r.summary.iter().enumerate().map(|(i, s)| {
                let (m, sd) = value(s);
                let x = x0(i) + 0.125;
                ErrorBar::new_vertical(
                    x,
                    100.0 * (m - sd),
                    100.0 * m,
                    100.0 * (m + sd),
                    BLACK.filled(),
                    6,
                )
            }))
            .map_err(chart_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(chart_error)?;
    root.present().map_err(chart_error)
}

/// A y-axis floor in percent a little below `lowest` (a fraction), on a multiple of 5.
fn y_floor(lowest: f64) -> f64 {
    ((100.0 * lowest - 3.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0
}

fn curves_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &ExperimentResults,
) -> Result<()> {
    root.fill(&WHITE).map_err(chart_error)?;
    let epochs = r.monday_history.len().max(1);
    let lowest = r
        .runs
        .iter()
        .flat_map(|run| run.history.iter().map(|m| m.test_accuracy))
        .fold(1.0f64, f64::min);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Training on tuesday + replay: accuracy on both test sets per epoch (first seed)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..epochs as f64 + 0.5, y_floor(lowest)..100f64)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("test accuracy, both days (%)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(chart_error)?;
    let first_seed = r.config.seeds.first().copied().unwrap_or_default();
    for (i, run) in r
        .runs
        .iter()
        .filter(|run| run.seed == first_seed)
        .enumerate()
    {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                run.history
                    .iter()
                    .map(|m| (m.epoch as f64, 100.0 * m.test_accuracy)),
                color.stroke_width(2),
            ))
            .map_err(chart_error)?
            .label(run.strategy.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(chart_error)?;
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

/// Writes `accuracy`, `curves` and `confusion` as `.svg` and `.png` into `out`, with `font`
/// (TrueType bytes) for all text.
pub fn write_charts(results: &ExperimentResults, out: &Path, font: &'static [u8]) -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| chart_error("the font could not be read"))?;
    let (w, h) = (1200u32, 700u32);
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
     -> Result<()> {
        let mut text = String::new();
        draw(&SVGBackend::with_string(&mut text, size).into_drawing_area())
            .map_err(|e| at_path(e, &out.join(name)))?;
        write_atomic(&out.join(name), text.as_bytes())
    };
    svg("accuracy.svg", (w, h), &|a| accuracy_chart(a, results))?;
    svg("curves.svg", (w, h), &|a| curves_chart(a, results))?;
    svg("confusion.svg", (900, 800), &|a| {
        confusion_chart(a, results, &best)
    })?;
    let png = |name: &str,
               (w, h): (u32, u32),
               draw: &dyn Fn(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>|
     -> Result<()> {
        let mut buffer = vec![0u8; (w * h * 3) as usize];
        draw(&BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area())
            .map_err(|e| at_path(e, &out.join(name)))?;
        let image =
            image::RgbImage::from_raw(w, h, buffer).ok_or_else(|| chart_error("buffer size"))?;
        let bytes = crate::imageio::encode(
            &image::DynamicImage::ImageRgb8(image),
            image::ImageFormat::Png,
            &out.join(name),
        )?;
        write_atomic(&out.join(name), &bytes)
    };
    png("accuracy.png", (w, h), &|a| accuracy_chart(a, results))?;
    png("curves.png", (w, h), &|a| curves_chart(a, results))?;
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
