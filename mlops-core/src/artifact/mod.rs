//! Model packages: the model's weights (safetensors, written by burn-store) plus JSON metadata, saved to and loaded from
//! an object store — a local folder (plain path or `file://`, the default), S3 (`s3://bucket/prefix`,
//! configured by the usual `AWS_*` environment variables; `AWS_ALLOW_HTTP=true` for a local
//! server) or process memory (`memory://name`, for tests and notebooks).
//!
//! A package at `URI` is two objects: `URI/weights-<sha256>.safetensors` and `URI/metadata.json`, which
//! names the weights and their checksum (plus, for models trained here, a third:
//! `URI/reference-<sha256>.bin`, the drift reference sample, also named and checksummed by the
//! metadata). The metadata is written last, in one put, so a
//! package is either complete or not there: a reader never sees half of one. Loading verifies
//! the checksum and refuses packages of an incompatible format.

use burn::module::Module;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

mod lineage;
pub(crate) mod store;

pub use lineage::{DataHashes, Lineage, LineageRows, Scores};

pub use store::{
    copy_package_async, list_packages, list_packages_async, load_parts, load_parts_async,
    save_parts, save_parts_async,
};
use store::{get_checked, get_checked_async, put_object, put_object_async, store_error};

use crate::dataset::ClassMap;
use crate::drift::ReferenceSample;
use crate::error::{Error, Result};
use crate::model::{Backbone, BackboneKind, Classifier};
use crate::seed::sha256_hex;
use crate::train::{EpochMetrics, Evaluation, TrainConfig};

use crate::vision::Preprocess;

/// The package format written by this crate.
pub const FORMAT: &str = "mlops-model-package";
/// Its version; packages of a newer version are refused.
pub const FORMAT_VERSION: u32 = 1;
const METADATA: &str = "metadata.json";

/// Everything about a model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageMetadata {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Version of `mlops-core` that wrote the package.
    pub crate_version: String,
    /// Class names in id order.
    pub classes: ClassMap,
    /// Preprocessing the model expects.
    pub preprocess: Preprocess,
    /// The backbone architecture.
    pub backbone: BackboneKind,
    /// The head: a linear layer from the backbone's features to the classes.
    pub head: HeadInfo,
    /// Training settings (including the seed), if the model was trained by this crate.
    pub train_config: Option<TrainConfig>,
    /// Per-epoch metrics of training.
    pub history: Vec<EpochMetrics>,
    /// Evaluation on the test set at training time.
    pub test: Option<Evaluation>,
    /// SHA-256 of the training and test manifests' JSON-lines text.
    pub manifests_sha256: Vec<String>,
    /// Weights object name, checksum and size.
    pub weights: WeightsInfo,
    /// The drift reference sample's object name, checksum and size (packages written before
    /// it existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<WeightsInfo>,
    /// Where the model came from, for models adapted from another (the closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
}

/// The classifier head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// Always `linear`.
    pub kind: String,
    /// Input width (the backbone's features).
    pub inputs: usize,
    /// Output width (the number of classes).
    pub outputs: usize,
}

/// Where the weights are and how to check them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsInfo {
    /// Object name inside the package.
    pub object: String,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Record format (`safetensors`, written by burn-store).
    pub format: String,
}

/// A model with its metadata.
#[derive(Debug)]
pub struct ModelPackage {
    /// The model (inference mode).
    pub model: Classifier,
    /// Its metadata.
    pub metadata: PackageMetadata,
    /// Training rows' features and softmax outputs, what live data is compared with to notice a
    /// shift ([`crate::drift`]); `None` for packages without one.
    pub reference: Option<ReferenceSample>,
}

/// What a package describes beyond the model itself, to build its metadata.
#[derive(Debug, Clone, Default)]
pub struct PackageInfo {
    /// Training settings.
    pub train_config: Option<TrainConfig>,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Test evaluation.
    pub test: Option<Evaluation>,
    /// SHA-256 of the manifests used.
    pub manifests_sha256: Vec<String>,
    /// The drift reference sample (see [`crate::train::TrainOutcome::reference`]).
    pub reference: Option<ReferenceSample>,
    /// The lineage of an adapted model.
    pub lineage: Option<Lineage>,
}

/// The model's weights as safetensors bytes written by burn-store, without metadata, so the
/// same weights always give the same bytes (burnpack records embed run-specific parameter ids).
pub fn weights_bytes(model: &Classifier) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).clear_metadata();
    model
        .save_into(&mut store)
        .map_err(|e| store_error("<memory>", e))?;
    store.get_bytes().map_err(|e| store_error("<memory>", e))
}

/// A classifier of `metadata`'s shape with weights from [`weights_bytes`].
pub fn model_from_weights(
    metadata: &PackageMetadata,
    bytes: &[u8],
    device: &Device,
) -> Result<Classifier> {
    let mut model = Classifier::new(
        Backbone::init(metadata.backbone, device),
        metadata.classes.len(),
        0, // every weight is overwritten below
        device,
    );
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = model
        .load_from(&mut store)
        .map_err(|e| store_error("<weights>", e))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(store_error(
            "<weights>",
            format!(
                "weights do not fit the model: missing {:?}, errors {:?}",
                result.missing, result.errors
            ),
        ));
    }
    Ok(model.valid())
}

impl PackageMetadata {
    /// A short name of the model: the first 12 hex digits of its weights' SHA-256 (what the
    /// streaming predictor writes to `cargo_prediction.model_version`).
    pub fn version(&self) -> &str {
        let sha = &self.weights.sha256;
        &sha[..sha.len().min(12)]
    }
}

