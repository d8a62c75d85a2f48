//! What a corruption draws: rectangles and the line's polygon, sampled from the parameter laws.
//!
//! Sampling the geometry is separate from painting it, so the same [`Occlusion`] can be painted
//! onto the image and onto a mask (see [`Occlusion::mask`]).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::imagenet_c::ImagenetCKind;
use super::params::{BoxParams, Fill, LineParams, MosaicParams, SizeRange};

/// An axis-aligned rectangle in pixels; always inside the image it was sampled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels (at least 1).
    pub width: u32,
    /// Height in pixels (at least 1).
    pub height: u32,
}

impl Rect {
    /// Whether pixel `(px, py)` lies inside.
    pub fn contains(&self, px: u32, py: u32) -> bool {
        px >= self.x && py >= self.y && px - self.x < self.width && py - self.y < self.height
    }
}

/// A thick straight segment: the band of points within `width / 2` of the segment
/// `start..end`, measured perpendicular to it (square ends, as Pillow draws a wide line).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThickLine {
    /// One end of the centre line, in pixel coordinates (pixel `(x, y)` covers `[x, x+1) x [y, y+1)`).
    pub start: [f64; 2],
    /// The other end of the centre line.
    pub end: [f64; 2],
    /// Full width in pixels.
    pub width: f64,
}

impl ThickLine {
    /// The band's four corners, in order around it.
    pub fn polygon(&self) -> [[f64; 2]; 4] {
        let (n, _, _) = self.frame();
        let h = self.width / 2.0;
        let off = [n[0] * h, n[1] * h];
        [
            [self.start[0] + off[0], self.start[1] + off[1]],
            [self.end[0] + off[0], self.end[1] + off[1]],
            [self.end[0] - off[0], self.end[1] - off[1]],
            [self.start[0] - off[0], self.start[1] - off[1]],
        ]
    }

    /// Unit normal, unit direction and length of the centre line.
    fn frame(&self) -> ([f64; 2], [f64; 2], f64) {
        let dx = self.end[0] - self.start[0];
        let dy = self.end[1] - self.start[1];
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            return ([0.0, 1.0], [1.0, 0.0], 0.0);
        }
        let d = [dx / len, dy / len];
        ([-d[1], d[0]], d, len)
    }

    /// Perpendicular distance of point `p` from the infinite centre line.
    pub fn distance(&self, p: [f64; 2]) -> f64 {
        let (n, _, _) = self.frame();
        ((p[0] - self.start[0]) * n[0] + (p[1] - self.start[1]) * n[1]).abs()
    }

    /// The columns whose pixel centres lie in the band on row `y`, as `x0..x1` clipped to
    /// `0..image_width`; empty when none.
    pub fn row_span(&self, y: u32, image_width: u32) -> std::ops::Range<u32> {
        self.spans(image_width).row(y)
    }

    /// A row-span calculator for an image `image_width` pixels wide (the line's frame is
    /// computed once, not per row).
    pub(crate) fn spans(&self, image_width: u32) -> LineSpans {
        let (n, d, len) = self.frame();
        LineSpans {
            line: *self,
            n,
            d,
            len,
            image_width: f64::from(image_width),
        }
    }
}

/// Row spans of a [`ThickLine`] with its frame precomputed.
pub(crate) struct LineSpans {
    line: ThickLine,
    n: [f64; 2],
    d: [f64; 2],
    len: f64,
    image_width: f64,
}

