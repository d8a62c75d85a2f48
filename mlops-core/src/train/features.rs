//! Frozen-backbone features of labelled image sets, computed once and cached on disk by the
//! image's content hash, the preprocessing and the extractor's identity.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rayon::prelude::*;

use super::{ImageSet, SkippedImage};
use crate::control::{Control, Progress};
use crate::error::{Error, Result};
use crate::imageio::{DEFAULT_MAX_ALLOC, decode, write_atomic};
use crate::infer::FeatureExtractor;
use crate::model::Backbone;
use crate::seed::sha256_hex;
use crate::vision::Preprocess;

/// Images per backbone call when computing features (rounded up to a multiple of the thread
/// count): large enough to keep every core busy, small enough that little is held decoded.
const FEATURE_BATCH: usize = 16;

fn feature_batch() -> usize {
    let threads = rayon::current_num_threads().max(1);
    FEATURE_BATCH.div_ceil(threads) * threads
}

/// The cache file of an image's features: keyed by its content hash, the preprocessing and the
/// extractor's identity (architecture, weights' SHA-256, engine and its version).
fn cache_file(
    cache: Option<&Path>,
    hash: &str,
    preprocess: &Preprocess,
    extractor: &FeatureExtractor,
) -> Option<PathBuf> {
    let key =
        sha256_hex(format!("{hash};{};{}", preprocess.key(), extractor.identity()).as_bytes());
    cache.map(|c| c.join(&key[..2]).join(format!("{key}.f32")))
}

