//! Fast inference of the frozen backbone on CPU.
//!
//! Every stage that needs backbone features (training features, replay embeddings,
//! [`crate::predict::Predictor`], the stream, the Kafka consumer, Python) goes through a
//! [`FeatureExtractor`]. For EfficientNet-Lite0 it uses [`Lite0Inference`], an inference-only
//! forward pass written for this network: BatchNorm folded into the convolutions when the
//! weights load (exact in eval mode), one NHWC layout from the stem to the pooled features,
//! bias, ReLU6 and the residual sum applied inside the convolution that produces them, buffers
//! reused across layers and calls, and both cores busy even for a single image. The Burn
//! network stays the reference (tested against it) and the training path.
//!
//! ```no_run
//! use mlops_core::infer::FeatureExtractor;
//! use mlops_core::model::{weights::load_lite0, Backbone};
//! use mlops_core::vision::Preprocess;
//!
//! let device = burn::prelude::Device::flex();
//! let net = load_lite0("efficientnet-lite0.pth".as_ref(), false, &device)?;
//! let extractor = FeatureExtractor::new(&Backbone::EfficientNetLite0(net), &device)?;
//! let preprocess = Preprocess::default();
//! let image = preprocess.to_chw(&image::open("photo.jpg").expect("an image"));
//! let features = extractor.features(&[&image], preprocess.size as usize)?; // 1 x 1280
//! # Ok::<(), mlops_core::Error>(())
//! ```

mod depthwise;
mod fold;
mod lite0;
mod pointwise;
mod simd;
mod stem;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use sha2::{Digest, Sha256};

pub use lite0::{ENGINE_VERSION, LayerTimes, Lite0Inference};

use crate::error::{Error, Result};
use crate::model::{Backbone, BackboneKind};

/// Which implementation computes backbone features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureEngine {
    /// The fast inference path where the backbone has one (EfficientNet-Lite0), Burn otherwise.
    #[default]
    Fast,
    /// Burn's forward pass on the backbone's device (the reference).
    Burn,
}

crate::names::named_enum!(FeatureEngine, "engine", { Fast => "fast", Burn => "burn" });

/// Images per Burn forward pass (the reference engine): larger batches are no faster on CPU
/// and need far more memory.
const BURN_BATCH: usize = 16;

#[derive(Debug)]
enum Engine {
    Fast(Box<Lite0Inference>),
    Burn(Box<(Backbone, Device)>),
}

/// Pooled backbone features of preprocessed images, with an identity (architecture, weights'
/// SHA-256, engine version) that keys feature caches.
#[derive(Debug)]
pub struct FeatureExtractor {
    engine: Engine,
    kind: BackboneKind,
    weights_sha256: String,
    identity: String,
}

impl FeatureExtractor {
    /// The fastest available engine for `backbone` ([`FeatureEngine::Fast`]).
    pub fn new(backbone: &Backbone, device: &Device) -> Result<Self> {
        Self::with_engine(backbone, device, FeatureEngine::Fast)
    }

    /// `backbone` on the given engine; [`FeatureEngine::Fast`] falls back to Burn for backbones
    /// without a fast path (the small CNN).
    pub fn with_engine(
        backbone: &Backbone,
        device: &Device,
        engine: FeatureEngine,
    ) -> Result<Self> {
        let kind = backbone.kind();
        let weights_sha256 = parameters_sha256(backbone);
        let (engine, version) = match (engine, backbone) {
            (FeatureEngine::Fast, Backbone::EfficientNetLite0(net)) => (
                Engine::Fast(Box::new(Lite0Inference::new(net)?)),
                format!("{ENGINE_VERSION};{}", simd::instruction_set()),
            ),
            _ => (
                Engine::Burn(Box::new((backbone.valid(), device.clone()))),
                format!("burn-0.22.1;{device:?}"),
            ),
        };
        let identity = format!("{};weights={weights_sha256};engine={version}", kind.name());
        Ok(FeatureExtractor {
            engine,
            kind,
            weights_sha256,
            identity,
        })
    }

