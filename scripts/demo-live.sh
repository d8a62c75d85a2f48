# Sourced by the demo's live steps (demo-stream.sh, demo-loop.sh): how commands are shown,
# where the programs and outputs are, and psql helpers (`sql URL QUERY` prints a table,
# `value URL QUERY` one value).
run() { echo "+ $*" >&2; "$@"; }
bin=target/release/examples
out=target/demo
psql_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
sql() { "$psql_bin" "$1" -X -q -A -F ' | ' -c "$2"; }
value() { "$psql_bin" "$1" -X -q -A -t -c "$2"; }
