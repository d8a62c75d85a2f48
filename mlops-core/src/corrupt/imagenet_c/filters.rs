//! Float image planes and the filters the corruptions share: Gaussian and box filters,
//! order-1 zoom, motion blur, correlation with a small kernel.

/// An interleaved float image: `height` rows of `width * channels` values.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Planes {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Planes {
    /// A zero image.
    pub fn zeros(width: usize, height: usize, channels: usize) -> Self {
        Planes {
            width,
            height,
            channels,
            data: vec![0.0; width * height * channels],
        }
    }

    /// 8-bit RGB scaled by `scale` (1/255 for [0, 1], 1 for [0, 255]).
    pub fn from_rgb(image: &image::RgbImage, scale: f32) -> Self {
        Planes {
            width: image.width() as usize,
            height: image.height() as usize,
            channels: 3,
            data: image
                .as_raw()
                .iter()
                .map(|&v| f32::from(v) * scale)
                .collect(),
        }
    }

    /// A one-channel plane of `N(mean, std)` draws, row by row.
    pub fn normal_noise<R: rand::Rng + ?Sized>(
        width: usize,
        height: usize,
        mean: f64,
        std: f64,
        rng: &mut R,
    ) -> Self {
        use rand_distr::Distribution;
        let data = (0..width * height)
            .map(|_| {
                let z: f64 = rand_distr::StandardNormal.sample(rng);
                (mean + std * z) as f32
            })
            .collect();
        Planes {
            width,
            height,
            channels: 1,
            data,
        }
    }

    /// Values per row.
    pub fn stride(&self) -> usize {
        self.width * self.channels
    }

    /// Row `y`.
    pub fn row(&self, y: usize) -> &[f32] {
        let s = self.stride();
        &self.data[y * s..(y + 1) * s]
    }
}

/// How a filter reads outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Border {
    /// The edge value repeated (`aaa|abcd|ddd`; SciPy `nearest`, OpenCV `REPLICATE`).
    Nearest,
    /// Mirrored with the edge repeated (`cba|abcd|dcb`; SciPy `reflect`).
    Reflect,
    /// Mirrored about the edge (`dcb|abcd|cba`; OpenCV's default `REFLECT_101`).
    Reflect101,
}

/// The index read for `i` on an axis of `n` samples.
pub(super) fn border_index(i: isize, n: usize, border: Border) -> usize {
    let n = n as isize;
    if (0..n).contains(&i) {
        return i as usize;
    }
    if n == 1 {
        return 0;
    }
    let folded = match border {
        Border::Nearest => i.clamp(0, n - 1),
        Border::Reflect => {
            let period = 2 * n;
            let m = i.rem_euclid(period);
            if m < n { m } else { period - 1 - m }
        }
        Border::Reflect101 => {
            let period = 2 * n - 2;
            let m = i.rem_euclid(period);
            if m < n { m } else { period - m }
        }
    };
    folded as usize
}

/// SciPy's Gaussian kernel: radius `int(truncate * sigma + 0.5)`, weights summing to 1.
pub(super) fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let radius = (truncate * sigma + 0.5) as isize;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / sum) as f32).collect()
}

/// Correlates every row with `kernel` (odd length, centred).
fn filter_rows(p: &Planes, kernel: &[f32], border: Border) -> Planes {
    let radius = kernel.len() / 2;
    let (w, c) = (p.width, p.channels);
    let mut out = Planes::zeros(w, p.height, c);
    let mut padded = vec![0.0f32; (w + 2 * radius) * c];
    for y in 0..p.height {
        let row = p.row(y);
        for (i, px) in padded.chunks_exact_mut(c).enumerate() {
            let x = border_index(i as isize - radius as isize, w, border);
            px.copy_from_slice(&row[x * c..(x + 1) * c]);
        }
        let dst = &mut out.data[y * w * c..(y + 1) * w * c];
        for (j, &k) in kernel.iter().enumerate() {
            let src = &padded[j * c..j * c + w * c];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += k * s;
            }
        }
    }
    out
}

