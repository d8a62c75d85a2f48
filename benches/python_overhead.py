"""Python-call overhead and numpy corruption, measured from Python (`make bench-python`).

1. Predict: `mlops.Model.predict(batch)` from Python against the same prediction timed inside
   Rust (`_mlops_rs.time_predict_in_rust`, images converted beforehand), batches of 1 and 64,
   demo model (target/demo/models/monday) on demo images.
2. Corruption of numpy arrays: `mlops.corrupt_array` against the same algorithms written with
   Pillow (benches/pillow_compare.py), including numpy <-> PIL conversion, 512x512 RGB.

Prints JSON.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import mlops
from mlops import _mlops_rs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
import pillow_compare  # noqa: E402


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def predict_overhead(model: mlops.Model, images: np.ndarray) -> dict:
    out = {}
    for n, calls in ((1, 20), (64, 2)):
        batch = np.ascontiguousarray(images[:n])
        model.predict(batch)  # warm up
        def python_once() -> None:
            for _ in range(calls):
                model.predict(batch)

        python = best_of(python_once, 3) / calls
        rust = min(_mlops_rs.time_predict_in_rust(model._native, batch, calls) for _ in range(3)) / calls
        out[f"batch_{n}"] = {
            "python_ms": python * 1e3,
            "rust_ms": rust * 1e3,
            "overhead_pct": 100 * (python - rust) / rust,
        }
    return out


def corruption(image: np.ndarray) -> dict:
    out = {}
    for kind in ("random_boxes", "mosaic", "random_line", "mixed"):
        calls = 200
        draw = getattr(pillow_compare, kind)

        def ours_once() -> None:
            # Each result is dropped before the next call, as in the Pillow loop.
            for i in range(calls):
                mlops.corrupt_array(image, kind=kind, seed=i)

        ours = best_of(ours_once, 3) / calls

        def pillow() -> None:
            rng = random.Random(0)
            for _ in range(calls):
                img = Image.fromarray(image)
                draw(img, rng)
                np.asarray(img)

        theirs = best_of(pillow, 3) / calls
        out[kind] = {"mlops_us": ours * 1e6, "pillow_us": theirs * 1e6, "speedup": theirs / ours}
    return out


def main() -> int:
    data = ROOT / "data"
    test = mlops.Manifest.read(data / "monday_test.jsonl")
    images = []
    for p in test.image_paths[:64]:
        a = mlops.read_image(data / "monday" / p)
        images.append(np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a)
    model = mlops.Model.load(ROOT / "target/demo/models/monday")
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    print(json.dumps({"predict": predict_overhead(model, np.stack(images)), "corrupt_512": corruption(big)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
