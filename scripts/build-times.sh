#!/usr/bin/env bash
# Clean release builds of mlops-core's main feature combinations, each in a fresh target
# folder (nothing reused from target/), printing the seconds each took. Slow: about half an
# hour on 2 cores. Used for the build-time table in README.md and docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for combo in "--no-default-features" "--no-default-features --features train" "" "--features kafka"; do
  dir="$scratch/target"
  rm -rf "$dir"
  start=$(date +%s)
  if CARGO_TARGET_DIR="$dir" cargo build --release --quiet -p mlops-core --lib $combo; then
    echo "mlops-core ${combo:-(defaults)}: $(( $(date +%s) - start )) s"
  else
    echo "mlops-core ${combo:-(defaults)}: FAILED"
  fi
done
