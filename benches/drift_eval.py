"""How well the drift detectors work on real photos: power under graded shifts, false alarms
without a shift, time per check. Writes target/drift-eval/ (features, windows, results.json),
which benches/drift_peers.py (Evidently, alibi-detect) and benches/drift_report.py read.

Run with `make bench-drift` (it generates the data set, then runs the three scripts).

Data: `demo_data --train-per-class 160 --test-per-class 200` (the demo's recipe with a larger
held-out set). A frozen-backbone model is trained on monday's training rows. Monday's
held-out rows are split in two (seeded): one half is the reference (embeddings and softmax
outputs, as a model package stores its test rows), the other is the pool of live rows: "no
shift" windows are drawn from it, and each shift is applied to its images. One more
condition compares the same no-shift windows with a reference of training rows.
"""

import argparse
import io
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image, ImageFilter

import mlops
from mlops import drift

WINDOW_SIZES = (5, 10, 20, 50, 100, 200)
SEED = 2022


def box_params(fraction: float, size: int) -> dict:
    side = int(round((fraction * size * size) ** 0.5))
    one = {"min": 1, "max": 1}
    return {"count": one, "width": {"min": side, "max": side}, "height": {"min": side, "max": side}}


def shifts(size: int) -> Dict[str, Tuple[str, float, Callable[[np.ndarray, int], np.ndarray]]]:
    """name -> (family, severity, function(image, seed))."""

    def corrupt(kind: str, params=None):
        return lambda img, seed: mlops.corrupt_array(img, kind=kind, seed=seed, params=params)[0]

    def pil(fn):
        def apply(img, seed):
            return np.asarray(fn(Image.fromarray(img), seed))

        return apply

    def brightness(delta):
        return lambda img, seed: np.clip(img.astype(np.int16) + delta, 0, 255).astype(np.uint8)

    def contrast(factor):
        def apply(img, seed):
            mean = img.mean()
            return np.clip((img.astype(np.float32) - mean) * factor + mean, 0, 255).astype(np.uint8)

        return apply

    def noise(std):
        def apply(img, seed):
            rng = np.random.default_rng(seed)
            return np.clip(img + rng.normal(0, std, img.shape), 0, 255).astype(np.uint8)

        return apply

    def jpeg(quality):
        def fn(image, seed):
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)

        return pil(fn)

    def blur(radius):
        return pil(lambda image, seed: image.filter(ImageFilter.GaussianBlur(radius)))

    out = {}
    for pct in (2, 5, 10):
        out[f"box {pct}%"] = ("random_boxes", pct, corrupt("random_boxes", box_params(pct / 100, size)))
        out[f"mosaic {pct}%"] = ("mosaic", pct, corrupt("mosaic", box_params(pct / 100, size)))
        width = max(1, int(round(pct / 100 * size)))
        out[f"line {pct}%"] = ("random_line", pct, corrupt("random_line", {"width": {"min": width, "max": width}}))
    for kind in ("random_boxes", "mosaic", "random_line", "mixed"):
        out[f"{kind} default"] = (kind, 100, corrupt(kind))
    for level, (delta, factor, radius, std, quality) in enumerate(
        [(20, 0.8, 1.0, 5, 50), (40, 0.6, 2.0, 10, 20), (70, 0.4, 3.0, 20, 8)], start=1
    ):
        out[f"brightness +{delta}"] = ("brightness", level, brightness(delta))
        out[f"contrast x{factor}"] = ("contrast", level, contrast(factor))
        out[f"blur {radius:g}px"] = ("blur", level, blur(radius))
        out[f"noise sd {std}"] = ("noise", level, noise(std))
        out[f"jpeg q{quality}"] = ("jpeg", level, jpeg(quality))
    return out


def load(root: Path, manifest: mlops.Manifest) -> Tuple[np.ndarray, np.ndarray]:
    images = np.stack([mlops.read_image(root / s.image_path) for s in manifest])
    return images, manifest.targets