impl ModelPackage {
    /// A package of `model` with class names, preprocessing and training information.
    pub fn new(
        model: Classifier,
        classes: ClassMap,
        preprocess: Preprocess,
        info: PackageInfo,
    ) -> Result<(Self, Vec<u8>)> {
        let weights = weights_bytes(&model)?;
        let sha = sha256_hex(&weights);
        let backbone = model.backbone.kind();
        let reference_info = info.reference.as_ref().map(|r| {
            let bytes = r.to_bytes();
            let sha = sha256_hex(&bytes);
            WeightsInfo {
                object: format!("reference-{sha}.bin"),
                bytes: bytes.len() as u64,
                sha256: sha,
                format: "mlops-reference".into(),
            }
        });
        let metadata = PackageMetadata {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").into(),
            head: HeadInfo {
                kind: "linear".into(),
                inputs: backbone.features(),
                outputs: classes.len(),
            },
            classes,
            preprocess,
            backbone,
            // Local settings (the feature cache folder) are not part of the model.
            train_config: info.train_config.map(|c| TrainConfig {
                feature_cache: None,
                ..c
            }),
            history: info.history,
            test: info.test,
            manifests_sha256: info.manifests_sha256,
            weights: WeightsInfo {
                object: format!("weights-{sha}.safetensors"),
                bytes: weights.len() as u64,
                sha256: sha,
                format: "safetensors".into(),
            },
            reference: reference_info,
            lineage: info.lineage,
        };
        let package = ModelPackage {
            model,
            metadata,
            reference: info.reference,
        };
        Ok((package, weights))
    }

    /// Saves the package under `uri` (see the module docs): weights first, metadata last.
    /// Blocking; works outside any tokio runtime and inside a multi-thread one (see
    /// [`ModelPackage::save_async`] for async code).
    pub fn save(&self, uri: &str) -> Result<()> {
        let weights = self.checked_weights(uri)?;
        if let Some((info, bytes)) = self.reference_object() {
            put_object(uri, &info.object, bytes)?;
        }
        save_parts(uri, &self.metadata, weights)
    }

    /// The reference sample's object, when the package has one.
    fn reference_object(&self) -> Option<(WeightsInfo, Vec<u8>)> {
        let info = self.metadata.reference.clone()?;
        let bytes = self.reference.as_ref()?.to_bytes();
        Some((info, bytes))
    }

    /// [`ModelPackage::save`] for async code. The weights are serialised before the returned
    /// future starts, so it owns what it writes (it is `Send + 'static`).
    pub fn save_async(
        &self,
        uri: &str,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let parts = self
            .checked_weights(uri)
            .map(|weights| (self.metadata.clone(), weights));
        let reference = self.reference_object();
        let uri = uri.to_string();
        async move {
            let (metadata, weights) = parts?;
            if let Some((info, bytes)) = reference {
                put_object_async(&uri, &info.object, bytes).await?;
            }
            save_parts_async(&uri, &metadata, weights).await
        }
    }

    fn checked_weights(&self, uri: &str) -> Result<Vec<u8>> {
        let weights = weights_bytes(&self.model)?;
        if sha256_hex(&weights) != self.metadata.weights.sha256 {
            return Err(store_error(
                uri,
                "the model's weights changed since the package was made",
            ));
        }
        Ok(weights)
    }

    /// Loads and verifies the package at `uri` onto `device`. Reads only: a missing local
    /// folder is an [`Error::Io`](crate::Error::Io) of kind `NotFound`, nothing is created. Blocking; works
    /// outside any tokio runtime and inside a multi-thread one (see
    /// [`ModelPackage::load_async`] for async code).
    pub fn load(uri: &str, device: &Device) -> Result<Self> {
        let (metadata, weights) = load_parts(uri)?;
        let model = model_from_weights(&metadata, &weights, device)
            .map_err(|e| in_package(uri, &metadata.weights.object, e))?;
        let reference = match &metadata.reference {
            Some(info) => Some(reference_from(uri, &get_checked(uri, info)?)?),
            None => None,
        };
        Ok(ModelPackage {
            model,
            metadata,
            reference,
        })
    }

    /// [`ModelPackage::load`] for async code.
    pub async fn load_async(uri: &str, device: &Device) -> Result<Self> {
        let (metadata, weights) = load_parts_async(uri).await?;
        let model = model_from_weights(&metadata, &weights, device)
            .map_err(|e| in_package(uri, &metadata.weights.object, e))?;
        let reference = match &metadata.reference {
            Some(info) => Some(reference_from(uri, &get_checked_async(uri, info).await?)?),
            None => None,
        };
        Ok(ModelPackage {
            model,
            metadata,
            reference,
        })
    }
}

/// `e` (about `<weights>`) restated for the package at `uri` and its object.
fn in_package(uri: &str, object: &str, e: Error) -> Error {
    match e {
        Error::Package { reason, source, .. } => Error::Package {
            uri: uri.to_string(),
            reason: format!("{object}: {reason}"),
            source,
        },
        other => other,
    }
}

fn reference_from(uri: &str, bytes: &[u8]) -> Result<ReferenceSample> {
    ReferenceSample::from_bytes(bytes).map_err(|e| Error::Package {
        uri: uri.to_string(),
        reason: "the reference sample does not read".into(),
        source: Some(Box::new(e)),
    })
}
