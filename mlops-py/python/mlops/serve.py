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

    def check(relative: str):
        """The relative path, or the HTTP error it gets (opening comes later, in Rust)."""
        try:
            path = resolve_under(data_root, relative)
        except InvalidParameterError as e:
            return HTTPException(status_code=400, detail=str(e))
        if not path.is_file():
            return HTTPException(status_code=404, detail=f"no image at {relative!r}")
        return relative

    def answer(p) -> Any:
        if p.error is not None or p.target is None or p.probabilities is None:
            return HTTPException(status_code=422, detail=p.error or "no prediction")
        return {
            "target": p.target,
            "class_name": model.classes[p.target],
            "probability": p.probabilities[p.target],
        }

    def predict_many(relatives: List[str]) -> List[Any]:
        """One answer or HTTP error per path; every readable path in ONE model call, each
        opened by the path rule (a file swapped for a link after the check is refused, 422)."""
        checked = [check(r) for r in relatives]
        good = [r for r in checked if not isinstance(r, HTTPException)]
        predictions = iter(model.predict_under(data_root, good) if good else [])
        return [r if isinstance(r, HTTPException) else answer(next(predictions)) for r in checked]

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model_version": model.version, "classes": model.classes}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict:
        (result,) = predict_many([request.image_path])
        if isinstance(result, HTTPException):
            raise result
        return result

    @app.post("/predict/batch")
    def predict_batch(request: BatchRequest) -> dict:
        out: List[Optional[dict]] = []
        for result in predict_many(request.image_paths):
            if isinstance(result, HTTPException):
                out.append({"error": result.detail, "status": result.status_code})
            else:
                out.append(result)
        return {"predictions": out}

    return app


def _app_from_environment() -> Any:
    package = os.environ.get("MLOPS_MODEL")
    root = os.environ.get("MLOPS_DATA_ROOT")
    if not package or not root:
        return None
    return create_app(Model.load(package), root)


app = _app_from_environment()
