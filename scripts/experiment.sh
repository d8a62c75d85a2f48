#!/usr/bin/env bash
# The full replay experiments behind docs/experiment.md (`make experiment`; about 8 minutes on
# 2 cores after the build): every strategy x budget (0, 22, 55, 110, 220, 440) x 5 seeds on
# tuesday with the linear head, then partial fine-tuning (head convolution + BatchNorm) of four
# strategies at the original's budget. `make demo` runs a small version of the first.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo "+ $*" >&2; "$@"; }
example() { run cargo run --release --quiet --example "$@"; }
out=target/experiment

echo "== the shift experiment: replay strategies x budgets x 5 seeds on tuesday, linear head"
example shift_experiment -- --data data --out "$out/linear_head" --feature-cache target/feature-cache
echo "== partial fine-tuning (head convolution + BatchNorm) at the original's budget"
example shift_experiment -- --data data --out "$out/tail1" --feature-cache target/feature-cache \
  --mode partial_fine_tune --tail-blocks 1 --strategies none,random,uncertainty,all --budgets 220 \
  --seeds 2022,2023,2024
echo "results in $out/linear_head and $out/tail1 (results.md, charts)"
