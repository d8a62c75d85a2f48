//! Parameter laws for the corruptions, as ranges a user can change.
//!
//! The defaults are the original pipeline's laws. Every size is in pixels and every range is
//! inclusive. On an image smaller than a range, the range is scaled down (see
//! [`SizeRange::fit_within`]) instead of failing.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An inclusive range of whole numbers, `min..=max`, with `1 <= min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeRange {
    /// Smallest value (inclusive).
    pub min: u32,
    /// Largest value (inclusive).
    pub max: u32,
}

impl SizeRange {
    /// A range `min..=max`; the bounds are checked by [`SizeRange::validate`].
    pub const fn new(min: u32, max: u32) -> Self {
        SizeRange { min, max }
    }

    /// A range holding one value.
    pub const fn exactly(value: u32) -> Self {
        SizeRange {
            min: value,
            max: value,
        }
    }

    /// Checks `1 <= min <= max`; `name` is the parameter's name in the error.
    pub fn validate(&self, name: &'static str) -> Result<()> {
        if self.min == 0 {
            return Err(Error::invalid(name, "the minimum must be at least 1"));
        }
        if self.min > self.max {
            return Err(Error::invalid(
                name,
                format!("minimum {} is larger than maximum {}", self.min, self.max),
            ));
        }
        Ok(())
    }

    /// The range scaled so that its maximum fits in `limit` pixels.
    ///
    /// When `max <= limit` the range is returned as it is. Otherwise both bounds are multiplied
    /// by `limit / max` (rounded down, at least 1), which keeps the law's shape: a 100..=200 px
    /// box law on a 50 px image becomes 25..=50 px.
    pub fn fit_within(&self, limit: u32) -> SizeRange {
        let limit = limit.max(1);
        if self.max <= limit {
            return *self;
        }
        let scale =
            |v: u32| ((u64::from(v) * u64::from(limit)) / u64::from(self.max)).max(1) as u32;
        SizeRange {
            min: scale(self.min),
            max: limit,
        }
    }
}

/// A fill colour as 8-bit RGBA; converted to each image's colour type when painted
/// (grey images take its luma, 16-bit images scale it by 257).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill(pub [u8; 4]);

impl Fill {
    /// Opaque white, the original's box colour.
    pub const WHITE: Fill = Fill([255, 255, 255, 255]);
    /// Opaque black, the original's line colour.
    pub const BLACK: Fill = Fill([0, 0, 0, 255]);
}

/// `random_boxes`: solid rectangles at random places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BoxParams {
    /// How many boxes per image (default 5..=10).
    pub count: SizeRange,
    /// Box width in pixels (default 100..=200).
    pub width: SizeRange,
    /// Box height in pixels (default 100..=200).
    pub height: SizeRange,
    /// Fill colour (default white).
    pub fill: Fill,
}

impl Default for BoxParams {
    fn default() -> Self {
        BoxParams {
            count: SizeRange::new(5, 10),
            width: SizeRange::new(100, 200),
            height: SizeRange::new(100, 200),
            fill: Fill::WHITE,
        }
    }
}

impl BoxParams {
    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        self.count.validate("count")?;
        self.width.validate("box_width")?;
        self.height.validate("box_height")
    }
}

/// `mosaic`: rectangles pixelated by nearest-neighbour sampling to a coarse grid and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MosaicParams {
    /// How many boxes per image (default 5..=10).
    pub count: SizeRange,
    /// Box width in pixels (default 100..=200).
    pub width: SizeRange,
    /// Box height in pixels (default 100..=200).
    pub height: SizeRange,
    /// Grid cells per box side (default exactly 10); capped by the box's side in pixels.
    pub cells: SizeRange,
}

impl Default for MosaicParams {
    fn default() -> Self {
        MosaicParams {
            count: SizeRange::new(5, 10),
            width: SizeRange::new(100, 200),
            height: SizeRange::new(100, 200),
            cells: SizeRange::exactly(10),
        }
    }
}

impl MosaicParams {
    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        self.count.validate("count")?;
        self.width.validate("box_width")?;
        self.height.validate("box_height")?;
        self.cells.validate("cells")
    }
}

/// `random_line`: one thick straight line through the image centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LineParams {
    /// Line width in pixels (default 50..=200); scaled to the image's shorter side.
    pub width: SizeRange,
    /// Fill colour (default black).
    pub fill: Fill,
}

impl Default for LineParams {
    fn default() -> Self {
        LineParams {
            width: SizeRange::new(50, 200),
            fill: Fill::BLACK,
        }
    }
}

impl LineParams {
    /// Checks the width range.
    pub fn validate(&self) -> Result<()> {
        self.width.validate("line_width")
    }
}

/// `mixed`: one of the three kinds per image, chosen uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MixedParams {
    /// Parameters used when boxes are chosen.
    pub boxes: BoxParams,
    /// Parameters used when mosaic is chosen.
    pub mosaic: MosaicParams,
    /// Parameters used when a line is chosen.
    pub line: LineParams,
}
