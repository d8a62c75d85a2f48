//! Image corruption to simulate a distribution shift: the original's random white boxes,
//! mosaic, a thick random line, or a uniform mix of the three; and ImageNet-C's 19
//! corruptions at five severities ([`imagenet_c`]).
//!
//! ```
//! use mlops_core::corrupt::Corruption;
//!
//! let image = image::DynamicImage::new_rgb8(320, 240);
//! let (corrupted, drawn) = Corruption::mixed().apply_seeded(&image, 42).unwrap();
//! assert_eq!(corrupted.color(), image.color());
//! println!("drew {:?} with {} boxes", drawn.kind(), drawn.rects().len());
//! ```

mod folder;
mod geometry;
pub mod imagenet_c;
mod paint;
mod params;

use std::fmt;
use std::str::FromStr;

use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use folder::{
    CorruptedFile, FailedFile, FolderOptions, FolderReport, SkippedFile, corrupt_folder,
    corrupt_one_file,
};
pub use geometry::{CorruptionKind, Occlusion, Rect, ThickLine};
pub use imagenet_c::{ImagenetC, ImagenetCKind, Preset};
pub use params::{BoxParams, Fill, LineParams, MixedParams, MosaicParams, SizeRange};

use crate::error::{Error, Result};

/// A corruption and its parameter laws.
///
/// As JSON: `{"type": "mixed", ...}` with the parameters to change, or
/// `{"type": "imagenet_c", "kind": "fog", "severity": 3}` (optionally `"preset": "cifar10"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Corruption {
    /// Solid boxes (default: 5..=10 white boxes of 100..=200 px per side).
    RandomBoxes(BoxParams),
    /// Pixelated boxes (default: 5..=10 boxes of 100..=200 px sampled to 10x10 cells).
    Mosaic(MosaicParams),
    /// One black line through the centre (default width 50..=200 px).
    RandomLine(LineParams),
    /// One of the three per image, chosen uniformly.
    Mixed(MixedParams),
    /// An ImageNet-C corruption at a severity.
    ImagenetC(ImagenetC),
}

impl Corruption {
    /// `random_boxes` with the original's laws.
    pub fn random_boxes() -> Self {
        Corruption::RandomBoxes(BoxParams::default())
    }

    /// `mosaic` with the original's laws.
    pub fn mosaic() -> Self {
        Corruption::Mosaic(MosaicParams::default())
    }

    /// `random_line` with the original's laws.
    pub fn random_line() -> Self {
        Corruption::RandomLine(LineParams::default())
    }

    /// `mixed` with the original's laws.
    pub fn mixed() -> Self {
        Corruption::Mixed(MixedParams::default())
    }

    /// An ImageNet-C corruption at `severity` (1-5) with the ImageNet tables.
    pub fn imagenet_c(kind: ImagenetCKind, severity: u8) -> Result<Self> {
        ImagenetC::new(kind, severity).map(Corruption::ImagenetC)
    }

