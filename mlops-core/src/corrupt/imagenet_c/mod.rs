//! ImageNet-C's corruptions (Hendrycks & Dietterich, ICLR 2019): 15 common corruptions and 4
//! held-out ones, each at severities 1-5, with the parameter tables of `imagecorruptions`
//! 1.1.2 (the package the field imports) or of CIFAR-10-C.
//!
//! Written from the published method; `imagecorruptions` is the oracle of the tests
//! (`mlops-py/tests/test_imagenet_c.py`), which also state where and why we differ. Every
//! random choice comes from the caller's generator, so the same seed gives the same bytes.
//!
//! ```
//! use mlops_core::corrupt::{ImagenetC, ImagenetCKind};
//! use rand::SeedableRng;
//!
//! let image = image::DynamicImage::new_rgb8(64, 48);
//! let fog = ImagenetC::new(ImagenetCKind::Fog, 3).unwrap();
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let out = fog.apply(&image, &mut rng).unwrap();
//! assert_eq!((out.width(), out.height()), (64, 48));
//! ```

mod blur;
mod digital;
mod filters;
mod frost;
mod noise;
mod spatter;
mod tables;
mod weather;

use image::{DynamicImage, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use frost::{FROST_TEXTURES_ENV, FROST_WHEEL, FrostTextures, set_frost_textures};

use crate::error::{Error, Result};

/// The 19 corruptions, in ImageNet-C's order (the 15 common ones, then the 4 held out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImagenetCKind {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Poisson (photon) noise.
    ShotNoise,
    /// Salt and pepper.
    ImpulseNoise,
    /// A disk blur (out of focus).
    DefocusBlur,
    /// Blur, local pixel moves, blur (frosted glass).
    GlassBlur,
    /// A blur along a random direction.
    MotionBlur,
    /// The mean of zooms towards the centre.
    ZoomBlur,
    /// Falling snow over a brightened image.
    Snow,
    /// Frost photographs blended over the image.
    Frost,
    /// A plasma fractal haze.
    Fog,
    /// Brighter (HSV value).
    Brightness,
    /// Less contrast.
    Contrast,
    /// Smooth random local displacement.
    ElasticTransform,
    /// Box-downscaled and scaled back up.
    Pixelate,
    /// JPEG at a low quality.
    JpegCompression,
    /// Multiplicative Gaussian noise (held out).
    SpeckleNoise,
    /// Gaussian blur (held out).
    GaussianBlur,
    /// Water or mud drops (held out).
    Spatter,
    /// More or less saturation (held out).
    Saturate,
}

crate::names::named_enum!(ImagenetCKind, "type", {
    GaussianNoise => "gaussian_noise",
    ShotNoise => "shot_noise",
    ImpulseNoise => "impulse_noise",
    DefocusBlur => "defocus_blur",
    GlassBlur => "glass_blur",
    MotionBlur => "motion_blur",
    ZoomBlur => "zoom_blur",
    Snow => "snow",
    Frost => "frost",
    Fog => "fog",
    Brightness => "brightness",
    Contrast => "contrast",
    ElasticTransform => "elastic_transform",
    Pixelate => "pixelate",
    JpegCompression => "jpeg_compression",
    SpeckleNoise => "speckle_noise",
    GaussianBlur => "gaussian_blur",
    Spatter => "spatter",
    Saturate => "saturate",
});

impl ImagenetCKind {
    /// All 19, in ImageNet-C's order.
    pub const ALL: [ImagenetCKind; 19] = [
        ImagenetCKind::GaussianNoise,
        ImagenetCKind::ShotNoise,
        ImagenetCKind::ImpulseNoise,
        ImagenetCKind::DefocusBlur,
        ImagenetCKind::GlassBlur,
        ImagenetCKind::MotionBlur,
        ImagenetCKind::ZoomBlur,
        ImagenetCKind::Snow,
        ImagenetCKind::Frost,
        ImagenetCKind::Fog,
        ImagenetCKind::Brightness,
        ImagenetCKind::Contrast,
        ImagenetCKind::ElasticTransform,
        ImagenetCKind::Pixelate,
        ImagenetCKind::JpegCompression,
        ImagenetCKind::SpeckleNoise,
        ImagenetCKind::GaussianBlur,
        ImagenetCKind::Spatter,
        ImagenetCKind::Saturate,
    ];

