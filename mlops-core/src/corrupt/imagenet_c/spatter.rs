//! Spatter: water drops (severities with `mud == false`) or mud (the others) from a thresholded,
//! blurred noise layer.
//!
//! The water drops follow the reference's OpenCV steps, written here: Canny edges of the
//! layer, the distance to them (5 x 5 chamfer), truncated at 20, box-blurred, equalised,
//! embossed and blurred again, then used as the drops' shading.

use image::RgbImage;
use rand::Rng;

use super::filters::{Border, Planes, border_index, gaussian};

/// Spatter parameters of one severity (the reference's tuple, in order).
#[derive(Debug, Clone, Copy)]
pub(super) struct SpatterParams {
    pub mean: f64,
    pub std: f64,
    pub sigma: f64,
    pub threshold: f64,
    pub intensity: f64,
    pub mud: bool,
}

/// Spatter drops on `image`.
pub(super) fn spatter<R: Rng + ?Sized>(
    image: &RgbImage,
    p: SpatterParams,
    rng: &mut R,
) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let noise = Planes::normal_noise(w, h, p.mean, p.std, rng);
    let mut liquid = gaussian(&noise, p.sigma, p.sigma, 4.0, Border::Nearest).data;
    let threshold = p.threshold as f32;
    for v in &mut liquid {
        if *v < threshold {
            *v = 0.0;
        }
    }
    if p.mud {
        mud(image, &liquid, threshold, p.intensity)
    } else {
        water(image, &liquid, p.intensity)
    }
}

fn water(image: &RgbImage, liquid: &[f32], intensity: f64) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    // uint8(liquid * 255), wrapping above 255 as NumPy's cast does on this platform.
    let bytes: Vec<u8> = liquid
        .iter()
        .map(|&v| ((v * 255.0) as i64).rem_euclid(256) as u8)
        .collect();
    let edges = canny(&bytes, w, h, 50, 150);
    let mut dist = distance_to_edges(&edges, w, h);
    for d in &mut dist {
        *d = d.min(20.0);
    }
    let blurred = box3_f32(&dist, w, h);
    let dist8: Vec<u8> = blurred.iter().map(|&v| v.clamp(0.0, 255.0) as u8).collect();
    let equalised = equalize_hist(&dist8);
    let embossed = emboss(&equalised, w, h);
    let shade = box3_u8(&embossed, w, h);
    let mut m: Vec<f64> = liquid
        .iter()
        .zip(&shade)
        .map(|(&l, &s)| f64::from(l) * f64::from(s))
        .collect();
    let max = m.iter().copied().fold(0.0f64, f64::max);
    for v in &mut m {
        *v = if max > 0.0 { *v / max } else { 0.0 } * intensity;
    }
    // Pale turquoise.
    let colour = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
    let mut out = image.clone();
    for (px, &mv) in out.as_mut().chunks_exact_mut(3).zip(&m) {
        for (v, c) in px.iter_mut().zip(colour) {
            let x = f64::from(f32::from(*v) / 255.0);
            *v = ((x + mv * c).clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    out
}

fn mud(image: &RgbImage, liquid: &[f32], threshold: f32, intensity: f64) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mask = Planes {
        width: w,
        height: h,
        channels: 1,
        data: liquid
            .iter()
            .map(|&v| if v > threshold { 1.0 } else { 0.0 })
            .collect(),
    };
    let mut m = gaussian(&mask, intensity, intensity, 4.0, Border::Nearest).data;
    for v in &mut m {
        if *v < 0.8 {
            *v = 0.0;
        }
    }
    // Mud brown.
    let colour = [63.0f32 / 255.0, 42.0 / 255.0, 20.0 / 255.0];
    let mut out = image.clone();
    for (px, &mv) in out.as_mut().chunks_exact_mut(3).zip(&m) {
        for (v, c) in px.iter_mut().zip(colour) {
            let x = f32::from(*v) / 255.0;
            *v = ((x * (1.0 - mv) + c * mv).clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    out
}

/// Canny edges (255) of an 8-bit image: 3 x 3 Sobel (edges repeated), L1 magnitude, thinning
/// along the gradient's direction, hysteresis between `low` and `high`, 8-connected.
pub(super) fn canny(image: &[u8], w: usize, h: usize, low: i32, high: i32) -> Vec<u8> {
    let px = |y: isize, x: isize| -> i32 {
        i32::from(
            image[border_index(y, h, Border::Nearest) * w + border_index(x, w, Border::Nearest)],
        )
    };
    let mut gx = vec![0i32; w * h];
    let mut gy = vec![0i32; w * h];
    let mut mag = vec![0i32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let dx = (px(y - 1, x + 1) + 2 * px(y, x + 1) + px(y + 1, x + 1))
                - (px(y - 1, x - 1) + 2 * px(y, x - 1) + px(y + 1, x - 1));
            let dy = (px(y + 1, x - 1) + 2 * px(y + 1, x) + px(y + 1, x + 1))
                - (px(y - 1, x - 1) + 2 * px(y - 1, x) + px(y - 1, x + 1));
            let i = y as usize * w + x as usize;
            gx[i] = dx;
            gy[i] = dy;
            mag[i] = dx.abs() + dy.abs();
        }
    }
    let m = |y: isize, x: isize| -> i32 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    // 0: not an edge, 1: candidate, 2: strong.
    let mut state = vec![0u8; w * h];
    let mut stack = Vec::new();
    const TAN_22_5: f64 = 0.414_213_562_373_095_05;
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            let v = mag[i];
            if v <= low {
                continue;
            }
            let (ax, ay) = (f64::from(gx[i].abs()), f64::from(gy[i].abs()));
            let keep = if ay < ax * TAN_22_5 {
                v > m(y, x - 1) && v >= m(y, x + 1)
            } else if ay > ax * (TAN_22_5 + 2.0) {
                v > m(y - 1, x) && v >= m(y + 1, x)
            } else {
                let s: isize = if (gx[i] ^ gy[i]) < 0 { -1 } else { 1 };
                v > m(y - 1, x - s) && v > m(y + 1, x + s)
            };
            if !keep {
                continue;
            }
            if v > high {
                state[i] = 2;
                stack.push(i);
            } else {
                state[i] = 1;
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (ny, nx) = (y + dy, x + dx);
                if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if state[j] == 1 {
                    state[j] = 2;
                    stack.push(j);
                }
            }
        }
    }
    state
        .iter()
        .map(|&s| if s == 2 { 255 } else { 0 })
        .collect()
}

/// Distance from each pixel to the nearest edge pixel (OpenCV's 5 x 5 chamfer: 1, 1.4,
/// 2.1969); edge pixels are 0. Without edges every distance is large.
fn distance_to_edges(edges: &[u8], w: usize, h: usize) -> Vec<f32> {
    const FAR: f32 = 1.0e6;
    let mut d: Vec<f32> = edges
        .iter()
        .map(|&e| if e == 255 { 0.0 } else { FAR })
        .collect();
    let (a, b, c) = (1.0f32, 1.4f32, 2.1969f32);
    let forward: [(isize, isize, f32); 8] = [
        (-2, -1, c),
        (-2, 1, c),
        (-1, -2, c),
        (-1, -1, b),
        (-1, 0, a),
        (-1, 1, b),
        (-1, 2, c),
        (0, -1, a),
    ];
    let get = |d: &Vec<f32>, y: isize, x: isize| -> f32 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            FAR
        } else {
            d[y as usize * w + x as usize]
        }
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut best = d[y as usize * w + x as usize];
            for &(dy, dx, cost) in &forward {
                best = best.min(get(&d, y + dy, x + dx) + cost);
            }
            d[y as usize * w + x as usize] = best;
        }
    }
    for y in (0..h as isize).rev() {
        for x in (0..w as isize).rev() {
            let mut best = d[y as usize * w + x as usize];
            for &(dy, dx, cost) in &forward {
                best = best.min(get(&d, y - dy, x - dx) + cost);
            }
            d[y as usize * w + x as usize] = best;
        }
    }
    d
}

