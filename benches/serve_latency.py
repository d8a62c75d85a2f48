#!/usr/bin/env python3
"""FastAPI app latency with each feature engine (`make bench-e2e`): `POST /predict` one image at
a time (median and 90th percentile over distinct images) and `POST /predict/batch` with 32
paths, for the model package loaded with engine="burn" (the reference, what every stage used
before the fast path) and engine="fast", served by uvicorn on 127.0.0.1 in this process.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn

import mlops
from mlops.serve import create_app

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.loads(r.read())


def measure(engine: str, package: str, root: Path, paths: list, requests: int) -> dict:
    model = mlops.Model.load(package, engine=engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(model, root), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        for p in paths[:3]:
            post(base + "/predict", {"image_path": p})
        single = []
        for p in paths[3:3 + requests]:
            start = time.perf_counter()
            post(base + "/predict", {"image_path": p})
            single.append(time.perf_counter() - start)
        batches = []
        for i in range(3):
            chunk = paths[i * 32:(i + 1) * 32]
            start = time.perf_counter()
            answer = post(base + "/predict/batch", {"image_paths": chunk})
            batches.append(time.perf_counter() - start)
            assert all("target" in a for a in answer["predictions"])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    single.sort()
    return {"engine": engine, "predict_median_ms": 1e3 * single[len(single) // 2],
            "predict_p90_ms": 1e3 * single[int(len(single) * 0.9)],
            "batch32_median_ms": 1e3 * sorted(batches)[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default=str(ROOT / "target/demo/models/monday"))
    parser.add_argument("--root", default=str(ROOT / "data/monday"))
    parser.add_argument("--manifest", default=str(ROOT / "data/monday_test.jsonl"))
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    paths = [json.loads(line)["image_path"] for line in open(args.manifest)]
    results = [measure(e, args.package, Path(args.root), paths, args.requests) for e in ("burn", "fast")]
    for r in results:
        print(f"FastAPI, engine {r['engine']}: /predict median {r['predict_median_ms']:.1f} ms "
              f"(p90 {r['predict_p90_ms']:.1f}), /predict/batch of 32 {r['batch32_median_ms']:.0f} ms",
              file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
