"""Replay selection: which old samples to keep training on when shifted data arrives."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from mlops import _mlops_rs as _rs
from mlops.errors import InvalidParameterError

STRATEGIES = (
    "none", "all", "random", "random_balanced", "cp_l1", "cp_l2", "cp_cosine", "k_center", "herding", "reservoir",
    "closest_to_center", "uncertainty",
)


def select(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    strategy: str,
    budget: Union[int, float],
    seed: int = 2022,
    probabilities: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Selects up to ``budget`` rows (an int count or a float fraction): ``(indices, scores)``,
    best first. Strategies: ``none``, ``all``, ``random``, ``random_balanced``, ``cp_l1``,
    ``cp_l2``, ``cp_cosine`` (the original's core pairs), ``k_center``, ``herding``,
    ``reservoir`` (a uniform sample kept in arrival order), ``closest_to_center`` (per class the
    rows nearest the class mean), ``uncertainty`` (per class the smallest margin between the two
    most probable classes; needs ``probabilities``, the current model's ``(n, classes)`` softmax).
    """
    e = np.ascontiguousarray(embeddings, dtype=np.float32)
    if e.ndim != 2:
        raise InvalidParameterError(f"embeddings: expected a 2-D array, got shape {e.shape}")
    y = np.ascontiguousarray(labels, dtype=np.uint32)
    p = None
    if probabilities is not None:
        p = np.ascontiguousarray(probabilities, dtype=np.float32)
        if p.ndim != 2:
            raise InvalidParameterError(f"probabilities: expected a 2-D array, got shape {p.shape}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"budget: expected an int count or a float fraction, got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 0:
            raise InvalidParameterError(f"budget: must not be negative, got {budget}")
        return _rs.select(e, y, strategy, int(budget), None, seed, p)
    return _rs.select(e, y, strategy, None, float(budget), seed, p)
