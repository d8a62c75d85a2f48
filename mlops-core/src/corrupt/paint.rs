//! Painting an [`Occlusion`] onto an image of any colour type.
//!
//! Everything works on the image's raw interleaved samples: a fill is a row pattern copied with
//! `copy_from_slice` (memcpy speed), a mosaic box is sampled to its coarse grid once and each
//! output band row is built once and copied down the band.

use image::DynamicImage;

use super::geometry::{Occlusion, Rect, ThickLine};
use super::params::Fill;

/// A sample type of an image buffer.
trait Sample: Copy {
    fn from_u8(v: u8) -> Self;

    /// The one byte every sample of `pattern` is, for 8-bit samples.
    fn uniform_byte(_pattern: &[Self]) -> Option<u8> {
        None
    }

    /// The samples as bytes, for 8-bit samples.
    fn as_bytes_mut(_samples: &mut [Self]) -> Option<&mut [u8]> {
        None
    }
}

impl Sample for u8 {
    fn from_u8(v: u8) -> Self {
        v
    }

    fn uniform_byte(pattern: &[Self]) -> Option<u8> {
        let first = *pattern.first()?;
        pattern.iter().all(|&b| b == first).then_some(first)
    }

    fn as_bytes_mut(samples: &mut [Self]) -> Option<&mut [u8]> {
        Some(samples)
    }
}

impl Sample for u16 {
    fn from_u8(v: u8) -> Self {
        u16::from(v) * 257
    }
}

impl Sample for f32 {
    fn from_u8(v: u8) -> Self {
        f32::from(v) / 255.0
    }
}

/// A fill colour as one pixel's samples for a layout of `channels` (1 = L, 2 = LA, 3 = RGB,
/// 4 = RGBA).
fn fill_pixel<S: Sample>(fill: Fill, channels: usize) -> Vec<S> {
    let [r, g, b, a] = fill.0;
    // Rec. 709 luma, as `image` converts RGB to grey.
    let luma =
        ((2126 * u32::from(r) + 7152 * u32::from(g) + 722 * u32::from(b) + 5000) / 10000) as u8;
    let samples: &[u8] = match channels {
        1 => &[luma],
        2 => &[luma, a],
        3 => &[r, g, b],
        _ => &[r, g, b, a],
    };
    samples.iter().map(|&v| S::from_u8(v)).collect()
}

/// A row fill of one colour: a memset when every sample of the colour is the same byte
/// (white or black 8-bit), a memcpy of a prepared row otherwise.
struct RowFill<S> {
    pattern: Vec<S>,
    uniform_byte: Option<u8>,
}

impl<S: Sample> RowFill<S> {
    fn new(pixel: &[S], max_pixels: usize) -> Self {
        let mut pattern = Vec::with_capacity(max_pixels * pixel.len());
        for _ in 0..max_pixels {
            pattern.extend_from_slice(pixel);
        }
        RowFill {
            pattern,
            uniform_byte: S::uniform_byte(pixel),
        }
    }

    /// Fills `span`, which holds at most `max_pixels` pixels.
    fn fill(&self, span: &mut [S]) {
        if let Some(byte) = self.uniform_byte
            && let Some(bytes) = S::as_bytes_mut(span)
        {
            bytes.fill(byte);
            return;
        }
        span.copy_from_slice(&self.pattern[..span.len()]);
    }
}

/// A view of an image's interleaved samples.
struct Canvas<'a, S> {
    samples: &'a mut [S],
    width: usize,
    height: usize,
    channels: usize,
}

