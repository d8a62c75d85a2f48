//! Model packages: the model's weights (safetensors, written by burn-store) plus JSON metadata, saved to and loaded from
//! an object store — a local folder (plain path or `file://`, the default), S3 (`s3://bucket/prefix`,
//! configured by the usual `AWS_*` environment variables; `AWS_ALLOW_HTTP=true` for a local
//! server) or process memory (`memory://name`, for tests and notebooks).
//!
//! A package at `URI` is two objects: `URI/weights-<sha256>.safetensors` and `URI/metadata.json`, which
//! names the weights and their checksum. The metadata is written last, in one put, so a
//! package is either complete or not there: a reader never sees half of one. Loading verifies
//! the checksum and refuses packages of an incompatible format.

use std::sync::{Arc, OnceLock};

use burn::module::Module;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::dataset::ClassMap;
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
}

fn store_error(uri: &str, e: impl std::fmt::Display) -> Error {
    Error::Package {
        uri: uri.to_string(),
        reason: e.to_string(),
    }
}

fn memory_stores() -> &'static std::sync::Mutex<std::collections::HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<InMemory>>>> =
        OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// An object store and the prefix inside it for a package URI.
fn open(uri: &str) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(store_error(
                uri,
                "no bucket in the URI (expected s3://bucket/prefix)",
            ));
        }
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| store_error(uri, e))?;
        let prefix = StorePath::parse(prefix).map_err(|e| store_error(uri, e))?;
        return Ok((Arc::new(store), prefix));
    }
    if let Some(rest) = uri.strip_prefix("memory://") {
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stores = memory_stores().lock().map_err(|e| store_error(uri, e))?;
        let store = stores.entry(name.to_string()).or_default().clone();
        let prefix = StorePath::parse(prefix).map_err(|e| store_error(uri, e))?;
        return Ok((store, prefix));
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if uri.contains("://") && !uri.starts_with("file://") {
        return Err(store_error(
            uri,
            "unsupported scheme; use a path, file://, s3:// or memory://",
        ));
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(path)
        .map_err(|e| store_error(uri, e))?;
    Ok((Arc::new(store), StorePath::default()))
}

fn runtime(uri: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| store_error(uri, e))
}

fn child(prefix: &StorePath, name: &str) -> StorePath {
    prefix.clone().join(name)
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
            train_config: info.train_config,
            history: info.history,
            test: info.test,
            manifests_sha256: info.manifests_sha256,
            weights: WeightsInfo {
                object: format!("weights-{sha}.safetensors"),
                bytes: weights.len() as u64,
                sha256: sha,
                format: "safetensors".into(),
            },
        };
        Ok((ModelPackage { model, metadata }, weights))
    }

    /// Saves the package under `uri` (see the module docs): weights first, metadata last.
    pub fn save(&self, uri: &str) -> Result<()> {
        let weights = weights_bytes(&self.model)?;
        if sha256_hex(&weights) != self.metadata.weights.sha256 {
            return Err(store_error(
                uri,
                "the model's weights changed since the package was made",
            ));
        }
        save_parts(uri, &self.metadata, weights)
    }

    /// Loads and verifies the package at `uri` onto `device`.
    pub fn load(uri: &str, device: &Device) -> Result<Self> {
        let (metadata, weights) = load_parts(uri)?;
        let model = model_from_weights(&metadata, &weights, device)?;
        Ok(ModelPackage { model, metadata })
    }
}

/// Writes the weights then the metadata of a package.
pub fn save_parts(uri: &str, metadata: &PackageMetadata, weights: Vec<u8>) -> Result<()> {
    let (store, prefix) = open(uri)?;
    let json = serde_json::to_vec_pretty(metadata).map_err(|e| store_error(uri, e))?;
    runtime(uri)?.block_on(async {
        store
            .put(
                &child(&prefix, &metadata.weights.object),
                PutPayload::from(weights),
            )
            .await
            .map_err(|e| store_error(uri, e))?;
        store
            .put(&child(&prefix, METADATA), PutPayload::from(json))
            .await
            .map_err(|e| store_error(uri, e))?;
        Ok(())
    })
}

/// Reads and checks a package's metadata and weights bytes.
pub fn load_parts(uri: &str) -> Result<(PackageMetadata, Vec<u8>)> {
    let (store, prefix) = open(uri)?;
    runtime(uri)?.block_on(async {
        let meta_bytes = store
            .get(&child(&prefix, METADATA))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    store_error(uri, "no model package here (metadata.json not found)")
                }
                other => store_error(uri, other),
            })?
            .bytes()
            .await
            .map_err(|e| store_error(uri, e))?;
        let value: serde_json::Value = serde_json::from_slice(&meta_bytes)
            .map_err(|e| store_error(uri, format!("metadata.json: {e}")))?;
        check_format(uri, &value)?;
        let metadata: PackageMetadata = serde_json::from_value(value)
            .map_err(|e| store_error(uri, format!("metadata.json: {e}")))?;
        let weights = store
            .get(&child(&prefix, &metadata.weights.object))
            .await
            .map_err(|e| store_error(uri, format!("{}: {e}", metadata.weights.object)))?
            .bytes()
            .await
            .map_err(|e| store_error(uri, e))?
            .to_vec();
        let sha = sha256_hex(&weights);
        if sha != metadata.weights.sha256 {
            return Err(store_error(
                uri,
                format!(
                    "{} is corrupted: sha256 {sha}, expected {}",
                    metadata.weights.object, metadata.weights.sha256
                ),
            ));
        }
        Ok((metadata, weights))
    })
}

fn check_format(uri: &str, value: &serde_json::Value) -> Result<()> {
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(store_error(
            uri,
            format!("not a model package (format `{format}`, expected `{FORMAT}`)"),
        ));
    }
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if version == 0 || version > u64::from(FORMAT_VERSION) {
        let writer = value
            .get("crate_version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        return Err(store_error(
            uri,
            format!(
                "package format version {version} (written by mlops {writer}) is not supported by mlops {} (format version {FORMAT_VERSION}); upgrade mlops",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    Ok(())
}

/// The package URIs directly under `uri` (folders holding a `metadata.json`), sorted.
pub fn list_packages(uri: &str) -> Result<Vec<String>> {
    let (store, prefix) = open(uri)?;
    let base = uri.trim_end_matches('/');
    runtime(uri)?.block_on(async {
        let listing = store
            .list_with_delimiter(if prefix.as_ref().is_empty() {
                None
            } else {
                Some(&prefix)
            })
            .await
            .map_err(|e| store_error(uri, e))?;
        let mut found = Vec::new();
        for dir in listing.common_prefixes {
            if store.head(&child(&dir, METADATA)).await.is_ok() {
                let name = dir.filename().unwrap_or_default().to_string();
                found.push(format!("{base}/{name}"));
            }
        }
        found.sort();
        Ok(found)
    })
}
