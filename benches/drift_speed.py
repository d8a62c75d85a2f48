"""Time per check, ours against the peers, on an otherwise idle machine: the first 10 windows of
20 and 100 rows of the "no shift (random)" condition of benches/drift_eval.py, same reference.
Peers' times come from `drift_peers.py --conditions "no shift (random)" --windows 10 --sizes
20,100 --output peers-quiet.json` run just before (`make bench-drift` does both). Both sides are
timed the same way: the fit on the reference (detector construction) on its own, then one
untimed warm-up check, then the mean of the timed checks.
"""

import json
import time
from pathlib import Path

import numpy as np

from mlops import drift

D = Path("target/drift-eval")


def main() -> None:
    feats = np.load(D / "reference_features.npy")
    probs = np.load(D / "reference_probs.npy")
    pred = np.load(D / "reference_pred.npy")
    summary = json.loads((D / "results.json").read_text())
    # Loaded once: every access to an .npz member decompresses it again.
    cond = dict(np.load(D / summary["conditions"][0]["file"]))
    makers = {
        "mmd": (lambda: drift.Detector(feats, method="mmd"), "feats", False),
        "mmd_by_class": (lambda: drift.Detector(feats, method="mmd", labels=pred), "feats", True),
        "ks": (lambda: drift.Detector(feats, method="ks"), "feats", False),
        "bbsd": (lambda: drift.Detector(probs, method="bbsd"), "probs", False),
        "classifier": (lambda: drift.Detector(feats, method="classifier"), "feats", False),
    }
    fitted, fit_ms = {}, {}
    for name, (make, source, labelled) in makers.items():
        start = time.perf_counter()
        fitted[name] = (make(), source, labelled)
        fit_ms[name] = 1000 * (time.perf_counter() - start)
    for det, source, labelled in fitted.values():  # warm up (thread pool, caches)
        w = cond["windows_20"][0]
        det.check(cond[source][w], labels=cond["pred"][w] if labelled else None)
    ours = {}
    for size in (20, 100):
        windows = cond[f"windows_{size}"][:10]
        for name, (det, source, labelled) in fitted.items():
            start = time.perf_counter()
            for w in windows:
                det.check(cond[source][w], labels=cond["pred"][w] if labelled else None)
            ours.setdefault(name, {})[str(size)] = 1000 * (time.perf_counter() - start) / len(windows)
    quiet = json.loads((D / "peers-quiet.json").read_text())
    peers = quiet["peers"][summary["conditions"][0]["name"]]
    peer_fit = quiet.get("fit_ms", {})
    print("| detector | fit on the reference (ms) | check, n=20 (ms) | check, n=100 (ms) |\n|---|---|---|---|")
    for name, cells in ours.items():
        print(f"| {name} | {fit_ms[name]:.1f} | {cells['20']:.2f} | {cells['100']:.2f} |")
    for name, cells in peers.items():
        fit = f"{peer_fit[name]:.1f}" if name in peer_fit else "-"
        print(f"| {name} | {fit} | {cells['20']['ms_per_check']:.1f} | {cells['100']['ms_per_check']:.1f} |")


if __name__ == "__main__":
    main()
