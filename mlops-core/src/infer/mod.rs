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

pub(crate) mod depthwise;
mod fold;
mod head;
mod lite0;
mod pointwise;
pub(crate) mod simd;
mod stem;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use sha2::{Digest, Sha256};

pub(crate) use head::{LinearHead, head_probabilities};
pub use lite0::{ENGINE_VERSION, LayerTimes, Lite0Inference};

use crate::error::{Error, Result};
use crate::model::efficientnet::{TAIL_UNITS, activation_shape};
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

/// The instruction set the fast path's kernels run with on this CPU: `avx2+fma`, or
/// `portable` (no AVX2, or forced with `MLOPS_SIMD=portable` in the environment).
pub fn instruction_set() -> &'static str {
    simd::instruction_set()
}

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
    /// Blocks run before the output when it is an activation (partial fine-tuning's input);
    /// `None` for pooled features.
    cut: Option<usize>,
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
            cut: None,
            weights_sha256,
            identity,
        })
    }

    /// An extractor whose rows are the input of the last `tail_units` trainable units of
    /// EfficientNet-Lite0 (1 = the head convolution, 2 = the last block and the head, ...,
    /// [`TAIL_UNITS`] = everything after the stem): the NHWC activation after the stem and the
    /// first `TAIL_UNITS - tail_units` blocks, one row of [`Self::row_len`] values per image.
    /// `tail_units` 0 is [`Self::with_engine`] (pooled features).
    pub fn with_cut(
        backbone: &Backbone,
        device: &Device,
        engine: FeatureEngine,
        tail_units: usize,
    ) -> Result<Self> {
        let mut extractor = Self::with_engine(backbone, device, engine)?;
        if tail_units == 0 {
            return Ok(extractor);
        }
        if extractor.kind != BackboneKind::EfficientNetLite0 {
            return Err(Error::invalid(
                "tail_blocks",
                format!(
                    "partial fine-tuning needs EfficientNet-Lite0, not {}",
                    extractor.kind.name()
                ),
            ));
        }
        if tail_units > TAIL_UNITS {
            return Err(Error::invalid(
                "tail_blocks",
                format!("EfficientNet-Lite0 has {TAIL_UNITS} trainable units, not {tail_units}"),
            ));
        }
        let blocks = TAIL_UNITS - tail_units;
        extractor.cut = Some(blocks);
        extractor.identity.push_str(&format!(";cut={blocks}"));
        Ok(extractor)
    }

    /// Values per image for `size x size` images: [`Self::dim`] for pooled features, the
    /// activation's `height * width * channels` for an extractor [`Self::with_cut`].
    pub fn row_len(&self, size: usize) -> usize {
        match self.cut {
            None => self.dim(),
            Some(blocks) => activation_shape(size, size, blocks).iter().product(),
        }
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
        if let Some(blocks) = self.cut {
            return self.activations(images, size, blocks, per_image);
        }
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

impl FeatureExtractor {
    /// NHWC activations after `blocks` blocks ([`Self::with_cut`]).
    fn activations(
        &self,
        images: &[&[f32]],
        size: usize,
        blocks: usize,
        per_image: usize,
    ) -> Result<Vec<f32>> {
        match &self.engine {
            Engine::Fast(net) => net.activations_of(images, size, size, blocks),
            Engine::Burn(burn) => {
                let (backbone, device) = burn.as_ref();
                let Backbone::EfficientNetLite0(net) = backbone else {
                    return Err(Error::invalid("tail_blocks", "EfficientNet-Lite0 only"));
                };
                let mut out = Vec::with_capacity(images.len() * self.row_len(size));
                for chunk in images.chunks(BURN_BATCH) {
                    let flat: Vec<f32> = chunk.iter().flat_map(|im| im.iter().copied()).collect();
                    let x = Tensor::<4>::from_data(
                        TensorData::new(flat, [chunk.len(), 3, size, size]),
                        device,
                    );
                    let values = net
                        .trunk(x, blocks)
                        .permute([0, 2, 3, 1])
                        .into_data()
                        .try_to_vec_as::<f32>()
                        .map_err(|e| Error::internal("activations", e))?;
                    out.extend_from_slice(&values);
                }
                debug_assert_eq!(per_image, 3 * size * size);
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
