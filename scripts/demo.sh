#!/usr/bin/env bash
# The demo pipeline on the real-photo demo data (built by `make demo-data`).
# Today it runs the data-preparation stage as a user would from the command line.
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

echo "demo outputs in $out"
