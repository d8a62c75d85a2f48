"""False alarms of our detectors over many reference/pool splits: for every window, a fresh
seeded split of monday's held-out rows into a reference half (fitted anew) and a pool half
the window is drawn from. benches/drift_eval.py measures all windows against one split; this
is the rate over splits, which is what a test's level promises. Writes
target/drift-eval/calibration.json (after drift_eval.py, which trains the model it loads).
"""

import argparse
import json
from pathlib import Path

import numpy as np

import mlops
from mlops import drift

SEED = 2022
SIZES = (5, 10, 20, 50, 100, 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("target/drift-data"))
    parser.add_argument("--out", type=Path, default=Path("target/drift-eval"))
    parser.add_argument("--splits", type=int, default=100, help="splits (one window each) per size")
    args = parser.parse_args()
    model = mlops.Model.load(args.out / "model")
    test = mlops.Manifest.read(args.data / "monday_test.jsonl")
    images = np.stack([mlops.read_image(args.data / "monday" / s.image_path) for s in test])
    if images.ndim == 3:
        images = images[..., None]
    parts = [model.predict_embed(images[i : i + 64]) for i in range(0, len(images), 64)]
    pred = np.concatenate([p[0] for p in parts])
    probs = np.concatenate([p[1] for p in parts])
    feats = np.concatenate([p[2] for p in parts])
    rng = np.random.default_rng(SEED)
    rates = {}
    for size in SIZES:
        alarms = {name: 0 for name in ("mmd", "mmd_by_class", "ks", "bbsd", "classifier")}
        for _ in range(args.splits):
            order = rng.permutation(len(feats))
            ref, pool = order[: len(order) // 2], order[len(order) // 2 :]
            window = rng.choice(pool, size=size, replace=False)
            seed = int(rng.integers(1 << 31))
            checks = {
                "mmd": lambda: drift.detect(feats[ref], feats[window], method="mmd", seed=seed),
                "mmd_by_class": lambda: drift.detect(
                    feats[ref], feats[window], method="mmd", seed=seed,
                    reference_labels=pred[ref], window_labels=pred[window]),
                "ks": lambda: drift.detect(feats[ref], feats[window], method="ks", seed=seed),
                "bbsd": lambda: drift.detect(probs[ref], probs[window], method="bbsd", seed=seed),
                "classifier": lambda: drift.detect(feats[ref], feats[window], method="classifier", seed=seed),
            }
            for name, check in checks.items():
                alarms[name] += check().drift
        rates[str(size)] = {name: count / args.splits for name, count in alarms.items()}
        print(size, rates[str(size)], flush=True)
    (args.out / "calibration.json").write_text(json.dumps({"splits": args.splits, "alarm_rate": rates}, indent=1))


if __name__ == "__main__":
    main()