fn box3_f32(v: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let yy = border_index(y as isize + dy, h, Border::Reflect101);
                    let xx = border_index(x as isize + dx, w, Border::Reflect101);
                    sum += v[yy * w + xx];
                }
            }
            out[y * w + x] = sum / 9.0;
        }
    }
    out
}

fn box3_u8(v: &[u8], w: usize, h: usize) -> Vec<f32> {
    let as_f32: Vec<f32> = v.iter().map(|&b| f32::from(b)).collect();
    box3_f32(&as_f32, w, h)
        .iter()
        .map(|&s| s.round_ties_even().clamp(0.0, 255.0))
        .collect()
}

/// OpenCV's histogram equalisation of an 8-bit image.
fn equalize_hist(v: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    for &b in v {
        hist[usize::from(b)] += 1;
    }
    let total = v.len();
    let Some(first) = hist.iter().position(|&n| n > 0) else {
        return v.to_vec();
    };
    if hist[first] == total {
        return vec![first as u8; total];
    }
    let scale = 255.0 / (total - hist[first]) as f32;
    let mut lut = [0u8; 256];
    let mut sum = 0usize;
    for j in first + 1..256 {
        sum += hist[j];
        lut[j] = (sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    v.iter().map(|&b| lut[usize::from(b)]).collect()
}

/// The reference's emboss kernel `[[-2,-1,0],[-1,1,1],[0,1,2]]`, saturated to 8 bits.
fn emboss(v: &[u8], w: usize, h: usize) -> Vec<u8> {
    const K: [[i32; 3]; 3] = [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]];
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0i32;
            for (ky, row) in K.iter().enumerate() {
                for (kx, &k) in row.iter().enumerate() {
                    let yy = border_index(y as isize + ky as isize - 1, h, Border::Reflect101);
                    let xx = border_index(x as isize + kx as isize - 1, w, Border::Reflect101);
                    sum += k * i32::from(v[yy * w + xx]);
                }
            }
            out[y * w + x] = sum.clamp(0, 255) as u8;
        }
    }
    out
}
