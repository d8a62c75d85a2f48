#!/usr/bin/env python3
"""Predicting a folder end to end, the way a user of ONNX Runtime would write it: Pillow opens,
converts and resizes each image (BILINEAR, 256 px), numpy normalises, ONNX Runtime runs the
backbone in batches of 32, numpy applies the package's linear head. Timed against our
`predict` example on the same manifest, in one run (`make bench-ort`).

Uses the ONNX graph benches/ort_forward.py exports (target/bench-results/lite0-256.onnx) and
the head of a model package (default: the demo's, target/demo/models/monday). Checks that both
sides predict the same classes. Prints JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def head_of(package: Path):
    """The linear head (weight [1280, classes], bias) from the package's safetensors file."""
    path = glob.glob(str(package / "weights-*.safetensors"))[0]
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()

    def tensor(name):
        entry = header[name]
        start, end = entry["data_offsets"]
        return np.frombuffer(data[start:end], dtype=np.float32).reshape(entry["shape"])

    return tensor("head.weight"), tensor("head.bias")


def ort_predict(paths, sess, weight, bias, size=256, batch=32):
    out = []
    for i in range(0, len(paths), batch):
        images = []
        for p in paths[i:i + batch]:
            with Image.open(p) as im:
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.float32))
        x = (np.stack(images) / 255.0 - 0.5) / 0.5
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)
        features = sess.run(None, {"x": x})[0]
        out.extend(np.argmax(features @ weight + bias, axis=1).tolist())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default=str(ROOT / "target/demo/models/monday"))
    parser.add_argument("--root", default=str(ROOT / "data/monday"))
    parser.add_argument("--manifest", default=str(ROOT / "data/monday.jsonl"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    onnx = ROOT / "target/bench-results/lite0-256.onnx"
    if not onnx.exists():
        sys.exit(f"{onnx} is missing: run benches/ort_forward.py first (make bench-ort does)")
    rows = [json.loads(line) for line in open(args.manifest)]
    paths = [str(Path(args.root) / r["image_path"]) for r in rows]
    weight, bias = head_of(Path(args.package))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])

    peer, ours, peer_classes = [], [], None
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    for _ in range(args.runs):
        start = time.perf_counter()
        peer_classes = ort_predict(paths, sess, weight, bias)
        peer.append(time.perf_counter() - start)
        start = time.perf_counter()
        run = subprocess.run([str(ROOT / "target/release/examples/predict"), "--model", args.package,
                              "--root", args.root, "--manifest", args.manifest],
                             cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        ours.append(time.perf_counter() - start)
    our_classes = [int(line.split("\t")[1]) for line in run.stdout.splitlines()]
    agree = sum(a == b for a, b in zip(our_classes, peer_classes)) / len(paths)
    result = {"images": len(paths), "threads": args.threads,
              "onnxruntime_pillow_seconds": sorted(peer)[len(peer) // 2],
              "ours_seconds": sorted(ours)[len(ours) // 2],
              "same_class": agree}
    result["ours_speedup"] = result["onnxruntime_pillow_seconds"] / result["ours_seconds"]
    print(f"predict {len(paths)} images: ONNX Runtime + Pillow {result['onnxruntime_pillow_seconds']:.2f} s, "
          f"ours {result['ours_seconds']:.2f} s (process start and model load included), "
          f"same class for {agree:.1%}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