def features(model: mlops.Model, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    if images.ndim == 3:  # N x H x W grey: one channel
        images = images[..., None]
    targets, probs, feats = [], [], []
    for start in range(0, len(images), 64):
        t, p, f = model.predict_embed(images[start : start + 64])
        targets.append(t)
        probs.append(p)
        feats.append(f)
    return np.concatenate(targets), np.concatenate(probs), np.concatenate(feats)


def windows(pool: int, size: int, count: int, rng: np.random.Generator, targets=None, prior=None) -> np.ndarray:
    """`count` windows of `size` distinct pool indices: uniform, or with class weights `prior`."""
    out = []
    for _ in range(count):
        if prior is None:
            out.append(rng.choice(pool, size=min(size, pool), replace=False))
        else:
            weights = prior[targets]
            out.append(rng.choice(pool, size=min(size, pool), replace=False, p=weights / weights.sum()))
    return np.stack(out)


def ordered_windows(order: np.ndarray, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Windows of consecutive rows of a table loaded class by class."""
    starts = rng.integers(0, len(order) - size + 1, size=count)
    return np.stack([order[s : s + size] for s in starts])


DETECTORS = ("mmd", "mmd_by_class", "ks", "bbsd", "classifier")


def fit_ours(ref_feats, ref_probs, ref_pred) -> Dict:
    return {
        "mmd": drift.Detector(ref_feats, method="mmd", seed=SEED),
        "mmd_by_class": drift.Detector(ref_feats, method="mmd", seed=SEED, labels=ref_pred),
        "ks": drift.Detector(ref_feats, method="ks", seed=SEED),
        "bbsd": drift.Detector(ref_probs, method="bbsd", seed=SEED),
        "classifier": drift.Detector(ref_feats, method="classifier", seed=SEED),
    }


def run_ours(ref_feats, ref_probs, ref_pred, conditions, sizes, out: Dict) -> None:
    train_reference = fit_ours(ref_feats, ref_probs, ref_pred)
    for name, cond in conditions.items():
        own = cond.get("reference")
        fitted = train_reference if own is None else fit_ours(own["feats"], own["probs"], own["pred"])
        for size in cond["windows"]:
            idx = cond["windows"][size]
            for det_name, det in fitted.items():
                alarms, seconds = 0, 0.0
                for w in idx:
                    start = time.perf_counter()
                    if det_name == "bbsd":
                        r = det.check(cond["probs"][w])
                    elif det_name == "mmd_by_class":
                        r = det.check(cond["feats"][w], labels=cond["pred"][w])
                    else:
                        r = det.check(cond["feats"][w])
                    seconds += time.perf_counter() - start
                    alarms += r.drift
                out.setdefault(name, {}).setdefault(det_name, {})[str(size)] = {
                    "alarm_rate": alarms / len(idx),
                    "ms_per_check": 1000 * seconds / len(idx),
                }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("target/drift-data"))
    parser.add_argument("--wheels", type=Path, default=Path(".cache/wheels"))
    parser.add_argument("--out", type=Path, default=Path("target/drift-eval"))
    parser.add_argument("--windows", type=int, default=100, help="random windows per cell")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = args.data / "monday"
    train_m = mlops.Manifest.read(args.data / "monday_train.jsonl")
    test_m = mlops.Manifest.read(args.data / "monday_test.jsonl")
    classes = sorted({s.image_path.split("/")[0] for s in train_m})
    package = args.out / "model"
    if (package / "metadata.json").exists():
        model = mlops.Model.load(package)
    else:
        model = mlops.train(root, train_m, test_m, classes, weights=args.wheels, seed=SEED).model
        model.save(package)

    train_images, _ = load(root, train_m)
    all_images, all_targets = load(root, test_m)
    train_pred, train_probs, train_feats = features(model, train_images)
    all_pred, all_probs, all_feats = features(model, all_images)
    clean_acc = float((all_pred == all_targets).mean())
    rng = np.random.default_rng(SEED)
    # The held-out rows split in two: the reference (what a package stores: rows the head was
    # not fitted on) and the pool live windows are drawn from.
    half = rng.permutation(len(all_images))
    ref_rows, pool_rows = np.sort(half[: len(half) // 2]), np.sort(half[len(half) // 2 :])
    ref_feats, ref_probs, ref_pred = all_feats[ref_rows], all_probs[ref_rows], all_pred[ref_rows]
    feats, probs, pred = all_feats[pool_rows], all_probs[pool_rows], all_pred[pool_rows]
    test_images, test_targets = all_images[pool_rows], all_targets[pool_rows]
    pool = len(pool_rows)
    sizes = [s for s in WINDOW_SIZES if s <= pool]
    np.save(args.out / "reference_features.npy", ref_feats)
    np.save(args.out / "reference_probs.npy", ref_probs)
    np.save(args.out / "reference_pred.npy", ref_pred)

    conditions: Dict[str, Dict] = {}

    def add(name, family, severity, c_pred, c_probs, c_feats, targets, wins):
        conditions[name] = {
            "family": family,
            "severity": severity,
            "accuracy": float((c_pred == targets).mean()),
            "pred": c_pred,
            "probs": c_probs,
            "feats": c_feats,
            "windows": wins,
        }

    add("no shift (random)", "none", 0, pred, probs, feats, test_targets,
        {s: windows(pool, s, args.windows, rng) for s in sizes})
    order = np.argsort(test_targets, kind="stable")
    add("no shift (table order)", "none", 0, pred, probs, feats, test_targets,
        {s: ordered_windows(order, s, args.windows, rng) for s in sizes})
    # The same windows against a reference of training rows instead.
    add("no shift, training-row reference", "none", 0, pred, probs, feats, test_targets,
        {s: windows(pool, s, args.windows, rng) for s in sizes})
    conditions["no shift, training-row reference"]["reference"] = {
        "feats": train_feats, "probs": train_probs, "pred": train_pred}
    prior = np.ones(len(classes))
    prior[0] = 3.0
    add(f"label prior ({classes[0]} x3)", "prior", 3, pred, probs, feats, test_targets,
        {s: windows(pool, s, args.windows, rng, test_targets, prior) for s in sizes})

    size = test_images.shape[1]
    for name, (family, severity, fn) in shifts(size).items():
        shifted = np.stack([fn(img, SEED + i) for i, img in enumerate(test_images)])
        s_pred, s_probs, s_feats = features(model, shifted)
        add(name, family, severity, s_pred, s_probs, s_feats, test_targets,
            {s: windows(pool, s, args.windows, rng) for s in sizes})
        print(f"{name}: accuracy {conditions[name]['accuracy']:.3f}", flush=True)

    results: Dict = {}
    run_ours(ref_feats, ref_probs, ref_pred, conditions, sizes, results)

    # What the peers need: every condition's features, probabilities and windows.
    for i, (name, cond) in enumerate(conditions.items()):
        own = cond.get("reference") or {}
        np.savez_compressed(
            args.out / f"condition_{i:02d}.npz",
            feats=cond["feats"], probs=cond["probs"], pred=cond["pred"],
            **{f"windows_{s}": cond["windows"][s] for s in cond["windows"]},
            **{f"reference_{k}": v for k, v in own.items()},
        )
    summary = {
        "clean_accuracy": clean_acc,
        "reference_rows": int(len(ref_feats)),
        "pool_rows": pool,
        "windows_per_cell": args.windows,
        "window_sizes": sizes,
        "classes": classes,
        "conditions": [
            {
                "file": f"condition_{i:02d}.npz",
                "name": name,
                "family": cond["family"],
                "severity": cond["severity"],
                "accuracy": cond["accuracy"],
                "reference": "training rows" if "reference" in cond else "held-out rows",
                "window_sizes": [int(s) for s in cond["windows"]],
                "accuracy_drop_points": 100 * (clean_acc - cond["accuracy"]) if cond["family"] not in ("none", "prior") else 0.0,
            }
            for i, (name, cond) in enumerate(conditions.items())
        ],
        "ours": results,
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