/// Correlates every column with `kernel` (odd length, centred).
fn filter_columns(p: &Planes, kernel: &[f32], border: Border) -> Planes {
    let radius = kernel.len() as isize / 2;
    let mut out = Planes::zeros(p.width, p.height, p.channels);
    let s = p.stride();
    for y in 0..p.height {
        let dst = &mut out.data[y * s..(y + 1) * s];
        for (j, &k) in kernel.iter().enumerate() {
            let sy = border_index(y as isize + j as isize - radius, p.height, border);
            for (d, v) in dst.iter_mut().zip(p.row(sy)) {
                *d += k * v;
            }
        }
    }
    out
}

/// A separable filter: `kx` along rows, then `ky` along columns.
pub(super) fn separable(p: &Planes, ky: &[f32], kx: &[f32], border: Border) -> Planes {
    let rows = if kx.len() > 1 {
        filter_rows(p, kx, border)
    } else {
        p.clone()
    };
    if ky.len() > 1 {
        filter_columns(&rows, ky, border)
    } else {
        rows
    }
}

/// `skimage.filters.gaussian` over the two spatial axes (`truncate` 4 unless given).
pub(super) fn gaussian(
    p: &Planes,
    sigma_y: f64,
    sigma_x: f64,
    truncate: f64,
    border: Border,
) -> Planes {
    separable(
        p,
        &gaussian_kernel(sigma_y, truncate),
        &gaussian_kernel(sigma_x, truncate),
        border,
    )
}

/// 2-D correlation with a dense `k x k` kernel (row-major), each channel on its own (the
/// plain form [`correlate_runs`] is tested against).
#[cfg(test)]
pub(super) fn correlate(p: &Planes, kernel: &[f32], size: usize, border: Border) -> Planes {
    let radius = size / 2;
    let (w, c) = (p.width, p.channels);
    let mut out = Planes::zeros(w, p.height, c);
    // Padded rows, built once.
    let pw = (w + 2 * radius) * c;
    let mut padded = vec![0.0f32; pw * p.height];
    for y in 0..p.height {
        let row = p.row(y);
        for (i, px) in padded[y * pw..(y + 1) * pw].chunks_exact_mut(c).enumerate() {
            let x = border_index(i as isize - radius as isize, w, border);
            px.copy_from_slice(&row[x * c..(x + 1) * c]);
        }
    }
    for y in 0..p.height {
        let dst = &mut out.data[y * w * c..(y + 1) * w * c];
        for ky in 0..size {
            let sy = border_index(y as isize + ky as isize - radius as isize, p.height, border);
            let src_row = &padded[sy * pw..(sy + 1) * pw];
            for kx in 0..size {
                let k = kernel[ky * size + kx];
                if k == 0.0 {
                    continue;
                }
                let src = &src_row[kx * c..kx * c + w * c];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += k * s;
                }
            }
        }
    }
    out
}

/// 2-D correlation with a dense `k x k` kernel whose rows hold long runs of equal weights (a
/// disk): each run is read from prefix sums of the row (two reads instead of one per weight),
/// the other weights one by one. Same result as [`correlate`] up to rounding.
pub(super) fn correlate_runs(p: &Planes, kernel: &[f32], size: usize, border: Border) -> Planes {
    const MIN_RUN: usize = 4;
    let radius = size / 2;
    let (w, c) = (p.width, p.channels);
    // Per kernel row: single taps (column, weight) and runs (first column, length, weight).
    let mut singles: Vec<Vec<(usize, f32)>> = vec![Vec::new(); size];
    let mut runs: Vec<Vec<(usize, usize, f32)>> = vec![Vec::new(); size];
    for ky in 0..size {
        let row = &kernel[ky * size..(ky + 1) * size];
        let mut kx = 0;
        while kx < size {
            let mut end = kx + 1;
            while end < size && row[end] == row[kx] {
                end += 1;
            }
            if row[kx] != 0.0 {
                if end - kx >= MIN_RUN {
                    runs[ky].push((kx, end - kx, row[kx]));
                } else {
                    singles[ky].extend((kx..end).map(|i| (i, row[i])));
                }
            }
            kx = end;
        }
    }
    let pw = (w + 2 * radius) * c;
    let mut padded = vec![0.0f32; pw * p.height];
    let mut prefix = vec![0.0f32; (pw + c) * p.height];
    for y in 0..p.height {
        let row = p.row(y);
        let pad = &mut padded[y * pw..(y + 1) * pw];
        for (i, px) in pad.chunks_exact_mut(c).enumerate() {
            let x = border_index(i as isize - radius as isize, w, border);
            px.copy_from_slice(&row[x * c..(x + 1) * c]);
        }
        let pre = &mut prefix[y * (pw + c)..(y + 1) * (pw + c)];
        for i in 0..pw {
            pre[i + c] = pre[i] + pad[i];
        }
    }
    let mut out = Planes::zeros(w, p.height, c);
    let mut acc = vec![0.0f32; w * c];
    for y in 0..p.height {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for ky in 0..size {
            let sy = border_index(y as isize + ky as isize - radius as isize, p.height, border);
            let src_row = &padded[sy * pw..(sy + 1) * pw];
            for &(kx, k) in &singles[ky] {
                for (a, s) in acc.iter_mut().zip(&src_row[kx * c..kx * c + w * c]) {
                    *a += k * s;
                }
            }
            let pre = &prefix[sy * (pw + c)..(sy + 1) * (pw + c)];
            for &(kx, len, k) in &runs[ky] {
                let lo = &pre[kx * c..kx * c + w * c];
                let hi = &pre[(kx + len) * c..(kx + len) * c + w * c];
                for ((a, l), h) in acc.iter_mut().zip(lo).zip(hi) {
                    *a += k * (h - l);
                }
            }
        }
        for (d, a) in out.data[y * w * c..(y + 1) * w * c].iter_mut().zip(&acc) {
            *d = *a;
        }
    }
    out
}

