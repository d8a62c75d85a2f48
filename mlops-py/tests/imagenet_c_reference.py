"""The oracle for ImageNet-C: ``imagecorruptions`` 1.1.2 with the two compatibility fixes it needs
under NumPy 2 and scikit-image >= 0.19 (applied here, from outside the package):

- ``np.float_`` (removed in NumPy 2) is ``np.float64`` again (fog);
- ``skimage.filters.gaussian(multichannel=True)`` (removed) becomes ``channel_axis=-1``
  (glass_blur, gaussian_blur).

Also used by ``benches/imagenet_c_compare.py``.
"""

from __future__ import annotations

import numpy as np

if not hasattr(np, "float_"):
    np.float_ = np.float64  # type: ignore[attr-defined]

import imagecorruptions  # noqa: E402
import imagecorruptions.corruptions as _corruptions  # noqa: E402

_gaussian = _corruptions.gaussian


def _gaussian_with_multichannel(image, *args, multichannel=None, **kwargs):
    if multichannel:
        kwargs["channel_axis"] = -1
    return _gaussian(image, *args, **kwargs)


_corruptions.gaussian = _gaussian_with_multichannel

NAMES = imagecorruptions.get_corruption_names("all")


def reference(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """The reference's corruption of ``image`` (HxWx3 uint8), seeded through NumPy's global state."""
    np.random.seed(seed)
    return imagecorruptions.corrupt(image, severity=severity, corruption_name=name)
