"""The FastAPI app: the original's contract, batches, and path traversal refused."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest
import uvicorn

import mlops
from conftest import free_port
from mlops.serve import create_app


@pytest.fixture(scope="module")
def api(small_model, demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "brick").mkdir()
    name = sorted(os.listdir(demo / "monday" / "brick"))[0]
    (root / "brick" / name).write_bytes((demo / "monday" / "brick" / name).read_bytes())
    (root / "brick" / "broken.png").write_bytes(b"no image")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes((demo / "monday" / "brick" / name).read_bytes())
    (root / "link.png").symlink_to(outside / "secret.png")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(small_model, root), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", f"brick/{name}", root
    server.should_exit = True
    thread.join(timeout=10)


def post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_predict_keeps_the_original_contract(api, small_model):
    base, good, root = api
    status, body = post(base + "/predict", {"image_path": good})
    assert status == 200
    assert body["target"] == small_model.predict_paths([root / good])[0].target
    assert body["class_name"] == small_model.classes[body["target"]]


@pytest.mark.parametrize(
    "path,code",
    [("../outside/secret.png", 400), ("/etc/passwd", 400), ("brick/../../x.png", 400), ("link.png", 400),
     ("brick/missing.png", 404), ("brick/broken.png", 422), ("", 400)],
)
def test_bad_paths_get_client_errors(api, path, code):
    base, _, _ = api
    status, body = post(base + "/predict", {"image_path": path})
    assert status == code, body


def test_batch_requests_answer_each_path(api):
    base, good, _ = api
    status, body = post(base + "/predict/batch", {"image_paths": [good, "../x.png", good]})
    assert status == 200
    first, bad, third = body["predictions"]
    assert first == third and "target" in first
    assert bad["status"] == 400
