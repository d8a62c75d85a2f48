"""ImageNet-C side by side: ours (mlops) against imagecorruptions 1.1.2 (with the compatibility
fixes of mlops-py/tests/imagenet_c_reference.py), every corruption at every severity, on one
core, 224 and 512 px photos, in one run. Writes target/bench-results/imagenet_c.json and prints
a markdown table of median times and ratios.

    make bench-corrupt-peer
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "mlops-py" / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import mlops  # noqa: E402
from imagenet_c_reference import NAMES, reference  # noqa: E402

cv2.setNumThreads(1)


def photo(size: int) -> np.ndarray:
    files = sorted((ROOT / "data" / "monday").glob("*/*.png"))
    if not files:
        sys.exit("no photos under data/monday: run `make demo-data`")
    return np.array(Image.open(files[7]).convert("RGB").resize((size, size), Image.BILINEAR))


def median_time(fn, budget: float, least: int = 3) -> float:
    times = []
    start = time.perf_counter()
    while len(times) < least or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    severities = [int(s) for s in os.environ.get("SEVERITIES", "1,2,3,4,5").split(",")]
    rows = []
    for size in (224, 512):
        image = photo(size)
        for name in NAMES:
            for severity in severities:
                ours = median_time(lambda: mlops.corrupt.image(image, name, severity=severity, seed=1), 0.3)
                budget = 0.3 if name != "glass_blur" else 0.0
                ref = median_time(lambda: reference(image, name, severity, 1), budget, least=1 if name == "glass_blur" else 3)
                rows.append({"size": size, "name": name, "severity": severity, "ours_ms": ours * 1e3, "reference_ms": ref * 1e3})
                print(f"{size} {name} {severity}: ours {ours * 1e3:.2f} ms, reference {ref * 1e3:.2f} ms, {ref / ours:.1f}x", file=sys.stderr)
    out = ROOT / "target" / "bench-results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "imagenet_c.json").write_text(json.dumps(rows, indent=1))
    print("| corruption | 224 px ours (ms) | 224 px reference (ms) | speed-up | 512 px ours (ms) | 512 px reference (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for name in NAMES:
        cells = []
        for size in (224, 512):
            sel = [r for r in rows if r["name"] == name and r["size"] == size]
            o = statistics.median(r["ours_ms"] for r in sel)
            f = statistics.median(r["reference_ms"] for r in sel)
            summary.setdefault(size, []).append(f / o)
            cells += [f"{o:.2f}", f"{f:.2f}", f"{f / o:.1f}x"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for size, ratios in summary.items():
        print(f"\n{size} px: median speed-up over the 19 {statistics.median(ratios):.1f}x, lowest {min(ratios):.2f}x")


if __name__ == "__main__":
    main()