/// One output sample of an order-1 resampling: `(1 - w) * in[i0] + w * in[i1]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tap {
    pub i0: usize,
    pub i1: usize,
    pub w: f32,
}

/// SciPy's order-1 zoom from `in_len` to `out_len` samples (`grid_mode=False`: the first and
/// last samples line up), for the first `keep` outputs, reading from `offset` on.
pub(super) fn zoom_taps(in_len: usize, out_len: usize, offset: usize, keep: usize) -> Vec<Tap> {
    let ratio = if out_len > 1 {
        (in_len as f64 - 1.0) / (out_len as f64 - 1.0)
    } else {
        0.0
    };
    (0..keep.min(out_len))
        .map(|o| {
            let x = o as f64 * ratio;
            let i0 = (x.floor() as usize).min(in_len - 1);
            let w = (x - i0 as f64) as f32;
            Tap {
                i0: offset + i0,
                i1: offset + (i0 + 1).min(in_len - 1),
                w,
            }
        })
        .collect()
}

/// Python's `round` (half to even) of a non-negative value.
pub(super) fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// `clipped_zoom` of the reference along one axis of `len` samples: the centre crop of
/// `ceil(len / z)` samples zoomed by `z`; returns (taps for the first `keep` outputs, output
/// length).
pub(super) fn clipped_zoom_taps(len: usize, z: f64, keep: usize) -> (Vec<Tap>, usize) {
    let crop = ((len as f64 / z).ceil() as usize).clamp(1, len);
    let top = (len - crop) / 2;
    let out_len = (round_half_even(crop as f64 * z) as usize).max(1);
    (zoom_taps(crop, out_len, top, keep), out_len)
}

/// Resamples `p` with separable taps: output `(x, y)` reads columns `tx[x]`, rows `ty[y]`.
pub(super) fn resample(p: &Planes, ty: &[Tap], tx: &[Tap]) -> Planes {
    let c = p.channels;
    let mut out = Planes::zeros(tx.len(), ty.len(), c);
    // Horizontal pass only on the rows read.
    let mut cache: Vec<Option<Vec<f32>>> = vec![None; p.height];
    let horizontal = |y: usize| -> Vec<f32> {
        let row = p.row(y);
        let mut h = vec![0.0f32; tx.len() * c];
        for (o, t) in tx.iter().enumerate() {
            for ch in 0..c {
                let a = row[t.i0 * c + ch];
                let b = row[t.i1 * c + ch];
                h[o * c + ch] = a + t.w * (b - a);
            }
        }
        h
    };
    let stride = tx.len() * c;
    for (o, t) in ty.iter().enumerate() {
        for y in [t.i0, t.i1] {
            if cache[y].is_none() {
                cache[y] = Some(horizontal(y));
            }
        }
        let (a, b) = (cache[t.i0].as_deref(), cache[t.i1].as_deref());
        let (Some(a), Some(b)) = (a, b) else { continue };
        let dst = &mut out.data[o * stride..(o + 1) * stride];
        for ((d, &va), &vb) in dst.iter_mut().zip(a).zip(b) {
            *d = (1.0 - t.w) * va + t.w * vb;
        }
    }
    out
}

