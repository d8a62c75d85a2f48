//! Where packages live: opening a URI as an object store and prefix, and the async reads and
//! writes of a package's two objects, with blocking twins that work wherever they are called
//! from (see [`crate::blocking`]).

use std::sync::{Arc, Mutex, OnceLock};

use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{FORMAT, FORMAT_VERSION, METADATA, PackageMetadata, WeightsInfo};
use crate::blocking::block_on;
use crate::error::{Error, Result};
use crate::seed::sha256_hex;

/// A package error at `uri` with a message.
pub(crate) fn store_error(uri: &str, reason: impl std::fmt::Display) -> Error {
    Error::Package {
        uri: uri.to_string(),
        reason: reason.to_string(),
        source: None,
    }
}

/// A package error at `uri` caused by the object store's `error`, kept as the source.
fn object_error(uri: &str, what: &str, error: object_store::Error) -> Error {
    Error::Package {
        uri: uri.to_string(),
        reason: what.to_string(),
        source: Some(Box::new(error)),
    }
}

/// A package URI whose prefix is not a valid object path.
fn path_error(uri: &str, error: object_store::path::Error) -> Error {
    Error::Package {
        uri: uri.to_string(),
        reason: "not a valid object path".into(),
        source: Some(Box::new(error)),
    }
}

/// A package's `metadata.json` that could not be read or written.
fn json_error(uri: &str, error: serde_json::Error) -> Error {
    Error::Json {
        what: format!("model package {uri}: {METADATA}"),
        source: error,
    }
}

type MemoryStores = Mutex<std::collections::HashMap<String, Arc<InMemory>>>;

fn memory_stores() -> &'static MemoryStores {
    static STORES: OnceLock<MemoryStores> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// Whether an opening may create what is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// An object store and the prefix inside it for a package URI. Reading never creates
/// anything: a missing local folder is [`Error::Io`] with kind `NotFound`.
fn open(uri: &str, access: Access) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    if let Some(rest) = uri.strip_prefix("s3://") {
        return open_s3(uri, rest);
    }
    if let Some(rest) = uri.strip_prefix("memory://") {
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stores = memory_stores()
            .lock()
            .map_err(|_| store_error(uri, "the in-memory store was poisoned by a panic"))?;
        let store = stores.entry(name.to_string()).or_default().clone();
        let prefix = StorePath::parse(prefix).map_err(|e| path_error(uri, e))?;
        return Ok((store, prefix));
    }
    if uri.contains("://") && !uri.starts_with("file://") {
        return Err(store_error(
            uri,
            "unsupported scheme; use a path, file://, s3:// or memory://",
        ));
    }
    let path = std::path::Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    match access {
        Access::Write => std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?,
        Access::Read => {
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
            if !meta.is_dir() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "a model package is a folder",
                    ),
                ));
            }
        }
    }
    let store = object_store::local::LocalFileSystem::new_with_prefix(path)
        .map_err(|e| object_error(uri, "open the folder", e))?;
    Ok((Arc::new(store), StorePath::default()))
}

#[cfg(feature = "s3")]
fn open_s3(uri: &str, rest: &str) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
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
        .map_err(|e| object_error(uri, "configure S3", e))?;
    let prefix = StorePath::parse(prefix).map_err(|e| path_error(uri, e))?;
    Ok((Arc::new(store), prefix))
}

#[cfg(not(feature = "s3"))]
fn open_s3(uri: &str, _rest: &str) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    Err(store_error(
        uri,
        "S3 support is not compiled in (enable the `s3` feature of mlops-core)",
    ))
}

/// `prefix/name`; a `/` in `name` separates folders.
fn child(prefix: &StorePath, name: &str) -> StorePath {
    name.split('/')
        .filter(|part| !part.is_empty())
        .fold(prefix.clone(), |path, part| path.join(part))
}

/// Writes the weights then the metadata of a package (blocking; see [`save_parts_async`]).
pub fn save_parts(uri: &str, metadata: &PackageMetadata, weights: Vec<u8>) -> Result<()> {
    block_on("save_parts", save_parts_async(uri, metadata, weights))?
}

/// Writes the weights then the metadata of a package.
pub async fn save_parts_async(
    uri: &str,
    metadata: &PackageMetadata,
    weights: Vec<u8>,
) -> Result<()> {
    let (store, prefix) = open(uri, Access::Write)?;
    let json = serde_json::to_vec_pretty(metadata).map_err(|e| json_error(uri, e))?;
    store
        .put(
            &child(&prefix, &metadata.weights.object),
            PutPayload::from(weights),
        )
        .await
        .map_err(|e| object_error(uri, "write the weights", e))?;
    store
        .put(&child(&prefix, METADATA), PutPayload::from(json))
        .await
        .map_err(|e| object_error(uri, "write metadata.json", e))?;
    Ok(())
}

/// Writes one object of a package (blocking).
pub(crate) fn put_object(uri: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
    block_on("put_object", put_object_async(uri, name, bytes))?
}

/// Writes one object of a package.
pub(crate) async fn put_object_async(uri: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
    let (store, prefix) = open(uri, Access::Write)?;
    store
        .put(&child(&prefix, name), PutPayload::from(bytes))
        .await
        .map_err(|e| object_error(uri, name, e))?;
    Ok(())
}

