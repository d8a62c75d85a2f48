"""Shared fixtures: the demo data, a small trained model, and a real MLflow tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import mlops

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
CLASSES = ["background", "brick", "concrete", "ground", "wood"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float, process: subprocess.Popen = None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


@pytest.fixture(scope="session")
def demo() -> Path:
    if not (DATA / ".demo-data").exists():
        pytest.fail(f"{DATA} has no demo data: run `make demo-data` (the test command does)")
    return DATA


@pytest.fixture(scope="session")
def small_model(demo: Path, tmp_path_factory) -> mlops.Model:
    """A small CNN on 32-pixel inputs, fine-tuned for 3 epochs on 150 monday images."""
    train = mlops.Manifest.read(demo / "monday_train.jsonl")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    result = mlops.train(
        demo / "monday",
        mlops.Manifest(train.samples[::5][:150]),
        mlops.Manifest(test.samples[::4]),
        CLASSES,
        backbone="small_cnn",
        epochs=3,
        batch_size=16,
        mode="fine_tune",
        preprocess={"size": 32},
    )
    return result.model


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (sqlite backend, local artifacts) on 127.0.0.1."""
    work = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    bin_dir = Path(sys.executable).parent
    log = open(work / "server.log", "w")
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
         "--artifacts-destination", str(work / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", 180, server)
    except RuntimeError:
        os.killpg(server.pid, signal.SIGKILL)
        pytest.fail(f"MLflow server did not start; see {work / 'server.log'}")
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def fresh_db(name: str) -> str:
    """A new, empty database on the test PostgreSQL server, and its URL."""
    url = os.environ.get("MLOPS_TEST_PG_URL")
    if not url:
        pytest.fail("MLOPS_TEST_PG_URL is not set: run through `make test` (scripts/with-services.sh)")
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    if not bins:
        pytest.fail("psql not found under /usr/lib/postgresql (installed with the server)")
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        subprocess.run([str(bins[-1]), url, "-X", "-q", "-c", sql], check=True, capture_output=True)
    return url.rsplit("/", 1)[0] + "/" + name


def query_value(url: str, sql: str) -> str:
    """The single value `sql` returns on the database at `url` (through psql)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    out = subprocess.run([str(bins[-1]), url, "-X", "-q", "-A", "-t", "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()
