"""Replay selection: which old samples to keep training on when shifted data arrives."""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

from mlops import _mlops_rs as _rs
from mlops.errors import InvalidParameterError

STRATEGIES = ("none", "all", "random", "random_balanced", "cp_l1", "cp_l2", "cp_cosine", "k_center", "herding")


def select(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    strategy: str,
    budget: Union[int, float],
    seed: int = 2022,
) -> Tuple[np.ndarray, np.ndarray]:
    """Selects up to ``budget`` rows (an int count or a float fraction): ``(indices, scores)``,
    best first. Strategies: ``none``, ``all``, ``random``, ``random_balanced``, ``cp_l1``,
    ``cp_l2``, ``cp_cosine`` (the original's core pairs), ``k_center``, ``herding``.
    """
    e = np.ascontiguousarray(embeddings, dtype=np.float32)
    if e.ndim != 2:
        raise InvalidParameterError(f"embeddings: expected a 2-D array, got shape {e.shape}")
    y = np.ascontiguousarray(labels, dtype=np.uint32)
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"budget: expected an int count or a float fraction, got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 0:
            raise InvalidParameterError(f"budget: must not be negative, got {budget}")
        return _rs.select(e, y, strategy, int(budget), None, seed)
    return _rs.select(e, y, strategy, None, float(budget), seed)
