#!/usr/bin/env bash
# Demo step 8, run by scripts/demo.sh inside scripts/with-services.sh: the closed loop on the
# demo model, every part its own process as in production.
#   - a registry whose champion is the monday model;
#   - the stream serves the champion (looking at the pointer every second);
#   - the adapter watches the stream's drift alarms;
#   - 200 monday rows, then tuesday's 1000 rows (shuffled, seed 2022) arrive at 40 rows/s;
#   - drift alarm -> adaptation (monday model + tuesday rows + k-center replay of monday's
#     training rows) -> promotion -> the stream swaps between two batches.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo-live.sh
base=${MLOPS_TEST_PG_URL%/*}
url=$base/closed_loop
sql "$MLOPS_TEST_PG_URL" "DROP DATABASE IF EXISTS closed_loop WITH (FORCE)" >/dev/null
sql "$MLOPS_TEST_PG_URL" "CREATE DATABASE closed_loop" >/dev/null
registry=$out/registry
rm -rf "$registry"

# Tuesday's rows in a seeded random order (the manifests are sorted by class).
.venv/bin/python - "$out" <<'PY'
import json, random, sys
out = sys.argv[1]
rows = []
for name in ("tuesday_train", "tuesday_test"):
    with open(f"data/{name}.jsonl") as f:
        rows += [dict(json.loads(l), image_path="tuesday/" + json.loads(l)["image_path"]) for l in f]
random.Random(2022).shuffle(rows)
with open(f"{out}/tuesday_live.jsonl", "w") as f:
    f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
PY

echo "-- the monday model becomes the registry's first champion"
run "$bin/adapt" init --registry "$registry" --package "$out/models/monday" >/dev/null
run "$bin/generate" --url "$url" --drop --manifest "$out/monday_test.rooted.jsonl"
"$bin/stream" --url "$url" --package "$out/models/monday" --data-root data --champion "$registry" \
  --batch-size 16 --poll-ms 100 > "$out/loop-stream.log" 2>&1 &
stream_pid=$!
MLOPS_LOG=info "$bin/adapt" watch --url "$url" --registry "$registry" --data-root data \
  --old-root data/monday --old data/monday_train.jsonl --old-holdout data/monday_test.jsonl \
  --min-rows 200 --max-attempts 1 --poll-ms 500 --feature-cache target/feature-cache \
  > "$out/loop-adapt.json" 2> "$out/loop-adapt.log" &
adapt_pid=$!
echo "-- tuesday's rows arrive live (40 rows/s); stream and adapter run in the background"
run "$bin/generate" --url "$url" --in-order "$out/tuesday_live.jsonl" --rate 40
wait "$adapt_pid" || { cat "$out/loop-adapt.log" >&2; exit 1; }
total=$(value "$url" "SELECT count(*) FROM cargo")
for _ in $(seq 1 120); do
  [ "$(value "$url" "SELECT count(*) FROM cargo_prediction")" -ge "$total" ] && break
  sleep 0.5
done
kill -TERM "$stream_pid"
wait "$stream_pid" || true

first_tuesday=$(value "$url" "SELECT min(id) FROM cargo WHERE image_path LIKE 'tuesday/%'")
echo "decision:"
run "$bin/adapt" show --registry "$registry" > "$out/loop-registry.json"
.venv/bin/python - "$out/loop-registry.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for d in s["decisions"]:
    verdict = "promoted" if d["promoted"] else "rejected"
    print(f"  {d['challenger']}: {verdict}: {d['reason']}")
print(f"  champion now {s['champion']['version']} (generation {s['champion']['generation']})")
PY
sql "$url" "SELECT attempt, first_id, last_id, new_rows, promoted,
            round(extract(epoch FROM finished_at - started_at)::numeric, 1) AS seconds
            FROM cargo_adaptation"
echo "the timeline (row ids; tuesday starts at $first_tuesday):"
sql "$url" "SELECT
  (SELECT min(last_id) FROM cargo_drift WHERE drift) AS first_alarm_row,
  (SELECT min(id) FROM cargo_prediction p WHERE p.model_version <> (SELECT model_version FROM cargo_prediction WHERE id = 1)) AS first_row_by_new_model,
  round(extract(epoch FROM (SELECT min(predicted_at) FROM cargo_prediction p
        WHERE p.model_version <> (SELECT model_version FROM cargo_prediction WHERE id = 1))
      - (SELECT timestamp FROM cargo WHERE id = $first_tuesday)::timestamptz)::numeric, 1)
    AS seconds_from_first_tuesday_row_to_swap"
echo "live accuracy per day and model:"
sql "$url" "SELECT split_part(c.image_path, '/', 1) AS day, p.model_version, count(*) AS rows,
            round(100 * avg((p.target = c.target)::int), 1) AS accuracy_pct
            FROM cargo_prediction p JOIN cargo c USING (id) GROUP BY 1, 2 ORDER BY 1, min(p.id)"
"$psql_bin" "$url" -X -q -c "COPY (SELECT p.id, (p.target = c.target)::int AS correct, p.model_version
  FROM cargo_prediction p JOIN cargo c USING (id) ORDER BY p.id) TO STDOUT WITH CSV HEADER" > "$out/loop-predictions.csv"
"$psql_bin" "$url" -X -q -c "COPY (SELECT last_id, statistic, threshold, drift::int, estimated_accuracy, model_version
  FROM cargo_drift ORDER BY last_id) TO STDOUT WITH CSV HEADER" > "$out/loop-drift.csv"
"$psql_bin" "$url" -X -q -c "COPY (SELECT first_id, last_id, promoted::int FROM cargo_adaptation)
  TO STDOUT WITH CSV HEADER" > "$out/loop-adaptation.csv"
.venv/bin/python benches/closed_loop_chart.py "$out" "$first_tuesday" "$out/closed-loop.png"
echo "chart: $out/closed-loop.png"
