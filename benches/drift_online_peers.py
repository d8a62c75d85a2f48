"""alibi-detect's online MMD detector (MMDDriftOnline, PyTorch backend) on the very streams
examples/drift_monitor_eval.rs ran ours on (`--dump DIR`): same held-out EfficientNet-Lite0
features, same reference rows, same ERT (2000 rows), window 50. Reports the false-alarm run
lengths (shuffled and class-ordered arrival), the delay on five ImageNet-C corruptions at
severities 1, 3, 5 (same clean rows before the shift, same corrupted rows after it, same
seeds), the time to configure and the time per row, next to ours.

    .venv-torch/bin/python benches/drift_online_peers.py DUMP_DIR > peers.md
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch
    from alibi_detect.cd import MMDDriftOnline

    torch.set_num_threads(2)
    dump = Path(sys.argv[1])
    meta = json.loads((dump / "meta.json").read_text())
    dim = meta["dim"]
    features = np.fromfile(dump / "features.f32", dtype="<f4").reshape(-1, dim)
    reference = features[meta["reference"]]
    ert = meta["ert"]
    started = time.perf_counter()
    detector = MMDDriftOnline(
        reference, ert=ert, window_size=50, backend="pytorch", n_bootstraps=10 * int(ert), verbose=False, device="cpu"
    )
    configure = time.perf_counter() - started

    def first_alarm(rows: np.ndarray) -> "int | None":
        for n, row in enumerate(rows):
            if detector.predict(row)["data"]["is_drift"]:
                return n + 1
        return None

    print(f"alibi-detect MMDDriftOnline, ERT {ert:.0f}, window 50, reference {len(reference)} rows, "
          f"{10 * int(ert)} bootstraps: configured in {configure:.1f} s\n")
    print("| order | rows | alarms (alibi) | median run (alibi) | us per row (alibi) | alarms (ours) | median run (ours) | us per row (ours) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ours = {r["order"]: r for r in meta["ours_false_alarms"]}
    for name, sequence in meta["streams"]:
        rows = features[sequence]
        runs, at = [], 0
        started = time.perf_counter()
        detector.reset_state()
        while at < len(rows):
            found = first_alarm(rows[at:])
            if found is None:
                break
            runs.append(found)
            at += found
            detector.reset_state()
        per_row = (time.perf_counter() - started) * 1e6 / len(rows)
        mine = ours.get(name, {})
        median = f"{statistics.median(runs):.0f}" if runs else "-"
        mine_runs = mine.get("run_lengths") or []
        mine_median = statistics.median(mine_runs) if mine_runs else None
        print(f"| {name} | {len(rows)} | {len(runs)} | {median} | {per_row:.0f} | {mine.get('alarms', '-')} | "
              f"{'-' if mine_median is None else f'{mine_median:.0f}'} | {mine.get('microseconds_per_row', float('nan')):.1f} |")

    print("\n| corruption | loss (points) | median delay alibi | delays alibi | median delay ours | delays ours |")
    print("|---|---:|---:|---|---:|---|")
    for cell in meta["cells"]:
        corrupted = np.fromfile(dump / f"cell-{cell['name']}.f32", dtype="<f4").reshape(-1, dim)
        delays = []
        for plan in cell["plans"]:
            detector.reset_state()
            for row in features[plan["before"]]:
                if detector.predict(row)["data"]["is_drift"]:
                    detector.reset_state()  # a false alarm before the shift: start again
            delays.append(first_alarm(corrupted[plan["after"]]))

        def show(values):
            found = sorted(d for d in values if d is not None)
            median = f"{statistics.median(found):.0f}" if len(found) * 2 > len(values) else "none"
            return median, " ".join(">max" if d is None else str(d) for d in values)

        a, b = show(delays), show(cell["ours_delays"])
        print(f"| {cell['name']} | {cell['accuracy_loss_points']:.1f} | {a[0]} | {a[1]} | {b[0]} | {b[1]} |")


if __name__ == "__main__":
    main()