    /// The engine in use.
    pub fn engine(&self) -> FeatureEngine {
        match self.engine {
            Engine::Fast(_) => FeatureEngine::Fast,
            Engine::Burn(_) => FeatureEngine::Burn,
        }
    }

    /// The backbone's architecture.
    pub fn kind(&self) -> BackboneKind {
        self.kind
    }

    /// Width of a feature row.
    pub fn dim(&self) -> usize {
        self.kind.features()
    }

    /// Hex SHA-256 of the backbone's parameters (shapes and little-endian values, in module
    /// order, BatchNorm statistics included).
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// Architecture, weights' SHA-256 and engine (with its version and instruction set): two
    /// extractors with the same identity give the same features for the same input.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Features `[n, dim]` (row-major) of `n` preprocessed images, each `3 x size x size` in
    /// CHW order ([`crate::vision::Preprocess::to_chw`]).
    pub fn features(&self, images: &[&[f32]], size: usize) -> Result<Vec<f32>> {
        let per_image = check_images(images, size, size)?;
        match &self.engine {
            Engine::Fast(net) => net.features_of(images, size, size),
            Engine::Burn(burn) => {
                let (backbone, device) = burn.as_ref();
                let mut out = Vec::with_capacity(images.len() * self.dim());
                for chunk in images.chunks(BURN_BATCH) {
                    let mut flat = Vec::with_capacity(chunk.len() * per_image);
                    for image in chunk {
                        flat.extend_from_slice(image);
                    }
                    let x = Tensor::<4>::from_data(
                        TensorData::new(flat, [chunk.len(), 3, size, size]),
                        device,
                    );
                    let features = backbone
                        .features(x)
                        .into_data()
                        .try_to_vec_as::<f32>()
                        .map_err(|e| Error::internal("backbone features", e))?;
                    out.extend_from_slice(&features);
                }
                Ok(out)
            }
        }
    }
}

/// Values of one `3 x height x width` image; an error for an empty or absurdly large size.
pub(crate) fn image_len(height: usize, width: usize) -> Result<usize> {
    if height == 0 || width == 0 {
        return Err(Error::invalid(
            "images",
            "height and width must be at least 1",
        ));
    }
    // The widest activation (1152 channels) must be addressable too.
    height
        .checked_mul(width)
        .and_then(|p| p.checked_mul(3 * 1152))
        .map(|_| 3 * height * width)
        .ok_or_else(|| Error::invalid("images", format!("{height} x {width} is too large")))
}

/// Checks that every image holds `3 x height x width` values; returns that length.
pub(crate) fn check_images(images: &[&[f32]], height: usize, width: usize) -> Result<usize> {
    let per_image = image_len(height, width)?;
    match images.iter().position(|im| im.len() != per_image) {
        Some(i) => Err(Error::invalid(
            "images",
            format!(
                "image {i} has {} values, expected 3 x {height} x {width} = {per_image}",
                images[i].len()
            ),
        )),
        None => Ok(per_image),
    }
}

/// Hashes every float parameter (shape, then values) in module order.
struct HashParameters(Sha256);

impl ModuleVisitor for HashParameters {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        for d in tensor.dims() {
            self.0.update((d as u64).to_le_bytes());
        }
        match tensor.into_data().try_to_vec_as::<f32>() {
            Ok(values) => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.0.update(&bytes);
            }
            // Unreadable values still change the hash, so no two such models collide with a
            // readable one.
            Err(e) => self.0.update(format!("{e:?}").as_bytes()),
        }
    }
}

/// Hex SHA-256 of a module's float parameters.
fn parameters_sha256<M: Module>(module: &M) -> String {
    let mut visitor = HashParameters(Sha256::new());
    module.visit(&mut visitor);
    visitor
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes an ignored timing test's table to `target/timing/<name>.txt` (tests only: the
/// library reports nothing on standard error).
#[cfg(test)]
pub(crate) fn write_timing_report(name: &str, report: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/timing");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.txt")), report));
    assert!(written.is_ok(), "{}: {written:?}", dir.display());
}
