#!/usr/bin/env bash
# The soak run (not part of `make test`): builds the examples, starts the services and runs
# scripts/soak.py with the given arguments (`--minutes 10 --rate 50` by default; `make soak-short`
# is a 2-minute version). Needs a model package: `make demo` makes the default one.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example generate --example stream --example kafka
exec scripts/with-services.sh .venv/bin/python scripts/soak.py "$@"
