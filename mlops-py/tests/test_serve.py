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


class CountingModel:
    """The real model, counting its predict_under calls (batches must be one model call)."""

    def __init__(self, model):
        self.model = model
        self.predict_calls = 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict_under(self, root, relatives):
        self.predict_calls += 1
        return self.model.predict_under(root, relatives)


@pytest.fixture(scope="module")
def counting_model(small_model):
    return CountingModel(small_model)


@pytest.fixture(scope="module")
def api(counting_model, demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "brick").mkdir()
    name = sorted(os.listdir(demo / "monday" / "brick"))[0]
    (root / "brick" / name).write_bytes((demo / "monday" / "brick" / name).read_bytes())
    (root / "brick" / "broken.png").write_bytes(b"no image")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes((demo / "monday" / "brick" / name).read_bytes())
    (root / "link.png").symlink_to(outside / "secret.png")
    (root / "outdir").symlink_to(outside)
    (root / "inside").symlink_to(root / "brick")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(counting_model, root), host="127.0.0.1", port=port, log_level="warning"))
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
     ("outdir/secret.png", 400), ("brick/\x00.png", 400), ("brick/missing.png", 404),
     ("brick/broken.png", 422), ("", 400)],
)
def test_bad_paths_get_client_errors(api, path, code):
    base, _, _ = api
    status, body = post(base + "/predict", {"image_path": path})
    assert status == code, body


def test_a_link_that_stays_inside_the_root_is_followed(api):
    base, good, _ = api
    status, body = post(base + "/predict", {"image_path": good.replace("brick/", "inside/")})
    assert status == 200, body
    assert body == post(base + "/predict", {"image_path": good})[1]


def test_batch_requests_answer_each_path_in_one_model_call(api, counting_model):
    base, good, _ = api
    before = counting_model.predict_calls
    status, body = post(base + "/predict/batch",
                        {"image_paths": [good, "../x.png", good, "brick/broken.png", "brick/missing.png"]})
    assert status == 200
    first, bad, third, broken, missing = body["predictions"]
    assert first == third and "target" in first
    assert bad["status"] == 400
    assert broken["status"] == 422
    assert missing["status"] == 404
    assert counting_model.predict_calls == before + 1
