"""The example notebook runs top to bottom (its code cells, in order, in one namespace), so it
cannot rot."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import ROOT


def test_the_pipeline_notebook_runs(demo, tmp_path, monkeypatch):
    notebook = json.loads((ROOT / "examples/notebooks/pipeline.ipynb").read_text())
    monkeypatch.setenv("MLOPS_DATA", str(demo))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            code = "".join(cell["source"])
            exec(compile(code, f"pipeline.ipynb[cell {i}]", "exec"), namespace)
    assert len(namespace["indices"]) == 20
    assert 0.0 <= namespace["result"].test["accuracy"] <= 1.0
