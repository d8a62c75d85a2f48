"""Type stubs for the native module (private: use the `mlops` package's API)."""

from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

__version__: str

class NativeError(Exception): ...

class Model:
    @staticmethod
    def load(uri: str, backend: str = "flex", engine: str = "fast") -> "Model": ...
    def save(self, uri: str) -> None: ...
    def metadata_json(self) -> str: ...
    @property
    def classes(self) -> List[str]: ...
    @property
    def version(self) -> str: ...
    def predict_paths(
        self, paths: List[Path]
    ) -> List[Tuple[Optional[int], Optional[List[float]], Optional[str]]]: ...
    def predict_array(self, batch: np.ndarray) -> Tuple[np.ndarray, np.ndarray]: ...
    def embed_paths(self, paths: List[Path]) -> np.ndarray: ...

def corrupt_array(image: np.ndarray, corruption: str, seed: int) -> Tuple[np.ndarray, str]: ...
def corrupt_folder(
    input: Path,
    output: Path,
    corruption: str,
    seed: int,
    threads: Optional[int] = None,
    progress: bool = False,
    callback: Optional[Callable[[int, int], None]] = None,
) -> str: ...
def list_folder(root: Path, classes: Optional[List[str]] = None, strict: bool = False) -> Tuple[str, List[str], str]: ...
def read_manifest(path: Path) -> str: ...
def write_manifest(jsonl: str, path: Path) -> None: ...
def split_manifest(jsonl: str, test_fraction: float, seed: int, stratified: bool) -> Tuple[str, str]: ...
def select(
    embeddings: np.ndarray, labels: np.ndarray, strategy: str, count: Optional[int], fraction: Optional[float], seed: int
) -> Tuple[np.ndarray, np.ndarray]: ...
def train(
    root: Path,
    train_jsonl: str,
    test_jsonl: str,
    classes: List[str],
    config: str,
    backbone: str = "efficientnet_lite0",
    weights: Optional[Path] = None,
    test_root: Optional[Path] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Tuple[Model, str, str, str]: ...
def generate(url: Optional[str], manifests: List[str], drop: bool = False) -> int: ...
def stream_predictions(
    model: Model,
    url: Optional[str],
    data_root: Path,
    sink_url: Optional[str] = None,
    batch_size: int = 64,
    stream: str = "cargo_prediction",
    until_idle: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> str: ...
def kafka_publish(
    url: Optional[str], brokers: str, topic: str = ..., partitions: int = 2, until_idle: bool = True
) -> str: ...
def kafka_consume(
    model: Model,
    url: Optional[str],
    brokers: str,
    data_root: Path,
    topic: str = ...,
    group: str = ...,
    batch_size: int = 64,
    idle_seconds: Optional[float] = 10.0,
    session_timeout_seconds: float = 10.0,
) -> str: ...
def shift_experiment(
    roots: Tuple[Path, Path],
    manifests: List[str],
    classes: List[str],
    strategies: List[str],
    budget: int,
    seeds: List[int],
    config: str,
    backbone: str = "efficientnet_lite0",
    weights: Optional[Path] = None,
    out: Optional[Path] = None,
    font_wheels: Optional[Path] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Tuple[str, str]: ...
def time_predict_in_rust(model: Model, batch: np.ndarray, repeats: int) -> float: ...
def read_image(path: Path) -> np.ndarray: ...