impl<S: Sample> Canvas<'_, S> {
    fn stride(&self) -> usize {
        self.width * self.channels
    }

    fn fill_rect(&mut self, r: &Rect, pixel: &[S]) {
        let (x, w) = (r.x as usize, r.width as usize);
        let fill = RowFill::new(pixel, w);
        let stride = self.stride();
        let c = self.channels;
        for y in r.y as usize..(r.y + r.height) as usize {
            let start = y * stride + x * c;
            fill.fill(&mut self.samples[start..start + w * c]);
        }
    }

    fn fill_line(&mut self, line: &ThickLine, pixel: &[S]) {
        let fill = RowFill::new(pixel, self.width);
        let stride = self.stride();
        let c = self.channels;
        let spans = line.spans(self.width as u32);
        for y in 0..self.height {
            let span = spans.row(y as u32);
            if span.is_empty() {
                continue;
            }
            let (x0, x1) = (span.start as usize, span.end as usize);
            fill.fill(&mut self.samples[y * stride + x0 * c..y * stride + x1 * c]);
        }
    }

    /// Pixelates `r` to `cells x cells` (each capped by the box's side) with nearest sampling,
    /// using Pillow's NEAREST mapping both ways: output `i` of `n` samples input
    /// `floor((i + 0.5) * m / n)` of `m`.
    fn mosaic_rect(&mut self, r: &Rect, cells: u32) {
        let (bx, by) = (r.x as usize, r.y as usize);
        let (bw, bh) = (r.width as usize, r.height as usize);
        let cw = (cells as usize).clamp(1, bw);
        let ch = (cells as usize).clamp(1, bh);
        let c = self.channels;
        let stride = self.stride();
        let nearest = |i: usize, from: usize, to: usize| (2 * i + 1) * from / (2 * to);

        // Down: the coarse grid, ch rows of cw pixels.
        let mut grid = Vec::with_capacity(cw * ch * c);
        for j in 0..ch {
            let y = by + nearest(j, bh, ch);
            for i in 0..cw {
                let x = bx + nearest(i, bw, cw);
                let at = y * stride + x * c;
                grid.extend_from_slice(&self.samples[at..at + c]);
            }
        }
        // Up: the grid column for each box column, then one band row per grid row.
        let column_cell: Vec<usize> = (0..bw).map(|u| nearest(u, cw, bw)).collect();
        let mut band_row = Vec::with_capacity(bw * c);
        let mut current_cell = usize::MAX;
        for v in 0..bh {
            let j = nearest(v, ch, bh);
            if j != current_cell {
                current_cell = j;
                band_row.clear();
                for &i in &column_cell {
                    let at = (j * cw + i) * c;
                    band_row.extend_from_slice(&grid[at..at + c]);
                }
            }
            let start = (by + v) * stride + bx * c;
            self.samples[start..start + band_row.len()].copy_from_slice(&band_row);
        }
    }

    fn paint(&mut self, occlusion: &Occlusion) {
        match occlusion {
            Occlusion::RandomBoxes { rects, fill } => {
                let pixel = fill_pixel::<S>(*fill, self.channels);
                for r in rects {
                    self.fill_rect(r, &pixel);
                }
            }
            Occlusion::Mosaic { rects, cells } => {
                for r in rects {
                    self.mosaic_rect(r, *cells);
                }
            }
            Occlusion::RandomLine { line, fill } => {
                let pixel = fill_pixel::<S>(*fill, self.channels);
                self.fill_line(line, &pixel);
            }
            // Drawn when applied; its random draws are not kept.
            Occlusion::ImagenetC { .. } => {}
        }
    }
}

fn paint_samples<S: Sample>(
    samples: &mut [S],
    width: u32,
    height: u32,
    channels: usize,
    occlusion: &Occlusion,
) {
    Canvas {
        samples,
        width: width as usize,
        height: height as usize,
        channels,
    }
    .paint(occlusion);
}

impl Occlusion {
    /// Paints this occlusion onto `image`, keeping its colour type.
    ///
    /// The geometry must have been sampled for an image of the same size (rectangles outside
    /// the image would panic); [`crate::corrupt::Corruption::plan`] guarantees that.
    pub fn paint(&self, image: &mut DynamicImage) {
        let (w, h) = (image.width(), image.height());
        match image {
            DynamicImage::ImageLuma8(b) => paint_samples(b, w, h, 1, self),
            DynamicImage::ImageLumaA8(b) => paint_samples(b, w, h, 2, self),
            DynamicImage::ImageRgb8(b) => paint_samples(b, w, h, 3, self),
            DynamicImage::ImageRgba8(b) => paint_samples(b, w, h, 4, self),
            DynamicImage::ImageLuma16(b) => paint_samples(b, w, h, 1, self),
            DynamicImage::ImageLumaA16(b) => paint_samples(b, w, h, 2, self),
            DynamicImage::ImageRgb16(b) => paint_samples(b, w, h, 3, self),
            DynamicImage::ImageRgba16(b) => paint_samples(b, w, h, 4, self),
            DynamicImage::ImageRgb32F(b) => paint_samples(b, w, h, 3, self),
            DynamicImage::ImageRgba32F(b) => paint_samples(b, w, h, 4, self),
            other => {
                let mut rgba = other.to_rgba32f();
                paint_samples(&mut rgba, w, h, 4, self);
                *other = DynamicImage::ImageRgba32F(rgba);
            }
        }
    }
}
