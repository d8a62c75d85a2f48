//! The robustness report: a model's error on every ImageNet-C corruption and severity of a
//! test set, and the mean corruption error (mCE) against a baseline model, as ImageNet-C
//! defines it (Hendrycks & Dietterich, ICLR 2019):
//!
//! - `CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}` for each corruption `c` over its severities,
//! - `mCE` = the mean of `CE_c` over the 15 common corruptions (the 4 held-out ones are shown
//!   but not averaged),
//! - relative `CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)`, and
//!   its mean, the relative mCE: how much of the baseline's degradation remains.
//!
//! ImageNet-C's baseline is AlexNet on ImageNet; here it is any other model's report on the same
//! test set, images and seed (the demo's baseline is a small CNN trained from scratch on the
//! same data), named in the report.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::control::{Control, Progress};
use crate::corrupt::{ImagenetC, ImagenetCKind, Preset};
use crate::dataset::Manifest;
use crate::error::{Error, Result};
use crate::imageio::{self, write_atomic};
use crate::predict::Predictor;
use crate::seed::item_rng;

/// What to evaluate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobustnessOptions {
    /// Corruptions (default all 19).
    pub kinds: Vec<ImagenetCKind>,
    /// Severities (default 1..=5).
    pub severities: Vec<u8>,
    /// Parameter tables (default ImageNet).
    pub preset: Preset,
    /// Seed of the corruptions; each image's generator derives from it, the corruption, the
    /// severity, the image's path and bytes.
    pub seed: u64,
    /// At most this many images of the manifest (every k-th, spread over the manifest).
    pub limit: Option<usize>,
}

impl Default for RobustnessOptions {
    fn default() -> Self {
        RobustnessOptions {
            kinds: ImagenetCKind::ALL.to_vec(),
            severities: (1..=5).collect(),
            preset: Preset::Imagenet,
            seed: 0,
            limit: None,
        }
    }
}

/// The error of one corruption at one severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellError {
    /// The corruption.
    pub kind: ImagenetCKind,
    /// Its severity.
    pub severity: u8,
    /// Top-1 error in [0, 1].
    pub error: f64,
}

/// One corruption's summary over its severities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorruptionSummary {
    /// The corruption.
    pub kind: ImagenetCKind,
    /// Mean error over the severities.
    pub mean_error: f64,
    /// `CE_c` against the baseline (`None` without one or when the baseline never errs).
    pub ce: Option<f64>,
    /// Relative `CE_c` (`None` without a baseline or when the baseline does not degrade).
    pub relative_ce: Option<f64>,
}

