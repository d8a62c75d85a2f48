"""Resolving user-given image paths safely under a data root."""

from __future__ import annotations

import os
from pathlib import Path

from mlops import _mlops_rs
from mlops.errors import InvalidParameterError


def resolve_under(root: "os.PathLike[str] | str", relative: str) -> Path:
    """``root / relative`` with links resolved, under the one rule the stream, the Kafka consumer,
    the FastAPI app and the MLflow pyfunc share (``mlops_core::paths``): empty paths, NUL bytes,
    absolute paths, ``..`` and symlinks that lead out of ``root`` (or nowhere) are refused;
    links that stay inside ``root`` are followed. A missing file resolves all the same.

    Raises :class:`mlops.InvalidParameterError` (a ``ValueError``) naming the path.
    """
    if not isinstance(relative, str):
        raise InvalidParameterError(f"image_path: expected a relative path as text, got {relative!r}")
    return Path(_mlops_rs.resolve_under(os.fspath(root), relative))
