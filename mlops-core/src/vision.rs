//! Image preprocessing: decode, convert to RGB, resize, normalise, batch into tensors.

use burn::prelude::*;
use image::DynamicImage;
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

/// How images become model input. Defaults follow the original: 256x256, mean = std = 0.5 per
/// channel on `[0, 1]` pixels (so pixels map to `[-1, 1]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preprocess {
    /// Side of the square input in pixels (images are resized to `size x size`).
    pub size: u32,
    /// Per-channel mean subtracted after scaling pixels to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            size: 256,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }
}

impl Preprocess {
    /// The image as `3 x size x size` normalised values, channel-major (CHW). Grey images are
    /// repeated over the three channels; alpha is dropped. Resizing is bilinear with
    /// antialiasing (Pillow's and torchvision's BILINEAR).
    pub fn to_chw(&self, image: &DynamicImage) -> Vec<f32> {
        let rgb = image.to_rgb8();
        let rgb = if rgb.dimensions() == (self.size, self.size) {
            rgb
        } else {
            image::imageops::resize(&rgb, self.size, self.size, FilterType::Triangle)
        };
        let plane = (self.size * self.size) as usize;
        let mut out = vec![0f32; 3 * plane];
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * self.std[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| self.mean[c] / self.std[c]);
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = f32::from(px.0[c]) * scale[c] - shift[c];
            }
        }
        out
    }

    /// Stacks already preprocessed CHW images into a `[n, 3, size, size]` tensor.
    pub fn stack(&self, chw: &[Vec<f32>], device: &Device) -> Tensor<4> {
        let s = self.size as usize;
        let mut flat = Vec::with_capacity(chw.len() * 3 * s * s);
        for image in chw {
            flat.extend_from_slice(image);
        }
        Tensor::from_data(TensorData::new(flat, [chw.len(), 3, s, s]), device)
    }

    /// Preprocesses and stacks images into a `[n, 3, size, size]` tensor.
    pub fn batch(&self, images: &[DynamicImage], device: &Device) -> Tensor<4> {
        let chw: Vec<Vec<f32>> = images.iter().map(|i| self.to_chw(i)).collect();
        self.stack(&chw, device)
    }

    /// A short text that identifies this preprocessing in cache keys.
    pub fn key(&self) -> String {
        format!(
            "size={};mean={:?};std={:?};resize=triangle;decoders={}",
            self.size,
            self.mean,
            self.std,
            crate::imageio::DECODERS
        )
    }
}
