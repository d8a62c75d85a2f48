"""The peers a user would pick instead of mlops.drift, on the same embeddings and windows as
benches/drift_eval.py (which must run first): Evidently's embedding drift methods and
alibi-detect's MMDDrift (PyTorch backend) and KSDrift (NumPy). Writes
target/drift-eval/peers.json. Runs in .venv-torch (versions pinned in the Makefile's
bench-drift-venv target): `make bench-drift`.

Peers are much slower than ours (seconds per check), so by default they see the first 20 of
the 100 windows per cell, window sizes 10-100 and 13 of the conditions (options to change);
the report compares alarm rates on the windows each one saw.
"""

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def evidently_methods() -> Dict[str, Callable]:
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import distance, mmd, model, ratio

    methods = {
        "evidently_model": model(),
        "evidently_ratio": ratio(),
        "evidently_distance": distance(),
        "evidently_mmd": mmd(bootstrap=True, quantile_probability=0.95),
    }

    def wrap(method, reference):
        ref = pd.DataFrame(reference)
        return lambda window: bool(method(pd.DataFrame(window), ref)[1])

    return {name: (lambda reference, m=m: wrap(m, reference)) for name, m in methods.items()}


def alibi_methods() -> Dict[str, Callable]:
    from alibi_detect.cd import KSDrift, MMDDrift

    def mmd(reference):
        detector = MMDDrift(reference, backend="pytorch", p_val=0.05, n_permutations=100)
        return lambda window: bool(detector.predict(window)["data"]["is_drift"])

    def ks(reference):
        detector = KSDrift(reference, p_val=0.05)
        return lambda window: bool(detector.predict(window)["data"]["is_drift"])

    return {"alibi_mmd": mmd, "alibi_ks": ks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("target/drift-eval"))
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--output", default="peers.json", help="file name under --dir")
    parser.add_argument("--sizes", default="10,20,50,100")
    parser.add_argument(
        "--conditions",
        default="no shift (random);no shift (table order);no shift, training-row reference;"
        "label prior (background x3);box 5%;mosaic 10%;line 2%;mixed default;brightness +40;"
        "contrast x0.4;blur 2px;noise sd 5;jpeg q20",
        help="';'-separated condition names (empty: all)",
    )
    args = parser.parse_args()
    summary = json.loads((args.dir / "results.json").read_text())
    sizes = [int(s) for s in args.sizes.split(",") if int(s) in summary["window_sizes"]]
    ref_feats = np.load(args.dir / "reference_features.npy")
    ref_probs = np.load(args.dir / "reference_probs.npy")

    import alibi_detect
    import evidently
    import torch

    torch.set_num_threads(2)
    makers = {**evidently_methods(), **alibi_methods()}
    # alibi's KSDrift on the softmax outputs is BBSD as Rabanser et al. ran it. Each detector's
    # construction (its fit on the reference) is timed on its own.
    fitted, fit_ms = {}, {}
    for name, make, reference in [(n, m, ref_feats) for n, m in makers.items()] + [
        ("alibi_bbsd", alibi_methods()["alibi_ks"], ref_probs)
    ]:
        start = time.perf_counter()
        fitted[name] = make(reference)
        fit_ms[name] = 1000 * (time.perf_counter() - start)
    results: Dict = {}
    wanted = [c for c in args.conditions.split(";") if c]
    for cond in summary["conditions"]:
        if wanted and cond["name"] not in wanted:
            continue
        data = np.load(args.dir / cond["file"])
        checks = fitted
        if "reference_feats" in data:
            checks = {name: make(data["reference_feats"]) for name, make in makers.items()}
            checks["alibi_bbsd"] = alibi_methods()["alibi_ks"](data["reference_probs"])
        for size in sizes:
            if f"windows_{size}" not in data:
                continue
            windows = data[f"windows_{size}"][: args.windows]
            for name, check in checks.items():
                source = data["probs"] if name == "alibi_bbsd" else data["feats"]
                check(source[windows[0]])  # warm-up (first-call setup), not timed, as ours
                alarms, seconds = 0, 0.0
                for w in windows:
                    start = time.perf_counter()
                    alarms += check(source[w])
                    seconds += time.perf_counter() - start
                results.setdefault(cond["name"], {}).setdefault(name, {})[str(size)] = {
                    "alarm_rate": alarms / len(windows),
                    "ms_per_check": 1000 * seconds / len(windows),
                    "windows": len(windows),
                }
        print(cond["name"], flush=True)
    out = {
        "versions": {"evidently": evidently.__version__, "alibi_detect": alibi_detect.__version__, "torch": torch.__version__},
        "windows_per_cell": args.windows,
        "fit_ms": fit_ms,
        "peers": results,
    }
    (args.dir / args.output).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.dir / args.output}")


if __name__ == "__main__":
    main()