    /// `noise`, `blur`, `weather`, `digital` (the 15 common ones) or `held_out`.
    pub fn family(self) -> &'static str {
        use ImagenetCKind::*;
        match self {
            GaussianNoise | ShotNoise | ImpulseNoise => "noise",
            DefocusBlur | GlassBlur | MotionBlur | ZoomBlur => "blur",
            Snow | Frost | Fog | Brightness => "weather",
            Contrast | ElasticTransform | Pixelate | JpegCompression => "digital",
            SpeckleNoise | GaussianBlur | Spatter | Saturate => "held_out",
        }
    }

    /// Whether the result depends on the image alone (no random draw).
    pub fn is_deterministic(self) -> bool {
        use ImagenetCKind::*;
        matches!(
            self,
            DefocusBlur
                | ZoomBlur
                | GaussianBlur
                | Brightness
                | Contrast
                | Saturate
                | Pixelate
                | JpegCompression
        )
    }
}

/// Which parameter tables to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// ImageNet-C (224 px images and larger; the default).
    #[default]
    Imagenet,
    /// CIFAR-10-C (32 px images): milder parameters; sizes in pixels scale with the image.
    Cifar10,
}

/// One ImageNet-C corruption at one severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagenetC {
    /// Which corruption.
    pub kind: ImagenetCKind,
    /// 1 (mildest) to 5.
    pub severity: u8,
    /// Parameter tables (default ImageNet).
    #[serde(default)]
    pub preset: Preset,
}

impl ImagenetC {
    /// `kind` at `severity` (1-5) with the ImageNet tables.
    pub fn new(kind: ImagenetCKind, severity: u8) -> Result<Self> {
        let c = ImagenetC {
            kind,
            severity,
            preset: Preset::Imagenet,
        };
        c.validate()?;
        Ok(c)
    }

    /// The same corruption with `preset`'s tables.
    pub fn with_preset(self, preset: Preset) -> Self {
        ImagenetC { preset, ..self }
    }

    /// Checks the severity.
    pub fn validate(&self) -> Result<()> {
        if !(1..=5).contains(&self.severity) {
            return Err(Error::invalid(
                "severity",
                format!("{} must be 1..=5, got {}", self.kind, self.severity),
            ));
        }
        Ok(())
    }

    /// A corrupted copy of `image`, same size and colour type.
    ///
    /// The corruption works on 8-bit RGB like the reference: grey images are corrupted as
    /// three equal channels and turned grey again, alpha is kept, 16-bit and float images
    /// are corrupted at 8 bits and converted back.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        image: &DynamicImage,
        rng: &mut R,
    ) -> Result<DynamicImage> {
        self.validate()?;
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::invalid("image", "the image has no pixels"));
        }
        let rgb = match image {
            DynamicImage::ImageRgb8(rgb) => self.corrupt(rgb, rng)?,
            other => self.corrupt(&other.to_rgb8(), rng)?,
        };
        Ok(restore(image, rgb))
    }

    /// The corruption of an 8-bit RGB image.
    pub fn apply_rgb<R: Rng + ?Sized>(&self, image: &RgbImage, rng: &mut R) -> Result<RgbImage> {
        self.validate()?;
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::invalid("image", "the image has no pixels"));
        }
        self.corrupt(image, rng)
    }

    /// The corruption of a checked, non-empty image.
    fn corrupt<R: Rng + ?Sized>(&self, image: &RgbImage, rng: &mut R) -> Result<RgbImage> {
        let t = tables::tables(self.preset);
        let s = usize::from(self.severity - 1);
        use ImagenetCKind::*;
        Ok(match self.kind {
            GaussianNoise => noise::gaussian(image, t.gaussian_noise[s], rng),
            ShotNoise => noise::shot(image, t.shot_noise[s], rng),
            ImpulseNoise => noise::impulse(image, t.impulse_noise[s], rng),
            SpeckleNoise => noise::speckle(image, t.speckle_noise[s], rng),
            DefocusBlur => {
                let (radius, alias) = t.defocus_blur[s];
                blur::defocus(image, radius, alias)
            }
            GlassBlur => {
                let (sigma, delta, iterations) = t.glass_blur[s];
                blur::glass(image, sigma, delta, iterations, rng)
            }
            MotionBlur => {
                let (radius, sigma) = t.motion_blur[s];
                blur::motion(image, radius, sigma, rng)
            }
            ZoomBlur => {
                let (stop, step) = t.zoom_blur[s];
                blur::zoom(image, &blur::arange(1.0, stop, step))
            }
            GaussianBlur => blur::gaussian(image, t.gaussian_blur[s]),
            Snow => weather::snow(image, t.snow[s], rng),
            Frost => {
                let (keep, amount) = t.frost[s];
                frost::frost(image, keep, amount, t.frost_scale, rng)?
            }
            Fog => {
                let (strength, decay) = t.fog[s];
                weather::fog(image, strength, decay, rng)
            }
            Spatter => spatter::spatter(image, t.spatter[s], rng),
            Brightness => digital::brightness(image, t.brightness[s]),
            Contrast => digital::contrast(image, t.contrast[s]),
            Saturate => {
                let (scale, shift) = t.saturate[s];
                digital::saturate(image, scale, shift)
            }
            JpegCompression => digital::jpeg(image, t.jpeg_compression[s])?,
            Pixelate => digital::pixelate(image, t.pixelate[s]),
            ElasticTransform => digital::elastic(image, t.elastic_transform[s], rng),
        })
    }
}