/// A model's errors on the corrupted test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessReport {
    /// The evaluated model, as named by the caller.
    pub model: String,
    /// Images evaluated per cell.
    pub images: usize,
    /// The preset of the corruptions.
    pub preset: Preset,
    /// The seed of the corruptions.
    pub seed: u64,
    /// Error on the clean images.
    pub clean_error: f64,
    /// Every corruption x severity.
    pub cells: Vec<CellError>,
    /// The baseline the CEs are relative to, when given.
    pub baseline: Option<String>,
    /// Per corruption: mean error and CEs.
    pub summary: Vec<CorruptionSummary>,
    /// Mean error over the common (non held-out) cells.
    pub mean_corruption_error: f64,
    /// mCE over the common corruptions (needs a baseline).
    pub mce: Option<f64>,
    /// Relative mCE over the common corruptions (needs a baseline).
    pub relative_mce: Option<f64>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl RobustnessReport {
    fn errors(&self, kind: ImagenetCKind) -> Vec<(u8, f64)> {
        self.cells
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.severity, c.error))
            .collect()
    }

    fn kinds(&self) -> Vec<ImagenetCKind> {
        let mut kinds: Vec<ImagenetCKind> = self.cells.iter().map(|c| c.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Recomputes the summary; with `baseline`, the CEs and mCEs relative to it (it must hold
    /// every cell of this report and the same number of images).
    pub fn summarise(&mut self, baseline: Option<&RobustnessReport>) -> Result<()> {
        if let Some(base) = baseline
            && (base.images != self.images || base.preset != self.preset || base.seed != self.seed)
        {
            return Err(Error::invalid(
                "baseline",
                format!(
                    "{} was evaluated on {} images (preset {:?}, seed {}), this report on {} ({:?}, {})",
                    base.model,
                    base.images,
                    base.preset,
                    base.seed,
                    self.images,
                    self.preset,
                    self.seed
                ),
            ));
        }
        let mut summary = Vec::new();
        for kind in self.kinds() {
            let ours = self.errors(kind);
            let mut ce = None;
            let mut relative = None;
            if let Some(base) = baseline {
                let theirs = base.errors(kind);
                let mut sums = (0.0, 0.0, 0.0, 0.0);
                for (s, e) in &ours {
                    let Some((_, b)) = theirs.iter().find(|(bs, _)| bs == s) else {
                        return Err(Error::invalid(
                            "baseline",
                            format!("{} has no {kind} at severity {s}", base.model),
                        ));
                    };
                    sums.0 += e;
                    sums.1 += b;
                    sums.2 += e - self.clean_error;
                    sums.3 += b - base.clean_error;
                }
                ce = (sums.1 > 0.0).then(|| sums.0 / sums.1);
                relative = (sums.3 > 0.0).then(|| sums.2 / sums.3);
            }
            summary.push(CorruptionSummary {
                kind,
                mean_error: mean(ours.iter().map(|(_, e)| *e)).unwrap_or(0.0),
                ce,
                relative_ce: relative,
            });
        }
        let common = |s: &&CorruptionSummary| s.kind.family() != "held_out";
        self.mean_corruption_error = mean(
            self.cells
                .iter()
                .filter(|c| c.kind.family() != "held_out")
                .map(|c| c.error),
        )
        .unwrap_or(0.0);
        self.mce = if baseline.is_some() {
            mean(summary.iter().filter(common).filter_map(|s| s.ce))
        } else {
            None
        };
        self.relative_mce = if baseline.is_some() {
            mean(summary.iter().filter(common).filter_map(|s| s.relative_ce))
        } else {
            None
        };
        self.baseline = baseline.map(|b| b.model.clone());
        self.summary = summary;
        Ok(())
    }

    /// The report as a markdown table: error (%) per corruption and severity, mean, CE.
    pub fn to_markdown(&self) -> String {
        let severities: Vec<u8> = {
            let mut s: Vec<u8> = self.cells.iter().map(|c| c.severity).collect();
            s.sort();
            s.dedup();
            s
        };
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut out = format!(
            "Model `{}`: top-1 error (%) on {} images per cell, clean {}%.\n\n",
            self.model,
            self.images,
            pct(self.clean_error)
        );
        out += "| corruption | family |";
        for s in &severities {
            out += &format!(" s{s} |");
        }
        out += " mean | CE | relative CE |\n|---|---|";
        out += &"---:|".repeat(severities.len() + 3);
        out += "\n";
        for s in &self.summary {
            out += &format!("| {} | {} |", s.kind, s.kind.family());
            for sev in &severities {
                let e = self
                    .cells
                    .iter()
                    .find(|c| c.kind == s.kind && c.severity == *sev);
                out += &format!(" {} |", e.map(|c| pct(c.error)).unwrap_or_default());
            }
            let opt = |v: Option<f64>| v.map(pct).unwrap_or_else(|| "-".into());
            out += &format!(
                " {} | {} | {} |\n",
                pct(s.mean_error),
                opt(s.ce),
                opt(s.relative_ce)
            );
        }
        out += &format!(
            "\nMean corruption error (15 common corruptions, unnormalised): {}%.\n",
            pct(self.mean_corruption_error)
        );
        match (&self.baseline, self.mce, self.relative_mce) {
            (Some(base), Some(m), r) => {
                out += &format!(
                    "mCE relative to `{base}`: {}%; relative mCE: {}.\n",
                    pct(m),
                    r.map(|v| format!("{}%", pct(v)))
                        .unwrap_or_else(|| "-".into())
                );
            }
            _ => out += "No baseline: CE and mCE need one.\n",
        }
        out
    }

    /// Writes `robustness.json`, `robustness.md` and (with the `charts` feature and a font)
    /// the heat map `robustness.svg` / `.png` into `out`, each atomically.
    pub fn write(&self, out: &Path, font: Option<&'static [u8]>) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let json = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            what: out.join("robustness.json").display().to_string(),
            source,
        })?;
        write_atomic(&out.join("robustness.json"), &json)?;
        write_atomic(&out.join("robustness.md"), self.to_markdown().as_bytes())?;
        #[cfg(feature = "charts")]
        if let Some(font) = font {
            chart::write(self, out, font)?;
        }
        #[cfg(not(feature = "charts"))]
        let _ = font;
        Ok(())
    }
}