    /// The name used on command lines (`random_boxes`, `mosaic`, `random_line`, `mixed`, or
    /// the ImageNet-C corruption's name such as `fog`).
    pub fn name(&self) -> &'static str {
        match self {
            Corruption::RandomBoxes(_) => "random_boxes",
            Corruption::Mosaic(_) => "mosaic",
            Corruption::RandomLine(_) => "random_line",
            Corruption::Mixed(_) => "mixed",
            Corruption::ImagenetC(c) => c.kind.name(),
        }
    }

    /// The severity of an ImageNet-C corruption (`None` for the original's occlusions).
    pub fn severity(&self) -> Option<u8> {
        match self {
            Corruption::ImagenetC(c) => Some(c.severity),
            _ => None,
        }
    }

    /// The corruption named `name` (as on command lines); `severity` is required for an
    /// ImageNet-C corruption and refused for the original's occlusions.
    pub fn from_name(name: &str, severity: Option<u8>) -> Result<Self> {
        let key = name.to_ascii_lowercase().replace('-', "_");
        match (key.parse::<ImagenetCKind>(), severity) {
            (Ok(kind), Some(s)) => Corruption::imagenet_c(kind, s),
            (Ok(kind), None) => Err(Error::invalid(
                "severity",
                format!("{kind} needs a severity, 1..=5"),
            )),
            (Err(_), None) => key.parse(),
            (Err(_), Some(_)) => {
                let parsed: Corruption = key.parse()?;
                Err(Error::invalid(
                    "severity",
                    format!("{parsed} has no severity (only ImageNet-C corruptions have one)"),
                ))
            }
        }
    }

    /// Checks every parameter range; call once before a batch.
    pub fn validate(&self) -> Result<()> {
        match self {
            Corruption::RandomBoxes(p) => p.validate(),
            Corruption::Mosaic(p) => p.validate(),
            Corruption::RandomLine(p) => p.validate(),
            Corruption::Mixed(p) => {
                p.boxes.validate()?;
                p.mosaic.validate()?;
                p.line.validate()
            }
            Corruption::ImagenetC(c) => c.validate(),
        }
    }

    /// Samples what to draw on a `width x height` image. Everything returned lies inside the
    /// image; sizes larger than the image are scaled down ([`SizeRange::fit_within`]).
    ///
    /// The parameters must be valid ([`Corruption::validate`]); invalid ranges panic. An
    /// ImageNet-C corruption draws when applied: its plan names it and draws nothing.
    pub fn plan<R: Rng + ?Sized>(&self, width: u32, height: u32, rng: &mut R) -> Occlusion {
        match self {
            Corruption::RandomBoxes(p) => geometry::plan_boxes(p, width, height, rng),
            Corruption::Mosaic(p) => geometry::plan_mosaic(p, width, height, rng),
            Corruption::RandomLine(p) => geometry::plan_line(p, width, height, rng),
            Corruption::Mixed(p) => match rng.random_range(0..3u8) {
                0 => geometry::plan_boxes(&p.boxes, width, height, rng),
                1 => geometry::plan_mosaic(&p.mosaic, width, height, rng),
                _ => geometry::plan_line(&p.line, width, height, rng),
            },
            Corruption::ImagenetC(c) => Occlusion::ImagenetC {
                corruption: c.kind,
                severity: c.severity,
            },
        }
    }

    /// Corrupts `image` in place and returns what was drawn.
    pub fn apply_in_place<R: Rng + ?Sized>(
        &self,
        image: &mut DynamicImage,
        rng: &mut R,
    ) -> Result<Occlusion> {
        self.validate()?;
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::invalid("image", "the image has no pixels"));
        }
        if let Corruption::ImagenetC(c) = self {
            *image = c.apply(image, rng)?;
            return Ok(self.plan(image.width(), image.height(), rng));
        }
        let drawn = self.plan(image.width(), image.height(), rng);
        drawn.paint(image);
        Ok(drawn)
    }

    /// A corrupted copy of `image` (same size and colour type) and what was drawn.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        image: &DynamicImage,
        rng: &mut R,
    ) -> Result<(DynamicImage, Occlusion)> {
        let mut out = image.clone();
        let drawn = self.apply_in_place(&mut out, rng)?;
        Ok((out, drawn))
    }

    /// [`Corruption::apply`] with a fresh generator seeded by `seed`: same seed, same result.
    pub fn apply_seeded(
        &self,
        image: &DynamicImage,
        seed: u64,
    ) -> Result<(DynamicImage, Occlusion)> {
        self.apply(image, &mut ChaCha8Rng::seed_from_u64(seed))
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corruption {
    type Err = Error;

    /// Parses a kind name into that kind with the default laws: `random_boxes`, `mosaic`,
    /// `random_line`, `mixed`, or an ImageNet-C corruption with its severity as ImageNet-C's
    /// folders name it, `fog/3`.
    fn from_str(s: &str) -> Result<Self> {
        if let Some((name, severity)) = s.split_once('/') {
            let severity = severity.trim().parse::<u8>().map_err(|_| {
                Error::invalid("severity", format!("`{severity}` in `{s}` is not 1..=5"))
            })?;
            return Corruption::from_name(name, Some(severity));
        }
        let key = s.to_ascii_lowercase().replace('-', "_");
        if key.parse::<ImagenetCKind>().is_ok() {
            return Corruption::from_name(&key, None);
        }
        match key.as_str() {
            "random_boxes" | "boxes" => Ok(Corruption::random_boxes()),
            "mosaic" => Ok(Corruption::mosaic()),
            "random_line" | "line" => Ok(Corruption::random_line()),
            "mixed" => Ok(Corruption::mixed()),
            _ => Err(Error::invalid(
                "type",
                format!(
                    "unknown corruption `{s}`; expected random_boxes, mosaic, random_line, mixed, \
                     or an ImageNet-C corruption with its severity such as fog/3 ({})",
                    ImagenetCKind::NAMES.join(", ")
                ),
            )),
        }
    }
}