/// `rgb` in `original`'s colour type, with `original`'s alpha.
fn restore(original: &DynamicImage, rgb: RgbImage) -> DynamicImage {
    let corrupted = DynamicImage::ImageRgb8(rgb);
    let mut out = match original {
        DynamicImage::ImageRgb8(_) => return corrupted,
        DynamicImage::ImageLuma8(_) => DynamicImage::ImageLuma8(corrupted.to_luma8()),
        DynamicImage::ImageLumaA8(_) => DynamicImage::ImageLumaA8(corrupted.to_luma_alpha8()),
        DynamicImage::ImageRgba8(_) => DynamicImage::ImageRgba8(corrupted.to_rgba8()),
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma16(corrupted.to_luma16()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA16(corrupted.to_luma_alpha16()),
        DynamicImage::ImageRgb16(_) => DynamicImage::ImageRgb16(corrupted.to_rgb16()),
        DynamicImage::ImageRgba16(_) => DynamicImage::ImageRgba16(corrupted.to_rgba16()),
        DynamicImage::ImageRgb32F(_) => DynamicImage::ImageRgb32F(corrupted.to_rgb32f()),
        _ => DynamicImage::ImageRgba32F(corrupted.to_rgba32f()),
    };
    copy_alpha(original, &mut out);
    out
}

fn copy_alpha(from: &DynamicImage, to: &mut DynamicImage) {
    match (from, to) {
        (DynamicImage::ImageLumaA8(a), DynamicImage::ImageLumaA8(b)) => {
            for (p, q) in a.pixels().zip(b.pixels_mut()) {
                q.0[1] = p.0[1];
            }
        }
        (DynamicImage::ImageRgba8(a), DynamicImage::ImageRgba8(b)) => {
            for (p, q) in a.pixels().zip(b.pixels_mut()) {
                q.0[3] = p.0[3];
            }
        }
        (DynamicImage::ImageLumaA16(a), DynamicImage::ImageLumaA16(b)) => {
            for (p, q) in a.pixels().zip(b.pixels_mut()) {
                q.0[1] = p.0[1];
            }
        }
        (DynamicImage::ImageRgba16(a), DynamicImage::ImageRgba16(b)) => {
            for (p, q) in a.pixels().zip(b.pixels_mut()) {
                q.0[3] = p.0[3];
            }
        }
        (DynamicImage::ImageRgba32F(a), DynamicImage::ImageRgba32F(b)) => {
            for (p, q) in a.pixels().zip(b.pixels_mut()) {
                q.0[3] = p.0[3];
            }
        }
        _ => {}
    }
}
