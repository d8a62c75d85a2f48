//! Weather: fog (a plasma fractal), snow (zoomed, thresholded, motion-blurred noise) and
//! brightened greys.

use image::RgbImage;
use rand::Rng;

use super::filters::{Planes, clipped_zoom_taps, motion_blur, resample, round_half_even};

/// A square height map of side `size` (a power of two) in [0, 1] by the diamond-square
/// algorithm with wrap-around neighbours, as the reference draws it: each new point is the
/// mean of its four neighbours plus `wibble * U(-wibble, wibble)`, `wibble` starting at 100 and
/// divided by `decay` at each halving of the step.
pub(super) fn plasma_fractal<R: Rng + ?Sized>(size: usize, decay: f64, rng: &mut R) -> Vec<f64> {
    let mut map = vec![0.0f64; size * size];
    let mut step = size;
    let mut wibble = 100.0f64;
    let at = |y: usize, x: usize| y * size + x;
    while step >= 2 {
        let n = size / step;
        let half = step / 2;
        let noise = |rng: &mut R| wibble * rng.random_range(-wibble..=wibble);
        // Squares: the centre of each square of corners.
        for i in 0..n {
            for j in 0..n {
                let (i1, j1) = ((i + 1) % n, (j + 1) % n);
                let sum = map[at(i * step, j * step)]
                    + map[at(i1 * step, j * step)]
                    + map[at(i * step, j1 * step)]
                    + map[at(i1 * step, j1 * step)];
                map[at(i * step + half, j * step + half)] = sum / 4.0 + noise(rng);
            }
        }
        // Diamonds: the points between two corners, from two centres and two corners.
        for i in 0..n {
            for j in 0..n {
                let ip = (i + n - 1) % n;
                let j1 = (j + 1) % n;
                let centre = |a: usize, b: usize| map[at(a * step + half, b * step + half)];
                let corner = |a: usize, b: usize| map[at(a * step, b * step)];
                let top = centre(i, j) + centre(ip, j) + corner(i, j) + corner(i, j1);
                map[at(i * step, j * step + half)] = top / 4.0 + noise(rng);
            }
        }
        for i in 0..n {
            for j in 0..n {
                let jp = (j + n - 1) % n;
                let i1 = (i + 1) % n;
                let centre = |a: usize, b: usize| map[at(a * step + half, b * step + half)];
                let corner = |a: usize, b: usize| map[at(a * step, b * step)];
                let left = centre(i, j) + centre(i, jp) + corner(i, j) + corner(i1, j);
                map[at(i * step + half, j * step)] = left / 4.0 + noise(rng);
            }
        }
        step /= 2;
        wibble /= decay;
    }
    let min = map.iter().copied().fold(f64::INFINITY, f64::min);
    for v in &mut map {
        *v -= min;
    }
    let max = map.iter().copied().fold(0.0f64, f64::max);
    if max > 0.0 {
        for v in &mut map {
            *v /= max;
        }
    }
    map
}

/// Fog: a plasma fractal of strength `strength` added to every channel, rescaled by the
/// image's maximum.
pub(super) fn fog<R: Rng + ?Sized>(
    image: &RgbImage,
    strength: f64,
    decay: f64,
    rng: &mut R,
) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let size = w.max(h).max(3).next_power_of_two();
    let map = plasma_fractal(size, decay, rng);
    let max_val = f64::from(image.as_raw().iter().copied().max().unwrap_or(0)) / 255.0;
    let scale = max_val / (max_val + strength);
    let mut out = image.clone();
    for (i, px) in out.as_mut().chunks_exact_mut(3).enumerate() {
        let add = strength * map[(i / w) * size + i % w];
        for v in px {
            let x = f64::from(*v) / 255.0 + add;
            *v = ((x * scale).clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    out
}

/// Snow parameters of one severity (the reference's tuple, in order).
#[derive(Debug, Clone, Copy)]
pub(super) struct SnowParams {
    pub mean: f64,
    pub std: f64,
    pub zoom: f64,
    pub threshold: f64,
    pub radius: usize,
    pub sigma: f64,
    pub keep: f64,
}

/// Snow: flakes (Gaussian noise zoomed, thresholded and motion-blurred at a steep angle, added
/// twice, the second time turned by 180 degrees) over a brightened image.
pub(super) fn snow<R: Rng + ?Sized>(image: &RgbImage, p: SnowParams, rng: &mut R) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let noise = Planes::normal_noise(w, h, p.mean, p.std, rng);
    let (ty, oh) = clipped_zoom_taps(h, p.zoom, usize::MAX);
    let (tx, ow) = clipped_zoom_taps(w, p.zoom, usize::MAX);
    let mut layer = resample(&noise, &ty, &tx);
    debug_assert_eq!((layer.width, layer.height), (ow, oh));
    for v in &mut layer.data {
        *v = if f64::from(*v) < p.threshold {
            0.0
        } else {
            v.clamp(0.0, 1.0)
        };
    }
    let angle = rng.random_range(-135.0..-45.0);
    let blurred = motion_blur(&layer, p.radius, p.sigma, angle);
    // Rounded to 8 bits and cropped to the image.
    let flake = |y: usize, x: usize| -> f32 {
        if y < blurred.height && x < blurred.width {
            (round_half_even(f64::from(blurred.data[y * blurred.width + x]) * 255.0) as f32)
                .clamp(0.0, 255.0)
                / 255.0
        } else {
            0.0
        }
    };
    let keep = p.keep as f32;
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            let snow = flake(y, x) + flake(h - 1 - y, w - 1 - x);
            let px = out.get_pixel_mut(x as u32, y as u32);
            let [r, g, b] = px.0.map(|v| f32::from(v) / 255.0);
            let grey = (0.299 * r + 0.587 * g + 0.114 * b) * 1.5 + 0.5;
            for v in px.0.iter_mut() {
                let c = f32::from(*v) / 255.0;
                let lit = keep * c + (1.0 - keep) * c.max(grey);
                *v = ((lit + snow).clamp(0.0, 1.0) * 255.0) as u8;
            }
        }
    }
    out
}
