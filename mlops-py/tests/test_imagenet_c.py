"""ImageNet-C against its reference implementation, ``imagecorruptions`` 1.1.2 (the oracle, with
the compatibility fixes of ``imagenet_c_reference``), on 50 real photos in four sizes
(256x256, 224x224, 300x200 and the odd 181x257), every corruption at every severity.

- Deterministic corruptions (the seven of the issue and zoom_blur): at most 1 level apart
  anywhere, and on at most 5% of the values
  (brightness, contrast, saturate, pixelate and jpeg_compression are identical; the blurs differ
  by float rounding: we filter in single precision, the reference in double).
- Random ones (different generators, so different draws): the mean absolute change to the
  clean image and each channel's mean agree within three standard errors of their difference
  over the photos (plus 2% of the value, and 1 level for channel means).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from PIL import Image

import mlops
from imagenet_c_reference import NAMES, reference

SIZES = [(256, 256), (224, 224), (300, 200), (181, 257)]
DETERMINISTIC = {
    "brightness", "contrast", "saturate", "pixelate", "jpeg_compression", "gaussian_blur", "defocus_blur", "zoom_blur"
}
EXACT = {"brightness", "contrast", "saturate", "pixelate", "jpeg_compression"}


@pytest.fixture(scope="module")
def photos(demo: Path) -> List[np.ndarray]:
    files = sorted((demo / "monday").glob("*/*.png"))[::20][:50]
    assert len(files) == 50, f"expected 50 photos under {demo / 'monday'}"
    out = []
    for i, f in enumerate(files):
        w, h = SIZES[i % len(SIZES)]
        out.append(np.array(Image.open(f).convert("RGB").resize((w, h), Image.BILINEAR)))
    return out


def _stats(clean: np.ndarray, corrupted: np.ndarray) -> Dict[str, float]:
    c = corrupted.astype(np.float64)
    return {
        "mad": float(np.abs(c - clean).mean()),
        "r": float(c[..., 0].mean()),
        "g": float(c[..., 1].mean()),
        "b": float(c[..., 2].mean()),
    }


def test_every_corruption_is_offered():
    assert list(mlops.corrupt.IMAGENET_C) == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_matches_the_reference(name: str, photos: List[np.ndarray]):
    images = photos if name != "glass_blur" else photos[:10]  # the reference takes ~1 s a photo
    failures = []
    for severity in range(1, 6):
        ours, refs = [], []
        max_diff, differing = 0, 0.0
        for k, image in enumerate(images):
            ref = reference(image, name, severity, seed=k)
            out = mlops.corrupt.image(image, name, severity=severity, seed=k)
            assert out.shape == image.shape and out.dtype == np.uint8
            if name in DETERMINISTIC:
                diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
                max_diff = max(max_diff, int(diff.max()))
                differing += float((diff > 0).mean()) / len(images)
            ours.append(_stats(image, out))
            refs.append(_stats(image, ref))
        if name in DETERMINISTIC:
            bound = 0 if name in EXACT else 1
            if max_diff > bound or differing > 0.05:
                failures.append(f"severity {severity}: max difference {max_diff}, {differing:.2%} of values differ")
            continue
        for key in ("mad", "r", "g", "b"):
            a = np.array([s[key] for s in ours])
            b = np.array([s[key] for s in refs])
            se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            slack = 0.02 * abs(b.mean()) + (1.0 if key != "mad" else 0.0)
            if abs(a.mean() - b.mean()) > 3 * se + slack:
                failures.append(f"severity {severity} {key}: ours {a.mean():.2f}, reference {b.mean():.2f} (se {se:.2f})")
    assert not failures, f"{name}: " + "; ".join(failures)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_and_any_input(name: str, photos: List[np.ndarray]):
    image = photos[3]
    a = mlops.corrupt.image(image, name, severity=4, seed=11)
    b = mlops.corrupt.image(image, name, severity=4, seed=11)
    assert np.array_equal(a, b)
    if name not in DETERMINISTIC:
        assert not np.array_equal(a, mlops.corrupt.image(image, name, severity=4, seed=12))
    grey = mlops.corrupt.image(image[..., 0], name, severity=2, seed=1)
    assert grey.shape == image.shape[:2] and grey.dtype == np.uint8
    rgba = np.dstack([image, np.full(image.shape[:2], 77, np.uint8)])
    out = mlops.corrupt.image(rgba, name, severity=2, seed=1)
    assert out.shape == rgba.shape and (out[..., 3] == 77).all()
    for shape in [(16, 16, 3), (1, 1, 3), (17, 5, 3), (3, 40)]:
        tiny = mlops.corrupt.image(np.full(shape, 120, np.uint8), name, severity=5, seed=2)
        assert tiny.shape == shape


def test_bad_input_is_refused():
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(mlops.InvalidParameterError, match="severity"):
        mlops.corrupt.image(image, "fog", severity=6)
    with pytest.raises(mlops.InvalidParameterError, match="kind"):
        mlops.corrupt.image(image, "blizzard", severity=1)
    with pytest.raises(mlops.InvalidParameterError, match="uint8"):
        mlops.corrupt.image(image.astype(np.float32), "fog", severity=1)
    with pytest.raises(mlops.InvalidParameterError, match="severity"):
        mlops.corrupt_array(image, kind="random_boxes", severity=2)


def test_folder_of_one_corruption(demo: Path, tmp_path: Path):
    src = tmp_path / "in" / "brick"
    src.mkdir(parents=True)
    for f in sorted((demo / "monday" / "brick").glob("*.png"))[:3]:
        (src / f.name).write_bytes(f.read_bytes())
    report = mlops.corrupt_folder(tmp_path / "in", tmp_path / "out", kind="snow", severity=3, seed=5)
    assert len(report["written"]) == 3 and not report["failed"]
    again = mlops.corrupt_folder(tmp_path / "in", tmp_path / "again", kind="snow", severity=3, seed=5)
    assert len(again["written"]) == 3
    for f in sorted((tmp_path / "out" / "brick").iterdir()):
        assert f.read_bytes() == (tmp_path / "again" / "brick" / f.name).read_bytes()
