"""Batch prediction with Ray Data: one loaded model per actor, for buckets of millions of
images on a laptop or a cluster. Needs ``ray[data]`` (imported when used).

On a cluster the same call runs after ``ray.init(address="auto")``: the rows are split into
blocks spread over the nodes, each node's actors load the model package once (so it must be an
``s3://`` URI, or a path every node sees), the images must be reachable from every node (a
shared file system), ``actors`` sets the pool size and ``cpus_per_actor`` the cores Ray gives
each actor (its predictions use them all, the GIL released).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

import mlops
from mlops.paths import resolve_under


class Predictor:
    """A Ray Data callable class: loads the package once per actor."""

    def __init__(self, package: str, data_root: str) -> None:
        self.model = mlops.Model.load(package)
        self.root = data_root

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        relatives = [str(p) for p in batch["image_path"]]
        for relative in relatives:
            resolve_under(self.root, relative)  # a path out of the root fails the batch, named
        predictions = self.model.predict_under(self.root, relatives)
        return {
            "image_path": batch["image_path"],
            "target": np.array([-1 if p.target is None else p.target for p in predictions], dtype=np.int64),
            "confidence": np.array(
                [max(p.probabilities) if p.probabilities else float("nan") for p in predictions], dtype=np.float32
            ),
            "error": np.array([p.error or "" for p in predictions], dtype=object),
            "model_version": np.array([self.model.version] * len(predictions), dtype=object),
        }


def predict_manifest(
    package: str,
    data_root: str,
    manifest: mlops.Manifest,
    out: str,
    *,
    actors: int = 2,
    cpus_per_actor: float = 1.0,
    batch_size: int = 64,
    address: Optional[str] = None,
) -> None:
    """Predicts every row of ``manifest`` with a pool of ``actors`` actors and writes Parquet
    files to ``out``. ``address=None`` starts a local Ray instance."""
    ray = _ray(address)
    rows = [{"image_path": s.image_path} for s in manifest.samples]
    _predict_with_pool(
        ray.data.from_items(rows),
        Predictor,
        (package, str(Path(data_root).absolute())),
        out,
        actors=actors,
        cpus_per_actor=cpus_per_actor,
        batch_size=batch_size,
    )


def _ray(address: Optional[str]) -> Any:
    """The ray module, initialised (a local instance when ``address`` is None)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def _predict_with_pool(
    dataset: Any, predictor: type, args: tuple, out: str, *, actors: int, cpus_per_actor: float, batch_size: int
) -> None:
    """Maps ``dataset`` through an actor pool of ``predictor(*args)`` and writes Parquet to ``out``."""
    dataset.map_batches(
        predictor,
        fn_constructor_args=args,
        batch_size=batch_size,
        concurrency=actors,
        num_cpus=cpus_per_actor,
        batch_format="numpy",
    ).write_parquet(out)


class ImagePredictor:
    """A Ray Data callable class for decoded images (``read_images`` rows): loads the package
    once per actor and predicts each image array (images may differ in size)."""

    def __init__(self, package: str) -> None:
        self.model = mlops.Model.load(package)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        targets, confidences = [], []
        for image in batch["image"]:
            target, probabilities = self.model.predict(np.asarray(image, dtype=np.uint8))
            targets.append(int(target[0]))
            confidences.append(float(probabilities[0].max()))
        return {
            "path": batch["path"],
            "target": np.array(targets, dtype=np.int64),
            "confidence": np.array(confidences, dtype=np.float32),
            "model_version": np.array([self.model.version] * len(targets), dtype=object),
        }


def predict_images(
    package: str,
    source: str,
    out: str,
    *,
    actors: int = 2,
    cpus_per_actor: float = 1.0,
    batch_size: int = 64,
    address: Optional[str] = None,
) -> None:
    """Predicts every image under ``source`` (a folder, or ``s3://bucket/prefix`` read through
    pyarrow's file systems with the usual ``AWS_*`` settings) and writes Parquet files with the
    path, class id, confidence and model version to ``out``. Reading needs CPUs too: leave
    some outside the actors (``actors * cpus_per_actor`` below the cluster's CPUs), or the
    readers wait for CPUs the actors hold."""
    ray = _ray(address)
    images = ray.data.read_images(source, mode="RGB", include_paths=True)
    _predict_with_pool(
        images, ImagePredictor, (package,), out, actors=actors, cpus_per_actor=cpus_per_actor, batch_size=batch_size
    )
