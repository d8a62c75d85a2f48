"""A small FastAPI app with the original's API contract:
``POST /predict {"image_path": "background/background_13.jpg"}`` -> ``{"target": 0}``.

Run it with ``MLOPS_MODEL=<package> MLOPS_DATA_ROOT=<folder> uvicorn mlops.serve:app`` or build
one with :func:`create_app`. Paths that leave the data root (``..``, absolute paths, symlinks
out) get 400; missing images 404; unreadable images 422.
"""



import os
from typing import Any, List, Optional  # no postponed annotations: FastAPI reads them

from mlops.data import PathLike
from mlops.errors import InvalidParameterError
from mlops.model import Model
from mlops.paths import resolve_under


def create_app(model: Model, data_root: PathLike) -> Any:
    """The FastAPI application serving ``model`` on images under ``data_root``."""
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    class PredictRequest(BaseModel):
        image_path: str

    class BatchRequest(BaseModel):
        image_paths: List[str]

    app = FastAPI(title="mlops", version=model.version)

    def predict_one(relative: str) -> dict:
        try:
            path = resolve_under(data_root, relative)
        except InvalidParameterError as e:
            raise HTTPException(status_code=400, detail=str(e)) from None
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"no image at {relative!r}")
        p = model.predict_paths([path])[0]
        if p.error is not None or p.target is None or p.probabilities is None:
            raise HTTPException(status_code=422, detail=p.error or "no prediction")
        return {
            "target": p.target,
            "class_name": model.classes[p.target],
            "probability": p.probabilities[p.target],
        }

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model_version": model.version, "classes": model.classes}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict:
        return predict_one(request.image_path)

    @app.post("/predict/batch")
    def predict_batch(request: BatchRequest) -> dict:
        out: List[Optional[dict]] = []
        for relative in request.image_paths:
            try:
                out.append(predict_one(relative))
            except HTTPException as e:
                out.append({"error": e.detail, "status": e.status_code})
        return {"predictions": out}

    return app


def _app_from_environment() -> Any:
    package = os.environ.get("MLOPS_MODEL")
    root = os.environ.get("MLOPS_DATA_ROOT")
    if not package or not root:
        return None
    return create_app(Model.load(package), root)


app = _app_from_environment()
