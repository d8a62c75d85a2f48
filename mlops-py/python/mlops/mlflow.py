"""The MLflow flavour: log an mlops model as a pyfunc model that pickles nothing, and log a
training run's history, parameters and charts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

from mlops.data import PathLike
from mlops.model import Model, TrainResult


def log_model(
    model: Model,
    name: str,
    *,
    registered_model_name: Optional[str] = None,
    data_root: Optional[PathLike] = None,
    **kwargs: Any,
) -> Any:
    """Logs ``model`` to the active MLflow run as a pyfunc model; returns MLflow's ModelInfo.

    The model package (weights + metadata) is stored as the artifact ``package`` and the entry
    point is code (``mlops._mlflow_pyfunc``), so ``mlflow.pyfunc.load_model`` and ``mlflow models
    serve --env-manager local`` rebuild the model through the extension. ``data_root`` is where
    ``image_path`` inputs are resolved (``MLOPS_DATA_ROOT`` overrides it when serving).
    """
    import mlflow

    import mlops

    code = Path(__file__).with_name("_mlflow_pyfunc.py")
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "package"
        model.save(package)
        config = {"data_root": str(Path(data_root).absolute())} if data_root is not None else None
        kwargs.setdefault("pip_requirements", [f"mlops=={mlops.__version__}"])
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code),
            artifacts={"package": str(package)},
            model_config=config,
            registered_model_name=registered_model_name,
            **kwargs,
        )


def log_training(
    result: Union[TrainResult, Model],
    *,
    params: Optional[Dict[str, Any]] = None,
    charts: Optional[PathLike] = None,
) -> None:
    """Logs to the active run: the training settings as parameters (plus ``params``), every
    epoch's metrics with ``step=epoch``, the test accuracy, and the files in ``charts``."""
    import mlflow

    model = result.model if isinstance(result, TrainResult) else result
    metadata = model.metadata
    settings = dict(metadata.get("train_config") or {})
    preprocess = settings.pop("preprocess", {}) or {}
    flat = {k: v for k, v in settings.items() if k not in ("progress",)}
    flat.update({f"preprocess_{k}": v for k, v in preprocess.items()})
    flat["backbone"] = metadata.get("backbone")
    flat["classes"] = ",".join(model.classes)
    flat["model_version"] = model.version
    flat.update(params or {})
    mlflow.log_params({k: str(v) for k, v in flat.items()})
    history = result.history if isinstance(result, TrainResult) else metadata.get("history", [])
    for row in history:
        epoch = int(row["epoch"])
        mlflow.log_metrics(
            {k: float(v) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))}, step=epoch
        )
    test = result.test if isinstance(result, TrainResult) else metadata.get("test")
    if test and test.get("accuracy") is not None:
        mlflow.log_metric("test_accuracy", float(test["accuracy"]))
    if charts is not None:
        mlflow.log_artifacts(str(charts), artifact_path="charts")


def register_decision(
    decision: Dict[str, Any],
    model: Model,
    name: str,
    *,
    alias: str = "champion",
    data_root: Optional[PathLike] = None,
) -> Any:
    """Registers an adapted ``model`` as a new version of the registered model ``name`` (in
    the active run, or a new one) with the promotion ``decision`` (from
    :meth:`mlops.adapt.Registry.promote`) as tags and metrics, and moves ``alias`` to it when
    it was promoted; returns the ModelVersion. A rejected challenger is registered too, tagged
    ``mlops.promoted=false`` with the reason, and the alias stays where it was."""
    import mlflow
    from mlflow import MlflowClient

    lineage = model.metadata.get("lineage") or {}
    active = mlflow.active_run()
    run = active or mlflow.start_run(run_name=f"adapt {decision['challenger']}")
    try:
        mlflow.log_params(
            {
                "mlops.parent_version": decision["parent"],
                "mlops.strategy": str(lineage.get("strategy")),
                "mlops.budget": json.dumps(lineage.get("budget")),
                "mlops.seed": str(lineage.get("seed")),
            }
        )
        for who, scores in (("parent", decision["parent_scores"]), ("challenger", decision["scores"])):
            mlflow.log_metrics({f"{who}_{k}_accuracy": float(v) for k, v in scores.items()})
        info = log_model(model, "model", registered_model_name=name, data_root=data_root)
    finally:
        if active is None:
            mlflow.end_run()
    client = MlflowClient()
    version = info.registered_model_version
    tags = {
        "mlops.version": decision["challenger"],
        "mlops.parent": decision["parent"],
        "mlops.promoted": str(bool(decision["promoted"])).lower(),
        "mlops.reason": decision["reason"],
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    if decision["promoted"]:
        client.set_registered_model_alias(name, alias, str(version))
    return client.get_model_version(name, str(version))
