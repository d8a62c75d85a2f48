"""Chart of the demo stream's drift checks against the last row id: the CUSUM and its
threshold (top), the estimated accuracy of the latest rows (bottom), with the row where
tuesday's rows start and the alarms marked.

    python benches/drift_stream_chart.py DRIFT_CSV FIRST_TUESDAY_ID OUT_PNG

DRIFT_CSV has the columns last_id, statistic, threshold, drift (0/1), estimated_accuracy.
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
    cusum = [float(r["statistic"]) for r in rows]
    threshold = [float(r["threshold"]) for r in rows]
    alarms = [(i, s) for i, s, r in zip(ids, cusum, rows) if r["drift"] == "1"]
    estimated = [(i, 100 * float(r["estimated_accuracy"])) for i, r in zip(ids, rows) if r["estimated_accuracy"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    top.plot(ids, cusum, marker="o", ms=3, label="CUSUM after the row")
    top.plot(ids, threshold, color="grey", ls=":", lw=1, label="threshold (ERT 10,000 rows)")
    if alarms:
        top.scatter(*zip(*alarms), color="red", zorder=3, label="alarm")
    top.set_yscale("symlog")
    top.set_ylabel("CUSUM")
    top.set_title("Drift checks of the demo stream")
    if estimated:
        bottom.plot(*zip(*estimated), marker="o", ms=3, color="tab:green", label="estimated accuracy (latest 100 rows)")
    bottom.set_ylabel("accuracy %")
    bottom.set_xlabel("row id")
    for ax in (top, bottom):
        if change:
            ax.axvline(int(change), color="black", ls="--", lw=1, label="first tuesday row")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
