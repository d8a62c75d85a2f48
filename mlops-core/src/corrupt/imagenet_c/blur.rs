//! Blurs: defocus (a disk), glass (blur, local pixel moves, blur), motion, zoom, Gaussian.

use image::RgbImage;
use rand::Rng;

use super::filters::{
    Border, Planes, clipped_zoom_taps, correlate_runs, gaussian as gaussian_filter, motion_blur,
    resample, truncate_u8, unit_to_rgb,
};

/// The reference's defocus kernel: a disk of `radius` on a grid of at least 17 x 17, anti-
/// aliased by a Gaussian of `alias_blur` (3 x 3, or 5 x 5 beyond radius 8), as OpenCV blurs it
/// (mirrored edges). Returns (weights row-major, side).
pub(super) fn disk_kernel(radius: f64, alias_blur: f64) -> (Vec<f32>, usize) {
    let (half, ksize) = if radius <= 8.0 {
        (8isize, 3usize)
    } else {
        (radius as isize, 5usize)
    };
    let side = (2 * half + 1) as usize;
    let mut disk = vec![0.0f32; side * side];
    for (i, y) in (-half..=half).enumerate() {
        for (j, x) in (-half..=half).enumerate() {
            if ((x * x + y * y) as f64) <= radius * radius {
                disk[i * side + j] = 1.0;
            }
        }
    }
    let total: f32 = disk.iter().sum();
    for v in &mut disk {
        *v /= total;
    }
    // OpenCV's Gaussian kernel for a given size and sigma.
    let centre = (ksize as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..ksize)
        .map(|i| (-((i as f64 - centre).powi(2)) / (2.0 * alias_blur * alias_blur)).exp())
        .collect();
    let sum: f64 = g.iter().sum();
    let g: Vec<f32> = g.iter().map(|v| (v / sum) as f32).collect();
    let planes = Planes {
        width: side,
        height: side,
        channels: 1,
        data: disk,
    };
    let blurred = super::filters::separable(&planes, &g, &g, Border::Reflect101);
    crop_zero_border(blurred.data, side)
}

/// A kernel with its all-but-zero outer rings (weights below 1e-12 of the total) removed.
fn crop_zero_border(data: Vec<f32>, side: usize) -> (Vec<f32>, usize) {
    let mut ring = 0;
    while ring < side / 2 {
        let negligible = (0..side).all(|i| {
            let e = [
                data[ring * side + i],
                data[(side - 1 - ring) * side + i],
                data[i * side + ring],
                data[i * side + side - 1 - ring],
            ];
            e.iter().all(|v| v.abs() < 1e-12)
        });
        if !negligible {
            break;
        }
        ring += 1;
    }
    let new_side = side - 2 * ring;
    let mut out = Vec::with_capacity(new_side * new_side);
    for y in ring..side - ring {
        out.extend_from_slice(&data[y * side + ring..y * side + side - ring]);
    }
    (out, new_side)
}

/// Defocus: the image correlated with [`disk_kernel`] (mirrored edges).
pub(super) fn defocus(image: &RgbImage, radius: f64, alias_blur: f64) -> RgbImage {
    let (kernel, side) = disk_kernel(radius, alias_blur);
    let x = Planes::from_rgb(image, 1.0 / 255.0);
    unit_to_rgb(&correlate_runs(&x, &kernel, side, Border::Reflect101))
}

/// Gaussian blur of `sigma` (edges repeated).
pub(super) fn gaussian(image: &RgbImage, sigma: f64) -> RgbImage {
    let x = Planes::from_rgb(image, 1.0 / 255.0);
    unit_to_rgb(&gaussian_filter(&x, sigma, sigma, 4.0, Border::Nearest))
}

/// Glass: blur, `iterations` sweeps that each set every inner pixel (bottom-right to top-left)
/// to a random neighbour within `delta`, blur again.
///
/// The reference's "swap" assigns through NumPy views, so the second half of the swap writes
/// the value just copied: each step copies the neighbour onto the pixel. We do the same.
pub(super) fn glass<R: Rng + ?Sized>(
    image: &RgbImage,
    sigma: f64,
    delta: usize,
    iterations: usize,
    rng: &mut R,
) -> RgbImage {
    let x = Planes::from_rgb(image, 1.0 / 255.0);
    let blurred = gaussian_filter(&x, sigma, sigma, 4.0, Border::Nearest);
    let mut bytes: Vec<u8> = blurred
        .data
        .iter()
        .map(|&v| truncate_u8(v * 255.0))
        .collect();
    let (w, h) = (x.width, x.height);
    let d = delta as isize;
    for _ in 0..iterations {
        let mut row = h as isize - d;
        while row > d {
            let mut col = w as isize - d;
            while col > d {
                let dx = rng.random_range(-d as i64..d as i64) as isize;
                let dy = rng.random_range(-d as i64..d as i64) as isize;
                let src = (((row + dy) as usize) * w + (col + dx) as usize) * 3;
                let dst = ((row as usize) * w + col as usize) * 3;
                bytes.copy_within(src..src + 3, dst);
                col -= 1;
            }
            row -= 1;
        }
    }
    let moved = Planes {
        width: w,
        height: h,
        channels: 3,
        data: bytes.iter().map(|&v| f32::from(v) / 255.0).collect(),
    };
    unit_to_rgb(&gaussian_filter(&moved, sigma, sigma, 4.0, Border::Nearest))
}

/// Motion blur along a random angle in [-45, 45) degrees.
pub(super) fn motion<R: Rng + ?Sized>(
    image: &RgbImage,
    radius: usize,
    sigma: f64,
    rng: &mut R,
) -> RgbImage {
    let angle = rng.random_range(-45.0..45.0);
    let x = Planes::from_rgb(image, 1.0);
    let blurred = motion_blur(&x, radius, sigma, angle);
    let bytes = blurred.data.iter().map(|&v| truncate_u8(v)).collect();
    RgbImage::from_raw(image.width(), image.height(), bytes).unwrap_or_else(|| image.clone())
}

/// NumPy's `arange(start, stop, step)`.
pub(super) fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * step).collect()
}

/// Zoom blur: the mean of the image and its centre zooms by each factor.
pub(super) fn zoom(image: &RgbImage, factors: &[f64]) -> RgbImage {
    let x = Planes::from_rgb(image, 1.0 / 255.0);
    let (w, h) = (x.width, x.height);
    let mut acc = x.data.clone();
    for &z in factors {
        let (ty, _) = clipped_zoom_taps(h, z, h);
        let (tx, _) = clipped_zoom_taps(w, z, w);
        let layer = resample(&x, &ty, &tx);
        // A layer smaller than the image (it cannot be for z >= 1) adds to its top-left.
        let lw = layer.width * 3;
        for yy in 0..layer.height {
            let dst = &mut acc[yy * w * 3..yy * w * 3 + lw];
            for (d, s) in dst.iter_mut().zip(layer.row(yy)) {
                *d += s;
            }
        }
    }
    let n = (factors.len() + 1) as f32;
    for v in &mut acc {
        *v /= n;
    }
    unit_to_rgb(&Planes {
        width: w,
        height: h,
        channels: 3,
        data: acc,
    })
}
