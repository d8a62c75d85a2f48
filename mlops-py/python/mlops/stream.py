"""The live half: load manifests into PostgreSQL and stream predictions exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from mlops import _mlops_rs as _rs
from mlops.data import Manifest, PathLike
from mlops.errors import native
from mlops.model import Model


@native
def generate(url: Optional[str], manifests: Sequence[Manifest], *, drop: bool = False) -> int:
    """Creates the ``cargo`` table (dropping it only with ``drop``) and bulk-loads the manifests
    with COPY; returns the rows loaded. ``url=None`` uses the ``PG*`` environment variables."""
    return int(_rs.generate(url, [m.to_jsonl() for m in manifests], drop))


@native
def stream(
    model: Model,
    url: Optional[str],
    data_root: PathLike,
    *,
    sink_url: Optional[str] = None,
    batch_size: int = 64,
    name: str = "cargo_prediction",
) -> Dict[str, Any]:
    """Predicts every new ``cargo`` row into ``cargo_prediction`` exactly once, until caught up;
    returns the run's counters. Rows with missing or unreadable images go to
    ``cargo_prediction_error``."""
    return json.loads(_rs.stream_until_idle(model._native, url, Path(data_root), sink_url, batch_size, name))
