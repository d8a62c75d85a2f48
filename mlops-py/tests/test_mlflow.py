"""The MLflow flavour against a real tracking server: log, register, alias, load, serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

import mlops
import mlops.mlflow
from conftest import free_port, wait_http


def test_log_register_alias_load_and_serve(mlflow_server, small_model, demo, tmp_path):
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("mlops-tests")
    with mlflow.start_run() as run:
        mlops.mlflow.log_training(small_model, params={"data": "monday"})
        info = mlops.mlflow.log_model(
            small_model, name="model", registered_model_name="cargo-classifier", data_root=demo / "monday"
        )
    client = MlflowClient()
    logged = client.get_run(run.info.run_id)
    assert logged.data.params["backbone"] == "small_cnn"
    assert logged.data.params["data"] == "monday"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3]

    version = info.registered_model_version
    client.set_registered_model_alias("cargo-classifier", "champion", version)
    loaded = mlflow.pyfunc.load_model("models:/cargo-classifier@champion")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    frame = pd.DataFrame({"image_path": test.image_paths[:4] + ["../monday_test.jsonl"] + test.image_paths[4:8]
                          + ["brick/missing.png"]})
    out = loaded.predict(frame)
    direct = small_model.predict_paths([demo / "monday" / p for p in test.image_paths[:8]])
    targets = out["target"].tolist()
    assert targets[:4] + targets[5:9] == [p.target for p in direct]
    assert targets[4] == -1 and "leaves the data root" in out["error"][4]
    assert targets[9] == -1 and "missing.png" in out["error"][9]

    # `mlflow models serve` answering /invocations.
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", "models:/cargo-classifier@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", 180, server)
        except RuntimeError:
            pytest.fail("mlflow models serve did not start:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        body = json.dumps({"dataframe_split": {"columns": ["image_path"], "data": [[p] for p in test.image_paths[:4]]}})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
        served = [row["target"] for row in answer["predictions"]]
        assert served == [p.target for p in direct[:4]]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_pyfunc_predicts_a_frame_in_one_model_call(small_model, demo, tmp_path):
    from mlops._mlflow_pyfunc import MlopsPyfunc

    class Counting:
        calls = 0

        def predict_under(self, root, relatives):
            Counting.calls += 1
            return small_model.predict_under(root, relatives)

    pyfunc = MlopsPyfunc()
    # The data root: copies of six test images, a link to one of their folders (inside the
    # root: followed) and a link out of it (refused, like `..` and absolute paths).
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    root = tmp_path / "root"
    for p in test.image_paths[:6]:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes((demo / "monday" / p).read_bytes())
    first = test.image_paths[0]
    (root / "alias").symlink_to(root / first.split("/")[0])
    (root / "out").symlink_to(demo)
    pyfunc.model, pyfunc.data_root = Counting(), str(root)
    refused = ["/etc/passwd", "../monday_test.jsonl", "out/monday_test.jsonl"]
    aliased = "alias/" + first.split("/", 1)[1]
    out = pyfunc.predict(None, pd.DataFrame({"image_path": test.image_paths[:6] + refused + [aliased]}))
    assert Counting.calls == 1
    expected = [p.target for p in small_model.predict_paths(
        [demo / "monday" / p for p in test.image_paths[:6]])]
    assert out["target"].tolist()[:6] == expected
    assert out["target"].tolist()[6:9] == [-1, -1, -1]
    assert out["target"].tolist()[9] == expected[0]
    assert all("leaves the data root" in e for e in out["error"].tolist()[6:9])
