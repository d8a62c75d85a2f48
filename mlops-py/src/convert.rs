//! Conversions between Python values and the core's: JSON text for structured values,
//! numpy arrays for images and matrices.

use std::path::Path;

use image::DynamicImage;
use mlops_core::Manifest;
use numpy::ndarray::ArrayD;

use crate::errors::{BindingResult, invalid};

/// Parses `text` as JSON into `T`; `what` names the argument in errors.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> BindingResult<T> {
    serde_json::from_str(text).map_err(|e| invalid(format!("{what}: {e}")))
}

/// `value` as JSON text.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> BindingResult<String> {
    serde_json::to_string(value)
        .map_err(|e| mlops_core::Error::Internal {
            what: "result to JSON",
            reason: e.to_string(),
        })
        .map_err(Into::into)
}

/// A manifest from JSON lines.
pub(crate) fn manifest(jsonl: &str) -> BindingResult<Manifest> {
    Ok(Manifest::from_jsonl(jsonl, Path::new("<python>"))?)
}

/// An HxW or HxWxC (C = 1, 2, 3, 4) uint8 array as an image.
pub(crate) fn array_to_image(a: &ArrayD<u8>) -> BindingResult<DynamicImage> {
    let data: Vec<u8> = match a.as_slice() {
        Some(contiguous) => contiguous.to_vec(),
        None => a.iter().copied().collect(),
    };
    pixels_to_image(data, a.shape())
}

/// Row-major pixels of an HxW or HxWxC (C = 1, 2, 3, 4) array as an image (no copy).
pub(crate) fn pixels_to_image(data: Vec<u8>, shape: &[usize]) -> BindingResult<DynamicImage> {
    let (h, w, c) = match shape {
        [h, w] => (*h, *w, 1),
        [h, w, c] if (1..=4).contains(c) => (*h, *w, *c),
        _ => {
            return Err(invalid(format!(
                "image: expected an HxW or HxWxC (C in 1..4) uint8 array, got shape {shape:?}"
            )));
        }
    };
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| invalid("image: too wide"))?,
        u32::try_from(h).map_err(|_| invalid("image: too high"))?,
    );
    let bad = || invalid("image: inconsistent array");
    Ok(match c {
        1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w32, h32, data).ok_or_else(bad)?),
        2 => DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(w32, h32, data).ok_or_else(bad)?,
        ),
        3 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w32, h32, data).ok_or_else(bad)?),
        _ => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w32, h32, data).ok_or_else(bad)?),
    })
}

/// An image as an array shaped like `like` (HxW or HxWxC).
pub(crate) fn image_to_array(image: DynamicImage, like: &[usize]) -> BindingResult<ArrayD<u8>> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let c = if like.len() == 2 { 1 } else { like[2] };
    let bytes = match c {
        1 => image.into_luma8().into_raw(),
        2 => image.into_luma_alpha8().into_raw(),
        3 => image.into_rgb8().into_raw(),
        _ => image.into_rgba8().into_raw(),
    };
    let shape: Vec<usize> = if like.len() == 2 {
        vec![h, w]
    } else {
        vec![h, w, c]
    };
    ArrayD::from_shape_vec(shape, bytes).map_err(|e| shape_error(&e))
}

/// A shape mismatch building an array: a bug, reported as an internal error.
pub(crate) fn shape_error(e: &dyn std::fmt::Display) -> crate::errors::BindingError {
    mlops_core::Error::Internal {
        what: "array shape",
        reason: e.to_string(),
    }
    .into()
}
