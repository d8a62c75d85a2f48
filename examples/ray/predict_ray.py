"""Batch prediction over a folder of images with Ray Data: one loaded model per actor.

    .venv/bin/python examples/ray/predict_ray.py --model target/demo/models/monday \
        --root data/tuesday --manifest data/tuesday_test.jsonl --out target/ray-predictions

Each actor of the pool loads the model package once (from a folder or ``s3://``) and predicts
batches of ``image_path`` rows with ``mlops.Model.predict_paths``; the results are written as
Parquet. See :mod:`mlops.ray_data` for how it maps onto a cluster (``--address auto``).
"""

from __future__ import annotations

import argparse

import mlops
from mlops.ray_data import predict_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model package: folder or s3:// URI")
    parser.add_argument("--root", required=True, help="folder the manifest's image paths are relative to")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True, help="folder for the Parquet files")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local instance)")
    args = parser.parse_args()
    manifest = mlops.Manifest.read(args.manifest)
    predict_manifest(args.model, args.root, manifest, args.out, actors=args.actors, address=args.address)


if __name__ == "__main__":
    main()
