"""Shift detection: does a window of live rows come from the same distribution as a reference?

Four two-sample tests on any N x D float matrix (backbone embeddings, softmax outputs):

- ``"mmd"``: squared maximum mean discrepancy, Gaussian kernel with a median-heuristic bandwidth
  fitted on the reference, permutation test;
- ``"ks"``: Kolmogorov-Smirnov per principal component of the reference (Bonferroni);
- ``"bbsd"``: black-box shift detection, KS per column of the model's softmax outputs (Bonferroni);
- ``"classifier"``: a domain classifier (logistic regression on the reference's principal
  components) trained on half of each side; the AUC on the other halves, rank-sum test.

All are seeded and deterministic and run in Rust with the GIL released. To check many windows
against one reference, fit a :class:`Detector` once. Labels (the predicted class of each row)
make the MMD test compare rows only within a class, so a stream that delivers rows class by
class does not raise an alarm.
"""

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mlops import _mlops_rs as _rs

METHODS = ("mmd", "ks", "bbsd", "classifier")

__all__ = ["METHODS", "DriftResult", "Detector", "detect"]


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one check: an alarm is ``p_value < threshold``."""

    method: str
    statistic: float
    p_value: float
    threshold: float
    drift: bool
    window_rows: int


def _matrix(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        from mlops.errors import InvalidParameterError

        raise InvalidParameterError(f"invalid parameter `{name}`: expected an N x D matrix, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _labels(values: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if values is None else np.ascontiguousarray(values, dtype=np.uint32).reshape(-1)


class Detector:
    """A reference sample fitted once (kernel matrix, principal components), checked many times."""

    def __init__(
        self,
        reference: np.ndarray,
        *,
        method: str = "mmd",
        alpha: float = 0.05,
        seed: int = 2022,
        permutations: int = 200,
        components: int = 32,
        max_reference_rows: int = 2000,
        labels: Optional[np.ndarray] = None,
    ) -> None:
        options = {
            "method": method,
            "alpha": alpha,
            "seed": seed,
            "permutations": permutations,
            "components": components,
            "max_reference_rows": max_reference_rows,
        }
        self._native = _rs.DriftDetector(_matrix("reference", reference), json.dumps(options), _labels(labels))
        self.method = method

    @property
    def reference_rows(self) -> int:
        """Reference rows compared with (after subsampling)."""
        return int(self._native.reference_rows)

    def check(self, window: np.ndarray, *, labels: Optional[np.ndarray] = None) -> DriftResult:
        """Tests ``window`` (at least two rows of the reference's width)."""
        raw = json.loads(self._native.check(_matrix("window", window), _labels(labels)))
        return DriftResult(**raw)


def detect(
    reference: np.ndarray,
    window: np.ndarray,
    *,
    method: str = "mmd",
    alpha: float = 0.05,
    seed: int = 2022,
    permutations: int = 200,
    components: int = 32,
    reference_labels: Optional[np.ndarray] = None,
    window_labels: Optional[np.ndarray] = None,
) -> DriftResult:
    """Tests whether ``window`` comes from the distribution of ``reference`` (one shot).

    Returns a :class:`DriftResult` with ``statistic``, ``p_value``, ``drift``, ``method`` and
    ``threshold``. Same seed and inputs give the same result.
    """
    detector = Detector(
        reference,
        method=method,
        alpha=alpha,
        seed=seed,
        permutations=permutations,
        components=components,
        labels=reference_labels,
    )
    return detector.check(window, labels=window_labels)
