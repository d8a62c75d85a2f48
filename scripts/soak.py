"""Soak: the live pipeline under faults for a while, then every sink checked id by id.

Run by scripts/soak.sh inside scripts/with-services.sh (PostgreSQL and a Kafka-protocol broker on
127.0.0.1). Processes, each restarted by this supervisor whenever it exits:
  - writer:     the `generate` example inserting rows one commit each at --rate rows/s;
  - stream-a/b: two `stream` examples of one stream name (they share the position);
  - publisher:  `kafka publish` of `cargo` to a 2-partition topic;
  - consumer-a/b: `kafka consume` in one group into a second database.
Faults, at seeded random moments of the run: one PostgreSQL restart and one SIGKILL of each
process. At the end the writer stops, the sinks must catch up, and then:
  - every id of `cargo` has an outcome (prediction or error) in each sink, no id has both, and no
    sink holds an id `cargo` lacks (an id cannot have two predictions or two errors: both tables
    are keyed by it, so counting duplicates there would prove nothing, and this script does not);
  - per process role: RSS after warm-up and at the end (memory flat), restarts;
  - the largest lag seen (rows behind, and seconds for the stream's oldest unpredicted row).
Writes target/soak/report.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "examples"
OUT = ROOT / "target" / "soak"


def psql_bin() -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parts[-3]))
    return str(versions[-1])


def value(url: str, query: str, timeout: float = 20) -> str:
    """One value from `query`, retried while the server restarts."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run([psql_bin(), url, "-X", "-q", "-A", "-t", "-c", query], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.strip()
        if time.monotonic() > deadline:
            raise RuntimeError(f"psql failed: {query}: {r.stderr.strip()}")
        time.sleep(0.5)


