"""Corruption: random white boxes, mosaic, thick random line, or one of them at random."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from mlops import _mlops_rs as _rs
from mlops.data import PathLike
from mlops.errors import InvalidParameterError

KINDS = ("random_boxes", "mosaic", "random_line", "mixed")


def _corruption(kind: str, params: Optional[Dict[str, Any]]) -> str:
    if kind not in KINDS:
        raise InvalidParameterError(f"invalid kind: {kind!r}: expected one of {', '.join(KINDS)}")
    spec: Dict[str, Any] = {"type": kind}
    if params:
        # Only the given fields change; the core fills the original's defaults for the rest.
        spec.update(params)
    return json.dumps(spec)


def _stderr_bar(done: int, total: int) -> None:
    """A one-line counter on standard error, drawn only on a terminal."""
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rcorrupting {done}/{total}{end}")
        sys.stderr.flush()


def corrupt_array(
    image: np.ndarray, *, kind: str = "mixed", seed: int = 0, params: Optional[Dict[str, Any]] = None
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Corrupts a ``uint8`` HxW or HxWxC image (C = 1..4); returns a new array and what was drawn.

    The same seed and image give the same output. ``params`` overrides the kind's parameters
    (the Rust core's names, e.g. ``{"count": {"min": 1, "max": 3}}`` for random_boxes).
    """
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        raise InvalidParameterError(f"image: expected a uint8 array, got {array.dtype}")
    out, drawn = _rs.corrupt_array(array, _corruption(kind, params), seed)
    return out, json.loads(drawn)


def corrupt_folder(
    input: PathLike,
    output: PathLike,
    *,
    kind: str = "mixed",
    seed: int = 0,
    threads: Optional[int] = None,
    progress: Union[bool, Callable[[int, int], None]] = False,
    params: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Corrupts every image under ``input`` into ``output`` (same names and formats).

    Returns ``{"written": [...], "skipped": [[path, reason]], "failed": [[path, error]]}``:
    a bad file is reported, not fatal. ``progress`` is ``True`` for a bar on the terminal's
    stderr, or a callable ``(done, total)`` called after each file (from worker threads).
    Ctrl-C stops after the files in hand (each written whole) and raises KeyboardInterrupt.
    """
    callback = progress if callable(progress) else (_stderr_bar if progress else None)
    report = _rs.corrupt_folder(Path(input), Path(output), _corruption(kind, params), seed, threads, callback)
    return json.loads(report)
