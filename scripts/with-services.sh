#!/usr/bin/env bash
# Runs a command with the test services up on 127.0.0.1 and stops them afterwards:
#   - an S3-API server (moto_server from .venv), with bucket `mlops-test`.
# Exports the variables the tests read:
#   MLOPS_TEST_S3_URI, AWS_ENDPOINT, AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_DEFAULT_REGION.
# Usage: scripts/with-services.sh COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh

free_port() {
  .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

logs=target/services
mkdir -p "$logs"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

s3_port=$(free_port)
.venv/bin/moto_server -H 127.0.0.1 -p "$s3_port" >"$logs/moto.log" 2>&1 &
pids+=($!)
export AWS_ENDPOINT="http://127.0.0.1:$s3_port"
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=us-east-1
# Wait until it answers (up to 30 s), then create the bucket.
.venv/bin/python - "$AWS_ENDPOINT" <<'PY' || { echo "moto_server did not start; see $logs/moto.log" >&2; exit 1; }
import sys, time, urllib.request
endpoint = sys.argv[1]
for _ in range(300):
    try:
        urllib.request.urlopen(endpoint + "/", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
urllib.request.urlopen(urllib.request.Request(endpoint + "/mlops-test", method="PUT"), timeout=5)
PY
export MLOPS_TEST_S3_URI="s3://mlops-test"
echo "S3 test server on $AWS_ENDPOINT (bucket mlops-test)" >&2

"$@"
