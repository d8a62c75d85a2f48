//! Embeddings for replay selection: each image embedded once (pooled backbone features,
//! L2-normalised; 1280-d for EfficientNet-Lite0), cached by content hash, behind the
//! [`Embedder`] interface so another encoder can be plugged in.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::dataset::Manifest;
use crate::error::Result;
use crate::imageio::{DEFAULT_MAX_ALLOC, decode};
use crate::infer::FeatureExtractor;
use crate::model::Backbone;
use crate::seed::sha256_hex;
use crate::select::Embeddings;
use crate::train::{SkippedImage, extractor_features};
use crate::vision::Preprocess;

/// Something that turns images into fixed-width vectors.
pub trait Embedder {
    /// A name that identifies the encoder (part of cache keys).
    fn name(&self) -> String;
    /// Width of an embedding.
    fn dim(&self) -> usize;
    /// Embeddings of decoded images, one row each, L2-normalised.
    fn embed_images(&self, images: &[(String, image::DynamicImage)]) -> Result<Embeddings>;
}

/// Embeds with a (frozen) backbone's pooled features, on the fast inference path
/// ([`FeatureExtractor`]).
#[derive(Debug)]
pub struct BackboneEmbedder {
    extractor: FeatureExtractor,
    preprocess: Preprocess,
    cache: Option<PathBuf>,
}

impl BackboneEmbedder {
    /// An embedder over `backbone` (on `device` where it has no fast path), caching under
    /// `cache` when given.
    pub fn new(
        backbone: &Backbone,
        preprocess: Preprocess,
        device: &Device,
        cache: Option<PathBuf>,
    ) -> Result<Self> {
        Ok(BackboneEmbedder {
            extractor: FeatureExtractor::new(backbone, device)?,
            preprocess,
            cache,
        })
    }
}

impl Embedder for BackboneEmbedder {
    fn name(&self) -> String {
        format!("{}:{}", self.extractor.identity(), self.preprocess.key())
    }

    fn dim(&self) -> usize {
        self.extractor.dim()
    }

    /// `images` are (content key, image); the key addresses the cache.
    fn embed_images(&self, images: &[(String, image::DynamicImage)]) -> Result<Embeddings> {
        let chw: Vec<(String, Vec<f32>)> = images
            .iter()
            .map(|(k, i)| (k.clone(), self.preprocess.to_chw(i)))
            .collect();
        let refs: Vec<(String, &[f32])> =
            chw.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
        let features = extractor_features(
            &self.extractor,
            &refs,
            &self.preprocess,
            self.cache.as_deref(),
            &crate::control::Control::new(),
        )?;
        Ok(Embeddings::new(features, self.dim())?.l2_normalised())
    }
}

/// Embeds every image of a manifest (paths relative to `root`), in order; unreadable images
/// are left out and listed, with the manifest rows that were embedded.
pub fn embed_manifest(
    embedder: &dyn Embedder,
    root: &Path,
    manifest: &Manifest,
) -> Result<(Embeddings, Vec<usize>, Vec<SkippedImage>)> {
    let mut images = Vec::new();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (row, sample) in manifest.samples.iter().enumerate() {
        let path = root.join(&sample.image_path);
        let loaded = std::fs::read(&path)
            .map_err(|e| crate::Error::io(&path, e))
            .and_then(|bytes| {
                Ok((
                    sha256_hex(&bytes),
                    decode(&path, &bytes, DEFAULT_MAX_ALLOC)?,
                ))
            });
        match loaded {
            Ok(pair) => {
                images.push(pair);
                rows.push(row);
            }
            Err(e) => skipped.push(SkippedImage {
                image_path: sample.image_path.clone(),
                reason: e.to_string(),
            }),
        }
    }
    Ok((embedder.embed_images(&images)?, rows, skipped))
}
