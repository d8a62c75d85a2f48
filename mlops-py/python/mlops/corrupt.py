"""Corruption: the original's random white boxes, mosaic, thick random line, or one of them at
random; and ImageNet-C's 19 corruptions at severities 1-5 (``image``, ``IMAGENET_C``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from mlops import _mlops_rs as _rs
from mlops.data import PathLike
from mlops.errors import InvalidParameterError

OCCLUSIONS = ("random_boxes", "mosaic", "random_line", "mixed")
#: ImageNet-C's corruptions in its order: the 15 common ones, then the 4 held out.
IMAGENET_C = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
KINDS = OCCLUSIONS + IMAGENET_C


def _corruption(
    kind: str, params: Optional[Dict[str, Any]], severity: Optional[int] = None, preset: str = "imagenet"
) -> str:
    if kind not in KINDS:
        raise InvalidParameterError(f"invalid kind: {kind!r}: expected one of {', '.join(KINDS)}")
    if kind in IMAGENET_C:
        if severity is None:
            raise InvalidParameterError(f"severity: {kind} needs a severity, 1..5")
        if params:
            raise InvalidParameterError(f"params: {kind} takes a severity and a preset, not params")
        return json.dumps({"type": "imagenet_c", "kind": kind, "severity": severity, "preset": preset})
    if severity is not None:
        raise InvalidParameterError(f"severity: {kind} has no severity (only ImageNet-C corruptions have one)")
    spec: Dict[str, Any] = {"type": kind}
    if params:
        # Only the given fields change; the core fills the original's defaults for the rest.
        spec.update(params)
    return json.dumps(spec)


def set_frost_textures(source: PathLike) -> None:
    """Reads frost's textures from ``source``: the ``imagecorruptions`` 1.1.2 wheel, or a folder
    with ``frost1.png`` .. ``frost6.jpg`` (such as the installed package's ``frost`` folder).

    Without it, frost looks at ``$MLOPS_FROST_TEXTURES``, then ``.cache/wheels`` of the working
    folder and its parents, then the installed ``imagecorruptions`` package.
    """
    _rs.set_frost_textures(Path(source))


def _frost_from_installed_package() -> None:
    """Points frost at an installed ``imagecorruptions`` package when nothing else is set."""
    import importlib.util
    import os

    if os.environ.get("MLOPS_FROST_TEXTURES"):
        return
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "frost"
        if (folder / "frost1.png").exists():
            os.environ["MLOPS_FROST_TEXTURES"] = str(folder)


def image(
    array: np.ndarray, kind: str, *, severity: int, seed: int = 0, preset: str = "imagenet"
) -> np.ndarray:
    """An ImageNet-C corruption of a ``uint8`` HxW or HxWxC image (C = 1..4) at ``severity`` 1-5.

    Returns a new array of the same shape. The same seed and image give the same bytes.
    ``preset="cifar10"`` uses CIFAR-10-C's parameter tables (for 32-pixel images).
    """
    if kind not in IMAGENET_C:
        raise InvalidParameterError(f"invalid kind: {kind!r}: expected one of {', '.join(IMAGENET_C)}")
    pixels = np.ascontiguousarray(array)
    if pixels.dtype != np.uint8:
        raise InvalidParameterError(f"image: expected a uint8 array, got {pixels.dtype}")
    if kind == "frost":
        _frost_from_installed_package()
    out, _ = _rs.corrupt_array(pixels, _corruption(kind, None, severity, preset), seed)
    return out


def _stderr_bar(done: int, total: int) -> None:
    """A one-line counter on standard error, drawn only on a terminal."""
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rcorrupting {done}/{total}{end}")
        sys.stderr.flush()


def corrupt_array(
    image: np.ndarray,
    *,
    kind: str = "mixed",
    seed: int = 0,
    params: Optional[Dict[str, Any]] = None,
    severity: Optional[int] = None,
    preset: str = "imagenet",
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Corrupts a ``uint8`` HxW or HxWxC image (C = 1..4); returns a new array and what was drawn.

    The same seed and image give the same output. ``params`` overrides the kind's parameters
    (the Rust core's names, e.g. ``{"count": {"min": 1, "max": 3}}`` for random_boxes). An
    ImageNet-C ``kind`` (see ``IMAGENET_C``) takes a ``severity`` 1-5 instead.
    """
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        raise InvalidParameterError(f"image: expected a uint8 array, got {array.dtype}")
    out, drawn = _rs.corrupt_array(array, _corruption(kind, params, severity, preset), seed)
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
    severity: Optional[int] = None,
    preset: str = "imagenet",
) -> Dict[str, Any]:
    """Corrupts every image under ``input`` into ``output`` (same names and formats).

    ``kind`` is one of ``KINDS``; an ImageNet-C corruption needs ``severity`` 1-5.

    Returns ``{"written": [...], "skipped": [[path, reason]], "failed": [[path, error]]}``:
    a bad file is reported, not fatal. ``progress`` is ``True`` for a bar on the terminal's
    stderr, or a callable ``(done, total)`` called after each file (from worker threads).
    Ctrl-C stops after the files in hand (each written whole) and raises KeyboardInterrupt.
    """
    callback = progress if callable(progress) else (_stderr_bar if progress else None)
    report = _rs.corrupt_folder(Path(input), Path(output), _corruption(kind, params, severity, preset), seed, threads, callback)
    return json.loads(report)
