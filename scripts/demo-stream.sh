#!/usr/bin/env bash
# Demo step 7, run by scripts/demo.sh inside scripts/with-services.sh (PostgreSQL and a
# Kafka-protocol broker on 127.0.0.1): the live half of the pipeline on the demo model.
#   - generate: the monday and tuesday test sets into `cargo` with COPY;
#   - stream:   `cargo` -> `cargo_prediction` exactly once, then live accuracy per day;
#   - kafka:    publish `cargo` to a 2-partition topic, two consumers in one group predict it
#               into a second database.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo-live.sh
url=$MLOPS_TEST_PG_URL
base=${url%/*}

# Rows are relative to data/, so both days fit one data root.
for day in monday tuesday; do
  sed "s#\"image_path\":\"#\"image_path\":\"$day/#" "data/${day}_test.jsonl" > "$out/${day}_test.rooted.jsonl"
done

echo "-- generate: load both test sets into cargo (COPY), then trickle 20 rows at 10 rows/s"
run "$bin/generate" --url "$url" --drop --manifest "$out/monday_test.rooted.jsonl" \
  --manifest "$out/tuesday_test.rooted.jsonl" --rate 10 --count 20

echo "-- stream: predict cargo into cargo_prediction until caught up"
run "$bin/stream" --url "$url" --package "$out/models/monday" --data-root data --until-idle
echo "live accuracy per day (the model saw only monday):"
sql "$url" "SELECT split_part(c.image_path, '/', 1) AS day, count(*) AS rows,
            round(100 * avg((p.target = c.target)::int), 1) AS accuracy_pct
            FROM cargo_prediction p JOIN cargo c USING (id) GROUP BY 1 ORDER BY 1"
echo "drift: the monitor (an online CUSUM calibrated for 10,000 rows on average between false alarms,"
echo "a check every 25 rows) against the model's reference sample (monday's test rows):"
first_tuesday=$(value "$url" "SELECT min(id) FROM cargo WHERE image_path LIKE 'tuesday/%'")
sql "$url" "SELECT count(*) AS checks, count(*) FILTER (WHERE drift) AS alarms,
            count(*) FILTER (WHERE drift AND last_id < $first_tuesday) AS alarms_before_tuesday
            FROM cargo_drift WHERE stream = 'cargo_prediction'"
first_alarm=$(value "$url" "SELECT min(last_id) FROM cargo_drift WHERE drift AND stream = 'cargo_prediction'")
if [ -n "$first_alarm" ] && [ -n "$first_tuesday" ]; then
  echo "tuesday's rows start at id $first_tuesday; the first alarm came with row $first_alarm: N = $((first_alarm - first_tuesday + 1)) rows after the change"
else
  echo "no drift alarm (first tuesday id: ${first_tuesday:-none})"
fi
echo "accuracy estimated without labels (mean over the day's checks, each over the latest 100 rows) and the true accuracy:"
sql "$url" "WITH estimated AS (
              SELECT CASE WHEN last_id < ${first_tuesday:-0} THEN 'monday' ELSE 'tuesday' END AS day,
                     avg(estimated_accuracy) AS value
              FROM cargo_drift WHERE stream = 'cargo_prediction' AND estimated_accuracy IS NOT NULL GROUP BY 1),
            observed AS (
              SELECT CASE WHEN c.id < ${first_tuesday:-0} THEN 'monday' ELSE 'tuesday' END AS day,
                     avg((p.target = c.target)::int) AS value
              FROM cargo_prediction p JOIN cargo c USING (id) GROUP BY 1)
            SELECT day, round(100 * e.value::numeric, 1) AS estimated_pct, round(100 * o.value, 1) AS true_pct
            FROM estimated e JOIN observed o USING (day) ORDER BY 1"
sql "$url" "COPY (SELECT last_id, statistic, threshold, drift::int, estimated_accuracy FROM cargo_drift WHERE stream = 'cargo_prediction' ORDER BY last_id) TO STDOUT WITH CSV HEADER" > "$out/drift.csv"
.venv/bin/python benches/drift_stream_chart.py "$out/drift.csv" "$first_tuesday" "$out/drift.png"
echo "chart: $out/drift.png"
echo "a second run finds nothing new:"
run "$bin/stream" --url "$url" --package "$out/models/monday" --data-root data --until-idle 2>&1 | grep '"rows"'

echo "-- kafka: publish cargo to topic postgres-source-cargo (2 partitions), two consumers predict it"
sql "$url" "DROP DATABASE IF EXISTS kafka_sink" >/dev/null
sql "$url" "CREATE DATABASE kafka_sink" >/dev/null
run "$bin/kafka" publish --url "$url" --brokers "$MLOPS_TEST_KAFKA_BROKERS" --partitions 2 --until-idle
for consumer in a b; do
  "$bin/kafka" consume --url "$base/kafka_sink" --brokers "$MLOPS_TEST_KAFKA_BROKERS" \
    --package "$out/models/monday" --data-root data --until-idle --idle-s 10 \
    > "$out/kafka-consumer-$consumer.log" 2>&1 &
done
wait
for consumer in a b; do
  echo "consumer $consumer: $(grep -o '"messages": [0-9]*' "$out/kafka-consumer-$consumer.log")"
done
sql "$base/kafka_sink" "SELECT count(*) AS predictions, count(DISTINCT id) AS distinct_ids FROM cargo_prediction"
sql "$base/kafka_sink" "SELECT stream, count(*) AS drift_checks, count(*) FILTER (WHERE drift) AS alarms FROM cargo_drift GROUP BY 1"