/// Writes one object only if no object of that name exists (atomic on every store: a
/// no-clobber link on a folder, `If-None-Match` on S3, a lock in memory). `Ok(false)` when
/// another writer created it first.
pub(crate) async fn put_new_async(uri: &str, name: &str, bytes: Vec<u8>) -> Result<bool> {
    let (store, prefix) = open(uri, Access::Write)?;
    let options = PutOptions::from(PutMode::Create);
    match store
        .put_opts(&child(&prefix, name), PutPayload::from(bytes), options)
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(object_error(uri, name, e)),
    }
}

/// The names of the objects directly under `uri/folder`, sorted; an absent folder (or
/// registry) has none. Writes nothing.
pub(crate) async fn list_names_async(uri: &str, folder: &str) -> Result<Vec<String>> {
    let (store, prefix) = match open(uri, Access::Read) {
        Ok(opened) => opened,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let folder = child(&prefix, folder);
    let listing = match store.list_with_delimiter(Some(&folder)).await {
        Ok(listing) => listing,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(object_error(uri, "list", e)),
    };
    let mut names: Vec<String> = listing
        .objects
        .iter()
        .filter_map(|o| o.location.filename().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// The bytes of the object `name` under `uri`, `None` when there is none. Writes nothing.
pub(crate) async fn get_object_async(uri: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let (store, prefix) = open(uri, Access::Read)?;
    match store.get(&child(&prefix, name)).await {
        Ok(found) => Ok(Some(
            found
                .bytes()
                .await
                .map_err(|e| object_error(uri, name, e))?
                .to_vec(),
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(object_error(uri, name, e)),
    }
}

/// Reads one object named by the metadata and checks its SHA-256 (blocking).
pub(crate) fn get_checked(uri: &str, info: &WeightsInfo) -> Result<Vec<u8>> {
    block_on("get_checked", get_checked_async(uri, info))?
}

/// Reads one object named by the metadata and checks its SHA-256; writes nothing.
pub(crate) async fn get_checked_async(uri: &str, info: &WeightsInfo) -> Result<Vec<u8>> {
    let (store, prefix) = open(uri, Access::Read)?;
    read_checked(store.as_ref(), &prefix, uri, info).await
}

/// The object `info` names under `prefix`, refused when its SHA-256 differs.
async fn read_checked(
    store: &dyn ObjectStore,
    prefix: &StorePath,
    uri: &str,
    info: &WeightsInfo,
) -> Result<Vec<u8>> {
    let object = &info.object;
    let bytes = store
        .get(&child(prefix, object))
        .await
        .map_err(|e| object_error(uri, object, e))?
        .bytes()
        .await
        .map_err(|e| object_error(uri, object, e))?
        .to_vec();
    let sha = sha256_hex(&bytes);
    if sha != info.sha256 {
        return Err(store_error(
            uri,
            format!(
                "{object} is corrupted: sha256 {sha}, expected {}",
                info.sha256
            ),
        ));
    }
    Ok(bytes)
}

/// Reads and checks a package's metadata and weights bytes (blocking; see
/// [`load_parts_async`]).
pub fn load_parts(uri: &str) -> Result<(PackageMetadata, Vec<u8>)> {
    block_on("load_parts", load_parts_async(uri))?
}

/// Reads and checks a package's metadata and weights bytes; writes nothing.
pub async fn load_parts_async(uri: &str) -> Result<(PackageMetadata, Vec<u8>)> {
    let (store, prefix) = open(uri, Access::Read)?;
    let meta_bytes = store
        .get(&child(&prefix, METADATA))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                store_error(uri, "no model package here (metadata.json not found)")
            }
            other => object_error(uri, "read metadata.json", other),
        })?
        .bytes()
        .await
        .map_err(|e| object_error(uri, "read metadata.json", e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&meta_bytes).map_err(|e| json_error(uri, e))?;
    check_format(uri, &value)?;
    let metadata: PackageMetadata =
        serde_json::from_value(value).map_err(|e| json_error(uri, e))?;
    let weights = read_checked(store.as_ref(), &prefix, uri, &metadata.weights).await?;
    Ok((metadata, weights))
}

/// The package URIs directly under `uri` (folders holding a `metadata.json`), sorted
/// (blocking; see [`list_packages_async`]).
pub fn list_packages(uri: &str) -> Result<Vec<String>> {
    block_on("list_packages", list_packages_async(uri))?
}

/// Copies the package at `from` to `to` object by object (reference sample, weights, then the
/// metadata last), each checked against its SHA-256 on the way; returns its metadata. The copy
/// has the same bytes and so the same version.
pub async fn copy_package_async(from: &str, to: &str) -> Result<PackageMetadata> {
    let (metadata, weights) = load_parts_async(from).await?;
    if let Some(info) = &metadata.reference {
        let bytes = get_checked_async(from, info).await?;
        put_object_async(to, &info.object, bytes).await?;
    }
    save_parts_async(to, &metadata, weights).await?;
    Ok(metadata)
}

/// The package URIs directly under `uri`, sorted; writes nothing (a missing local folder is
/// [`Error::Io`] with kind `NotFound`).
pub async fn list_packages_async(uri: &str) -> Result<Vec<String>> {
    let (store, prefix) = open(uri, Access::Read)?;
    let base = uri.trim_end_matches('/');
    let listing = store
        .list_with_delimiter(if prefix.as_ref().is_empty() {
            None
        } else {
            Some(&prefix)
        })
        .await
        .map_err(|e| object_error(uri, "list", e))?;
    let mut found = Vec::new();
    for dir in listing.common_prefixes {
        if store.head(&child(&dir, METADATA)).await.is_ok() {
            let name = dir.filename().unwrap_or_default().to_string();
            found.push(format!("{base}/{name}"));
        }
    }
    found.sort();
    Ok(found)
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