impl LineSpans {
    /// Pixel `x` is in the band on row `y` when its centre `(x + 0.5, y + 0.5)` is within
    /// `width / 2` of the centre line and between its ends.
    pub(crate) fn row(&self, y: u32) -> std::ops::Range<u32> {
        let (n, d, len, s) = (self.n, self.d, self.len, self.line.start);
        let yc = f64::from(y) + 0.5;
        let h = self.line.width / 2.0;
        // Each constraint is  lo <= a * xc + b <= hi  over the pixel centre's x coordinate.
        let mut lo_x = f64::NEG_INFINITY;
        let mut hi_x = f64::INFINITY;
        let constraints = [
            (n[0], (yc - s[1]) * n[1] - s[0] * n[0], -h, h),
            (d[0], (yc - s[1]) * d[1] - s[0] * d[0], 0.0, len),
        ];
        for (a, b, lo, hi) in constraints {
            if a.abs() < 1e-12 {
                if b < lo || b > hi {
                    return 0..0;
                }
                continue;
            }
            let (x_at_lo, x_at_hi) = ((lo - b) / a, (hi - b) / a);
            lo_x = lo_x.max(x_at_lo.min(x_at_hi));
            hi_x = hi_x.min(x_at_lo.max(x_at_hi));
        }
        let first = (lo_x - 0.5).ceil().max(0.0);
        let last = (hi_x - 0.5).floor().min(self.image_width - 1.0);
        if first > last {
            return 0..0;
        }
        first as u32..last as u32 + 1
    }
}

/// What was done to one image: one of the original's three occlusions, or an ImageNet-C
/// corruption. Written as its name (`random_boxes`, ..., `fog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorruptionKind {
    /// Solid boxes.
    RandomBoxes,
    /// Pixelated boxes.
    Mosaic,
    /// One thick line through the centre.
    RandomLine,
    /// An ImageNet-C corruption of the whole image.
    ImagenetC(ImagenetCKind),
}

impl CorruptionKind {
    /// Every accepted name: the three occlusions, then the 19 ImageNet-C corruptions.
    pub const NAMES: &'static [&'static str] = &[
        "random_boxes",
        "mosaic",
        "random_line",
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "saturate",
    ];

    /// The name used by serde, command lines and Python.
    pub fn name(self) -> &'static str {
        match self {
            CorruptionKind::RandomBoxes => "random_boxes",
            CorruptionKind::Mosaic => "mosaic",
            CorruptionKind::RandomLine => "random_line",
            CorruptionKind::ImagenetC(kind) => kind.name(),
        }
    }
}

impl std::fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CorruptionKind {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "random_boxes" => Ok(CorruptionKind::RandomBoxes),
            "mosaic" => Ok(CorruptionKind::Mosaic),
            "random_line" => Ok(CorruptionKind::RandomLine),
            other => other.parse().map(CorruptionKind::ImagenetC).map_err(|_| {
                crate::error::Error::invalid(
                    "kind",
                    format!(
                        "unknown kind `{other}`; expected random_boxes, mosaic, random_line or one of {}",
                        ImagenetCKind::NAMES.join(", ")
                    ),
                )
            }),
        }
    }
}

crate::names::serde_as_name!(CorruptionKind);

/// What one corruption drew on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Occlusion {
    /// Solid boxes, painted in order.
    RandomBoxes {
        /// The boxes.
        rects: Vec<Rect>,
        /// Their colour.
        fill: Fill,
    },
    /// Pixelated boxes, painted in order (a later box samples the earlier ones' result).
    Mosaic {
        /// The boxes.
        rects: Vec<Rect>,
        /// Grid cells per side, before capping by each box's side.
        cells: u32,
    },
    /// One thick line.
    RandomLine {
        /// The line.
        line: ThickLine,
        /// Its colour.
        fill: Fill,
    },
    /// An ImageNet-C corruption: the whole image changed (nothing to repaint; its random
    /// draws are not kept).
    ImagenetC {
        /// Which corruption.
        corruption: ImagenetCKind,
        /// Its severity.
        severity: u8,
    },
}

impl Occlusion {
    /// Which kind drew this.
    pub fn kind(&self) -> CorruptionKind {
        match self {
            Occlusion::RandomBoxes { .. } => CorruptionKind::RandomBoxes,
            Occlusion::Mosaic { .. } => CorruptionKind::Mosaic,
            Occlusion::RandomLine { .. } => CorruptionKind::RandomLine,
            Occlusion::ImagenetC { corruption, .. } => CorruptionKind::ImagenetC(*corruption),
        }
    }