/// The motion blur of the reference (`imagecorruptions`): `2 * radius + 1` copies of the image
/// shifted along `angle` degrees (edge pixels repeated), weighted by a half Gaussian of
/// `sigma`; stops at the first shift larger than the image.
pub(super) fn motion_blur(p: &Planes, radius: usize, sigma: f64, angle: f64) -> Planes {
    let width = 2 * radius + 1;
    let weights: Vec<f64> = (0..width)
        .map(|i| {
            (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()
                / ((2.0 * std::f64::consts::PI).sqrt() * sigma)
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let (sin, cos) = angle.to_radians().sin_cos();
    let point = (width as f64 * sin, width as f64 * cos);
    let hypot = point.0.hypot(point.1);
    let (w, h, c) = (p.width, p.height, p.channels);
    let mut out = Planes::zeros(w, h, c);
    for (i, weight) in weights.iter().enumerate() {
        let dy = -(((i as f64 * point.0) / hypot - 0.5).ceil() as isize);
        let dx = -(((i as f64 * point.1) / hypot - 0.5).ceil() as isize);
        if dy.unsigned_abs() >= h || dx.unsigned_abs() >= w {
            break;
        }
        let k = (weight / total) as f32;
        // Output column x reads source column clamp(x - dx).
        let first = dx.clamp(0, w as isize) as usize; // outputs before read column 0
        let last = (w as isize + dx).clamp(0, w as isize) as usize; // outputs from here read w-1
        for y in 0..h {
            let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
            let src = p.row(sy);
            let dst = &mut out.data[y * w * c..(y + 1) * w * c];
            for x in 0..first {
                for ch in 0..c {
                    dst[x * c + ch] += k * src[ch];
                }
            }
            if last > first {
                let s0 = (first as isize - dx) as usize;
                let d = &mut dst[first * c..last * c];
                let s = &src[s0 * c..(s0 + last - first) * c];
                for (a, b) in d.iter_mut().zip(s) {
                    *a += k * b;
                }
            }
            for x in last.max(first)..w {
                for ch in 0..c {
                    dst[x * c + ch] += k * src[(w - 1) * c + ch];
                }
            }
        }
    }
    out
}

/// An 8-bit value from a float in [0, 255] the way NumPy's `uint8` cast does it (truncation).
pub(super) fn truncate_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

/// An RGB image from planes in [0, 1]: `uint8(clip(x, 0, 1) * 255)`.
pub(super) fn unit_to_rgb(p: &Planes) -> image::RgbImage {
    let bytes = p
        .data
        .iter()
        .map(|&v| truncate_u8(v.clamp(0.0, 1.0) * 255.0))
        .collect();
    image::RgbImage::from_raw(p.width as u32, p.height as u32, bytes)
        .unwrap_or_else(|| image::RgbImage::new(p.width as u32, p.height as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_a_disk_give_the_plain_correlation() {
        let p = Planes {
            width: 29,
            height: 17,
            channels: 3,
            data: (0..29 * 17 * 3)
                .map(|i| ((i * 37) % 101) as f32 / 100.0)
                .collect(),
        };
        for (radius, alias) in [(3.0, 0.1), (6.0, 0.5), (10.0, 0.5)] {
            let (kernel, side) = super::super::blur::disk_kernel(radius, alias);
            let plain = correlate(&p, &kernel, side, Border::Reflect101);
            let runs = correlate_runs(&p, &kernel, side, Border::Reflect101);
            for (a, b) in plain.data.iter().zip(&runs.data) {
                assert!((a - b).abs() < 1e-5, "radius {radius}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn borders_fold_as_scipy_and_opencv_do() {
        let n = 4;
        let fold = |b| (-3..7).map(|i| border_index(i, n, b)).collect::<Vec<_>>();
        assert_eq!(fold(Border::Nearest), [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(fold(Border::Reflect), [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(fold(Border::Reflect101), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }
}
