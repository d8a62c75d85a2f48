"""Chart of the demo's closed loop over row ids: rolling live accuracy (50 rows) per serving
model with the accuracy the monitor estimated without labels, and the drift monitor's CUSUM
against its threshold, with the first tuesday row, the first alarm, the adaptation (the newest
row when it started) and the swap marked.

    python benches/closed_loop_chart.py DEMO_OUT_DIR FIRST_TUESDAY_ID OUT_PNG

DEMO_OUT_DIR holds loop-predictions.csv, loop-drift.csv and loop-adaptation.csv, written by
scripts/demo-loop.sh.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: str) -> list:
    with open(path) as f:
        return list(csv.DictReader(f))


def main() -> None:
    out, first_tuesday, png = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    predictions = read(f"{out}/loop-predictions.csv")
    drift = read(f"{out}/loop-drift.csv")
    attempts = read(f"{out}/loop-adaptation.csv")
    ids = [int(r["id"]) for r in predictions]
    correct = [int(r["correct"]) for r in predictions]
    versions = [r["model_version"] for r in predictions]
    window = 50
    rolling = [sum(correct[max(0, i - window + 1) : i + 1]) / len(correct[max(0, i - window + 1) : i + 1]) for i in range(len(correct))]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for version in dict.fromkeys(versions):
        xs = [i for i, v in zip(ids, versions) if v == version]
        ys = [a for a, v in zip(rolling, versions) if v == version]
        top.plot(xs, [100 * y for y in ys], lw=1.5, label=f"model {version}")
    checks = [int(r["last_id"]) for r in drift]
    estimated = [(i, 100 * float(r["estimated_accuracy"])) for i, r in zip(checks, drift) if r["estimated_accuracy"]]
    if estimated:
        top.plot(*zip(*estimated), color="grey", ls="--", lw=1, label="estimated (no labels)")
    top.set_ylabel(f"live accuracy, last {window} rows (%)")
    top.set_ylim(0, 102)
    cusum = [float(r["statistic"]) for r in drift]
    bottom.plot(checks, cusum, marker="o", ms=2.5, lw=1, label="drift CUSUM")
    alarms = [(i, q) for i, q, r in zip(checks, cusum, drift) if r["drift"] == "1"]
    if alarms:
        bottom.scatter(*zip(*alarms), color="red", s=14, zorder=3, label="alarm")
    thresholds = [(i, float(r["threshold"])) for i, r in zip(checks, drift) if r["threshold"]]
    if thresholds:
        bottom.plot(*zip(*thresholds), color="grey", ls=":", lw=1, label="threshold")
    bottom.set_yscale("symlog")
    bottom.set_ylabel("CUSUM")
    bottom.set_xlabel("row id")
    marks = [(first_tuesday, "black", "--", "first tuesday row")]
    if alarms:
        marks.append((alarms[0][0], "red", ":", "first alarm"))
    for a in attempts:
        marks.append((int(a["last_id"]), "purple", "-.", "adaptation starts"))
    swap = next((i for i, v in zip(ids, versions) if v != versions[0]), None)
    if swap is not None:
        marks.append((swap, "green", "-", "swap"))
    for ax in (top, bottom):
        for x, colour, style, label in marks:
            ax.axvline(x, color=colour, ls=style, lw=1, label=label if ax is top else None)
    top.legend(loc="lower left", fontsize=8)
    bottom.legend(loc="lower left", fontsize=8)
    top.set_title("Closed loop: drift alarm -> adaptation with replay -> promotion -> hot swap")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main()
