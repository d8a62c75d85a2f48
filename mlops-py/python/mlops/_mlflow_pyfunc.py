"""The MLflow pyfunc entry point of the mlops flavour, logged as code (nothing is pickled).

MLflow loads this file, which rebuilds the model from the package stored as the artifact
``package``. Input: a DataFrame with an ``image_path`` column (relative to the data root from
``MLOPS_DATA_ROOT`` or the logged ``model_config["data_root"]``), or a uint8 image batch.
Output: a DataFrame with ``target``, ``probabilities`` and ``error`` (for unreadable images).
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class MlopsPyfunc(PythonModel):
    """Predicts with an mlops model package."""

    def load_context(self, context: Any) -> None:
        import mlops

        self.model = mlops.Model.load(context.artifacts["package"])
        config = context.model_config or {}
        self.data_root = os.environ.get("MLOPS_DATA_ROOT") or config.get("data_root")

    def predict(self, context, model_input, params=None):  # noqa: ANN001 (MLflow reads these hints)
        from mlops.errors import InvalidParameterError
        from mlops.paths import resolve_under

        if isinstance(model_input, pd.DataFrame) and "image_path" in model_input.columns:
            if not self.data_root:
                raise InvalidParameterError("data_root: set MLOPS_DATA_ROOT or log the model with data_root=...")
            resolved = []
            for relative in model_input["image_path"]:
                try:
                    resolve_under(self.data_root, str(relative))
                    resolved.append(str(relative))
                except InvalidParameterError as e:
                    resolved.append(e)
            paths = [r for r in resolved if not isinstance(r, InvalidParameterError)]
            # Every accepted path in one model call (batched and parallel in Rust), each opened
            # by the path rule: what is read is what was checked.
            predictions = iter(self.model.predict_under(self.data_root, paths) if paths else [])
            rows = []
            for r in resolved:
                if isinstance(r, InvalidParameterError):
                    rows.append((-1, None, str(r)))
                else:
                    p = next(predictions)
                    rows.append((p.target if p.target is not None else -1, p.probabilities, p.error))
            return pd.DataFrame(rows, columns=["target", "probabilities", "error"])
        batch = np.asarray(model_input, dtype=np.uint8)
        targets, probabilities = self.model.predict(batch)
        return pd.DataFrame(
            {"target": targets.astype(np.int64), "probabilities": list(probabilities), "error": None}
        )


mlflow.models.set_model(MlopsPyfunc())
