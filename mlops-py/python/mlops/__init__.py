"""mlops: an MLOps pipeline for image classification under distribution shift.

The heavy lifting happens in the Rust core (``mlops-core``); this package is a thin layer over
its native module ``mlops._mlops_rs``. Heavy calls release the GIL.

Stages: :mod:`mlops.corrupt`, :mod:`mlops.data`, :mod:`mlops.model`, :mod:`mlops.select`,
:mod:`mlops.stream`, :mod:`mlops.drift`, :mod:`mlops.adapt` (the closed loop), :mod:`mlops.experiment`, the MLflow flavour :mod:`mlops.mlflow` and the
FastAPI app :mod:`mlops.serve`. Long-running calls (stream, Kafka) stop on Ctrl-C.
"""

from mlops._mlops_rs import __version__
from mlops import adapt, drift
from mlops.corrupt import corrupt_array, corrupt_folder
from mlops.data import Listing, Manifest, Sample, list_dataset, read_image, split
from mlops.errors import (
    ConflictError,
    DatabaseError,
    DecodeError,
    EmptyDatasetError,
    InvalidParameterError,
    KafkaError,
    ManifestError,
    MlopsError,
    MlopsFileNotFoundError,
    MlopsIOError,
    MlopsPermissionError,
    PackageError,
)
from mlops.model import Model, PathPrediction, TrainResult, train
from mlops.select import select
from mlops.experiment import ExperimentResult, shift_experiment
from mlops.stream import generate, kafka_consume, kafka_publish, stream
from mlops.adapt import Registry

__all__ = [
    "__version__",
    "corrupt_array",
    "corrupt_folder",
    "Listing",
    "Manifest",
    "Sample",
    "list_dataset",
    "read_image",
    "split",
    "MlopsError",
    "MlopsFileNotFoundError",
    "MlopsPermissionError",
    "MlopsIOError",
    "InvalidParameterError",
    "DecodeError",
    "ManifestError",
    "EmptyDatasetError",
    "PackageError",
    "DatabaseError",
    "KafkaError",
    "ConflictError",
    "Model",
    "Registry",
    "adapt",
    "PathPrediction",
    "TrainResult",
    "train",
    "select",
    "drift",
    "generate",
    "stream",
    "kafka_publish",
    "kafka_consume",
    "shift_experiment",
    "ExperimentResult",
]
