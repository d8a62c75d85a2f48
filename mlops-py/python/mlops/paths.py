"""Resolving user-given image paths safely under a data root."""

from __future__ import annotations

import os
from pathlib import Path

from mlops.errors import InvalidParameterError


def resolve_under(root: "os.PathLike[str] | str", relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and symlinks that lead out of ``root``.

    Raises :class:`mlops.InvalidParameterError` (a ``ValueError``) naming the path.
    """
    if not isinstance(relative, str) or not relative:
        raise InvalidParameterError(f"image_path: expected a non-empty relative path, got {relative!r}")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts or "\x00" in relative:
        raise InvalidParameterError(f"image_path {relative!r} leaves the data root")
    base = Path(root).resolve()
    full = (base / candidate).resolve()
    if full != base and base not in full.parents:
        raise InvalidParameterError(f"image_path {relative!r} leaves the data root (through a link)")
    return full