OUTCOMES = "SELECT (SELECT count(*) FROM cargo_prediction) + (SELECT count(*) FROM cargo_prediction_error)"
"""Rows of a sink with an outcome (prediction or error)."""


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Role:
    """One supervised process: restarted whenever it exits until the run stops."""

    def __init__(self, name: str, argv: list[str], log: Path):
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exits: list[int] = []
        self.started_at = 0.0
        # Per run of the process: seconds it lived, RSS 30 s after its start, at its last sample, max.
        self.lives: list[dict] = []

    def start(self) -> None:
        self.starts += 1
        self.started_at = time.monotonic()
        self.lives.append({"seconds": 0.0, "rss_mib_at_30s": None, "rss_mib_last": None, "rss_mib_max": None})
        with open(self.log, "a") as log:
            log.write(f"\n=== start {self.starts} at {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def watch(self) -> None:
        """Restarts the process if it exited; else samples its RSS."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            self.exits.append(code)
            self.start()
            return
        rss = rss_mib(self.proc.pid)
        if rss is None:
            return
        life = self.lives[-1]
        life["seconds"] = round(time.monotonic() - self.started_at, 1)
        life["rss_mib_last"] = round(rss, 1)
        life["rss_mib_max"] = round(max(rss, life["rss_mib_max"] or 0.0), 1)
        if life["rss_mib_at_30s"] is None and life["seconds"] >= 30:
            life["rss_mib_at_30s"] = round(rss, 1)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long rows are written (default 10)")
    ap.add_argument("--rate", type=float, default=50.0, help="rows per second (default 50)")
    ap.add_argument("--seed", type=int, default=2022, help="seed of the fault schedule")
    ap.add_argument("--package", default="target/demo/models/monday", help="model package (default: the demo's)")
    ap.add_argument("--data-root", default="data/monday")
    ap.add_argument("--manifest", default="data/monday_test.jsonl", help="rows to cycle through")
    ap.add_argument("--catch-up-s", type=float, default=300.0, help="longest wait for the sinks at the end")
    args = ap.parse_args()

    url = os.environ["MLOPS_TEST_PG_URL"]
    restart = os.environ["MLOPS_TEST_PG_RESTART"]
    brokers = os.environ["MLOPS_TEST_KAFKA_BROKERS"]
    if not (ROOT / args.package / "metadata.json").exists():
        sys.exit(f"no model package at {args.package} (run `make demo` first, or pass --package)")
    OUT.mkdir(parents=True, exist_ok=True)
    base = url.rsplit("/", 1)[0]
    source, sink = f"{base}/soak_source", f"{base}/soak_kafka_sink"
    for db in ("soak_source", "soak_kafka_sink"):
        value(url, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        value(url, f"CREATE DATABASE {db}")
    topic = f"soak-{int(time.time())}"

    # The writer inserts a long manifest's rows in order (a restart starts it over: the rows are
    # new rows all the same).
    lines = Path(ROOT / args.manifest).read_text().splitlines()
    total = int(args.minutes * 60 * args.rate) + len(lines)
    rows_file = OUT / "rows.jsonl"
    rows_file.write_text("\n".join(lines[i % len(lines)] for i in range(total)) + "\n")
    subprocess.run([str(BIN / "generate"), "--url", source, "--drop"], check=True, cwd=ROOT)
    subprocess.run([str(BIN / "kafka"), "publish", "--url", source, "--brokers", brokers, "--topic", topic,
                    "--partitions", "2", "--until-idle"], check=True, cwd=ROOT, capture_output=True)

    for log in OUT.glob("*.log"):
        log.unlink()
    stream = [str(BIN / "stream"), "--url", source, "--package", args.package, "--data-root", args.data_root,
              "--stream", "soak", "--batch-size", "32", "--poll-ms", "200"]
    consume = [str(BIN / "kafka"), "consume", "--url", sink, "--brokers", brokers, "--topic", topic,
               "--package", args.package, "--data-root", args.data_root, "--group", "soak", "--batch-size", "32"]
    roles = [
        Role("writer", [str(BIN / "generate"), "--url", source, "--in-order", str(rows_file), "--rate",
                        str(args.rate)], OUT / "writer.log"),
        Role("stream-a", stream, OUT / "stream-a.log"),
        Role("stream-b", stream, OUT / "stream-b.log"),
        Role("publisher", [str(BIN / "kafka"), "publish", "--url", source, "--brokers", brokers, "--topic", topic,
                           "--batch-size", "100"], OUT / "publisher.log"),
        Role("consumer-a", consume, OUT / "consumer-a.log"),
        Role("consumer-b", consume, OUT / "consumer-b.log"),
    ]
    rng = random.Random(args.seed)
    duration = args.minutes * 60
    # Faults between 10% and 90% of the run, in random order.
    faults = sorted([(rng.uniform(0.1, 0.9) * duration, "restart-postgres")]
                    + [(rng.uniform(0.1, 0.9) * duration, f"kill {r.name}") for r in roles])
    print(f"soak: {args.minutes} min at {args.rate} rows/s, topic {topic}; faults at "
          + ", ".join(f"{t:.0f}s {what}" for t, what in faults), flush=True)

    started = time.monotonic()
    for role in roles:
        role.start()
    injected: list[dict] = []
    max_lag = {"stream_rows": 0, "stream_seconds": 0.0, "kafka_rows": 0}
    next_sample = 0.0
    writer = roles[0]

    def sample_lag() -> None:
        try:
            written = int(value(source, "SELECT count(*) FROM cargo", timeout=5) or 0)
            streamed = int(value(source, OUTCOMES, timeout=5) or 0)
            oldest = float(value(source, "SELECT coalesce(extract(epoch FROM localtimestamp - min(c.timestamp)), 0)"
                                         " FROM cargo c WHERE NOT EXISTS (SELECT 1 FROM cargo_prediction p WHERE p.id = c.id)"
                                         " AND NOT EXISTS (SELECT 1 FROM cargo_prediction_error e WHERE e.id = c.id)",
                                 timeout=5) or 0)
            consumed = int(value(sink, OUTCOMES, timeout=5) or 0)
        except (RuntimeError, ValueError):
            return  # the server is restarting
        max_lag["stream_rows"] = max(max_lag["stream_rows"], written - streamed)
        max_lag["stream_seconds"] = max(max_lag["stream_seconds"], oldest)
        max_lag["kafka_rows"] = max(max_lag["kafka_rows"], written - consumed)

    while True:
        now = time.monotonic() - started
        while faults and faults[0][0] <= now:
            _, what = faults.pop(0)
            if what == "restart-postgres":
                r = subprocess.run(["sh", "-c", restart], capture_output=True, text=True)
                ok = r.returncode == 0
            else:
                role = next(r for r in roles if what == f"kill {r.name}")
                ok = role.proc is not None and role.proc.poll() is None
                role.kill()
            injected.append({"at_s": round(now, 1), "fault": what, "landed": ok})
            print(f"{now:6.0f}s {what}", flush=True)
        stopping = now >= duration
        if stopping and writer.proc and writer.proc.poll() is None:
            writer.stop()
        for role in roles:
            if role is writer and stopping:
                continue
            role.watch()
        if now >= next_sample:
            sample_lag()
            next_sample = now + 5
        if stopping:
            written = int(value(source, "SELECT count(*) FROM cargo"))
            streamed = int(value(source, OUTCOMES))
            consumed = int(value(sink, OUTCOMES))
            if streamed >= written and consumed >= written:
                break
            if now > duration + args.catch_up_s:
                print(f"the sinks did not catch up: {written} written, {streamed} streamed, {consumed} consumed")
                break
        time.sleep(1)

    for role in roles:
        role.stop()

    def outcome_check(db: str) -> dict:
        q = lambda s: int(value(db, s))  # noqa: E731
        return {
            "predictions": q("SELECT count(*) FROM cargo_prediction"),
            "errors": q("SELECT count(*) FROM cargo_prediction_error"),
            "ids_in_both_tables": q("SELECT count(*) FROM cargo_prediction p JOIN cargo_prediction_error e USING (id)"),
        }

    written = int(value(source, "SELECT count(*) FROM cargo"))
    max_id = int(value(source, "SELECT coalesce(max(id), 0) FROM cargo"))
    stream_ids = value(source, "SELECT string_agg(id::text, ',' ORDER BY id) FROM"
                               " (SELECT id FROM cargo_prediction UNION ALL SELECT id FROM cargo_prediction_error) x")
    kafka_ids = value(sink, "SELECT string_agg(id::text, ',' ORDER BY id) FROM"
                            " (SELECT id FROM cargo_prediction UNION ALL SELECT id FROM cargo_prediction_error) x")
    source_ids = value(source, "SELECT string_agg(id::text, ',' ORDER BY id) FROM cargo")

    def compare(ids_text: str) -> dict:
        ids = [int(x) for x in ids_text.split(",")] if ids_text else []
        want = {int(x) for x in source_ids.split(",")} if source_ids else set()
        seen: dict[int, int] = {}
        for i in ids:
            seen[i] = seen.get(i, 0) + 1
        return {
            "outcomes": len(ids),
            "lost": len(want - set(seen)),
            "unknown": len(set(seen) - want),
        }

    report = {
        "minutes": args.minutes,
        "rate": args.rate,
        "seed": args.seed,
        "package": args.package,
        "rows_written": written,
        "max_id": max_id,
        "faults": injected,
        "stream": {**compare(stream_ids), **outcome_check(source)},
        "kafka": {**compare(kafka_ids), **outcome_check(sink)},
        "max_lag": max_lag,
        "processes": {
            r.name: {"starts": r.starts, "exits": r.exits, "lives": r.lives}
            for r in roles
        },
    }
    (OUT / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    ok = all(report[s]["lost"] == 0 and report[s]["unknown"] == 0
             and report[s]["ids_in_both_tables"] == 0 for s in ("stream", "kafka"))
    print("soak:", "PASS" if ok else "FAIL", f"(report: {OUT / 'report.json'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
