//! Digital: brightness, contrast, saturation, JPEG, pixelation, elastic transform.

use image::RgbImage;
use rand::Rng;

use super::filters::{Border, Planes, border_index, gaussian, unit_to_rgb};
use crate::error::{Error, Result};

/// scikit-image's RGB to HSV of one pixel in [0, 1] (the same operations in the same order, so
/// the same rounding).
fn rgb_to_hsv([r, g, b]: [f64; 3]) -> [f64; 3] {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta == 0.0 {
        return [0.0, 0.0, v];
    }
    let s = delta / v;
    // Later matches win, as in the reference's masked assignments.
    let mut h = 0.0;
    if r == v {
        h = (g - b) / delta;
    }
    if g == v {
        h = 2.0 + (b - r) / delta;
    }
    if b == v {
        h = 4.0 + (r - g) / delta;
    }
    [(h / 6.0).rem_euclid(1.0), s, v]
}

/// scikit-image's HSV to RGB of one pixel.
fn hsv_to_rgb([h, s, v]: [f64; 3]) -> [f64; 3] {
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    match (hi as i64).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

fn map_hsv(image: &RgbImage, f: impl Fn([f64; 3]) -> [f64; 3]) -> RgbImage {
    let mut out = image.clone();
    for px in out.as_mut().chunks_exact_mut(3) {
        let rgb = [px[0], px[1], px[2]].map(|v| f64::from(v) / 255.0);
        let back = hsv_to_rgb(f(rgb_to_hsv(rgb)));
        for (v, c) in px.iter_mut().zip(back) {
            *v = (c.clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    out
}

/// Brightness: `amount` added to the HSV value.
pub(super) fn brightness(image: &RgbImage, amount: f64) -> RgbImage {
    map_hsv(image, |[h, s, v]| [h, s, (v + amount).clamp(0.0, 1.0)])
}

/// Saturation: HSV saturation times `scale` plus `shift`.
pub(super) fn saturate(image: &RgbImage, scale: f64, shift: f64) -> RgbImage {
    map_hsv(image, |[h, s, v]| {
        [h, (s * scale + shift).clamp(0.0, 1.0), v]
    })
}

/// Contrast: each channel pulled towards its mean by `factor` (through one 256-entry table per
/// channel, computed as the reference computes each value).
pub(super) fn contrast(image: &RgbImage, factor: f64) -> RgbImage {
    let mut histogram = [[0u64; 256]; 3];
    for px in image.as_raw().chunks_exact(3) {
        for (h, &v) in histogram.iter_mut().zip(px) {
            h[usize::from(v)] += 1;
        }
    }
    let n = (image.width() as f64 * image.height() as f64).max(1.0);
    let tables = histogram.map(|h| {
        let mean = h
            .iter()
            .enumerate()
            .map(|(v, &c)| c as f64 * (v as f64 / 255.0))
            .sum::<f64>()
            / n;
        let mut table = [0u8; 256];
        for (v, t) in table.iter_mut().enumerate() {
            let x = v as f64 / 255.0;
            *t = (((x - mean) * factor + mean).clamp(0.0, 1.0) * 255.0) as u8;
        }
        table
    });
    let mut out = image.clone();
    for px in out.as_mut().chunks_exact_mut(3) {
        for (v, t) in px.iter_mut().zip(&tables) {
            *v = t[usize::from(*v)];
        }
    }
    out
}

/// JPEG at `quality` (libjpeg-turbo, 4:2:0, as Pillow saves), decoded again.
pub(super) fn jpeg(image: &RgbImage, quality: u8) -> Result<RgbImage> {
    let mut bytes = Vec::new();
    let dynamic = image::DynamicImage::ImageRgb8(image.clone());
    crate::imageio::encode_jpeg(&dynamic, quality, &mut bytes)
        .map_err(|e| Error::invalid("image", format!("jpeg_compression could not encode: {e}")))?;
    crate::imageio::decode_jpeg_rgb(&bytes)
        .map_err(|e| Error::invalid("image", format!("jpeg_compression could not decode: {e}")))
}

/// Pillow's box-filter coefficients (8-bit fixed point, 22 fraction bits) from `input` to
/// `output` samples: for each output, (first input, weights).
fn box_coefficients(input: usize, output: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    (0..output)
        .map(|xx| {
            let centre = (xx as f64 + 0.5) * scale;
            let xmin = ((centre - support + 0.5) as isize).max(0) as usize;
            let xmax = ((centre + support + 0.5) as isize).min(input as isize) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = (x as f64 - centre + 0.5) / filterscale;
                    if t > -0.5 && t <= 0.5 { 1.0 } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let k = if total != 0.0 { w / total } else { 0.0 };
                    (k * f64::from(1u32 << 22) + 0.5).floor() as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(sum: i64) -> u8 {
    (sum >> 22).clamp(0, 255) as u8
}

/// Pillow's `resize(..., Image.BOX)` of 8-bit RGB: horizontal pass, then vertical.
fn box_resize(image: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.as_raw();
    let horizontal = if out_w != w {
        let coeffs = box_coefficients(w, out_w);
        let mut tmp = vec![0u8; out_w * h * 3];
        for y in 0..h {
            for (x, (xmin, k)) in coeffs.iter().enumerate() {
                for c in 0..3 {
                    let mut sum: i64 = 1 << 21;
                    for (i, &kk) in k.iter().enumerate() {
                        sum += i64::from(src[(y * w + xmin + i) * 3 + c]) * i64::from(kk);
                    }
                    tmp[(y * out_w + x) * 3 + c] = clip8(sum);
                }
            }
        }
        tmp
    } else {
        src.to_vec()
    };
    let vertical = if out_h != h {
        let coeffs = box_coefficients(h, out_h);
        let mut tmp = vec![0u8; out_w * out_h * 3];
        for (y, (ymin, k)) in coeffs.iter().enumerate() {
            for x in 0..out_w * 3 {
                let mut sum: i64 = 1 << 21;
                for (i, &kk) in k.iter().enumerate() {
                    sum += i64::from(horizontal[(ymin + i) * out_w * 3 + x]) * i64::from(kk);
                }
                tmp[y * out_w * 3 + x] = clip8(sum);
            }
        }
        tmp
    } else {
        horizontal
    };
    RgbImage::from_raw(out_w as u32, out_h as u32, vertical).unwrap_or_else(|| image.clone())
}

/// Pillow's nearest-neighbour source index for each of `output` samples from `input`.
fn nearest_index(input: usize, output: usize) -> Vec<usize> {
    let scale = input as f64 / output as f64;
    let mut position = scale * 0.5;
    (0..output)
        .map(|_| {
            let i = (position.max(0.0) as usize).min(input - 1);
            position += scale;
            i
        })
        .collect()
}

/// Pixelation: box-downscaled by `factor`, scaled back up by nearest neighbour.
pub(super) fn pixelate(image: &RgbImage, factor: f64) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let small_w = ((w as f64 * factor) as usize).max(1);
    let small_h = ((h as f64 * factor) as usize).max(1);
    let small = box_resize(image, small_w, small_h);
    let xs = nearest_index(small_w, w);
    let ys = nearest_index(small_h, h);
    let mut bytes = vec![0u8; w * h * 3];
    let small = small.as_raw();
    let mut previous: Option<usize> = None;
    for (y, &sy) in ys.iter().enumerate() {
        if previous == Some(sy) {
            bytes.copy_within((y - 1) * w * 3..y * w * 3, y * w * 3);
            continue;
        }
        let src = &small[sy * small_w * 3..(sy + 1) * small_w * 3];
        for (px, &sx) in bytes[y * w * 3..(y + 1) * w * 3]
            .chunks_exact_mut(3)
            .zip(&xs)
        {
            px.copy_from_slice(&src[sx * 3..sx * 3 + 3]);
        }
        previous = Some(sy);
    }
    RgbImage::from_raw(w as u32, h as u32, bytes).unwrap_or_else(|| image.clone())
}

/// Elastic transform parameters of one severity.
#[derive(Debug, Clone, Copy)]
pub(super) enum ElasticParams {
    /// ImageNet: displacement fields of uniform noise in ±`0.005 * height`, Gaussian-smoothed
    /// with sigma 1% of each side, scaled by `alpha`.
    Imagenet { alpha: f64 },
    /// CIFAR-10: a random affine move of three points by up to `affine` pixels, then fields of
    /// uniform noise in ±1 smoothed by `sigma` and scaled by `alpha` (pixels at 32 px, scaled
    /// with the image's shorter side).
    Cifar { alpha: f64, sigma: f64, affine: f64 },
}

/// Samples `image` (planes in [0, 1]) at `(y + dy, x + dx)` bilinearly, mirrored edges.
fn warp(image: &Planes, dy: &[f32], dx: &[f32]) -> Planes {
    let (w, h, c) = (image.width, image.height, image.channels);
    let mut out = Planes::zeros(w, h, c);
    for (i, px) in out.data.chunks_exact_mut(c).enumerate() {
        let sy = (i / w) as f32 + dy[i];
        let sx = (i % w) as f32 + dx[i];
        bilinear(image, f64::from(sy), f64::from(sx), Border::Reflect, px);
    }
    out
}

/// Writes the bilinear sample of `image` at (`sy`, `sx`) into `px` (one value per channel),
/// reading outside the image through `border`.
fn bilinear(image: &Planes, sy: f64, sx: f64, border: Border, px: &mut [f32]) {
    let (w, h, c) = (image.width, image.height, image.channels);
    let (y0, x0) = (sy.floor(), sx.floor());
    let (fy, fx) = ((sy - y0) as f32, (sx - x0) as f32);
    let ya = border_index(y0 as isize, h, border);
    let yb = border_index(y0 as isize + 1, h, border);
    let xa = border_index(x0 as isize, w, border);
    let xb = border_index(x0 as isize + 1, w, border);
    for (ch, v) in px.iter_mut().enumerate() {
        let at = |yy: usize, xx: usize| image.data[(yy * w + xx) * c + ch];
        let top = at(ya, xa) + fx * (at(ya, xb) - at(ya, xa));
        let bottom = at(yb, xa) + fx * (at(yb, xb) - at(yb, xa));
        *v = top + fy * (bottom - top);
    }
}

/// A smoothed uniform displacement field: `U(-limit, limit)` blurred by (`sigma_y`, `sigma_x`)
/// (mirrored edges, truncated at 3 sigma), times `alpha`.
fn displacement<R: Rng + ?Sized>(
    w: usize,
    h: usize,
    limit: f64,
    sigma_y: f64,
    sigma_x: f64,
    alpha: f64,
    rng: &mut R,
) -> Vec<f32> {
    let noise = Planes {
        width: w,
        height: h,
        channels: 1,
        data: (0..w * h)
            .map(|_| {
                if limit > 0.0 {
                    rng.random_range(-limit..limit) as f32
                } else {
                    0.0
                }
            })
            .collect(),
    };
    let smooth = gaussian(&noise, sigma_y, sigma_x, 3.0, Border::Reflect);
    smooth.data.iter().map(|v| v * alpha as f32).collect()
}

/// Elastic transform.
pub(super) fn elastic<R: Rng + ?Sized>(
    image: &RgbImage,
    params: ElasticParams,
    rng: &mut R,
) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut x = Planes::from_rgb(image, 1.0 / 255.0);
    let (dx, dy) = match params {
        ElasticParams::Imagenet { alpha } => {
            let limit = h as f64 * 0.005;
            let dx = displacement(w, h, limit, h as f64 * 0.01, w as f64 * 0.01, alpha, rng);
            let dy = displacement(w, h, limit, h as f64 * 0.01, w as f64 * 0.01, alpha, rng);
            (dx, dy)
        }
        ElasticParams::Cifar {
            alpha,
            sigma,
            affine,
        } => {
            let size = w.min(h) as f64 / 32.0;
            x = random_affine(&x, affine * size, rng);
            let dx = displacement(w, h, 1.0, sigma * size, sigma * size, alpha * size, rng);
            let dy = displacement(w, h, 1.0, sigma * size, sigma * size, alpha * size, rng);
            (dx, dy)
        }
    };
    unit_to_rgb(&warp(&x, &dy, &dx))
}

/// The CIFAR-10-C affine step: three points around the centre each moved by `U(-d, d)`, the
/// image warped by the affine map between them (bilinear, mirrored edges without repeat).
fn random_affine<R: Rng + ?Sized>(x: &Planes, d: f64, rng: &mut R) -> Planes {
    let (w, h) = (x.width as f64, x.height as f64);
    let (cy, cx) = ((h / 2.0).floor(), (w / 2.0).floor());
    let s = (w.min(h) / 3.0).floor();
    // Points as (x, y), as OpenCV takes them (the reference passes (row, column) pairs, which
    // only swaps the roles of the axes; the moves are symmetric).
    let from = [(cx + s, cy + s), (cx - s, cy + s), (cx - s, cy - s)];
    let mut to = from;
    for p in &mut to {
        if d > 0.0 {
            p.0 += rng.random_range(-d..d);
            p.1 += rng.random_range(-d..d);
        }
    }
    // The map from output to input: solve `from = A * to + t`.
    let Some(inverse) = affine_from_points(&to, &from) else {
        return x.clone();
    };
    let mut out = Planes::zeros(x.width, x.height, x.channels);
    for (i, px) in out.data.chunks_exact_mut(x.channels).enumerate() {
        let (px_x, px_y) = ((i % x.width) as f64, (i / x.width) as f64);
        let sx = inverse[0] * px_x + inverse[1] * px_y + inverse[2];
        let sy = inverse[3] * px_x + inverse[4] * px_y + inverse[5];
        bilinear(x, sy, sx, Border::Reflect101, px);
    }
    out
}

/// The affine map `[a, b, c, d, e, f]` with `q = (a px + b py + c, d px + e py + f)` taking the
/// three points `p` to `q`; `None` when they are collinear.
fn affine_from_points(p: &[(f64, f64); 3], q: &[(f64, f64); 3]) -> Option<[f64; 6]> {
    let det = p[0].0 * (p[1].1 - p[2].1) - p[0].1 * (p[1].0 - p[2].0)
        + (p[1].0 * p[2].1 - p[2].0 * p[1].1);
    if det.abs() < 1e-12 {
        return None;
    }
    let solve = |v: [f64; 3]| -> [f64; 3] {
        // Cramer's rule on [[x0 y0 1] [x1 y1 1] [x2 y2 1]] * [a b c]^T = v.
        let m = |r: usize| [p[r].0, p[r].1, 1.0];
        let det3 = |a: [f64; 3], b: [f64; 3], c: [f64; 3]| {
            a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                + a[2] * (b[0] * c[1] - b[1] * c[0])
        };
        let rows = [m(0), m(1), m(2)];
        let d = det3(rows[0], rows[1], rows[2]);
        let col = |k: usize| {
            let mut r = rows;
            for (i, row) in r.iter_mut().enumerate() {
                row[k] = v[i];
            }
            det3(r[0], r[1], r[2]) / d
        };
        [col(0), col(1), col(2)]
    };
    let xs = solve([q[0].0, q[1].0, q[2].0]);
    let ys = solve([q[0].1, q[1].1, q[2].1]);
    Some([xs[0], xs[1], xs[2], ys[0], ys[1], ys[2]])
}
