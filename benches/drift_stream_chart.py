"""Chart of the demo stream's drift checks: p-value per check against the last row id, with
the row where tuesday's rows start and the alarms marked.

    python benches/drift_stream_chart.py DRIFT_CSV FIRST_TUESDAY_ID OUT_PNG
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    path, change, out = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    ids = [int(r["last_id"]) for r in rows]
    p = [max(float(r["p_value"]), 1e-4) for r in rows]
    alarms = [(i, q) for i, q, r in zip(ids, p, rows) if r["drift"] == "1"]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(ids, p, marker="o", ms=3, label="p-value of the window ending at the row")
    if alarms:
        ax.scatter(*zip(*alarms), color="red", zorder=3, label="alarm")
    if change:
        ax.axvline(int(change), color="black", ls="--", lw=1, label="first tuesday row")
    ax.axhline(0.01, color="grey", ls=":", lw=1, label="alpha 0.01")
    ax.set_yscale("log")
    ax.set_xlabel("row id")
    ax.set_ylabel("p-value")
    ax.set_title("Drift checks of the demo stream (class-conditional MMD, window 50)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