    /// The rectangles drawn (empty for a line).
    pub fn rects(&self) -> &[Rect] {
        match self {
            Occlusion::RandomBoxes { rects, .. } | Occlusion::Mosaic { rects, .. } => rects,
            Occlusion::RandomLine { .. } | Occlusion::ImagenetC { .. } => &[],
        }
    }

    /// The covered area of a `width x height` image as a mask: 255 where drawn, 0 elsewhere
    /// (everywhere for an ImageNet-C corruption).
    pub fn mask(&self, width: u32, height: u32) -> image::GrayImage {
        let covered = match self {
            Occlusion::ImagenetC { .. } => {
                return image::GrayImage::from_pixel(width, height, image::Luma([255]));
            }
            Occlusion::RandomBoxes { rects, .. } | Occlusion::Mosaic { rects, .. } => {
                Occlusion::RandomBoxes {
                    rects: rects.clone(),
                    fill: Fill::WHITE,
                }
            }
            Occlusion::RandomLine { line, .. } => Occlusion::RandomLine {
                line: *line,
                fill: Fill::WHITE,
            },
        };
        let mut dynamic = image::DynamicImage::ImageLuma8(image::GrayImage::new(width, height));
        covered.paint(&mut dynamic);
        dynamic.into_luma8()
    }
}

/// Samples `count` rectangles that fit a `width x height` image, sizes scaled to fit.
fn sample_rects<R: Rng + ?Sized>(
    rng: &mut R,
    width: u32,
    height: u32,
    count: SizeRange,
    box_width: SizeRange,
    box_height: SizeRange,
) -> Vec<Rect> {
    let w_law = box_width.fit_within(width);
    let h_law = box_height.fit_within(height);
    let n = rng.random_range(count.min..=count.max);
    (0..n)
        .map(|_| {
            let w = rng.random_range(w_law.min..=w_law.max);
            let h = rng.random_range(h_law.min..=h_law.max);
            let x = rng.random_range(0..=width - w);
            let y = rng.random_range(0..=height - h);
            Rect {
                x,
                y,
                width: w,
                height: h,
            }
        })
        .collect()
}

/// Samples solid boxes.
pub(crate) fn plan_boxes<R: Rng + ?Sized>(
    p: &BoxParams,
    width: u32,
    height: u32,
    rng: &mut R,
) -> Occlusion {
    Occlusion::RandomBoxes {
        rects: sample_rects(rng, width, height, p.count, p.width, p.height),
        fill: p.fill,
    }
}

/// Samples mosaic boxes.
pub(crate) fn plan_mosaic<R: Rng + ?Sized>(
    p: &MosaicParams,
    width: u32,
    height: u32,
    rng: &mut R,
) -> Occlusion {
    let rects = sample_rects(rng, width, height, p.count, p.width, p.height);
    let cells = rng.random_range(p.cells.min..=p.cells.max);
    Occlusion::Mosaic { rects, cells }
}

/// Samples a line through the centre, the original's law: with probability 1/2 from `(r, 0)`
/// to `(W - r, H)` with `r` uniform in `0..=W`, otherwise from `(0, r)` to `(W, H - r)` with `r`
/// uniform in `0..=H`.
pub(crate) fn plan_line<R: Rng + ?Sized>(
    p: &LineParams,
    width: u32,
    height: u32,
    rng: &mut R,
) -> Occlusion {
    let line_width = p.width.fit_within(width.min(height));
    let w = f64::from(width);
    let h = f64::from(height);
    let (start, end) = if rng.random_bool(0.5) {
        let r = f64::from(rng.random_range(0..=width));
        ([r, 0.0], [w - r, h])
    } else {
        let r = f64::from(rng.random_range(0..=height));
        ([0.0, r], [w, h - r])
    };
    let thickness = rng.random_range(line_width.min..=line_width.max);
    Occlusion::RandomLine {
        line: ThickLine {
            start,
            end,
            width: f64::from(thickness),
        },
        fill: p.fill,
    }
}