/// Evaluates `predictor` on the images of `manifest` under `root`, clean and under every
/// corruption and severity of `options`; the model is named `model` in the report.
///
/// Images are decoded once; each corrupted copy exists only while it is predicted. A file
/// that cannot be read or decoded fails the run with an error naming it. `control` reports
/// `cells` done and stops between cells when cancelled.
pub fn evaluate_robustness(
    predictor: &Predictor,
    model: &str,
    root: &Path,
    manifest: &Manifest,
    options: &RobustnessOptions,
    control: &Control,
) -> Result<RobustnessReport> {
    for s in &options.severities {
        if !(1..=5).contains(s) {
            return Err(Error::invalid("severities", format!("{s} is not 1..=5")));
        }
    }
    if options.kinds.is_empty() || options.severities.is_empty() {
        return Err(Error::invalid(
            "kinds",
            "nothing to evaluate: no corruption or no severity",
        ));
    }
    let samples: Vec<_> = match options.limit {
        Some(0) => return Err(Error::invalid("limit", "must be at least 1")),
        Some(n) if n < manifest.samples.len() => {
            let step = manifest.samples.len() as f64 / n as f64;
            (0..n)
                .map(|i| &manifest.samples[(i as f64 * step) as usize])
                .collect()
        }
        _ => manifest.samples.iter().collect(),
    };
    if samples.is_empty() {
        return Err(Error::invalid("manifest", "no samples"));
    }
    let loaded: Vec<(Vec<u8>, image::DynamicImage)> = samples
        .par_iter()
        .map(|s| {
            let path = root.join(&s.image_path);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let image = imageio::decode(&path, &bytes, imageio::DEFAULT_MAX_ALLOC)?;
            Ok((bytes, image))
        })
        .collect::<Result<_>>()?;
    let (bytes, clean): (Vec<Vec<u8>>, Vec<image::DynamicImage>) = loaded.into_iter().unzip();
    let error_of = |images: &[image::DynamicImage]| -> Result<f64> {
        let predictions = predictor.predict_images(images)?;
        let wrong = predictions
            .iter()
            .zip(&samples)
            .filter(|(p, s)| p.class_id != s.target)
            .count();
        Ok(wrong as f64 / samples.len() as f64)
    };
    let clean_error = error_of(&clean)?;
    let total = (options.kinds.len() * options.severities.len()) as u64;
    let mut cells = Vec::new();
    for &kind in &options.kinds {
        for &severity in &options.severities {
            if control.is_cancelled() {
                return Err(Error::Cancelled {
                    what: "the robustness report".into(),
                });
            }
            let corruption = ImagenetC::new(kind, severity)?.with_preset(options.preset);
            let corrupted: Vec<image::DynamicImage> = (&samples, &bytes, &clean)
                .into_par_iter()
                .map(|(sample, bytes, image)| {
                    let key = format!("{kind}/{severity}/{}", sample.image_path);
                    corruption.apply(image, &mut item_rng(options.seed, &key, bytes))
                })
                .collect::<Result<_>>()?;
            cells.push(CellError {
                kind,
                severity,
                error: error_of(&corrupted)?,
            });
            control.report(Progress::items("cells", cells.len() as u64, Some(total)));
        }
    }
    let mut report = RobustnessReport {
        model: model.to_string(),
        images: samples.len(),
        preset: options.preset,
        seed: options.seed,
        clean_error,
        cells,
        baseline: None,
        summary: Vec::new(),
        mean_corruption_error: 0.0,
        mce: None,
        relative_mce: None,
    };
    report.summarise(None)?;
    Ok(report)
}

#[cfg(feature = "charts")]
mod chart {
    use std::path::Path;

    use plotters::coord::Shift;
    use plotters::prelude::*;

    use super::RobustnessReport;
    use crate::error::Result;
    use crate::report::{chart_error, register_font, write_png, write_svg};

    /// A white-to-red colour for an error in [0, 1].
    fn heat(error: f64) -> RGBColor {
        let t = error.clamp(0.0, 1.0);
        let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
        RGBColor(lerp(255.0, 180.0), lerp(255.0, 20.0), lerp(255.0, 30.0))
    }

    fn heat_map<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        r: &RobustnessReport,
    ) -> Result<()> {
        root.fill(&WHITE).map_err(chart_error)?;
        let kinds: Vec<String> = r.summary.iter().map(|s| s.kind.to_string()).collect();
        let mut severities: Vec<u8> = r.cells.iter().map(|c| c.severity).collect();
        severities.sort();
        severities.dedup();
        let (nx, ny) = (severities.len(), kinds.len());
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Top-1 error (%), {} (clean {:.1}%)",
                    r.model,
                    100.0 * r.clean_error
                ),
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..nx as f64, ny as f64..0f64)
            .map_err(chart_error)?;
        let sev = severities.clone();
        let names = kinds.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * nx + 1)
            .y_labels(2 * ny + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 && i < sev.len() {
                    sev[i].to_string()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| {
                let i = y.floor() as usize;
                if (y - i as f64 - 0.5).abs() < 0.01 && i < names.len() {
                    names[i].clone()
                } else {
                    String::new()
                }
            })
            .x_desc("severity")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(chart_error)?;
        for (y, kind) in r.summary.iter().enumerate() {
            for (x, s) in severities.iter().enumerate() {
                let Some(cell) = r
                    .cells
                    .iter()
                    .find(|c| c.kind == kind.kind && c.severity == *s)
                else {
                    continue;
                };
                let (x, y) = (x as f64, y as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        heat(cell.error).filled(),
                    )))
                    .map_err(chart_error)?;
                let colour = if cell.error > 0.6 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{:.0}", 100.0 * cell.error),
                        (x + 0.4, y + 0.35),
                        ("sans-serif", 14).into_font().color(&colour),
                    )))
                    .map_err(chart_error)?;
            }
        }
        root.present().map_err(chart_error)
    }

    pub(super) fn write(r: &RobustnessReport, out: &Path, font: &'static [u8]) -> Result<()> {
        register_font(font)?;
        let size = (1000, 120 + 34 * r.summary.len() as u32);
        write_svg(&out.join("robustness.svg"), size, &|a| heat_map(a, r))?;
        write_png(&out.join("robustness.png"), size, &|a| heat_map(a, r))
    }
}