fn read_cached(file: &Path, width: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(file).ok().filter(|b| b.len() == width * 4)?;
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn write_cached(file: &Path, row: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(file, &bytes)
}

/// One image of a set, ready for the backbone: its features from the cache, or its content
/// hash and CHW values.
enum Prepared {
    Cached(Vec<f32>),
    Fresh { hash: String, chw: Vec<f32> },
}

/// Backbone features and targets of a labelled set (frozen backbone, cached under `cache`),
/// with the images that could not be read.
pub fn set_features(
    backbone: &Backbone,
    set: &ImageSet<'_>,
    preprocess: &Preprocess,
    cache: Option<&Path>,
    device: &Device,
    control: &Control,
) -> Result<(Vec<f32>, Vec<u32>, Vec<SkippedImage>)> {
    let extractor = FeatureExtractor::new(backbone, device)?;
    extractor_set_features(&extractor, set, preprocess, cache, control)
}

/// [`set_features`] with a given extractor. Images are read, hashed and decoded in batches
/// while the previous batch runs through the backbone, so only two batches are ever held
/// decoded; cached images are not decoded at all. `control` is checked between batches and
/// told the `features` done.
pub fn extractor_set_features(
    extractor: &FeatureExtractor,
    set: &ImageSet<'_>,
    preprocess: &Preprocess,
    cache: Option<&Path>,
    control: &Control,
) -> Result<(Vec<f32>, Vec<u32>, Vec<SkippedImage>)> {
    let mut features = Vec::new();
    let (targets, skipped) =
        extractor_set_rows(extractor, set, preprocess, cache, control, &mut |row| {
            features.extend_from_slice(row);
            Ok(())
        })?;
    Ok((features, targets, skipped))
}

/// [`extractor_set_features`] handing each readable image's row to `sink` in manifest order
/// instead of collecting them (so that rows larger than memory can go elsewhere).
pub(crate) fn extractor_set_rows(
    extractor: &FeatureExtractor,
    set: &ImageSet<'_>,
    preprocess: &Preprocess,
    cache: Option<&Path>,
    control: &Control,
    sink: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<(Vec<u32>, Vec<SkippedImage>)> {
    let size = preprocess.size as usize;
    let width = extractor.row_len(size);
    let prepare = |sample: &crate::dataset::Sample| -> Result<Prepared> {
        let path = set.root.join(&sample.image_path);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let hash = sha256_hex(&bytes);
        if let Some(row) =
            cache_file(cache, &hash, preprocess, extractor).and_then(|f| read_cached(&f, width))
        {
            return Ok(Prepared::Cached(row));
        }
        let image = decode(&path, &bytes, DEFAULT_MAX_ALLOC)?;
        Ok(Prepared::Fresh {
            hash,
            chw: preprocess.to_chw(&image),
        })
    };
    let prepare_all = |part: &[crate::dataset::Sample]| -> Vec<Result<Prepared>> {
        part.par_iter().map(prepare).collect()
    };
    let samples = &set.manifest.samples;
    let total = Some(samples.len() as u64);
    let mut rows = 0usize;
    let mut targets = Vec::with_capacity(samples.len());
    let mut skipped = Vec::new();
    let mut chunks = samples.chunks(feature_batch());
    let mut current = chunks.next().map(|part| (part, prepare_all(part)));
    while let Some((part, prepared)) = current {
        control.check("backbone features")?;
        let (computed, next) = rayon::join(
            || {
                let fresh: Vec<&[f32]> = prepared
                    .iter()
                    .filter_map(|p| match p {
                        Ok(Prepared::Fresh { chw, .. }) => Some(chw.as_slice()),
                        _ => None,
                    })
                    .collect();
                extractor.features(&fresh, size)
            },
            || chunks.next().map(|part| (part, prepare_all(part))),
        );
        let computed = computed?;
        let mut fresh_rows = computed.chunks_exact(width);
        for (sample, prepared) in part.iter().zip(prepared) {
            match prepared {
                Ok(Prepared::Cached(row)) => sink(&row)?,
                Ok(Prepared::Fresh { hash, .. }) => {
                    let row = fresh_rows.next().ok_or_else(|| {
                        Error::internal("backbone features", "fewer feature rows than images")
                    })?;
                    if let Some(file) = cache_file(cache, &hash, preprocess, extractor) {
                        write_cached(&file, row)?;
                    }
                    sink(row)?;
                }
                Err(e) => {
                    skipped.push(SkippedImage {
                        image_path: sample.image_path.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            }
            rows += 1;
            targets.push(sample.target);
        }
        control.report(Progress::items(
            "features",
            (rows + skipped.len()) as u64,
            total,
        ));
        current = next;
    }
    Ok((targets, skipped))
}

/// Backbone features of preprocessed images, `[n, d]` row-major, cached under `cache` (keyed
/// by content hash, preprocessing and the extractor's identity). `images` are (content hash,
/// CHW values).
pub fn backbone_features(
    backbone: &Backbone,
    images: &[(String, &[f32])],
    preprocess: &Preprocess,
    cache: Option<&Path>,
    device: &Device,
    control: &Control,
) -> Result<Vec<f32>> {
    let extractor = FeatureExtractor::new(backbone, device)?;
    extractor_features(&extractor, images, preprocess, cache, control)
}

/// [`backbone_features`] with a given extractor.
pub fn extractor_features(
    extractor: &FeatureExtractor,
    images: &[(String, &[f32])],
    preprocess: &Preprocess,
    cache: Option<&Path>,
    control: &Control,
) -> Result<Vec<f32>> {
    let width = extractor.row_len(preprocess.size as usize);
    let mut out = vec![0f32; images.len() * width];
    let mut todo = Vec::new();
    for (i, (hash, _)) in images.iter().enumerate() {
        match cache_file(cache, hash, preprocess, extractor).and_then(|f| read_cached(&f, width)) {
            Some(row) => out[i * width..(i + 1) * width].copy_from_slice(&row),
            None => todo.push(i),
        }
    }
    let mut done = 0;
    for chunk in todo.chunks(feature_batch()) {
        control.check("backbone features")?;
        let batch: Vec<&[f32]> = chunk.iter().map(|&i| images[i].1).collect();
        let features = extractor.features(&batch, preprocess.size as usize)?;
        for (&i, row) in chunk.iter().zip(features.chunks_exact(width)) {
            out[i * width..(i + 1) * width].copy_from_slice(row);
            if let Some(file) = cache_file(cache, &images[i].0, preprocess, extractor) {
                write_cached(&file, row)?;
            }
        }
        done += chunk.len() as u64;
        control.report(Progress::items("features", done, Some(todo.len() as u64)));
    }
    Ok(out)
}

/// Feature rows and labels of one set.
pub(crate) struct Rows {
    /// Row-major features, `targets.len()` rows.
    pub(crate) features: Vec<f32>,
    /// One class id per row.
    pub(crate) targets: Vec<u32>,
}

impl Rows {
    /// Features per row (0 without rows).
    pub(crate) fn width(&self) -> usize {
        self.features
            .len()
            .checked_div(self.targets.len())
            .unwrap_or(0)
    }

    /// The rows of `parts`, in order.
    pub(crate) fn concat(parts: &[&Rows]) -> Rows {
        Rows {
            features: parts
                .iter()
                .flat_map(|r| r.features.iter().copied())
                .collect(),
            targets: parts
                .iter()
                .flat_map(|r| r.targets.iter().copied())
                .collect(),
        }
    }

    /// The rows at `indices`, in that order.
    pub(crate) fn pick(&self, indices: &[usize]) -> Rows {
        let w = self.width();
        Rows {
            features: indices
                .iter()
                .flat_map(|&i| self.features[i * w..(i + 1) * w].iter().copied())
                .collect(),
            targets: indices.iter().map(|&i| self.targets[i]).collect(),
        }
    }
}
